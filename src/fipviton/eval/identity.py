"""Identity-preservation metrics (beyond the papers): how well a try-on keeps the regions that must not change.

Every score compares the try-on with the person's own photo inside one region, so it means the same in the
paired and the unpaired setting (in the unpaired setting these are the only per-pair fidelity scores):

- `face_hair`:        the FACE and HAIR labels of the person's parsing;
- `other_half`:       the clothes the new garment does not replace: for an upper_body garment the lower
                      body (BOTTOM, both legs, SHOES); for lower_body the UPPER clothes; for dresses the SHOES;
- `skin`:             bare skin (NECK, arms, legs) that the warped new garment does not cover (warped mask
                      <= 0.5): what the conditional post-processing restores;
- `outside_agnostic`: every pixel outside the agnostic (repainted) region.

Regions overlap (face and hair lie mostly outside the agnostic region); each is scored on its own.

- masked SSIM: torchmetrics' SSIM map (RGB in [0, 1], data_range 1, Gaussian 11x11) of the two images, both
  set to white outside the region, averaged over the region's pixels: the `fipviton.warp.evaluate.isolated_region_ssim`
  convention, so the window never compares pixels outside the region;
- masked PSNR: 10 log10(1 / MSE) with the MSE over the region's pixels (all channels, [0, 1]); identical
  pixels (MSE 0, e.g. an exact paste back) score `PSNR_CAP` (100 dB) so that means stay finite.

An empty region (e.g. no visible legs) gives None for that pair, and is left out of the means.
"""

from __future__ import annotations

import numpy as np
import torch

from fipviton.data.sample import Category
from fipviton.labels import Label

IDENTITY_REGIONS = ("face_hair", "other_half", "skin", "outside_agnostic")
PSNR_CAP = 100.0
FACE_HAIR = (Label.FACE, Label.HAIR)
SKIN = (Label.NECK, Label.LEFT_ARM, Label.RIGHT_ARM, Label.LEFT_LEG, Label.RIGHT_LEG)
OTHER_HALF: dict[Category, tuple[Label, ...]] = {
    Category.UPPER_BODY: (Label.BOTTOM, Label.LEFT_LEG, Label.RIGHT_LEG, Label.SHOES),
    Category.LOWER_BODY: (Label.UPPER,),
    Category.DRESSES: (Label.SHOES,),
}


def identity_regions(
    parsing: np.ndarray, agnostic_mask: np.ndarray, warped_mask: np.ndarray, category: Category | str
) -> dict[str, np.ndarray]:
    """The four regions (name -> (H, W) bool) of one person.

    parsing (H, W) uint8 internal labels; agnostic_mask (H, W) bool, the repainted region; warped_mask (H, W)
    float in [0, 1], where the warped new garment lies; category: the new garment's category.
    """
    covered = np.asarray(warped_mask) > 0.5
    return {
        "face_hair": np.isin(parsing, FACE_HAIR),
        "other_half": np.isin(parsing, OTHER_HALF[Category(category)]),
        "skin": np.isin(parsing, SKIN) & ~covered,
        "outside_agnostic": ~np.asarray(agnostic_mask, dtype=bool),
    }


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].float() / 127.5 - 1


def masked_psnr(prediction: torch.Tensor, target: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Per-sample PSNR (B,) in dB over the region's pixels, capped at `PSNR_CAP`; NaN for an empty region.

    prediction, target (B, 3, H, W) in [0, 1]; region (B, 1, H, W) in {0, 1}.
    """
    weight = region.to(prediction.dtype).expand_as(prediction)
    area = weight.flatten(1).sum(1)
    mse = ((prediction - target).pow(2) * weight).flatten(1).sum(1) / area.clamp(min=1)
    psnr = (10 * torch.log10(1.0 / mse.clamp(min=10 ** (-PSNR_CAP / 10)))).clamp(max=PSNR_CAP)
    return torch.where(area > 0, psnr, torch.full_like(psnr, float("nan")))


def identity_scores(
    prediction: np.ndarray, person: np.ndarray, regions: dict[str, np.ndarray]
) -> dict[str, dict[str, float | None]]:
    """Masked SSIM and PSNR of the try-on against the person in each region: name -> {"ssim", "psnr"}.

    prediction, person (H, W, 3) uint8 RGB of the same size; regions name -> (H, W) bool. Empty regions give
    None for both scores.
    """
    from fipviton.losses.ssim import unit_range
    from fipviton.warp.evaluate import isolated_region_ssim

    a = _to_tensor(prediction)
    b = _to_tensor(person)
    scores: dict[str, dict[str, float | None]] = {}
    for name, mask in regions.items():
        if not mask.any():
            scores[name] = {"ssim": None, "psnr": None}
            continue
        region = torch.from_numpy(mask)[None, None].float()
        ssim = float(isolated_region_ssim(a, b, region)[0])
        psnr = float(masked_psnr(unit_range(a), unit_range(b), region)[0])
        scores[name] = {"ssim": ssim, "psnr": psnr}
    return scores
