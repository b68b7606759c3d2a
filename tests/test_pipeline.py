"""The end-to-end pipeline with the shipped weights: shapes, pasted-back pixels, odd inputs, identity.

The identity test is the one of the post-processing issue: a synthetic tattoo painted on a bare forearm of a
real photo must come out unchanged (SSIM >= 0.98) when a short-sleeved garment is tried on, and it does not
without the conditional block. Both numbers are printed (`pytest -s`).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from fipviton.errors import ImageInputError, NoPersonError
from fipviton.examples import example_pairs
from fipviton.imageio import load_image
from fipviton.labels import Label
from fipviton.pipeline import (
    STAGES,
    TryOnPipeline,
    TryOnResult,
    add_garment_detail,
    apply_pad,
    pad_to_aspect,
    remove_pad,
)
from fipviton.postprocess import PostProcessConfig

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def pipeline() -> TryOnPipeline:
    return TryOnPipeline.from_pretrained()


@pytest.fixture(scope="module")
def first_result(pipeline: TryOnPipeline) -> TryOnResult:
    pair = example_pairs()[0]
    return pipeline(pair.person, pair.garment, pair.category)


def test_garment_detail_on_the_garment_box_equals_the_whole_picture() -> None:
    rng = np.random.default_rng(0)
    height, width, size = 512, 384, (128, 96)
    warped = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    generated = cv2.resize(cv2.resize(warped, size[::-1], interpolation=cv2.INTER_AREA), (width, height))
    for box in ((slice(150, 400), slice(100, 300)), (slice(0, 300), slice(200, 384))):  # inside; at the border
        mask = np.zeros((height, width), np.float32)
        mask[box] = 1.0
        # The definition, on the whole picture: the warped garment's band above the network's size, added
        # where the mask eroded by two network pixels lies, with a blurred edge.
        low = cv2.resize(cv2.resize(warped, size[::-1], interpolation=cv2.INTER_AREA), (width, height),
                         interpolation=cv2.INTER_CUBIC).astype(np.float32)  # fmt: skip
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (17, 17))
        weight = cv2.GaussianBlur(cv2.erode(mask.astype(np.uint8), kernel).astype(np.float32), (0, 0), 4.0)
        expected = np.clip(generated + (warped - low) * weight[..., None], 0, 255).round().astype(np.uint8)
        result = add_garment_detail(generated, warped, mask, size)
        assert np.array_equal(result, expected)
        assert not np.array_equal(result[box], generated[box])
    empty = np.zeros((height, width), np.float32)
    assert np.array_equal(add_garment_detail(generated, warped, empty, size), generated)


def test_sharp_garment_adds_detail_on_the_garment_only(pipeline: TryOnPipeline, first_result: TryOnResult) -> None:
    """`sharp_garment` adds the warped garment's detail from the network's own grid (128x96) up: more detail
    where the garment lies, nothing changed elsewhere."""
    assert pipeline.tryon.grid_size == (128, 96)
    sharp = TryOnPipeline(pipeline.parser, pipeline.warp, pipeline.tryon, sharp_garment=True)
    pair = example_pairs()[0]
    result = sharp(pair.person, pair.garment, pair.category)
    plain = first_result
    assert np.array_equal(result.warped, plain.warped)
    changed = np.abs(result.generated.astype(int) - plain.generated).max(2) > 0
    on_garment = plain.warped_mask >= 0.5
    assert changed.any() and not changed[~cv2.dilate(on_garment.view(np.uint8), np.ones((41, 41))).astype(bool)].any()

    def band(image: np.ndarray) -> np.ndarray:  # the detail between the network's grid and its output size
        at_network = cv2.resize(image, (192, 256), interpolation=cv2.INTER_AREA).astype(np.float32)
        low = cv2.resize(cv2.resize(at_network, (96, 128), interpolation=cv2.INTER_AREA), (192, 256))
        return (at_network - low).mean(2)

    solid = cv2.resize(on_garment.view(np.uint8), (192, 256), interpolation=cv2.INTER_NEAREST) > 0
    solid = cv2.erode(solid.view(np.uint8), np.ones((5, 5))) > 0
    warped = band(plain.warped)[solid]
    kept = [np.corrcoef(band(r.generated)[solid], warped)[0, 1] for r in (plain, result)]
    print("band correlation with the warped garment, plain / sharp:", kept)
    assert kept[1] > kept[0] + 0.1, kept


def test_mirror_average_changes_the_generated_image_only(pipeline: TryOnPipeline, first_result: TryOnResult) -> None:
    """`mirror_average` runs the try-on network twice (the photo and its mirror image) and averages: the maps
    and the warp stay, the generated picture changes, and the pixels outside the repainted region are kept."""
    averaged = TryOnPipeline(pipeline.parser, pipeline.warp, pipeline.tryon, mirror_average=True)
    pair = example_pairs()[0]
    result = averaged(pair.person, pair.garment, pair.category)
    plain = first_result
    assert np.array_equal(result.warped, plain.warped) and np.array_equal(result.agnostic.mask, plain.agnostic.mask)
    difference = np.abs(result.generated.astype(int) - plain.generated)
    assert difference.max() > 10
    outside = ~result.agnostic.mask.astype(bool)
    assert np.array_equal(result.image[outside], result.person[outside])


def test_pad_round_trip() -> None:
    image = np.random.default_rng(0).integers(0, 255, (300, 500, 3), dtype=np.uint8)
    pad = pad_to_aspect(300, 500, 256 / 192)
    framed = apply_pad(image, pad)
    assert abs(framed.shape[0] / framed.shape[1] - 256 / 192) < 0.01
    assert np.array_equal(remove_pad(framed, pad), image)


def test_result_shapes_and_maps(first_result: TryOnResult) -> None:
    result = first_result
    height, width = result.person.shape[:2]
    assert result.image.shape == (height, width, 3) and result.image.dtype == np.uint8
    assert set(STAGES) <= set(result.timings)
    for name, picture in result.maps().items():
        assert picture.shape == (height, width, 3), name
    # The garment region was repainted: the result differs from the person there.
    inside = result.agnostic.mask & ~result.restored_mask
    assert np.abs(result.image[inside].astype(int) - result.person[inside]).mean() > 5


def test_original_pixels_kept_outside_the_repainted_region(first_result: TryOnResult) -> None:
    result = first_result
    # The feathered seam lies inside the agnostic region: everything a few pixels outside it is the original.
    grown = cv2.dilate(result.agnostic.mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert np.array_equal(result.image[~grown], result.person[~grown])


def test_odd_aspect_and_size_kept(pipeline: TryOnPipeline) -> None:
    pair = example_pairs()[1]
    person = load_image(pair.person)
    wide = np.ascontiguousarray(np.concatenate([person, person[:, :200]], axis=1)[::2, ::2])
    result = pipeline(wide, pair.garment, pair.category)
    assert result.image.shape == wide.shape
    assert result.analysis.parsing.shape == wide.shape[:2]


def test_bad_inputs(pipeline: TryOnPipeline) -> None:
    pair = example_pairs()[0]
    empty = np.full((512, 384, 3), 200, np.uint8)  # a plain wall
    with pytest.raises(NoPersonError):
        pipeline(empty, pair.garment)
    with pytest.raises(ImageInputError):
        pipeline(b"not an image", pair.garment)
    with pytest.raises(ValueError):
        pipeline(pair.person, pair.garment, category="hat")


def _tattoo(size: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A dark random line drawing (h, w, 3) and its alpha (h, w) in [0, 1]."""
    rng = np.random.default_rng(seed)
    h, w = size
    canvas = np.zeros((h, w), np.uint8)
    for _ in range(6):
        points = rng.integers(0, [w, h], (4, 2)).astype(np.int32)
        cv2.polylines(canvas, [points], False, 255, 2, cv2.LINE_AA)
    colour = np.zeros((h, w, 3), np.uint8)
    colour[:] = (30, 40, 90)
    return colour, canvas.astype(np.float32) / 255


def _forearm_box(parsing: np.ndarray, keypoints: np.ndarray, agnostic: np.ndarray) -> tuple[int, int, int, int]:
    """A box (y0, y1, x0, x1) on bare arm skin inside the repainted region, between an elbow and its wrist."""
    arms = np.isin(parsing, [Label.LEFT_ARM, Label.RIGHT_ARM]) & agnostic
    for elbow, wrist in ((3, 4), (6, 7)):  # COCO-18: right elbow/wrist, left elbow/wrist
        if keypoints[elbow, 2] <= 0 or keypoints[wrist, 2] <= 0:
            continue
        cx, cy = ((keypoints[elbow, :2] + keypoints[wrist, :2]) / 2).round().astype(int)
        half = 12
        box = (cy - half, cy + half, cx - half, cx + half)
        region = arms[box[0] : box[1], box[2] : box[3]]
        if region.size and region.mean() > 0.95:
            return box
    raise AssertionError("no bare forearm inside the repainted region")


def test_tattoo_survives_try_on(pipeline: TryOnPipeline) -> None:
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    pair = example_pairs()[2]  # 07573_00: bare forearms; 00126_00: a short-sleeved T-shirt
    person = load_image(pair.person)
    probe = pipeline(person, pair.garment, pair.category)
    y0, y1, x0, x1 = _forearm_box(probe.analysis.parsing, probe.analysis.keypoints, probe.agnostic.mask)
    colour, alpha = _tattoo((y1 - y0, x1 - x0))
    tattooed = person.copy()
    patch = tattooed[y0:y1, x0:x1].astype(np.float32)
    tattooed[y0:y1, x0:x1] = (patch * (1 - alpha[..., None]) + colour * alpha[..., None]).round().astype(np.uint8)

    def tattoo_ssim(image: np.ndarray) -> float:
        a = torch.from_numpy(image[y0:y1, x0:x1]).permute(2, 0, 1)[None].float() / 255
        b = torch.from_numpy(tattooed[y0:y1, x0:x1]).permute(2, 0, 1)[None].float() / 255
        return float(ssim(a, b, data_range=1.0))

    with_block = tattoo_ssim(pipeline(tattooed, pair.garment, pair.category).image)
    off = TryOnPipeline(
        pipeline.parser, pipeline.warp, pipeline.tryon, PostProcessConfig(restore_identity=False), pipeline.steps
    )
    without_block = tattoo_ssim(off(tattooed, pair.garment, pair.category).image)
    print(f"tattoo SSIM with the conditional block {with_block:.4f}, without {without_block:.4f}")
    assert with_block >= 0.98
    assert without_block < with_block - 0.05
