"""Pictures of analysis results: the skeleton on the photo, and one grid that shows every map at once."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fipviton.analysis.densepose import render_parts
from fipviton.analysis.person import PersonAnalysis
from fipviton.keypoints import SKELETON
from fipviton.labels import colorize_labels

_TITLE_HEIGHT = 28
_BONE_COLOR = (255, 64, 64)
_JOINT_COLOR = (255, 255, 0)


def draw_pose(
    image: np.ndarray,
    keypoints: np.ndarray,
    face_box: tuple[int, int, int, int] | None = None,
    min_confidence: float = 0.2,
) -> np.ndarray:
    """Copy of an RGB uint8 photo (H, W, 3) with the COCO-18 skeleton (18, 3) and the face box drawn on it."""
    out = image.copy()
    thick = max(2, round(max(image.shape[:2]) / 300))
    present = keypoints[:, 2] >= min_confidence
    for a, b in SKELETON:
        if present[a] and present[b]:
            pa = (int(keypoints[a, 0]), int(keypoints[a, 1]))
            pb = (int(keypoints[b, 0]), int(keypoints[b, 1]))
            cv2.line(out, pa, pb, _BONE_COLOR, thick, cv2.LINE_AA)
    for x, y, c in keypoints:
        if c >= min_confidence:
            cv2.circle(out, (int(x), int(y)), thick + 2, _JOINT_COLOR, -1, cv2.LINE_AA)
    if face_box is not None:
        x0, y0, x1, y1 = face_box
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (0, 255, 0), thick)
    return out


def blend(image: np.ndarray, colors: np.ndarray, mask: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """RGB uint8 photo with `colors` (H, W, 3) blended in at `alpha` where `mask` (H, W) is True."""
    out = image.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * colors[mask].astype(np.float32)
    return out.round().astype(np.uint8)


def mask_picture(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The photo where the mask is True, dark grey elsewhere, with the mask's outline in green."""
    out = np.where(mask[..., None], image, (image * 0.25).astype(np.uint8))
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, (0, 255, 0), max(1, round(max(mask.shape) / 400)))
    return out


def _panel(picture: np.ndarray, title: str, height: int) -> np.ndarray:
    h, w = picture.shape[:2]
    width = max(1, round(w * height / h))
    body = cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA if h > height else cv2.INTER_LINEAR)
    strip = np.full((_TITLE_HEIGHT, width, 3), 255, np.uint8)
    cv2.putText(strip, title, (6, _TITLE_HEIGHT - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, body], axis=0)


def grid(panels: Sequence[tuple[str, np.ndarray]], height: int = 512, columns: int = 3) -> np.ndarray:
    """One RGB uint8 picture of titled panels (title, RGB image), `columns` per row, each `height` tall."""
    tiles = [_panel(picture, title, height) for title, picture in panels]
    rows = []
    for start in range(0, len(tiles), columns):
        row = tiles[start : start + columns]
        rows.append(np.concatenate([np.pad(t, ((0, 0), (0, 4), (0, 0)), constant_values=255) for t in row], 1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(rows, axis=0)


def analysis_grid(
    image: np.ndarray,
    analysis: PersonAnalysis,
    agnostic_image: np.ndarray | None = None,
    garment: np.ndarray | None = None,
    garment_mask: np.ndarray | None = None,
    height: int = 512,
) -> np.ndarray:
    """The overlay picture of `fipviton analyze`: pose, parsing, body parts, person mask, agnostic, garment.

    `analysis` is the `PersonAnalysis` of `image` (H, W, 3) uint8; the garment and its mask are optional.
    """
    parsing = analysis.parsing
    parts = analysis.body_parts
    panels: list[tuple[str, np.ndarray]] = [
        ("pose + face", draw_pose(image, analysis.keypoints, analysis.face_box)),
        ("parsing", blend(image, colorize_labels(parsing), parsing > 0, 0.7)),
        ("body parts", blend(image, render_parts(parts), parts > 0, 0.85)),
        ("person mask", mask_picture(image, analysis.person_mask)),
    ]
    if agnostic_image is not None:
        panels.append(("agnostic", agnostic_image))
    if garment is not None and garment_mask is not None:
        panels.append(("garment mask", mask_picture(garment, garment_mask)))
    return grid(panels, height=height, columns=3)
