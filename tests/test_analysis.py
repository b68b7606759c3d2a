"""Person and garment analysis: pose and its errors, body-part maps, DensePose codec, garment masks, the CLI."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import require
from fipviton.analysis.body_parts import derive_body_parts
from fipviton.analysis.densepose import (
    DENSEPOSE_COLORS,
    decode_colors,
    encode_index,
    part_iou,
    read_dense_index,
    read_densepose_rgb,
    render_parts,
)
from fipviton.analysis.garment import garment_mask, mask_iou
from fipviton.analysis.person import restrict_to_person, upsampled_argmax
from fipviton.bodyparts import BodyPart
from fipviton.cli import main
from fipviton.data import Category, PairEntry, open_dataset
from fipviton.errors import NoPersonError
from fipviton.imageio import load_image
from fipviton.keypoints import Keypoint
from fipviton.labels import Label

_K = Keypoint


# ----- parsing at photo size (no data needed) -----


@pytest.mark.parametrize(("source", "target"), [((64, 48), (256, 192)), ((256, 191), (724, 540)), ((50, 40), (50, 40))])
def test_upsampled_argmax_equals_resize_then_argmax(source: tuple[int, int], target: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    h, w = source
    # Smooth scores (large uniform regions, as a parser gives) plus noise (every cell mixed).
    coarse = rng.normal(size=(h // 8 + 1, w // 8 + 1, 13)).astype(np.float32)
    smooth = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    for scores in (smooth, rng.normal(size=(h, w, 13)).astype(np.float32)):
        resized = cv2.resize(scores, target[::-1], interpolation=cv2.INTER_LINEAR)
        labels = upsampled_argmax(np.ascontiguousarray(scores), target)
        assert labels.dtype == np.uint8 and labels.shape == target
        # OpenCV rounds differently with 13 channels (1e-5): labels may differ only at such near-ties.
        ys, xs = np.nonzero(labels != resized.argmax(axis=2))
        assert ys.size <= 2
        gap = resized[ys, xs].max(axis=1) - resized[ys, xs, labels[ys, xs]]
        assert np.all(gap < 1e-4)


def test_restrict_to_person_keeps_labels_within_two_percent_of_the_mask() -> None:
    person = np.zeros((500, 400), bool)
    person[100:400, 150:250] = True  # radius: 2 % of 500 = 10 pixels
    parsing = np.full((500, 400), Label.UPPER, np.uint8)
    restricted = restrict_to_person(parsing, person)
    assert restricted[250, 259] == Label.UPPER  # 10 px right of the mask
    assert restricted[250, 261] == Label.BACKGROUND  # 12 px
    assert restricted[93, 143] == Label.UPPER  # 7 px up and 7 left of the corner: 9.9 px
    assert restricted[91, 141] == Label.BACKGROUND  # 9 and 9: 12.7 px (a square of radius 10 would keep it)
    assert restricted.dtype == np.uint8 and np.array_equal(restricted[person], parsing[person])


# ----- DensePose colour codec (no data needed) -----


def _blob_index_map(h: int = 256, w: int = 192, seed: int = 0) -> np.ndarray:
    """An index map of large smooth regions, like a rendered body (values 0..24)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((h, w), np.uint8)
    for value in rng.permutation(np.arange(1, 25)):
        cx, cy = rng.integers(0, w), rng.integers(0, h)
        cv2.ellipse(out, (int(cx), int(cy)), (int(rng.integers(12, 40)), int(rng.integers(12, 40))), 0, 0, 360,
                    int(value), -1)  # fmt: skip
    return out


def test_densepose_colormap_is_parula_with_black_background() -> None:
    assert DENSEPOSE_COLORS.shape == (25, 3)
    assert DENSEPOSE_COLORS[0].tolist() == [0, 0, 0]
    # Index 2 (the torso's front) renders as the blue of VITON-HD `image-densepose` torsos.
    assert np.abs(DENSEPOSE_COLORS[2].astype(int) - [20, 80, 194]).max() <= 3
    assert len({tuple(c) for c in DENSEPOSE_COLORS.tolist()}) == 25


def test_densepose_decoder_round_trip_png_and_jpeg() -> None:
    index = _blob_index_map()
    assert (decode_colors(encode_index(index), clean=False) == index).all()
    buffer = io.BytesIO()
    Image.fromarray(encode_index(index)).save(buffer, format="JPEG", quality=90)
    decoded = decode_colors(np.asarray(Image.open(buffer).convert("RGB")))
    assert (decoded == index).mean() >= 0.97


def test_render_parts_decodes_back_to_parts() -> None:
    parts = np.zeros((64, 48), np.uint8)
    for i, part in enumerate(BodyPart):
        parts[(i * 4) % 64 : (i * 4) % 64 + 4] = part
    from fipviton.analysis.densepose import decode_parts

    assert (decode_parts(render_parts(parts)) == parts).all()


# ----- body-part map derivation -----


def _stick_figure() -> tuple[np.ndarray, np.ndarray]:
    """A synthetic frontal person (parsing 256x192, keypoints) wearing a long-sleeved top and trousers."""
    kp = np.zeros((18, 3), np.float32)
    points = {
        _K.NOSE: (96, 30), _K.NECK: (96, 60), _K.RIGHT_SHOULDER: (70, 62), _K.LEFT_SHOULDER: (122, 62),
        _K.RIGHT_ELBOW: (62, 105), _K.LEFT_ELBOW: (130, 105), _K.RIGHT_WRIST: (58, 145), _K.LEFT_WRIST: (134, 145),
        _K.RIGHT_HIP: (80, 140), _K.LEFT_HIP: (112, 140), _K.RIGHT_KNEE: (80, 195), _K.LEFT_KNEE: (112, 195),
        _K.RIGHT_ANKLE: (80, 245), _K.LEFT_ANKLE: (112, 245),
    }  # fmt: skip
    for k, (x, y) in points.items():
        kp[k] = [x, y, 1.0]
    parsing = np.zeros((256, 192), np.uint8)
    cv2.circle(parsing, (96, 30), 18, int(Label.FACE), -1)
    cv2.rectangle(parsing, (70, 60), (122, 140), int(Label.UPPER), -1)
    for a, b in ((_K.RIGHT_SHOULDER, _K.RIGHT_ELBOW), (_K.RIGHT_ELBOW, _K.RIGHT_WRIST),
                 (_K.LEFT_SHOULDER, _K.LEFT_ELBOW), (_K.LEFT_ELBOW, _K.LEFT_WRIST)):  # fmt: skip
        cv2.line(parsing, points[a], points[b], int(Label.UPPER), 9)
    cv2.circle(parsing, points[_K.RIGHT_WRIST], 6, int(Label.RIGHT_ARM), -1)
    cv2.circle(parsing, points[_K.LEFT_WRIST], 6, int(Label.LEFT_ARM), -1)
    for a, b in ((_K.RIGHT_HIP, _K.RIGHT_ANKLE), (_K.LEFT_HIP, _K.LEFT_ANKLE)):
        cv2.line(parsing, points[a], points[b], int(Label.BOTTOM), 14)
    return parsing, kp


def test_body_parts_follow_the_skeleton_under_clothes() -> None:
    parsing, kp = _stick_figure()
    parts = derive_body_parts(parsing, kp)
    assert parts.shape == parsing.shape and parts.dtype == np.uint8
    # Sleeves (garment pixels) are split into upper and lower arm along the bones; sides are the person's own.
    assert parts[83, 66] == BodyPart.RIGHT_UPPER_ARM
    assert parts[125, 60] == BodyPart.RIGHT_LOWER_ARM
    assert parts[125, 132] == BodyPart.LEFT_LOWER_ARM
    assert parts[100, 96] == BodyPart.TORSO
    assert parts[30, 96] == BodyPart.HEAD
    assert parts[170, 80] == BodyPart.RIGHT_UPPER_LEG
    assert parts[225, 112] == BodyPart.LEFT_LOWER_LEG
    assert (parts[parsing == Label.BACKGROUND] == 0).all()
    # Without keypoints there is no map rather than a wrong one.
    assert not derive_body_parts(parsing, np.zeros((18, 3), np.float32)).any()


def _dresscode_dense_samples(data_dir: Path) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    root = require(data_dir / "dresscode")
    reader = open_dataset(root)
    out = []
    for dense in sorted(root.glob("*/dense/*_5.png")):
        category, sample_id = dense.parent.parent.name, dense.name[:6]
        sample = reader.load("test", PairEntry(f"{sample_id}_0.jpg", f"{sample_id}_1.jpg", Category(category)))
        assert sample.parsing is not None and sample.keypoints is not None and sample.body_parts is not None
        out.append((f"{category}/{sample_id}", sample.parsing, sample.keypoints, sample.body_parts))
    if not out:
        pytest.skip("no DressCode dense maps")
    return out


def _report(name: str, results: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for r in results for k in r})
    mean = {k: float(np.mean([r[k] for r in results if k in r])) for k in keys}
    print(f"\n{name} ({len(results)} samples): mean IoU {mean['mean']:.3f}")
    print("  " + ", ".join(f"{k} {v:.2f}" for k, v in mean.items() if k != "mean"))
    return mean


@pytest.mark.slow
def test_body_parts_iou_against_dresscode_dense(data_dir: Path) -> None:
    results = [
        part_iou(derive_body_parts(parsing, keypoints), dense)
        for _, parsing, keypoints, dense in _dresscode_dense_samples(data_dir)
    ]
    mean = _report("derived body parts vs DressCode dense", results)
    assert mean["mean"] >= 0.55
    assert mean["torso"] >= 0.7


@pytest.mark.slow
def test_body_parts_iou_against_vitonhd_densepose(data_dir: Path) -> None:
    root = require(data_dir / "vitonhd")
    reader = open_dataset(root)
    results = []
    for pair in reader.pairs("test"):
        sample = reader.load("test", pair)
        target = read_densepose_rgb(root / "test" / "image-densepose" / pair.person)
        assert sample.parsing is not None and sample.keypoints is not None
        results.append(part_iou(derive_body_parts(sample.parsing, sample.keypoints), target))
    mean = _report("derived body parts vs VITON-HD image-densepose", results)
    assert mean["mean"] >= 0.6


def test_dresscode_densepose_rendering_matches_dense_index(data_dir: Path) -> None:
    """`image-densepose` is the PARULA rendering of the same fine-part index as `dense/*_5.png`."""
    root = require(data_dir / "dresscode" / "upper_body")
    dense = require(root / "dense" / "000000_5.png")
    index = np.asarray(Image.open(dense))
    decoded = decode_colors(load_image(root / "image-densepose" / "000000_0.jpg"))
    body = (index > 0) | (decoded > 0)
    assert (decoded == index)[body].mean() >= 0.85
    assert (
        part_iou(read_densepose_rgb(root / "image-densepose" / "000000_0.jpg"), read_dense_index(dense))["mean"] >= 0.75
    )


# ----- garment masks -----


def test_white_garment_on_white_background() -> None:
    image = np.full((256, 192, 3), 255, np.uint8)
    shirt = np.zeros((256, 192), np.uint8)
    cv2.fillPoly(shirt, [np.array([[50, 30], [142, 30], [175, 90], [150, 100], [145, 230], [47, 230], [42, 100],
                                    [17, 90]])], 1)  # fmt: skip
    image[shirt > 0] = (246, 245, 243)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    jpeg = np.asarray(Image.open(buffer).convert("RGB"))
    assert mask_iou(garment_mask(jpeg), shirt > 0) >= 0.95


def test_close_up_without_plain_background_is_the_whole_photo() -> None:
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (64, 48, 3), dtype=np.uint8)
    image = cv2.resize(texture, (192, 256), interpolation=cv2.INTER_NEAREST)
    assert garment_mask(image).all()


@pytest.mark.slow
def test_garment_mask_iou_on_viton_test_cloths(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = require(data_dir / "viton_resize")
    assert main(["eval", "garment-mask", "--data", str(root), "--split", "test", "--limit", "50", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    print(f"\ngarment-mask mean IoU on 50 viton test cloths: {result['miou']:.4f}")
    assert result["count"] == 50
    assert result["miou"] >= 0.95


# ----- pose and person checks -----


def _person_photo(data_dir: Path, name: str = "model_5.png") -> np.ndarray:
    return load_image(require(data_dir / "in_the_wild" / "person" / name))


@pytest.mark.slow
def test_pose_on_a_real_photo(data_dir: Path) -> None:
    from fipviton.analysis.pose import estimate_pose

    image = _person_photo(data_dir)
    h, w = image.shape[:2]
    result = estimate_pose(image, Category.UPPER_BODY)
    kp = result.keypoints
    assert kp.shape == (18, 3) and kp.dtype == np.float32
    present = kp[:, 2] > 0
    assert present[[_K.RIGHT_SHOULDER, _K.LEFT_SHOULDER, _K.RIGHT_HIP, _K.LEFT_HIP, _K.NOSE]].all()
    assert (kp[present, 0] >= 0).all() and (kp[present, 0] < w).all()
    assert (kp[present, 1] >= 0).all() and (kp[present, 1] < h).all()
    # The person's right shoulder is on the image's left in a frontal photo.
    assert kp[_K.RIGHT_SHOULDER, 0] < kp[_K.LEFT_SHOULDER, 0]
    assert result.person_mask.shape == (h, w) and 0.1 < result.person_mask.mean() < 0.8
    assert result.face_box is not None and result.people == 1 and not result.warnings


@pytest.mark.slow
def test_no_person_on_blank_and_landscape_images() -> None:
    from fipviton.analysis.pose import estimate_pose

    with pytest.raises(NoPersonError, match="no person"):
        estimate_pose(np.full((480, 640, 3), 200, np.uint8))
    sky = np.linspace([90, 150, 230], [200, 220, 250], 300).astype(np.uint8)
    landscape = np.concatenate([np.repeat(sky[:, None], 800, 1), np.full((200, 800, 3), (60, 120, 40), np.uint8)])
    landscape = np.clip(landscape + np.random.default_rng(0).normal(0, 6, landscape.shape), 0, 255).astype(np.uint8)
    with pytest.raises(NoPersonError):
        estimate_pose(landscape)


@pytest.mark.slow
def test_small_cropped_and_several_people(data_dir: Path) -> None:
    from fipviton.analysis.pose import estimate_pose

    image = _person_photo(data_dir)
    # A small figure in a large scene.
    scene = np.full((1200, 2400, 3), 235, np.uint8)
    scene[800:1056, 1200:1392] = cv2.resize(image, (192, 256), interpolation=cv2.INTER_AREA)
    with pytest.raises(NoPersonError):
        estimate_pose(scene)
    # A lower-body try-on needs the knees: a photo cut at the waist is too cropped.
    with pytest.raises(NoPersonError, match=r"too cropped for a lower body try-on: .*knee"):
        estimate_pose(image[: image.shape[0] // 2], Category.LOWER_BODY)
    # Two people: the larger one is analysed, and the result says so.
    small = cv2.resize(image, (image.shape[1] * 3 // 5, image.shape[0] * 3 // 5), interpolation=cv2.INTER_AREA)
    pair = np.full((image.shape[0], image.shape[1] + small.shape[1], 3), 230, np.uint8)
    pair[:, : image.shape[1]] = image
    pair[image.shape[0] - small.shape[0] :, image.shape[1] :] = small
    result = estimate_pose(pair)
    assert result.people == 2 and any("2 people" in w for w in result.warnings)
    assert result.keypoints[_K.NOSE, 0] < image.shape[1]


def test_analysis_from_a_dataset_sample_uses_its_own_maps(data_dir: Path) -> None:
    from fipviton.analysis.person import analysis_from_sample

    root = require(data_dir / "dresscode" / "upper_body" / "dense" / "000000_5.png").parents[2]
    sample = open_dataset(root).load("test", PairEntry("000000_0.jpg", "000000_1.jpg", Category.UPPER_BODY))
    analysis = analysis_from_sample(sample)
    assert set(analysis.sources.values()) <= {"dataset", "parsing"}
    assert analysis.body_parts is sample.body_parts and analysis.parsing is sample.parsing
    assert analysis.person_mask.shape == sample.person.shape[:2] and analysis.person_mask.dtype == bool


def test_vitonhd_sample_with_its_decoded_densepose(data_dir: Path) -> None:
    from fipviton.analysis.densepose import read_dataset_body_parts
    from fipviton.analysis.person import analysis_from_sample

    reader = open_dataset(require(data_dir / "vitonhd"))
    pair = reader.pairs("test")[0]
    parts = read_dataset_body_parts(reader, "test", pair)
    assert parts is not None and parts.shape == (1024, 768)
    assert (parts == BodyPart.TORSO).mean() > 0.05
    analysis = analysis_from_sample(reader.load("test", pair), body_parts=parts)
    assert analysis.sources["body_parts"] == "dataset" and analysis.sources["keypoints"] == "dataset"


# ----- the analyze command -----


@pytest.fixture(scope="module")
def tiny_parser_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random weights of the tiny parser preset: lets the CLI run end to end without the shipped weights."""
    from fipviton.analysis.parser import HumanParser, ParserConfig

    folder = tmp_path_factory.mktemp("tiny_parser")
    HumanParser(ParserConfig.preset("tiny")).save_pretrained(folder)
    return folder


def test_analyze_refuses_input_folder_bad_images_and_missing_weights(
    tmp_path: Path, tiny_parser_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "person.png"
    Image.fromarray(np.full((64, 48, 3), 128, np.uint8)).save(photo)
    assert main(["analyze", str(photo), "-o", str(tmp_path), "--parser-weights", str(tiny_parser_weights)]) == 1
    assert "refusing to write" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["person.png"]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    out = tmp_path / "out"
    assert main(["analyze", str(broken), "-o", str(out), "--parser-weights", str(tiny_parser_weights)]) == 1
    assert "not an image" in capsys.readouterr().err
    assert main(["analyze", str(photo), "-o", str(out), "--parser-weights", str(tmp_path / "none")]) == 1
    assert "parser's weights are not available" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_analyze_no_person_exits_1(
    tmp_path: Path, tiny_parser_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "in" / "wall.png"
    photo.parent.mkdir()
    Image.fromarray(np.full((400, 300, 3), 180, np.uint8)).save(photo)
    assert main(["analyze", str(photo), "-o", str(tmp_path / "out"), "--parser-weights", str(tiny_parser_weights)]) == 1
    assert "no person" in capsys.readouterr().err


def _run_analyze(data_dir: Path, out: Path, weights: Path | None) -> None:
    person = require(data_dir / "in_the_wild" / "person" / "model_5.png")
    garment = require(data_dir / "in_the_wild" / "garment" / "upper_body" / "22790049_53294275_1000.jpg")
    args = ["analyze", str(person), str(garment), "-o", str(out), "--category", "upper_body"]
    if weights is not None:
        args += ["--parser-weights", str(weights)]
    assert main(args) == 0
    expected = {
        "model_5_keypoints.json", "model_5_parsing.png", "model_5_parsing_labels.png", "model_5_body_parts.png",
        "model_5_body_parts_labels.png", "model_5_person_mask.png", "model_5_agnostic_mask.png",
        "model_5_agnostic.png", "22790049_53294275_1000_garment_mask.png", "model_5_overlay.png",
    }  # fmt: skip
    assert expected <= {p.name for p in out.iterdir()}
    keypoints = json.loads((out / "model_5_keypoints.json").read_text())
    flat = keypoints["people"][0]["pose_keypoints_2d"]
    assert len(flat) == 18 * 3 and keypoints["keypoint_format"] == "COCO-18"
    labels = np.asarray(Image.open(out / "model_5_parsing_labels.png"))
    assert labels.shape == (1024, 768) and labels.max() < len(Label)
    assert np.asarray(Image.open(out / "22790049_53294275_1000_garment_mask.png")).mean() > 30


@pytest.mark.slow
def test_analyze_end_to_end_with_random_parser(data_dir: Path, tmp_path: Path, tiny_parser_weights: Path) -> None:
    _run_analyze(data_dir, tmp_path / "out", tiny_parser_weights)


@pytest.mark.slow
def test_analyze_end_to_end_with_shipped_parser(data_dir: Path, tmp_path: Path) -> None:
    from fipviton.analysis.parser import CONFIG_NAME, DEFAULT_WEIGHTS_DIR, WEIGHTS_NAME

    if not (DEFAULT_WEIGHTS_DIR / WEIGHTS_NAME).is_file() or not (DEFAULT_WEIGHTS_DIR / CONFIG_NAME).is_file():
        pytest.skip(f"shipped parser weights not in {DEFAULT_WEIGHTS_DIR} yet")
    out = tmp_path / "out"
    _run_analyze(data_dir, out, None)
    # With real weights the parsing finds the person: most of the person mask is labelled.
    parsing = np.asarray(Image.open(out / "model_5_parsing_labels.png"))
    mask = np.asarray(Image.open(out / "model_5_person_mask.png")) > 0
    assert (parsing[mask] > 0).mean() > 0.8
    shutil.rmtree(out)


def test_printed_portrait_is_not_a_wearer() -> None:
    """A T-shirt with a printed face (bundled example) is a product photo: the mask covers the whole shirt."""
    from fipviton.analysis.garment import analyze_garment
    from fipviton.examples import EXAMPLES_DIR
    from fipviton.imageio import load_image

    shirt = load_image(EXAMPLES_DIR / "garment" / "03032_00.jpg")
    result = analyze_garment(shirt)
    assert not any("shows a person" in w for w in result.warnings)
    h = shirt.shape[0]
    rows = np.flatnonzero(result.mask.any(axis=1))
    assert rows[-1] > 0.8 * h  # the hem (row 868 of 1024), below the print, is inside the mask
