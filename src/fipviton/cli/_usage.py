"""Usage errors of the commands: one format, on stderr, exit status 2 (as argparse's own)."""

from __future__ import annotations

import sys
from pathlib import Path

USAGE_ERROR = 2  # argparse exits with 2 for a bad command line; ours do the same


def usage_error(message: str) -> int:
    """Print `error: <message>` on stderr and return the exit status of a usage error."""
    print(f"error: {message}", file=sys.stderr)
    return USAGE_ERROR


def refuse_existing(out: Path) -> int | None:
    """For commands that write a new folder: the usage error when `out` exists (nothing the user has is ever
    overwritten), else None."""
    if Path(out).exists():
        return usage_error(f"{out} exists; choose a new folder")
    return None
