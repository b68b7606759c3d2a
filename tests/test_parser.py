"""Human parser: network shapes, save/load, training on a few real samples, resume, shipped-weights quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import require
from fipviton.analysis.parser import DEFAULT_WEIGHTS_DIR, HumanParser, ParserConfig
from fipviton.errors import WeightsError
from fipviton.eval.segmentation import ConfusionMatrix, evaluate_segmenter
from fipviton.labels import LABEL_NAMES, NUM_LABELS, Label
from fipviton.training.common import latest_checkpoint


def _tiny() -> HumanParser:
    torch.manual_seed(0)
    return HumanParser(ParserConfig.preset("tiny")).eval()


def test_forward_shape_and_parse_any_size() -> None:
    model = _tiny()
    logits = model(torch.rand(2, 3, 64, 48))
    assert logits.shape == (2, NUM_LABELS, 64, 48)
    rng = np.random.default_rng(0)
    for shape in [(100, 75, 3), (90, 160, 3), (64, 48, 3)]:  # portrait, landscape, native
        labels = model.parse(rng.integers(0, 256, shape, dtype=np.uint8))
        assert labels.shape == shape[:2] and labels.dtype == np.uint8
        assert labels.max() < NUM_LABELS
    with pytest.raises(ValueError):
        model.parse(np.zeros((10, 10), dtype=np.uint8))


def test_flip_averaging_is_mirror_consistent() -> None:
    model = _tiny()
    image = np.random.default_rng(1).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    direct = model.predict_logits([image], flip=True)[0]
    mirrored = model.predict_logits([np.ascontiguousarray(image[:, ::-1])], flip=True)[0]
    swap = list(range(NUM_LABELS))
    swap[Label.LEFT_ARM], swap[Label.RIGHT_ARM] = Label.RIGHT_ARM, Label.LEFT_ARM
    swap[Label.LEFT_LEG], swap[Label.RIGHT_LEG] = Label.RIGHT_LEG, Label.LEFT_LEG
    assert torch.allclose(direct, mirrored.flip(-1)[swap], atol=1e-4)


def test_test_time_flip_from_the_config(tmp_path: Path) -> None:
    model = _tiny()
    image = np.random.default_rng(2).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    one_pass, flipped = model.predict_logits([image])[0], model.predict_logits([image], flip=True)[0]
    assert not torch.allclose(one_pass, flipped)
    model.config.test_time_flip = True
    model.save_pretrained(tmp_path)
    loaded = HumanParser.from_pretrained(tmp_path)
    # Saved with the weights; every call that does not say otherwise flips, one that does is obeyed.
    assert loaded.config.test_time_flip
    assert torch.allclose(loaded.predict_logits([image])[0], flipped, atol=1e-5)
    assert torch.allclose(loaded.predict_logits([image], flip=False)[0], one_pass, atol=1e-5)
    assert np.array_equal(loaded.parse(image), model.parse(image, flip=True))
    # A config.json written before the field existed loads with one pass.
    config = json.loads((tmp_path / "config.json").read_text())
    del config["test_time_flip"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert not HumanParser.from_pretrained(tmp_path).config.test_time_flip


def test_multi_scale_averaging() -> None:
    model = _tiny()
    image = np.random.default_rng(2).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    single = model.predict_logits([image])[0]
    assert torch.equal(model.predict_logits([image], scales=(1.0,))[0], single)
    # (1, 1.5): the mean of the native pass and of a pass on a 96x72 input whose logits are resized back.
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        large = model(torch.nn.functional.interpolate(x, size=(96, 72), mode="bilinear", align_corners=False))
        large = torch.nn.functional.interpolate(large, size=(64, 48), mode="bilinear", align_corners=False)
    both = model.predict_logits([image], scales=(1.0, 1.5))[0]
    assert torch.allclose(both, 0.5 * (single + large[0]), atol=1e-4)
    assert not torch.allclose(both, single, atol=1e-3)
    assert model.parse(image, flip=True, scales=(0.75, 1.0)).shape == (64, 48)
    for bad in [(), (3.0,), (0.1, 1.0), (1.0,) * 5]:
        with pytest.raises(ValueError, match="scales"):
            model.parse(image, scales=bad)


def test_test_time_scales_from_the_config(tmp_path: Path) -> None:
    model = _tiny()
    image = np.random.default_rng(3).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    one_pass, both = model.predict_logits([image])[0], model.predict_logits([image], scales=(1.0, 1.5))[0]
    model.config.test_time_scales = (1.0, 1.5)
    model.save_pretrained(tmp_path)
    loaded = HumanParser.from_pretrained(tmp_path)
    # Saved with the weights; every call that does not say otherwise averages the scales, one that does is obeyed.
    assert loaded.config.test_time_scales == (1.0, 1.5)
    assert torch.allclose(loaded.predict_logits([image])[0], both, atol=1e-5)
    assert torch.allclose(loaded.predict_logits([image], scales=(1.0,))[0], one_pass, atol=1e-5)
    # A config.json without the field is one pass; one with scales out of range is refused as bad weights.
    config = json.loads((tmp_path / "config.json").read_text())
    del config["test_time_scales"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert HumanParser.from_pretrained(tmp_path).config.test_time_scales == (1.0,)
    (tmp_path / "config.json").write_text(json.dumps({**config, "test_time_scales": [1.0, 9.0]}))
    with pytest.raises(WeightsError, match="scales"):
        HumanParser.from_pretrained(tmp_path)


def test_training_validation_is_one_pass_whatever_the_config_asks() -> None:
    """A network trained from a config with a test-time ensemble (e.g. the shipped config.json) is validated in
    one pass: the held-out scores compare networks, at one pass's cost."""
    from fipviton.training.parser import evaluate_arrays

    model = _tiny()
    model.config.test_time_flip, model.config.test_time_scales = True, (1.0, 1.5)
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (4, 64, 48, 3), dtype=np.uint8)
    labels = rng.integers(0, NUM_LABELS, (4, 64, 48), dtype=np.uint8)
    one_pass = np.stack(model.parse_batch(list(images), flip=False, scales=(1.0,)))
    assert not np.array_equal(one_pass, np.stack(model.parse_batch(list(images))))  # the ensemble differs
    matrix = ConfusionMatrix(NUM_LABELS, LABEL_NAMES)
    matrix.update(labels, one_pass)
    assert evaluate_arrays(model, images, labels).to_dict() == matrix.report().to_dict()


def test_eval_parser_rejects_bad_scales(capsys: pytest.CaptureFixture[str]) -> None:
    from fipviton.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["eval", "parser", "--data", ".", "--scales", "1,5"])
    assert exited.value.code == 2
    assert "scales must be" in capsys.readouterr().err


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = _tiny()
    # Non-trivial BN statistics, so that buffers are part of the round trip.
    model.train()
    model(torch.rand(4, 3, 64, 48))
    model.eval()
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["input_size"] == [64, 48]
    loaded = HumanParser.from_pretrained(tmp_path)
    x = torch.rand(1, 3, 64, 48)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    with pytest.raises(WeightsError):
        HumanParser.from_pretrained(tmp_path / "missing")


def test_fused_batchnorm_gives_the_same_logits_and_refuses_training(tmp_path: Path) -> None:
    model = _tiny()
    model.train()
    model(torch.rand(4, 3, 64, 48))  # non-trivial BatchNorm statistics to fold
    model.eval()
    model.save_pretrained(tmp_path)
    fused = HumanParser.from_pretrained(tmp_path).fuse_batchnorm()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.rand(2, 3, 64, 48)
    with torch.no_grad():
        reference, logits = model(x), fused(x)
    assert torch.allclose(reference, logits, atol=1e-4) and not torch.equal(reference, torch.zeros_like(reference))
    with pytest.raises(RuntimeError, match="cannot train"):
        fused.train()
    with pytest.raises(RuntimeError, match="cannot be saved"):
        fused.save_pretrained(tmp_path / "fused")
    assert not (tmp_path / "fused").exists()


def test_logit_bias_changes_labels_and_round_trips(tmp_path: Path) -> None:
    model = _tiny()
    image = np.random.default_rng(2).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    plain = model.parse(image)
    bias = [0.0] * NUM_LABELS
    bias[Label.SHOES] = 100.0  # dominates every logit
    model.set_logit_bias(bias)
    assert (model.parse(image) == Label.SHOES).all()
    with torch.no_grad():  # the training forward pass is unchanged
        assert model(torch.rand(1, 3, 64, 48)).shape[1] == NUM_LABELS
    model.save_pretrained(tmp_path)
    loaded = HumanParser.from_pretrained(tmp_path)
    assert loaded.config.logit_bias == tuple(bias)
    assert (loaded.parse(image) == Label.SHOES).all()
    loaded.set_logit_bias([])
    assert np.array_equal(loaded.parse(image), plain)
    with pytest.raises(WeightsError):
        loaded.set_logit_bias([1.0, 2.0])


def test_fit_logit_bias_recovers_a_shifted_prior() -> None:
    from fipviton.training.parser import fit_logit_bias

    model = _tiny()
    images = np.random.default_rng(3).integers(0, 256, (6, 64, 48, 3), dtype=np.uint8)
    # Targets: the model's own labels with class `face` favoured by +1.5: the plain model under-predicts it.
    shift = torch.zeros(NUM_LABELS)
    shift[Label.FACE] = 1.5
    with torch.no_grad():
        logits = model(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
    labels = (logits + shift.view(1, -1, 1, 1)).argmax(1).numpy().astype(np.uint8)
    bias, before, after = fit_logit_bias(model, images, labels, keep_fraction=1.0, min_images=1)
    assert bias.shape == (NUM_LABELS,)
    assert after > before and after > 0.9
    assert bias[Label.FACE] - np.median(bias) > 0.5


def test_confusion_matrix_metrics() -> None:
    matrix = ConfusionMatrix(3, ["a", "b", "c"])
    target = np.array([[0, 0, 1, 1]])
    matrix.update(target, np.array([[0, 1, 1, 1]]))
    report = matrix.report()
    assert report.per_class["a"] == pytest.approx(0.5)
    assert report.per_class["b"] == pytest.approx(2 / 3)
    assert report.per_class["c"] is None and report.absent == ["c"]
    assert report.miou == pytest.approx((0.5 + 2 / 3) / 2)
    assert report.pixel_accuracy == pytest.approx(0.75)
    perfect = evaluate_segmenter(
        lambda images: [np.zeros(i.shape[:2], np.uint8) for i in images],
        [(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8))] * 3,
        2,
    )
    assert perfect.miou == 1.0 and perfect.count == 3


def test_warm_start_copies_the_weights_of_the_same_network(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = HumanParser(ParserConfig.preset("tiny")).eval()
    source.save_pretrained(tmp_path / "source")
    target = HumanParser(ParserConfig.preset("tiny")).eval()
    x = torch.rand(2, 3, 64, 48)
    assert not torch.equal(target(x), source(x))
    assert target.warm_start_from(tmp_path / "source") == []
    assert torch.equal(target(x), source(x))
    wider = HumanParser(ParserConfig.from_dict(ParserConfig.preset("tiny").to_dict() | {"decoder": 24}))
    with pytest.raises(WeightsError, match="does not fit this network"):
        wider.warm_start_from(tmp_path / "source")
    with pytest.raises(WeightsError, match="no parser weights"):
        target.warm_start_from(tmp_path / "nowhere")


def test_average_parsers_is_the_mean_of_their_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fipviton.cli import main

    tiny = ParserConfig.preset("tiny")
    for seed in (0, 1):
        torch.manual_seed(seed)
        HumanParser(tiny).save_pretrained(tmp_path / f"p{seed}")
    assert (
        main(["train", "parser-average", str(tmp_path / "p0"), str(tmp_path / "p1"), "--out", str(tmp_path / "avg")])
        == 0
    )
    states = [HumanParser.from_pretrained(tmp_path / name).state_dict() for name in ("p0", "p1", "avg")]
    key = "stem.0.weight"
    assert not torch.equal(states[0][key], states[1][key])
    assert torch.allclose(states[2][key], (states[0][key] + states[1][key]) / 2)
    # --dtype float16 stores the same mean in half the bytes; it loads back as float32, equal to float16 precision.
    half = ["train", "parser-average", str(tmp_path / "p0"), str(tmp_path / "p1"), "--out", str(tmp_path / "avg16")]
    assert main([*half, "--dtype", "float16"]) == 0
    from safetensors import safe_open

    with safe_open(str(tmp_path / "avg16" / "model.safetensors"), "pt") as handle:
        names = list(handle.keys())
        stored = {handle.get_tensor(name).dtype for name in names}
    assert stored == {torch.float16, torch.int64}  # the BatchNorm step counters stay integers
    loaded = HumanParser.from_pretrained(tmp_path / "avg16").state_dict()
    assert loaded[key].dtype == torch.float32 and torch.equal(loaded[key], states[2][key].half().float())
    # Never overwritten; another network or a single folder is an error, not a silent result.
    assert (
        main(["train", "parser-average", str(tmp_path / "p0"), str(tmp_path / "p1"), "--out", str(tmp_path / "avg")])
        == 2
    )
    assert "exists" in capsys.readouterr().err
    HumanParser(ParserConfig.from_dict(tiny.to_dict() | {"decoder": 24})).save_pretrained(tmp_path / "other")
    assert (
        main(["train", "parser-average", str(tmp_path / "p0"), str(tmp_path / "other"), "--out", str(tmp_path / "x")])
        == 1
    )
    assert "another network" in capsys.readouterr().err
    assert main(["train", "parser-average", str(tmp_path / "p0"), "--out", str(tmp_path / "y")]) == 1
    assert "at least two" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.slow
def test_tiny_training_lowers_loss_and_resumes(data_dir: Path, tmp_path: Path) -> None:
    from fipviton.training.parser import TrainOptions, train

    viton = require(data_dir / "viton_resize")
    common = dict(
        data=viton, config="tiny", batch_size=4, lr=1e-2, warmup=2, limit=16, cache_root=tmp_path / "cache",
        log_every=1, sample_every=1000, val_count=8, ckpt_every=6, threads=2, background_p=0.0,
    )  # fmt: skip
    out = tmp_path / "run"
    train(TrainOptions(out=out, steps=12, calibrate_count=16, **common))
    losses = [json.loads(line)["total"] for line in (out / "metrics.jsonl").read_text().splitlines() if "total" in line]
    assert len(losses) == 12
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert latest_checkpoint(out).name == "step_000012"
    assert (out / "final" / "model.safetensors").is_file()
    # The logit bias was fitted after training and saved with the config.
    assert len(json.loads((out / "final" / "config.json").read_text())["logit_bias"]) == NUM_LABELS
    assert "logit bias fitted on 16 training images" in (out / "train.log").read_text()
    # A fresh run warm-started from those weights starts where they ended, not at the scratch loss.
    warm = tmp_path / "warm"
    train(TrainOptions(out=warm, steps=2, init_weights=out / "final", **common))
    warm_lines = (warm / "metrics.jsonl").read_text().splitlines()
    warm_losses = [json.loads(line)["total"] for line in warm_lines if "total" in line]
    assert warm_losses[0] < losses[0] and f"weights from {out / 'final'}" in (warm / "train.log").read_text()
    # Resume with a longer schedule: continues at step 12, not from scratch, with the network it started with.
    train(TrainOptions(out=out, steps=15, resume=True, **(common | {"config": "small"})))
    assert json.loads((out / "final" / "config.json").read_text())["widths"] == list(ParserConfig.preset("tiny").widths)
    log = (out / "train.log").read_text()
    assert "resumed from" in log and "at step 12" in log
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines() if "total" in line]
    assert steps[-3:] == [13, 14, 15]
    assert latest_checkpoint(out).name == "step_000015"
    # Re-fitting the bias alone leaves the checkpoints and the network weights as they were.
    before = (out / "final" / "model.safetensors").read_bytes()
    train(TrainOptions(out=out, steps=15, calibrate_only=True, calibrate_count=8, calibrate_min_images=2, **common))
    assert (out / "final" / "model.safetensors").read_bytes() == before
    assert "logit bias fitted on 8 training images" in (out / "train.log").read_text()
    assert latest_checkpoint(out).name == "step_000015"


@pytest.mark.slow
def test_missed_pixels_names_the_images_that_lose_a_class() -> None:
    from fipviton.eval.segmentation import MissedPixels

    truth = np.array([[0, 0, 1, 1, 2, 2]])
    predictions = [
        np.array([[0, 0, 1, 1, 2, 2]]),  # all right
        np.array([[0, 0, 0, 0, 2, 2]]),  # both "b" pixels called "a"
        np.array([[0, 0, 1, 2, 2, 2]]),  # one "b" pixel called "c"
    ]
    missed = MissedPixels(["a", "b", "c"])
    report = evaluate_segmenter(lambda images: predictions[: len(images)], [(np.zeros((1, 6, 3)), truth)] * 3, 3,
                                ["a", "b", "c"], batch_size=3, missed=missed)  # fmt: skip
    assert report.count == 3
    worst = missed.worst(5, ["one", "two", "three"])
    assert worst == {
        "b": [
            {"image": "two", "missed": 2, "of": 2, "predicted_as": "a"},
            {"image": "three", "missed": 1, "of": 2, "predicted_as": "c"},
        ]
    }
    assert missed.worst(1, ["one", "two", "three"])["b"] == worst["b"][:1]
    with pytest.raises(ValueError, match="2 names for 3 images"):
        missed.worst(1, ["one", "two"])


def test_eval_parser_worst_images(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fipviton.cli import main

    root = require(data_dir / "viton_resize")
    args = ["eval", "parser", "--data", str(root), "--limit", "4", "--threads", "1", "--worst", "2"]
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 4 and result["worst"]
    for rows in result["worst"].values():
        assert 1 <= len(rows) <= 2 and all(0 < r["missed"] <= r["of"] for r in rows)
        assert [r["missed"] for r in rows] == sorted((r["missed"] for r in rows), reverse=True)
    assert main(args) == 0
    assert "images that miss the most pixels of each class" in capsys.readouterr().out
    assert main([*args[:-1], "-1"]) == 2


def test_shipped_weights_parse_viton_test(data_dir: Path) -> None:
    if not (DEFAULT_WEIGHTS_DIR / "model.safetensors").is_file():
        pytest.skip("no shipped parser weights")
    from fipviton.data import open_dataset

    reader = open_dataset(require(data_dir / "viton_resize"))
    pairs = reader.pairs("test", paired=True)[::100][:20]
    model = HumanParser.from_pretrained()
    samples = [reader.load("test", pair) for pair in pairs]
    report = evaluate_segmenter(
        model.parse_batch, [(s.person, s.parsing) for s in samples], NUM_LABELS, LABEL_NAMES, batch_size=10
    )
    assert report.miou > 0.5, report.per_class
    assert report.per_class["upper"] > 0.7 and report.per_class["face"] > 0.6
    # The shipped config.json averages flip and scales 1, 1.25 (parser card): no worse than one pass here.
    assert model.config.test_time_flip and model.config.test_time_scales == (1.0, 1.25)
    one_pass = evaluate_segmenter(
        lambda images: model.parse_batch(images, flip=False, scales=(1.0,)),
        [(s.person, s.parsing) for s in samples],
        NUM_LABELS,
        LABEL_NAMES,
        batch_size=10,
    )
    assert report.pixel_accuracy >= one_pass.pixel_accuracy - 1e-3, (report.pixel_accuracy, one_pass.pixel_accuracy)
    # The parse of a person photo upscaled to a larger size lines up with the photo.
    big = np.repeat(np.repeat(samples[0].person, 2, 0), 2, 1)
    labels = model.parse(big)
    assert labels.shape == big.shape[:2]
    assert (labels == Label.UPPER).mean() > 0.05


def test_calibrate_only_needs_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fipviton.cli import main
    from fipviton.training.parser import TrainOptions

    for bad in [{"calibrate_only": True}, {"calibrate_count": -1}]:
        with pytest.raises(ValueError, match="calibrate"):
            TrainOptions(data=tmp_path, out=tmp_path / "run", **bad)
    with pytest.raises(ValueError, match="unknown parser preset"):
        TrainOptions(data=tmp_path, out=tmp_path / "run", config="huge")
    assert main(["train", "parser", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--calibrate-only"]) == 2
    assert "calibrate_only needs calibrate_count > 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_holdout_validation_and_config_file(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fipviton.cli import main
    from fipviton.training.parser import TrainOptions, train

    viton = require(data_dir / "viton_resize")
    config = ParserConfig.preset("tiny").to_dict() | {"widths": [8, 16, 24, 32], "depths": [1, 1, 2, 1]}
    config_file = tmp_path / "parser.json"
    config_file.write_text(json.dumps(config))
    out = tmp_path / "run"
    train(
        TrainOptions(
            data=viton, out=out, config=str(config_file), steps=3, batch_size=4, limit=16, holdout=4,
            cache_root=tmp_path / "cache", sample_every=3, val_count=4, threads=2,
        )
    )  # fmt: skip
    log = (out / "train.log").read_text()
    assert "data: 12 train, 4 val images from the last 4 training images" in log
    assert "val step 3: mIoU" in log
    saved = json.loads((out / "final" / "config.json").read_text())
    assert saved["widths"] == [8, 16, 24, 32] and saved["depths"] == [1, 1, 2, 1]
    # No test images were needed: only the training cache exists.
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["parser_viton_resize_train_256x192_n16.npz"]
    # Bad configs and holdouts: a message and a non-zero exit status, no traceback.
    base = ["train", "parser", "--data", str(viton), "--cache", str(tmp_path / "cache"), "--limit", "16"]
    (tmp_path / "bad.json").write_text('{"widths": [8, 16], "colour": 3}')
    assert main([*base, "--out", str(tmp_path / "r1"), "--config", str(tmp_path / "bad.json")]) == 2
    assert "not a parser config" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "r2"), "--config", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # Found only once the data is read: a DatasetError, which `main` reports like every input error.
    assert main([*base, "--out", str(tmp_path / "r3"), "--holdout", "16", "--steps", "1"]) == 1
    assert "leaves no training images" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "r4"), "--holdout", "-1"]) == 2
    assert main([*base, "--out", str(tmp_path / "r5"), "--ema-decay", "1"]) == 2
    assert "ema_decay must be in [0, 1)" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_augment_on_gpu_matches_cpu() -> None:
    from fipviton.training.parser import augment

    rng = np.random.default_rng(0)  # smooth photos and blocky label maps with every label (no dataset needed)
    images = np.kron(rng.integers(0, 256, (8, 16, 12, 3)), np.ones((1, 16, 16, 1))).astype(np.uint8)
    labels = np.kron(rng.integers(0, NUM_LABELS, (8, 8, 6)), np.ones((1, 32, 32))).astype(np.uint8)
    torch.manual_seed(0)
    x_cpu, y_cpu, _ = augment(images, labels, np.random.default_rng(3), (256, 192), background_p=1.0)
    torch.manual_seed(0)
    x_gpu, y_gpu, _ = augment(images, labels, np.random.default_rng(3), (256, 192), background_p=1.0, device="cuda")
    assert x_gpu.device.type == "cuda" and y_gpu.device.type == "cuda"
    # Same draws; grid_sample may round differently on the GPU, so a few boundary labels may differ.
    assert (x_gpu.cpu() - x_cpu).abs().mean() < 1e-3
    assert (y_gpu.cpu() == y_cpu).float().mean() > 0.999


def test_time_budget_stops_with_a_last_validation(data_dir: Path, tmp_path: Path) -> None:
    from fipviton.training.parser import TrainOptions, train

    viton = require(data_dir / "viton_resize")
    options = TrainOptions(
        data=viton, out=tmp_path / "run", config="tiny", steps=50, batch_size=4, limit=16, holdout=4,
        cache_root=tmp_path / "cache", sample_every=1000, val_count=4, threads=1, time_limit=1e-3,
        calibrate_count=8,
    )  # fmt: skip
    train(options)
    log = (tmp_path / "run" / "train.log").read_text()
    # The budget ran out after the first step: validated there, checkpointed, no calibration of a cut run.
    assert "val step 1: mIoU" in log and "stopped early, --resume continues" in log
    assert latest_checkpoint(tmp_path / "run").name == "step_000001"
    assert (tmp_path / "run" / "samples" / "step_000001.png").is_file()
    assert "logit bias" not in log


def test_augment_moves_teacher_logits_with_the_labels() -> None:
    from fipviton.training.parser import augment

    rng = np.random.default_rng(0)  # blocky label maps with every label, photos that follow them
    labels = np.kron(rng.integers(0, NUM_LABELS, (8, 8, 6)), np.ones((1, 32, 32))).astype(np.uint8)
    images = (labels[..., None] * 19).repeat(3, -1).astype(np.uint8)
    # A teacher that agrees with the labels, given at half size like the training's cache.
    half = labels[:, ::2, ::2]
    soft = (np.eye(NUM_LABELS, dtype=np.float16)[half] * 10).transpose(0, 3, 1, 2)
    x, y, s = augment(images, labels, np.random.default_rng(3), (256, 192), background_p=0.0, soft=soft)
    x_plain, y_plain, none = augment(images, labels, np.random.default_rng(3), (256, 192), background_p=0.0)
    # The same draws with or without the teacher, and its logits flipped (left/right swapped) and moved alike.
    assert none is None and torch.equal(x, x_plain) and torch.equal(y, y_plain)
    assert s is not None and s.shape == (8, NUM_LABELS, 256, 192)
    agree = (s.argmax(1) == y).float().mean()
    assert agree > 0.97, agree  # only block borders differ (bilinear half-size logits, nearest labels)
    # Without the left/right swap a flipped image's arms and legs would disagree on whole blocks.
    assert (s.argmax(1)[(y == Label.LEFT_ARM)] == Label.LEFT_ARM).float().mean() > 0.97


@pytest.mark.slow
def test_distillation_from_a_teacher(data_dir: Path, tmp_path: Path) -> None:
    from fipviton.training.parser import TrainOptions, train

    viton = require(data_dir / "viton_resize")
    teacher = tmp_path / "teacher"
    _tiny().save_pretrained(teacher)
    common = dict(
        data=viton, out=tmp_path / "run", config="tiny", batch_size=4, warmup=1, limit=12, holdout=4,
        cache_root=tmp_path / "cache", log_every=1, sample_every=1000, val_count=4, threads=1, teacher=teacher,
        teacher_scales=(1.0,), distill_weight=2.0,
    )  # fmt: skip
    train(TrainOptions(steps=2, ckpt_every=2, **common))
    logits = np.load(tmp_path / "run" / "teacher_logits.npy")
    assert logits.shape == (8, NUM_LABELS, 128, 96) and logits.dtype == np.float16  # the 8 training images
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    terms = [row for row in rows if "distill" in row]
    assert len(terms) == 2 and all(row["distill"] > 0 for row in terms)
    assert all(abs(row["total"] - row["labels"] - 2.0 * row["distill"]) < 1e-4 for row in terms)
    # A resumed run reuses the logits; another teacher's would be computed anew.
    train(TrainOptions(steps=3, resume=True, **common))
    assert "teacher logits: reused" in (tmp_path / "run" / "train.log").read_text()
    with pytest.raises(ValueError, match="distill_weight"):
        TrainOptions(steps=1, **(common | {"distill_weight": -1.0}))
