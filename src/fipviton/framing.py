"""Framing: show the networks a person and a garment the way their training photos showed them.

The warping and try-on networks were trained on VITON, whose 256x192 person photos all show a person from the
head to the thighs and whose garment photos show one garment that fills the frame's width. A user's photo
rarely looks like that: a full-body shot puts the torso into a fifth of the picture, so at the networks' size
the garment has a few dozen pixels and the warp, which learnt VITON's scale, lands it wrongly; a square
product photo is squeezed to 3:4 on its way into the warp, and a garment with wide margins is small in it.
So the pipeline tries the garment on in a crop of the person photo framed like VITON (`person_frame`) and
pastes the result back, and gives the networks the garment re-framed like VITON (`frame_garment`). Photos
that are already framed that way (VITON's, VITON-HD's) are left as they are: both functions then do nothing.

The proportions are medians measured on VITON's training split (`framing_statistics`, `fipviton data
framing ../shared/data/viton_resize --split train`):
* person (5,446 photos with a neck and both hips; COCO-18 keypoints): the neck at 0.327 of the height from the
  top, the middle of the hips at 0.787, the neck-to-hips distance 0.462 of the height;
* garment (5,459 cloth masks): the garment's box spans 0.938 of the width and 0.844 of the height, its top at
  0.059 of the height (`GARMENT_HEIGHT`, the most height a re-framed garment takes, is set between that median
  and the 90th percentile, 0.949).
With these rules 60 of the 5,446 persons (1.1%) and 3 of the 5,459 garments would be re-framed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from fipviton.data.sample import Category, TryOnSample
from fipviton.keypoints import Keypoint
from fipviton.regions import mask_box

# (top, left, height, width) in pixels of the photo.
Window = tuple[int, int, int, int]

NECK_Y = 0.327  # the neck's height in VITON's person frame, as a fraction of the frame's height
TORSO = 0.462  # neck-to-hips distance / frame height
GARMENT_WIDTH = 0.94  # garment box width / frame width
GARMENT_HEIGHT = 0.88  # the most of the frame's height a garment box takes
GARMENT_TOP = 0.06  # garment box top / frame height
# A photo is framed well enough when the person lies in it as in 98% of VITON's photos: the VITON window
# at most this much smaller than the photo (VITON's 99th percentile: 1.33), the neck and the body's middle
# within these fractions of the height and width (VITON's 1st to 99th percentiles: 0.26-0.43, 0.37-0.63).
MAX_ZOOM = 1.33
NECK_RANGE = (0.25, 0.44)
CENTRE_RANGE = (0.35, 0.65)
# A garment box filling at least this much of a 3:4 photo's width or height is framed well enough (VITON's
# 10th percentiles: 0.81 of the width, 0.73 of the height).
FILLED_WIDTH, FILLED_HEIGHT = 0.8, 0.73
# Keypoints the person frame must contain (with MARGIN of the frame's size to spare): raised or spread arms
# and the head must not be cut by the crop, or the repainted region would end at its edge.
_CONTAINED = (
    Keypoint.NOSE, Keypoint.RIGHT_ELBOW, Keypoint.RIGHT_WRIST, Keypoint.LEFT_ELBOW, Keypoint.LEFT_WRIST,
    Keypoint.RIGHT_SHOULDER, Keypoint.LEFT_SHOULDER, Keypoint.RIGHT_HIP, Keypoint.LEFT_HIP,
)  # fmt: skip
MARGIN = 0.06
MIN_CONFIDENCE = 0.3


def person_frame(
    keypoints: np.ndarray, image_shape: Sequence[int], size: Sequence[int], category: Category | str
) -> Window | None:
    """The window of the person photo that frames the person like VITON, or None to use the whole photo.

    keypoints: (18, 3) float32 COCO-18 (`fipviton.keypoints`), x/y in pixels of the photo, confidence in
    [0, 1]; image_shape: (H, W, ...) of the photo; size: the networks' (h, w) (the window has that aspect).
    None when the category is not `upper_body` (VITON's framing is an upper-body one), when the neck or a hip
    is not found, when the person is closer than VITON's window, or when the photo already frames the person
    as VITON's photos do (`MAX_ZOOM`, `NECK_RANGE`, `CENTRE_RANGE`). The window lies
    inside the photo: it is moved, not cut, where it would cross an edge, and it is grown to contain the head,
    shoulders, arms and hips that were found.
    """
    if Category(category) != Category.UPPER_BODY:
        return None
    height, width = int(image_shape[0]), int(image_shape[1])
    aspect = size[1] / size[0]  # width / height
    points = np.asarray(keypoints, np.float32)
    needed = (Keypoint.NECK, Keypoint.RIGHT_HIP, Keypoint.LEFT_HIP)
    if (points[list(needed), 2] < MIN_CONFIDENCE).any():
        return None
    neck = points[Keypoint.NECK, :2]
    hips = (points[Keypoint.RIGHT_HIP, :2] + points[Keypoint.LEFT_HIP, :2]) / 2
    frame_h = float(np.linalg.norm(hips - neck)) / TORSO
    centre_x = float(neck[0] + hips[0]) / 2
    top = float(neck[1]) - NECK_Y * frame_h

    seen = points[list(_CONTAINED)]
    seen = seen[seen[:, 2] >= MIN_CONFIDENCE, :2]
    if len(seen):
        # Grow (about the frame's centre) until every found point lies MARGIN inside it.
        centre_y = top + frame_h / 2
        half_w = np.abs(seen[:, 0] - centre_x).max()
        half_h = np.abs(seen[:, 1] - centre_y).max()
        need = max(half_w / aspect, half_h) / (0.5 - MARGIN)
        if need > frame_h:
            top = centre_y - need / 2
            frame_h = need
    if frame_h > height or frame_h * aspect > width:
        return None  # the person is closer than in VITON's photos: a window cannot zoom out
    in_range = (
        height <= MAX_ZOOM * frame_h
        and NECK_RANGE[0] <= float(neck[1]) / height <= NECK_RANGE[1]
        and CENTRE_RANGE[0] <= centre_x / width <= CENTRE_RANGE[1]
    )
    if in_range:
        return None
    frame_h_px = min(max(round(frame_h), 2), height)
    frame_w_px = min(max(round(frame_h_px * aspect), 2), width)  # (defensive: the checks above keep it inside)
    top_px = max(round(min(max(top, 0.0), height - frame_h_px)), 0)
    left_px = max(round(min(max(centre_x - frame_w_px / 2, 0.0), width - frame_w_px)), 0)
    return top_px, left_px, frame_h_px, frame_w_px


def garment_frame(mask: np.ndarray, size: Sequence[int]) -> Window | None:
    """Where the garment photo's pixels go on a canvas framed like VITON's garment photos, or None when the
    photo is already framed so.

    mask: (h, w) bool, the garment. size: the networks' (H, W) (the canvas has that aspect). Returns
    (top, left, canvas height, canvas width) with top/left the offset of the garment's bounding box on the
    canvas; None when the mask is empty or when the photo has the canvas's aspect and its garment fills at
    least FILLED_WIDTH of its width or FILLED_HEIGHT of its height (3 of VITON's 5,459 training cloths do not).
    """
    box = mask_box(mask)
    if box is None:
        return None
    box_h, box_w = box[0].stop - box[0].start, box[1].stop - box[1].start
    aspect = size[1] / size[0]  # width / height
    h, w = mask.shape[:2]
    if abs(w / h - aspect) < 0.02 * aspect and (box_w >= FILLED_WIDTH * w or box_h >= FILLED_HEIGHT * h):
        return None
    canvas_w = max(box_w / GARMENT_WIDTH, box_h / GARMENT_HEIGHT * aspect)
    canvas_h = max(round(canvas_w / aspect), box_h)
    canvas_w = max(round(canvas_h * aspect), box_w)  # a box of a few pixels must still fit after rounding
    top = round(min(GARMENT_TOP * canvas_h, (canvas_h - box_h) / 2))
    left = (canvas_w - box_w) // 2
    return top, left, canvas_h, canvas_w


def frame_garment(
    image: np.ndarray, mask: np.ndarray, size: Sequence[int], fill: int = 255
) -> tuple[np.ndarray, np.ndarray]:
    """The garment photo and its mask on a canvas framed like VITON's (`garment_frame`); unchanged when the
    photo is already framed so.

    image: (h, w, 3) uint8 RGB; mask: (h, w) bool; size: the networks' (H, W). Returns ((H', W', 3) uint8,
    (H', W') bool) with H'/W' = H/W. Pixels off the garment become `fill` (VITON's garments lie on white).
    """
    window = garment_frame(mask, size)
    if window is None:
        return image, mask
    top, left, canvas_h, canvas_w = window
    rows, cols = mask_box(mask)  # not empty: garment_frame found the box
    box_mask = mask[rows, cols].astype(bool)
    box_h, box_w = box_mask.shape
    framed = np.full((canvas_h, canvas_w, 3), fill, np.uint8)
    framed_mask = np.zeros((canvas_h, canvas_w), bool)
    target = (slice(top, top + box_h), slice(left, left + box_w))
    framed[target] = np.where(box_mask[..., None], image[rows, cols], np.uint8(fill))
    framed_mask[target] = box_mask
    return framed, framed_mask


def shift_keypoints(keypoints: np.ndarray, dx: float, dy: float, shape: Sequence[int] | None = None) -> np.ndarray:
    """(18, 3) keypoints moved by (dx, dy) (a copy); with `shape` (H, W, ...), the points that land outside it
    become missing (0, 0, 0)."""
    out = np.array(keypoints, np.float32)
    present = out[:, 2] > 0
    out[present, 0] += dx
    out[present, 1] += dy
    if shape is not None:
        outside = present & ((out[:, 0] < 0) | (out[:, 1] < 0) | (out[:, 0] >= shape[1]) | (out[:, 1] >= shape[0]))
        out[outside] = 0
    return out


def shift_box(
    box: tuple[int, int, int, int] | None, dx: int, dy: int, shape: Sequence[int]
) -> tuple[int, int, int, int] | None:
    """A box (x0, y0, x1, y1) moved by (dx, dy) and cut to `shape` (H, W, ...); None when nothing is left."""
    if box is None:
        return None
    x0, y0, x1, y1 = box
    x0, y0 = max(0, x0 + dx), max(0, y0 + dy)
    x1, y1 = min(int(shape[1]), x1 + dx), min(int(shape[0]), y1 + dy)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def crop(image: np.ndarray, window: Window) -> np.ndarray:
    """The window (top, left, height, width) of an (H, W, ...) array (a view)."""
    top, left, height, width = window
    return image[top : top + height, left : left + width]


def paste(canvas: np.ndarray, part: np.ndarray, window: Window) -> np.ndarray:
    """A copy of `canvas` (H, W, ...) with `part` (height, width, ...) written into the window."""
    out = canvas.copy()
    top, left, height, width = window
    out[top : top + height, left : left + width] = part
    return out


PERCENTILES = (1, 10, 50, 90, 99)


def framing_statistics(samples: Iterable[TryOnSample], size: Sequence[int] = (256, 192)) -> dict:
    """How dataset samples frame their person and garment, and how many `person_frame` / `garment_frame`
    would re-frame (for the networks' (H, W) `size`).

    Person (samples with a neck and both hips): `neck_y` and `hips_y` (fractions of the height), `torso`
    (neck-to-hips distance / height), `centre_x` (fraction of the width), `zoom` (photo height / the height of
    the VITON window, `TORSO`-based). Garment (samples with a mask): the mask's box `top`, `bottom`, `left`,
    `right` (fractions), `width` and `height` (fractions). Each as {"p1", "p10", "p50", "p90", "p99"}; plus
    "count" and "reframed" (how many would be re-framed) per part. The constants of this module were measured
    with it on VITON's training split (`fipviton data framing ../shared/data/viton_resize --split train`).
    """
    person: dict[str, list[float]] = {k: [] for k in ("neck_y", "hips_y", "torso", "centre_x", "zoom")}
    garment: dict[str, list[float]] = {k: [] for k in ("top", "bottom", "left", "right", "width", "height")}
    person_reframed = garment_reframed = 0
    for sample in samples:
        height, width = sample.person.shape[:2]
        points = sample.keypoints
        if points is not None and (points[[Keypoint.NECK, Keypoint.RIGHT_HIP, Keypoint.LEFT_HIP], 2] > 0).all():
            neck = points[Keypoint.NECK, :2]
            hips = (points[Keypoint.RIGHT_HIP, :2] + points[Keypoint.LEFT_HIP, :2]) / 2
            torso = float(np.linalg.norm(hips - neck))
            if torso > 0:
                person["neck_y"].append(float(neck[1]) / height)
                person["hips_y"].append(float(hips[1]) / height)
                person["torso"].append(torso / height)
                person["centre_x"].append(float(neck[0] + hips[0]) / 2 / width)
                person["zoom"].append(height * TORSO / torso)
                person_reframed += person_frame(points, sample.person.shape, size, sample.category) is not None
        mask = sample.garment_mask
        box = mask_box(mask) if mask is not None else None
        if box is not None:
            h, w = mask.shape
            top, bottom = box[0].start / h, box[0].stop / h
            left, right = box[1].start / w, box[1].stop / w
            for key, value in zip(garment, (top, bottom, left, right, right - left, bottom - top), strict=True):
                garment[key].append(float(value))
            garment_reframed += garment_frame(mask, size) is not None

    def summary(values: dict[str, list[float]], reframed: int) -> dict:
        count = len(next(iter(values.values())))
        out: dict = {"count": count, "reframed": reframed}
        for key, series in values.items():
            levels = np.percentile(series, PERCENTILES) if series else [float("nan")] * len(PERCENTILES)
            out[key] = {f"p{p}": round(float(v), 4) for p, v in zip(PERCENTILES, levels, strict=True)}
        return out

    return {"person": summary(person, person_reframed), "garment": summary(garment, garment_reframed)}
