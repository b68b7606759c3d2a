"""Dataset readers on the real data: layouts, pair lists, label mappings, keypoints, left/right conventions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import require
from fipviton.data import (
    Category,
    PairEntry,
    default_data_root,
    detect_layout,
    open_dataset,
    read_pair_list,
    unsafe_name_reason,
)
from fipviton.data.files import Kind, decode
from fipviton.data.readers import BaseReader
from fipviton.errors import DatasetError
from fipviton.keypoints import Keypoint
from fipviton.labels import Label

K = Keypoint


def reader_for(data_dir: Path, name: str) -> BaseReader:
    return open_dataset(require(data_dir / name))


def raw_parsing(reader: BaseReader, split: str, pair: PairEntry) -> np.ndarray | None:
    spec = next(s for s in reader.files(split, pair) if s.role == "parsing")
    return decode(spec) if spec.path.exists() else None


def spread(items: list, count: int) -> list:
    """`count` items evenly spread over `items` (deterministic)."""
    if len(items) <= count:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


# ---- layouts and pair lists ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "layout", "splits"),
    [
        ("viton_resize", "viton", ["train", "test"]),
        ("vitonhd", "vitonhd", ["train", "test"]),
        ("vitonhd_extra", "vitonhd", ["test"]),
        ("dresscode", "dresscode", ["test"]),
        ("dresscode_extra", "dresscode", ["test"]),
    ],
)
def test_layout_detection_and_splits(data_dir: Path, folder: str, layout: str, splits: list[str]) -> None:
    root = require(data_dir / folder)
    assert detect_layout(root) == layout
    reader = open_dataset(root)
    assert reader.name == layout
    assert reader.splits() == splits


def test_unknown_layout_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a known dataset layout"):
        detect_layout(tmp_path)
    with pytest.raises(DatasetError, match="no such directory"):
        open_dataset(tmp_path / "absent")


def test_default_data_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FIPVITON_DATA", str(tmp_path))
    assert default_data_root() == tmp_path
    monkeypatch.delenv("FIPVITON_DATA")
    assert default_data_root().parts[-2:] == ("shared", "data")


def test_viton_pair_counts(data_dir: Path) -> None:
    reader = reader_for(data_dir, "viton_resize")
    train = reader.pairs("train", paired=True)
    assert len(train) == 5459
    assert all(Path(p.person).stem[:-2] == Path(p.garment).stem[:-2] for p in train)
    assert len(reader.pairs("test", paired=True)) == 2032
    unpaired = reader.pairs("test", paired=False)
    assert len(unpaired) == 2032
    with pytest.raises(DatasetError):
        reader.pairs("train", paired=False)
    with pytest.raises(DatasetError, match="unknown split"):
        reader.pairs("val")


def test_dresscode_pairs_per_category(data_dir: Path) -> None:
    reader = reader_for(data_dir, "dresscode")
    everything = reader.pairs("test", paired=True)
    assert len(everything) == 20
    per_category = {c: reader.pairs("test", paired=True, category=c) for c in Category}
    assert sum(len(v) for v in per_category.values()) == 20
    assert all(p.category == c for c, pairs in per_category.items() for p in pairs)


# ---- pair-list safety ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../x.jpg", "..", "/etc/passwd", "a/b.jpg", "a\\b.jpg", "C:x.jpg", "", "x\x00.jpg"])
def test_unsafe_names_are_refused(name: str) -> None:
    assert unsafe_name_reason(name) is not None


def test_plain_names_are_accepted() -> None:
    for name in ("000001_0.jpg", "a..b.jpg", "00013_00.jpg"):
        assert unsafe_name_reason(name) is None


def test_pair_list_problems(tmp_path: Path) -> None:
    path = tmp_path / "test_pairs.txt"
    path.write_text("a_0.jpg b_1.jpg\n../x.jpg b_1.jpg\n/abs.jpg b_1.jpg\nonly_one.jpg\n\na_0.jpg b_1.jpg extra\n")
    found = read_pair_list(path)
    assert [e.person for e in found.entries] == ["a_0.jpg"]
    assert found.refused == 4
    assert any("test_pairs.txt:2" in p and "path separator" in p for p in found.problems)
    assert any("test_pairs.txt:4" in p and "columns" in p for p in found.problems)
    with pytest.raises(DatasetError, match="pair list problems"):
        found.strict()
    coded = tmp_path / "coded.txt"
    coded.write_text("a_0.jpg\tb_1.jpg\t2\na_0.jpg\tb_1.jpg\t7\n")
    found = read_pair_list(coded, with_category_column=True)
    assert [e.category for e in found.entries] == [Category.DRESSES]
    assert len(found.problems) == 1


def test_reader_refuses_traversal(data_dir: Path, tmp_path: Path) -> None:
    reader = reader_for(data_dir, "viton_resize")
    with pytest.raises(DatasetError, match="refusing"):
        reader.load("test", PairEntry("../train/image/000003_0.jpg", "000001_1.jpg"))
    with pytest.raises(DatasetError, match="refusing"):
        reader.load("test", PairEntry("000001_0.jpg", "/etc/passwd"))
    # A pair list with a traversal entry makes pairs() fail instead of following it.
    (tmp_path / "test" / "pose").mkdir(parents=True)
    (tmp_path / "test_pairs.txt").write_text("000001_0.jpg ../x.jpg\n")
    with pytest.raises(DatasetError, match="path separator"):
        open_dataset(tmp_path).pairs("test", paired=False)


# ---- label mappings on the real files ----------------------------------------------------------------


def _label_values(reader: BaseReader, split: str, pairs: list[PairEntry]) -> set[int]:
    seen: set[int] = set()
    for pair in pairs:
        raw = raw_parsing(reader, split, pair)
        if raw is not None:
            seen.update(int(v) for v in np.flatnonzero(np.bincount(raw.ravel(), minlength=256)))
    return seen


@pytest.mark.parametrize(
    ("folder", "count"), [("viton_resize", 400), ("vitonhd", 20), ("vitonhd_extra", 30), ("dresscode", 20)]
)
def test_every_source_label_is_mapped(data_dir: Path, folder: str, count: int) -> None:
    reader = reader_for(data_dir, folder)
    seen: set[int] = set()
    for split in reader.splits():
        seen |= _label_values(reader, split, spread(reader.pairs(split, paired=split == "train"), count))
    assert seen, "no parsing maps found"
    assert seen <= set(reader.MAPPING), f"unmapped source labels {sorted(seen - set(reader.MAPPING))}"


def test_dresscode_keypoints_frame(data_dir: Path) -> None:
    """Dress Code keypoints are stored in 384x512 while images are 768x1024: scaled, they land on the person."""
    reader = reader_for(data_dir, "dresscode")
    on_person_raw = on_person_scaled = total = 0
    for pair in reader.pairs("test", paired=True):
        raw = raw_parsing(reader, "test", pair)
        spec = next(s for s in reader.files("test", pair) if s.role == "keypoints")
        stored = np.asarray(json.loads(spec.path.read_text())["keypoints"], dtype=np.float32)
        present = stored[:, 2] > 0
        assert stored[present, 0].max() < 384 and stored[present, 1].max() < 512
        sample = reader.load("test", pair)
        assert sample.person.shape == (1024, 768, 3)
        kp = sample.keypoints
        assert kp is not None and raw is not None
        np.testing.assert_allclose(kp[present, :2], stored[present, :2] * 2.0)
        for points, counter in ((stored[present, :2], "raw"), (kp[present, :2], "scaled")):
            x = np.clip(points[:, 0].round().astype(int), 0, 767)
            y = np.clip(points[:, 1].round().astype(int), 0, 1023)
            hits = int((raw[y, x] > 0).sum())
            if counter == "raw":
                on_person_raw += hits
            else:
                on_person_scaled += hits
        total += int(present.sum())
    assert on_person_scaled > 0.9 * total
    assert on_person_raw < 0.3 * total


def _silhouette_hits(parsing: np.ndarray, keypoints: np.ndarray, tolerance: int) -> tuple[int, int]:
    person = parsing > 0
    height, width = person.shape
    hits = total = 0
    for x, y, conf in keypoints:
        if conf < 0.3:
            continue
        total += 1
        x0, y0 = round(float(x)), round(float(y))
        window = person[max(0, y0 - tolerance) : y0 + tolerance + 1, max(0, x0 - tolerance) : x0 + tolerance + 1]
        hits += int(0 <= x0 < width and 0 <= y0 < height and window.any())
    return hits, total


@pytest.mark.parametrize(
    ("folder", "split", "paired", "tolerance"),
    [("viton_resize", "test", True, 3), ("vitonhd", "test", True, 12), ("dresscode", "test", True, 12)],
)
def test_keypoints_land_on_the_person(data_dir: Path, folder: str, split: str, paired: bool, tolerance: int) -> None:
    reader = reader_for(data_dir, folder)
    for pair in spread(reader.pairs(split, paired), 6):
        sample = reader.load(split, pair)
        assert sample.parsing is not None and sample.keypoints is not None
        hits, total = _silhouette_hits(sample.parsing, sample.keypoints, tolerance)
        assert total >= 8 and hits >= 0.85 * total, (pair, hits, total)


def side_agreement(parsing: np.ndarray, keypoints: np.ndarray) -> tuple[int, int]:
    """For each arm label, is it nearer the same-side elbow/wrist than the other side's? (agree, disagree)"""
    agree = disagree = 0
    sides = {
        Label.LEFT_ARM: ([K.LEFT_ELBOW, K.LEFT_WRIST], [K.RIGHT_ELBOW, K.RIGHT_WRIST]),
        Label.RIGHT_ARM: ([K.RIGHT_ELBOW, K.RIGHT_WRIST], [K.LEFT_ELBOW, K.LEFT_WRIST]),
    }
    for label, (same, other) in sides.items():
        ys, xs = np.nonzero(parsing == label)
        if len(xs) < 20:
            continue
        pixels = np.stack([xs, ys], axis=1).astype(np.float32)

        def distance(points: list[Keypoint], pixels: np.ndarray = pixels) -> float | None:
            present = [p for p in points if keypoints[p, 2] > 0]
            if not present:
                return None
            return min(float(np.hypot(*(pixels - keypoints[p, :2]).T).min()) for p in present)

        a, b = distance(same), distance(other)
        if a is None or b is None or a == b:
            continue
        agree += int(a < b)
        disagree += int(a > b)
    return agree, disagree


@pytest.mark.parametrize(
    ("folder", "split", "paired", "count"),
    [("viton_resize", "train", True, 60), ("vitonhd", "test", True, 7), ("dresscode", "test", True, 20)],
)
def test_left_arm_label_is_on_the_keypoints_left(
    data_dir: Path, folder: str, split: str, paired: bool, count: int
) -> None:
    """Our LEFT_ARM (CIHP 14, Dress Code 14) lies at OpenPose's LEFT_ELBOW/LEFT_WRIST: the person's own left."""
    reader = reader_for(data_dir, folder)
    agree = disagree = frontal = 0
    for pair in spread(reader.pairs(split, paired), count):
        sample = reader.load(split, pair)
        assert sample.parsing is not None and sample.keypoints is not None
        a, d = side_agreement(sample.parsing, sample.keypoints)
        agree, disagree = agree + a, disagree + d
        kp = sample.keypoints
        frontal += int(kp[K.LEFT_SHOULDER, 0] > kp[K.RIGHT_SHOULDER, 0])
    assert agree >= 0.9 * (agree + disagree) and agree > 0
    # Frontal photos: the person's left shoulder is on the image's right.
    assert frontal >= 0.9 * min(count, len(reader.pairs(split, paired)))


# ---- samples -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "split", "paired", "size", "has_mask", "has_parsing", "has_keypoints"),
    [
        ("viton_resize", "train", True, (256, 192), True, True, True),
        ("vitonhd", "train", True, (1024, 768), True, True, False),
        ("vitonhd", "test", False, (1024, 768), True, True, True),
        ("dresscode_extra", "test", False, (1024, 768), False, False, True),
    ],
)
def test_load_sample(
    data_dir: Path,
    folder: str,
    split: str,
    paired: bool,
    size: tuple[int, int],
    has_mask: bool,
    has_parsing: bool,
    has_keypoints: bool,
) -> None:
    reader = reader_for(data_dir, folder)
    pair = reader.pairs(split, paired)[0]
    sample = reader.load(split, pair)
    assert sample.person.shape == (*size, 3) and sample.person.dtype == np.uint8
    assert sample.garment.ndim == 3 and sample.garment.dtype == np.uint8
    assert (sample.garment_mask is not None) == has_mask
    if sample.garment_mask is not None:
        assert sample.garment_mask.dtype == bool and 0.05 < sample.garment_mask.mean() < 0.95
    assert (sample.parsing is not None) == has_parsing
    if sample.parsing is not None:
        assert sample.parsing.shape == size and sample.parsing.max() < len(Label)
    assert (sample.keypoints is not None) == has_keypoints
    if sample.keypoints is not None:
        assert sample.keypoints.shape == (18, 3) and sample.keypoints.dtype == np.float32
    assert sample.paired == paired
    assert sample.dataset == reader.name


def test_dresscode_body_parts_from_dense_maps(data_dir: Path) -> None:
    reader = reader_for(data_dir, "dresscode")
    pair = PairEntry("000000_0.jpg", "000000_1.jpg", Category.UPPER_BODY)
    sample = reader.load("test", pair)
    assert sample.body_parts is not None and sample.body_parts.shape == (1024, 768)
    assert sample.body_parts.max() <= 14 and (sample.body_parts > 0).mean() > 0.05
    dense = next(s for s in reader.files("test", pair) if s.kind is Kind.DENSE_I)
    assert dense.path.name == "000000_5.png"
    no_dense = reader.load("test", PairEntry("000009_0.jpg", "000009_1.jpg", Category.UPPER_BODY))
    assert no_dense.body_parts is None
