"""Serving limits and settings, shared by the app, the worker pool and the `fipviton serve` command."""

from __future__ import annotations

from dataclasses import dataclass

from fipviton.imageio import MAX_PIXELS


@dataclass(frozen=True)
class ServeConfig:
    """Limits of the HTTP API.

    workers:        inference threads; each owns one pipeline. 1 by default because torch already spreads one
                    call over the CPU cores, so a second worker mostly adds memory and contention.
    queue_size:     requests allowed to wait for a worker; one more than `workers + queue_size` in flight is
                    answered 503 with Retry-After at once instead of piling up.
    timeout_s:      seconds a request may take from admission (queue wait + try-on + encoding) before a 504.
    max_upload_mb:  largest accepted file per image field, in MiB (413 above it).
    max_pixels:     largest accepted image in pixels (width x height), checked from the header before decoding;
                    the try-on output is at the person's resolution, so this bounds memory and time per request.
    map_size:       default longest side, in pixels, of the intermediate maps in JSON responses (0: full size).
    """

    workers: int = 1
    queue_size: int = 4
    timeout_s: float = 60.0
    max_upload_mb: float = 16.0
    max_pixels: int = 16_000_000
    map_size: int = 512

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.queue_size < 0:
            raise ValueError(f"queue_size must be 0 or more, got {self.queue_size}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")
        if self.max_upload_mb <= 0:
            raise ValueError(f"max_upload_mb must be positive, got {self.max_upload_mb}")
        if not 0 < self.max_pixels <= MAX_PIXELS:
            raise ValueError(f"max_pixels must be in 1..{MAX_PIXELS:,} (the image reader's own limit)")
        if self.map_size < 0:
            raise ValueError(f"map_size must be 0 or more, got {self.map_size}")

    @property
    def max_upload_bytes(self) -> int:
        """Largest accepted file per image field, in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_body_bytes(self) -> int:
        """Largest accepted request body: two image files plus room for the multipart framing and fields."""
        return 2 * self.max_upload_bytes + 64 * 1024

    @property
    def capacity(self) -> int:
        """Requests admitted at once (running + waiting)."""
        return self.workers + self.queue_size
