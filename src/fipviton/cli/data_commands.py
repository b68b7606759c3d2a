"""`fipviton data check DIR [--json]`: is a dataset folder complete and readable?
`fipviton data framing DIR [--split S] [--limit N] [--json]`: how does it frame its persons and garments?

Exit codes of `check`: 0 every pair complete, 1 problems found, 2 usage errors (including a DIR that does not
exist or matches no known layout). With `--json`, stdout holds exactly one JSON object (see
`fipviton.data.check`; `fipviton.framing.framing_statistics`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fipviton.cli._usage import UsageError


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

    framing = groups["data"].add_parser(
        "framing",
        help="how a dataset frames its persons and garments (percentiles), and how many the pipeline re-frames",
        description=(
            "Percentiles of where the neck and hips lie in the person photos and where the garment lies in the "
            "garment photos of DIR's paired list, and how many of them the pipeline would re-frame "
            "(fipviton.framing). The framing constants were measured with it on VITON's training split."
        ),
    )
    framing.add_argument("dir", type=Path, metavar="DIR", help="dataset folder (e.g. ../shared/data/viton_resize)")
    framing.add_argument("--split", default="train", help="split (default: train)")
    framing.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N pairs")
    framing.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    framing.set_defaults(func=run_framing)


def run_check(args: argparse.Namespace) -> int:
    from fipviton.data.check import check_dataset, format_report
    from fipviton.errors import DatasetError

    root: Path = args.dir
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if not root.is_dir():
        raise UsageError(f"{root}: no such directory")

    def progress(done: int, total: int) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\rchecked {done}/{total} files", end="" if done < total else "\n", file=sys.stderr)

    try:
        report = check_dataset(root, workers=args.workers, progress=progress)
    except DatasetError as exc:  # no known layout: the argument is wrong, not the data
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(report.as_dict(), indent=1))
    else:
        print(format_report(report))
    return 0 if report.ok else 1


def run_framing(args: argparse.Namespace) -> int:
    from fipviton.data.readers import open_dataset
    from fipviton.errors import DatasetError
    from fipviton.framing import framing_statistics

    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    if not args.dir.is_dir():
        raise UsageError(f"{args.dir}: no such directory")
    try:
        reader = open_dataset(args.dir)
    except DatasetError as exc:  # no known layout: the argument is wrong; a broken file further on is the data's
        raise UsageError(str(exc)) from None
    if args.split not in reader.splits():
        splits = ", ".join(reader.splits())
        raise UsageError(f"{args.dir} has no split {args.split!r} (it has {splits})")
    pairs = reader.pairs(args.split, paired=True)[: args.limit]
    stats = framing_statistics(reader.load(args.split, pair) for pair in pairs)
    if args.json:
        print(json.dumps(stats, indent=1))
        return 0
    for part, values in stats.items():
        print(f"{part}: {values['count']} of {len(pairs)} pairs measured, {values['reframed']} would be re-framed")
        for key, levels in values.items():
            if isinstance(levels, dict) and values["count"]:
                print(f"  {key:9s} " + "  ".join(f"{name} {value:.3f}" for name, value in levels.items()))
    return 0
