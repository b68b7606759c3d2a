"""Warping one dataset sample (or any person + garment with parsing and keypoints) at full resolution.

The network runs at its training size (e.g. 128x96); the predicted flow is upsampled to the person's
resolution and samples the full-resolution garment photo directly (`fipviton.warp.flow`), so a 1024x768
garment comes out sharp instead of as an enlarged low-resolution warp.
"""

from __future__ import annotations

import numpy as np
import torch

from fipviton.data.sample import TryOnSample
from fipviton.warp.cache import derived_maps
from fipviton.warp.conditioning import image_to_tensor, mask_to_tensor, person_input_from_maps
from fipviton.warp.model import WarpNet, WarpOutput


def sample_inputs(sample: TryOnSample, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(garment (1, 3, h, w) in [-1, 1], garment mask (1, 1, h, w), person input (1, 46, H, W) at `size`).

    The garment keeps its own resolution. A sample without a garment mask gets an all-ones mask.
    """
    if sample.parsing is None or sample.keypoints is None:
        raise ValueError(f"{sample.person_id}: the warping module needs a parsing and keypoints")
    agnostic, parts = derived_maps(sample)
    person = person_input_from_maps(parts, agnostic, sample.keypoints, size)
    garment = image_to_tensor(sample.garment)[None]
    if sample.garment_mask is not None:
        mask = mask_to_tensor(sample.garment_mask)[None]
    else:
        mask = torch.ones(1, 1, *sample.garment.shape[:2])
    return garment, mask, person


@torch.no_grad()
def warp_sample(model: WarpNet, sample: TryOnSample, size: tuple[int, int] | None = None) -> WarpOutput:
    """Warp the sample's garment onto its person; outputs at `size` (default: the person's resolution)."""
    garment, mask, person = sample_inputs(sample, tuple(model.config.size))
    size = size or (int(sample.person.shape[0]), int(sample.person.shape[1]))
    return model.eval()(garment, mask, person, size=size)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((image[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
