"""Error types that the CLI and the HTTP API turn into clear messages (exit code 1 / HTTP 4xx)."""

from __future__ import annotations


class FipvitonError(Exception):
    """Base class of every error caused by the user's input rather than by a bug."""


class ImageInputError(FipvitonError):
    """An image could not be used: unreadable, truncated, not an image, too large, too small."""


class DatasetError(FipvitonError):
    """A dataset folder or pair list is missing, malformed or points outside the dataset."""


class NoPersonError(FipvitonError):
    """No usable person was found in a photo (none, too small, or too cropped)."""


class WeightsError(FipvitonError):
    """Model weights are missing or do not match the model's configuration."""


class OutputPathError(FipvitonError):
    """An output path would overwrite or mix with an input, or is not the kind of path expected."""
