"""The dense body-part map: DensePose-style part indices, coarser than DensePose's 24 parts.

A body-part map is a uint8 array (H, W) of `BodyPart` values. DensePose's front/back surfaces are merged,
because a try-on network needs to know which limb a pixel belongs to, not which side of it faces the camera.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class BodyPart(IntEnum):
    BACKGROUND = 0
    TORSO = 1
    HEAD = 2
    RIGHT_UPPER_ARM = 3
    LEFT_UPPER_ARM = 4
    RIGHT_LOWER_ARM = 5
    LEFT_LOWER_ARM = 6
    RIGHT_HAND = 7
    LEFT_HAND = 8
    RIGHT_UPPER_LEG = 9
    LEFT_UPPER_LEG = 10
    RIGHT_LOWER_LEG = 11
    LEFT_LOWER_LEG = 12
    RIGHT_FOOT = 13
    LEFT_FOOT = 14


NUM_BODY_PARTS = len(BodyPart)
_P = BodyPart

# DensePose's 24 fine parts (index map I, 1..24; 0 = background) to ours.
DENSEPOSE24_TO_PART: dict[int, BodyPart] = {
    0: _P.BACKGROUND,
    1: _P.TORSO, 2: _P.TORSO,
    3: _P.RIGHT_HAND, 4: _P.LEFT_HAND,
    5: _P.LEFT_FOOT, 6: _P.RIGHT_FOOT,
    7: _P.RIGHT_UPPER_LEG, 9: _P.RIGHT_UPPER_LEG, 8: _P.LEFT_UPPER_LEG, 10: _P.LEFT_UPPER_LEG,
    11: _P.RIGHT_LOWER_LEG, 13: _P.RIGHT_LOWER_LEG, 12: _P.LEFT_LOWER_LEG, 14: _P.LEFT_LOWER_LEG,
    15: _P.LEFT_UPPER_ARM, 17: _P.LEFT_UPPER_ARM, 16: _P.RIGHT_UPPER_ARM, 18: _P.RIGHT_UPPER_ARM,
    19: _P.LEFT_LOWER_ARM, 21: _P.LEFT_LOWER_ARM, 20: _P.RIGHT_LOWER_ARM, 22: _P.RIGHT_LOWER_ARM,
    23: _P.HEAD, 24: _P.HEAD,
}  # fmt: skip

FLIP_SWAP: tuple[tuple[BodyPart, BodyPart], ...] = (
    (_P.RIGHT_UPPER_ARM, _P.LEFT_UPPER_ARM),
    (_P.RIGHT_LOWER_ARM, _P.LEFT_LOWER_ARM),
    (_P.RIGHT_HAND, _P.LEFT_HAND),
    (_P.RIGHT_UPPER_LEG, _P.LEFT_UPPER_LEG),
    (_P.RIGHT_LOWER_LEG, _P.LEFT_LOWER_LEG),
    (_P.RIGHT_FOOT, _P.LEFT_FOOT),
)


def densepose24_to_parts(index_map: np.ndarray) -> np.ndarray:
    """Our body-part map (H, W) uint8 from a DensePose fine-part index map (H, W) with values 0..24."""
    table = np.zeros(256, dtype=np.uint8)
    for source, target in DENSEPOSE24_TO_PART.items():
        table[source] = int(target)
    return table[index_map.astype(np.uint8)]


def flip_parts(parts: np.ndarray) -> np.ndarray:
    """Mirror a body-part map (..., H, W) horizontally and swap left/right parts."""
    flipped = np.ascontiguousarray(parts[..., ::-1])
    table = np.arange(256, dtype=np.uint8)
    for right, left in FLIP_SWAP:
        table[right], table[left] = left, right
    return table[flipped]
