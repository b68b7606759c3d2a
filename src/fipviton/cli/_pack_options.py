"""The options `fipviton data pack-tryon` and `fipviton data pack-warp` share: which training pairs a pack holds.

The pairs come in a fixed shuffled order (--seed) after the first --skip-first ones (kept out, for selection);
a pack holds those from position --start on, as many as fit in --max-mib, and the command prints the --start
of the next pack. No `register`: the leading underscore keeps `fipviton.cli.build_parser` from importing it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fipviton.cli._usage import UsageError, refuse_existing, require_dataset_folder
from fipviton.data.pack import pack_paths

PACK_ORDER_HELP = (
    "The pairs come in a fixed shuffled order (--seed) after the first --skip-first ones; a pack holds those from "
    "position --start on, as many as fit in --max-mib. It prints the --start of the next pack."
)


def add_pack_arguments(parser: argparse.ArgumentParser) -> None:
    """--data, --out PREFIX, --skip-first, --seed, --start, --max-mib, --limit, --cache-root."""
    parser.add_argument("--data", type=Path, required=True, help="dataset folder (e.g. ../shared/data/viton_resize)")
    parser.add_argument("--out", type=Path, required=True, metavar="PREFIX", help="writes PREFIX.bin and PREFIX.json")
    parser.add_argument(
        "--skip-first", type=int, default=0, metavar="N", help="leave out the first N pairs (kept for selection)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffled order (default 0)")
    parser.add_argument("--start", type=int, default=0, help="position in the shuffled order to start at")
    parser.add_argument("--max-mib", type=float, default=None, help="stop before the pack grows past this size")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training pairs (tests)")
    parser.add_argument("--cache-root", type=Path, default=None, help="cache folder (default: cache/ in the checkout)")


def check_pack_arguments(args: argparse.Namespace) -> None:
    """Before any cache is built: the dataset folder exists, the numbers make sense, no pack file is replaced."""
    require_dataset_folder(args.data)
    if args.skip_first < 0 or args.start < 0 or (args.max_mib is not None and args.max_mib <= 0):
        raise UsageError("--skip-first and --start must be >= 0, --max-mib > 0")
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be positive")
    for path in pack_paths(args.out):
        refuse_existing(path)


def write_in_order(args: argparse.Namespace, count: int, write: Callable[[np.ndarray, int | None], int]) -> int:
    """Pick the positions of a cache of `count` pairs that the options ask for, call `write(positions,
    max_bytes)` (returns the pairs written), and print what was written and where the next pack starts."""
    if args.skip_first >= count:
        raise UsageError(f"--skip-first {args.skip_first} leaves none of the {count} training pairs")
    order = np.random.default_rng(args.seed).permutation(np.arange(args.skip_first, count))
    if args.start >= len(order):
        raise UsageError(f"--start {args.start}: only {len(order)} pairs after --skip-first")
    max_bytes = None if args.max_mib is None else int(args.max_mib * 2**20)
    try:
        written = write(order[args.start :], max_bytes)
    except ValueError as exc:  # not one pair fits in --max-mib
        raise UsageError(str(exc)) from None
    size = sum(path.stat().st_size for path in pack_paths(args.out))
    print(
        f"{args.out}: {written} pairs ({size / 2**20:.2f} MiB), positions {args.start}..{args.start + written - 1} "
        f"of {len(order)}; next pack: --start {args.start + written}"
    )
    return 0
