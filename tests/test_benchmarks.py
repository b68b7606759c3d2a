"""The benchmarks run: `fipviton bench` and the scripts under benchmarks/, on the bundled examples with the
fewest repeats (the timings themselves are not checked: these machines are too noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fipviton.cli import main

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args, "--json"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_fipviton_bench_reports_every_stage(capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    try:
        code = main(["bench", "--repeat", "1", "--ddim-steps", "2", "--ddim-repeat", "1", "--threads", "1", "--json"])
    finally:
        torch.set_num_threads(threads)  # --threads sets the whole process's; the other tests keep theirs
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    stages = report["stages_1024x768"]
    assert set(stages) >= {"analysis", "agnostic", "warp", "tryon", "postprocess", "total"}
    assert 0 < stages["analysis"]["median_s"] < stages["total"]["median_s"]
    assert report["end_to_end_1024x768_median_s"] > 0 and report["peak_rss_mb"] > 100
    assert report["ddim_steps"] == 2
    assert report["end_to_end_1024x768_mirror_average_median_s"] > 0 and report["mirror_average_cost"] > 0


def test_bench_analysis_script(tmp_path: Path) -> None:
    report = _script("bench_analysis.py", "--repeat", "1", "--threads", "1")
    assert report["steps"]["parser"]["median_ms"] > 0 and report["size"] == "768x1024"
    missing = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_analysis.py"), str(tmp_path / "missing.png")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_bench_postprocess_script() -> None:
    report = _script("bench_postprocess.py", "--repeat", "1", "--threads", "1")
    assert report["pairs"] == 4 and report["median_ms"]["paste_back"] > 0


def test_bench_tryon_script() -> None:
    report = _script(
        "bench_tryon.py", "--batch-sizes", "1", "--ddim-steps", "2", "--repeat", "1", "--train-steps", "1",
        "--threads", "1", "--precision", "fp32",
    )  # fmt: skip
    assert report["inference"][0]["single_ms_per_image"] > 0 and report["gflop_per_call"] > 1
