"""`fipviton eval pipeline`: the full try-on pipeline scored on a dataset's official pair list.

    fipviton eval pipeline --data DIR --pairs paired|unpaired --out DIR [--split test]
        [--category upper_body|lower_body|dresses] [--size 256x192|512x384|1024x768] [--repaint/--no-repaint]
        [--limit N] [--steps N] [--seed N] [--threads N] [--no-framing] [--sharp-garment] [--mirror-average]
        [--postprocess NAME=VALUE ...]
        [--parser-weights DIR] [--warp-weights DIR] [--tryon-weights DIR]
        [--inception PATH] [--lpips-alex PATH --alexnet PATH] [--lpips-squeeze PATH --squeezenet PATH]

Writes `metrics.json`, `report.md`, `samples.png` and `pairs.jsonl` (one row per pair) into --out; see
`fipviton.eval.pipeline` for the metrics and `fipviton.eval.metrics` for the weight files. Runs under
`accelerate launch -m fipviton.cli eval pipeline ...` on several processes or machines (the pair list is
sharded; the main process merges and writes). Exit codes: 0 done, 1 bad data / out folder / weight file, 2 usage.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from fipviton.cli._postprocess_option import add_postprocess_option, postprocess_config
from fipviton.data.sample import Category

_OPTIONAL_PATHS = ("inception", "lpips_alex", "alexnet", "lpips_squeeze", "squeezenet")


def _size(text: str) -> tuple[int, int]:
    from fipviton.eval.pipeline import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    parser = groups["eval"].add_parser(
        "pipeline",
        help="score the full pipeline on a dataset's pair list (metrics.json, report.md, sample grid)",
        description=(
            "Run the whole try-on pipeline on a split's official paired or unpaired list and score it, with and "
            "without repaint: SSIM, PSNR, ST-LPIPS (paired), identity metrics (both settings), and the standard "
            "LPIPS / FID / KID only when their weight files are given (otherwise reported as not computed)."
        ),
    )
    parser.add_argument("--data", type=Path, required=True, help="dataset folder (viton_resize, vitonhd, dresscode)")
    parser.add_argument("--pairs", required=True, choices=["paired", "unpaired"], help="which official list")
    parser.add_argument("--out", type=Path, required=True, help="output folder (not inside --data)")
    parser.add_argument("--split", default="test", choices=["train", "test"])
    parser.add_argument(
        "--category", choices=[c.value for c in Category], default=None, help="one category (default: every one)"
    )
    parser.add_argument(
        "--size",
        type=_size,
        default=None,
        metavar="HxW",
        help="evaluate at 256x192, 512x384 or 1024x768 (default: native)",
    )
    parser.add_argument(
        "--repaint",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="score only the final image (--repaint) or only the raw network output (--no-repaint); default both",
    )
    parser.add_argument("--limit", type=_positive, default=None, help="only the first N pairs of each category")
    parser.add_argument("--steps", type=_positive, default=1, help="try-on network calls: 1 = single step, N = DDIM")
    parser.add_argument("--seed", type=int, default=0, help="seed of the try-on noise and of the KID subsets")
    parser.add_argument(
        "--no-framing",
        dest="framing",
        action="store_false",
        help="run the networks on the photos as they are (no person crop, no garment re-framing)",
    )
    parser.add_argument(
        "--sharp-garment",
        action="store_true",
        help="the pipeline's sharp-garment mode (try-on --sharp-garment): the warped garment's detail kept",
    )
    parser.add_argument(
        "--mirror-average",
        action="store_true",
        help="run the try-on network on each photo and on its mirror image and average the two (try-on "
        "--mirror-average; twice the network's time)",
    )
    add_postprocess_option(parser, "for ablations")
    parser.add_argument("--threads", type=_positive, default=None, help="CPU threads (default: torch's choice)")
    for name in ("parser", "warp", "tryon"):
        parser.add_argument(
            f"--{name}-weights", type=Path, default=None, metavar="DIR", help=f"{name} weights (default: shipped)"
        )
    weights = parser.add_argument_group("standard metric weights (local files; see fipviton.eval.metrics)")
    weights.add_argument("--inception", type=Path, default=None, help="clean-fid's inception-2015-12-05.pt (FID/KID)")
    weights.add_argument("--lpips-alex", type=Path, default=None, help="lpips v0.1 alex.pth (needs --alexnet)")
    weights.add_argument("--alexnet", type=Path, default=None, help="torchvision alexnet-owt-7be5be79.pth")
    weights.add_argument("--lpips-squeeze", type=Path, default=None, help="lpips v0.1 squeeze.pth (needs --squeezenet)")
    weights.add_argument("--squeezenet", type=Path, default=None, help="torchvision squeezenet1_1-b8a52dc0.pth")
    parser.set_defaults(func=run_eval_pipeline)


def command_line(args: argparse.Namespace) -> str:
    """The command as a user would type it, every option explicit (defaults included)."""
    parts = ["fipviton", "eval", "pipeline", "--data", str(args.data), "--pairs", args.pairs, "--split", args.split]
    if args.category:
        parts += ["--category", args.category]
    if args.size:
        parts += ["--size", f"{args.size[0]}x{args.size[1]}"]
    if args.repaint is not None:
        parts.append("--repaint" if args.repaint else "--no-repaint")
    if args.limit:
        parts += ["--limit", str(args.limit)]
    parts += ["--steps", str(args.steps), "--seed", str(args.seed)]
    if not args.framing:
        parts.append("--no-framing")
    if args.sharp_garment:
        parts.append("--sharp-garment")
    if args.mirror_average:
        parts.append("--mirror-average")
    for override in args.postprocess:
        parts += ["--postprocess", override]
    if args.threads:
        parts += ["--threads", str(args.threads)]
    for name in ("parser", "warp", "tryon"):
        if getattr(args, f"{name}_weights") is not None:
            parts += [f"--{name}-weights", str(getattr(args, f"{name}_weights"))]
    parts += ["--out", str(args.out)]
    for name in _OPTIONAL_PATHS:
        value = getattr(args, name)
        if value is not None:
            parts += [f"--{name.replace('_', '-')}", str(value)]
    return shlex.join(parts)


def run_eval_pipeline(args: argparse.Namespace) -> int:
    import torch

    from fipviton.eval.pipeline import MetricWeights, PipelineEvalOptions, evaluate_pipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    options = PipelineEvalOptions(
        data=args.data,
        out=args.out,
        pairs=args.pairs,
        split=args.split,
        category=Category(args.category) if args.category else None,
        size=args.size,
        repaint=args.repaint,
        limit=args.limit,
        steps=args.steps,
        framing=args.framing,
        sharp_garment=args.sharp_garment,
        mirror_average=args.mirror_average,
        postprocess=postprocess_config(args.postprocess),
        parser_weights=args.parser_weights,
        warp_weights=args.warp_weights,
        tryon_weights=args.tryon_weights,
        weights=MetricWeights(**{name: getattr(args, name) for name in _OPTIONAL_PATHS}),
        command=command_line(args),
        seed=args.seed,
    )

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\r{done}/{total} pairs", end="" if done < total else "\n", file=sys.stderr)

    metrics = evaluate_pipeline(options, progress=progress)
    if metrics is None:  # not the main process: the main one prints
        return 0
    print(summary(metrics, args.out))
    return 0


def summary(metrics: dict, out: Path) -> str:
    """A few lines: counts, each mode's headline numbers, what was not computed, where the files are."""
    counts = metrics["counts"]
    lines = [
        f"{metrics['setting']['dataset']} {metrics['setting']['split']} {metrics['setting']['pairs']}: "
        f"{counts['evaluated']} pairs evaluated, {counts['failed']} failed (of {counts['selected']} selected, "
        f"{counts['listed']} listed), resolution {metrics['setting']['resolution']}"
    ]
    for mode in metrics["setting"]["modes"]:
        block = metrics[mode]
        values = []
        for key, digits in (("ssim", 4), ("psnr", 2), ("st_lpips", 4), ("lpips_alex", 4), ("fid", 2), ("kid", 2)):
            if block.get(key) is not None:
                values.append(f"{key} {block[key]:.{digits}f}")
        identity = block["identity"]["outside_agnostic"]
        if identity["ssim"] is not None:
            values.append(f"identity outside-agnostic ssim {identity['ssim']:.4f}")
        lines.append(f"  {mode}: " + (", ".join(values) or "no scores"))
    skipped = sorted(metrics["not_computed"])
    if skipped:
        lines.append(f"  not computed: {', '.join(skipped)} (see report.md)")
    lines.append(f"  wrote {out / 'metrics.json'}, {out / 'report.md'}, {out / 'pairs.jsonl'}")
    return "\n".join(lines)
