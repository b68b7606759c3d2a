"""`fipviton eval parser --data DIR [--split test[,train]] [--limit N] [--json] [--weights DIR]`: human-parser mIoU.

Runs the parser on every person image of a split (at the image's own resolution: the parser letterboxes
and resizes internally) and compares with the dataset's parsing mapped to internal labels. The confusion
matrix is accumulated over the whole split; classes absent from both ground truth and predictions are
excluded from the mean and listed. With `--json`, stdout holds exactly one JSON object with the keys
`miou`, `per_class`, `pixel_accuracy`, `count`, `absent`, `dataset`, `split`, `weights`, `seconds` (and `worst`
with `--worst N`: per class, the images that miss the most of its pixels).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from fipviton.cli._usage import UsageError, require_dataset_folder

if TYPE_CHECKING:
    import numpy as np


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    parser = groups["eval"].add_parser(
        "parser",
        help="mean IoU of the human parser on a dataset split",
        description="Mean IoU, per-class IoU and pixel accuracy of the human parser on a dataset's parse maps.",
    )
    parser.add_argument("--data", type=Path, required=True, help="dataset folder (viton_resize, vitonhd, dresscode)")
    parser.add_argument("--split", default="test", help="split(s) to evaluate, comma-separated (default test)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N person images")
    parser.add_argument("--weights", type=Path, default=None, help="parser weights folder (default: shipped)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    parser.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="test-time flip averaging, 2x the network cost (default: as the weights' config.json says)",
    )
    parser.add_argument(
        "--scales",
        type=scale_list,
        default=None,
        help="test-time multi-scale averaging: comma-separated input scale factors, e.g. 1,1.25; 1 is one pass "
        "(default: as the weights' config.json says)",
    )
    parser.add_argument(
        "--worst",
        type=int,
        default=0,
        metavar="N",
        help="also name, per class, the N images that miss the most of its pixels, and what they called them "
        "(JSON key worst): where the mean IoU is lost, often images whose labels are wrong",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(func=run_eval_parser)


def scale_list(text: str) -> tuple[float, ...]:
    """`--scales` "1,1.25" -> (1.0, 1.25), checked by the parser's own rule (argparse turns errors into exit 2)."""
    from fipviton.analysis.parser import check_scales

    try:
        return check_scales([float(part) for part in text.split(",") if part.strip()])
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run_eval_parser(args: argparse.Namespace) -> int:
    import torch

    from fipviton.analysis.parser import HumanParser
    from fipviton.data import open_dataset
    from fipviton.errors import DatasetError
    from fipviton.eval.segmentation import MissedPixels, evaluate_segmenter
    from fipviton.labels import LABEL_NAMES, NUM_LABELS

    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    if args.worst < 0:
        raise UsageError("--worst must be >= 0")
    require_dataset_folder(args.data)
    if args.threads:
        torch.set_num_threads(args.threads)
    reader = open_dataset(args.data)
    splits = [name.strip() for name in args.split.split(",") if name.strip()]
    pairs = []
    for split in splits:
        if split not in reader.splits():
            raise DatasetError(f"{args.data}: no split {split!r} (has {', '.join(reader.splits())})")
        seen = set()
        for pair in reader.pairs(split, paired=True):
            if pair.person not in seen:
                seen.add(pair.person)
                pairs.append((split, pair))
    pairs = pairs[: args.limit] if args.limit else pairs
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = HumanParser.from_pretrained(args.weights, device=device).fuse_batchnorm()  # as the pipeline runs it

    def samples() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for split, pair in pairs:
            sample = reader.load(split, pair)
            if sample.parsing is None:
                raise DatasetError(f"{args.data} {split} {pair.person}: no parsing map")
            yield sample.person, sample.parsing

    def progress(done: int) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\r{done}/{len(pairs)} images", end="" if done < len(pairs) else "\n", file=sys.stderr)

    start = time.perf_counter()

    def predict(images: list) -> list:
        return model.parse_batch(images, flip=args.flip, scales=args.scales)

    missed = MissedPixels(LABEL_NAMES) if args.worst else None
    report = evaluate_segmenter(predict, samples(), NUM_LABELS, LABEL_NAMES, args.batch_size, progress, missed)
    seconds = time.perf_counter() - start
    worst = {}
    if missed is not None:
        image_names = [f"{split}/{pair.person}" if len(splits) > 1 else pair.person for split, pair in pairs]
        worst = missed.worst(args.worst, image_names)
    if args.json:
        result = report.to_dict()
        result.update(
            dataset=str(args.data),
            split=args.split,
            weights=str(args.weights) if args.weights else "shipped",
            flip=model.config.test_time_flip if args.flip is None else args.flip,
            scales=list(model.config.test_time_scales if args.scales is None else args.scales),
            seconds=round(seconds, 1),
        )
        if missed is not None:
            result["worst"] = worst
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.data} {args.split}: {report.count} images, {seconds:.1f} s")
        print(report.table())
        if report.absent:
            print(f"absent from ground truth and predictions (excluded from the mean): {', '.join(report.absent)}")
        if worst:
            print("\nimages that miss the most pixels of each class (missed/of, mostly called):")
            for name, rows in worst.items():
                cells = ", ".join(f"{r['image']} {r['missed']}/{r['of']} {r['predicted_as']}" for r in rows)
                print(f"- {name}: {cells}")
    return 0
