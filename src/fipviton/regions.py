"""Regions of a mask: its bounding box; which connected components touch the image border, or seed pixels.

Shared by the garment mask (the backdrop is what reaches the photo's border), the post-processing (background
patches enclosed by the person) and the agnostic mask (mislabelled rows that touch a sleeve). Components are
numbered as `cv2.connectedComponents` numbers them: 0 is every pixel outside the mask, 1..count-1 the
components. A lookup table over the numbers replaces `np.isin`: 2.7 instead of 5.3 ms on a 1024x768 mask.
"""

from __future__ import annotations

import cv2
import numpy as np


def mask_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice] | None:
    """The bounding box of `mask` (H, W) bool or uint8 (non-zero = in), grown by `margin` pixels on each side
    and cut to the picture, as (rows, columns) slices; None when the mask is empty. Work confined to it skips
    the (usually larger) rest of the picture."""
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8) if mask.dtype == bool else mask)
    if w == 0:
        return None
    return slice(max(y - margin, 0), y + h + margin), slice(max(x - margin, 0), x + w + margin)


def components_touching(labels: np.ndarray, seeds: np.ndarray, count: int | None = None) -> np.ndarray:
    """(H, W) bool: the pixels of every component of `labels` that has a pixel where `seeds` is true.

    labels: (H, W) int32 component numbers (0 = outside the mask); seeds: (H, W) bool, or any index into
    `labels` (e.g. a tuple of slices); count: the number of components including 0 (`cv2.connectedComponents`
    returns it), else computed.
    """
    return _select(labels, labels[seeds], count)


def components_touching_border(labels: np.ndarray, count: int | None = None) -> np.ndarray:
    """(H, W) bool: the pixels of every component of `labels` (as in `components_touching`) that reaches one of
    the image's four borders."""
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return _select(labels, border, count)


def _select(labels: np.ndarray, chosen: np.ndarray, count: int | None) -> np.ndarray:
    table = np.zeros(int(labels.max()) + 1 if count is None else count, dtype=bool)
    table[chosen] = True
    table[0] = False  # the pixels outside the mask are no component
    return table[labels]
