"""The internal keypoint order (OpenPose COCO-18) and explicit mappings from every source format.

Keypoints are float32 arrays of shape (18, 3): x and y in pixels of the image they belong to, and a
confidence in [0, 1]; a missing point has confidence 0 (and x = y = 0). "Left"/"right" are the person's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import numpy as np


class Keypoint(IntEnum):
    NOSE = 0
    NECK = 1
    RIGHT_SHOULDER = 2
    RIGHT_ELBOW = 3
    RIGHT_WRIST = 4
    LEFT_SHOULDER = 5
    LEFT_ELBOW = 6
    LEFT_WRIST = 7
    RIGHT_HIP = 8
    RIGHT_KNEE = 9
    RIGHT_ANKLE = 10
    LEFT_HIP = 11
    LEFT_KNEE = 12
    LEFT_ANKLE = 13
    RIGHT_EYE = 14
    LEFT_EYE = 15
    RIGHT_EAR = 16
    LEFT_EAR = 17


NUM_KEYPOINTS = len(Keypoint)
_K = Keypoint

# Pairs of indices exchanged by a horizontal flip.
FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (_K.RIGHT_SHOULDER, _K.LEFT_SHOULDER),
    (_K.RIGHT_ELBOW, _K.LEFT_ELBOW),
    (_K.RIGHT_WRIST, _K.LEFT_WRIST),
    (_K.RIGHT_HIP, _K.LEFT_HIP),
    (_K.RIGHT_KNEE, _K.LEFT_KNEE),
    (_K.RIGHT_ANKLE, _K.LEFT_ANKLE),
    (_K.RIGHT_EYE, _K.LEFT_EYE),
    (_K.RIGHT_EAR, _K.LEFT_EAR),
)

# Limbs drawn in pictures and used for pose maps.
SKELETON: tuple[tuple[int, int], ...] = (
    (_K.NECK, _K.RIGHT_SHOULDER), (_K.RIGHT_SHOULDER, _K.RIGHT_ELBOW), (_K.RIGHT_ELBOW, _K.RIGHT_WRIST),
    (_K.NECK, _K.LEFT_SHOULDER), (_K.LEFT_SHOULDER, _K.LEFT_ELBOW), (_K.LEFT_ELBOW, _K.LEFT_WRIST),
    (_K.NECK, _K.RIGHT_HIP), (_K.RIGHT_HIP, _K.RIGHT_KNEE), (_K.RIGHT_KNEE, _K.RIGHT_ANKLE),
    (_K.NECK, _K.LEFT_HIP), (_K.LEFT_HIP, _K.LEFT_KNEE), (_K.LEFT_KNEE, _K.LEFT_ANKLE),
    (_K.NECK, _K.NOSE), (_K.NOSE, _K.RIGHT_EYE), (_K.RIGHT_EYE, _K.RIGHT_EAR),
    (_K.NOSE, _K.LEFT_EYE), (_K.LEFT_EYE, _K.LEFT_EAR),
)  # fmt: skip

# Source index for each internal keypoint.
COCO18_TO_INTERNAL: tuple[int, ...] = tuple(range(18))  # VITON `pose_keypoints`; DressCode keypoints
BODY25_TO_INTERNAL: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
# MediaPipe Pose (33 landmarks). The neck has no landmark: it is the midpoint of the shoulders (None here).
MEDIAPIPE_TO_INTERNAL: tuple[int | None, ...] = (
    0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7,
)  # fmt: skip


def from_flat(values: Sequence[float], order: Sequence[int], stride: int = 3) -> np.ndarray:
    """Internal (18, 3) keypoints from a flat OpenPose-style list `[x0, y0, c0, x1, ...]` in a source order."""
    points = np.asarray(values, dtype=np.float32).reshape(-1, stride)[:, :3]
    out = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32)
    for internal, source in enumerate(order):
        if source < len(points):
            out[internal] = points[source]
    out[out[:, 2] <= 0] = 0.0
    return out


def from_mediapipe(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """Internal keypoints from MediaPipe Pose landmarks (33, 3+) given as normalised x, y and visibility."""
    out = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32)
    scale = np.array([width, height], dtype=np.float32)
    for internal, source in enumerate(MEDIAPIPE_TO_INTERNAL):
        if source is None:
            continue
        out[internal, :2] = landmarks[source, :2] * scale
        out[internal, 2] = np.clip(landmarks[source, 2], 0.0, 1.0)
    shoulders = out[[_K.RIGHT_SHOULDER, _K.LEFT_SHOULDER]]
    out[_K.NECK, :2] = shoulders[:, :2].mean(axis=0)
    out[_K.NECK, 2] = shoulders[:, 2].min()
    return out


def flip_keypoints(keypoints: np.ndarray, width: int) -> np.ndarray:
    """Mirror keypoints (18, 3) for an image of the given width, swapping left and right points."""
    out = keypoints.copy()
    present = out[:, 2] > 0
    out[present, 0] = (width - 1) - out[present, 0]
    for a, b in FLIP_PAIRS:
        out[[a, b]] = out[[b, a]]
    return out


def scale_keypoints(keypoints: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Keypoints after resizing the image by factors (sx, sy); missing points stay missing."""
    out = keypoints.copy()
    present = out[:, 2] > 0
    out[present, 0] *= sx
    out[present, 1] *= sy
    return out
