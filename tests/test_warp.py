"""The warping module: network, flow utilities, perceptual loss, training, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import require
from fipviton.warp import WarpConfig, WarpNet, upsample_flow, warp_high_res
from fipviton.warp.conditioning import PERSON_CHANNELS, person_conditioning, pose_heatmaps
from fipviton.warp.flow import total_variation, warp
from fipviton.warp.model import DEFAULT_WEIGHTS_DIR


def _inputs(config: WarpConfig, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    height, width = config.size
    garment = torch.rand(batch, 3, height, width, generator=generator) * 2 - 1
    mask = (torch.rand(batch, 1, height, width, generator=generator) > 0.3).float()
    person = torch.rand(batch, PERSON_CHANNELS, height, width, generator=generator)
    return garment, mask, person


def test_identity_flow_reproduces_garment_at_any_resolution() -> None:
    garment = torch.rand(1, 3, 256, 192) * 2 - 1
    flow = torch.zeros(1, 2, 32, 24)  # the identity, predicted at a low resolution
    warped, mask = warp_high_res(garment, torch.ones(1, 1, 256, 192), flow, (256, 192))
    assert torch.allclose(warped, garment, atol=1e-5)
    assert torch.allclose(mask, torch.ones_like(mask))
    # A constant shift is still a constant shift after upsampling (offsets are normalised).
    shift = torch.zeros(1, 2, 8, 6)
    shift[:, 0] = 2 / 192  # one pixel at 192 wide
    shifted = warp(garment, upsample_flow(shift, (256, 192)))
    assert torch.allclose(shifted[..., :-1], garment[..., 1:], atol=1e-5)


def test_outputs_shapes_and_ranges() -> None:
    config = WarpConfig.preset("tiny")
    model = WarpNet(config).eval()
    garment, mask, person = _inputs(config)
    with torch.no_grad():
        out = model(garment, mask, person, size=(128, 96))
    assert out.garment.shape == (2, 3, 128, 96)
    assert out.mask.shape == (2, 1, 128, 96)
    assert out.flow.shape == (2, 2, 128, 96)
    assert out.garment.min() >= -1 - 1e-5 and out.garment.max() <= 1 + 1e-5
    assert out.mask.min() >= 0 and out.mask.max() <= 1
    # Untrained, the flow is the identity: the coarse-to-fine heads start at zero.
    assert out.flow.abs().max() == 0
    assert len(out.flows) == len(config.channels)


def test_large_preset_keeps_inputs_and_outputs_and_attends_at_three_levels() -> None:
    default, large = WarpConfig.preset("default"), WarpConfig.preset("large")
    assert (large.size, large.person_channels, large.garment_channels) == (
        default.size,
        default.person_channels,
        default.garment_channels,
    )
    model = WarpNet(large).eval()
    attention = [name for name, module in model.named_modules() if isinstance(module, torch.nn.MultiheadAttention)]
    assert len(attention) == 3
    garment, mask, person = _inputs(large, batch=1)
    with torch.no_grad():
        out = model(garment, mask, person)
    assert out.garment.shape == (1, 3, *large.size) and out.flow.abs().max() == 0  # starts at the identity
    assert out.flows[-1].shape[-2:] == tuple(large.size)  # the full-size flow level
    with pytest.raises(ValueError, match="large"):
        WarpConfig.preset("huge")


def test_save_load_round_trip(tmp_path: Path) -> None:
    config = WarpConfig.preset("tiny")
    torch.manual_seed(0)
    model = WarpNet(config)
    with torch.no_grad():  # non-trivial weights everywhere, including the zero-initialised flow heads
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    model.eval()
    model.save_pretrained(tmp_path / "warp")
    assert {p.name for p in (tmp_path / "warp").iterdir()} == {"config.json", "model.safetensors"}
    loaded = WarpNet.from_pretrained(tmp_path / "warp")
    assert loaded.config == model.config
    garment, mask, person = _inputs(config)
    with torch.no_grad():
        a = model(garment, mask, person)
        b = loaded(garment, mask, person)
    assert a.flow.abs().max() > 0
    for x, y in ((a.garment, b.garment), (a.mask, b.mask), (a.flow, b.flow)):
        assert torch.equal(x, y)
    # Stored in float16 (the shipped file since 2026-11-27 evening): half the file, loaded back as float32, and a
    # float16 copy of the loaded network is the same network to the bit.
    from safetensors import safe_open

    with safe_open(str(DEFAULT_WEIGHTS_DIR / "model.safetensors"), "pt") as stored:
        assert {stored.get_slice(key).get_dtype() for key in stored.keys()} == {"F16"}  # noqa: SIM118 (no dict)
    shipped = WarpNet.from_pretrained()
    assert all(p.dtype == torch.float32 for p in shipped.parameters())
    shipped.save_pretrained(tmp_path / "shipped32")
    shipped.save_pretrained(tmp_path / "shipped16", dtype=torch.float16)
    sizes = [(tmp_path / name / "model.safetensors").stat().st_size for name in ("shipped16", "shipped32")]
    assert sizes[0] < 0.6 * sizes[1]
    half = WarpNet.from_pretrained(tmp_path / "shipped16")
    garment, mask, person = _inputs(shipped.config)
    with torch.no_grad():
        assert torch.equal(half(garment, mask, person).flow, shipped(garment, mask, person).flow)


def test_full_size_flow_level_warm_starts_from_weights_without_it(tmp_path: Path) -> None:
    from dataclasses import replace

    from fipviton.errors import WeightsError

    config = WarpConfig.preset("tiny")
    torch.manual_seed(0)
    old = WarpNet(config)
    with torch.no_grad():
        for parameter in old.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    old.eval().save_pretrained(tmp_path / "old")
    new = WarpNet(replace(config, fine_channels=8)).eval()
    absent = new.warm_start_from(tmp_path / "old")
    assert absent and all(name.startswith("fine.") for name in absent)
    garment, mask, person = _inputs(config)
    with torch.no_grad():
        a, b = old(garment, mask, person), new(garment, mask, person)
    # The new level starts at zero flow: the warm-started network is the old one exactly.
    assert torch.equal(a.garment, b.garment) and torch.equal(a.flow, b.flow)
    assert len(b.flows) == len(a.flows) + 1 and b.flows[-1].shape[-2:] == tuple(config.size)
    with torch.no_grad():
        new.fine.flow.bias.fill_(0.01)
        moved = new(garment, mask, person)
    assert not torch.allclose(moved.flow, a.flow)
    # Weights of another network do not warm-start this one.
    other = WarpNet(replace(config, channels=(8, 16, 16, 16)))
    with pytest.raises(WeightsError):
        other.warm_start_from(tmp_path / "old")
    with pytest.raises(WeightsError):
        new.warm_start_from(tmp_path / "nothing")


def test_from_pretrained_errors(tmp_path: Path) -> None:
    from fipviton.errors import WeightsError

    with pytest.raises(WeightsError):
        WarpNet.from_pretrained(tmp_path)
    WarpNet(WarpConfig.preset("tiny")).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["channels"] = [8, 16, 16, 64]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError):
        WarpNet.from_pretrained(tmp_path)


def test_no_cross_attention_switch_changes_parameters_not_shapes() -> None:
    with_attention = WarpNet(WarpConfig.preset("tiny"))
    config = WarpConfig.preset("tiny")
    config.cross_attention = False
    without = WarpNet(config)
    names_with = {name for name, _ in with_attention.named_parameters()}
    names_without = {name for name, _ in without.named_parameters()}
    assert names_without < names_with
    assert all(name.startswith("attention.") for name in names_with - names_without)
    garment, mask, person = _inputs(config)
    with torch.no_grad():
        a, b = with_attention(garment, mask, person), without(garment, mask, person)
    assert a.garment.shape == b.garment.shape and a.mask.shape == b.mask.shape and a.flow.shape == b.flow.shape


def test_conditioning_maps() -> None:
    keypoints = torch.zeros(1, 18, 3)
    keypoints[0, 1] = torch.tensor([0.5, 0.25, 1.0])  # the neck, present
    heatmaps = pose_heatmaps(keypoints, (64, 48))
    assert heatmaps.shape == (1, 18, 64, 48)
    assert heatmaps[0, 0].max() == 0  # a missing point gives an empty map
    peak = torch.nonzero(heatmaps[0, 1] == heatmaps[0, 1].max())[0]
    assert abs(int(peak[0]) - 16) <= 1 and abs(int(peak[1]) - 24) <= 1
    parts = torch.randint(0, 15, (1, 128, 96))
    parsing = torch.randint(0, 13, (1, 128, 96))
    person = person_conditioning(parts, parsing, keypoints, (64, 48))
    assert person.shape == (1, PERSON_CHANNELS, 64, 48)
    assert torch.allclose(person[:, :15].sum(1), torch.ones(1, 64, 48))


def test_total_variation_is_zero_for_a_constant_flow() -> None:
    assert float(total_variation(torch.full((1, 2, 8, 6), 0.3))) == 0.0
    assert float(total_variation(torch.randn(1, 2, 8, 6))) > 0


def test_ssim_term_scores_the_pyramid_warp_and_moves_only_the_pyramid_flow() -> None:
    from fipviton.warp.evaluate import isolated_region_ssim
    from fipviton.warp.losses import WarpLoss, WarpLossWeights, pyramid_warp
    from fipviton.warp.model import WarpOutput

    # Horizontal stripes, a garment whose print is shifted by half a period: L1 barely sees the difference
    # between "half a period off" and "flat grey"; SSIM does.
    rows = torch.arange(48).float()
    stripes = torch.where((rows // 3) % 2 == 0, 1.0, -1.0)[:, None].expand(48, 36)
    person = stripes.expand(1, 3, 48, 36).clone()
    region = torch.zeros(1, 1, 48, 36)
    region[..., 8:40, 6:30] = 1
    garment = torch.roll(person, 3, dims=2)
    mask = torch.ones(1, 1, 48, 36)
    coarse = torch.zeros(1, 2, 24, 18, requires_grad=True)  # the pyramid's finest flow, at half the size
    fine = torch.zeros(1, 2, 48, 36, requires_grad=True)  # the full-size level's flow
    output = WarpOutput(garment=warp(garment, fine) * region + (1 - region), mask=region.clone(), flow=fine,
                        visibility=None, flows=[coarse, fine])  # fmt: skip
    loss_fn = WarpLoss(WarpLossWeights(perceptual=0.0, l1=0.0, mask=0.0, smoothness=0.0, ssim=1.0))
    loss, parts = loss_fn(output, mask, person, region, garment)
    # The term is 1 - the warp evaluation's score of the garment warped by the pyramid's flow.
    pyramid = pyramid_warp(output, garment, mask).detach()
    score = float(isolated_region_ssim(pyramid, person, region)[0])
    assert parts["ssim"] == pytest.approx(1 - score, abs=1e-5) and parts["ssim"] > 0.5
    loss.backward()
    assert coarse.grad is not None and float(coarse.grad[:, 1].abs().sum()) > 0  # it pulls the rows (y)
    assert fine.grad is None or float(fine.grad.abs().sum()) == 0  # the per-pixel flow is left to the other terms
    with pytest.raises(ValueError, match="unwarped garment"):
        loss_fn(output, mask, person, region)
    # Off by default: the shipped recipe's loss has no SSIM term.
    assert WarpLossWeights().ssim == 0.0
    assert WarpLoss(WarpLossWeights(perceptual=0.0))(output, mask, person, region)[1]["ssim"] == 0.0


def test_stlpips_vgg_weights_load_without_the_package() -> None:
    import sys

    from fipviton.losses.perceptual import STLPIPS, PerceptualLoss, VGG16Features

    pytest.importorskip("torch")
    try:
        metric = STLPIPS(num_layers=3)
    except Exception as exc:  # pragma: no cover - only where stlpips-pytorch is not installed
        pytest.skip(f"ST-LPIPS weights unavailable: {exc}")
    assert "stlpips_pytorch" not in sys.modules  # the weight file is read, the package never imported
    assert "torchvision" not in sys.modules
    image = torch.rand(1, 3, 64, 48) * 2 - 1
    features = metric.features(image)
    assert [f.shape[1] for f in features] == [64, 128, 256]
    assert not any(p.requires_grad for p in metric.parameters())
    same = metric(image, image)
    noisy = metric(image, (image + 0.3 * torch.randn_like(image)).clamp(-1, 1))
    assert float(same) == 0.0 and float(noisy) > 0.005
    prediction = image.clone().requires_grad_(True)
    loss = PerceptualLoss(metric=metric)(prediction, torch.zeros_like(image))
    loss.backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0
    assert isinstance(metric.features, VGG16Features)


def test_a_vgg_subset_file_replaces_the_package_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fipviton.errors import WeightsError
    from fipviton.losses.perceptual import STLPIPS, VGG_WEIGHTS_ENV, save_stlpips_vgg_subset

    try:
        full = STLPIPS(num_layers=2)
    except WeightsError as exc:  # pragma: no cover - only where stlpips-pytorch is not installed
        pytest.skip(f"ST-LPIPS weights unavailable: {exc}")
    image = torch.rand(2, 3, 64, 48) * 2 - 1
    other = (image + 0.3 * torch.randn_like(image)).clamp(-1, 1)
    exact, half = tmp_path / "vgg2-fp32.pth", tmp_path / "vgg2-fp16.pth"
    assert save_stlpips_vgg_subset(exact, 2, torch.float32) < 2 * save_stlpips_vgg_subset(half, 2)
    monkeypatch.setenv(VGG_WEIGHTS_ENV, str(exact))
    assert torch.equal(STLPIPS(num_layers=2)(image, other), full(image, other))
    monkeypatch.setenv(VGG_WEIGHTS_ENV, str(half))
    assert torch.allclose(STLPIPS(num_layers=2)(image, other), full(image, other), rtol=1e-2)
    with pytest.raises(WeightsError, match="lack"):  # the file holds two slices, not three
        STLPIPS(num_layers=3)
    monkeypatch.setenv(VGG_WEIGHTS_ENV, str(tmp_path / "missing.pth"))
    with pytest.raises(WeightsError, match="no such file"):
        STLPIPS(num_layers=2)


def _viton(data_dir: Path) -> Path:
    return require(data_dir / "viton_resize" / "train" / "image")


@pytest.mark.slow
def test_tiny_training_reduces_the_loss(data_dir: Path, tmp_path: Path) -> None:
    from fipviton.training.warp import WarpTrainArgs, to_network_size, train_warp
    from fipviton.warp.cache import WarpCache, build_cache
    from fipviton.warp.losses import WarpLoss, WarpLossWeights

    _viton(data_dir)
    root = data_dir / "viton_resize"
    cache = build_cache(root, "train", cache_root=tmp_path / "cache", limit=8)
    dataset = WarpCache(cache)
    batch = WarpCache.collate([dataset[i] for i in range(8)])
    config = WarpConfig.preset("tiny")
    net_batch = to_network_size(batch, tuple(config.size))
    loss_fn = WarpLoss(WarpLossWeights(perceptual=0.0))

    def loss_of(model: WarpNet) -> float:
        model.eval()
        with torch.no_grad():
            out = model(net_batch.garment, net_batch.garment_mask, net_batch.person_input)
            return loss_fn(out, net_batch.garment_mask, net_batch.person, net_batch.region)[1]["total"]

    torch.manual_seed(0)
    before = loss_of(WarpNet(config))  # the same initialisation as the run (seed 0)
    args = WarpTrainArgs(
        data=root,
        out=tmp_path / "run",
        steps=40,
        batch_size=4,
        lr=3e-3,
        warmup=5,
        preset="tiny",
        limit=8,
        cache_root=tmp_path / "cache",
        log_every=10,
        sample_every=40,
        ckpt_every=20,
        threads=1,
        perceptual_samples=1,
        flip=False,
    )
    trained = train_warp(args)
    after = loss_of(trained)
    assert after < 0.8 * before, (before, after)
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    assert len(list((tmp_path / "run" / "checkpoints").iterdir())) >= 1
    # Resuming at the last step does nothing more and keeps the weights.
    args.resume = True
    resumed = train_warp(args)
    assert torch.equal(resumed.state_dict()["decoder.0.flow.weight"], trained.state_dict()["decoder.0.flow.weight"])
    # A fresh run warm-started from those weights, with a full-size flow level added: it trains that level
    # from its zero start, and everything else from the given weights (not from a new initialisation).
    from dataclasses import replace

    fine = train_warp(replace(args, out=tmp_path / "fine", resume=False, steps=2, fine_channels=4,
                              init_weights=tmp_path / "run" / "final"))  # fmt: skip
    assert fine.fine is not None and fine.config.fine_channels == 4
    assert "weights from" in (tmp_path / "fine" / "train.log").read_text()
    start = trained.state_dict()["garment_encoder.down.0.weight"]
    assert (fine.state_dict()["garment_encoder.down.0.weight"] - start).abs().max() < 0.05 * start.abs().max()
    # Fine-tuning those weights again needs no --fine-channels: the run takes the network of the folder.
    # (with the optional SSIM term, which the log then reports)
    again = train_warp(
        replace(args, out=tmp_path / "again", resume=False, steps=1, log_every=1, ssim_weight=0.5,
                init_weights=tmp_path / "fine" / "final")
    )  # fmt: skip
    assert again.config.fine_channels == 4
    assert " ssim " in (tmp_path / "again" / "train.log").read_text()
    with pytest.raises(ValueError, match="ssim_weight"):
        replace(args, ssim_weight=-1.0)


@pytest.mark.slow
def test_eval_cli_model_and_box_baseline(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from fipviton.cli import main

    require(data_dir / "viton_resize" / "test" / "image")
    WarpNet(WarpConfig.preset("tiny")).save_pretrained(tmp_path / "weights")
    common = ["--data", str(data_dir / "viton_resize"), "--limit", "3", "--json", "--cache-root", str(tmp_path)]
    assert main(["eval", "warp", *common, "--weights", str(tmp_path / "weights")]) == 0
    model = json.loads(capsys.readouterr().out)
    assert main(["eval", "warp", *common, "--baseline", "box"]) == 0
    box = json.loads(capsys.readouterr().out)
    for result in (model, box):
        assert result["count"] == 3
        assert 0 <= result["mask_iou"] <= 1 and 0 <= result["ssim"] <= 1
    assert box["mask_iou"] > 0.4  # the garment resized into the target box overlaps it well


@pytest.mark.slow
def test_high_resolution_warp_of_a_vitonhd_sample(data_dir: Path) -> None:
    from fipviton.data import open_dataset
    from fipviton.warp.inference import warp_sample

    root = require(data_dir / "vitonhd")
    reader = open_dataset(root)
    sample = reader.load("test", reader.pairs("test", paired=True)[0])
    out = warp_sample(WarpNet(WarpConfig.preset("tiny")), sample)
    height, width = sample.person.shape[:2]
    assert out.garment.shape == (1, 3, height, width) and out.mask.shape == (1, 1, height, width)
    # The untrained flow is the identity: the full-resolution garment comes back pixel for pixel.
    garment = torch.from_numpy(sample.garment.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    expected = garment * out.mask + (1 - out.mask)
    assert float(out.mask.max()) > 0.5
    assert torch.allclose(out.garment, expected, atol=1e-4)


def test_shipped_weights_load() -> None:
    from fipviton.warp.model import DEFAULT_WEIGHTS_DIR

    if not (DEFAULT_WEIGHTS_DIR / "model.safetensors").is_file():
        pytest.skip("no shipped warp weights in this checkout")
    model = WarpNet.from_pretrained()
    assert model.config.cross_attention
    garment, mask, person = _inputs(model.config, batch=1)
    with torch.no_grad():
        out = model(garment, mask, person, size=(256, 192))
    assert out.garment.shape == (1, 3, 256, 192) and torch.isfinite(out.flow).all()
