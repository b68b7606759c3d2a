"""`fipviton train parser ...`: train the human parser (resumable; see `fipviton.training.parser`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fipviton.cli._train_options import add_storage_dtype_argument
from fipviton.cli._usage import UsageError, refuse_existing
from fipviton.cli.eval_commands import scale_list


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    parser = groups["train"].add_parser(
        "parser",
        help="train the human parser on VITON parse maps",
        description=(
            "Train the human parser on the person images and parse maps of a VITON-layout dataset. Checkpoints, "
            "train.log, metrics.jsonl and sample grids go to --out; the final EMA weights to --out/final."
        ),
    )
    parser.add_argument("--data", type=Path, required=True, help="dataset folder (e.g. ../shared/data/viton_resize)")
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, logs, final weights)")
    parser.add_argument(
        "--config",
        default="default",
        help="network preset (default, small, tiny) or a JSON file of ParserConfig fields (default: default)",
    )
    parser.add_argument("--steps", type=int, default=3000, help="total optimizer steps (default 3000)")
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (AdamW, cosine schedule)")
    parser.add_argument("--warmup", type=int, default=150)
    parser.add_argument("--ema-decay", type=float, default=0.998, help="decay of the weights' EMA (what is saved)")
    parser.add_argument(
        "--low-res-until", type=int, default=0, help="train at half the input size before this step (default 0)"
    )
    parser.add_argument(
        "--rare-boost", type=float, default=8.0, help="oversample images with rare classes up to this factor"
    )
    parser.add_argument(
        "--class-weight-power",
        type=float,
        default=0.5,
        help="cross-entropy class weights (median frequency / frequency) ** this (default 0.5; 0: unweighted)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--cache", type=Path, default=Path("cache"), help="folder for decoded arrays (default cache)")
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--val-every", type=int, default=250, help="steps between validations and sample grids")
    parser.add_argument("--val-count", type=int, default=200, help="held-out test images for quick validation")
    parser.add_argument(
        "--holdout",
        type=int,
        default=0,
        help="validate on the last N training images, which are then not trained on (default 0: test images)",
    )
    parser.add_argument("--ckpt-every", type=int, default=100)
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="minutes of training (over all resumed sessions); the cosine schedule ends with them, then it stops",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads (default: torch's choice; on a shared CPU 1 avoids OpenMP spin-waiting)",
    )
    parser.add_argument(
        "--mixed-precision",
        choices=["auto", "no", "bf16"],
        default="no",
        help="bf16 autocast (default no: on CPU it made this depthwise network ~8x slower; auto: bf16 on CUDA)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--calibrate-count",
        type=int,
        default=0,
        help="training images for a per-class logit-bias fit after training (default 0: none; e.g. 1500)",
    )
    parser.add_argument(
        "--calibrate-only",
        action="store_true",
        help="do not train: fit the logit bias of --out/final on --calibrate-count images and save it there",
    )
    parser.add_argument(
        "--init-weights",
        type=Path,
        default=None,
        metavar="DIR",
        help="start a fresh run from these parser weights (same network as --config, e.g. the shipped ones in "
        "src/fipviton/weights/parser); ignored when resuming",
    )
    parser.add_argument(
        "--teacher",
        type=Path,
        default=None,
        metavar="DIR",
        help="distil from this parser: its logits with test-time flip and --teacher-scales are soft targets too "
        "(computed once per training image into --out/teacher_logits.npy)",
    )
    parser.add_argument(
        "--teacher-scales",
        type=scale_list,
        default=(1.0, 1.25),
        help="the teacher's test-time scales, comma-separated (default 1,1.25)",
    )
    parser.add_argument(
        "--distill-weight", type=float, default=1.0, help="weight of the KL divergence to the teacher (default 1)"
    )
    parser.set_defaults(func=run_train_parser)

    average = groups["train"].add_parser(
        "parser-average",
        help="average the weights of saved parsers of one network (a model soup)",
        description=(
            "Average the weights and BatchNorm statistics of two or more saved parsers of the same network (e.g. "
            "fine-tunes that started from the same weights) and save the result to --out."
        ),
    )
    average.add_argument("folders", type=Path, nargs="+", help="parser folders (config.json + model.safetensors)")
    average.add_argument("--out", type=Path, required=True, help="folder for the averaged parser (must not exist)")
    add_storage_dtype_argument(average)
    average.set_defaults(func=run_average_parsers)


def run_train_parser(args: argparse.Namespace) -> int:
    from fipviton.cli._train_options import check_training_arguments
    from fipviton.training.parser import TrainOptions, train

    check_training_arguments(args)
    try:  # TrainOptions checks its own values
        opts = TrainOptions(
            data=args.data,
            out=args.out,
            config=args.config,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            warmup=args.warmup,
            ema_decay=args.ema_decay,
            resume=args.resume,
            low_res_until=args.low_res_until,
            rare_boost=args.rare_boost,
            class_weight_power=args.class_weight_power,
            calibrate_count=args.calibrate_count,
            calibrate_only=args.calibrate_only,
            init_weights=args.init_weights,
            teacher=args.teacher,
            teacher_scales=args.teacher_scales,
            distill_weight=args.distill_weight,
            limit=args.limit,
            holdout=args.holdout,
            cache_root=args.cache,
            log_every=args.log_every,
            sample_every=args.val_every,
            val_count=args.val_count,
            ckpt_every=args.ckpt_every,
            threads=args.threads,
            mixed_precision=args.mixed_precision,
            seed=args.seed,
            time_limit=None if args.time_limit is None else args.time_limit * 60,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    train(opts)  # data problems found while loading (e.g. a holdout larger than the data) are DatasetErrors
    return 0


def run_average_parsers(args: argparse.Namespace) -> int:
    import torch

    from fipviton.training.parser import average_parsers

    refuse_existing(args.out)
    mean = average_parsers(args.folders)  # a WeightsError is reported by `main`
    mean.save_pretrained(args.out, dtype=getattr(torch, args.dtype))
    print(f"saved the mean of {len(args.folders)} parsers to {args.out}")
    return 0
