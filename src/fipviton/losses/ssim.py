"""SSIM inside a region: the one map behind the evaluations' region scores and the SSIM loss terms.

The map is torchmetrics' `structural_similarity_index_measure` with `return_full_image=True` (RGB images in
[0, 1], data_range 1, Gaussian 11x11 window, sigma 1.5: the convention of the benchmark numbers we compare
with), averaged over RGB. A region score is that map's mean over the region's pixels, per image.

Used by `fipviton.tryon.evaluate` (SSIM inside the warped garment and the rest of the mask), the warp
evaluation (`fipviton.warp.evaluate.isolated_region_ssim`) and the optional SSIM terms of the try-on and warp
losses, so a loss term and the score it is meant to raise are the same number.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def unit_range(image: torch.Tensor) -> torch.Tensor:
    """An image in [-1, 1] as float32 in [0, 1] (clamped): the range torchmetrics' SSIM and PSNR are called on."""
    return ((image.float() + 1) / 2).clamp(0, 1)


def ssim_map(prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-image SSIM (B,), SSIM map (B, 1, H, W) averaged over RGB) of two (B, 3, H, W) images in [-1, 1].

    Both images are clamped to [-1, 1] and mapped to [0, 1]. Differentiable. The per-image SSIM is
    torchmetrics' own reduction (the map's mean inside the border that its window leaves).
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    per_image, full = structural_similarity_index_measure(
        unit_range(prediction), unit_range(target), data_range=1.0, reduction="none", return_full_image=True
    )
    return per_image, full.mean(1, keepdim=True)


def region_mean(values: torch.Tensor, region: torch.Tensor, empty: float | None) -> torch.Tensor:
    """Per-image mean (B,) of `values` (B, 1, H, W) weighted by `region` (B, 1, h, w) in [0, 1].

    A region at another size is area-resized to the map's. `empty` is the score of an image whose region is
    empty: a number (NaN for "not applicable", 1 for "nothing to get wrong"), or None for the whole image's mean.
    """
    weight = region.to(values.dtype)
    if weight.shape[-2:] != values.shape[-2:]:
        weight = F.interpolate(weight, size=values.shape[-2:], mode="area")
    area = weight.sum((1, 2, 3))
    mean = (values * weight).sum((1, 2, 3)) / area.clamp(min=1e-6)
    fallback = values.mean((1, 2, 3)) if empty is None else torch.full_like(mean, empty)
    return torch.where(area > 0, mean, fallback)


def masked_ssim(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Differentiable SSIM of two (B, 3, H, W) images in [-1, 1] averaged over `mask` (B, 1, H, W) in [0, 1].

    No mask (or an empty one) averages over the whole image. Returns a scalar tensor, the mean over the batch:
    a loss term is `1 - masked_ssim(...)`.
    """
    _, values = ssim_map(prediction, target)
    if mask is None:
        return values.mean()
    return region_mean(values, mask, empty=None).mean()


__all__ = ["masked_ssim", "region_mean", "ssim_map", "unit_range"]
