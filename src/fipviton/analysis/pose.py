"""Pose and person mask of any photo with MediaPipe Pose (bundled weights, CPU), plus usability checks.

`estimate_pose(image, category)` returns keypoints in our COCO-18 order (`fipviton.keypoints`), a person mask,
a face box and warnings; it raises `NoPersonError` with a message a user can act on when the photo cannot be
used for try-on. The rules (all measured on the person MediaPipe analysed):

- **no person**: MediaPipe Pose finds no body, or its segmentation is (almost) empty;
- **too small**: the person's silhouette is shorter than `MIN_PERSON_HEIGHT` (25 %) of the image height,
  or covers less than `MIN_PERSON_AREA` (1.5 %) of the image. Try-on needs the garment region at a few hundred
  pixels; a small figure in a landscape should be cropped first;
- **too cropped**, per category, with "visible" = MediaPipe visibility >= `MIN_VISIBILITY` and inside the image:
  `upper_body` needs both shoulders (the garment hangs from them; a missing hip is only a warning),
  `dresses` both shoulders and both hips, `lower_body` both hips and both knees. The head may be cut off
  (DressCode crops heads; the face is not needed for try-on);
- **several people**: MediaPipe Pose follows one person only. When face detection finds several faces or the
  selfie segmentation has several large components, the photo is cropped to the largest person (largest
  silhouette component) and analysed again; the result carries a warning saying so.

MediaPipe runs on a copy whose long side is at most `POSE_MAX_SIDE` pixels (its networks work at 256x256
anyway); the segmentation mask is resized back to the photo. The graphs are created once per process and
shared; a lock serialises calls (MediaPipe graphs are not re-entrant).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from fipviton.data.sample import Category
from fipviton.errors import NoPersonError
from fipviton.keypoints import NUM_KEYPOINTS, Keypoint, from_mediapipe

POSE_MAX_SIDE = 512
MASK_THRESHOLD = 0.5
MIN_VISIBILITY = 0.5
MIN_PERSON_HEIGHT = 0.25
MIN_PERSON_AREA = 0.015
# A second silhouette component at least this fraction of the largest one counts as another person.
OTHER_PERSON_FRACTION = 0.25

_K = Keypoint
REQUIRED_KEYPOINTS: dict[Category, tuple[Keypoint, ...]] = {
    Category.UPPER_BODY: (_K.RIGHT_SHOULDER, _K.LEFT_SHOULDER),
    Category.DRESSES: (_K.RIGHT_SHOULDER, _K.LEFT_SHOULDER, _K.RIGHT_HIP, _K.LEFT_HIP),
    Category.LOWER_BODY: (_K.RIGHT_HIP, _K.LEFT_HIP, _K.RIGHT_KNEE, _K.LEFT_KNEE),
}
# Points whose absence only earns a warning.
WANTED_KEYPOINTS: dict[Category, tuple[Keypoint, ...]] = {
    Category.UPPER_BODY: (_K.RIGHT_HIP, _K.LEFT_HIP),
    Category.DRESSES: (_K.RIGHT_KNEE, _K.LEFT_KNEE),
    Category.LOWER_BODY: (_K.RIGHT_ANKLE, _K.LEFT_ANKLE),
}


@dataclass
class PoseResult:
    """MediaPipe's view of the (largest) person in a photo of size (H, W).

    keypoints:   (18, 3) float32, internal COCO-18 order, x/y in photo pixels, confidence = MediaPipe
                 visibility in [0, 1]; points outside the photo are missing (all zeros). The neck is the
                 midpoint of the shoulders (MediaPipe has no neck landmark).
    person_mask: (H, W) bool, MediaPipe's body segmentation > 0.5, restricted to the analysed person's crop.
    face_box:    (x0, y0, x1, y1) int pixels of the analysed person's face (face detection), or None.
    people:      how many people were detected (1 when unsure).
    warnings:    human-readable notes (several people, parts outside the photo).
    """

    keypoints: np.ndarray
    person_mask: np.ndarray
    face_box: tuple[int, int, int, int] | None
    people: int = 1
    warnings: list[str] = field(default_factory=list)


class _MediaPipe:
    """Lazily created MediaPipe graphs, shared by every caller; `lock` must be held while using them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._pose: Any = None
        self._faces: Any = None
        self._selfie: Any = None

    def _solutions(self) -> Any:
        import mediapipe as mp

        return mp.solutions

    @property
    def pose(self) -> Any:
        if self._pose is None:
            # model_complexity 0 and 2 download their weights at first use; 1 is bundled.
            self._pose = self._solutions().pose.Pose(
                static_image_mode=True, model_complexity=1, enable_segmentation=True, min_detection_confidence=0.5
            )
        return self._pose

    @property
    def faces(self) -> Any:
        if self._faces is None:
            # model_selection=1: the full-range model (people up to ~5 m), which finds smaller faces.
            self._faces = self._solutions().face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=0.6
            )
        return self._faces

    @property
    def selfie(self) -> Any:
        if self._selfie is None:
            self._selfie = self._solutions().selfie_segmentation.SelfieSegmentation(model_selection=0)
        return self._selfie


_MP = _MediaPipe()


def _downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return np.ascontiguousarray(image)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _run_pose(image: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Landmarks (33, 3: x, y normalised, visibility) and segmentation (H, W) float32 of one image, or None."""
    small = _downscale(image, POSE_MAX_SIDE)
    with _MP.lock:
        result = _MP.pose.process(small)
    if result.pose_landmarks is None:
        return None, None
    landmarks = np.array([[p.x, p.y, p.visibility] for p in result.pose_landmarks.landmark], dtype=np.float32)
    seg = result.segmentation_mask
    if seg is None:
        seg = np.zeros(small.shape[:2], np.float32)
    h, w = image.shape[:2]
    if seg.shape != (h, w):
        seg = cv2.resize(seg, (w, h), interpolation=cv2.INTER_LINEAR)
    return landmarks, seg


def detect_faces(image: np.ndarray) -> list[tuple[int, int, int, int, float]]:
    """Face boxes (x0, y0, x1, y1, score) in pixels of an RGB uint8 image (H, W, 3), largest first."""
    h, w = image.shape[:2]
    small = _downscale(image, 640)
    with _MP.lock:
        result = _MP.faces.process(small)
    boxes = []
    for det in result.detections or []:
        box = det.location_data.relative_bounding_box
        x0 = int(np.clip(box.xmin * w, 0, w - 1))
        y0 = int(np.clip(box.ymin * h, 0, h - 1))
        x1 = int(np.clip((box.xmin + box.width) * w, x0 + 1, w))
        y1 = int(np.clip((box.ymin + box.height) * h, y0 + 1, h))
        boxes.append((x0, y0, x1, y1, float(det.score[0])))
    boxes.sort(key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
    return boxes


def _silhouette_components(image: np.ndarray) -> list[tuple[int, tuple[int, int, int, int]]]:
    """Selfie-segmentation components as (area, (x0, y0, x1, y1)) in photo pixels, largest first."""
    small = _downscale(image, 256)
    with _MP.lock:
        seg = _MP.selfie.process(small).segmentation_mask
    if seg is None:
        return []
    sy, sx = image.shape[0] / seg.shape[0], image.shape[1] / seg.shape[1]
    count, _, stats, _ = cv2.connectedComponentsWithStats((seg > MASK_THRESHOLD).astype(np.uint8), connectivity=8)
    out = []
    for i in range(1, count):
        x, y, bw, bh, area = stats[i]
        out.append((int(area), (int(x * sx), int(y * sy), int((x + bw) * sx), int((y + bh) * sy))))
    out.sort(key=lambda c: -c[0])
    return out


def _visible(keypoints: np.ndarray, index: int) -> bool:
    return bool(keypoints[index, 2] >= MIN_VISIBILITY)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _crop_box(box: tuple[int, int, int, int], width: int, height: int, margin: float) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    mx, my = int((x1 - x0) * margin), int((y1 - y0) * margin)
    return max(0, x0 - mx), max(0, y0 - my), min(width, x1 + mx), min(height, y1 + my)


def estimate_pose(image: np.ndarray, category: Category | str | None = Category.UPPER_BODY) -> PoseResult:
    """Keypoints, person mask and face box of the (largest) person in an RGB uint8 photo (H, W, 3).

    `category` selects which body parts must be visible (see the module docstring); None checks only that
    a large enough person is there. Raises `NoPersonError` when the photo cannot be used.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"estimate_pose expects (H, W, 3) uint8, got {image.shape} {image.dtype}")
    h, w = image.shape[:2]
    warnings: list[str] = []

    faces = detect_faces(image)
    components = _silhouette_components(image)
    big = [c for c in components if components and c[0] >= OTHER_PERSON_FRACTION * components[0][0]]
    people = max(len(faces), len(big), 1)
    offset = (0, 0)
    work = image
    if people > 1 and big:
        # Crop to the largest silhouette (with a margin), so that MediaPipe Pose follows that person.
        x0, y0, x1, y1 = _crop_box(big[0][1], w, h, 0.1)
        work = image[y0:y1, x0:x1]
        offset = (x0, y0)
        warnings.append(f"{people} people found in the photo: analysed the largest one")

    landmarks, seg = _run_pose(work)
    if landmarks is None and work is not image:
        landmarks, seg = _run_pose(image)  # the crop lost the person: fall back to the whole photo
        offset, work = (0, 0), image
    if landmarks is None or seg is None:
        raise NoPersonError(
            "no person found in the photo (a person's body must be visible, at least from the shoulders to the waist)"
        )

    wh, ww = work.shape[:2]
    keypoints = from_mediapipe(landmarks, ww, wh)
    keypoints[:, 0] += offset[0] * (keypoints[:, 2] > 0)
    keypoints[:, 1] += offset[1] * (keypoints[:, 2] > 0)
    inside = (keypoints[:, 0] >= 0) & (keypoints[:, 0] <= w - 1) & (keypoints[:, 1] >= 0) & (keypoints[:, 1] <= h - 1)
    keypoints[~inside | (keypoints[:, 2] <= 0)] = 0.0
    # The neck is only as present as both shoulders.
    if keypoints[_K.RIGHT_SHOULDER, 2] == 0 or keypoints[_K.LEFT_SHOULDER, 2] == 0:
        keypoints[_K.NECK] = 0.0

    mask = np.zeros((h, w), dtype=bool)
    mask[offset[1] : offset[1] + wh, offset[0] : offset[0] + ww] = seg > MASK_THRESHOLD
    mask = _largest_component(mask) if people > 1 else mask
    if mask.sum() < 0.002 * h * w:
        raise NoPersonError("no person found in the photo (the person segmentation is empty)")
    rows = np.flatnonzero(mask.any(axis=1))
    person_height = (rows[-1] - rows[0] + 1) / h
    if person_height < MIN_PERSON_HEIGHT or mask.mean() < MIN_PERSON_AREA:
        raise NoPersonError(
            f"the person is too small in the photo ({person_height:.0%} of the image height, at least "
            f"{MIN_PERSON_HEIGHT:.0%} needed): crop the photo around the person"
        )

    if category is not None:
        category = Category(category)
        missing = [k for k in REQUIRED_KEYPOINTS[category] if not _visible(keypoints, k)]
        if missing:
            names = ", ".join(k.name.lower().replace("_", " ") for k in missing)
            raise NoPersonError(
                f"the person is too cropped for a {category.value.replace('_', ' ')} try-on: {names} not visible "
                "in the photo"
            )
        lacking = [k for k in WANTED_KEYPOINTS[category] if not _visible(keypoints, k)]
        if lacking:
            names = ", ".join(k.name.lower().replace("_", " ") for k in lacking)
            warnings.append(f"{names} outside the photo or hidden: the result near them may be less accurate")

    face_box = _face_of(faces, keypoints, mask)
    return PoseResult(keypoints=keypoints, person_mask=mask, face_box=face_box, people=people, warnings=warnings)


def _face_of(
    faces: list[tuple[int, int, int, int, float]], keypoints: np.ndarray, mask: np.ndarray
) -> tuple[int, int, int, int] | None:
    """The detected face that belongs to the analysed person (contains its nose or lies on its mask)."""
    nose = keypoints[_K.NOSE]
    for x0, y0, x1, y1, _ in faces:
        if nose[2] > 0 and x0 <= nose[0] <= x1 and y0 <= nose[1] <= y1:
            return (x0, y0, x1, y1)
    for x0, y0, x1, y1, _ in faces:
        if mask[y0:y1, x0:x1].mean() > 0.3:
            return (x0, y0, x1, y1)
    return None


def empty_keypoints() -> np.ndarray:
    """(18, 3) float32 zeros: every keypoint missing."""
    return np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32)
