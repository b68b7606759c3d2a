"""The two blocks of the mask-aware post-processing, usable on their own.

All arrays are at the person's resolution (H, W):

* images (`generated`, `person`, `image`): (H, W, 3) uint8, any channel order (RGB in this project), 0..255;
* `agnostic_mask`: (H, W) bool, True where the try-on repaints;
* `parsing`: (H, W) uint8 internal labels (`fipviton.labels.Label`) of the ORIGINAL person;
* `warped_mask`: (H, W) float32/float64 in [0, 1] or bool, where the new garment lies after warping;
* restore masks: (H, W) bool.

Blocks:

* `paste_back` (unconditional): the person's own pixels outside the agnostic region replace the generated
  ones, exactly; a feathered seam band lies inside the agnostic region, along its border.
* `identity_mask` + `restore_identity` (conditional): inside the agnostic region, the pixels of identity
  labels (skin, hair, face, accessories, the clothes of the other body half: `IDENTITY_LABELS`) and of the
  backdrop away from the person that the new garment (dilated by a margin) does not cover are given back
  exactly (near the replaced clothes, only backdrop pixels that have the local backdrop's colour); the seam
  is blended in a band just outside them, on the generated side (Poisson or feathered alpha, see
  `PostProcessConfig`).

Every size (seam width, garment margin, speck area) is a fraction of the image size `sqrt(H * W)`, so the
behaviour is the same at 256x192 and 1024x768.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fipviton.data.sample import Category
from fipviton.labels import Label, has_label
from fipviton.regions import components_touching_border, mask_box

BLENDS = ("poisson", "feather")
# SOR sweeps of the band Poisson solve per pixel of band width: 4 leaves < 1 grey level of error (measured
# against 100x as many sweeps on the 256x192 and 1024x768 test scenes).
POISSON_SWEEPS_PER_PX = 4

_SKIN_AND_HEAD = frozenset(
    {
        Label.HAIR,
        Label.FACE,
        Label.NECK,
        Label.LEFT_ARM,
        Label.RIGHT_ARM,
        Label.LEFT_LEG,
        Label.RIGHT_LEG,
        Label.SHOES,
        Label.ACCESSORY,
    }
)
# Bare skin: a background-labelled patch on the person that borders on these is ink, a watch or the backdrop
# between arm and body; one bordered by clothes alone is a hole the parser made in a garment.
_SKIN = frozenset({Label.FACE, Label.NECK, Label.LEFT_ARM, Label.RIGHT_ARM, Label.LEFT_LEG, Label.RIGHT_LEG})
# Smallest share of bare skin in a background patch's labelled border for the patch to be restored.
MIN_SKIN_BORDER = 1 / 3
# Original labels whose pixels are identity for each garment category: never the garment being replaced
# (nor one it may replace: a dress replaces both halves), always skin, head, shoes and accessories.
IDENTITY_LABELS: dict[Category, frozenset[Label]] = {
    Category.UPPER_BODY: _SKIN_AND_HEAD | {Label.BOTTOM},
    Category.LOWER_BODY: _SKIN_AND_HEAD | {Label.UPPER},
    Category.DRESSES: _SKIN_AND_HEAD,
}


@dataclass(frozen=True)
class PostProcessConfig:
    """Switches and knobs. Fractions are of the image size s = sqrt(H * W) (221.7 px at 256x192).

    paste_back: run the unconditional block (original pixels outside the agnostic region).
    restore_identity: run the conditional block (identity pixels inside it).
    blend: seam blending of the restored regions; the seam lies on the generated side so the restored pixels
        stay exact. "poisson" (default): a Poisson solve on the seam band only (generated texture, colour
        offset meeting the person's pixels at the border), so no ghost of the old clothes appears; "feather":
        a plain alpha fade from the person's pixels to the generated ones, which mixes in the person's
        non-identity pixels next to the region. Whole `postprocess` at 1024x768, one thread, median over the
        four bundled example pairs: 80-86 / 46-50 ms (poisson / feather; `benchmarks/bench_postprocess.py`).
    feather_fraction: width of the seam bands (paste back and restore), 0.007 s: 1.6 px at 256x192,
        6.2 px at 1024x768. 0 gives hard seams.
    garment_threshold: `warped_mask` values at or above this count as garment.
    garment_margin_fraction: growth of the garment before it is taken out of the restore region (the warp's
        border is soft and may be off by a few pixels), 0.01 s: 2 px at 256x192, 9 px at 1024x768.
    min_area_fraction: restore-mask components smaller than this fraction of H * W are parser specks and are
        dropped: 10 px at 256x192, 157 px at 1024x768.
    restore_background: also restore the backdrop inside the agnostic region that the new garment does not
        cover (`identity_mask`). Without it the network's backdrop, the near-white of its training photos,
        shows as a pale halo around the garment on any other background.
    background_margin_fraction: how far from the clothes being replaced a backdrop pixel must be to be
        restored, 0.015 s: 3.3 px at 256x192, 13 px at 1024x768. Parsers miss the blurred border of clothes;
        restored, it would come back as a fringe of the old garment.
    backdrop_tolerance: inside that margin (and outside the new garment's), a backdrop-labelled pixel is
        restored after all where the photo there has the colour of the backdrop around it: largest RGB
        difference to the local backdrop colour (`backdrop_colour`) at most this many uint8 levels. Such a
        pixel cannot bring back a fringe of another colour, and without it the network's near-white backdrop
        shows there as a pale rim on any other backdrop. 0 turns it off; needs the person photo
        (`identity_mask(..., person=)`).
    backdrop_colour_fraction: the radius of the neighbourhood the local backdrop colour is the mean of, 0.05 s:
        11 px at 256x192, 44 px at 1024x768.
    """

    paste_back: bool = True
    restore_identity: bool = True
    blend: str = "poisson"
    feather_fraction: float = 0.007
    garment_threshold: float = 0.5
    garment_margin_fraction: float = 0.01
    min_area_fraction: float = 2e-4
    restore_background: bool = True
    background_margin_fraction: float = 0.015
    backdrop_tolerance: float = 16.0
    backdrop_colour_fraction: float = 0.05

    def __post_init__(self) -> None:
        if self.blend not in BLENDS:
            raise ValueError(f"blend must be one of {BLENDS}, got {self.blend!r}")
        for name in (
            "feather_fraction",
            "garment_margin_fraction",
            "min_area_fraction",
            "background_margin_fraction",
            "backdrop_tolerance",
            "backdrop_colour_fraction",
        ):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.garment_threshold <= 1:
            raise ValueError(f"garment_threshold must be in (0, 1], got {self.garment_threshold}")


def config_from_overrides(overrides: list[str] | tuple[str, ...]) -> PostProcessConfig:
    """A `PostProcessConfig` with some fields set from "name=value" texts (a command line's ablation switches,
    e.g. "backdrop_tolerance=0", "restore_identity=false"); the rest keep their defaults. ValueError naming the
    field or the value for anything else."""
    import dataclasses

    defaults = PostProcessConfig()
    kinds = {f.name: type(getattr(defaults, f.name)) for f in dataclasses.fields(PostProcessConfig)}
    values: dict[str, object] = {}
    for text in overrides:
        name, sep, value = text.partition("=")
        name, value = name.strip().replace("-", "_"), value.strip()
        if not sep or name not in kinds:
            raise ValueError(f"expected NAME=VALUE with NAME one of {', '.join(kinds)}; got {text!r}")
        kind = kinds[name]
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError(f"{name} takes true or false, got {value!r}")
            values[name] = value.lower() in ("true", "1", "yes", "on")
        elif kind is float:
            try:
                values[name] = float(value)
            except ValueError:
                raise ValueError(f"{name} takes a number, got {value!r}") from None
        else:
            values[name] = value
    return dataclasses.replace(defaults, **values)  # __post_init__ checks the ranges


def image_size(shape: tuple[int, ...]) -> float:
    """The length all pixel sizes are fractions of: sqrt(H * W) of an (H, W, ...) shape."""
    return float(np.sqrt(shape[0] * shape[1]))


def check_image(name: str, image: np.ndarray, hw: tuple[int, int] | None = None) -> None:
    """Raise ValueError unless `image` is (H, W, 3) uint8 (with (H, W) == `hw` when given)."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{image.shape} {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{name} must be an (H, W, 3) uint8 array, got {got}")
    if hw is not None and image.shape[:2] != hw:
        raise ValueError(f"{name} must be {hw[0]}x{hw[1]} like the person, got {image.shape[0]}x{image.shape[1]}")


def check_mask(name: str, mask: np.ndarray, hw: tuple[int, int], dtypes: str = "bool") -> None:
    """Raise ValueError unless `mask` is (H, W) == `hw` of the given kind: "bool", "uint8" or "soft".

    "soft" admits bool, or float values in [0, 1].
    """
    if not isinstance(mask, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(mask).__name__}")
    if mask.shape != hw:
        raise ValueError(f"{name} must have shape {hw} like the person, got {mask.shape}")
    if dtypes == "soft" and np.issubdtype(mask.dtype, np.floating):
        if mask.size and not (np.isfinite(mask).all() and mask.min() >= 0 and mask.max() <= 1):
            raise ValueError(f"{name} must hold values in [0, 1], got [{mask.min()}, {mask.max()}]")
        return
    wanted = np.uint8 if dtypes == "uint8" else np.bool_
    if mask.dtype != wanted:
        kinds = {"bool": "bool", "uint8": "uint8", "soft": "bool or float in [0, 1]"}
        raise ValueError(f"{name} must be {kinds[dtypes]}, got {mask.dtype}")


def _ellipse(radius: float) -> np.ndarray:
    k = max(round(radius), 0)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))


def depth_alpha(region: np.ndarray, width: float) -> np.ndarray:
    """(H, W) float32 in [0, 1]: 0 outside `region`, rising inside it from its border to 1 at depth > width.

    Depth is the Euclidean distance to the nearest pixel outside the region (1 on the border row), so a seam
    band of `width` pixels lies inside the region and everything deeper is 1 exactly. Image borders are not
    region borders (no seam is wanted where the region leaves the picture).
    """
    alpha = np.zeros(region.shape, np.float32)
    # The transform runs on the region's box grown by one pixel, a ring outside the region: every pixel of the
    # box has a nearest outside pixel in it, so the distances are those of the whole picture (up to one float
    # ulp: OpenCV's rounding depends on the size) at half the cost.
    box = mask_box(region, 1)
    if box is None:
        return alpha
    inside = region[box].astype(np.uint8)
    if width <= 0:
        alpha[box] = inside
        return alpha
    # Pad with "inside" so the distance ignores the picture's edge.
    padded = cv2.copyMakeBorder(inside, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
    depth = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    alpha[box] = np.clip(depth / (width + 1.0), 0.0, 1.0) * inside
    return alpha


def _mix(top: np.ndarray, bottom: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """alpha * top + (1 - alpha) * bottom, uint8; exactly `top` where alpha == 1 and `bottom` where it is 0."""
    out = bottom.copy()
    # cv2.copyTo: 20x faster than np.copyto with a broadcast (H, W, 1) `where` (0.4 vs 7 ms at 1024x768).
    cv2.copyTo(top, (alpha == 1.0).view(np.uint8), out)
    # Arithmetic only on the blended band, a small part of the picture.
    ys, xs = np.nonzero((alpha > 0.0) & (alpha < 1.0))
    a = alpha[ys, xs, None]
    out[ys, xs] = np.rint(a * top[ys, xs] + (1.0 - a) * bottom[ys, xs]).astype(np.uint8)
    return out


def paste_back(
    generated: np.ndarray,
    person: np.ndarray,
    agnostic_mask: np.ndarray,
    config: PostProcessConfig | None = None,
) -> np.ndarray:
    """Unconditional block: the person's pixels everywhere outside `agnostic_mask`, the generated ones inside.

    Returns (H, W, 3) uint8. Outside the mask the result equals `person` exactly; a band of
    `config.feather_fraction * sqrt(H * W)` pixels inside the mask border fades from the person to the
    generated image, hiding the seam without touching what lies outside.
    """
    config = config or PostProcessConfig()
    check_image("person", person)
    hw = person.shape[:2]
    check_image("generated", generated, hw)
    check_mask("agnostic_mask", agnostic_mask, hw)
    width = config.feather_fraction * image_size(hw)
    generated_weight = depth_alpha(agnostic_mask, width)
    return _mix(generated, person, generated_weight)


def identity_mask(
    parsing: np.ndarray,
    warped_mask: np.ndarray,
    agnostic_mask: np.ndarray,
    category: Category | str,
    config: PostProcessConfig | None = None,
    person_mask: np.ndarray | None = None,
    person: np.ndarray | None = None,
) -> np.ndarray:
    """(H, W) bool: the pixels the conditional block restores.

    = original label in `IDENTITY_LABELS[category]` AND inside `agnostic_mask` AND outside the warped garment
    (`warped_mask >= garment_threshold`, dilated by `garment_margin_fraction * sqrt(H * W)`), with components
    smaller than `min_area_fraction * H * W` (parser specks) dropped. Added, where the garment is absent:
    "background" patches on the person whose labelled border is at least `MIN_SKIN_BORDER` bare skin. On the
    person means enclosed (not reaching the image border through background) or, with `person_mask` ((H, W)
    bool, the silhouette, e.g. MediaPipe's segmentation), inside the silhouette. A parser calls a tattoo or a
    watch face on an arm background, and a tattoo across a whole forearm splits the arm so that its patch
    reaches the border through the gap between arm and body; the backdrop between arm and body is not covered
    by the new garment either. A background hole bordered by clothes alone (a parser's hole in a skirt) is not
    restored: it would bring back the old garment.
    With `restore_background`, also the backdrop: "background" pixels that reach the image border through
    background, outside `person_mask` when given, and farther than `background_margin_fraction * sqrt(H * W)`
    from the clothes being replaced (labels outside `IDENTITY_LABELS[category]`); with `person` ((H, W, 3)
    uint8, the original photo) and `backdrop_tolerance`, also the backdrop-labelled pixels inside that margin
    whose colour is the local backdrop's (`backdrop_coloured`).
    """
    config = config or PostProcessConfig()
    category = _category(category)
    if not isinstance(parsing, np.ndarray) or parsing.ndim != 2:
        raise ValueError(f"parsing must be an (H, W) uint8 array, got {getattr(parsing, 'shape', type(parsing))}")
    hw = (int(parsing.shape[0]), int(parsing.shape[1]))
    check_mask("parsing", parsing, hw, "uint8")
    check_mask("agnostic_mask", agnostic_mask, hw)
    check_mask("warped_mask", warped_mask, hw, "soft")
    if person_mask is not None:
        check_mask("person_mask", person_mask, hw)
    if person is not None:
        check_image("person", person, hw)

    identity = has_label(parsing, IDENTITY_LABELS[category])
    keep = identity.copy()
    on_person = _enclosed_background(parsing)
    off_person = (parsing == Label.BACKGROUND) & ~on_person  # background reaching the image border
    backdrop = np.zeros(hw, dtype=bool)
    if config.restore_background:
        backdrop_margin = config.background_margin_fraction * image_size(hw)
        backdrop = _backdrop(parsing, identity, off_person, person_mask, backdrop_margin)
        keep |= backdrop
    keep &= agnostic_mask

    garment = (warped_mask >= config.garment_threshold).astype(np.uint8)
    margin = config.garment_margin_fraction * image_size(hw)
    if margin >= 0.5:
        garment = cv2.dilate(garment, _ellipse(margin))
    keep &= garment == 0
    if person is not None and config.restore_background and config.backdrop_tolerance > 0:
        near_clothes = off_person & agnostic_mask & (garment == 0) & ~keep
        radius = config.backdrop_colour_fraction * image_size(hw)
        keep |= backdrop_coloured(person, near_clothes, backdrop, radius, config.backdrop_tolerance)
    keep = _drop_specks(keep, config.min_area_fraction * hw[0] * hw[1])
    if person_mask is not None:
        on_person |= (parsing == Label.BACKGROUND) & person_mask
    missed = _skin_bordered(on_person, parsing, person_mask)
    return keep | (missed & (garment == 0) & agnostic_mask)


def _backdrop(
    parsing: np.ndarray, identity: np.ndarray, off_person: np.ndarray, person_mask: np.ndarray | None, margin: float
) -> np.ndarray:
    """(H, W) bool: the `off_person` background pixels (reaching the image border through background) outside
    `person_mask` and farther than `margin` px from the clothes being replaced (labelled, but not `identity`).
    Skin and the other clothes may touch it: their borders are the person's own."""
    replaced = (parsing != Label.BACKGROUND) & ~identity
    # A square kernel: it reaches `margin` along the axes and 1.4x it along the diagonals, and unlike a disc
    # it is separable (2 ms instead of 60 at 1024x768 and 13 px).
    k = round(margin)
    square = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * k + 1, 2 * k + 1))
    backdrop = off_person & (cv2.dilate(replaced.astype(np.uint8), square) == 0)
    return backdrop & ~person_mask if person_mask is not None else backdrop


def backdrop_colour(person: np.ndarray, backdrop: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """The local colour of the backdrop: (h, w, 3) float32, the mean of `person` (H, W, 3) uint8 over the
    `backdrop` pixels ((H, W) bool) in a square of half-width `radius` px around each pixel, and (h, w) bool,
    where that square holds enough of them (a tenth of it) for the mean to say anything. (h, w) = (H, W) // step
    with step = `colour_step(radius)`: a mean over a square of 2 * radius px changes little from one pixel to
    the next, so it is taken on a grid `step` px apart (pixel (y, x) reads cell (y // step, x // step))."""
    step = colour_step(radius)
    h, w = backdrop.shape[0] // step, backdrop.shape[1] // step
    weight = backdrop.astype(np.float32)
    total = person.astype(np.float32) * weight[..., None]
    if step > 1:  # area averages of whole cells (the last partial row / column of cells is dropped)
        weight = cv2.resize(weight[: h * step, : w * step], (w, h), interpolation=cv2.INTER_AREA)
        total = cv2.resize(total[: h * step, : w * step], (w, h), interpolation=cv2.INTER_AREA)
    size = 2 * max(1, round(radius / step)) + 1
    weight = cv2.blur(weight, (size, size), borderType=cv2.BORDER_CONSTANT)
    total = cv2.blur(total, (size, size), borderType=cv2.BORDER_CONSTANT)
    return total / np.maximum(weight, 1e-6)[..., None], weight >= 0.1


def colour_step(radius: float) -> int:
    """The grid step of `backdrop_colour`: 1 px up to a radius of 16 px, then radius / 8 (5 px at 1024x768)."""
    return max(1, int(radius // 8)) if radius > 16 else 1


def backdrop_coloured(
    person: np.ndarray, candidates: np.ndarray, backdrop: np.ndarray, radius: float, tolerance: float
) -> np.ndarray:
    """(H, W) bool: the `candidates` whose colour in `person` differs from the local `backdrop_colour` by at
    most `tolerance` uint8 levels in every channel. Only the candidates' box (grown by `radius`) is looked at."""
    chosen = np.zeros_like(candidates)
    box = mask_box(candidates, int(np.ceil(radius)) + 1)
    if box is None or not backdrop[box].any():
        return chosen
    colour, known = backdrop_colour(person[box], backdrop[box], radius)
    step = colour_step(radius)
    ys, xs = np.nonzero(candidates[box])
    cy, cx = np.minimum(ys // step, colour.shape[0] - 1), np.minimum(xs // step, colour.shape[1] - 1)
    difference = np.abs(person[box][ys, xs].astype(np.float32) - colour[cy, cx]).max(axis=-1)
    close = (difference <= tolerance) & known[cy, cx]
    chosen[box][ys[close], xs[close]] = True
    return chosen


def _enclosed_background(parsing: np.ndarray) -> np.ndarray:
    """(H, W) bool: BACKGROUND-labelled pixels not 4-connected through background to the image border."""
    background = parsing == Label.BACKGROUND
    count, labels = cv2.connectedComponents(background.view(np.uint8), connectivity=4)
    return background & ~components_touching_border(labels, count)


def _skin_bordered(patches: np.ndarray, parsing: np.ndarray, person_mask: np.ndarray | None) -> np.ndarray:
    """(H, W) bool: the connected parts of `patches` whose one-pixel ring of labelled (non-background) pixels,
    inside `person_mask` when given, is at least `MIN_SKIN_BORDER` bare skin (`_SKIN`)."""
    chosen = np.zeros_like(patches)
    # Work on the patches' bounding box grown by the ring: patches are small, the picture is not.
    crop = mask_box(patches, 1)
    if crop is None:
        return chosen
    patches, parsing = patches[crop], parsing[crop]
    count, labels = cv2.connectedComponents(patches.view(np.uint8), connectivity=8)
    # Each ring pixel belongs to the patch next to it (the largest label among its 8 neighbours).
    owner = cv2.dilate(labels.astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int64)
    ring = ~patches & (parsing != Label.BACKGROUND) & (owner > 0)
    if person_mask is not None:
        ring &= person_mask[crop]
    skin = has_label(parsing, _SKIN)
    on_skin = np.bincount(owner[ring & skin], minlength=count)
    on_any = np.bincount(owner[ring], minlength=count)
    kept = (on_skin > 0) & (on_skin >= MIN_SKIN_BORDER * on_any)
    kept[0] = False
    chosen[crop] = kept[labels]
    return chosen


def _drop_specks(mask: np.ndarray, min_area: float) -> np.ndarray:
    if min_area <= 1 or not mask.any():
        return mask
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    big = stats[:, cv2.CC_STAT_AREA] >= min_area
    big[0] = False  # component 0 is the background
    return big[labels] if count > 1 else mask


def seam_band(region: np.ndarray, width: float, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The band just outside `region` where its seam is blended, and the region's weight there.

    Returns (band, weight): (H, W) bool, pixels outside `region` within `width` + 1 px of it (and inside
    `allowed` when given); (H, W) float32 in [0, 1], 1 on the region, falling to 0 across the band, 0 beyond.
    """
    band = np.zeros_like(region)
    weight = np.zeros(region.shape, np.float32)
    # Only the region's box grown by the band can hold band pixels; the region lies inside it whole, so the
    # distances to it are the whole picture's there (up to a float ulp, see depth_alpha).
    box = mask_box(region, int(np.ceil(width)) + 2)
    if box is None:
        return band, weight
    inner = region[box]
    near = 1.0 - depth_alpha(~inner, width)  # depth outside the region, so the region itself keeps 1
    band[box] = (near > 0) & ~inner
    if allowed is not None:
        band &= allowed
    weight[box] = np.where(band[box] | inner, near, 0.0)
    return band, weight


def restore_identity(
    image: np.ndarray,
    person: np.ndarray,
    restore_mask: np.ndarray,
    config: PostProcessConfig | None = None,
    seam_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Conditional block: give the person's pixels back over `restore_mask` (from `identity_mask`).

    image:     (H, W, 3) uint8, the current result (the generated image, usually after `paste_back`).
    seam_mask: (H, W) bool or None, where the seam band may lie; `postprocess` passes the agnostic mask when
               paste back ran, since the person's pixels outside it are final already. None: anywhere.
    Returns (H, W, 3) uint8 that equals `person` exactly on `restore_mask` (a tattoo comes back as it was).
    The seam lies on the generated side, in a band `feather_fraction * sqrt(H * W)` px wide around the
    mask: "poisson" keeps the generated texture there and adds a smooth colour offset that meets the
    person's pixels at the border (`_poisson_band`); "feather" fades from the person's pixels to `image`.
    """
    config = config or PostProcessConfig()
    check_image("person", person)
    hw = person.shape[:2]
    check_image("image", image, hw)
    check_mask("restore_mask", restore_mask, hw)
    if seam_mask is not None:
        check_mask("seam_mask", seam_mask, hw)
    out = image.copy()
    if not restore_mask.any():
        return out
    width = config.feather_fraction * image_size(hw)
    band, weight = seam_band(restore_mask, width, seam_mask)
    if band.any():
        if config.blend == "poisson":
            out = _poisson_band(image, person, restore_mask, band, width)
        else:
            out = _mix(person, image, weight)
    cv2.copyTo(person, restore_mask.view(np.uint8), out)
    return out


def _poisson_band(
    image: np.ndarray, person: np.ndarray, region: np.ndarray, band: np.ndarray, width: float, steps: int | None = None
) -> np.ndarray:
    """Poisson blend over the band only: `image`'s gradients there, the person's pixels on the region side.

    Solves for an offset o that is harmonic on the band, equals person - image on the region and 0 beyond
    the band (Neumann at the picture's edge); returns image + o on the band, `image` elsewhere. The band is a
    few pixels wide, so red-black SOR over its pixels alone converges in O(width) sweeps (about 38 ms for
    14,500 band pixels at 1024x768, within 1 grey level of the converged solution).
    `cv2.seamlessClone` cannot do this: it erodes its mask by 3 px, which wipes out a thin band, and solved
    over the whole region it shifts the restored colours toward the surroundings.
    """
    h, w = band.shape
    ys, xs = np.nonzero(band)
    # Red pixels ((y + x) even) first, then black: each half-sweep then updates one contiguous slice in place.
    red = (ys + xs) % 2 == 0
    order = np.concatenate([np.flatnonzero(red), np.flatnonzero(~red)])
    ys, xs = ys[order], xs[order]
    count, red_count = len(ys), int(red.sum())
    index = ys * w + xs
    # Neighbours off the picture are the pixel itself (zero normal derivative at the edge).
    neighbours = np.stack(
        [
            np.where(ys > 0, index - w, index),
            np.where(ys < h - 1, index + w, index),
            np.where(xs > 0, index - 1, index),
            np.where(xs < w - 1, index + 1, index),
        ]
    )
    # Compact numbering, not full-frame arrays: the band is 0..count-1, then its neighbours off the band
    # (fixed: the person - image difference on the region, 0 beyond the band).
    slot = np.full(h * w, -1, np.int64)
    slot[index] = np.arange(count)
    fixed = np.unique(neighbours[slot[neighbours] < 0])
    slot[fixed] = count + np.arange(len(fixed))
    around = slot[neighbours]
    offset = np.zeros((count + len(fixed), 3), np.float32)
    on_region = region.reshape(-1)[fixed]
    source, target = fixed[on_region], count + np.flatnonzero(on_region)
    offset[target] = person.reshape(-1, 3)[source].astype(np.float32) - image.reshape(-1, 3)[source]
    # Over-relaxation factor that is optimal for a strip of this width.
    omega = 2.0 / (1.0 + np.sin(np.pi / (width + 2.0)))
    if steps is None:
        steps = POISSON_SWEEPS_PER_PX * int(np.ceil(width + 2))
    halves = [(slice(0, red_count), around[:, :red_count]), (slice(red_count, count), around[:, red_count:])]
    for _ in range(steps):
        for at, (up, down, left, right) in halves:
            change = offset[up]
            change += offset[down]
            change += offset[left]
            change += offset[right]
            change *= 0.25
            change -= offset[at]
            change *= omega
            offset[at] += change
    blended = image.reshape(-1, 3)[index] + np.rint(offset[:count])
    out = image.copy()
    out.reshape(-1, 3)[index] = np.clip(blended, 0, 255).astype(np.uint8)  # out is contiguous: a view
    return out


def _category(category: Category | str) -> Category:
    try:
        return Category(category)
    except ValueError:
        names = ", ".join(c.value for c in Category)
        raise ValueError(f"category must be one of {names}, got {category!r}") from None
