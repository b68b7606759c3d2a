"""Mask-aware post-processing: exact paste back, identity restore (the tattoo test), switches, bad inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from fipviton.agnostic import build_agnostic
from fipviton.data import Category, open_dataset
from fipviton.labels import Label
from fipviton.postprocess import (
    IDENTITY_LABELS,
    PostProcessConfig,
    PostProcessResult,
    config_from_overrides,
    identity_mask,
    paste_back,
    postprocess,
    restore_identity,
)
from fipviton.postprocess.blocks import depth_alpha, seam_band

FLAT = (90, 160, 90)  # the "generated" colour: nothing like skin, so a missing restore is obvious


@dataclass
class Scene:
    """A synthetic person (upper_body try-on) at height h: rectangles in units of h / 256."""

    person: np.ndarray
    parsing: np.ndarray
    agnostic: np.ndarray
    warped: np.ndarray  # float32, the new short-sleeved garment: torso and upper arms only
    generated: np.ndarray
    tattoo: tuple[slice, slice]  # the tattoo box on the left forearm


def _box(u: float, y0: int, y1: int, x0: int, x1: int) -> tuple[slice, slice]:
    return slice(round(y0 * u), round(y1 * u)), slice(round(x0 * u), round(x1 * u))


def _scene(height: int = 256, seed: int = 0) -> Scene:
    rng = np.random.default_rng(seed)
    u = height / 256
    h, w = height, height * 3 // 4
    noise = cv2.GaussianBlur(rng.normal(0, 25, (h, w, 3)).astype(np.float32), (0, 0), 2 * u)
    person = np.clip(np.array([200.0, 200.0, 210.0]) + noise, 0, 255)  # textured background
    parsing = np.zeros((h, w), np.uint8)
    regions = [
        (Label.FACE, (20, 55, 75, 117), (225, 180, 160)),
        (Label.UPPER, (60, 150, 50, 142), (40, 60, 150)),
        (Label.BOTTOM, (150, 240, 55, 137), (50, 50, 60)),
        (Label.RIGHT_ARM, (60, 160, 25, 50), (220, 170, 140)),
        (Label.LEFT_ARM, (60, 160, 142, 167), (220, 170, 140)),
    ]
    for label, (y0, y1, x0, x1), colour in regions:
        box = _box(u, y0, y1, x0, x1)
        parsing[box] = label
        person[box] = np.array(colour) + 0.3 * noise[box]
    # On the forearm below the new sleeve, across the arm's whole width: its sides lie in the seam band.
    tattoo = _box(u, 108, 150, 142, 167)
    th, tw = person[tattoo].shape[:2]
    ink = cv2.GaussianBlur(rng.random((th, tw)).astype(np.float32), (0, 0), u) > 0.5
    person[tattoo][ink] = (40, 50, 70)
    person = np.rint(person).astype(np.uint8)

    agnostic = np.zeros((h, w), bool)
    agnostic[_box(u, 55, 165, 20, 172)] = True  # torso and both arms, as an upper_body agnostic mask
    warped = np.zeros((h, w), np.float32)
    warped[_box(u, 62, 148, 30, 162)] = 1.0  # new garment with short sleeves down to y = 100
    warped[_box(u, 100, 148, 30, 52)] = 0.0
    warped[_box(u, 100, 148, 140, 162)] = 0.0
    warped = cv2.GaussianBlur(warped, (0, 0), u)  # soft border, as a warp produces
    generated = np.empty_like(person)
    generated[:] = FLAT
    return Scene(person, parsing, agnostic, warped, generated, tattoo)


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two (h, w, 3) uint8 crops, RGB in [0, 1], torchmetrics defaults (Gaussian 11x11)."""

    def tensor(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255

    return float(structural_similarity_index_measure(tensor(a), tensor(b), data_range=1.0))


def _run(scene: Scene, category: Category | str = "upper_body", **knobs: object) -> PostProcessResult:
    config = PostProcessConfig(**knobs)  # type: ignore[arg-type]
    return postprocess(scene.generated, scene.person, scene.agnostic, scene.parsing, scene.warped, category, config)


def _blobs(seed: int, shape: tuple[int, int] = (160, 120)) -> np.ndarray:
    """Random ellipses, some cut by the picture's edge."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, np.uint8)
    for _ in range(3):
        center = (int(rng.integers(-10, shape[1] + 10)), int(rng.integers(-10, shape[0] + 10)))
        cv2.ellipse(mask, center, (int(rng.integers(5, 40)), int(rng.integers(5, 40))), 0, 0, 360, 1, -1)
    return mask.astype(bool)


@pytest.mark.parametrize("seed", range(6))
def test_seam_weights_on_the_region_box_equal_the_whole_picture(seed: int) -> None:
    region, width = _blobs(seed), 6.0

    def whole_picture_depth(inside: np.ndarray) -> np.ndarray:  # the definition: the picture's edge is no border
        padded = cv2.copyMakeBorder(inside.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
        depth = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
        return np.clip(depth / (width + 1.0), 0.0, 1.0) * inside

    # Equal up to float rounding: OpenCV's transform differs by one ulp (6e-8) on some pixels with the size.
    assert np.allclose(depth_alpha(region, width), whole_picture_depth(region), rtol=0, atol=1e-6)
    near = 1.0 - whole_picture_depth(~region)
    band, weight = seam_band(region, width)
    assert np.array_equal(band[near > 1e-6], ((near > 0) & ~region)[near > 1e-6]) and not band[near <= 0].any()
    assert np.allclose(weight, np.where(band | region, near, 0.0), rtol=0, atol=1e-6)
    assert band.any() or not region.any()
    empty = np.zeros_like(region)
    assert not depth_alpha(empty, width).any() and not seam_band(empty, width)[0].any()


def test_both_blocks_off_returns_generated() -> None:
    scene = _scene()
    out = _run(scene, Category.UPPER_BODY, paste_back=False, restore_identity=False)
    assert np.array_equal(out.image, scene.generated)
    assert out.image is not scene.generated
    assert not out.restored_mask.any()
    assert out.repaint_mask.all()


@pytest.mark.parametrize("height", [256, 1024])
def test_paste_back_exact_outside_and_seam_inside(height: int) -> None:
    scene = _scene(height)
    out = _run(scene, restore_identity=False).image
    assert np.array_equal(out[~scene.agnostic], scene.person[~scene.agnostic])
    # The seam band lies inside the agnostic region and is ~0.007 sqrt(H W) wide: 1.6 px / 6.2 px.
    depth = cv2.distanceTransform(scene.agnostic.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    width = 0.007 * np.sqrt(scene.agnostic.size)
    deep = depth > width + 1
    assert np.array_equal(out[deep], scene.generated[deep])
    band = scene.agnostic & ~deep
    blended = np.any(out != scene.generated, axis=-1) & np.any(out != scene.person, axis=-1)
    assert blended[band].mean() > 0.5  # the band is a real blend, not a hard cut
    assert band.sum() < 2 * (width + 1) * 4 * (scene.agnostic.shape[0] + scene.agnostic.shape[1]) * 0.5
    # Block alone, without the plug-in wrapper: the same image.
    assert np.array_equal(paste_back(scene.generated, scene.person, scene.agnostic), out)


@pytest.mark.parametrize("blend", ["poisson", "feather"])
def test_tattoo_restored(blend: str) -> None:
    scene = _scene()
    result = _run(scene, blend=blend)
    box = scene.tattoo
    assert scene.agnostic[box].all() and result.restored_mask[box].all()
    restored = _ssim(result.image[box], scene.person[box])
    without = _ssim(_run(scene, restore_identity=False).image[box], scene.person[box])
    print(f"tattoo SSIM ({blend}): restore on {restored:.4f}, restore off {without:.4f}")
    assert restored >= 0.98
    assert without < 0.2
    # Every restored pixel is the person's exactly (the seam lies outside, on the generated side).
    assert result.restored_mask.sum() > 1000
    assert np.array_equal(result.image[result.restored_mask], scene.person[result.restored_mask])
    # The seam band: generated pixels next to the restored ones changed; a few pixels farther they did not.
    near = cv2.dilate(result.restored_mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    near &= scene.agnostic & ~result.restored_mask
    far = ~cv2.dilate(result.restored_mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    far &= scene.agnostic
    assert np.any(result.image[near] != scene.generated[near], axis=-1).mean() > 0.9
    deep = far & (cv2.distanceTransform(scene.agnostic.astype(np.uint8), cv2.DIST_L2, 5) > 4)
    assert np.array_equal(result.image[deep], scene.generated[deep])
    assert np.array_equal(result.repaint_mask, scene.agnostic & ~result.restored_mask)


def test_poisson_seam_is_smoother_than_a_hard_cut() -> None:
    """Across the restored region's border, both blends give a smaller colour jump than no blending."""
    scene = _scene(512)
    scene.generated[:] = (200, 150, 120)  # generated skin a little off the person's skin tone
    # The forearm alone (no backdrop), so that the ring below lies between skin and generated skin only.
    no_backdrop = PostProcessConfig(restore_background=False)
    restore = identity_mask(scene.parsing, scene.warped, scene.agnostic, "upper_body", no_backdrop)
    # Skin on both sides of the seam: the restored forearm's top edge, against the generated margin band.
    ring = cv2.dilate(restore.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~restore
    ring &= scene.agnostic & (scene.parsing == Label.LEFT_ARM)
    inner = restore & cv2.dilate(ring.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert ring.sum() > 10

    def jump(config: PostProcessConfig) -> float:
        image = restore_identity(scene.generated, scene.person, restore, config, scene.agnostic)
        assert np.array_equal(image[restore], scene.person[restore])
        return float(abs(image[inner].astype(float).mean(0) - image[ring].astype(float).mean(0)).sum())

    hard = jump(PostProcessConfig(feather_fraction=0))
    poisson, feather = jump(PostProcessConfig(blend="poisson")), jump(PostProcessConfig(blend="feather"))
    print(f"seam colour jump at 512x384: hard {hard:.1f}, poisson {poisson:.1f}, feather {feather:.1f}")
    assert poisson < 0.4 * hard and feather < 0.4 * hard


def test_garment_covered_pixels_not_restored() -> None:
    scene = _scene()
    scene.warped[scene.tattoo] = 1.0  # a long sleeve over the tattoo
    result = _run(scene, Category.UPPER_BODY)
    assert not result.restored_mask[scene.warped >= 0.5].any()
    assert not result.restored_mask[scene.tattoo].any()
    # The margin: no restored pixel within 1 px of the garment either (2 px margin at 256x192).
    near = cv2.dilate((scene.warped >= 0.5).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert not result.restored_mask[near].any()
    # Generated, but for the seam bands (1.6 px) of the backdrop restored right of the arm and below the sleeve
    # (backdrop-coloured pixels by the replaced garment).
    ys, xs = scene.tattoo
    inside = (slice(ys.start, ys.stop - 2), slice(xs.start, xs.stop - 2))
    assert np.array_equal(result.image[inside], scene.generated[inside])
    # Upper garment (the one replaced) and pixels outside the agnostic region are never "restored".
    assert not result.restored_mask[scene.parsing == Label.UPPER].any()
    assert not result.restored_mask[~scene.agnostic].any()


def test_tattoo_the_parser_calls_background_is_restored() -> None:
    scene = _scene()
    ys, xs = scene.tattoo
    hole = (slice(ys.start + 10, ys.start + 20), slice(xs.start + 8, xs.start + 16))
    scene.parsing[hole] = Label.BACKGROUND  # what a parser makes of ink on skin
    result = _run(scene, Category.UPPER_BODY)
    assert result.restored_mask[hole].all()
    assert _ssim(result.image[scene.tattoo], scene.person[scene.tattoo]) >= 0.98
    # Background that reaches the image border, left of the right arm inside the agnostic box: the person's
    # own backdrop, right up to the arm (`test_backdrop_the_new_garment_leaves_is_restored`).
    backdrop = _box(1.0, 60, 160, 20, 25)
    assert (scene.parsing[backdrop] == Label.BACKGROUND).all() and scene.agnostic[backdrop].all()
    assert result.restored_mask[backdrop].all()
    assert np.array_equal(result.image[backdrop], scene.person[backdrop])


def test_tattoo_across_the_arm_restored_with_the_person_mask() -> None:
    scene = _scene()
    ys, xs = scene.tattoo
    band = (slice(ys.start + 10, ys.start + 25), xs)  # the whole width: the background reaches the border
    scene.parsing[band] = Label.BACKGROUND
    silhouette = scene.parsing != Label.BACKGROUND
    silhouette[band] = True  # MediaPipe's segmentation knows the forearm is there
    without = postprocess(scene.generated, scene.person, scene.agnostic, scene.parsing, scene.warped, "upper_body")
    assert not without.restored_mask[band].all()  # only what lies beyond the margin of the top is backdrop
    result = postprocess(
        scene.generated, scene.person, scene.agnostic, scene.parsing, scene.warped, "upper_body", None, silhouette
    )
    assert result.restored_mask[band].all()
    assert _ssim(result.image[scene.tattoo], scene.person[scene.tattoo]) >= 0.98
    # A parser's hole at the edge of the skirt (bordered by clothes, open to the backdrop) stays generated:
    # restoring it would bring back the old garment.
    notch = _box(1.0, 152, 164, 55, 75)
    scene.parsing[notch] = Label.BACKGROUND
    silhouette[notch] = True
    agnostic = scene.agnostic.copy()
    result = postprocess(
        scene.generated, scene.person, agnostic, scene.parsing, scene.warped, "dresses", None, silhouette
    )
    assert agnostic[notch].all() and not result.restored_mask[notch].any()
    assert result.restored_mask[band].all()
    # Likewise a hole enclosed by the skirt, with or without the silhouette.
    hole = _box(1.0, 154, 162, 90, 110)
    scene.parsing[hole] = Label.BACKGROUND
    for mask in (None, silhouette):
        result = postprocess(
            scene.generated, scene.person, agnostic, scene.parsing, scene.warped, "dresses", None, mask
        )
        assert agnostic[hole].all() and not result.restored_mask[hole].any()
    with pytest.raises(ValueError, match="person_mask"):
        postprocess(
            scene.generated, scene.person, scene.agnostic, scene.parsing, scene.warped, "upper_body", None,
            silhouette.astype(np.uint8),
        )  # fmt: skip


@pytest.mark.parametrize("height", [256, 1024])
def test_backdrop_the_new_garment_leaves_is_restored(height: int) -> None:
    """A new garment narrower than the agnostic region: the backdrop it leaves is the person's own, not the
    network's near-white (a pale halo on any other background), except along the old top's border, where only
    the pixels with the backdrop's colour come back (not the old top's blurred fringe, which the parser calls
    backdrop)."""
    scene = _scene(height)
    u = height / 256
    scene.warped[:] = 0.0
    scene.warped[_box(u, 70, 148, 60, 132)] = 1.0  # sleeveless and narrower than the old top
    margin = PostProcessConfig().background_margin_fraction * np.sqrt(height * (height * 3 // 4))
    old_top = (scene.parsing == Label.UPPER).astype(np.uint8)
    distance = cv2.distanceTransform(1 - old_top, cv2.DIST_C, 3)  # chessboard: the margin is a square
    garment = scene.warped >= 0.5
    garment_zone = cv2.dilate(garment.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=round(3 * u)) > 0
    open_backdrop = scene.agnostic & (scene.parsing == Label.BACKGROUND) & ~garment_zone
    far, near = open_backdrop & (distance > margin + 1), open_backdrop & (distance < margin - 1)
    assert far.sum() > 500 * u * u and near.sum() > 100 * u * u
    # The old top's blurred border, 2 px wide at 256x192, labelled backdrop: half top, half backdrop colour.
    fringe = (scene.parsing == Label.BACKGROUND) & (distance <= 2 * u)
    scene.person[fringe] = (scene.person[fringe] // 2 + np.array([20, 30, 75], np.uint8)).astype(np.uint8)
    result = _run(scene, Category.UPPER_BODY)
    assert result.restored_mask[far].all() and not result.restored_mask[near & fringe].any()
    # Most of the rest of that band comes back: not under the chin, where no backdrop that is surely backdrop
    # (beyond the margin) lies near enough to say what its colour is.
    backdrop_coloured = near & ~fringe & (distance > 2 * u + 1)
    assert height < 1024 or (backdrop_coloured.sum() > 100 and result.restored_mask[backdrop_coloured].mean() > 0.7)
    by_labels_alone = _run(scene, Category.UPPER_BODY, backdrop_tolerance=0)
    assert not by_labels_alone.restored_mask[near].any()
    assert np.array_equal(result.image[far], scene.person[far])
    assert not result.restored_mask[garment | (scene.parsing == Label.UPPER)].any()
    off = _run(scene, Category.UPPER_BODY, restore_background=False)
    assert not off.restored_mask[open_backdrop].any()
    # (seams of the restored arms and of the paste back reach into it, so it is not exactly the generated one)
    assert np.abs(off.image[far].astype(int) - scene.person[far]).mean() > 20
    with pytest.raises(ValueError, match="background_margin_fraction"):
        PostProcessConfig(background_margin_fraction=-0.1)


def test_lower_body_restores_upper_not_bottom() -> None:
    scene = _scene()
    u = 1.0
    agnostic = np.zeros_like(scene.agnostic)
    agnostic[_box(u, 125, 245, 40, 152)] = True  # hips to feet, reaching into the upper garment
    warped = np.zeros_like(scene.warped)
    warped[_box(u, 150, 200, 55, 137)] = 1.0  # a shorter skirt
    result = postprocess(scene.generated, scene.person, agnostic, scene.parsing, warped, Category.LOWER_BODY)
    upper = agnostic & (scene.parsing == Label.UPPER)
    bottom = agnostic & (scene.parsing == Label.BOTTOM) & (warped == 0)
    assert upper.sum() > 500 and bottom.sum() > 500
    assert result.restored_mask[upper].mean() > 0.9
    assert not result.restored_mask[bottom].any()
    # For upper_body the same masks restore the bottom garment instead.
    upper_body = identity_mask(scene.parsing, warped, agnostic, Category.UPPER_BODY)
    assert not upper_body[upper].any() and upper_body[bottom].mean() > 0.9
    # Dresses restore neither garment.
    dresses = identity_mask(scene.parsing, warped, agnostic, Category.DRESSES)
    assert not dresses[upper | bottom].any()
    assert Label.UPPER not in IDENTITY_LABELS[Category.DRESSES]


def test_specks_dropped_and_size_scaled() -> None:
    scene = _scene()
    parsing = scene.parsing.copy()
    parsing[80:83, 80:83] = Label.ACCESSORY  # 9 px of parser noise in the garment, where the warp has a hole
    warped = scene.warped.copy()
    warped[70:95, 70:95] = 0.0
    mask = identity_mask(parsing, warped, scene.agnostic, "upper_body")
    assert not mask[80:83, 80:83].any()
    kept = identity_mask(parsing, warped, scene.agnostic, "upper_body", PostProcessConfig(min_area_fraction=0))
    assert kept[80:83, 80:83].all()
    assert mask[scene.tattoo].all()  # real regions survive


def test_bad_inputs() -> None:
    s = _scene()
    good = (s.generated, s.person, s.agnostic, s.parsing, s.warped, "upper_body")
    bad = [
        (s.generated[:-1], *good[1:]),  # shape mismatch
        (s.generated, s.person[..., :2], *good[2:]),  # not 3 channels
        (s.generated.astype(np.float32), *good[1:]),  # not uint8
        (*good[:2], s.agnostic[:, :-1], *good[3:]),
        (*good[:2], s.agnostic.astype(np.uint8), *good[3:]),  # masks are bool
        (*good[:3], s.parsing.astype(np.int64), *good[4:]),
        (*good[:3], s.parsing[1:], *good[4:]),
        (*good[:4], s.warped * 2, good[5]),  # out of [0, 1]
        (*good[:4], s.warped[None], good[5]),
        (*good[:5], "shoes"),
    ]
    for args in bad:
        with pytest.raises(ValueError):
            postprocess(*args)
    with pytest.raises(ValueError, match="blend"):
        PostProcessConfig(blend="laplacian")
    with pytest.raises(ValueError):
        PostProcessConfig(garment_margin_fraction=-1)
    assert postprocess(*good[:4], s.warped > 0.5, good[5]).image.shape == s.person.shape  # bool warp mask


def test_real_person_arms_restored(data_dir: Path) -> None:
    """A VITON person, an upper_body agnostic mask, the garment region as the warp: bare arms come back."""
    root = data_dir / "viton_resize"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    reader = open_dataset(root)
    for pair in reader.pairs("test", paired=True)[:30]:  # the first person with bare arms under the mask
        sample = reader.load("test", pair)
        if sample.parsing is None or sample.keypoints is None:
            continue
        agnostic = build_agnostic(sample.person, sample.parsing, sample.keypoints, Category.UPPER_BODY)
        arms = np.isin(sample.parsing, [Label.LEFT_ARM, Label.RIGHT_ARM]) & agnostic.mask
        if arms.sum() >= 500:
            break
    else:
        pytest.skip("no sample with bare arms inside the agnostic region among the first 30")
    warped = (sample.parsing == Label.UPPER).astype(np.float32)
    result = postprocess(agnostic.image, sample.person, agnostic.mask, sample.parsing, warped, "upper_body")
    assert np.array_equal(result.image[~agnostic.mask], sample.person[~agnostic.mask])
    assert result.restored_mask[arms].mean() > 0.7
    assert not result.restored_mask[warped > 0].any()
    assert np.array_equal(result.image[result.restored_mask], sample.person[result.restored_mask])
    print(f"real person {sample.person_id}: {result.restored_mask[arms].mean():.3f} of the masked bare arms restored")


def test_config_from_overrides() -> None:
    config = config_from_overrides(["restore_identity=false", "backdrop-tolerance=8", "blend=feather"])
    assert config == PostProcessConfig(restore_identity=False, backdrop_tolerance=8.0, blend="feather")
    assert config_from_overrides([]) == PostProcessConfig()
    for bad, message in (
        ("restore_identity", "NAME=VALUE"),
        ("colour=red", "NAME=VALUE"),
        ("paste_back=perhaps", "true or false"),
        ("feather_fraction=wide", "takes a number"),
        ("feather_fraction=-1", "must be >= 0"),
        ("blend=median", "blend must be one of"),
    ):
        with pytest.raises(ValueError, match=message):
            config_from_overrides([bad])


def test_backdrop_colour_on_a_grid_follows_a_gradient() -> None:
    """At large radii the local backdrop colour is taken on a coarse grid (`colour_step`); on a backdrop that
    changes slowly (a lit wall), it stays within a level or two of the exact mean, and it is unknown far from
    any backdrop pixel."""
    from fipviton.postprocess.blocks import backdrop_colour, colour_step

    h, w = 768, 576
    ramp = np.linspace(60, 200, w, dtype=np.float32)
    person = np.broadcast_to(np.stack([ramp, ramp[::-1], np.full(w, 128, np.float32)], -1), (h, w, 3))
    person = np.ascontiguousarray(np.rint(person).astype(np.uint8))
    backdrop = np.ones((h, w), bool)
    backdrop[:, 200:400] = False  # a person-wide gap with no backdrop in it
    radius = 0.05 * np.sqrt(h * w)  # 33 px
    step = colour_step(radius)
    assert step == 4 and colour_step(11.0) == 1
    colour, known = backdrop_colour(person, backdrop, radius)
    exact, exact_known = backdrop_colour(person, backdrop, 11.0)  # step 1: the plain mean
    y, x = 300, 150
    assert np.abs(colour[y // step, x // step] - person[y, x]).max() <= 2
    assert np.abs(exact[y, x] - person[y, x]).max() <= 1 and exact_known[y, x]
    assert not known[y // step, 300 // step]  # the middle of the gap: no backdrop within reach
