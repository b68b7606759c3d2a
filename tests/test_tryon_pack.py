"""Try-on training packs (`fipviton.tryon.pack`): `fipviton data pack-tryon` writes them, `train tryon --pack`
trains on them. A pack must give the training exactly the items of the caches it was made from (masks and body
parts bit for bit, the photos through lossy WebP)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import require


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(error, 1e-12)))


@pytest.fixture(scope="module")
def packed(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two packs of the first 8 VITON training pairs at 256x192 (a tiny random WarpNet as the warper: the real
    code path, meaningless warps), the first 2 pairs left out; the first pack cut by --max-mib."""
    from fipviton.cli import main
    from fipviton.warp import WarpConfig, WarpNet

    root = require(data_dir / "viton_resize")
    tmp = tmp_path_factory.mktemp("pack")
    torch.manual_seed(0)
    WarpNet(WarpConfig.preset("tiny")).save_pretrained(tmp / "warp")
    common = ["data", "pack-tryon", "--data", str(root), "--limit", "8", "--skip-first", "2"]
    common += ["--cache-root", str(tmp / "cache"), "--warp-weights", str(tmp / "warp")]
    assert main([*common, "--out", str(tmp / "a"), "--max-mib", "0.03"]) == 0
    first = len(json.loads((tmp / "a.json").read_text())["items"])
    assert main([*common, "--out", str(tmp / "b"), "--start", str(first)]) == 0
    return {"root": root, "tmp": tmp, "a": tmp / "a", "b": tmp / "b"}


def test_pack_holds_the_cache_items(packed: dict[str, Path]) -> None:
    from fipviton.tryon.dataset import Augmentation, TryOnCacheDataset
    from fipviton.tryon.pack import PackDataset

    tmp = packed["tmp"]
    header_a = json.loads((tmp / "a.json").read_text())
    header_b = json.loads((tmp / "b.json").read_text())
    a_items, b_items = header_a["items"], header_b["items"]
    # --max-mib cut the first pack; the second one holds the rest; none of the first two pairs; no overlap.
    assert 1 <= len(a_items) < 6 and len(a_items) + len(b_items) == 6
    assert sum((tmp / f"a{s}").stat().st_size for s in (".bin", ".json")) <= 0.03 * 2**20
    indices = [i["index"] for i in a_items + b_items]
    assert sorted(indices) == [2, 3, 4, 5, 6, 7]
    assert header_a["size"] == [256, 192] and header_a["garment_size"] == [128, 96]

    (tryon_dir,) = (tmp / "cache" / "tryon").iterdir()
    warp_dir = json.loads((tryon_dir / "meta.json").read_text())["warp_cache"]
    cached = TryOnCacheDataset(warp_dir, tryon_dir)
    pack = PackDataset([packed["a"], packed["b"]])
    assert len(pack) == 6
    for position, index in enumerate(indices):
        mine, theirs = pack[position], cached[index]
        for key in ("agnostic_mask", "warped_mask", "body_parts"):
            assert np.array_equal(mine[key], theirs[key]), key
        assert _psnr(mine["person"], theirs["person"]) > 30
        assert _psnr(mine["warped"], theirs["warped"]) > 30
        assert mine["garment"].shape == (128, 96, 3)
        foreground = np.asarray(pack.record(position)["parsing"]) > 0
        assert np.array_equal(foreground, np.asarray(cached.record(index)["parsing"]) != 0)
    # The augmentation is the cache dataset's (one base class): the same generator makes the same choices
    # (backdrop, shrink, flip) on both.
    options = Augmentation(flip_prob=0.5, shrink_prob=0.5, backdrop_prob=0.5)
    augmented = PackDataset([packed["a"], packed["b"]], options)
    cached = TryOnCacheDataset(warp_dir, tryon_dir, options)
    flipped = 0
    for seed in range(4):
        for position, index in enumerate(indices):
            mine = augmented.item(position, np.random.default_rng(seed))
            theirs = cached.item(index, np.random.default_rng(seed))
            for key in ("agnostic_mask", "warped_mask", "body_parts"):
                assert np.array_equal(mine[key], theirs[key]), key
            assert _psnr(mine["person"], theirs["person"]) > 30
            flipped += int(not np.array_equal(mine["agnostic_mask"], pack[position]["agnostic_mask"]))
    assert 0 < flipped < 4 * len(indices)


def test_pack_tryon_refuses_to_overwrite_and_too_small_a_size(
    packed: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from fipviton.cli import main

    tmp = packed["tmp"]
    before = (tmp / "a.bin").read_bytes()
    common = ["data", "pack-tryon", "--data", str(packed["root"]), "--limit", "8"]
    common += ["--cache-root", str(tmp / "cache"), "--warp-weights", str(tmp / "warp")]
    assert main([*common, "--out", str(tmp / "a")]) == 2
    assert "exists" in capsys.readouterr().err and (tmp / "a.bin").read_bytes() == before
    assert main([*common, "--out", str(tmp / "c"), "--max-mib", "0.001"]) == 2
    assert "not one pair fits" in capsys.readouterr().err and not (tmp / "c.bin").exists()


def test_train_tryon_from_packs(packed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fipviton.cli import main
    from fipviton.tryon import TryOnModel

    run = ["train", "tryon", "--config", "tiny", "--threads", "1", "--perceptual-weight", "0", "--steps", "2"]
    run += ["--batch-size", "2", "--out", str(tmp_path / "run")]
    packs = ["--pack", str(packed["a"]), "--pack", str(packed["b"])]
    assert main([*run, *packs, "--data", str(packed["root"])]) == 2
    assert "either --data or --pack" in capsys.readouterr().err
    assert main(run) == 2
    (tmp_path / "junk.json").write_text("[]")
    (tmp_path / "junk.bin").write_bytes(b"")
    assert main([*run, "--pack", str(tmp_path / "junk")]) == 1
    assert "not a tryon training pack" in capsys.readouterr().err
    cut = tmp_path / "cut"
    (tmp_path / "cut.json").write_text((packed["a"].parent / "a.json").read_text())
    (tmp_path / "cut.bin").write_bytes((packed["a"].parent / "a.bin").read_bytes()[:100])
    assert main([*run, "--pack", str(cut)]) == 1
    assert "broken pack" in capsys.readouterr().err
    assert main([*run, *packs, "--backdrop-prob", "0.5", "--shrink-prob", "0.5"]) == 0
    assert "data: 6 training pairs" in (tmp_path / "run" / "train.log").read_text()
    assert TryOnModel.from_pretrained(tmp_path / "run" / "final").config.preset == "tiny"
    options = json.loads(next((tmp_path / "run" / "checkpoints").glob("*/state.json")).read_text())["meta"]
    assert options["options"]["packs"] == [str(packed["a"]), str(packed["b"])]


def test_batches_are_the_same_for_any_loader_threads_and_across_a_resume(
    packed: dict[str, Path], tmp_path: Path
) -> None:
    """Batches are built one step ahead in a background thread (`TrainLoop.run(prefetch=True)`), their items in
    `--loader-threads` threads, each item's augmentation drawn from a seed of its own: the run is the same
    for any number of threads, and a run stopped and resumed is the same as one that was not."""
    from safetensors.torch import load_file

    from fipviton.training.tryon import TryOnTrainArgs, train_tryon
    from fipviton.tryon.dataset import Augmentation
    from fipviton.tryon.pack import PackDataset

    dataset = PackDataset([packed["a"], packed["b"]], Augmentation(flip_prob=0.5, shrink_prob=0.5, backdrop_prob=0.5))

    def run(name: str, steps: int, threads: int, resume: bool = False) -> Path:
        out = tmp_path / name
        args = TryOnTrainArgs(
            data=None, out=out, preset="tiny", perceptual_weight=0.0, mixed_precision="no", threads=1,
            steps=steps, batch_size=3, lr=2e-3, warmup=1, ckpt_every=2, log_every=1, sample_every=0, seed=3,
            loader_threads=threads, resume=resume,
        )  # fmt: skip
        torch.manual_seed(0)
        train_tryon(args, dataset=dataset)
        return out

    def weights(out: Path) -> dict[str, torch.Tensor]:
        return load_file(str(out / "final" / "model.safetensors"))

    def losses(out: Path) -> list[float]:
        return [json.loads(line)["total"] for line in (out / "metrics.jsonl").read_text().splitlines()]

    one, two = run("one", 4, threads=1), run("two", 4, threads=2)
    assert losses(one) == losses(two) and len(set(losses(one))) == 4
    assert all(torch.equal(a, weights(two)[k]) for k, a in weights(one).items())
    # 6 pairs, batches of 3: the stop after step 2 falls at an epoch's end, where a resumed run draws the same
    # next epoch (inside an epoch it draws a new order, as without the background thread).
    run("resumed", 2, threads=2)
    resumed = run("resumed", 4, threads=2, resume=True)
    assert losses(resumed) == losses(one)
    assert all(torch.equal(a, weights(resumed)[k]) for k, a in weights(one).items())
