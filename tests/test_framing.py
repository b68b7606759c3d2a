"""Framing (`fipviton.framing`): a person crop and a garment canvas framed like VITON's photos.

Synthetic keypoints and masks test the geometry; a full-body in-the-wild photo tests the pipeline's crop and
paste-back, and the bundled VITON-HD example tests that a photo framed like the training photos is left alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from conftest import require
from fipviton.data.sample import Category
from fipviton.framing import (
    GARMENT_WIDTH,
    NECK_Y,
    TORSO,
    crop,
    frame_garment,
    garment_frame,
    paste,
    person_frame,
)
from fipviton.keypoints import Keypoint

if TYPE_CHECKING:
    from fipviton.pipeline import TryOnPipeline

torch.set_num_threads(2)
SIZE = (256, 192)


def _keypoints(neck: tuple[float, float], torso: float, **extra: tuple[float, float]) -> np.ndarray:
    """COCO-18 keypoints: a neck, two hips `torso` pixels below it, and any other named points."""
    points = np.zeros((18, 3), np.float32)
    x, y = neck
    points[Keypoint.NECK] = (x, y, 1)
    points[Keypoint.RIGHT_HIP] = (x - 0.2 * torso, y + torso, 1)
    points[Keypoint.LEFT_HIP] = (x + 0.2 * torso, y + torso, 1)
    for name, (px, py) in extra.items():
        points[Keypoint[name.upper()]] = (px, py, 1)
    return points


def test_full_body_photo_gets_a_vitonlike_window() -> None:
    points = _keypoints((400, 200), 240)  # torso 240 px in a 1024-px photo: the VITON window is 520 px high
    window = person_frame(points, (1024, 768, 3), SIZE, Category.UPPER_BODY)
    assert window is not None
    top, left, height, width = window
    assert abs(height - 240 / TORSO) <= 1 and abs(width - height * 0.75) <= 1
    assert abs((200 - top) / height - NECK_Y) < 0.01  # the neck where VITON has it
    assert abs(left + width / 2 - 400) <= 1
    # Not for other categories; not without hips; not for a photo framed as VITON's are.
    assert person_frame(points, (1024, 768), SIZE, Category.DRESSES) is None
    no_hip = points.copy()
    no_hip[Keypoint.LEFT_HIP, 2] = 0
    assert person_frame(no_hip, (1024, 768), SIZE, "upper_body") is None
    vitonlike = _keypoints((96, NECK_Y * 256), TORSO * 256)
    assert person_frame(vitonlike, (256, 192), SIZE, "upper_body") is None


def test_window_contains_the_arms_and_stays_inside_the_photo() -> None:
    # A wrist far to the right: the window grows about its centre until the wrist lies inside with a margin.
    points = _keypoints((400, 200), 240, left_wrist=(700, 420))
    top, left, height, width = person_frame(points, (1024, 768), SIZE, "upper_body")
    assert left <= 700 - 0.05 * width and 700 + 0.05 * width <= left + width
    assert height > 240 / TORSO + 10
    # A person at the photo's top-left corner: the window is moved into the photo, not cut.
    corner = _keypoints((60, 30), 240)
    top, left, height, width = person_frame(corner, (1024, 768), SIZE, "upper_body")
    assert (top, left) == (0, 0) and height <= 1024 and width <= 768
    # A window as high as a photo narrower than 3:4 (its neck too low for VITON): still inside the photo.
    low_neck = _keypoints((300, 460), 0.46 * 1000)
    top, left, height, width = person_frame(low_neck, (1000, 749), SIZE, "upper_body")
    assert top >= 0 and left >= 0 and top + height <= 1000 and left + width <= 749


def test_garment_on_a_square_photo_is_framed_like_viton() -> None:
    rng = np.random.default_rng(0)
    image = np.full((600, 600, 3), 200, np.uint8)  # grey backdrop
    mask = np.zeros((600, 600), bool)
    mask[100:420, 150:450] = True  # a 320 x 300 garment
    image[mask] = rng.integers(0, 256, (int(mask.sum()), 3), dtype=np.uint8)
    framed, framed_mask = frame_garment(image, mask, SIZE)
    assert abs(framed.shape[1] / framed.shape[0] - 0.75) < 0.01
    assert framed_mask.sum() == mask.sum()
    xs = np.nonzero(framed_mask)[1]
    assert abs((xs.max() + 1 - xs.min()) / framed.shape[1] - GARMENT_WIDTH) < 0.01  # the width binds here
    assert np.array_equal(framed[framed_mask], image[mask])  # the garment's pixels, unscaled
    assert (framed[~framed_mask] == 255).all()  # on white, as VITON's garments
    # A photo framed as VITON's are is returned as it is.
    viton = np.full((256, 192, 3), 255, np.uint8)
    viton_mask = np.zeros((256, 192), bool)
    viton_mask[15:230, 6:186] = True
    assert garment_frame(viton_mask, SIZE) is None
    same_image, same_mask = frame_garment(viton, viton_mask, SIZE)
    assert same_image is viton and same_mask is viton_mask
    assert garment_frame(np.zeros((10, 10), bool), SIZE) is None


def test_crop_and_paste_round_trip() -> None:
    canvas = np.arange(20 * 30).reshape(20, 30)
    window = (3, 5, 8, 6)
    part = crop(canvas, window)
    assert part.shape == (8, 6) and part[0, 0] == canvas[3, 5]
    pasted = paste(canvas, -part, window)
    assert (pasted[3:11, 5:11] == -canvas[3:11, 5:11]).all() and pasted[0, 0] == canvas[0, 0]
    assert canvas[3, 5] == 3 * 30 + 5  # the canvas itself is not written


@pytest.fixture(scope="module")
def pipeline() -> TryOnPipeline:
    from fipviton.pipeline import TryOnPipeline

    return TryOnPipeline.from_pretrained()


def test_full_body_photo_is_tried_on_in_a_crop(pipeline: TryOnPipeline, data_dir: Path) -> None:
    from fipviton.imageio import load_image

    root = data_dir / "in_the_wild"
    person = load_image(require(root / "person" / "Yifeng_0.png"), "person")
    garment = load_image(require(root / "garment" / "upper_body" / "22790049_53294275_1000.jpg"), "garment")
    result = pipeline(person, garment, "upper_body")
    assert result.frame is not None
    top, left, height, width = result.frame
    assert height < 0.75 * person.shape[0]  # the person was small in the photo
    outside = np.ones(person.shape[:2], bool)
    outside[top : top + height, left : left + width] = False
    assert np.array_equal(result.image[outside], person[outside])  # nothing outside the crop is touched
    assert not np.array_equal(result.image[~outside], person[~outside])
    for name in ("image", "generated", "warped", "noise_condition"):
        assert getattr(result, name).shape == person.shape, name
    for mask in (result.warped_mask, result.restored_mask, result.agnostic.mask, result.analysis.parsing):
        assert mask.shape == person.shape[:2]
    assert result.agnostic.mask[outside].sum() == 0
    # The keypoints are the whole photo's: the neck inside the crop, the ankles below it.
    neck, ankle = result.analysis.keypoints[Keypoint.NECK], result.analysis.keypoints[Keypoint.LEFT_ANKLE]
    assert top < neck[1] < top + height and ankle[2] > 0 and ankle[1] > top + height
    whole = type(pipeline)(pipeline.parser, pipeline.warp, pipeline.tryon, framing=False)(person, garment)
    assert whole.frame is None and whole.image.shape == person.shape
    # A wide photo is padded to 3:4 before the analysis: the frame is reported in the photo's own pixels.
    wide = np.ascontiguousarray(np.pad(person, ((0, 0), (300, 300), (0, 0)), mode="edge")[100:])
    result = pipeline(wide, garment, "upper_body")
    top, left, height, width = result.frame
    assert top >= 0 and top + height <= wide.shape[0] and left >= 0 and left + width <= wide.shape[1]
    outside = np.ones(wide.shape[:2], bool)
    outside[top : top + height, left : left + width] = False
    assert np.array_equal(result.image[outside], wide[outside])
    assert result.agnostic.mask.any() and not result.agnostic.mask[outside].any()


def test_example_framed_like_viton_is_left_alone(pipeline: TryOnPipeline) -> None:
    from fipviton.examples import example_pairs

    pair = example_pairs()[0]
    framed = pipeline(pair.person, pair.garment, pair.category)
    plain = type(pipeline)(pipeline.parser, pipeline.warp, pipeline.tryon, framing=False)
    as_is = plain(pair.person, pair.garment, pair.category)
    assert framed.frame is None
    assert np.array_equal(framed.image, as_is.image)


def test_data_framing_command(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from fipviton.cli import main

    viton = require(data_dir / "viton_resize")
    assert main(["data", "framing", str(viton), "--split", "train", "--limit", "200", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    person, garment = stats["person"], stats["garment"]
    assert person["count"] >= 190 and garment["count"] == 200
    # VITON's own photos: the medians are this module's constants, and almost none is re-framed.
    assert abs(person["neck_y"]["p50"] - NECK_Y) < 0.02 and abs(person["torso"]["p50"] - TORSO) < 0.02
    assert abs(garment["width"]["p50"] - GARMENT_WIDTH) < 0.02
    assert person["reframed"] <= 0.05 * person["count"] and garment["reframed"] <= 0.05 * garment["count"]
    assert main(["data", "framing", str(viton), "--split", "nosuch"]) == 2
    assert "no split 'nosuch'" in capsys.readouterr().err
    assert main(["data", "framing", str(data_dir / "nosuch")]) == 2


def test_cut_analysis_moves_points_and_maps_into_the_window() -> None:
    from fipviton.analysis.person import PersonAnalysis, cut_analysis

    rng = np.random.default_rng(1)
    parsing = rng.integers(0, 13, (400, 300), dtype=np.uint8)
    points = _keypoints((150, 100), 120, left_ankle=(160, 390))
    whole = PersonAnalysis(
        keypoints=points,
        parsing=parsing,
        body_parts=parsing + 1,
        person_mask=parsing > 0,
        face_box=(120, 20, 180, 90),
        warnings=["two people found"],
    )
    window = (50, 40, 240, 180)
    cut = cut_analysis(whole, window)
    assert np.array_equal(cut.parsing, parsing[50:290, 40:220]) and cut.body_parts.shape == (240, 180)
    assert np.allclose(cut.keypoints[Keypoint.NECK], (110, 50, 1))
    assert (cut.keypoints[Keypoint.LEFT_ANKLE] == 0).all()  # below the window: missing
    assert cut.face_box == (80, 0, 140, 40)  # cut at the window's top
    assert cut.warnings == ["two people found"] and cut.warnings is not whole.warnings
    cut.parsing[0, 0] = 255
    assert parsing[50, 40] != 255  # a copy, not a view


def test_tiny_garment_masks_fit_their_canvas() -> None:
    for shape in ((5, 1), (1, 5), (1, 1), (3, 2)):
        mask = np.zeros((40, 40), bool)
        mask[10 : 10 + shape[0], 20 : 20 + shape[1]] = True
        image = np.zeros((40, 40, 3), np.uint8)
        framed, framed_mask = frame_garment(image, mask, SIZE)
        assert framed_mask.sum() == mask.sum() and framed.shape[:2] == framed_mask.shape
