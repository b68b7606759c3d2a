"""`fipviton eval pipeline` and the metrics behind it (fipviton.eval.metrics / identity / pipeline).

No LPIPS, torchvision or Inception weights exist offline, so the standard metrics are tested on their math
(FID / KID against direct formulas) and their plumbing (torchvision key names and shapes, random weights,
a stand-in TorchScript network); no test pretends to check a real LPIPS / FID value.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import require
from fipviton.cli import main
from fipviton.errors import WeightsError
from fipviton.eval.identity import PSNR_CAP, identity_scores, masked_psnr
from fipviton.eval.metrics import (
    LPIPS,
    LPIPS_CHANNELS,
    InceptionFeatures,
    clean_resize,
    fid,
    kid,
    trace_sqrt_product,
)
from fipviton.eval.pipeline import _merge_rows

# torchvision's key names and shapes (alexnet-owt-7be5be79.pth, squeezenet1_1-b8a52dc0.pth), written out here
# rather than taken from our modules, so that the test checks our modules against torchvision's layout.
ALEXNET_SHAPES = {
    "features.0": (64, 3, 11, 11),
    "features.3": (192, 64, 5, 5),
    "features.6": (384, 192, 3, 3),
    "features.8": (256, 384, 3, 3),
    "features.10": (256, 256, 3, 3),
    "classifier.1": (4096, 9216),
}
_FIRES = {3: (64, 16, 64), 4: (128, 16, 64), 6: (128, 32, 128), 7: (256, 32, 128)}
_FIRES |= {9: (256, 48, 192), 10: (384, 48, 192), 11: (384, 64, 256), 12: (512, 64, 256)}
SQUEEZENET_SHAPES = {"features.0": (64, 3, 3, 3), "classifier.1": (1000, 512, 1, 1)}
for _index, (_inplanes, _squeeze, _expand) in _FIRES.items():
    SQUEEZENET_SHAPES[f"features.{_index}.squeeze"] = (_squeeze, _inplanes, 1, 1)
    SQUEEZENET_SHAPES[f"features.{_index}.expand1x1"] = (_expand, _squeeze, 1, 1)
    SQUEEZENET_SHAPES[f"features.{_index}.expand3x3"] = (_expand, _squeeze, 3, 3)


def _torchvision_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        # Small weights so that activations stay finite through the whole random network.
        state[f"{name}.weight"] = torch.randn(shape, generator=generator) * 0.05
        state[f"{name}.bias"] = torch.randn(shape[0], generator=generator) * 0.01
    return state


def _write_lpips_files(tmp_path: Path, net: str, break_head: bool = False) -> tuple[Path, Path]:
    """A random torchvision backbone file and an lpips heads file with the real key names and shapes."""
    shapes = ALEXNET_SHAPES if net == "alex" else SQUEEZENET_SHAPES
    backbone = tmp_path / f"{net}_backbone.pth"
    torch.save(_torchvision_state(shapes), backbone)
    heads = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(LPIPS_CHANNELS[net])}
    if break_head:
        heads["lin1.model.1.weight"] = torch.rand(1, 7, 1, 1)
    heads_path = tmp_path / f"{net}_heads.pth"
    torch.save(heads, heads_path)
    return heads_path, backbone


class _FakeInceptionLayers(torch.nn.Module):
    """Stand-in for clean-fid's `layers`: (B, 3, 299, 299) -> (B, 2048, 1, 1), like the real pool output."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Conv2d(3, 2048, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Pool first: a 2048-channel map at 299x299 would cost ~0.7 GB for a stand-in.
        return torch.relu(self.proj(torch.nn.functional.adaptive_avg_pool2d(x, 4))).mean(dim=(2, 3), keepdim=True)


class _FakeInception(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = _FakeInceptionLayers()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _fake_inception_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "inception-stand-in.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # clean-fid's real file is TorchScript too
        torch.jit.script(_FakeInception()).save(str(path))
    return path


# ---------------------------------------------------------------- FID / KID math


def test_fid_of_identical_sets_is_zero() -> None:
    features = np.random.default_rng(0).normal(size=(64, 12))
    assert fid(features, features) == pytest.approx(0.0, abs=1e-6)


def test_fid_matches_direct_formula() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(loc=0.7, size=(250, 6)) @ rng.normal(size=(6, 6))
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Independent route to tr((S_a S_b)^(1/2)): the (real, non-negative) eigenvalues of the non-symmetric product.
    root_trace = np.sqrt(np.linalg.eigvals(s_a @ s_b).real.clip(min=0)).sum()
    expected = ((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * root_trace
    assert fid(a, b) == pytest.approx(expected, rel=1e-8)
    # Diagonal covariances: tr((S_a S_b)^(1/2)) = sum sqrt(d_a d_b).
    d_a, d_b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    assert trace_sqrt_product(np.diag(d_a), np.diag(d_b)) == pytest.approx(np.sqrt(d_a * d_b).sum())


def test_kid_identical_near_zero_shifted_positive_and_direct_formula() -> None:
    # Inception-like features: 2048-d, non-negative, mean ~0.4 (pool outputs after ReLU).
    rng = np.random.default_rng(2)
    a = np.abs(rng.normal(0.4, 0.3, size=(400, 2048)))
    same_distribution = np.abs(rng.normal(0.4, 0.3, size=(400, 2048)))
    shifted_set = np.abs(rng.normal(0.5, 0.3, size=(400, 2048)))
    same, _ = kid(a, a, subsets=2)
    independent, _ = kid(a, same_distribution, subsets=2)
    shifted, std = kid(a, shifted_set, subsets=2)
    assert shifted > 0 and std >= 0
    # The unbiased estimator of identical sets is -2 (mean k(x, x) - mean k(x, y)) / m: small, not exactly 0.
    assert abs(same) < 0.05 * shifted and abs(independent) < 0.05 * shifted
    # One subset of everything: the unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, written out by hand.
    x, y = rng.normal(size=(20, 16)), rng.normal(loc=0.3, size=(20, 16))
    m = 20

    def k(u: np.ndarray, v: np.ndarray) -> float:
        return float((u @ v / 16 + 1) ** 3)

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    value, _ = kid(x, y, subsets=1, subset_size=m)
    assert value == pytest.approx(xx + yy - 2 * xy, rel=1e-9)


def test_kid_and_fid_need_two_vectors() -> None:
    one = np.zeros((1, 4))
    with pytest.raises(ValueError):
        fid(one, one)
    with pytest.raises(ValueError):
        kid(one, one)


# ---------------------------------------------------------------- LPIPS plumbing


@pytest.mark.parametrize("net", ["alex", "squeeze"])
def test_lpips_loads_torchvision_layout_and_is_zero_on_itself(tmp_path: Path, net: str) -> None:
    heads, backbone = _write_lpips_files(tmp_path, net)
    metric = LPIPS.from_files(net, heads, backbone)
    generator = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 64, 48, generator=generator) * 2 - 1
    y = torch.rand(2, 3, 64, 48, generator=generator) * 2 - 1
    features = metric.features(x)
    assert [f.shape[1] for f in features] == list(LPIPS_CHANNELS[net])
    assert torch.allclose(metric(x, x), torch.zeros(2))
    assert (metric(x, y) > 0).all()
    # The backbone file's tensors are the ones in the module (keys matched torchvision's, nothing renamed).
    state = torch.load(backbone, weights_only=True)
    assert torch.equal(metric.net.state_dict()["features.0.weight"], state["features.0.weight"])


def test_lpips_refuses_wrong_shapes_and_missing_files(tmp_path: Path) -> None:
    heads, backbone = _write_lpips_files(tmp_path, "alex", break_head=True)
    with pytest.raises(WeightsError, match="lin1"):
        LPIPS.from_files("alex", heads, backbone)
    heads, _ = _write_lpips_files(tmp_path, "alex")
    squeeze_backbone = _write_lpips_files(tmp_path, "squeeze")[1]
    with pytest.raises(WeightsError, match="--alexnet"):
        LPIPS.from_files("alex", heads, squeeze_backbone)  # a SqueezeNet file given as AlexNet
    with pytest.raises(WeightsError, match="no such file"):
        LPIPS.from_files("alex", heads, tmp_path / "missing.pth")


def test_inception_features_from_torchscript(tmp_path: Path) -> None:
    model = InceptionFeatures.from_file(_fake_inception_file(tmp_path))
    images = [np.full((64, 48, 3), value, np.uint8) for value in (0, 128, 255)]
    features = model(images)
    assert features.shape == (3, 2048) and features.dtype == np.float64
    resized = clean_resize(images[1])
    assert resized.shape == (299, 299, 3) and np.allclose(resized, 128, atol=1e-3)
    bad = tmp_path / "not_torchscript.pt"
    bad.write_bytes(b"not an archive")
    with pytest.raises(WeightsError, match="--inception"):
        InceptionFeatures.from_file(bad)


# ---------------------------------------------------------------- identity metrics


def test_identity_scores_exact_and_changed_regions() -> None:
    rng = np.random.default_rng(4)
    person = rng.integers(0, 256, size=(64, 48, 3), dtype=np.uint8)
    changed = person.copy()
    changed[32:] = 255 - changed[32:]
    top = np.zeros((64, 48), bool)
    top[:24] = True
    bottom = ~top
    empty = np.zeros_like(top)
    scores = identity_scores(changed, person, {"top": top, "bottom": bottom, "empty": empty})
    assert scores["top"]["ssim"] == pytest.approx(1.0, abs=1e-4)
    assert scores["top"]["psnr"] == PSNR_CAP
    assert scores["bottom"]["ssim"] < 0.5 and scores["bottom"]["psnr"] < 20
    assert scores["empty"] == {"ssim": None, "psnr": None}
    a = torch.zeros(1, 3, 4, 4)
    b = torch.full((1, 3, 4, 4), 0.1)
    region = torch.ones(1, 1, 4, 4)
    assert float(masked_psnr(a, b, region)[0]) == pytest.approx(20.0, abs=1e-4)  # MSE 0.01


def test_merge_rows_orders_by_pair_index(tmp_path: Path) -> None:
    # Process i holds pairs i, i + P, ...: the merged file is in list order whatever the process count.
    (tmp_path / "pairs.0.jsonl").write_text("".join(json.dumps({"index": i}) + "\n" for i in (0, 2, 4)))
    (tmp_path / "pairs.1.jsonl").write_text("".join(json.dumps({"index": i}) + "\n" for i in (1, 3)))
    assert [row["index"] for row in _merge_rows(tmp_path, 2)] == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------- the command on real data


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["eval", "pipeline", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_eval_pipeline_viton_paired(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = require(data_dir / "viton_resize")
    out = tmp_path / "viton"
    code, stdout, _ = _run(capsys, "--data", str(data), "--pairs", "paired", "--limit", "3", "--out", str(out))
    assert code == 0
    for name in ("metrics.json", "report.md", "samples.png", "pairs.jsonl"):
        assert (out / name).is_file(), name
    assert not (out / "parts").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["counts"]["evaluated"] == 3 and metrics["counts"]["listed"] == 2032
    assert metrics["setting"]["resolution"] == "native" and metrics["setting"]["native_sizes"] == ["256x192"]
    for mode in ("repaint", "no_repaint"):
        block = metrics[mode]
        assert 0 <= block["ssim"] <= 1 and 0 < block["psnr"] < 100 and 0 <= block["st_lpips"] < 2
        for name in ("lpips_alex", "lpips_squeeze", "fid", "kid", "kid_std"):
            assert block[name] is None
        assert set(block["identity"]) == {"face_hair", "other_half", "skin", "outside_agnostic"}
    # The post-processing pastes the original pixels back outside the agnostic region exactly.
    assert metrics["repaint"]["identity"]["outside_agnostic"]["ssim"] >= 0.99
    assert metrics["repaint"]["identity"]["outside_agnostic"]["psnr"] >= 60
    assert list(metrics["by_category"]) == ["upper_body"]
    for name in ("lpips_alex", "lpips_squeeze", "fid", "kid"):
        assert metrics["not_computed"][name].startswith("not computed: no weights given (pass --")
    report = (out / "report.md").read_text()
    assert "not computed: no weights given (pass --inception" in report
    assert "--limit 3" in report and "| upper_body | repaint | 3 |" in report
    assert len((out / "pairs.jsonl").read_text().splitlines()) == 3
    assert "3 pairs evaluated" in stdout


def test_eval_pipeline_vitonhd_resized_with_stand_in_weights(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Plumbing of LPIPS and FID/KID with random / stand-in weights (the numbers themselves mean nothing)."""
    data = require(data_dir / "vitonhd")
    heads, backbone = _write_lpips_files(tmp_path, "alex")
    out = tmp_path / "hd"
    argv = ["--data", str(data), "--pairs", "paired", "--limit", "3", "--size", "256x192", "--repaint"]
    argv += ["--out", str(out), "--inception", str(_fake_inception_file(tmp_path))]
    code, _, _ = _run(capsys, *argv, "--lpips-alex", str(heads), "--alexnet", str(backbone))
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "no_repaint" not in metrics and metrics["setting"]["modes"] == ["repaint"]
    assert metrics["setting"]["resized"] and metrics["setting"]["native_sizes"] == ["1024x768"]
    block = metrics["repaint"]
    assert block["lpips_alex"] > 0 and block["lpips_squeeze"] is None
    assert block["fid"] >= 0 and block["kid"] is not None
    assert metrics["counts"]["reference_images"] == 7
    assert set(metrics["not_computed"]) == {"lpips_squeeze"}
    assert "area interpolation" in (out / "report.md").read_text()


def test_eval_pipeline_dresscode_unpaired_one_category(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = require(data_dir / "dresscode")
    out = tmp_path / "dc"
    argv = ["--data", str(data), "--pairs", "unpaired", "--category", "dresses", "--limit", "2", "--out", str(out)]
    code, _, _ = _run(capsys, *argv)
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["setting"]["categories"] == ["dresses"] and metrics["counts"]["evaluated"] == 2
    assert metrics["repaint"]["ssim"] is None and metrics["not_computed"]["ssim"].startswith("not applicable")
    assert metrics["repaint"]["identity"]["outside_agnostic"]["ssim"] >= 0.99


def test_eval_pipeline_refuses_bad_input(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = require(data_dir / "vitonhd")
    heads, _ = _write_lpips_files(tmp_path, "alex")
    _, squeeze_backbone = _write_lpips_files(tmp_path, "squeeze")
    base = ["--pairs", "paired", "--limit", "1"]
    cases = {
        "no such dataset folder": ["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o1")],
        "inside the input folder": ["--data", str(data), "--out", str(data / "test" / "eval_out")],
        "no such file": ["--data", str(data), "--out", str(tmp_path / "o2"), "--inception", str(tmp_path / "x.pt")],
        "needs --alexnet": ["--data", str(data), "--out", str(tmp_path / "o3"), "--lpips-alex", str(heads)],
        "not the expected torchvision network": [
            *("--data", str(data), "--out", str(tmp_path / "o4")),
            *("--lpips-alex", str(heads), "--alexnet", str(squeeze_backbone)),
        ],
        "has no pairs of category dresses": [
            *("--data", str(data), "--out", str(tmp_path / "o5"), "--category", "dresses"),
        ],
    }
    for message, argv in cases.items():
        code, stdout, stderr = _run(capsys, *base, *argv)
        assert code == 1, message
        assert message in stderr and "Traceback" not in stderr + stdout, stderr
    assert not (data / "test" / "eval_out").exists()


def test_eval_pipeline_framing_and_weight_folders(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """DressCode's full-body photos are tried on in a person crop unless --no-framing; the weight folders given
    are recorded, and a folder without weights is refused."""
    from fipviton.tryon import DEFAULT_WEIGHTS_DIR

    data = require(data_dir / "dresscode")
    base = ["--data", str(data), "--pairs", "paired", "--category", "upper_body", "--limit", "1"]
    base += ["--size", "256x192", "--repaint"]
    shipped_tryon = str(DEFAULT_WEIGHTS_DIR)
    scores = {}
    for framing in (True, False):
        out = tmp_path / f"framing_{framing}"
        argv = [*base, "--out", str(out), "--tryon-weights", shipped_tryon, *([] if framing else ["--no-framing"])]
        code, _, _ = _run(capsys, *argv)
        assert code == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["setting"]["framing"] is framing
        assert metrics["setting"]["weights"] == {"parser": "shipped", "warp": "shipped", "tryon": shipped_tryon}
        assert ("--no-framing" in metrics["command"]) is not framing and "--tryon-weights" in metrics["command"]
        scores[framing] = metrics["repaint"]["ssim"]
    assert scores[True] != scores[False]  # the crop changed the try-on
    code, _, stderr = _run(capsys, *base, "--out", str(tmp_path / "bad"), "--tryon-weights", str(tmp_path))
    assert code == 1 and "Traceback" not in stderr


def test_eval_pipeline_postprocess_ablation(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--postprocess NAME=VALUE changes the post-processing (the paper's ablation of its conditional block), is
    recorded in metrics.json, the command and the report; a wrong field or value is a usage error."""
    data = require(data_dir / "viton_resize")
    base = ["--data", str(data), "--pairs", "paired", "--limit", "2", "--repaint"]
    scores = {}
    for name, extra in (("shipped", []), ("ablated", ["--postprocess", "restore_identity=false"])):
        out = tmp_path / name
        code, _, _ = _run(capsys, *base, *extra, "--out", str(out))
        assert code == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["setting"]["postprocess"]["restore_identity"] is (name == "shipped")
        assert ("--postprocess restore_identity=false" in metrics["command"]) is (name == "ablated")
        report = (out / "report.md").read_text()
        assert ("changed: restore_identity=False" if extra else "post-processing: as shipped") in report
        scores[name] = metrics["repaint"]["ssim"]
    assert scores["ablated"] < scores["shipped"]  # the person's own skin and backdrop, given back, are the truth
    for bad, message in (
        ("restore_identity=maybe", "restore_identity takes true or false"),
        ("no_such_knob=1", "expected NAME=VALUE"),
        ("feather_fraction=-1", "feather_fraction must be >= 0"),
    ):
        with pytest.raises(SystemExit) as exited:  # argparse: usage error
            _run(capsys, *base, "--postprocess", bad, "--out", str(tmp_path / "bad"))
        stderr = capsys.readouterr().err
        assert exited.value.code == 2 and f"argument --postprocess: {message}" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "bad").exists()
