"""Evaluation of the warping module (`fipviton eval warp`) and of the bounding-box baseline.

On the paired list of a split (the person wears the garment), at the dataset's resolution (256x192 for
VITON), with the garment region R = the parsing's label for the category (`Label.UPPER` for upper_body):

- mask_iou: per pair, IoU between the warped mask thresholded at 0.5 and R (1 when both are empty), averaged
  over pairs. This is the "warped-mask IoU" of CP-VTON+ (which reports 0.8425 on the same test set).
- ssim: per pair, the SSIM map (torchmetrics, RGB, data_range 1, Gaussian 11x11 window) between the warped
  garment and the person, both on white outside R (images mapped from [-1, 1] to [0, 1]), averaged over the
  pixels of R; then averaged over pairs. It measures the texture alignment inside the region the garment
  must fill (a whole-image SSIM would mostly score the shared white background).

The "box" baseline: the garment (cropped to its mask's bounding box) resized to the bounding box of R, with
its mask resized the same way. It knows the target box from the ground-truth parsing, so it is an optimistic
rigid baseline.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from fipviton.warp.cache import CachedBatch, WarpCache, build_cache, cache_dir_for
from fipviton.warp.conditioning import person_conditioning
from fipviton.warp.losses import garment_target
from fipviton.warp.model import WarpNet, WarpOutput


def mask_iou(prediction: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Per-sample IoU (B,) of prediction (B, 1, H, W) > threshold against target (B, 1, H, W) > 0.5."""
    a = prediction > threshold
    b = target > 0.5
    intersection = (a & b).flatten(1).sum(1).float()
    union = (a | b).flatten(1).sum(1).float()
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))


def isolated_region_ssim(garment: torch.Tensor, person: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Per-sample SSIM (B,) of the warped garment against the person, averaged over the pixels of `region`.

    garment, person (B, 3, H, W) in [-1, 1]; region (B, 1, H, W) in {0, 1}. Both images are put on white
    outside the region and mapped to [0, 1]; torchmetrics computes the SSIM map (RGB, data_range 1, Gaussian
    11x11), whose mean over the region's pixels (all channels) is the score. A whole-image mean would be
    dominated by the white background that both images share. An empty region scores 1. Unlike
    `fipviton.tryon.evaluate.ssim_inside_regions`, nothing outside the region reaches the SSIM windows.
    """
    from fipviton.losses.ssim import region_mean, ssim_map

    _, values = ssim_map(garment_target(garment.float(), region), garment_target(person.float(), region))
    return region_mean(values, region, empty=1.0)


def box_baseline(batch: CachedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The garment resized into the bounding box of the target region: (garment (B,3,H,W), mask (B,1,H,W))."""
    out_garment = torch.ones_like(batch.person)
    out_mask = torch.zeros_like(batch.region)
    for i in range(batch.person.shape[0]):
        target_box = _bbox(batch.region[i, 0])
        source_box = _bbox(batch.garment_mask[i, 0])
        if target_box is None:
            continue
        if source_box is None:
            source_box = (0, batch.garment.shape[-2], 0, batch.garment.shape[-1])
        ty0, ty1, tx0, tx1 = target_box
        sy0, sy1, sx0, sx1 = source_box
        size = (ty1 - ty0, tx1 - tx0)
        crop = batch.garment[i : i + 1, :, sy0:sy1, sx0:sx1]
        crop_mask = batch.garment_mask[i : i + 1, :, sy0:sy1, sx0:sx1]
        resized = F.interpolate(crop, size=size, mode="bilinear", align_corners=False, antialias=True)
        resized_mask = F.interpolate(crop_mask, size=size, mode="bilinear", align_corners=False, antialias=True)
        out_mask[i, :, ty0:ty1, tx0:tx1] = resized_mask[0]
        out_garment[i, :, ty0:ty1, tx0:tx1] = resized[0] * resized_mask[0] + (1 - resized_mask[0])
    return out_garment, out_mask


def _bbox(mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    ys = torch.nonzero(mask.any(dim=1)).flatten()
    xs = torch.nonzero(mask.any(dim=0)).flatten()
    if len(ys) == 0:
        return None
    return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1


@torch.no_grad()
def predict(model: WarpNet, batch: CachedBatch) -> WarpOutput:
    """Warp a cached batch with `model`: flow at the network's size, garment sampled at the cache's size."""
    size = tuple(batch.person.shape[-2:])
    net_size = tuple(model.config.size)
    person_input = person_conditioning(batch.body_parts, batch.agnostic, batch.keypoints, net_size)
    return model(batch.garment, batch.garment_mask, person_input, size=size)


def evaluate_warp(
    data: str | Path,
    split: str = "test",
    weights: str | Path | None = None,
    baseline: str | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    cache_root: str | Path | None = None,
) -> dict:
    """Metrics of a warping model (default: the shipped weights) or of a baseline ("box"); see module doc."""
    full = cache_dir_for(Path(data), split, (256, 192), Path(cache_root) if cache_root else None)
    # A partial evaluation reuses the full cache when it exists, else caches only the pairs it needs.
    partial = limit if limit is not None and not (full / "meta.json").is_file() else None
    cache_dir = build_cache(data, split, cache_root=cache_root, limit=partial)
    dataset = WarpCache(cache_dir)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    model = None
    if baseline is None:
        model = WarpNet.from_pretrained(weights)
    elif baseline != "box":
        raise ValueError(f"unknown baseline {baseline!r}")
    ious: list[torch.Tensor] = []
    ssims: list[torch.Tensor] = []
    for start in range(0, count, batch_size):
        batch = WarpCache.collate([dataset[i] for i in range(start, min(count, start + batch_size))])
        if model is not None:
            output = predict(model, batch)
            garment, mask = output.garment, output.mask
        else:
            garment, mask = box_baseline(batch)
        ious.append(mask_iou(mask, batch.region))
        ssims.append(isolated_region_ssim(garment, batch.person, batch.region))
    iou = torch.cat(ious) if ious else torch.zeros(0)
    ssim = torch.cat(ssims) if ssims else torch.zeros(0)
    height, width = dataset.arrays["person"].shape[1:3]
    return {
        "method": "box baseline"
        if model is None
        else f"warp ({'cross-attention' if model.config.cross_attention else 'no cross-attention'})",
        "weights": None if model is None else str(weights or "shipped"),
        "split": split,
        "resolution": f"{height}x{width}",
        "mask_iou": float(iou.mean()) if len(iou) else float("nan"),
        "ssim": float(ssim.mean()) if len(ssim) else float("nan"),
        "count": int(count),
    }


def export_checkpoint(checkpoint: str | Path, out: str | Path, use_ema: bool = True) -> Path:
    """Write a `save_pretrained` folder from a training checkpoint (its EMA weights by default)."""
    import json

    from safetensors.torch import load_file

    from fipviton.warp.model import WarpConfig

    checkpoint = Path(checkpoint)
    state = json.loads((checkpoint / "state.json").read_text())
    model = WarpNet(WarpConfig.from_dict(state["meta"]["config"]))
    weights = load_file(str(checkpoint / "model.safetensors"))
    prefix = "ema." if use_ema and any(k.startswith("ema.") for k in weights) else ""
    model.load_state_dict({k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix) == bool(prefix)})
    model.save_pretrained(out)
    return Path(out)


def summary_rows(results: list[dict]) -> str:
    """A Markdown table of evaluation results."""
    lines = ["| method | mask IoU | SSIM | pairs |", "|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['method']} | {r['mask_iou']:.4f} | {r['ssim']:.4f} | {r['count']} |")
    return "\n".join(lines)


__all__ = ["box_baseline", "evaluate_warp", "export_checkpoint", "isolated_region_ssim", "mask_iou", "summary_rows"]
