"""Training loss of the try-on module: L1 + VGG perceptual on the x0 prediction.

* L1 on the prediction against the ground truth, in the diffusion space (pixels in [-1, 1]; latents in
  latent space), the usual reconstruction term of x0-predicting diffusion and of the VTON refiners.
* Perceptual: `fipviton.losses.perceptual.PerceptualLoss` (shift-tolerant VGG16 from stlpips-pytorch) on the
  predicted image (decoded through the frozen VAE in latent space) against the ground truth. On a 2-core
  CPU VGG16 at 256x192 costs several times our UNet, so it can be computed on a crop
  (`perceptual_crop`, (h, w)) centred on a random pixel of the agnostic region, where the network has to
  generate: same supervision of texture at full resolution, a fraction of the cost.

One optional term, off by default: `mask_weight` > 0 adds an L1 inside the agnostic region only (weighted by
the mask, normalised by its area). Everything outside that region is copied back by the post-processing,
so a model trained for the pasted-back result should spend its capacity inside it; it is a knob for that
experiment, not part of the shipped recipe.

A second optional term: `ssim_weight` > 0 adds (1 - SSIM) averaged over the agnostic region, with the SSIM map of
the evaluation (torchmetrics, RGB in [0, 1], Gaussian 11x11, sigma 1.5). Why: where the warp leaves a print a few
pixels off, the L1-optimal prediction (the per-pixel median of the plausible answers) is not the one with the best
local structure and contrast, which is what SSIM, the benchmark's metric, scores (Zhao et al., "Loss Functions
for Image Restoration with Neural Networks", 2017, train on L1 + (MS-)SSIM for this reason). Pixels outside the
region are pasted back by the post-processing, so only the region counts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fipviton.losses.ssim import masked_ssim


def random_crop_boxes(
    mask: torch.Tensor, crop: tuple[int, int], generator: torch.Generator | None = None
) -> list[tuple[int, int]]:
    """Top-left corners of one (h, w) crop per sample, centred on a random pixel of `mask` (B, 1, H, W).

    Samples with an empty mask get a centred crop. Crops are clipped to the image.
    """
    b, _, height, width = mask.shape
    ch, cw = min(crop[0], height), min(crop[1], width)
    boxes = []
    for i in range(b):
        ys, xs = torch.nonzero(mask[i, 0] > 0.5, as_tuple=True)
        if len(ys) == 0:
            cy, cx = height // 2, width // 2
        else:
            k = int(torch.randint(len(ys), (1,), generator=generator))
            cy, cx = int(ys[k]), int(xs[k])
        top = max(0, min(height - ch, cy - ch // 2))
        left = max(0, min(width - cw, cx - cw // 2))
        boxes.append((top, left))
    return boxes


def crop(images: torch.Tensor, boxes: list[tuple[int, int]], size: tuple[int, int]) -> torch.Tensor:
    h, w = min(size[0], images.shape[-2]), min(size[1], images.shape[-1])
    return torch.stack([images[i, :, top : top + h, left : left + w] for i, (top, left) in enumerate(boxes)])


class TryOnLoss(nn.Module):
    """`forward(prediction, target, image_prediction, image_target, agnostic_mask)` -> (total, parts dict).

    prediction/target: the diffusion variable (B, c, h, w). image_prediction/image_target: (B, 3, H, W) in
    [-1, 1] (the same tensors in pixel space; the decoded prediction in latent space), used by the
    perceptual term only. agnostic_mask: (B, 1, H, W) {0, 1}.
    """

    def __init__(
        self,
        l1_weight: float = 1.0,
        perceptual_weight: float = 0.0,
        perceptual_layers: int = 4,
        perceptual_crop: tuple[int, int] | None = None,
        mask_weight: float = 0.0,
        ssim_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.ssim_weight = ssim_weight
        self.l1_weight = l1_weight
        self.perceptual_weight = perceptual_weight
        self.perceptual_crop = tuple(perceptual_crop) if perceptual_crop else None
        self.mask_weight = mask_weight
        self.perceptual = None
        if perceptual_weight > 0:
            from fipviton.losses.perceptual import PerceptualLoss

            self.perceptual = PerceptualLoss(num_layers=perceptual_layers)
            self.perceptual.requires_grad_(False)

    @property
    def needs_image(self) -> bool:
        return self.perceptual is not None or self.ssim_weight > 0

    def forward(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        image_prediction: torch.Tensor | None = None,
        image_target: torch.Tensor | None = None,
        agnostic_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        prediction = prediction.float()
        target = target.float()
        parts: dict[str, float] = {}
        l1 = F.l1_loss(prediction, target)
        total = self.l1_weight * l1
        parts["l1"] = float(l1.detach())
        if self.mask_weight > 0 and agnostic_mask is not None:
            mask = F.interpolate(agnostic_mask.float(), size=prediction.shape[-2:], mode="area")
            inside = ((prediction - target).abs() * mask).sum() / (mask.sum() * prediction.shape[1]).clamp_min(1.0)
            total = total + self.mask_weight * inside
            parts["l1_mask"] = float(inside.detach())
        if self.ssim_weight > 0:
            if image_prediction is None or image_target is None:
                raise ValueError("the SSIM term needs image_prediction and image_target")
            dissimilarity = 1.0 - masked_ssim(image_prediction.float(), image_target.float(), agnostic_mask)
            total = total + self.ssim_weight * dissimilarity
            parts["ssim"] = float(1.0 - dissimilarity.detach())
        if self.perceptual is not None:
            if image_prediction is None or image_target is None:
                raise ValueError("the perceptual term needs image_prediction and image_target")
            pred_img, target_img = image_prediction.float(), image_target.float()
            if self.perceptual_crop is not None:
                if agnostic_mask is None:
                    agnostic_mask = torch.ones_like(target_img[:, :1])
                boxes = random_crop_boxes(agnostic_mask, self.perceptual_crop, generator)
                pred_img = crop(pred_img, boxes, self.perceptual_crop)
                target_img = crop(target_img, boxes, self.perceptual_crop)
            perceptual = self.perceptual(pred_img, target_img)
            total = total + self.perceptual_weight * perceptual
            parts["perceptual"] = float(perceptual.detach())
        parts["total"] = float(total.detach())
        return total, parts
