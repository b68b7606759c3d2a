"""`fipviton bench [--json]`: stage timings, single step vs N-step DDIM, network throughput, peak memory."""

from __future__ import annotations

import argparse
import json

from fipviton.cli._usage import UsageError


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    parser = groups[""].add_parser(
        "bench",
        help="time the pipeline on this machine (per stage, 1 step vs 50 DDIM steps, throughput, peak RSS)",
        description=(
            "Time the shipped pipeline on a bundled example pair: per-stage medians and spread for a 1024x768 "
            "photo and at 256x192, the single-step try-on against a --ddim-steps DDIM sampler end to end (ratio "
            "measured in one run), network throughput at batch 1 and 8, and the process's peak RSS."
        ),
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (after a warm-up)")
    parser.add_argument("--ddim-steps", type=int, default=50, help="steps of the diffusion baseline (default 50)")
    parser.add_argument("--ddim-repeat", type=int, default=2, help="timed runs of the slow baseline")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run_bench_command)


def run_bench_command(args: argparse.Namespace) -> int:
    import torch

    from fipviton.bench import run_bench

    if args.repeat < 1 or args.ddim_steps < 1 or args.ddim_repeat < 1:
        raise UsageError("--repeat, --ddim-steps and --ddim-repeat must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    report = run_bench(repeat=args.repeat, ddim_steps=args.ddim_steps, ddim_repeat=args.ddim_repeat)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    for key, value in report.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for name, stats in value.items():
                print(f"  {name:12s} {stats}")
        else:
            print(f"{key}: {value}")
    return 0
