"""Garment analysis for product photos: a garment mask without learned weights, and the category.

The in-shop photos of every try-on dataset (and of most shops) show one garment on a plain, nearly uniform
background. The mask is estimated as "everything that is not background connected to the image border":

1. the background colour is the median of a thin border strip (robust to a garment that touches one edge);
2. a pixel is background-like when its colour is close to that colour (largest RGB channel difference, at
   most 5 levels or 3x the border noise: a white garment differs from a white background by ~10 levels) *and*
   it is not on an edge (Sobel gradient of the lightness): the outline of a light garment still shows as a
   gradient, which stops the flood fill;
3. background = background-like pixels connected to the border (a flood fill from the border), then grown
   by a few pixels into the outline's gradient and JPEG ringing (which the edge test had kept out), but not
   into flat pixels, so the rim of a white garment stays garment;
4. the rest is opened and closed (morphology), components smaller than 5 % of the largest are dropped, and
   holes are filled (the dataset masks have none: a shirt's neck opening is part of its silhouette);
5. a photo whose border is mostly not the background colour (a close-up that fills the frame) is all garment,
   as the dataset masks have it. Photos larger than `MAX_SIDE` are analysed at that size.

Measured (`fipviton eval garment-mask`): mean IoU 0.952 on the 2,032 VITON 256x192 test cloths, 0.98 on
VITON-HD test. A few percent of the VITON masks are themselves wrong (made by a threshold that drops light
colours: yellow, pink, white garments come with holes); they cost about 0.02 of mean IoU.

The category is never guessed from the photo: the user gives it (`Category.UPPER_BODY` by default).
Photos of a garment worn by a model are recognised by face detection; `analyze_garment` then takes the
garment from the human parser when one is given.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fipviton.data.sample import Category
from fipviton.labels import Label
from fipviton.regions import components_touching_border

if TYPE_CHECKING:
    from fipviton.analysis.parser import HumanParser

# Photos larger than this (long side) are analysed at this size: VITON-HD's resolution.
MAX_SIDE = 512  # the try-on needs the outline, not every pixel: 4x less work at 1024x768
# RGB distance (largest channel difference) below which a pixel may be background, at least; raised with
# the border noise.
_MIN_COLOR_TOL = 5.0
# Gradient magnitude (Sobel on Lab L, per pixel) above which a pixel is an edge and stops the fill.
_EDGE_TOL = 16.0
# Below this fraction of plain border pixels the photo is not a product photo on a plain background.
_MIN_PLAIN_BORDER = 0.6
# Regrowing the background after the fill admits pixels up to this multiple of the colour tolerance.
_REGROW_FACTOR = 6.0
_REGROW_ITERS = 3
_REGROW_EDGE = 0.25
# Components smaller than this fraction of the largest are dropped (specks, logos of the shop, shadows).
# A face whose widened box is at least this much garment is a print on the garment, not a wearer.
_PRINTED_FACE_INSIDE = 0.97
_MIN_COMPONENT_FRACTION = 0.05


# Parsing labels that make up the garment of each category (for photos of a garment worn by a person).
_CATEGORY_LABELS: dict[Category, tuple[Label, ...]] = {
    Category.UPPER_BODY: (Label.UPPER,),
    Category.LOWER_BODY: (Label.BOTTOM,),
    Category.DRESSES: (Label.DRESS, Label.UPPER, Label.BOTTOM),
}


@dataclass
class GarmentAnalysis:
    """What we know about an in-shop garment photo.

    mask:       (h, w) bool, True on the garment, same size as the photo.
    category:   the garment category (given by the user; not estimated).
    background: (3,) uint8 RGB background colour estimated from the border.
    warnings:   human-readable notes (e.g. a non-uniform background, an empty mask).
    """

    mask: np.ndarray
    category: Category
    background: np.ndarray
    warnings: list[str] = field(default_factory=list)


def _border_pixels(image: np.ndarray, width: int) -> np.ndarray:
    return np.concatenate(
        [
            image[:width].reshape(-1, image.shape[2]),
            image[-width:].reshape(-1, image.shape[2]),
            image[:, :width].reshape(-1, image.shape[2]),
            image[:, -width:].reshape(-1, image.shape[2]),
        ]
    )


def _plain_border_fraction(border_rgb: np.ndarray, background_rgb: np.ndarray) -> float:
    """Fraction of border pixels (N, 3) within a JPEG-noise tolerance of the background colour."""
    diff = np.abs(border_rgb.astype(np.int16) - background_rgb.astype(np.int16)).max(axis=1)
    return float((diff < 12).mean())


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill every background region not connected to the border of a bool mask (H, W)."""
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = mask
    flood = padded.copy()
    ff_mask = np.zeros((h + 4, w + 4), np.uint8)
    cv2.floodFill(flood, ff_mask, (0, 0), 1)
    return mask | (flood[1:-1, 1:-1] == 0)


def garment_mask(image: np.ndarray, return_background: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Estimate the garment mask of a product photo.

    image: (h, w, 3) uint8 RGB, garment on a plain background.
    Returns a bool (h, w) mask, True on the garment (and the RGB background colour if `return_background`).
    Works at any resolution: the thresholds are per pixel and the morphology scales with the image size.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"garment_mask expects (h, w, 3) uint8, got {image.shape} {image.dtype}")
    h, w = image.shape[:2]
    if max(h, w) > MAX_SIDE:
        # Large photos: estimate at a long side of MAX_SIDE and resize the mask back (smoothly, then threshold).
        factor = MAX_SIDE / max(h, w)
        small = cv2.resize(image, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA)
        small_mask, background_rgb = garment_mask(small, return_background=True)  # type: ignore[misc]
        soft = cv2.resize(small_mask.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        full = soft >= 0.5
        return (full, background_rgb) if return_background else full
    scale = min(h, w) / 192.0  # thresholds and kernels are tuned at VITON's 256x192
    # Lightness (Lab L, 0..100) for the gradients.
    lightness = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32) * (100.0 / 255.0)
    border_w = max(2, round(2 * scale))
    border_rgb = _border_pixels(image, border_w)
    background_rgb = np.median(border_rgb, axis=0).astype(np.uint8)

    # Chebyshev distance in RGB: a white garment differs from a white background by ~10 grey levels in
    # one channel at least, which a Lab norm compresses to ~3 units.
    if _plain_border_fraction(border_rgb, background_rgb) < _MIN_PLAIN_BORDER:
        # Not a garment on a plain background (a close-up that fills the frame, a scene): the garment is
        # taken to fill the whole photo, as the datasets' masks do for such crops.
        full = np.ones((h, w), dtype=bool)
        return (full, background_rgb) if return_background else full
    diff = cv2.absdiff(image, np.full_like(image, background_rgb))
    dist = np.maximum(np.maximum(diff[..., 0], diff[..., 1]), diff[..., 2]).astype(np.float32)
    # Border noise: the spread of the border's distances, ignoring the garment where it touches the edge.
    border_dist = np.abs(border_rgb.astype(np.int16) - background_rgb.astype(np.int16)).max(axis=1)
    noise = float(np.percentile(border_dist, 75))
    color_tol = max(_MIN_COLOR_TOL, 3.0 * noise)

    # Gradients on a slightly smoothed L channel; JPEG blocks produce small gradients everywhere.
    lum = cv2.GaussianBlur(lightness, (0, 0), 0.8 * max(1.0, scale))
    gx = cv2.Sobel(lum, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(lum, cv2.CV_32F, 0, 1, ksize=3)
    grad = np.sqrt(gx * gx + gy * gy) / 4.0
    edge_tol = max(_EDGE_TOL, 3.0 * noise) / max(1.0, scale) ** 0.5

    candidate = (dist < color_tol) & (grad < edge_tol)
    # Flood fill from the border through background-like pixels.
    count, labels = cv2.connectedComponents(candidate.astype(np.uint8), connectivity=4)
    background = components_touching_border(labels, count)
    # The edge test also stops the fill one or two pixels outside the outline (the gradient is wide there)
    # and JPEG ringing leaves a halo: regrow the background into colour-close pixels next to it.
    grow_kernel = np.ones((3, 3), np.uint8)
    # Only where the image changes (the outline and its ringing): the flat rim of a white garment is
    # within the regrow tolerance of a white background too, but it has no gradient.
    close = (dist < _REGROW_FACTOR * color_tol) & (grad >= _REGROW_EDGE * edge_tol)
    for _ in range(max(1, round((_REGROW_ITERS) * scale))):
        background |= cv2.dilate(background.astype(np.uint8), grow_kernel).astype(bool) & close
    fg = ~background

    k = max(3, round(3 * scale) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_OPEN, kernel).astype(bool)
    fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)

    fg = _largest_components(fg)
    if return_background:
        return fg, background_rgb
    return fg


def analyze_garment(
    image: np.ndarray,
    category: Category | str = Category.UPPER_BODY,
    parser: HumanParser | None = None,
    detect_person: bool = True,
) -> GarmentAnalysis:
    """Garment mask and category of a garment photo (h, w, 3) uint8 RGB.

    A product photo gets the weight-free mask of `garment_mask`. A photo of the garment worn by a person
    (detected by face detection when `detect_person`) is a different problem: the background method would
    return the whole person. With a `parser` the mask is then the parsed garment of the category (upper
    clothes; bottoms; dresses plus upper clothes and bottoms), otherwise the result carries a warning.
    """
    category = Category(category)
    warnings: list[str] = []
    mask, background = garment_mask(image, return_background=True)
    h, w = mask.shape
    if detect_person and _shows_person(image, mask):
        if parser is not None:
            from fipviton.analysis.person import parse_photo, restrict_to_person
            from fipviton.analysis.pose import estimate_pose
            from fipviton.errors import NoPersonError

            parsing = parse_photo(parser, image)
            # Without a body (a close-up of a face), the parsing stays as it is.
            with contextlib.suppress(NoPersonError):
                parsing = restrict_to_person(parsing, estimate_pose(image, category=None).person_mask)
            mask = _largest_components(np.isin(parsing, [int(v) for v in _CATEGORY_LABELS[category]]))
            warnings.append("the garment photo shows a person: the garment mask comes from the human parser")
        else:
            warnings.append(
                "the garment photo shows a person: the mask covers the whole person (a product photo on a "
                "plain background works best)"
            )
    else:
        border = _border_pixels(image, max(2, round(2 * min(h, w) / 192.0)))
        if _plain_border_fraction(border, background) < _MIN_PLAIN_BORDER:
            warnings.append(
                "the garment photo's background is not uniform: the garment is taken to fill the whole photo; "
                "a product photo on a plain background works best"
            )
    frac = float(mask.mean())
    if frac < 0.02:
        warnings.append("no garment found in the garment photo (the mask is almost empty)")
    return GarmentAnalysis(mask=mask, category=category, background=background, warnings=warnings)


def _shows_person(image: np.ndarray, product_mask: np.ndarray) -> bool:
    """True when face detection finds a worn garment's model: a face of a reasonable size that is not a print.

    A portrait printed on a T-shirt is a face too. On a product photo it lies well inside the garment
    silhouette (`product_mask`, from the background method), while a model's head has background beside
    it: a face whose widened box is almost all garment is taken to be a print.
    """
    from fipviton.analysis.pose import detect_faces

    h, w = image.shape[:2]
    for x0, y0, x1, y1, score in detect_faces(image):
        if (x1 - x0) * (y1 - y0) < 0.002 * h * w or score < 0.7:
            continue
        bw, bh = x1 - x0, y1 - y0
        wx0, wx1 = max(0, round(x0 - 0.5 * bw)), min(w, round(x1 + 0.5 * bw))
        wy0, wy1 = max(0, round(y0 - 0.3 * bh)), min(h, round(y1 + 0.3 * bh))
        if product_mask[wy0:wy1, wx0:wx1].mean() < _PRINTED_FACE_INSIDE:
            return True
    return False


def _largest_components(mask: np.ndarray) -> np.ndarray:
    """Components of a bool mask at least `_MIN_COMPONENT_FRACTION` of the largest one, holes filled."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = 1 + np.flatnonzero(areas >= _MIN_COMPONENT_FRACTION * areas.max())
    return _fill_holes(np.isin(labels, keep))


def mask_iou(pred: np.ndarray, target: np.ndarray) -> float:
    """Intersection over union of two bool masks (H, W); 1.0 when both are empty."""
    union = np.logical_or(pred, target).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(pred, target).sum() / union)
