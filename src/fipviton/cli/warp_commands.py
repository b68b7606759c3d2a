"""`fipviton train warp` and `fipviton eval warp`: train and evaluate the warping module."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fipviton.cli._pack_options import PACK_ORDER_HELP, add_pack_arguments, check_pack_arguments, write_in_order
from fipviton.cli._train_options import add_training_arguments, check_training_arguments, training_options
from fipviton.cli._usage import UsageError, require_dataset_folder


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    train = groups["train"].add_parser(
        "warp",
        help="train the warping module (learned flow with cross-attention)",
        description=(
            "Train the warping module on the paired training list of a dataset (VITON 256x192 layout). The "
            "conditioning maps are cached once under --cache-root; checkpoints, train.log, metrics.jsonl and "
            "sample grids go to --out, the final EMA weights to --out/final. Stop with Ctrl-C (a checkpoint is "
            "written) and continue with --resume."
        ),
    )
    add_training_arguments(
        train, steps=20_000, lr=3e-4, warmup=200, sample_every=500, cache_default="cache/warp", pack_command="pack-warp"
    )
    train.add_argument(
        "--config",
        choices=["default", "tiny", "large"],
        default="default",
        help="network preset (large: a wider pyramid with attention at three levels, for a GPU)",
    )
    train.add_argument(
        "--no-cross-attention", action="store_true", help="ablation: no cross-attention, everything else equal"
    )
    train.add_argument(
        "--fine-channels",
        type=int,
        default=None,
        metavar="N",
        help="width of a flow level at the network's full size (0 = off; default: the preset's)",
    )
    train.add_argument(
        "--init-weights",
        type=Path,
        default=None,
        metavar="DIR",
        help="start a fresh run from these warping weights and their network config (e.g. the shipped ones; "
        "--fine-channels adds a full-size flow level to weights without one); ignored when resuming",
    )
    train.add_argument(
        "--ssim-weight",
        type=float,
        default=0.0,
        help="weight of (1 - SSIM) of the warped garment inside the garment region (default 0 = off)",
    )
    train.set_defaults(func=run_train_warp)

    pack = groups["data"].add_parser(
        "pack-warp",
        help="write warp training pairs to a small pack, to train on another machine (train warp --pack)",
        description=(
            "Build (or reuse) the warp's training cache of --data's training split (256x192) and write pairs of it "
            "to PREFIX.bin + PREFIX.json (about 5.3 KiB a pair: person and garment as WebP at the network's "
            f"128x96, lossless label maps; fipviton.warp.pack). {PACK_ORDER_HELP}"
        ),
    )
    add_pack_arguments(pack)
    pack.set_defaults(func=run_pack_warp)

    evaluate = groups["eval"].add_parser(
        "warp",
        help="evaluate the warping module (warped-mask IoU, garment SSIM) on paired pairs",
        description=(
            "Warped-mask IoU against the garment region of the parsing and SSIM (torchmetrics, data_range 1) of "
            "the warped garment inside that region, on the paired list of a split, at the dataset's resolution. "
            "--baseline box evaluates the garment resized to the bounding box of that region instead."
        ),
    )
    evaluate.add_argument("--data", type=Path, required=True, help="dataset folder (e.g. ../shared/data/viton_resize)")
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--limit", type=int, default=None, help="only the first N pairs")
    evaluate.add_argument("--weights", type=Path, default=None, help="model folder (default: the shipped weights)")
    evaluate.add_argument("--baseline", choices=["box"], default=None, help="evaluate a baseline instead of a model")
    evaluate.add_argument("--batch-size", type=int, default=16)
    evaluate.add_argument("--cache-root", type=Path, default=None, help="cache folder (default: cache/warp)")
    evaluate.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    evaluate.set_defaults(func=run_eval_warp)


def run_train_warp(args: argparse.Namespace) -> int:
    from fipviton.training.warp import WarpTrainArgs, train_warp

    check_training_arguments(args)
    if args.fine_channels is not None and args.fine_channels < 0:
        raise UsageError("--fine-channels must be >= 0")
    if args.ssim_weight < 0:
        raise UsageError("--ssim-weight must be >= 0")
    train_warp(
        WarpTrainArgs(
            **training_options(args),
            preset=args.config,
            cross_attention=not args.no_cross_attention,
            fine_channels=args.fine_channels,
            init_weights=args.init_weights,
            ssim_weight=args.ssim_weight,
            packs=tuple(args.packs),
        )
    )
    return 0


def run_pack_warp(args: argparse.Namespace) -> int:
    import numpy as np

    from fipviton.warp.cache import build_cache
    from fipviton.warp.model import WarpConfig
    from fipviton.warp.pack import write_warp_pack

    check_pack_arguments(args)
    warp_root = args.cache_root / "warp" if args.cache_root else None
    cache_dir = build_cache(args.data, "train", cache_root=warp_root, limit=args.limit)
    count = int(json.loads((cache_dir / "meta.json").read_text())["count"])
    image_size = tuple(WarpConfig().size)

    def write(positions: np.ndarray, max_bytes: int | None) -> int:
        return write_warp_pack(cache_dir, positions, args.out, image_size, max_bytes)

    return write_in_order(args, count, write)


def run_eval_warp(args: argparse.Namespace) -> int:
    from fipviton.training.common import set_threads
    from fipviton.warp.evaluate import evaluate_warp

    require_dataset_folder(args.data)
    set_threads(args.threads)
    result = evaluate_warp(
        args.data,
        split=args.split,
        weights=args.weights,
        baseline=args.baseline,
        limit=args.limit,
        batch_size=args.batch_size,
        cache_root=args.cache_root,
    )
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['method']}: mask IoU {result['mask_iou']:.4f}, SSIM {result['ssim']:.4f} "
            f"on {result['count']} {args.split} pairs at {result['resolution']}"
        )
    return 0
