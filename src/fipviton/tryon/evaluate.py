"""Evaluation of the try-on module (`fipviton eval tryon`).

Paired setting (the person wears the garment; the person photo is the ground truth), on a split's paired
list at the dataset's resolution (256x192 for VITON), through the same caches the trainer uses (the shipped
warping module's outputs and the agnostic masks, `fipviton.tryon.cache`):

- ssim:     torchmetrics `structural_similarity_index_measure` on RGB in [0, 1], data_range 1 (the CatVTON /
            LaDI-VTON convention), per image, averaged;
- psnr:     per image on [0, 1], averaged;
- st_lpips: the full shift-tolerant LPIPS (VGG16, `fipviton.losses.perceptual.STLPIPS`), averaged. It is not
            the standard LPIPS (no weights for that offline) and is never reported under that name.

- ssim_in_warped_garment / ssim_in_rest_of_mask: the same SSIM map averaged over two parts of the agnostic
            region: where the warped garment lies (warped mask > 0.5), and the rest (arms, neck, holes the
            warp leaves); per image, then over the images that have such pixels. They say where the SSIM is lost
            (outside the agnostic region a repainted image is the ground truth).
- warped_colour_error: how far the output moved the garment's colours from the warped garment's
            (`warped_colour_error`: both blurred, inside the eroded warped mask, in [0, 1]); `truth_warped_colour_error`
            is the ground truth's own distance, for scale. Reported in the unpaired setting too, where it is the only
            score of how faithfully the garment is kept.

`repaint=True` scores the image after the original pixels outside the agnostic mask are pasted back (a hard
paste, as papers that report "repaint" numbers do); `repaint=False` scores the network's raw output.
`seconds_per_image` is the wall time of the try-on network (all its denoising calls) divided by the image
count, at the evaluation batch size, on the current device and thread count.

Unpaired setting (another garment): there is no ground truth, so SSIM/PSNR/LPIPS do not apply and FID/KID
need Inception weights that are not available offline; `--pairs unpaired` runs the pipeline on the first
pairs of the unpaired list, writes the sample grid and reports timing and `warped_colour_error` only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from fipviton.tryon.inputs import TryOnInputs
from fipviton.tryon.model import TryOnModel

if TYPE_CHECKING:
    from fipviton.losses.perceptual import STLPIPS
    from fipviton.pipeline import TryOnResult


def image_metrics(
    prediction: torch.Tensor,
    target: torch.Tensor,
    lpips: STLPIPS | None = None,
    target_features: list[torch.Tensor] | None = None,
    regions: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Per-image SSIM, PSNR (and ST-LPIPS with `lpips`) of (B, 3, H, W) images in [-1, 1]: each (B,).

    target_features: `lpips.features(target)` when the caller scores several predictions against one target
    (the VGG pass over the target is then done once).
    regions: {name: (B, 1, H, W) bool}: also the per-image mean of the same SSIM map inside each region, under
    that name (NaN for an image whose region is empty; aggregate with `nanmean`).
    """
    from torchmetrics.functional.image import peak_signal_noise_ratio

    from fipviton.losses.ssim import region_mean, ssim_map, unit_range

    # One SSIM pass: the per-image values are the same with or without the full map.
    ssim, values = ssim_map(prediction, target)
    psnr = peak_signal_noise_ratio(
        unit_range(prediction), unit_range(target), data_range=1.0, reduction="none", dim=(1, 2, 3)
    )
    out = {"ssim": ssim, "psnr": psnr}
    for name, region in (regions or {}).items():
        out[name] = region_mean(values, region, empty=float("nan"))
    if lpips is not None:
        if target_features is None:
            target_features = lpips.features(target.float().clamp(-1, 1))
        out["st_lpips"] = st_lpips_distance(prediction, lpips, target_features)
    return out


def ssim_inside_regions(prediction: torch.Tensor, target: torch.Tensor, regions: dict[str, torch.Tensor]) -> dict:
    """Per-image mean of the SSIM map (torchmetrics, RGB, data_range 1) inside each region: {name: (B,)}
    (`image_metrics` with `regions`, those keys only). The map is that of the whole images, so windows at a
    region's edge see its surroundings (unlike `fipviton.warp.evaluate.isolated_region_ssim`)."""
    scores = image_metrics(prediction, target, regions=regions)
    return {name: scores[name] for name in regions}


def st_lpips_distance(prediction: torch.Tensor, lpips: STLPIPS, target_features: list[torch.Tensor]) -> torch.Tensor:
    """Per-image ST-LPIPS (B,) of (B, 3, H, W) images in [-1, 1] against `lpips.features(target)`."""
    return lpips.distance(lpips.features(prediction.float().clamp(-1, 1)), target_features)


def warped_colour_error(
    image: torch.Tensor, warped: torch.Tensor, warped_mask: torch.Tensor, sigma: float = 3.0, erode: int = 4
) -> torch.Tensor:
    """Per-image (B,) distance in [0, 1] between the colours of an image and of the warped garment.

    image, warped: (B, 3, H, W) in [-1, 1] at the network's size; warped_mask (B, 1, H, W) in [0, 1]. Both images
    are blurred (Gaussian, `sigma` pixels), and the largest RGB difference per pixel is averaged inside the warped
    mask (> 0.5) eroded by `erode` pixels; NaN for an image with nothing left there. Why: the warp decides which
    colour goes where, and at this scale its few pixels of misalignment are blurred away, so a try-on that keeps
    the garment stays close to it on any pair, paired or not. A network that repaints parts of the garment from a
    prior (a white band painted over in the colour around it) moves away from it.
    """
    import kornia

    radius = int(np.ceil(3 * sigma))
    kernel = (2 * radius + 1, 2 * radius + 1)
    blurred = [kornia.filters.gaussian_blur2d(x.float(), kernel, (sigma, sigma)) for x in (image, warped)]
    difference = (blurred[0] - blurred[1]).abs().amax(dim=1, keepdim=True) / 2
    solid = (warped_mask.float() > 0.5).float()
    inside = 1 - torch.nn.functional.max_pool2d(1 - solid, 2 * erode + 1, stride=1, padding=erode)
    count = inside.sum(dim=(1, 2, 3))
    total = (difference * inside).sum(dim=(1, 2, 3))
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


def repaint(prediction: torch.Tensor, inputs: TryOnInputs) -> torch.Tensor:
    """The prediction inside the agnostic mask, the original person (the ground truth) outside it."""
    assert inputs.person is not None
    mask = inputs.agnostic_mask.to(prediction.dtype)
    return prediction * mask + inputs.person.to(prediction.dtype) * (1 - mask)


def sample_grid(rows: list[tuple[np.ndarray, ...]], height: int = 256) -> np.ndarray:
    """One RGB uint8 picture, one row per sample: (person | garment | noise condition | result [| ...])."""
    from fipviton.analysis.overlay import grid

    titles = ("person", "garment", "noise condition", "try-on", "ground truth")
    panels = [(titles[i] if i < len(titles) else "", image) for row in rows for i, image in enumerate(row)]
    return grid(panels, height=height, columns=len(rows[0]))


def _uint8(image: torch.Tensor) -> np.ndarray:
    return ((image.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def with_garment_detail(prediction: torch.Tensor, inputs: TryOnInputs, grid: tuple[int, int]) -> torch.Tensor:
    """The pipeline's sharp-garment mode on a batch: (B, 3, H, W) predictions in [-1, 1] with the warped
    garment's detail above the network's `grid` added where it surely lies (`fipviton.pipeline.add_garment_detail`)."""
    from fipviton.pipeline import add_garment_detail

    out = []
    for i in range(prediction.shape[0]):
        warped_mask = inputs.warped_mask[i, 0].float().cpu().numpy()
        detailed = add_garment_detail(_uint8(prediction[i].cpu()), _uint8(inputs.warped[i].cpu()), warped_mask, grid)
        out.append(torch.from_numpy(detailed).permute(2, 0, 1).float() / 127.5 - 1)
    return torch.stack(out).to(prediction.device)


@torch.no_grad()
def evaluate_paired(
    model: TryOnModel,
    data: str | Path,
    split: str = "test",
    limit: int | None = None,
    steps: int = 1,
    repaint_modes: tuple[bool, ...] = (False, True),
    batch_size: int = 8,
    cache_root: str | Path | None = None,
    warp_weights: str | Path | None = None,
    grid_rows: int = 8,
    seed: int = 0,
    st_lpips_limit: int | None = None,
    shrink_warp: tuple[int, float] | None = None,
    backdrops: int | None = None,
    mirror: bool = False,
    oracle_warp: bool = False,
    sharp_garment: bool = False,
    mirror_average: bool = False,
) -> tuple[dict[str, dict], np.ndarray]:
    """Paired metrics of `model` for each repaint mode ({"raw": ..., "repaint": ...}) and a sample grid.

    st_lpips_limit: ST-LPIPS (three VGG16 passes per image, the bulk of the cost on a CPU) only on the first N
    pairs; SSIM and PSNR on all. The count it was computed on is reported as `st_lpips_count`.
    shrink_warp: (erode_px, hem_fraction): every warped garment made smaller first (`shrink_warped`), so that
    it leaves holes in the agnostic region as an unpaired garment does; the scores then measure how well the
    network fills them (the ground truth says what belongs there).
    backdrops: a seed: every person's backdrop replaced by a `random_backdrop` drawn from (seed, pair index)
    (`replace_backdrop`), so the scores say how the network paints backdrops other than VITON's near-white.
    mirror: every pair mirrored, inputs and ground truth alike (left/right body parts swapped: the training
    flip). A network that learnt the task, not the side it sits on, scores the same either way.
    oracle_warp: the person's own garment region as the warped garment (`Augmentation.oracle_warp`): the scores
    a perfect warp would give this network.
    sharp_garment: the pipeline's sharp-garment mode on every output (`with_garment_detail`), so that it is scored
    without the rest of the pipeline (and with `oracle_warp`, with a perfect warp).
    mirror_average: the network run on each pair and on its mirror image, averaged (`TryOnModel.generate`).
    """
    from fipviton.losses.perceptual import STLPIPS
    from fipviton.tryon.cache import build_tryon_cache, warpnet_warper
    from fipviton.tryon.dataset import Augmentation, TryOnCacheDataset
    from fipviton.warp.cache import build_cache, cache_dir_for

    size = tuple(model.config.image_size)
    full = cache_dir_for(Path(data), split, size, Path(cache_root) if cache_root else None)
    partial = limit if limit is not None and not (full / "meta.json").is_file() else None
    warp_cache = build_cache(data, split, size=size, cache_root=cache_root, limit=partial)
    warper, tag = warpnet_warper(warp_weights)
    tryon_root = Path(cache_root) if cache_root else None
    tryon_cache = build_tryon_cache(warp_cache, warper, tag, cache_root=tryon_root)
    augmentation = Augmentation(
        flip_prob=1.0 if mirror else 0.0, fixed_shrink=shrink_warp, fixed_backdrops=backdrops, oracle_warp=oracle_warp
    )
    dataset = TryOnCacheDataset(warp_cache, tryon_cache, augmentation)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    lpips = STLPIPS().eval()
    device = model.device
    generator = torch.Generator(device=device).manual_seed(seed)
    scores: dict[str, dict[str, list[torch.Tensor]]] = {}
    network_seconds = 0.0
    rows: list[tuple[np.ndarray, ...]] = []
    for first in range(0, count, batch_size):
        items = [dataset[i] for i in range(first, min(count, first + batch_size))]
        inputs = TryOnCacheDataset.collate(items, device)
        tick = time.perf_counter()
        prediction = model.generate(inputs, steps=steps, generator=generator, mirror_average=mirror_average)
        network_seconds += time.perf_counter() - tick
        if sharp_garment:
            prediction = with_garment_detail(prediction, inputs, model.grid_size)
        assert inputs.person is not None
        target = inputs.person.cpu()
        with_lpips = st_lpips_limit is None or first < st_lpips_limit
        if with_lpips and st_lpips_limit is not None and first + inputs.batch_size > st_lpips_limit:
            keep = st_lpips_limit - first  # the last batch with LPIPS is cut to the limit
        else:
            keep = inputs.batch_size
        target_features = lpips.features(target[:keep].float().clamp(-1, 1)) if with_lpips else None
        inside = inputs.agnostic_mask.cpu() > 0.5
        on_garment = inputs.warped_mask.cpu() > 0.5
        regions = {"ssim_in_warped_garment": inside & on_garment, "ssim_in_rest_of_mask": inside & ~on_garment}
        truth_colour_error = warped_colour_error(target, inputs.warped.cpu(), inputs.warped_mask.cpu())
        for mode in repaint_modes:
            name = "repaint" if mode else "raw"
            scored = (repaint(prediction, inputs) if mode else prediction).cpu()
            values = image_metrics(scored, target, regions=regions)
            if target_features is not None:
                values["st_lpips"] = st_lpips_distance(scored[:keep], lpips, target_features)
            values["warped_colour_error"] = warped_colour_error(scored, inputs.warped.cpu(), inputs.warped_mask.cpu())
            values["truth_warped_colour_error"] = truth_colour_error
            for key, value in values.items():
                scores.setdefault(name, {}).setdefault(key, []).append(value)
        for i in range(min(inputs.batch_size, grid_rows - len(rows))):
            rows.append(
                (
                    _uint8(inputs.person[i].cpu()),
                    _uint8(torch.nn.functional.interpolate(inputs.garment[i : i + 1], size=size)[0].cpu()),
                    _uint8(inputs.noise_condition()[i].cpu()),
                    _uint8(prediction[i].cpu()),
                )
            )
    results = {}
    for name, values in scores.items():
        results[name] = {key: float(torch.cat(v).nanmean()) for key, v in values.items()}
        results[name].update(
            {
                "count": int(count),
                "st_lpips_count": int(count if st_lpips_limit is None else min(count, st_lpips_limit)),
                "seconds_per_image": network_seconds / max(1, count),
                "steps": steps,
                "repaint": name == "repaint",
                "resolution": f"{size[0]}x{size[1]}",
                "batch_size": batch_size,
                "shrink_warp": list(shrink_warp) if shrink_warp is not None else None,
                "backdrops": backdrops,
                "mirror": mirror,
                "oracle_warp": oracle_warp,
                "sharp_garment": sharp_garment,
                "mirror_average": mirror_average,
            }
        )
    return results, sample_grid(rows)


def evaluate_unpaired(
    data: str | Path,
    split: str = "test",
    limit: int = 20,
    steps: int = 1,
    tryon_weights: str | Path | None = None,
    warp_weights: str | Path | None = None,
    mirror_average: bool = False,
) -> tuple[dict, np.ndarray]:
    """Run the pipeline (with its post-processing) on the first `limit` unpaired pairs: timing, the garment's
    colour score (`warped_colour_error`, also per pair) and a grid.

    data: a dataset folder (its official unpaired list of `split`, with the dataset's own maps), or a photo
    folder with a `pairs.txt` (`fipviton.data.pairs.read_photo_pairs`: paths inside the folder, e.g. the
    in-the-wild photos or the bundled examples, `fipviton/examples`), analysed from the photos alone. A pair of a
    photo folder that the pipeline refuses (no person found, ...) is listed under "failed" with the reason.
    """
    from fipviton.data.pairs import PhotoPair, read_photo_pairs
    from fipviton.data.readers import open_dataset
    from fipviton.data.sample import Category, PairEntry
    from fipviton.errors import DatasetError, FipvitonError
    from fipviton.pipeline import TryOnPipeline

    data = Path(data)
    pipeline = TryOnPipeline.from_pretrained(
        warp=warp_weights, tryon=tryon_weights, steps=steps, mirror_average=mirror_average
    )
    listing = data / "pairs.txt"
    try:
        reader = open_dataset(data)  # DatasetError for a folder of no known layout
    except DatasetError as exc:
        if not listing.is_file():  # say why it is no dataset either: a broken dataset is the likelier mistake
            raise DatasetError(f"{exc}; nor is it a photo folder (no pairs.txt listing photo pairs in it)") from exc
        reader = None
    if reader is not None:
        items: list = reader.pairs(split, paired=False)[:limit]
    else:
        items = read_photo_pairs(listing, Category.UPPER_BODY, allow_subfolders=True)[:limit]

    def run(item: PairEntry | PhotoPair) -> TryOnResult:
        if reader is not None:
            return pipeline.run_sample(reader.load(split, item))
        return pipeline(data / item.person, data / item.garment, category=item.category)

    rows, seconds, per_pair, failed = [], [], [], []
    size = tuple(pipeline.tryon.config.image_size)
    for item in items:
        name = f"{item.person} + {item.garment}"
        try:
            result = run(item)
        except FipvitonError as exc:
            if reader is not None:
                raise
            failed.append({"pair": name, "error": str(exc)})
            continue
        seconds.append(result.timings["total"])
        per_pair.append({"pair": name, "warped_colour_error": float(_colour_error_of_result(result, size))})
        rows.append(
            (result.person, _fit(result.garment, result.person.shape[:2]), result.noise_condition, result.image)
        )
    if not rows:
        raise DatasetError(f"{data}: no pair could be run ({len(failed)} failed)")
    errors = [row["warped_colour_error"] for row in per_pair]
    summary = {
        "source": "dataset" if reader is not None else "photo folder",
        "count": len(per_pair),
        "seconds_per_image": float(np.median(seconds)) if seconds else float("nan"),
        "steps": steps,
        "mirror_average": mirror_average,
        "warped_colour_error": float(np.nanmean(errors)) if errors else float("nan"),
        "per_pair": per_pair,
        "failed": failed,
        "note": "unpaired: no ground truth (SSIM/PSNR/LPIPS do not apply); FID/KID need Inception weights",
    }
    return summary, sample_grid(rows)


def _colour_error_of_result(result: TryOnResult, size: tuple[int, int]) -> torch.Tensor:
    """`warped_colour_error` of a pipeline result's try-on output (`TryOnResult.generated`: the network's, with
    the garment detail the pipeline adds, before the post-processing) at `size`, the network's own."""

    def tensor(image: np.ndarray) -> torch.Tensor:
        small = _fit(image, size).astype(np.float32)
        return torch.from_numpy(small).reshape(1, size[0], size[1], -1).permute(0, 3, 1, 2)

    mask = tensor(result.warped_mask.astype(np.float32))
    return warped_colour_error(tensor(result.generated) / 127.5 - 1, tensor(result.warped) / 127.5 - 1, mask)[0]


def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
