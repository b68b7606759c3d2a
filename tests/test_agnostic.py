"""Agnostic construction: calibration against VITON-HD's own masks, and behaviour per category."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fipviton.agnostic import AGNOSTIC_GREY, Agnostic, AgnosticConfig, build_agnostic
from fipviton.data import Category, open_dataset
from fipviton.keypoints import Keypoint, scale_keypoints
from fipviton.labels import LABEL_COLORS, Label

K = Keypoint
MIN_MEAN_IOU = 0.85


# --- a synthetic frontal person, drawn at any resolution --------------------------------------------------

# Keypoints of a frontal person in a 1024x768 frame (x, y); the person's right is on the image's left.
_POSE_1024 = {
    K.NOSE: (384, 175), K.NECK: (384, 300),
    K.RIGHT_SHOULDER: (264, 310), K.RIGHT_ELBOW: (232, 480), K.RIGHT_WRIST: (218, 640),
    K.LEFT_SHOULDER: (504, 310), K.LEFT_ELBOW: (536, 480), K.LEFT_WRIST: (550, 640),
    K.RIGHT_HIP: (330, 620), K.RIGHT_KNEE: (322, 800), K.RIGHT_ANKLE: (318, 960),
    K.LEFT_HIP: (438, 620), K.LEFT_KNEE: (446, 800), K.LEFT_ANKLE: (450, 960),
    K.RIGHT_EYE: (364, 160), K.LEFT_EYE: (404, 160), K.RIGHT_EAR: (336, 170), K.LEFT_EAR: (432, 170),
}  # fmt: skip


def _synthetic(height: int, dress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(person, parsing, keypoints) of a drawn person at height x 3/4 height.

    Upper garment with short sleeves + trousers, or (dress=True) a knee-length dress with bare lower legs.
    Bare forearms and hands are arm labels, as in CIHP-style parsing.
    """
    width = height * 3 // 4
    s = height / 1024

    def pt(x: float, y: float) -> tuple[int, int]:
        return round(x * s), round(y * s)

    def kp(k: Keypoint) -> tuple[int, int]:
        return pt(*_POSE_1024[k])

    def thick(v: float) -> int:
        return max(1, round(v * s))

    parsing = np.zeros((height, width), np.uint8)
    # Hair down to the shoulders; the chin ~5.5 r above the shoulder line, as in VITON-HD.
    cv2.ellipse(parsing, pt(384, 190), (thick(82), thick(130)), 0, 0, 360, int(Label.HAIR), -1)
    cv2.rectangle(parsing, pt(356, 215), pt(412, 320), int(Label.NECK), -1)
    cv2.ellipse(parsing, pt(384, 170), (thick(52), thick(56)), 0, 0, 360, int(Label.FACE), -1)
    for label, chain in ((Label.RIGHT_ARM, (K.RIGHT_SHOULDER, K.RIGHT_ELBOW, K.RIGHT_WRIST)),
                         (Label.LEFT_ARM, (K.LEFT_SHOULDER, K.LEFT_ELBOW, K.LEFT_WRIST))):  # fmt: skip
        cv2.line(parsing, kp(chain[0]), kp(chain[1]), int(label), thick(64))
        cv2.line(parsing, kp(chain[1]), kp(chain[2]), int(label), thick(52))
        wrist = np.array(_POSE_1024[chain[2]], float)
        direction = wrist - np.array(_POSE_1024[chain[1]], float)
        hand = wrist + direction / np.linalg.norm(direction) * 45
        cv2.circle(parsing, pt(*hand), thick(36), int(label), -1)
    torso = [pt(250, 300), pt(518, 300), pt(470, 650), pt(298, 650)]
    if dress:
        skirt = [pt(298, 600), pt(470, 600), pt(500, 820), pt(268, 820)]
        cv2.fillPoly(parsing, [np.array(torso), np.array(skirt)], int(Label.DRESS))
        for label, knee, ankle in ((Label.RIGHT_LEG, K.RIGHT_KNEE, K.RIGHT_ANKLE),
                                   (Label.LEFT_LEG, K.LEFT_KNEE, K.LEFT_ANKLE)):  # fmt: skip
            cv2.line(parsing, kp(knee), kp(ankle), int(label), thick(56))
    else:
        cv2.fillPoly(parsing, [np.array(torso)], int(Label.UPPER))
        for shoulder, elbow in ((K.RIGHT_SHOULDER, K.RIGHT_ELBOW), (K.LEFT_SHOULDER, K.LEFT_ELBOW)):
            a, b = np.array(_POSE_1024[shoulder], float), np.array(_POSE_1024[elbow], float)
            cv2.line(parsing, kp(shoulder), pt(*(a + (b - a) * 0.5)), int(Label.UPPER), thick(84))  # short sleeve
        cv2.fillPoly(parsing, [np.array([pt(300, 600), pt(468, 600), pt(472, 700), pt(296, 700)])], int(Label.BOTTOM))
        for knee, ankle, hip in ((K.RIGHT_KNEE, K.RIGHT_ANKLE, K.RIGHT_HIP), (K.LEFT_KNEE, K.LEFT_ANKLE, K.LEFT_HIP)):
            cv2.line(parsing, kp(hip), kp(knee), int(Label.BOTTOM), thick(96))
            cv2.line(parsing, kp(knee), kp(ankle), int(Label.BOTTOM), thick(80))
    for ankle in (K.RIGHT_ANKLE, K.LEFT_ANKLE):
        x, y = _POSE_1024[ankle]
        cv2.ellipse(parsing, pt(x, y + 30), (thick(40), thick(22)), 0, 0, 360, int(Label.SHOES), -1)

    rng = np.random.default_rng(0)
    person = LABEL_COLORS[parsing].astype(np.int16) + rng.integers(-20, 21, (height, width, 3))
    person[parsing == Label.BACKGROUND] = (235, 235, 235)
    person = np.clip(person, 0, 255).astype(np.uint8)
    keypoints = np.zeros((18, 3), np.float32)
    for k, (x, y) in _POSE_1024.items():
        keypoints[k] = (x * s, y * s, 0.9)
    return person, parsing, keypoints


def _arm_parts(parsing: np.ndarray, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arm-label pixels on the elbow side of the wrists (arm skin), and those more than a quarter of the
    shoulder width beyond a wrist (surely hand)."""
    height, width = parsing.shape
    ys, xs = np.mgrid[0:height, 0:width]
    shoulder_width = np.linalg.norm(keypoints[K.RIGHT_SHOULDER, :2] - keypoints[K.LEFT_SHOULDER, :2])
    beyond = np.full(parsing.shape, -np.inf)
    for elbow, wrist in ((K.RIGHT_ELBOW, K.RIGHT_WRIST), (K.LEFT_ELBOW, K.LEFT_WRIST)):
        w, e = keypoints[wrist, :2], keypoints[elbow, :2]
        d = (w - e) / np.linalg.norm(w - e)
        beyond = np.maximum(beyond, (xs - w[0]) * d[0] + (ys - w[1]) * d[1])
    arms = np.isin(parsing, [Label.LEFT_ARM, Label.RIGHT_ARM])
    return arms & (beyond <= 0), arms & (beyond > shoulder_width / 4)


def _check_image_and_parsing(person: np.ndarray, parsing: np.ndarray, agnostic: Agnostic) -> None:
    mask = agnostic.mask
    assert mask.dtype == bool and mask.shape == parsing.shape
    assert agnostic.image.dtype == np.uint8 and agnostic.image.shape == person.shape
    assert (agnostic.image[mask] == AGNOSTIC_GREY).all()
    assert np.array_equal(agnostic.image[~mask], person[~mask])
    assert agnostic.parsing.dtype == np.uint8
    assert (agnostic.parsing[mask] == Label.BACKGROUND).all()
    assert np.array_equal(agnostic.parsing[~mask], parsing[~mask])


def _fraction(mask: np.ndarray, where: np.ndarray) -> float:
    return float(mask[where].mean()) if where.any() else 0.0


@pytest.mark.parametrize("height", [1024, 256])
def test_upper_body_synthetic(height: int) -> None:
    person, parsing, keypoints = _synthetic(height)
    agnostic = build_agnostic(person, parsing, keypoints, Category.UPPER_BODY)
    mask = agnostic.mask
    _check_image_and_parsing(person, parsing, agnostic)
    assert _fraction(mask, parsing == Label.UPPER) == 1.0
    assert _fraction(mask, parsing == Label.NECK) == 1.0  # necklines can change
    arms, hands = _arm_parts(parsing, keypoints)
    assert _fraction(mask, arms) == 1.0  # a short sleeve can become a long one
    for label in (Label.FACE, Label.HAIR, Label.BOTTOM, Label.SHOES):
        assert not mask[parsing == label].any(), label.name
    assert hands.any() and not mask[hands].any()
    # Room beyond the current garment: background beside the elbows, where a wider sleeve goes.
    s = height / 1024
    for elbow, side in ((K.RIGHT_ELBOW, -1), (K.LEFT_ELBOW, 1)):
        x, y = _POSE_1024[elbow]
        assert mask[round(y * s), round((x + side * 50) * s)]
    assert not (agnostic.parsing == Label.UPPER).any()


def _long_sleeved_with_mislabelled_cuffs(
    height: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The synthetic person in a long-sleeved navy top over light-blue trousers, beige skin, white backdrop;
    the end of the right sleeve is labelled trousers (BOTTOM) and the end of the left one hand (LEFT_ARM), as
    CIHP-style parsers do when a forearm rests against the hip. Returns person, parsing, keypoints, the two
    mislabelled cuffs (H, W) bool, and the hands."""
    _, parsing, keypoints = _synthetic(height)
    s = height / 1024
    cuffs = np.zeros(parsing.shape, bool)
    for label, elbow, wrist in (
        (Label.BOTTOM, K.RIGHT_ELBOW, K.RIGHT_WRIST),
        (Label.LEFT_ARM, K.LEFT_ELBOW, K.LEFT_WRIST),
    ):
        e, w = np.array(_POSE_1024[elbow], float), np.array(_POSE_1024[wrist], float)
        sleeve = np.zeros(parsing.shape, np.uint8)
        cv2.line(
            sleeve, (round(e[0] * s), round(e[1] * s)), (round(w[0] * s), round(w[1] * s)), 1, max(1, round(56 * s))
        )
        parsing[(sleeve > 0) & (parsing != Label.UPPER)] = Label.UPPER
        cuff = np.zeros(parsing.shape, np.uint8)  # the last stretch of the sleeve, to just past the wrist
        start, end = e + (w - e) * 0.8, w + (w - e) / np.linalg.norm(w - e) * 12
        cv2.line(cuff, (round(start[0] * s), round(start[1] * s)), (round(end[0] * s), round(end[1] * s)), 1,
                 max(1, round(56 * s)))  # fmt: skip
        cuff_mask = cuff > 0
        parsing[cuff_mask] = label
        cuffs |= cuff_mask
    _, hands = _arm_parts(parsing, keypoints)
    colours = {Label.BACKGROUND: (245, 245, 245), Label.UPPER: (30, 35, 80), Label.BOTTOM: (150, 185, 220),
               Label.FACE: (225, 180, 150), Label.NECK: (215, 170, 140), Label.LEFT_ARM: (220, 175, 145),
               Label.RIGHT_ARM: (220, 175, 145), Label.HAIR: (60, 40, 30), Label.SHOES: (20, 20, 20)}  # fmt: skip
    person = np.zeros((*parsing.shape, 3), np.int16)
    for label, colour in colours.items():
        person[parsing == label] = colour
    person[cuffs] = colours[Label.UPPER]
    person += np.random.default_rng(1).integers(-8, 9, person.shape).astype(np.int16)
    return np.clip(person, 0, 255).astype(np.uint8), parsing, keypoints, cuffs, hands


@pytest.mark.parametrize("height", [1024, 256])
def test_mislabelled_sleeve_ends_are_repainted(height: int) -> None:
    person, parsing, keypoints, cuffs, hands = _long_sleeved_with_mislabelled_cuffs(height)
    without = build_agnostic(person, parsing, keypoints, Category.UPPER_BODY, AgnosticConfig(sleeve_ends=False))
    assert _fraction(without.mask, cuffs) < 0.6  # the old cuffs would stay by the hands
    agnostic = build_agnostic(person, parsing, keypoints, Category.UPPER_BODY)
    assert _fraction(agnostic.mask, cuffs) > 0.95
    assert (agnostic.person_parsing[cuffs] == Label.UPPER).mean() > 0.95
    # Nothing else changes label: the hands, the trousers and the backdrop keep theirs, and stay.
    changed = agnostic.person_parsing != parsing
    assert not (changed & ~cuffs).any()
    assert hands.any() and not agnostic.mask[hands & ~cuffs].any()
    assert not agnostic.mask[(parsing == Label.BOTTOM) & ~cuffs].any()
    # The trousers are not replaced by a lower-body garment's agnostic mask... and keep their label there.
    lower = build_agnostic(person, parsing, keypoints, Category.LOWER_BODY)
    assert np.array_equal(lower.person_parsing, parsing)


def test_sleeve_ends_need_a_long_sleeve_and_a_colour_difference() -> None:
    person, parsing, keypoints, cuffs, _ = _long_sleeved_with_mislabelled_cuffs(512)
    # A bare forearm (short sleeve) in front of a navy top: nothing is relabelled, whatever the colours.
    bare = build_agnostic(person, np.where(cuffs, parsing, _synthetic(512)[1]).astype(np.uint8), keypoints,
                          Category.UPPER_BODY)  # fmt: skip
    assert not bare.mask[cuffs & (parsing == Label.BOTTOM)].any()
    # Trousers of the sleeve's own colour: colour cannot tell them apart, so their label stands.
    same = person.copy()
    same[parsing == Label.BOTTOM] = person[parsing == Label.UPPER].mean(axis=0).astype(np.uint8)
    agnostic = build_agnostic(same, parsing, keypoints, Category.UPPER_BODY)
    assert not agnostic.mask[cuffs & (parsing == Label.BOTTOM)].any()


_NAVY, _LIGHT_BLUE, _SKIN = (30, 35, 80), (150, 185, 220), (220, 175, 145)


def _top_with_mislabelled_hem(
    height: int, top: tuple[int, int, int] = _NAVY, trousers: tuple[int, int, int] = _LIGHT_BLUE
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The synthetic person in a plain top over plain trousers, where the last rows of the top (half a unit r
    thick, coloured half top and half trousers as a blurred border is) are labelled trousers, as VITON's parsing
    does under dark tops. Returns person, parsing, keypoints and the mislabelled hem (H, W) bool."""
    _, parsing, keypoints = _synthetic(height)
    r = (_POSE_1024[K.LEFT_SHOULDER][0] - _POSE_1024[K.RIGHT_SHOULDER][0]) / 16 * height / 1024
    upper = (parsing == Label.UPPER).astype(np.uint8)
    below_top = cv2.dilate(upper, np.ones((2 * max(1, round(r / 2)) + 1,) * 2, np.uint8)) > 0
    hem = below_top & (parsing == Label.BOTTOM)
    colours = {Label.BACKGROUND: (245, 245, 245), Label.UPPER: top, Label.BOTTOM: trousers, Label.FACE: _SKIN,
               Label.NECK: _SKIN, Label.LEFT_ARM: _SKIN, Label.RIGHT_ARM: _SKIN, Label.HAIR: (60, 40, 30),
               Label.SHOES: (20, 20, 20)}  # fmt: skip
    person = np.zeros((*parsing.shape, 3), np.int16)
    for label, colour in colours.items():
        person[parsing == label] = colour
    person[hem] = (np.array(top) + np.array(trousers)) // 2
    person += np.random.default_rng(2).integers(-6, 7, person.shape).astype(np.int16)
    return np.clip(person, 0, 255).astype(np.uint8), parsing, keypoints, hem


@pytest.mark.parametrize("height", [1024, 256])
def test_mislabelled_hem_is_repainted(height: int) -> None:
    person, parsing, keypoints, hem = _top_with_mislabelled_hem(height)
    assert hem.sum() > 20
    without = build_agnostic(person, parsing, keypoints, Category.UPPER_BODY, AgnosticConfig(hem=False))
    assert _fraction(without.mask, hem) < 0.05  # a line of the old top would stay under the new one
    agnostic = build_agnostic(person, parsing, keypoints, Category.UPPER_BODY)
    assert _fraction(agnostic.mask, hem) > 0.95
    assert (agnostic.person_parsing[hem] == Label.UPPER).mean() > 0.95
    # The rest of the trousers keeps its label and stays; above 512 rows, where the colour test runs on a
    # half-size copy, up to two pixels beyond the hem may go with it.
    near_hem = cv2.dilate(hem.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0 if height > 512 else hem
    changed = agnostic.person_parsing != parsing
    assert not (changed & ~near_hem).any()
    assert not agnostic.mask[(parsing == Label.BOTTOM) & ~near_hem].any()
    # A dress replaces the trousers too: nothing to relabel.
    dress = build_agnostic(person, parsing, keypoints, Category.DRESSES)
    assert np.array_equal(dress.person_parsing, parsing)


def test_hem_needs_two_plain_colours_and_a_blend() -> None:
    # Trousers of the top's colour: colour cannot tell the hem from them.
    person, parsing, keypoints, hem = _top_with_mislabelled_hem(512, trousers=(40, 45, 90))
    assert not build_agnostic(person, parsing, keypoints, Category.UPPER_BODY).mask[hem].any()
    # A printed top: no one colour stands for its border.
    person, parsing, keypoints, hem = _top_with_mislabelled_hem(512)
    printed = person.copy()
    top = parsing == Label.UPPER
    printed[top] = np.random.default_rng(3).integers(0, 256, (int(top.sum()), 3))
    assert not build_agnostic(printed, parsing, keypoints, Category.UPPER_BODY).mask[hem].any()
    # A red belt where the hem would be: a third colour, off the blend of the top's and the trousers'.
    belted = person.copy()
    belted[hem] = (200, 30, 30)
    assert not build_agnostic(belted, parsing, keypoints, Category.UPPER_BODY).mask[hem].any()


@pytest.mark.parametrize("height", [1024, 256])
def test_lower_body_synthetic(height: int) -> None:
    person, parsing, keypoints = _synthetic(height)
    agnostic = build_agnostic(person, parsing, keypoints, "lower_body")
    mask = agnostic.mask
    _check_image_and_parsing(person, parsing, agnostic)
    assert _fraction(mask, parsing == Label.BOTTOM) == 1.0
    for label in (Label.FACE, Label.HAIR, Label.UPPER, Label.LEFT_ARM, Label.RIGHT_ARM, Label.SHOES):
        assert not mask[parsing == label].any(), label.name
    # The crotch between the thighs is repainted too, so trousers can become a skirt and back.
    s = height / 1024
    assert mask[round(740 * s), round(384 * s)]
    assert not (agnostic.parsing == Label.BOTTOM).any()


@pytest.mark.parametrize("height", [1024, 256])
def test_dresses_synthetic(height: int) -> None:
    person, parsing, keypoints = _synthetic(height, dress=True)
    agnostic = build_agnostic(person, parsing, keypoints, Category.DRESSES)
    mask = agnostic.mask
    _check_image_and_parsing(person, parsing, agnostic)
    for label in (Label.DRESS, Label.LEFT_LEG, Label.RIGHT_LEG, Label.NECK):
        assert _fraction(mask, parsing == label) == 1.0, label.name
    arms, hands = _arm_parts(parsing, keypoints)
    assert _fraction(mask, arms) == 1.0
    for label in (Label.FACE, Label.HAIR, Label.SHOES):
        assert not mask[parsing == label].any(), label.name
    assert not mask[hands].any()


@pytest.mark.parametrize("category", list(Category))
def test_resolution_independent(category: Category) -> None:
    """The same person at 1024x768 and 256x192 gets the same mask, relative to the image."""
    big = build_agnostic(*_synthetic(1024), category).mask
    small = build_agnostic(*_synthetic(256), category).mask
    assert abs(big.mean() - small.mean()) / big.mean() < 0.03
    up = cv2.resize(small.view(np.uint8), big.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
    assert (big & up).sum() / (big | up).sum() > 0.93


def test_missing_keypoints_and_no_pose() -> None:
    person, parsing, keypoints = _synthetic(512)
    full = build_agnostic(person, parsing, keypoints, Category.UPPER_BODY).mask
    partial = keypoints.copy()
    partial[[K.RIGHT_HIP, K.LEFT_HIP, K.LEFT_SHOULDER, K.NECK, K.LEFT_ELBOW]] = 0  # occluded / out of frame
    for points in (partial, None):
        mask = build_agnostic(person, parsing, points, Category.UPPER_BODY).mask
        assert _fraction(mask, parsing == Label.UPPER) == 1.0
        assert not mask[np.isin(parsing, [Label.FACE, Label.HAIR, Label.BOTTOM])].any()
        assert 0.5 < mask.sum() / full.sum() < 1.3
    for category in (Category.LOWER_BODY, Category.DRESSES):
        mask = build_agnostic(person, parsing, None, category).mask
        assert _fraction(mask, parsing == Label.BOTTOM) == 1.0


def test_config_switches() -> None:
    person, parsing, keypoints = _synthetic(512)
    agnostic = build_agnostic(person, parsing, keypoints, Category.UPPER_BODY, AgnosticConfig(keep_hands=False))
    _, hands = _arm_parts(parsing, keypoints)
    assert _fraction(agnostic.mask, hands) == 1.0
    agnostic = build_agnostic(person, parsing, keypoints, Category.UPPER_BODY, AgnosticConfig(keep_hair=False))
    assert agnostic.mask[parsing == Label.HAIR].any()  # hair over the shoulders, as VITON-HD masks it
    assert not agnostic.mask[parsing == Label.FACE].any()


def test_bad_inputs() -> None:
    person, parsing, keypoints = _synthetic(256)
    with pytest.raises(ValueError):
        build_agnostic(person[..., 0], parsing, keypoints, Category.UPPER_BODY)
    with pytest.raises(ValueError):
        build_agnostic(person, parsing[:-1], keypoints, Category.UPPER_BODY)
    with pytest.raises(ValueError):
        build_agnostic(person, parsing, keypoints[:17], Category.UPPER_BODY)
    with pytest.raises(ValueError):
        build_agnostic(person, parsing, keypoints, "shoes")


# --- real data ----------------------------------------------------------------------------------------------


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_upper_body_iou_vs_vitonhd_masks(data_dir: Path) -> None:
    """Our upper-body mask against VITON-HD's `agnostic-mask`, on every sample with keypoints and a mask."""
    root = data_dir / "vitonhd"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    reader = open_dataset(root)
    ious: dict[str, float] = {}
    seconds: list[float] = []
    for split in reader.splits():
        for pair in reader.pairs(split, paired=True):
            mask_path = root / split / "agnostic-mask" / f"{Path(pair.person).stem}_mask.png"
            if not mask_path.is_file():
                continue
            sample = reader.load(split, pair)
            if sample.keypoints is None or sample.parsing is None:
                continue
            reference = np.asarray(Image.open(mask_path).convert("L")) > 127
            start = time.perf_counter()
            agnostic = build_agnostic(sample.person, sample.parsing, sample.keypoints, Category.UPPER_BODY)
            seconds.append(time.perf_counter() - start)
            _check_image_and_parsing(sample.person, sample.parsing, agnostic)
            ious[f"{split}/{sample.person_id}"] = _iou(agnostic.mask, reference)
    n = len(ious)
    if n == 0:
        pytest.skip("no VITON-HD sample with both keypoints and an agnostic mask")
    for name, value in ious.items():
        print(f"  {name}: IoU {value:.3f}")
    miou = float(np.mean(list(ious.values())))
    print(f"agnostic-mask mean IoU vs VITON-HD: {miou:.3f} over {n} samples")
    print(
        f"build_agnostic at {sample.person.shape[1]}x{sample.person.shape[0]}: median {np.median(seconds) * 1e3:.1f} ms"
    )
    assert miou >= MIN_MEAN_IOU


def test_vitonhd_two_resolutions(data_dir: Path) -> None:
    root = data_dir / "vitonhd"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    reader = open_dataset(root)
    pair = reader.pairs("test", paired=True)[0]
    sample = reader.load("test", pair)
    if sample.keypoints is None or sample.parsing is None:
        pytest.skip("sample without keypoints or parsing")
    height, width = sample.parsing.shape
    person = cv2.resize(sample.person, (width // 4, height // 4), interpolation=cv2.INTER_AREA)
    parsing = cv2.resize(sample.parsing, (width // 4, height // 4), interpolation=cv2.INTER_NEAREST)
    keypoints = scale_keypoints(sample.keypoints, 0.25, 0.25)
    for category in Category:
        big = build_agnostic(sample.person, sample.parsing, sample.keypoints, category).mask
        small = build_agnostic(person, parsing, keypoints, category).mask
        assert abs(big.mean() - small.mean()) / big.mean() < 0.03, category
        up = cv2.resize(small.view(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
        assert _iou(big, up) > 0.95, category


@pytest.mark.parametrize("category", [Category.LOWER_BODY, Category.DRESSES])
def test_dresscode_categories(data_dir: Path, category: Category) -> None:
    """On Dress Code (no reference masks): the garment is covered, head, hair, shoes and bags are kept."""
    root = data_dir / "dresscode"
    if not (root / category.value).is_dir():
        pytest.skip(f"{root / category.value} not found")
    reader = open_dataset(root)
    garment = {Category.LOWER_BODY: Label.BOTTOM, Category.DRESSES: Label.DRESS}[category]
    pairs = reader.pairs("test", paired=True, category=category)[:3]
    for pair in pairs:
        sample = reader.load("test", pair)
        if sample.keypoints is None or sample.parsing is None:
            continue
        parsing = sample.parsing
        agnostic = build_agnostic(sample.person, parsing, sample.keypoints, category)
        _check_image_and_parsing(sample.person, parsing, agnostic)
        assert _fraction(agnostic.mask, parsing == garment) > 0.99, sample.person_id
        kept = np.isin(parsing, [Label.HAIR, Label.SHOES, Label.ACCESSORY])
        if category is Category.LOWER_BODY:
            kept |= np.isin(parsing, [Label.FACE, Label.UPPER, Label.LEFT_ARM, Label.RIGHT_ARM])
        assert not agnostic.mask[kept].any(), sample.person_id
