"""Inputs of the warping network: the person-branch conditioning maps and the garment-branch input.

Person branch (`PERSON_CHANNELS` = 15 + 13 + 18 = 46 channels, float in [0, 1]):
  - the dense body-part map, one-hot over `fipviton.bodyparts.BodyPart` (15),
  - the agnostic parsing (the parsing with the region to repaint removed), one-hot over `Label` (13),
  - one Gaussian heatmap per keypoint (18, COCO-18 order; all-zero for a missing keypoint).
Garment branch (`GARMENT_CHANNELS` = 4): the garment in [-1, 1] and its mask in [0, 1].

Label maps are resized with nearest neighbour before the one-hot encoding; heatmaps are drawn directly at
the requested size from keypoints given in normalised coordinates, so no map is ever blurred by resizing.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fipviton.bodyparts import NUM_BODY_PARTS
from fipviton.keypoints import NUM_KEYPOINTS
from fipviton.labels import NUM_LABELS, Label

PERSON_CHANNELS = NUM_BODY_PARTS + NUM_LABELS + NUM_KEYPOINTS
GARMENT_CHANNELS = 4
# Heatmap sigma as a fraction of the image height (about 3 px at 256 px, as in the CP-VTON pose maps).
HEATMAP_SIGMA = 0.012


def garment_region(parsing: torch.Tensor | np.ndarray, label: Label = Label.UPPER) -> torch.Tensor | np.ndarray:
    """The garment region of a parsing map: float mask (same shape) with 1 where the label is `label`."""
    if isinstance(parsing, np.ndarray):
        return (parsing == int(label)).astype(np.float32)
    return (parsing == int(label)).float()


def pose_heatmaps(keypoints: torch.Tensor, size: tuple[int, int], sigma: float = HEATMAP_SIGMA) -> torch.Tensor:
    """Gaussian heatmaps (B, 18, H, W) in [0, 1] from keypoints (B, 18, 3) with normalised x, y in [0, 1].

    A keypoint with confidence <= 0 gives an all-zero map.
    """
    height, width = size
    device = keypoints.device
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    kx = keypoints[..., 0, None, None].float()
    ky = keypoints[..., 1, None, None].float()
    aspect = width / height  # sigma is isotropic in pixels: scale the x distance to y units
    d2 = ((xs[None, None, None, :] - kx) * aspect) ** 2 + (ys[None, None, :, None] - ky) ** 2
    maps = torch.exp(-d2 / (2 * sigma**2))
    present = (keypoints[..., 2] > 0).float()[..., None, None]
    return maps * present


def _one_hot(labels: torch.Tensor, classes: int, size: tuple[int, int]) -> torch.Tensor:
    """(B, H0, W0) integer map -> (B, classes, H, W) float one-hot at `size` (nearest-neighbour resize)."""
    labels = labels.long().clamp(0, classes - 1)
    if tuple(labels.shape[-2:]) != tuple(size):
        labels = F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()
    return F.one_hot(labels, classes).permute(0, 3, 1, 2).float()


def person_conditioning(
    body_parts: torch.Tensor,
    agnostic_parsing: torch.Tensor,
    keypoints: torch.Tensor,
    size: tuple[int, int],
    use_body_parts: bool = True,
) -> torch.Tensor:
    """The person-branch input (B, 46, H, W) at `size`.

    body_parts (B, H0, W0) integer `BodyPart` map; agnostic_parsing (B, H0, W0) integer `Label` map;
    keypoints (B, 18, 3) with x, y normalised to [0, 1] and a confidence. `use_body_parts=False` zeroes the
    body-part channels (the dense-pose ablation) without changing the channel count.
    """
    parts = _one_hot(body_parts, NUM_BODY_PARTS, size)
    if not use_body_parts:
        parts = torch.zeros_like(parts)
    parsing = _one_hot(agnostic_parsing, NUM_LABELS, size)
    heatmaps = pose_heatmaps(keypoints, size)
    return torch.cat((parts, parsing, heatmaps), dim=1)


def person_input_from_maps(
    body_parts: np.ndarray, agnostic_parsing: np.ndarray, keypoints: np.ndarray, size: tuple[int, int]
) -> torch.Tensor:
    """The person-branch input (1, 46, h, w) at `size` from one person's maps at the photo's resolution.

    body_parts, agnostic_parsing: (H, W) integer maps; keypoints (18, 3) with x, y in photo pixels.
    """
    height, width = body_parts.shape
    return person_conditioning(
        torch.from_numpy(body_parts.astype(np.int64))[None],
        torch.from_numpy(agnostic_parsing.astype(np.int64))[None],
        torch.from_numpy(normalise_keypoints(keypoints, width, height))[None],
        size=tuple(size),
    )


def normalise_keypoints(keypoints: np.ndarray, width: int, height: int) -> np.ndarray:
    """(18, 3) pixel keypoints of an image of (width, height) -> x, y in [0, 1] (missing points stay 0)."""
    out = keypoints.astype(np.float32).copy()
    present = out[:, 2] > 0
    out[present, 0] = (out[present, 0] + 0.5) / width
    out[present, 1] = (out[present, 1] + 0.5) / height
    out[~present] = 0.0
    return out


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.array(image, dtype=np.uint8, order="C")).permute(2, 0, 1).float() / 127.5 - 1.0


def mask_to_tensor(mask: np.ndarray) -> torch.Tensor:
    """(H, W) bool/uint8 -> (1, H, W) float in [0, 1]."""
    return torch.from_numpy(np.array(mask, order="C")).float()[None].clamp(0, 1)


# The parsing label that marks where the garment of each category is worn (the warped-mask target).
CATEGORY_LABEL: dict[str, Label] = {
    "upper_body": Label.UPPER,
    "lower_body": Label.BOTTOM,
    "dresses": Label.DRESS,
}
