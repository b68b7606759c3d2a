"""`fipviton train warp` and `fipviton eval warp`: train and evaluate the warping module."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


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
    train.add_argument("--data", type=Path, required=True, help="dataset folder (e.g. ../shared/data/viton_resize)")
    train.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, logs, final weights)")
    train.add_argument("--steps", type=int, default=20_000, help="total optimizer steps (default 20000)")
    train.add_argument("--batch-size", type=int, default=8, help="images per step and process (default 8)")
    train.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (AdamW, cosine schedule)")
    train.add_argument("--warmup", type=int, default=200)
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    train.add_argument("--config", choices=["default", "tiny"], default="default", help="network preset")
    train.add_argument(
        "--no-cross-attention", action="store_true", help="ablation: no cross-attention, everything else equal"
    )
    train.add_argument("--limit", type=int, default=None, help="use only the first N training pairs")
    train.add_argument("--cache-root", type=Path, default=None, help="cache folder (default: cache/warp)")
    train.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    train.add_argument(
        "--mixed-precision",
        choices=["auto", "no", "bf16"],
        default="auto",
        help="auto: bf16 on CUDA and on CPUs with native bf16, fp32 elsewhere",
    )
    train.add_argument("--time-limit", type=float, default=None, help="minutes: checkpoint and stop after this")
    train.add_argument("--log-every", type=int, default=25)
    train.add_argument("--sample-every", type=int, default=500)
    train.add_argument("--ckpt-every", type=int, default=250)
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(func=run_train_warp)

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
    from fipviton.errors import DatasetError
    from fipviton.training.warp import WarpTrainArgs, train_warp

    if not args.data.is_dir():
        raise DatasetError(f"{args.data}: no such directory")
    if args.steps < 1 or args.batch_size < 1:
        print("error: --steps and --batch-size must be positive")
        return 2
    train_warp(
        WarpTrainArgs(
            data=args.data,
            out=args.out,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            warmup=args.warmup,
            resume=args.resume,
            preset=args.config,
            cross_attention=not args.no_cross_attention,
            limit=args.limit,
            cache_root=args.cache_root,
            threads=args.threads,
            mixed_precision=args.mixed_precision,
            time_limit=None if args.time_limit is None else args.time_limit * 60,
            log_every=args.log_every,
            sample_every=args.sample_every,
            ckpt_every=args.ckpt_every,
            seed=args.seed,
        )
    )
    return 0


def run_eval_warp(args: argparse.Namespace) -> int:
    from fipviton.errors import DatasetError
    from fipviton.training.common import set_threads
    from fipviton.warp.evaluate import evaluate_warp

    if not args.data.is_dir():
        raise DatasetError(f"{args.data}: no such directory")
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
