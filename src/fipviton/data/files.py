"""The files a pair needs, and decoding each kind of dataset file into the common sample's arrays.

Readers describe a pair as a list of `FileSpec`s (what, where, how to decode, required or optional);
`load` and `fipviton data check` both go through these, so they cannot disagree about which files matter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from fipviton.errors import DatasetError, ImageInputError
from fipviton.imageio import load_image, load_label_map, load_mask
from fipviton.keypoints import BODY25_TO_INTERNAL, COCO18_TO_INTERNAL, NUM_KEYPOINTS, from_flat


class Kind(str, Enum):
    IMAGE = "image"  # RGB photo
    MASK = "mask"  # grayscale mask (PNG or JPEG), thresholded at 128
    LABELS = "labels"  # source parsing label map (palette or grayscale PNG)
    DENSE_I = "dense_i"  # DensePose fine-part index map I (0..24)
    KEYPOINTS_COCO18 = "keypoints_coco18"  # OpenPose json, `people[0].pose_keypoints` (VITON)
    KEYPOINTS_BODY25 = "keypoints_body25"  # OpenPose json, `people[0].pose_keypoints_2d` (VITON-HD)
    KEYPOINTS_DRESSCODE = "keypoints_dresscode"  # {"keypoints": [[x, y, score, id] x 18]} in 384x512
    NPZ = "npz"  # numpy archive (DressCode dense UV)
    OTHER_IMAGE = "other_image"  # an image the readers do not use (renderings, agnostic images): decoded only


@dataclass(frozen=True)
class FileSpec:
    """One file of a pair.

    role:     what it is for ("person", "garment", "garment_mask", "parsing", "keypoints", "body_parts", or
              the name of an extra map that `load` does not use).
    path:     where it should be.
    kind:     how to decode it.
    required: a pair is complete only when every required file is present and valid; optional files are
              checked only when present.
    labels:   for `Kind.LABELS`, the source label values that are known (a value outside is a problem).
    """

    role: str
    path: Path
    kind: Kind
    required: bool
    labels: frozenset[int] | None = None


# DressCode keypoints are stored in a 384x512 (W x H) frame, whatever the image size (verified on the data:
# see tests/test_data_mappings.py::test_dresscode_keypoints_frame).
DRESSCODE_KEYPOINT_FRAME = (384.0, 512.0)


def read_json(path: Path) -> object:
    try:
        with path.open("rb") as handle:
            return json.load(handle)
    except FileNotFoundError as exc:
        raise DatasetError(f"{path.name}: no such file") from exc
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path.name}: not valid json ({exc})") from exc


def _openpose_people(data: object, key: str, path: Path) -> list[float] | None:
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise DatasetError(f"{path.name}: no 'people' list")
    people = data["people"]
    if not people:
        return None
    first = people[0]
    if not isinstance(first, dict) or key not in first:
        raise DatasetError(f"{path.name}: people[0] has no {key!r}")
    return first[key]


def decode_keypoints(path: Path, kind: Kind, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """Internal keypoints (18, 3) float32, x/y in person-image pixels, from one keypoint file.

    `image_size` (W, H) of the person image is needed for DressCode, whose keypoints live in a 384x512 frame.
    A json with no person gives all-missing keypoints (zeros). Raises `DatasetError` for unusable files.
    """
    data = read_json(path)
    try:
        if kind is Kind.KEYPOINTS_COCO18:
            values = _openpose_people(data, "pose_keypoints", path)
            order: tuple[int, ...] = COCO18_TO_INTERNAL
            stride = 3
        elif kind is Kind.KEYPOINTS_BODY25:
            values = _openpose_people(data, "pose_keypoints_2d", path)
            order = BODY25_TO_INTERNAL
            stride = 3
        elif kind is Kind.KEYPOINTS_DRESSCODE:
            if not isinstance(data, dict) or "keypoints" not in data:
                raise DatasetError(f"{path.name}: no 'keypoints' list")
            values = np.asarray(data["keypoints"], dtype=np.float32).reshape(-1).tolist()
            order = COCO18_TO_INTERNAL
            stride = 4
        else:
            raise ValueError(f"not a keypoint kind: {kind}")
        if values is None:
            return np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32)
        if len(values) % stride != 0 or len(values) // stride < max(order) + 1:
            raise DatasetError(f"{path.name}: {len(values)} values do not hold {max(order) + 1} keypoints")
        points = from_flat(values, order, stride=stride)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{path.name}: malformed keypoints ({exc})") from exc
    if not np.isfinite(points).all():
        raise DatasetError(f"{path.name}: keypoints are not finite")
    if kind is Kind.KEYPOINTS_DRESSCODE:
        if image_size is None:
            raise ValueError("DressCode keypoints need the person image size")
        present = points[:, 2] > 0
        points[present, 0] *= image_size[0] / DRESSCODE_KEYPOINT_FRAME[0]
        points[present, 1] *= image_size[1] / DRESSCODE_KEYPOINT_FRAME[1]
    return points


def decode(spec: FileSpec, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode one file fully (raw source values: labels are not mapped here).

    Returns RGB uint8 (H, W, 3) for images, bool (H, W) for masks, uint8 (H, W) for label and dense maps,
    (18, 3) float32 for keypoints. Raises `DatasetError` (missing, malformed) or `ImageInputError` (corrupt).
    """
    if spec.kind in (Kind.KEYPOINTS_COCO18, Kind.KEYPOINTS_BODY25, Kind.KEYPOINTS_DRESSCODE):
        return decode_keypoints(spec.path, spec.kind, image_size)
    if not spec.path.is_file():
        raise DatasetError(f"{spec.path.name}: no such file")
    name = spec.path.name
    if spec.kind in (Kind.IMAGE, Kind.OTHER_IMAGE):
        return load_image(spec.path, name)
    if spec.kind is Kind.MASK:
        return load_mask(spec.path, name)
    if spec.kind in (Kind.LABELS, Kind.DENSE_I):
        return load_label_map(spec.path, name)
    if spec.kind is Kind.NPZ:
        try:
            with np.load(spec.path, allow_pickle=False) as archive:
                for key in archive.files:
                    _ = archive[key]  # reading each array decompresses and validates it
        except (OSError, ValueError, EOFError) as exc:
            raise DatasetError(f"{name}: not a readable npz ({exc})") from exc
        return np.zeros(0)
    raise ValueError(f"unknown kind {spec.kind}")


def decode_or_none(spec: FileSpec | None, image_size: tuple[int, int] | None = None) -> np.ndarray | None:
    """`decode` for a file that may be absent: None when `spec` is None or an optional file is missing."""
    if spec is None:
        return None
    if not spec.required and not spec.path.exists():
        return None
    try:
        return decode(spec, image_size)
    except (DatasetError, ImageInputError) as exc:
        # Name the role and the folder too: "garment cloth/000004_1.jpg: no such file".
        detail = str(exc).removeprefix(f"{spec.path.name}: ")
        raise DatasetError(f"{spec.role} {spec.path.parent.name}/{spec.path.name}: {detail}") from exc
