"""`fipviton data check DIR [--json]`: is a dataset folder complete and readable?

Exit codes: 0 every pair complete, 1 problems found, 2 usage errors (including a DIR that does not exist or
matches no known layout). With `--json`, stdout holds exactly one JSON object (see `fipviton.data.check`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    parser = groups["data"].add_parser(
        "check",
        help="check that a dataset folder is complete and readable",
        description=(
            "Detect the layout (viton, vitonhd, dresscode) of DIR, parse its pair lists and fully decode every "
            "file of every pair. Exit 0 when complete, 1 when problems were found, 2 for usage errors."
        ),
    )
    parser.add_argument("dir", type=Path, metavar="DIR", help="dataset folder (e.g. ../shared/data/viton_resize)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    parser.add_argument("--workers", type=int, default=None, help="decoding threads (default: 2 x CPUs, max 8)")
    parser.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    from fipviton.data.check import check_dataset, format_report
    from fipviton.errors import DatasetError

    root: Path = args.dir
    if args.workers is not None and args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    if not root.is_dir():
        print(f"error: {root}: no such directory", file=sys.stderr)
        return 2

    def progress(done: int, total: int) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\rchecked {done}/{total} files", end="" if done < total else "\n", file=sys.stderr)

    try:
        report = check_dataset(root, workers=args.workers, progress=progress)
    except DatasetError as exc:  # no known layout: the argument is wrong, not the data
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), indent=1))
    else:
        print(format_report(report))
    return 0 if report.ok else 1
