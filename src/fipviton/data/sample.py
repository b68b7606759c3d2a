"""The common sample type every dataset reader yields, and the garment categories."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np


class Category(str, Enum):
    UPPER_BODY = "upper_body"
    LOWER_BODY = "lower_body"
    DRESSES = "dresses"


@dataclass(frozen=True)
class PairEntry:
    """One line of a pair list: which person wears which garment."""

    person: str  # file name of the person image, relative to the split's person folder
    garment: str  # file name of the garment image
    category: Category = Category.UPPER_BODY


@dataclass
class TryOnSample:
    """One person + garment pair at the dataset's native resolution.

    person:       (H, W, 3) uint8 RGB.
    garment:      (h, w, 3) uint8 RGB in-shop garment photo.
    garment_mask: (h, w) bool, True on the garment; None when the dataset has no mask.
    parsing:      (H, W) uint8 internal labels (`fipviton.labels.Label`); None when absent.
    keypoints:    (18, 3) float32, internal order (`fipviton.keypoints.Keypoint`), x/y in person pixels; None
                  when the dataset has no keypoint file for this person (all-zero when it found nobody).
    body_parts:   (H, W) uint8 `fipviton.bodyparts.BodyPart`, from the dataset's DensePose; None when absent.
    paired:       True when the garment is the one the person wears (the person image is the ground truth).
    """

    person: np.ndarray
    garment: np.ndarray
    garment_mask: np.ndarray | None
    parsing: np.ndarray | None
    keypoints: np.ndarray | None
    body_parts: np.ndarray | None
    category: Category
    person_id: str
    garment_id: str
    dataset: str
    paired: bool
