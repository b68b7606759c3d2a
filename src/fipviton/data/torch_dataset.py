"""A torch `Dataset` over a dataset reader: fixed-size tensors, optional flip augmentation.

Each item is a dict of tensors (H, W = the target size):

| key              | shape     | dtype   | values                                                            |
|------------------|-----------|---------|-------------------------------------------------------------------|
| person           | (3, H, W) | float32 | RGB in [-1, 1]                                                    |
| garment          | (3, H, W) | float32 | RGB in [-1, 1], resized or letterboxed (white padding)            |
| garment_mask     | (1, H, W) | float32 | {0, 1}; all 0 when `has_garment_mask` is False                    |
| parsing          | (H, W)    | int64   | internal labels `fipviton.labels.Label`; all 0 when absent        |
| body_parts       | (H, W)    | int64   | `fipviton.bodyparts.BodyPart`; all 0 when absent                  |
| keypoints        | (18, 3)   | float32 | x, y in target pixels, confidence in [0, 1]; all 0 when absent    |
| has_garment_mask | ()        | bool    | whether the dataset had a garment mask for this pair              |
| has_parsing      | ()        | bool    | whether `parsing` is real                                         |
| has_body_parts   | ()        | bool    | whether `body_parts` is real                                      |
| has_keypoints    | ()        | bool    | whether `keypoints` is real                                       |
| paired           | ()        | bool    | the garment is the one the person wears                           |
| flipped          | ()        | bool    | the flip augmentation was applied                                 |
| category         | ()        | int64   | index into `list(Category)` (0 upper, 1 lower, 2 dresses)         |
| index            | ()        | int64   | the pair's index in this dataset                                  |
| person_id, garment_id, dataset | str |  | identifiers (collated to lists of str)                          |

Missing maps are zero tensors plus a `has_*` flag, so the default `collate_fn` always works; losses should
weight by the flags. Resizing: person and garment images use area interpolation when shrinking and bilinear
when enlarging; label maps and masks use nearest. The flip mirrors person, garment, garment mask, parsing
(swapping left/right labels), body parts (swapping parts) and keypoints (swapping points) together.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from fipviton.bodyparts import flip_parts
from fipviton.data.readers import DatasetReader
from fipviton.data.sample import Category, PairEntry, TryOnSample
from fipviton.keypoints import NUM_KEYPOINTS, flip_keypoints, scale_keypoints
from fipviton.labels import flip_labels

CATEGORIES: tuple[Category, ...] = tuple(Category)
GarmentFit = Literal["resize", "letterbox"]


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 (h, w, 3) -> (H, W, 3) for size (H, W): area when shrinking, bilinear when enlarging."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def resize_nearest(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Label map or mask (h, w) -> (H, W) with nearest-neighbour sampling (labels are never blended)."""
    height, width = size
    if array.shape[:2] == (height, width):
        return array
    source = array.astype(np.uint8)
    resized = cv2.resize(source, (width, height), interpolation=cv2.INTER_NEAREST)
    return resized.astype(array.dtype)


def letterbox(
    image: np.ndarray, mask: np.ndarray | None, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Fit `image` (and its mask) inside (H, W) keeping the aspect ratio; pad with white (mask: 0)."""
    height, width = size
    scale = min(height / image.shape[0], width / image.shape[1])
    inner = (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale)))
    top = (height - inner[0]) // 2
    left = (width - inner[1]) // 2
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    canvas[top : top + inner[0], left : left + inner[1]] = resize_image(image, inner)
    out_mask = None
    if mask is not None:
        out_mask = np.zeros((height, width), dtype=bool)
        out_mask[top : top + inner[0], left : left + inner[1]] = resize_nearest(mask, inner)
    return canvas, out_mask


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> float32 (3, H, W) in [-1, 1]."""
    # A copy: decoded images can be read-only views, which torch warns about.
    return torch.from_numpy(np.array(image, dtype=np.uint8, order="C")).permute(2, 0, 1).float().div(127.5).sub(1.0)


class TryOnDataset(Dataset):
    """Fixed-size training/evaluation tensors from a `DatasetReader` split (see the module docstring).

    reader:      a dataset reader (`fipviton.data.open_dataset`).
    split:       "train" or "test".
    paired:      which pair list to use (`reader.pairs(split, paired, category)`).
    size:        target (H, W); None keeps the native person size (then batches need equal native sizes).
    augment:     apply the random horizontal flip (probability `flip_prob`); the random draw uses torch's
                 generator, which DataLoader seeds per worker.
    garment_fit: "resize" stretches the garment to (H, W); "letterbox" keeps its aspect ratio.
    pairs:       an explicit pair list instead of the reader's (e.g. a subset).
    """

    def __init__(
        self,
        reader: DatasetReader,
        split: str,
        paired: bool = True,
        size: tuple[int, int] | None = (256, 192),
        augment: bool = False,
        flip_prob: float = 0.5,
        garment_fit: GarmentFit = "resize",
        category: Category | None = None,
        pairs: list[PairEntry] | None = None,
    ) -> None:
        if garment_fit not in ("resize", "letterbox"):
            raise ValueError(f"garment_fit must be 'resize' or 'letterbox', got {garment_fit!r}")
        self.reader = reader
        self.split = split
        self.paired = paired
        self.size = size
        self.augment = augment
        self.flip_prob = flip_prob
        self.garment_fit = garment_fit
        self.entries = list(pairs) if pairs is not None else reader.pairs(split, paired, category)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        sample = self.reader.load(self.split, self.entries[index])
        flip = self.augment and bool(torch.rand(()) < self.flip_prob)
        return self.to_tensors(sample, index, flip)

    def to_tensors(self, sample: TryOnSample, index: int = 0, flip: bool = False) -> dict[str, torch.Tensor | str]:
        """Resize, optionally flip, and convert one sample (the body of `__getitem__`)."""
        size = self.size or (int(sample.person.shape[0]), int(sample.person.shape[1]))
        height, width = size
        native_h, native_w = sample.person.shape[:2]
        person = resize_image(sample.person, size)
        if self.garment_fit == "letterbox":
            garment, garment_mask = letterbox(sample.garment, sample.garment_mask, size)
        else:
            garment = resize_image(sample.garment, size)
            garment_mask = None if sample.garment_mask is None else resize_nearest(sample.garment_mask, size)
        parsing = None if sample.parsing is None else resize_nearest(sample.parsing, size)
        body_parts = None if sample.body_parts is None else resize_nearest(sample.body_parts, size)
        keypoints = None
        if sample.keypoints is not None:
            keypoints = scale_keypoints(sample.keypoints, width / native_w, height / native_h)
        if flip:
            person = person[:, ::-1]
            garment = garment[:, ::-1]
            garment_mask = None if garment_mask is None else garment_mask[:, ::-1]
            parsing = None if parsing is None else flip_labels(parsing)
            body_parts = None if body_parts is None else flip_parts(body_parts)
            keypoints = None if keypoints is None else flip_keypoints(keypoints, width)

        def label_tensor(array: np.ndarray | None) -> torch.Tensor:
            if array is None:
                return torch.zeros(size, dtype=torch.int64)
            return torch.from_numpy(np.array(array, order="C")).long()

        mask_tensor = torch.zeros((1, height, width), dtype=torch.float32)
        if garment_mask is not None:
            mask_tensor = torch.from_numpy(np.array(garment_mask, order="C")).float()[None]
        keypoint_tensor = torch.zeros((NUM_KEYPOINTS, 3), dtype=torch.float32)
        if keypoints is not None:
            keypoint_tensor = torch.from_numpy(np.ascontiguousarray(keypoints, dtype=np.float32))
        return {
            "person": image_tensor(person),
            "garment": image_tensor(garment),
            "garment_mask": mask_tensor,
            "parsing": label_tensor(parsing),
            "body_parts": label_tensor(body_parts),
            "keypoints": keypoint_tensor,
            "has_garment_mask": torch.tensor(garment_mask is not None),
            "has_parsing": torch.tensor(parsing is not None),
            "has_body_parts": torch.tensor(body_parts is not None),
            "has_keypoints": torch.tensor(keypoints is not None),
            "paired": torch.tensor(sample.paired),
            "flipped": torch.tensor(flip),
            "category": torch.tensor(CATEGORIES.index(sample.category), dtype=torch.int64),
            "index": torch.tensor(index, dtype=torch.int64),
            "person_id": sample.person_id,
            "garment_id": sample.garment_id,
            "dataset": sample.dataset,
        }
