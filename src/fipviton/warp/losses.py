"""Training losses of the warping module.

- mask: L1 between the warped (visible) garment mask and the garment region of the person's parsing, at the
  final level and, with smaller weights, with each coarser level's flow (deep supervision speeds up the
  coarse-to-fine training);
- garment: L1 + VGG perceptual between the warped garment and the person's garment region on white
  (the person's pixels inside the region, white outside, as the warped garment is white outside its mask);
- smoothness: total variation of every level's flow;
- ssim (optional, off by default): 1 - SSIM of the garment warped by the pyramid's flow against that target,
  averaged over the garment region, with the SSIM map of `fipviton.warp.evaluate.isolated_region_ssim`
  (`fipviton.losses.ssim`). Why: the warp only resamples the garment, so it cannot trade texture for a smooth
  average; the term asks it to move prints and stripes to where the photo has them, which L1 (blind to a stripe
  one period off) and the shift-tolerant perceptual loss do not. Why the pyramid's flow (the finest level at half
  the output size or less, upsampled) and not the final one: SSIM's gradient on a print is as fine as the print,
  and on a per-pixel flow (the full-size level) it jitters the flow from pixel to pixel and scrambles stripes
  (seen in a run with the term on the final flow, 2026-11-27); the coarser flow can only move whole patches.
  Outcome (warp card, "More CPU training, and an SSIM term: tried, not shipped"): on the pyramid's flow too it
  raised the score by smearing stripes into bands, so it stays off; it is kept to reproduce that finding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fipviton.losses.perceptual import PerceptualLoss
from fipviton.losses.ssim import masked_ssim
from fipviton.warp.flow import total_variation, upsample_flow, warp
from fipviton.warp.model import WarpOutput, warp_on_white


@dataclass
class WarpLossWeights:
    mask: float = 1.0
    l1: float = 1.0
    perceptual: float = 1.0
    smoothness: float = 0.2
    deep_supervision: float = 0.25  # weight of each coarser level's mask loss
    ssim: float = 0.0  # weight of (1 - SSIM) inside the garment region; 0 = off (the shipped recipe)
    perceptual_layers: int = 2  # VGG16 slices used (relu1_2, relu2_2 by default; 5 = all)
    # The VGG costs several times the warping network on a CPU: compute it on the first N samples of the
    # batch only (0 = all). The estimate stays unbiased (the batch is shuffled), only noisier.
    perceptual_samples: int = 0


def garment_target(person: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """The person's garment on white: person (B, 3, H, W) in [-1, 1], region (B, 1, H, W) in {0, 1}."""
    return person * region + (1 - region)


class WarpLoss(nn.Module):
    """forward(output, garment_mask, person, region, garment=None) -> (total loss, dict of float terms).

    output: `WarpOutput` at (H, W); garment_mask (B, 1, H, W) the unwarped garment mask at the same size as
    output (used for the coarse levels); person (B, 3, H, W) in [-1, 1]; region (B, 1, H, W) the garment
    region of the parsing in {0, 1}; garment (B, 3, H, W) in [-1, 1], the unwarped garment at the same size
    (needed by the SSIM term only).
    """

    def __init__(self, weights: WarpLossWeights | None = None, perceptual: PerceptualLoss | None = None) -> None:
        super().__init__()
        self.weights = weights or WarpLossWeights()
        if perceptual is None and self.weights.perceptual > 0:
            perceptual = PerceptualLoss(num_layers=self.weights.perceptual_layers)
        self.perceptual = perceptual

    def forward(
        self,
        output: WarpOutput,
        garment_mask: torch.Tensor,
        person: torch.Tensor,
        region: torch.Tensor,
        garment: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        w = self.weights
        size = tuple(output.mask.shape[-2:])
        terms: dict[str, torch.Tensor] = {}
        terms["mask"] = F.l1_loss(output.mask, region)
        coarse = output.mask.new_zeros(())
        for flow in output.flows[:-1]:
            level_mask = warp(garment_mask, upsample_flow(flow, size), padding_mode="zeros")
            if output.visibility is not None:
                level_mask = level_mask * output.visibility
            coarse = coarse + F.l1_loss(level_mask, region)
        terms["mask_coarse"] = coarse
        target = garment_target(person, region)
        terms["l1"] = F.l1_loss(output.garment, target)
        if self.perceptual is not None and w.perceptual > 0:
            n = w.perceptual_samples or target.shape[0]
            terms["perceptual"] = self.perceptual(output.garment[:n], target[:n])
        else:
            terms["perceptual"] = output.mask.new_zeros(())
        terms["smoothness"] = sum(total_variation(flow) for flow in output.flows)
        if w.ssim > 0:
            if garment is None:
                raise ValueError("the SSIM term needs the unwarped garment")
            # On white outside the region, as the evaluation scores it (the mask terms train the outline).
            pyramid = garment_target(pyramid_warp(output, garment, garment_mask), region)
            terms["ssim"] = 1.0 - masked_ssim(pyramid, target, region)
        else:
            terms["ssim"] = output.mask.new_zeros(())
        total = (
            w.mask * terms["mask"]
            + w.deep_supervision * terms["mask_coarse"]
            + w.l1 * terms["l1"]
            + w.perceptual * terms["perceptual"]
            + w.smoothness * terms["smoothness"]
            + w.ssim * terms["ssim"]
        )
        return total, {key: float(value.detach()) for key, value in terms.items()} | {"total": float(total.detach())}


def pyramid_warp(output: WarpOutput, garment: torch.Tensor, garment_mask: torch.Tensor) -> torch.Tensor:
    """The garment (B, 3, H, W) warped by the finest flow of `output` at half its size (H, W) or less, on white.

    That flow is upsampled bilinearly, so the result moves whole patches of the garment; the visibility map
    applies as in the network's output. garment in [-1, 1], garment_mask (B, 1, H, W) in [0, 1].
    """
    size = tuple(output.mask.shape[-2:])
    coarse = [flow for flow in output.flows if 2 * flow.shape[-2] <= size[0]] or output.flows[:1]
    return warp_on_white(garment, garment_mask, upsample_flow(coarse[-1], size), output.visibility)[0]
