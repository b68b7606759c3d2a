"""Usage errors of the commands: one format, on stderr, exit status 2 (as argparse's own).

A command raises `UsageError` wherever it finds its command line wrong; `fipviton.cli.main` prints it and exits
with `USAGE_ERROR`. Errors in the user's files (images, datasets, weights) are `fipviton.errors.FipvitonError`s
instead, which exit with 1 and are also what the HTTP API turns into 4xx answers.
"""

from __future__ import annotations

from pathlib import Path

USAGE_ERROR = 2  # argparse exits with 2 for a bad command line; ours do the same


class UsageError(Exception):
    """The command line asks for something the command cannot do (`main` prints `error: <message>`, exit 2)."""


def require_dataset_folder(data: Path) -> None:
    """For commands that read a dataset: a `DatasetError` (exit 1: the user's files) when `data` is no folder."""
    from fipviton.errors import DatasetError

    if not Path(data).is_dir():
        raise DatasetError(f"{data}: no such directory")


def refuse_existing(out: Path) -> None:
    """For commands that write a new folder: a UsageError when `out` exists (nothing the user has is ever
    overwritten)."""
    if Path(out).exists():
        raise UsageError(f"{out} exists; choose a new folder")
