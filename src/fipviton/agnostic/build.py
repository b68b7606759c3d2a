"""The agnostic person per garment category: region to repaint, person with it greyed out, parsing without it.

Conventions followed (re-implemented from their descriptions, not copied):

* upper_body: VITON-HD's agnostic-v3.2 / `agnostic-mask` (also used by HR-VITON, StableVITON, IDM-VTON):
  flat-ended bands along the arm skeleton and across the shoulders, shoulder caps and discs at the elbows
  and wrists, the torso polygon from the shoulders to the hips (spread to the shoulder width) with rounded
  hip corners, and a box over the neck, all sized by the shoulder width; the face and the lower-body
  clothes are then given back. We add the parsed upper garment and arms (dilated), so a garment wider than
  the skeleton bands is still covered, and give back the hair, the hands and the accessories too (identity
  pixels that the try-on must keep).
* lower_body / dresses: Dress Code / LaDI-VTON: the dilated garment and legs from the parsing, minus the
  parts that stay (head, hair, shoes, and the upper body for lower_body). We add leg bands and the
  hip-to-knee quadrilateral from the keypoints, so trousers can become a skirt and back. Dresses take the
  upper-body region too. As LaDI-VTON does for Dress Code (whose "head" label includes the neck), face
  pixels below a line just above the shoulders count as neck and are repainted for upper_body and dresses.

Calibration: on the 7 VITON-HD test samples with keypoints, the upper-body mask reaches a mean IoU of 0.92
against the dataset's `agnostic-mask` with the defaults, 0.97 with hair, hands and accessories not kept
(the remaining gap is one wrong wrist keypoint and the parsed-garment growth); see tests/test_agnostic.py.

The region is generous on purpose: a long sleeve replaced by a short one needs the forearm repainted as
skin, a short one replaced by a long one needs room along the arm, and a neckline change needs the neck.

Sleeve ends *(ours)*: where a forearm lies against the body, parsers (the CIHP pseudo-labels of VITON, and so
ours) often give the end of a long sleeve to the trousers, the hand or the background. Those pixels would be
kept, and the old cuff would stay by the hand under a new short sleeve. `find_sleeve_ends` gives them back
to the upper garment when their colour is the sleeve's rather than their own class's (see its docstring), for
the categories that replace the upper garment; `Agnostic.person_parsing` carries the corrected labels to
post-processing, so that it does not restore the old cuff either.

Hems *(ours)*: the same parsers give the last rows of a top to the trousers under it (VITON test 000001: a
black top over light jeans), which would leave a dark line of the old garment under the new one.
`find_hem` gives them back to the garment being replaced with the same colour test, within a thin band along
its border: the upper garment's against trousers and legs for upper_body, the trousers' against the upper
garment for lower_body.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from fipviton.agnostic.geometry import (
    Body,
    Canvas,
    body_from_keypoints,
    draw_arm_bands,
    draw_below_neckline,
    draw_hands,
    draw_legs,
    draw_torso,
    forearm_zones,
)
from fipviton.data.sample import Category
from fipviton.keypoints import NUM_KEYPOINTS
from fipviton.labels import Label, label_table
from fipviton.regions import components_touching, mask_box

AGNOSTIC_GREY = 128  # the fill value of VITON-HD's agnostic-v3.2 images


@dataclass(frozen=True)
class AgnosticConfig:
    """Knobs of the construction. Sizes are in units r = shoulder width / 16.

    scale: multiplies r. VITON-HD rounds r up to the next whole pixel (int(width / 16) + 1), 2-3% more
        at 1024x768; 1.02 fits its masks best there. A fraction, not a pixel, keeps the mask resolution
        independent.
    keep_hair / keep_hands / keep_accessories: give these parsed regions back (never repaint them).
    arm_width, arm_joint, wrist_joint: width of the arm bands, radius of the discs at the elbows and at the
        wrists (VITON-HD v3.2: 10, 5, 4).
    leg_width, leg_joint: the same for the legs (lower_body, dresses).
    garment_dilation: growth of the parsed garment/limb regions before they join the mask (covers the
        blurred garment border that parsers miss).
    hand_reach, hand_offset: a pixel of an arm label counts as hand when it lies on the far side of the line
        across the forearm `hand_offset` past the wrist point, within `hand_reach` of it.
    neck_offset: for upper_body and dresses, face-labelled pixels lower than this above the shoulder line
        are neck (Dress Code parsing has no neck label) and are repainted.
    sleeve_ends: relabel the ends of long sleeves by colour (`find_sleeve_ends`; upper_body and dresses).
    sleeve_beyond: how far past the wrist point a cuff may reach (the forearm zone's end).
    sleeve_min_area: the sleeve pixels an arm's forearm zone needs (in r^2) to count as long-sleeved.
    sleeve_max_distance: the largest CIELAB distance (OpenCV's 8-bit scale) from the sleeve's colour.
    sleeve_min_contrast: the smallest distance between the sleeve's colour and a class's own colour for that
        class's pixels to be relabelled (a beige sleeve on beige skin is left alone). 40 leaves a black leather
        jacket over black trousers alone (in_the_wild/Jensen: 20 and 30 gave half a thigh to the jacket) and
        keeps the cuffs of VITON's dark tops over jeans.
    hem: relabel the border rows of the replaced garment by colour (`find_hem`; upper_body and lower_body),
        with the colour test of the sleeve ends (`sleeve_max_distance`, `sleeve_min_contrast`).
    hem_band: how far from the garment's parsed border its mislabelled rows can reach.
    hem_min_share: the smallest share of the garment's colour in a blend of it and the class's own colour for
        a pixel by the border to count as the garment's.
    hem_max_spread: the largest median CIELAB distance from its median colour that the garment's border or the
        kept class may have (`find_hem` leaves prints and patterns alone).
    """

    scale: float = 1.02
    keep_hair: bool = True
    keep_hands: bool = True
    keep_accessories: bool = True
    arm_width: float = 10.0
    arm_joint: float = 5.0
    wrist_joint: float = 4.0
    leg_width: float = 8.0
    leg_joint: float = 4.5
    garment_dilation: float = 0.5
    hand_reach: float = 12.0
    hand_offset: float = 1.0
    neck_offset: float = 3.5
    sleeve_ends: bool = True
    sleeve_beyond: float = 4.0
    sleeve_min_area: float = 8.0
    sleeve_max_distance: float = 30.0
    sleeve_min_contrast: float = 40.0
    hem: bool = True
    hem_band: float = 1.0
    hem_min_share: float = 0.35
    hem_max_spread: float = 20.0


@dataclass
class Agnostic:
    """The person with the region to repaint removed, at the person's resolution.

    mask:    (H, W) bool, True where the try-on repaints.
    image:   (H, W, 3) uint8 RGB, the person with the mask filled with grey 128.
    parsing: (H, W) uint8 internal labels (`fipviton.labels.Label`), BACKGROUND inside the mask.
    category: the garment category the mask was built for.
    person_parsing: (H, W) uint8 internal labels of the whole person as the mask was built from them: the
        input parsing, with the sleeve ends (`find_sleeve_ends`) relabelled UPPER and the hem (`find_hem`)
        relabelled as the garment being replaced.
    """

    mask: np.ndarray
    image: np.ndarray
    parsing: np.ndarray
    category: Category
    person_parsing: np.ndarray


# Label groups as 256-entry lookup tables for cv2.LUT (uint8 masks, 255 = member).
_FACE = label_table((Label.FACE,))
_HAIR = label_table((Label.HAIR,))
_ACCESSORY = label_table((Label.ACCESSORY,))
_ARMS = label_table((Label.LEFT_ARM, Label.RIGHT_ARM))
_UPPER_PARSED = label_table((Label.UPPER, Label.NECK))
_LOWER_PARSED = label_table((Label.BOTTOM, Label.LEFT_LEG, Label.RIGHT_LEG))
_DRESS = label_table((Label.DRESS,))
_KEEP_FOR_UPPER = label_table((Label.BOTTOM, Label.LEFT_LEG, Label.RIGHT_LEG, Label.SHOES))
_KEEP_FOR_LOWER = label_table((Label.UPPER, Label.LEFT_ARM, Label.RIGHT_ARM, Label.SHOES))
_KEEP_FOR_DRESS = label_table((Label.SHOES,))
COLOUR_TEST_WORK_HEIGHT = 512  # rows at which `find_sleeve_ends` and `find_hem` work on larger photos
# What the end of a sleeve can be mislabelled as, and the labels whose colour stands for each (its "own"
# colour, measured outside the forearm zones): the hand against the face and neck skin.
_SLEEVE_END_CANDIDATES: dict[Category, tuple[tuple[Label, ...], ...]] = {
    Category.UPPER_BODY: ((Label.BOTTOM,), (Label.BACKGROUND,), (Label.LEFT_ARM, Label.RIGHT_ARM)),
    Category.DRESSES: ((Label.BACKGROUND,), (Label.LEFT_ARM, Label.RIGHT_ARM)),
}
_OWN_COLOUR_LABELS = {Label.LEFT_ARM: (Label.FACE, Label.NECK, Label.LEFT_ARM, Label.RIGHT_ARM)}
# The garment a category replaces, and the kept classes (groups with one own colour each) that its border
# rows can be mislabelled as. Dresses replace the upper garment and the trousers alike: nothing to look for.
_HEM_CANDIDATES: dict[Category, tuple[Label, tuple[tuple[Label, ...], ...]]] = {
    Category.UPPER_BODY: (Label.UPPER, ((Label.BOTTOM,), (Label.LEFT_LEG, Label.RIGHT_LEG))),
    Category.LOWER_BODY: (Label.BOTTOM, ((Label.UPPER,),)),
}
_MEDIAN_SAMPLES = 4_000  # pixels a hem's colour median needs at most, at any resolution


def find_sleeve_ends(
    person: np.ndarray,
    parsing: np.ndarray,
    body: Body,
    hand_zone: np.ndarray,
    category: Category,
    cfg: AgnosticConfig,
) -> np.ndarray:
    """(H, W) bool: the ends of long sleeves that the parsing gave to another class.

    Per arm with an elbow and a wrist, in its forearm zone (`forearm_zones`), a pixel of a candidate class
    (trousers, background, hand) is a sleeve end when, in CIELAB, it is closer to the sleeve's median colour
    than to its own class's median colour (measured outside the forearm zones), within `sleeve_max_distance`
    of the sleeve's, and connected to the sleeve. Only long-sleeved arms are looked at: at least
    `sleeve_min_area` r^2 of upper-garment pixels in the zone, and less than that of skin-coloured arm
    outside the hand zone (a bare forearm in front of the torso also puts garment pixels in the zone). A
    class whose own colour is within `sleeve_min_contrast` of the sleeve's is left alone: colour cannot tell
    them apart.

    person (H, W, 3) uint8 RGB; parsing (H, W) uint8 internal labels; body: `geometry.Body`; hand_zone
    (H, W) uint8, 255 where a hand can be (`geometry.draw_hands`).
    """
    height, width = parsing.shape
    candidates = _SLEEVE_END_CANDIDATES.get(category)
    if candidates and height > COLOUR_TEST_WORK_HEIGHT:
        # A cuff's colour and extent need no more than ~512 rows: work there (9x fewer pixels at 1536 rows)
        # and bring the result back, restricted to the candidate classes at full resolution.
        scale = COLOUR_TEST_WORK_HEIGHT / height
        size = (max(1, round(width * scale)), COLOUR_TEST_WORK_HEIGHT)
        sx, sy = size[0] / width, size[1] / height
        small_body = replace(body, points=body.points * np.array([sx, sy]), width=body.width * sx, unit=body.unit * sy)
        small = find_sleeve_ends(
            cv2.resize(person, size, interpolation=cv2.INTER_AREA),
            cv2.resize(parsing, size, interpolation=cv2.INTER_NEAREST),
            small_body,
            cv2.resize(hand_zone, size, interpolation=cv2.INTER_NEAREST),
            category,
            cfg,
        )
        found_u8 = cv2.resize(small.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
        candidate_labels = label_table(label for group in candidates for label in group)
        return (found_u8 > 0) & (cv2.LUT(parsing, candidate_labels) > 0)
    found = np.zeros((height, width), dtype=bool)
    zones = forearm_zones(body, height, width, cfg.arm_width, cfg.sleeve_beyond) if candidates else []
    min_area = cfg.sleeve_min_area * body.unit**2
    long_sleeved = []
    for zone in zones:
        box = mask_box(zone)
        if box is None:
            continue
        inside = zone[box] > 0
        sleeve = inside & (parsing[box] == Label.UPPER)
        if np.count_nonzero(sleeve) >= min_area:
            long_sleeved.append((box, inside, sleeve))
    if not long_sleeved:
        return found
    # The classes' own colours from a grid of about 20,000 pixels: a median needs no more, at any resolution.
    step = max(1, int(np.sqrt(height * width / 20_000)))
    grid = (slice(None, None, step), slice(None, None, step))
    lab_grid = cv2.cvtColor(np.ascontiguousarray(person[grid]), cv2.COLOR_RGB2LAB).astype(np.float32)
    outside = ~np.logical_or.reduce([zone[grid] > 0 for zone in zones])
    parsing_grid = np.ascontiguousarray(parsing[grid])
    own_colours: dict[tuple[Label, ...], np.ndarray | None] = {}
    for group in candidates or ():
        own = (cv2.LUT(parsing_grid, label_table(_OWN_COLOUR_LABELS.get(group[0], group))) > 0) & outside
        own_colours[group] = np.median(lab_grid[own], axis=0) if own.any() else None
    for box, inside, sleeve in long_sleeved:
        crop = cv2.cvtColor(np.ascontiguousarray(person[box]), cv2.COLOR_RGB2LAB).astype(np.float32)
        labels = np.ascontiguousarray(parsing[box])
        sleeve_colour = np.median(crop[sleeve], axis=0)
        to_sleeve = np.linalg.norm(crop - sleeve_colour, axis=2)
        relabel = np.zeros_like(inside)
        for group, own_colour in own_colours.items():
            if own_colour is None or np.linalg.norm(own_colour - sleeve_colour) < cfg.sleeve_min_contrast:
                continue
            near = (to_sleeve < np.linalg.norm(crop - own_colour, axis=2)) & (to_sleeve < cfg.sleeve_max_distance)
            relabel |= inside & (cv2.LUT(labels, label_table(group)) > 0) & near
        # A forearm with bare skin along it (outside the hand zone) is short-sleeved: its zone holds garment
        # pixels only because the forearm lies in front of the torso.
        skin = inside & (hand_zone[box] == 0) & (cv2.LUT(labels, _ARMS) > 0) & ~relabel
        if not relabel.any() or np.count_nonzero(skin) >= min_area:
            continue
        # Only what touches the sleeve: a dark bag or belt further away keeps its label.
        count, components = cv2.connectedComponents((relabel | sleeve).astype(np.uint8), connectivity=8)
        found[box] |= relabel & components_touching(components, sleeve, count)
    return found


def _lab_of(person: np.ndarray, where: np.ndarray, limit: int | None = None) -> np.ndarray:
    """(N, 3) float32 CIELAB (OpenCV's 8-bit scale) of the pixels of `person` (H, W, 3) uint8 RGB where `where`
    (H, W) bool is True, every k-th of them when there are more than `limit` (a median needs no more)."""
    values = person[where]
    if limit is not None:
        values = values[:: max(1, len(values) // limit)]
    return cv2.cvtColor(np.ascontiguousarray(values[None]), cv2.COLOR_RGB2LAB)[0].astype(np.float32)


def _spread(lab: np.ndarray, centre: np.ndarray) -> float:
    """The median CIELAB distance of the colours `lab` (N, 3) from `centre` (3,): small for a plain colour."""
    return float(np.median(np.linalg.norm(lab - centre, axis=1)))


def find_hem(
    person: np.ndarray, parsing: np.ndarray, unit: float, category: Category, cfg: AgnosticConfig
) -> np.ndarray:
    """(H, W) bool: the border rows of the garment being replaced that the parsing gave to a kept class.

    Within `hem_band` r of the garment's parsed pixels, a pixel of a kept class (trousers or legs under a top;
    the top over trousers for lower_body) belongs to the garment when, in CIELAB, its colour is a blend of the
    garment's border colour (the median of the garment's pixels within `hem_band` of that class) and the
    class's own colour (its median farther than 2 `hem_band` from the garment) with at least `hem_min_share`
    of the former, lies within `sleeve_max_distance` of that blend line, and is connected to the garment. A
    class whose own colour is within `sleeve_min_contrast` of the border's is left alone (a black top over
    black trousers), and so is a border or a class that is not one plain colour (`hem_max_spread`).

    person (H, W, 3) uint8 RGB; parsing (H, W) uint8 internal labels; unit: r in pixels (`geometry.Body`).
    """
    height, width = parsing.shape
    found = np.zeros((height, width), dtype=bool)
    entry = _HEM_CANDIDATES.get(category)
    if entry is None:
        return found
    garment_label, groups = entry
    if height > COLOUR_TEST_WORK_HEIGHT:
        # As for the sleeve ends: a hem's colours and extent need no more than ~512 rows (3x faster at 1024).
        # Nearest-neighbour sampling, not area averaging: an averaged pixel on a clean border is a blend of
        # the two colours and would pass the test below for a pixel that is all trousers at full resolution.
        scale = COLOUR_TEST_WORK_HEIGHT / height
        size = (max(1, round(width * scale)), COLOUR_TEST_WORK_HEIGHT)
        small = find_hem(
            cv2.resize(person, size, interpolation=cv2.INTER_NEAREST),
            cv2.resize(parsing, size, interpolation=cv2.INTER_NEAREST),
            unit * scale,
            category,
            cfg,
        )
        # Bilinear, a quarter of the way: no staircase along a slanted hem, and its outer rim kept.
        found_u8 = cv2.resize(small.astype(np.uint8) * 255, (width, height), interpolation=cv2.INTER_LINEAR)
        kept_labels = label_table(label for group in groups for label in group)
        return (found_u8 >= 64) & (cv2.LUT(parsing, kept_labels) > 0)
    garment = cv2.LUT(parsing, label_table((garment_label,)))
    band = cfg.hem_band * unit
    near_garment = _dilate(garment, band) > 0
    far_from_garment = _dilate(garment, 2 * band) == 0
    for group in groups:
        kept = cv2.LUT(parsing, label_table(group))
        zone = near_garment & (kept > 0)
        own = (kept > 0) & far_from_garment
        if not zone.any() or not own.any():
            continue
        border = (garment > 0) & (_dilate(kept, band) > 0)
        border_lab, own_lab = _lab_of(person, border, _MEDIAN_SAMPLES), _lab_of(person, own, _MEDIAN_SAMPLES)
        border_colour, own_colour = np.median(border_lab, axis=0), np.median(own_lab, axis=0)
        if np.linalg.norm(own_colour - border_colour) < cfg.sleeve_min_contrast:
            continue
        # A print, stripes or a pattern on either side: one colour does not stand for it, and its dark or light
        # parts would pass for the other class's (a leopard print's spots as black trousers).
        spread = max(_spread(border_lab, border_colour), _spread(own_lab, own_colour))
        if spread > cfg.hem_max_spread:
            continue
        # Border pixels are blends of the two colours (the dark line under a black top over light jeans is
        # about half and half): a pixel's share of the garment is its position on the segment from the own
        # colour to the border colour; far off that segment it is a third thing (a belt) and keeps its label.
        span = border_colour - own_colour
        offset = _lab_of(person, zone) - own_colour
        share = offset @ span / float(span @ span)
        off_segment = np.linalg.norm(offset - share[:, None] * span, axis=1)
        near = (share >= cfg.hem_min_share) & (off_segment < cfg.sleeve_max_distance)
        found[zone] = near
    if found.any():
        # Only what touches the garment: a belt or a bag beside it, cut off by another class, keeps its label.
        count, components = cv2.connectedComponents((found | (garment > 0)).astype(np.uint8), connectivity=8)
        touching = np.zeros(count, dtype=bool)
        touching[components[garment > 0]] = True
        touching[0] = False
        found &= touching[components]
    return found


def _dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    """Grow a uint8 mask (0/255) by `radius` pixels with an octagon, close to a disc.

    A square (half-width a) followed by a diamond (radius b, repeated 3x3 crosses) is an octagon; with
    a = 0.414 radius and b = the rest, it reaches `radius` both along the axes and along the diagonals. Both
    steps are cheap separable or small-kernel passes, unlike one large elliptic kernel (4x faster at 8 px).
    """
    k = round(radius)
    if k < 1:
        return mask
    a = round(0.414 * k)
    b = k - a
    out = mask
    if a > 0:
        out = cv2.dilate(out, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * a + 1, 2 * a + 1)))
    if b > 0:
        out = cv2.dilate(out, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)), iterations=b)
    return out


def _check_inputs(person: np.ndarray, parsing: np.ndarray, keypoints: np.ndarray | None) -> None:
    if person.ndim != 3 or person.shape[2] != 3 or person.dtype != np.uint8:
        raise ValueError(f"person must be (H, W, 3) uint8, got {person.shape} {person.dtype}")
    if parsing.shape != person.shape[:2]:
        raise ValueError(f"parsing must be (H, W) = {person.shape[:2]}, got {parsing.shape}")
    if keypoints is not None and keypoints.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"keypoints must be ({NUM_KEYPOINTS}, 3), got {keypoints.shape}")


def build_agnostic(
    person: np.ndarray,
    parsing: np.ndarray,
    keypoints: np.ndarray | None,
    category: Category | str,
    config: AgnosticConfig | None = None,
) -> Agnostic:
    """Build the agnostic mask, image and parsing of a person for one garment category.

    person:    (H, W, 3) uint8 RGB.
    parsing:   (H, W) uint8 internal labels.
    keypoints: (18, 3) float32 internal order, x/y in person pixels, confidence (0 = missing); None when no
               pose is known (the mask then comes from the parsing alone, sized by the person's area).
    category:  `Category` or its string value.
    """
    cfg = config or AgnosticConfig()
    category = Category(category)
    _check_inputs(person, parsing, keypoints)
    parsing = np.ascontiguousarray(parsing, dtype=np.uint8)
    height, width = parsing.shape
    body = body_from_keypoints(keypoints, float(cv2.countNonZero(parsing)), cfg.scale)
    grow = cfg.garment_dilation * body.unit
    hand_zone = Canvas(height, width)
    draw_hands(hand_zone, body, cfg.hand_reach, cfg.hand_offset)
    if cfg.sleeve_ends:
        sleeve_ends = find_sleeve_ends(person, parsing, body, hand_zone.array, category, cfg)
        if sleeve_ends.any():
            parsing = parsing.copy()
            parsing[sleeve_ends] = Label.UPPER
    if cfg.hem:
        hem = find_hem(person, parsing, body.unit, category, cfg)
        if hem.any():
            parsing = parsing.copy()  # the caller's parsing is never written to
            parsing[hem] = _HEM_CANDIDATES[category][0]
    arms = cv2.LUT(parsing, _ARMS)
    hands = cv2.bitwise_and(arms, hand_zone.array)

    # What is never repainted: the face (above the neckline); hair, accessories and hands unless configured.
    keep = cv2.LUT(parsing, _FACE)
    if category is not Category.LOWER_BODY:
        neck_zone = Canvas(height, width)
        draw_below_neckline(neck_zone, body, cfg.neck_offset)
        keep &= cv2.bitwise_not(neck_zone.array)
    if cfg.keep_hair:
        keep |= cv2.LUT(parsing, _HAIR)
    if cfg.keep_accessories:
        keep |= cv2.LUT(parsing, _ACCESSORY)
    if cfg.keep_hands:
        keep |= hands

    canvas = Canvas(height, width)
    parsed = np.zeros_like(parsing)
    upper = category in (Category.UPPER_BODY, Category.DRESSES)
    lower = category in (Category.LOWER_BODY, Category.DRESSES)
    if upper:
        draw_arm_bands(canvas, body, cfg.arm_width, cfg.arm_joint, cfg.wrist_joint)
        draw_torso(canvas, body)
        arm_skin = cv2.bitwise_and(arms, cv2.bitwise_not(hands)) if cfg.keep_hands else arms
        parsed |= cv2.LUT(parsing, _UPPER_PARSED) | arm_skin
    if lower:
        draw_legs(canvas, body, cfg.leg_width, cfg.leg_joint)
        parsed |= cv2.LUT(parsing, _LOWER_PARSED)
    if category is Category.DRESSES:
        parsed |= cv2.LUT(parsing, _DRESS)
        keep |= cv2.LUT(parsing, _KEEP_FOR_DRESS)
    elif upper:
        keep |= cv2.LUT(parsing, _KEEP_FOR_UPPER)
    else:
        keep |= cv2.LUT(parsing, _KEEP_FOR_LOWER)

    region = canvas.array | _dilate(parsed, grow)
    mask_u8 = cv2.bitwise_and(region, cv2.bitwise_not(keep))
    image = person.copy()
    cv2.copyTo(np.full_like(person, AGNOSTIC_GREY), mask_u8, image)
    agnostic_parsing = cv2.bitwise_and(parsing, cv2.bitwise_not(mask_u8))  # BACKGROUND (0) inside the mask
    return Agnostic(mask=mask_u8 > 0, image=image, parsing=agnostic_parsing, category=category, person_parsing=parsing)
