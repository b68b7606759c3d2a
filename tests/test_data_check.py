"""`fipviton data check` end to end on small copies of the real data (symlinks, plus deliberately broken files)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import require
from fipviton.cli import main
from fipviton.data import PairEntry, open_dataset
from fipviton.data.check import check_dataset
from fipviton.errors import DatasetError

VITON_FOLDERS = ("image", "cloth", "cloth-mask", "image-mask", "image-parse", "image-parse-new", "pose")


def viton_subset(source: Path, target: Path, count: int = 4) -> Path:
    """A VITON copy of the first `count` pairs of each split, every file a symlink to the original."""
    target.mkdir(parents=True, exist_ok=True)
    for split, list_name in (("train", "train_pairs.txt"), ("test", "test_pairs.txt")):
        lines = (source / list_name).read_text().splitlines()[:count]
        (target / list_name).write_text("\n".join(lines) + "\n")
        for folder in VITON_FOLDERS:
            (target / split / folder).mkdir(parents=True, exist_ok=True)
        for line in lines:
            person, garment = line.split()
            stem = Path(person).stem
            names = [
                ("image", person),
                ("cloth", garment),
                ("cloth-mask", garment),
                ("image-mask", f"{stem}.png"),
                ("image-parse", f"{stem}.png"),
                ("image-parse-new", f"{stem}.png"),
                ("pose", f"{stem}_keypoints.json"),
            ]
            for folder, name in names:
                link = target / split / folder / name
                if not link.exists():
                    link.symlink_to(source / split / folder / name)
    return target


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every entry under `root` with its size and mtime (symlinks not followed)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            out[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns)
    return out


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["data", "check", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def viton_copy(data_dir: Path, tmp_path: Path) -> Path:
    return viton_subset(require(data_dir / "viton_resize"), tmp_path / "viton")


def test_clean_copy_is_complete(viton_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(viton_copy)
    code, out, _ = run_cli([str(viton_copy), "--json"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["layout"] == "viton"
    assert report["lists_checked"] == ["train_pairs.txt", "test_pairs.txt"]
    for split in ("train", "test"):
        assert report["splits"][split]["pairs"] == 4
        assert report["splits"][split]["complete"] == 4
        assert report["splits"][split]["problems"] == []
    assert snapshot(viton_copy) == before, "data check wrote into the dataset folder"
    code, out, _ = run_cli([str(viton_copy)], capsys)
    assert code == 0 and "layout viton" in out and "train: 4/4 pairs complete" in out


def test_broken_copy_names_every_problem(viton_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = [line.split() for line in (viton_copy / "train_pairs.txt").read_text().splitlines()]
    # 1. a deleted garment
    missing_garment = pairs[0][1]
    (viton_copy / "train" / "cloth" / missing_garment).unlink()
    # 2. a truncated person JPEG (a real file replacing the link)
    truncated = viton_copy / "train" / "image" / pairs[1][0]
    data = truncated.read_bytes()
    truncated.unlink()
    truncated.write_bytes(data[: len(data) // 2])
    # 3. a traversal entry in the pair list
    with (viton_copy / "test_pairs.txt").open("a") as handle:
        handle.write("../train/image/000003_0.jpg 000001_1.jpg\n")
    before = snapshot(viton_copy)

    code, out, _ = run_cli([str(viton_copy), "--json"], capsys)
    assert code == 1
    report = json.loads(out)
    train, test = report["splits"]["train"], report["splits"]["test"]
    assert (train["pairs"], train["complete"]) == (4, 2)
    assert (test["pairs"], test["complete"]) == (5, 4)
    train_text = "\n".join(train["problems"])
    assert f"cloth/{missing_garment}: no such file" in train_text
    assert f"image/{pairs[1][0]}" in train_text and "truncated" in train_text
    assert any("test_pairs.txt:5" in p and "../train/image/000003_0.jpg" in p for p in test["problems"])
    assert report["ok"] is False

    code, out, _ = run_cli([str(viton_copy)], capsys)
    assert code == 1
    assert missing_garment in out and pairs[1][0] in out and "test_pairs.txt:5" in out
    assert "PROBLEMS FOUND" in out
    assert snapshot(viton_copy) == before, "data check wrote into the dataset folder"

    reader = open_dataset(viton_copy)
    with pytest.raises(DatasetError, match=f"garment cloth/{missing_garment}: no such file"):
        reader.load("train", PairEntry(*pairs[0]))
    with pytest.raises(DatasetError, match="truncated"):
        reader.load("train", PairEntry(*pairs[1]))
    with pytest.raises(DatasetError, match="path separator"):
        reader.pairs("test", paired=False)


def test_bad_labels_and_keypoints_are_problems(viton_copy: Path) -> None:
    person = (viton_copy / "test_pairs.txt").read_text().split()[0]
    stem = Path(person).stem
    parse = viton_copy / "test" / "image-parse-new" / f"{stem}.png"
    values = np.asarray(Image.open(parse)).copy()
    parse.unlink()
    values[0, 0] = 42  # not a CIHP label
    Image.fromarray(values).save(parse)
    pose = viton_copy / "test" / "pose" / f"{stem}_keypoints.json"
    pose.unlink()
    pose.write_text('{"people": [{"pose_keypoints": [1, 2]}]}')
    report = check_dataset(viton_copy, workers=2)
    problems = "\n".join(report.splits["test"].problems)
    assert "label values [42]" in problems
    assert f"{stem}_keypoints.json" in problems
    assert report.splits["test"].complete == 3


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli([str(tmp_path / "absent")], capsys)
    assert code == 2 and "no such directory" in err
    code, _, err = run_cli([str(tmp_path)], capsys)
    assert code == 2 and "not a known dataset layout" in err
    with pytest.raises(SystemExit) as exc:
        main(["data", "check"])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("folder", "groups"),
    [
        ("vitonhd", {"train": 7, "test": 7}),
        ("vitonhd_extra", {"test": 27}),
        ("dresscode", {"test/upper_body": 7, "test/lower_body": 7, "test/dresses": 6}),
        ("dresscode_extra", {"test/upper_body": 8, "test/lower_body": 5, "test/dresses": 5}),
    ],
)
def test_small_datasets_are_complete(data_dir: Path, folder: str, groups: dict[str, int]) -> None:
    report = check_dataset(require(data_dir / folder), workers=2)
    assert report.ok, report.as_dict()
    assert {name: split.complete for name, split in report.splits.items()} == groups
