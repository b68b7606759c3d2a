"""`fipviton try-on`: one pair, a photo folder, a dataset list; resuming after a kill; refusing unsafe outputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import require
from fipviton.cli import main
from fipviton.examples import EXAMPLES_DIR, example_pairs

ENV = {**os.environ, "OMP_NUM_THREADS": "2"}


def test_one_pair_and_no_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pair = example_pairs()[0]
    out = tmp_path / "result.png"
    assert main(["try-on", str(pair.person), str(pair.garment), "-o", str(out), "--grid"]) == 0
    image = np.asarray(Image.open(out))
    assert image.shape == np.asarray(Image.open(pair.person)).shape
    assert (tmp_path / "result_grid.png").is_file()
    before = out.read_bytes()
    assert main(["try-on", str(pair.person), str(pair.garment), "-o", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    # The output may never be one of the inputs.
    copy = tmp_path / "person.png"
    shutil.copy(pair.person, copy)
    assert main(["try-on", str(copy), str(pair.garment), "-o", str(copy), "--overwrite"]) == 1
    assert copy.read_bytes() == pair.person.read_bytes()


def test_postprocess_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--postprocess NAME=VALUE reaches the pipeline: without the conditional block the person's own pixels around
    the garment are no longer given back, so the image changes; a bad override is a usage error, nothing written."""
    pair = example_pairs()[0]
    outputs = {}
    for name, extra in (("shipped", []), ("ablated", ["--postprocess", "restore_identity=false"])):
        out = tmp_path / f"{name}.png"
        assert main(["try-on", str(pair.person), str(pair.garment), "-o", str(out), *extra]) == 0
        outputs[name] = np.asarray(Image.open(out)).astype(int)
    assert np.abs(outputs["shipped"] - outputs["ablated"]).max() > 16
    with pytest.raises(SystemExit) as exited:
        main(["try-on", str(pair.person), str(pair.garment), "-o", str(tmp_path / "bad.png"), "--postprocess", "x=1"])
    assert exited.value.code == 2 and "argument --postprocess" in capsys.readouterr().err
    assert not (tmp_path / "bad.png").exists()


def _photo_folder(tmp_path: Path) -> Path:
    data = tmp_path / "photos"
    (data / "person").mkdir(parents=True)
    (data / "garment").mkdir()
    for pair in example_pairs():
        shutil.copy(pair.person, data / "person" / pair.person.name)
        shutil.copy(pair.garment, data / "garment" / pair.garment.name)
    (data / "garment" / "broken.jpg").write_bytes((EXAMPLES_DIR / "garment" / "00126_00.jpg").read_bytes()[:500])
    lines = [f"person/{p.person.name}\tgarment/{p.garment.name}\tupper_body" for p in example_pairs()[:2]]
    lines.append(f"person/{example_pairs()[0].person.name} garment/broken.jpg")
    (data / "pairs.txt").write_text("\n".join(lines) + "\n")
    return data


def test_photo_folder_list_reports_failures_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _photo_folder(tmp_path)
    out = tmp_path / "out"
    code = main(["try-on", "--data", str(data), "--pairs", "pairs.txt", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1  # the truncated garment fails, the other two are written
    assert "broken.jpg" in err and "truncated" in err.lower()
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{p.name}.png" for p in example_pairs()[:2])
    first = next(out.glob("*.png"))
    stamp = first.stat().st_mtime_ns
    (data / "pairs.txt").write_text("\n".join((data / "pairs.txt").read_text().splitlines()[:2]) + "\n")
    assert main(["try-on", "--data", str(data), "--pairs", "pairs.txt", "--out", str(out)]) == 0
    assert "2 already done, 0 to run" in capsys.readouterr().out
    assert first.stat().st_mtime_ns == stamp


def test_unsafe_lists_and_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _photo_folder(tmp_path)
    (data / "evil.txt").write_text("../outside.jpg garment/00126_00.jpg\n")
    assert main(["try-on", "--data", str(data), "--pairs", "evil.txt", "--out", str(tmp_path / "o")]) == 1
    assert "leaves the data folder" in capsys.readouterr().err
    assert main(["try-on", "--data", str(data), "--pairs", "pairs.txt", "--out", str(data / "results")]) == 1
    assert "input folder" in capsys.readouterr().err
    assert not (data / "results").exists()
    (data / "bad.txt").write_text("person/a.jpg garment/b.jpg hats\n")
    assert main(["try-on", "--data", str(data), "--pairs", "bad.txt", "--out", str(tmp_path / "o")]) == 1
    assert "unknown category" in capsys.readouterr().err


def test_killed_dataset_run_resumes_to_exactly_the_list(data_dir: Path, tmp_path: Path) -> None:
    root = require(data_dir / "viton_resize")
    out = tmp_path / "out"
    command = [
        str(Path(sys.executable).with_name("fipviton")),
        "try-on",
        "--data",
        str(root),
        "--pairs",
        "test_pairs.txt",
    ]
    command += ["--out", str(out), "--limit", "8"]
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(out.glob("*.png"))) < 3:
        time.sleep(0.2)
    process.kill()
    process.wait()
    done = len(list(out.glob("*.png")))
    assert 3 <= done < 8, f"the run should have been killed mid-way ({done} outputs)"
    finished = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    assert f"{done} already done, {8 - done} to run" in finished.stdout
    outputs = sorted(out.glob("*.png"))
    assert len(outputs) == 8
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left behind
    for path in outputs:
        assert Image.open(path).size == (192, 256)
