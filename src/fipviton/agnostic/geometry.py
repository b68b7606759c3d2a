"""Body geometry for the agnostic masks: body scale, completed keypoints, and the keypoint-drawn regions.

Every length is a multiple of one unit `r`, a sixteenth of the shoulder width (the unit of VITON-HD's
agnostic construction), so the regions scale with the person and not with the image: the same photo gives the
same relative mask at 256x192 and at 1024x768.

Drawing uses OpenCV on uint8 canvases (255 = inside). Points may lie outside the canvas (a half-body photo
whose hips are below the frame): OpenCV clips.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import cv2
import numpy as np

from fipviton.keypoints import Keypoint

_K = Keypoint

# Typical proportions of OpenPose skeletons, measured on VITON-HD and Dress Code (front views): hip width is
# ~0.64 of the shoulder width, and the neck-to-hip-midpoint distance ~1.6 shoulder widths.
HIP_TO_SHOULDER = 0.64
TORSO_TO_SHOULDER = 1.6
# Fallback when no shoulders or hips are detected: the shoulder width from the parsed person's area.
SHOULDER_PER_SQRT_AREA = 0.45
# The pelvis silhouette of bottoms, as a fraction of the shoulder width (the hip joints are ~0.64).
LOWER_HIP_SPREAD = 0.85

_SUBPIXEL = 4  # fixed-point bits for cv2 drawing: smooth sub-pixel geometry at any resolution
_ONE = 1 << _SUBPIXEL


@dataclass(frozen=True)
class Body:
    """Keypoints completed for drawing, and the body's length unit.

    points:  (18, 2) float64 pixel coordinates (internal keypoint order); meaningful where `present`.
    present: (18,) bool, detected or reliably completed points.
    width:   the shoulder width in pixels (> 0), measured or estimated.
    unit:    r, a sixteenth of the shoulder width times a scale, in pixels (> 0).
    """

    points: np.ndarray
    present: np.ndarray
    width: float
    unit: float

    def has(self, *indices: int) -> bool:
        return bool(all(self.present[i] for i in indices))

    def p(self, index: int) -> np.ndarray:
        return self.points[index]


def _unit_vector(v: np.ndarray) -> np.ndarray | None:
    norm = float(np.hypot(v[0], v[1]))
    return v / norm if norm > 1e-6 else None


def body_from_keypoints(
    keypoints: np.ndarray | None, person_area: float, scale: float = 1.0, min_confidence: float = 0.05
) -> Body:
    """Complete the keypoints needed by the masks and compute the unit r.

    keypoints:   (18, 3) float32 (x, y, confidence) in image pixels, or None.
    person_area: number of non-background parsing pixels, for the last-resort scale.
    scale:       multiplies r (not the shoulder width).

    Completions (each only when the missing point's partners are present): a missing neck is the shoulders'
    midpoint; a missing shoulder is the other one mirrored through the neck; a missing hip is the other one
    moved along the shoulder direction; missing hips (half-body photos) are placed a typical torso length
    below the neck, perpendicular to the shoulder line.
    """
    points = np.zeros((18, 2), dtype=np.float64)
    present = np.zeros(18, dtype=bool)
    if keypoints is not None:
        kp = np.asarray(keypoints, dtype=np.float64)
        present = (kp[:, 2] > min_confidence) & np.isfinite(kp[:, :2]).all(axis=1)
        points[present] = kp[present, :2]

    rs, ls, rh, lh, neck = _K.RIGHT_SHOULDER, _K.LEFT_SHOULDER, _K.RIGHT_HIP, _K.LEFT_HIP, _K.NECK
    if not present[neck] and present[rs] and present[ls]:
        points[neck] = (points[rs] + points[ls]) / 2
        present[neck] = True
    for a, b in ((rs, ls), (ls, rs)):
        if not present[a] and present[b] and present[neck]:
            points[a] = 2 * points[neck] - points[b]
            present[a] = True

    shoulder_width = float(np.linalg.norm(points[rs] - points[ls])) if present[rs] and present[ls] else 0.0
    hip_width = float(np.linalg.norm(points[rh] - points[lh])) if present[rh] and present[lh] else 0.0
    if shoulder_width > 1e-3:
        width = shoulder_width
    elif hip_width > 1e-3:
        width = hip_width / HIP_TO_SHOULDER
    else:
        width = SHOULDER_PER_SQRT_AREA * float(np.sqrt(max(person_area, 1.0)))

    if present[rs] and present[ls]:
        across = _unit_vector(points[ls] - points[rs])  # person's right shoulder to left shoulder
        if across is not None:
            for a, b, sign in ((rh, lh, -1.0), (lh, rh, 1.0)):
                if not present[a] and present[b]:
                    points[a] = points[b] + sign * across * width * HIP_TO_SHOULDER
                    present[a] = True
            if not present[rh] and not present[lh]:
                # Image y grows downwards; the body's "down" is perpendicular to the shoulder line.
                down = np.array([-across[1], across[0]])
                if down[1] < 0:
                    down = -down
                mid = points[neck] + down * width * TORSO_TO_SHOULDER
                points[rh] = mid - across * width * HIP_TO_SHOULDER / 2
                points[lh] = mid + across * width * HIP_TO_SHOULDER / 2
                present[rh] = present[lh] = True
    return Body(points=points, present=present, width=width, unit=width / 16.0 * scale)


class Canvas:
    """A uint8 drawing surface (255 = inside) with sub-pixel primitives whose sizes are given in pixels."""

    def __init__(self, height: int, width: int) -> None:
        self.array = np.zeros((height, width), dtype=np.uint8)

    @staticmethod
    def _fixed(point: np.ndarray) -> tuple[int, int]:
        return round(point[0] * _ONE), round(point[1] * _ONE)

    def line(self, a: np.ndarray, b: np.ndarray, width: float) -> None:
        """A segment `width` pixels wide with flat ends (a rectangle; joints get their own discs)."""
        direction = _unit_vector(b - a)
        if direction is None:
            return
        side = np.array([-direction[1], direction[0]]) * (width / 2)
        self.polygon([a + side, b + side, b - side, a - side])

    def disc(self, centre: np.ndarray, radius: float) -> None:
        cv2.circle(self.array, self._fixed(centre), max(1, round(radius * _ONE)), 255, -1, cv2.LINE_8, _SUBPIXEL)

    def ellipse(self, centre: np.ndarray, half_axes: tuple[float, float], angle_deg: float = 0.0) -> None:
        axes = (max(1, round(half_axes[0] * _ONE)), max(1, round(half_axes[1] * _ONE)))
        cv2.ellipse(self.array, self._fixed(centre), axes, angle_deg, 0, 360, 255, -1, cv2.LINE_8, _SUBPIXEL)

    def sector(self, centre: np.ndarray, radius: float, start_deg: float, end_deg: float) -> None:
        """A filled circular sector between two angles (degrees, clockwise in image coordinates)."""
        axes = (max(1, round(radius * _ONE)),) * 2
        cv2.ellipse(self.array, self._fixed(centre), axes, 0.0, start_deg, end_deg, 255, -1, cv2.LINE_8, _SUBPIXEL)

    def polygon(self, points: list[np.ndarray]) -> None:
        pts = np.array([self._fixed(p) for p in points], dtype=np.int32)
        cv2.fillPoly(self.array, [pts], 255, cv2.LINE_8, _SUBPIXEL)

    def rectangle(self, top_left: np.ndarray, bottom_right: np.ndarray) -> None:
        (x0, y0), (x1, y1) = top_left, bottom_right
        self.polygon([np.array([x0, y0]), np.array([x1, y0]), np.array([x1, y1]), np.array([x0, y1])])


def widened_hips(body: Body, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The hips pushed apart to `spread` times the shoulder width around their midpoint.

    OpenPose hips sit at the hip joints, well inside the silhouette; spreading them to the shoulder width
    makes the torso polygon cover the waist of loose garments (VITON-HD's convention).
    """
    rh, lh = body.p(_K.RIGHT_HIP), body.p(_K.LEFT_HIP)
    mid = (rh + lh) / 2
    direction = _unit_vector(lh - rh)
    if direction is None:
        direction = np.array([1.0, 0.0])
    half = spread * body.width / 2
    return mid - direction * half, mid + direction * half


def draw_arm_bands(
    canvas: Canvas, body: Body, width_units: float = 10.0, joint_units: float = 5.0, wrist_units: float = 4.0
) -> None:
    """A band across the shoulders, shoulder caps, and bands along both arms (shoulder-elbow-wrist) with discs
    at the elbows and wrists."""
    r = body.unit
    rs, ls = _K.RIGHT_SHOULDER, _K.LEFT_SHOULDER
    if body.has(rs, ls):
        canvas.line(body.p(rs), body.p(ls), 12.0 * r)
    for chain in ((rs, _K.RIGHT_ELBOW, _K.RIGHT_WRIST), (ls, _K.LEFT_ELBOW, _K.LEFT_WRIST)):
        joints = [i for i in chain if body.present[i]]
        if not joints or joints[0] != chain[0]:
            continue  # no shoulder: the arm's parsing still goes into the mask
        canvas.ellipse(body.p(chain[0]), (5.0 * r, 6.0 * r))  # the shoulder cap, taller than wide
        for i in joints[1:]:
            canvas.disc(body.p(i), (wrist_units if i == chain[-1] else joint_units) * r)
        for a, b in pairwise(joints):
            canvas.line(body.p(a), body.p(b), width_units * r)


def draw_torso(canvas: Canvas, body: Body) -> None:
    """The torso from the shoulders to the (widened) hips with rounded hip corners, and the neck: a box 10 r
    wide from the neck point up to 9 r above it, so any neckline fits (the face is given back later)."""
    r = body.unit
    rs, ls, rh, lh = _K.RIGHT_SHOULDER, _K.LEFT_SHOULDER, _K.RIGHT_HIP, _K.LEFT_HIP
    if body.has(rs, ls, rh, lh):
        hip_r, hip_l = widened_hips(body)
        for hip in (hip_r, hip_l):
            canvas.ellipse(hip, (3.0 * r, 6.0 * r))
        canvas.line(body.p(rs), hip_r, 6.0 * r)
        canvas.line(body.p(ls), hip_l, 6.0 * r)
        canvas.line(hip_r, hip_l, 12.0 * r)
        canvas.polygon([body.p(rs), body.p(ls), hip_l, hip_r])
    if body.present[_K.NECK]:
        neck = body.p(_K.NECK)
        canvas.rectangle(neck + np.array([-5.0, -9.0]) * r, neck + np.array([5.0, 0.0]) * r)


def _up(body: Body) -> np.ndarray:
    """The body's up direction: from the hips' midpoint to the neck, or the image's up."""
    rh, lh, neck = _K.RIGHT_HIP, _K.LEFT_HIP, _K.NECK
    if body.has(rh, lh, neck):
        up = _unit_vector(body.p(neck) - (body.p(rh) + body.p(lh)) / 2)
        if up is not None:
            return up
    return np.array([0.0, -1.0])


def draw_legs(canvas: Canvas, body: Body, width_units: float, joint_units: float, waist_units: float = 4.0) -> None:
    """The pelvis and both legs, for bottoms and dresses.

    The hips are spread to LOWER_HIP_SPREAD of the shoulder width (the pelvis silhouette, wider than the hip
    joints). The pelvis is the quadrilateral from `waist_units` r above the spread hips down to the knees:
    it fills the crotch, so trousers can become a skirt and back, and leaves room for a higher waist. Each leg
    is a band spread hip - knee - ankle, with discs at the knees and ankles.
    """
    r = body.unit
    rh, lh, rk, lk = _K.RIGHT_HIP, _K.LEFT_HIP, _K.RIGHT_KNEE, _K.LEFT_KNEE
    if not body.has(rh, lh):
        return
    hip_r, hip_l = widened_hips(body, LOWER_HIP_SPREAD)
    raise_by = _up(body) * waist_units * r
    bottom = [body.p(lk), body.p(rk)] if body.has(rk, lk) else [hip_l, hip_r]
    canvas.polygon([hip_r + raise_by, hip_l + raise_by, *bottom])
    for hip, chain in ((hip_r, (rk, _K.RIGHT_ANKLE)), (hip_l, (lk, _K.LEFT_ANKLE))):
        previous = hip
        for i in chain:
            if not body.present[i]:
                break
            canvas.line(previous, body.p(i), width_units * r)
            canvas.disc(body.p(i), joint_units * r)
            previous = body.p(i)


def draw_below_neckline(canvas: Canvas, body: Body, offset_units: float = 3.5) -> None:
    """Everything below the line through the shoulders raised by `offset_units` r.

    Parsers without a neck label (Dress Code's "head" includes the neck) label the neck as face; the face
    label below this line is neck, and is repainted like VITON-HD's neck (as LaDI-VTON does for Dress Code).
    """
    rs, ls = _K.RIGHT_SHOULDER, _K.LEFT_SHOULDER
    if not body.has(rs, ls):
        return
    along = _unit_vector(body.p(ls) - body.p(rs))
    if along is None:
        return
    height, width = canvas.array.shape
    far = float(height + width) * 2
    raise_by = _up(body) * offset_units * body.unit
    a, b = body.p(rs) + raise_by - along * far, body.p(ls) + raise_by + along * far
    down = -_up(body) * far
    canvas.polygon([a, b, b + down, a + down])


def draw_hands(canvas: Canvas, body: Body, reach_units: float = 9.0, offset_units: float = 1.0) -> None:
    """Where a hand can be, beyond each wrist: a half-disc of radius `reach_units` r on the far side of the
    line across the forearm (elbow to wrist; shoulder to wrist without an elbow), `offset_units` r past the
    wrist point so a long sleeve's cuff still fits. Intersected with the arm labels of the parsing, it gives
    the hand pixels, which every agnostic mask keeps."""
    r = body.unit
    for shoulder, elbow, wrist in (
        (_K.RIGHT_SHOULDER, _K.RIGHT_ELBOW, _K.RIGHT_WRIST),
        (_K.LEFT_SHOULDER, _K.LEFT_ELBOW, _K.LEFT_WRIST),
    ):
        if not body.present[wrist]:
            continue
        base = elbow if body.present[elbow] else shoulder if body.present[shoulder] else None
        if base is None:
            continue
        direction = _unit_vector(body.p(wrist) - body.p(base))
        if direction is None:
            continue
        angle = float(np.degrees(np.arctan2(direction[1], direction[0])))
        centre = body.p(wrist) + direction * offset_units * r
        canvas.sector(centre, reach_units * r, angle - 90.0, angle + 90.0)


def forearm_zones(
    body: Body, height: int, width: int, width_units: float = 10.0, beyond_units: float = 4.0
) -> list[np.ndarray]:
    """One zone per arm with an elbow and a wrist: a band `width_units` r wide from the elbow to `beyond_units` r
    past the wrist, where a long sleeve ends (a cuff reaches past the wrist point, over the hand). Returns a
    list of (H, W) uint8 canvases (255 = inside), right arm first; arms without both points are left out."""
    r = body.unit
    zones = []
    for elbow, wrist in ((_K.RIGHT_ELBOW, _K.RIGHT_WRIST), (_K.LEFT_ELBOW, _K.LEFT_WRIST)):
        if not body.has(elbow, wrist):
            continue
        direction = _unit_vector(body.p(wrist) - body.p(elbow))
        if direction is None:
            continue
        canvas = Canvas(height, width)
        canvas.line(body.p(elbow), body.p(wrist) + direction * beyond_units * r, width_units * r)
        zones.append(canvas.array)
    return zones
