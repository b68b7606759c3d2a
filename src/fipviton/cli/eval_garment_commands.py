"""`fipviton eval garment-mask --data DIR [--split test] [--limit N] [--json]`.

Measures the weight-free garment mask (`fipviton.analysis.garment.garment_mask`) against a dataset's own
cloth masks: mean IoU over the distinct garments of the split's pair lists (paired, then unpaired) that
have a mask (JPEG masks thresholded at 128, as the dataset readers do). With `--json`, stdout holds exactly
one JSON object with `miou` and `count` (plus `median_iou`, `dataset`, `split`, `seconds_per_image`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from fipviton.cli._usage import UsageError

if TYPE_CHECKING:
    from fipviton.data import DatasetReader, PairEntry


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    parser = groups["eval"].add_parser(
        "garment-mask",
        help="mean IoU of the estimated garment masks against a dataset's cloth masks",
        description=(
            "Estimate the garment mask of every distinct garment of a split (paired list) from its product "
            "photo alone and compare it with the dataset's cloth mask. Exit 1 when the dataset has no masks."
        ),
    )
    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help="dataset folder (viton, vitonhd)")
    parser.add_argument("--split", default="test", choices=("train", "test"), help="split (default: test)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N garments")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    parser.set_defaults(func=run_eval_garment_mask)


def _garment_pairs(reader: DatasetReader, split: str) -> list[PairEntry]:
    """Pairs of the paired list, then of the unpaired one (it may name more garments), where they exist."""
    from fipviton.errors import DatasetError

    pairs: list[PairEntry] = []
    for paired in (True, False):
        try:
            pairs.extend(reader.pairs(split, paired=paired))
        except DatasetError:
            continue
    if not pairs:
        raise DatasetError(f"{reader.root}: no pair list for the {split} split")
    return pairs


def run_eval_garment_mask(args: argparse.Namespace) -> int:
    import numpy as np

    from fipviton.analysis.garment import garment_mask, mask_iou
    from fipviton.data import open_dataset
    from fipviton.data.files import decode_or_none
    from fipviton.errors import DatasetError

    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    reader = open_dataset(args.data)
    seen: set[str] = set()
    ious: list[float] = []
    start = time.perf_counter()
    for pair in _garment_pairs(reader, args.split):
        if pair.garment in seen:
            continue
        seen.add(pair.garment)
        specs = {spec.role: spec for spec in reader.files(args.split, pair)}
        mask_spec = specs.get("garment_mask")
        if mask_spec is None or not mask_spec.path.exists():
            continue  # garments without a mask (vitonhd_extra) are not counted
        garment = decode_or_none(specs["garment"])
        target = decode_or_none(mask_spec)
        assert garment is not None and target is not None
        ious.append(mask_iou(garment_mask(garment), target.astype(bool)))
        if not args.json and sys.stderr.isatty():
            print(f"\r{len(ious)} garments", end="", file=sys.stderr)
        if args.limit is not None and len(ious) >= args.limit:
            break
    if not args.json and sys.stderr.isatty():
        print(file=sys.stderr)
    if not ious:
        raise DatasetError(f"{args.data}: no garment has a cloth mask in the {args.split} split")
    values = np.asarray(ious)
    result = {
        "dataset": reader.name,
        "split": args.split,
        "count": len(ious),
        "miou": round(float(values.mean()), 4),
        "median_iou": round(float(np.median(values)), 4),
        "seconds_per_image": round((time.perf_counter() - start) / len(ious), 4),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['dataset']} {result['split']}: garment-mask mean IoU {result['miou']:.4f} "
            f"(median {result['median_iou']:.4f}) over {result['count']} garments"
        )
    return 0
