"""The options `fipviton train warp` and `fipviton train tryon` share (the `fipviton.training.common.TrainLoop`
ones), and their mapping to the fields of the trainers' options dataclasses.

No `register`: the leading underscore keeps `fipviton.cli.build_parser` from importing it as a command module.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fipviton.cli._usage import UsageError, require_dataset_folder


def add_training_arguments(
    parser: argparse.ArgumentParser,
    *,
    steps: int,
    lr: float,
    warmup: int,
    sample_every: int,
    cache_default: str,
    pack_command: str | None = None,
) -> None:
    """Add the shared training options to a `train` subcommand, with that stage's defaults.

    cache_default: where the caches go without --cache-root, as the help text says it.
    pack_command: the `fipviton data` command that writes this stage's training packs; the stage then takes
        --pack PREFIX (repeatable) as the alternative to --data (`check_training_arguments` wants one of them).
    """
    parser.add_argument(
        "--data", type=Path, required=pack_command is None, help="dataset folder (e.g. ../shared/data/viton_resize)"
    )
    if pack_command is not None:
        parser.add_argument(
            "--pack",
            dest="packs",
            action="append",
            type=Path,
            default=[],
            metavar="PREFIX",
            help=f"train on a pack (`fipviton data {pack_command}`; PREFIX.bin + PREFIX.json) instead of --data; "
            "repeatable",
        )
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, logs, final weights)")
    parser.add_argument("--steps", type=int, default=steps, help=f"total optimizer steps (default {steps})")
    parser.add_argument("--batch-size", type=int, default=8, help="images per step and process (default 8)")
    parser.add_argument("--lr", type=float, default=lr, help="peak learning rate (AdamW, cosine schedule)")
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training pairs")
    parser.add_argument("--cache-root", type=Path, default=None, help=f"cache folder (default: {cache_default})")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    parser.add_argument(
        "--mixed-precision",
        choices=["auto", "no", "bf16"],
        default="auto",
        help="auto: bf16 on CUDA and on CPUs with native bf16, fp32 elsewhere",
    )
    parser.add_argument("--time-limit", type=float, default=None, help="minutes: checkpoint and stop after this")
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--sample-every", type=int, default=sample_every)
    parser.add_argument("--ckpt-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)


def check_training_arguments(args: argparse.Namespace) -> None:
    """A DatasetError for a missing --data folder; a UsageError when --steps or --batch-size is not positive, or
    when a stage with packs gets both --data and --pack, or neither."""
    if hasattr(args, "packs") and (args.data is None) == (not args.packs):
        raise UsageError("give either --data or --pack")
    if args.data is not None:
        require_dataset_folder(args.data)
    if args.steps < 1 or args.batch_size < 1:
        raise UsageError("--steps and --batch-size must be positive")


def training_options(args: argparse.Namespace) -> dict[str, Any]:
    """The shared options as keyword arguments of `WarpTrainArgs` / `TryOnTrainArgs` (time limit in seconds)."""
    return {
        "data": args.data,
        "out": args.out,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "warmup": args.warmup,
        "resume": args.resume,
        "limit": args.limit,
        "cache_root": args.cache_root,
        "threads": args.threads,
        "mixed_precision": args.mixed_precision,
        "time_limit": None if args.time_limit is None else args.time_limit * 60,
        "log_every": args.log_every,
        "sample_every": args.sample_every,
        "ckpt_every": args.ckpt_every,
        "seed": args.seed,
    }


def add_storage_dtype_argument(parser: argparse.ArgumentParser) -> None:
    """--dtype of the weight-averaging commands (`train tryon-average`, `train parser-average`)."""
    parser.add_argument(
        "--dtype",
        choices=("float32", "float16"),
        default="float32",
        help="storage type of the saved weights; float16 halves the file (the shipped weights are stored so) and "
        "is cast back to float32 on loading (default float32)",
    )
