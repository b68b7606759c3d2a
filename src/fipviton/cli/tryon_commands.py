"""`fipviton train tryon` and `fipviton eval tryon`: train (resumable) and evaluate the try-on module.

See `fipviton.training.tryon` for training and `fipviton.tryon.evaluate` for what the metrics mean.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fipviton.cli._pack_options import PACK_ORDER_HELP, add_pack_arguments, check_pack_arguments, write_in_order
from fipviton.cli._train_options import (
    add_storage_dtype_argument,
    add_training_arguments,
    check_training_arguments,
    training_options,
)
from fipviton.cli._usage import UsageError, refuse_existing, require_dataset_folder
from fipviton.tryon.config import LOCAL_CONDITIONS

# The conditions `eval tryon --zero` can switch off: the local ones and the garment tokens (`use_<name>` fields).
ZEROABLE_CONDITIONS = (*(name for name, _ in LOCAL_CONDITIONS), "garment_tokens")


def _parse_override(text: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE parsed as JSON when it is JSON (numbers, true/false, lists), else a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value: object = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def _weight_list(text: str) -> list[float]:
    """`--weights` "0.75,0.25" -> [0.75, 0.25] (argparse turns a ValueError into a usage error, exit 2)."""
    return [float(part) for part in text.split(",")]


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    train = groups["train"].add_parser(
        "tryon",
        help="train the try-on module (single-step conditional diffusion)",
        description=(
            "Train the try-on module on the paired training list of a dataset. The first run builds two caches "
            "(the warping module's inputs, and the shipped warping module's outputs + agnostic masks) under "
            "--cache-root; checkpoints, train.log, metrics.jsonl and sample grids go to --out, the final EMA "
            "weights to --out/final. --resume continues from the newest checkpoint."
        ),
    )
    add_training_arguments(
        train,
        steps=30_000,
        lr=2e-4,
        warmup=500,
        sample_every=1000,
        cache_default="cache/ in the checkout",
        pack_command="pack-tryon",
    )
    train.add_argument(
        "--preset", choices=["cpu-256", "latent-512", "latent-1024"], default="cpu-256", help="network preset"
    )
    train.add_argument("--config", choices=["default", "tiny"], default="default", help="tiny: a smoke-test network")
    train.add_argument(
        "--warp-weights", type=Path, default=None, help="warping-module folder (default: the shipped weights)"
    )
    train.add_argument(
        "--init-weights",
        type=Path,
        default=None,
        metavar="DIR",
        help="start a fresh run from these try-on weights and their config (t*, training source, conditions; "
        "--set overrides them, e.g. --set refine_channels=16 adds a full-resolution head); ignored with --resume",
    )
    train.add_argument(
        "--refine-lr-scale",
        type=float,
        default=1.0,
        help="learning-rate factor of the full-resolution head (refine_channels) against the rest (default 1)",
    )
    train.add_argument("--vae-path", default=None, help="local AutoencoderKL folder (latent presets)")
    train.add_argument("--clip-path", default=None, help="local CLIPVisionModel folder: use it as garment encoder")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=_parse_override,
        default=[],
        metavar="KEY=VALUE",
        help="override a TryOnConfig field, e.g. --set use_body_parts=false --set t_star=400 (ablations)",
    )
    train.add_argument("--perceptual-weight", type=float, default=0.2, help="VGG perceptual weight (0 = off)")
    train.add_argument(
        "--ssim-weight",
        type=float,
        default=0.0,
        help="weight of (1 - SSIM) in the agnostic region, the evaluation's SSIM map (default 0 = off)",
    )
    train.add_argument(
        "--shrink-prob",
        type=float,
        default=0.0,
        help="probability of shrinking the warped garment of a training pair (erosion + shorter hem), so that "
        "the network learns to fill the holes an unpaired garment leaves (default 0)",
    )
    train.add_argument(
        "--fill-prob",
        type=float,
        default=0.0,
        help="probability of a random colour instead of white around the warped garment of a training pair, so "
        "that the network tells garment from no garment by the warped mask, not by whiteness (default 0)",
    )
    train.add_argument(
        "--backdrop-prob",
        type=float,
        default=0.0,
        help="probability of replacing a training photo's backdrop by a random colour field, so that the network "
        "learns to continue any backdrop into the agnostic region, not VITON's near-white (default 0)",
    )
    train.add_argument(
        "--loader-threads",
        type=int,
        default=None,
        metavar="N",
        help="threads that build each batch's items (augmentation) while the previous step runs; the batches "
        "are the same for any N (default: 1 on a CPU, up to 8 on a GPU)",
    )
    train.add_argument("--prepare-only", action="store_true", help="build the caches and exit")
    train.set_defaults(func=run_train_tryon)

    pack = groups["data"].add_parser(
        "pack-tryon",
        help="write try-on training pairs to a small pack, to train on another machine (train tryon --pack)",
        description=(
            "Build (or reuse) the try-on training caches of --data's training split at the cpu-256 preset's "
            "256x192, and write pairs of it to PREFIX.bin + PREFIX.json (about 9 KiB a pair: WebP images, "
            f"lossless masks; fipviton.tryon.pack). {PACK_ORDER_HELP}"
        ),
    )
    add_pack_arguments(pack)
    pack.add_argument("--warp-weights", type=Path, default=None, help="warping weights (default: shipped)")
    pack.set_defaults(func=run_pack_tryon)

    average = groups["train"].add_parser(
        "tryon-average",
        help="average the weights of saved try-on models of one network (a model soup)",
        description=(
            "The weighted mean of the weights of two or more saved try-on models of the same network (e.g. runs "
            "that started from the same weights), saved to --out with the first folder's config."
        ),
    )
    average.add_argument("folders", type=Path, nargs="+", help="try-on folders (config.json + model.safetensors)")
    average.add_argument(
        "--weights",
        type=_weight_list,
        default=None,
        metavar="W,W,...",
        help="one weight per folder, >= 0, summing to 1 (default: equal)",
    )
    average.add_argument("--out", type=Path, required=True, help="folder for the averaged model (must not exist)")
    add_storage_dtype_argument(average)
    average.set_defaults(func=run_average_tryon)

    evaluate = groups["eval"].add_parser(
        "tryon",
        help="evaluate the try-on module (SSIM, PSNR, ST-LPIPS; with and without repaint)",
        description=(
            "Paired: SSIM (torchmetrics, RGB, data range 1), PSNR and ST-LPIPS of the try-on module against the "
            "ground truth on a split's paired list, with the shipped warping module's outputs. Unpaired: the full "
            "pipeline on the first --limit pairs of the official unpaired list or of a photo folder's pairs.txt: "
            "timing, the garment's colour score (warped_colour_error) and a sample grid (no ground truth)."
        ),
    )
    evaluate.add_argument(
        "--data",
        type=Path,
        required=True,
        help="dataset folder (e.g. ../shared/data/viton_resize); with --pairs unpaired also a photo folder with a "
        "pairs.txt (e.g. ../shared/data/in_the_wild, or the bundled examples: src/fipviton/examples)",
    )
    evaluate.add_argument("--split", default="test", choices=["train", "test"])
    evaluate.add_argument("--pairs", default="paired", choices=["paired", "unpaired"])
    evaluate.add_argument("--limit", type=int, default=None, help="only the first N pairs (unpaired default: 20)")
    evaluate.add_argument("--steps", type=int, default=1, help="network calls: 1 = single step, N = N-step DDIM")
    evaluate.add_argument(
        "--repaint",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="score only with (--repaint) or only without (--no-repaint) pasted-back pixels (default: both)",
    )
    evaluate.add_argument(
        "--t-star", type=int, default=None, help="single-step timestep (default: the model's; an inference ablation)"
    )
    evaluate.add_argument(
        "--zero",
        action="append",
        default=[],
        choices=ZEROABLE_CONDITIONS,
        metavar="CONDITION",
        help="paired only, repeatable: feed zeros for this condition of weights trained with it, an inference "
        f"ablation (weights with ablation_mode zeros); one of {', '.join(ZEROABLE_CONDITIONS)}",
    )
    evaluate.add_argument("--weights", type=Path, default=None, help="try-on weights folder (default: shipped)")
    evaluate.add_argument("--warp-weights", type=Path, default=None, help="warping weights (default: shipped)")
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument(
        "--st-lpips-limit", type=int, default=None, metavar="N", help="ST-LPIPS on the first N pairs only (CPU time)"
    )
    evaluate.add_argument(
        "--shrink-warp",
        type=_shrink_spec,
        default=None,
        metavar="PX,FRACTION",
        help="paired only: erode every warped garment by PX pixels and cut FRACTION of its height off the hem "
        "before the try-on (e.g. 6,0.2), to score how the network fills the holes an unpaired garment leaves",
    )
    evaluate.add_argument(
        "--backdrops",
        type=int,
        default=None,
        metavar="SEED",
        help="paired only: replace every person's backdrop by a random colour field drawn from SEED and the "
        "pair's index (the same in every run), to score the network on backdrops other than VITON's near-white",
    )
    evaluate.add_argument(
        "--mirror",
        action="store_true",
        help="paired only: mirror every pair, inputs and ground truth alike (left/right body parts swapped), to "
        "check that the network scores the same on the mirror image of a photo",
    )
    evaluate.add_argument(
        "--oracle-warp",
        action="store_true",
        help="paired only: give the network the person's own garment region as the warped garment (a perfect "
        "warp), to score what a better warp could give this network",
    )
    evaluate.add_argument(
        "--sharp-garment",
        action="store_true",
        help="paired only: the pipeline's sharp-garment mode on every output (the warped garment's detail above "
        "the network's grid added where the garment lies)",
    )
    evaluate.add_argument(
        "--mirror-average",
        action="store_true",
        help="run the network on each pair and on its mirror image and average the two (twice its time)",
    )
    evaluate.add_argument(
        "--cache-root", type=Path, default=None, help="cache folder (default: cache/ in the checkout)"
    )
    evaluate.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    evaluate.add_argument("--grid", type=Path, default=None, metavar="PNG", help="write a sample grid here")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.set_defaults(func=run_eval_tryon)


def _shrink_spec(text: str) -> tuple[int, float]:
    """`--shrink-warp` "PX,FRACTION" -> (pixels >= 0, fraction in [0, 1))."""
    try:
        pixels, fraction = text.split(",")
        spec = (int(pixels), float(fraction))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PX,FRACTION (e.g. 6,0.2), got {text!r}") from None
    if spec[0] < 0 or not 0.0 <= spec[1] < 1.0:
        raise argparse.ArgumentTypeError(f"PX must be >= 0 and FRACTION in [0, 1), got {text!r}")
    return spec


def run_train_tryon(args: argparse.Namespace) -> int:
    from fipviton.training.tryon import TryOnTrainArgs, prepare_cache_dataset, train_tryon

    check_training_arguments(args)
    if args.packs and args.prepare_only:
        raise UsageError("--prepare-only builds the caches of --data; a pack needs none")
    overrides = dict(args.overrides)
    if args.vae_path:
        overrides["vae_path"] = args.vae_path
    if args.clip_path:
        overrides.update(garment_encoder="clip", clip_path=args.clip_path)
    try:
        options = TryOnTrainArgs(
            **training_options(args),
            preset="tiny" if args.config == "tiny" else args.preset,
            overrides=overrides,
            warp_weights=args.warp_weights,
            init_weights=args.init_weights,
            refine_lr_scale=args.refine_lr_scale,
            perceptual_weight=args.perceptual_weight,
            ssim_weight=args.ssim_weight,
            shrink_prob=args.shrink_prob,
            backdrop_prob=args.backdrop_prob,
            fill_prob=args.fill_prob,
            packs=tuple(args.packs),
            loader_threads=args.loader_threads,
        )
    except ValueError as exc:  # TryOnTrainArgs checks its own values; an error of the run itself is no usage error
        raise UsageError(str(exc)) from None
    if args.prepare_only:
        dataset = prepare_cache_dataset(options)
        print(f"caches ready: {len(dataset)} training pairs")
        return 0
    train_tryon(options)
    return 0


def run_pack_tryon(args: argparse.Namespace) -> int:
    import numpy as np

    from fipviton.tryon.cache import build_tryon_cache, warpnet_warper
    from fipviton.tryon.config import TryOnConfig
    from fipviton.tryon.pack import write_pack
    from fipviton.warp.cache import build_cache

    check_pack_arguments(args)
    config = TryOnConfig.from_preset("cpu-256")
    warper, tag = warpnet_warper(args.warp_weights)
    warp_root = args.cache_root / "warp" if args.cache_root else None
    warp_dir = build_cache(args.data, "train", size=tuple(config.image_size), cache_root=warp_root, limit=args.limit)
    tryon_dir = build_tryon_cache(warp_dir, warper, tag, cache_root=args.cache_root)
    count = int(json.loads((tryon_dir / "meta.json").read_text())["count"])
    garment_size = tuple(config.garment_size)

    def write(positions: np.ndarray, max_bytes: int | None) -> int:
        return write_pack(warp_dir, tryon_dir, positions, args.out, garment_size, max_bytes)

    return write_in_order(args, count, write)


def run_eval_tryon(args: argparse.Namespace) -> int:
    import torch

    from fipviton.imageio import save_image
    from fipviton.tryon.evaluate import evaluate_paired, evaluate_unpaired
    from fipviton.tryon.model import TryOnModel

    require_dataset_folder(args.data)
    if args.steps < 1 or args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise UsageError("--steps, --batch-size and --limit must be positive")
    if args.pairs == "unpaired":
        # Options whose result is a score against the ground truth, which unpaired pairs lack.
        paired_only = {
            "--shrink-warp": args.shrink_warp is not None,
            "--backdrops": args.backdrops is not None,
            "--mirror": args.mirror,
            "--oracle-warp": args.oracle_warp,
            "--sharp-garment": args.sharp_garment,
            "--zero": bool(args.zero),
        }
        given = [flag for flag, used in paired_only.items() if used]
        if given:
            verb = "needs" if len(given) == 1 else "need"
            raise UsageError(f"{' and '.join(given)} {verb} --pairs paired (scored against the ground truth)")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.pairs == "unpaired":
        summary, grid = evaluate_unpaired(
            args.data,
            args.split,
            args.limit or 20,
            args.steps,
            tryon_weights=args.weights,
            warp_weights=args.warp_weights,
            mirror_average=args.mirror_average,
        )
        result: dict = {"unpaired": summary}
    else:
        modes = (False, True) if args.repaint is None else (bool(args.repaint),)
        overrides = {} if args.t_star is None else {"inference_t_star": args.t_star}
        model = TryOnModel.from_pretrained(args.weights, **overrides)
        if args.zero:
            if model.config.ablation_mode != "zeros":  # "drop" weights have no input channels to zero
                raise UsageError(f"--zero needs weights with ablation_mode zeros, not {model.config.ablation_mode}")
            model = TryOnModel.from_pretrained(args.weights, **overrides, **{f"use_{n}": False for n in args.zero})
        result, grid = evaluate_paired(
            model,
            args.data,
            args.split,
            limit=args.limit,
            steps=args.steps,
            repaint_modes=modes,
            batch_size=args.batch_size,
            cache_root=args.cache_root,
            warp_weights=args.warp_weights,
            st_lpips_limit=args.st_lpips_limit,
            shrink_warp=args.shrink_warp,
            backdrops=args.backdrops,
            mirror=args.mirror,
            oracle_warp=args.oracle_warp,
            sharp_garment=args.sharp_garment,
            mirror_average=args.mirror_average,
        )
        # Top level: the asked-for mode's keys (ssim, psnr, st_lpips, count, seconds_per_image, ...); with both
        # modes, the raw output's, and the repainted scores under "repaint".
        first = result.pop("raw") if "raw" in result else result.pop("repaint")
        result = first | ({"repaint_scores": result["repaint"]} if "repaint" in result else {})
        result["zeroed"] = sorted(set(args.zero))  # the conditions fed as zeros (an ablation), [] for none
    if args.grid is not None:
        save_image(grid, args.grid)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for name, value in result.items():
            print(f"{name}: {value}")
    return 0


def run_average_tryon(args: argparse.Namespace) -> int:
    from fipviton.training.tryon import average_tryon_models

    refuse_existing(args.out)
    if len(args.folders) < 2 or (args.weights is not None and len(args.weights) != len(args.folders)):
        raise UsageError("give two or more folders and, with --weights, one weight per folder")
    import torch

    mean = average_tryon_models(args.folders, args.weights)  # a WeightsError: `main` reports it
    mean.save_pretrained(args.out, dtype=getattr(torch, args.dtype))
    print(f"saved the average of {len(args.folders)} try-on models to {args.out}")
    return 0
