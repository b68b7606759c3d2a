"""Warp training packs (`fipviton.warp.pack`): `fipviton data pack-warp` writes them, `train warp --pack` trains on
them. A pack must give the training step the batches of the cache it was made from: label maps, masks and
keypoints exactly, person and garment through lossy WebP at the network's size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import require


@pytest.fixture(scope="module")
def packed(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two warp packs of the first 8 VITON training pairs, the first 2 left out; the first cut by --max-mib."""
    from fipviton.cli import main

    root = require(data_dir / "viton_resize")
    tmp = tmp_path_factory.mktemp("warp-pack")
    common = ["data", "pack-warp", "--data", str(root), "--limit", "8", "--skip-first", "2"]
    common += ["--cache-root", str(tmp / "cache")]
    assert main([*common, "--out", str(tmp / "a"), "--max-mib", "0.015"]) == 0
    first = len(json.loads((tmp / "a.json").read_text())["items"])
    assert main([*common, "--out", str(tmp / "b"), "--start", str(first)]) == 0
    return {"root": root, "tmp": tmp, "a": tmp / "a", "b": tmp / "b"}


def test_warp_pack_gives_the_cache_batches(packed: dict[str, Path]) -> None:
    from fipviton.training.warp import to_network_size
    from fipviton.warp.cache import WarpCache
    from fipviton.warp.model import WarpConfig
    from fipviton.warp.pack import WarpPackDataset

    tmp = packed["tmp"]
    header_a = json.loads((tmp / "a.json").read_text())
    header_b = json.loads((tmp / "b.json").read_text())
    assert header_a["kind"] == "warp" and header_a["size"] == [256, 192] and header_a["image_size"] == [128, 96]
    indices = [i["index"] for i in header_a["items"] + header_b["items"]]
    assert 1 <= len(header_a["items"]) < 6 and sorted(indices) == [2, 3, 4, 5, 6, 7]
    assert sum((tmp / f"a{s}").stat().st_size for s in (".bin", ".json")) <= 0.015 * 2**20

    (cache_dir,) = (tmp / "cache" / "warp").iterdir()
    cache = WarpCache(cache_dir)
    pack = WarpPackDataset([packed["a"], packed["b"]])
    assert len(pack) == 6 and pack.cache_index.tolist() == sorted(indices)
    for position, index in enumerate(sorted(indices)):
        mine, theirs = pack[position], cache[index]
        for key in ("parsing", "agnostic", "body_parts", "garment_mask", "keypoints", "category"):
            assert np.array_equal(mine[key], theirs[key]), key
        assert mine["person"].shape == mine["garment"].shape == (128, 96, 3)

    # What the training step sees: the same conditioning exactly, the same images up to the WebP loss.
    size = tuple(WarpConfig().size)
    ours = to_network_size(pack.collate([pack[i] for i in range(6)]), size)
    reference = to_network_size(cache.collate([cache[i] for i in sorted(indices)]), size)
    for key in ("person_input", "region", "garment_mask"):
        assert torch.equal(getattr(ours, key), getattr(reference, key)), key
    for key in ("person", "garment"):
        error = (getattr(ours, key) - getattr(reference, key)).abs().mean().item()
        assert error < 0.03, (key, error)  # [-1, 1] range; WebP at quality 85 is ~0.01


def test_pack_warp_refuses_to_overwrite_and_other_kinds(
    packed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fipviton.cli import main
    from fipviton.errors import DatasetError
    from fipviton.tryon.pack import read_pack
    from fipviton.warp.pack import read_warp_pack

    tmp = packed["tmp"]
    before = (tmp / "a.bin").read_bytes()
    common = ["data", "pack-warp", "--data", str(packed["root"]), "--limit", "8", "--cache-root", str(tmp / "cache")]
    assert main([*common, "--out", str(tmp / "a")]) == 2
    assert "exists" in capsys.readouterr().err and (tmp / "a.bin").read_bytes() == before
    assert main([*common, "--out", str(tmp_path / "c"), "--max-mib", "0.001"]) == 2
    assert "not one pair fits" in capsys.readouterr().err and not (tmp_path / "c.bin").exists()
    # A warp pack is no try-on pack, and the other way round: each reader says what it wanted.
    with pytest.raises(DatasetError, match="not a tryon training pack"):
        read_pack(packed["a"])
    (tmp_path / "old.json").write_text(json.dumps({"version": 1, "items": []}))  # a try-on pack of the first kind
    (tmp_path / "old.bin").write_bytes(b"")
    with pytest.raises(DatasetError, match="not a warp training pack"):
        read_warp_pack(tmp_path / "old")


def test_train_warp_from_packs(packed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fipviton.cli import main
    from fipviton.warp import WarpNet

    run = ["train", "warp", "--config", "tiny", "--threads", "1", "--steps", "2", "--batch-size", "2"]
    run += ["--sample-every", "0", "--out", str(tmp_path / "run")]
    packs = ["--pack", str(packed["a"]), "--pack", str(packed["b"])]
    assert main([*run, *packs, "--data", str(packed["root"])]) == 2
    assert "either --data or --pack" in capsys.readouterr().err
    assert main(run) == 2
    cut = tmp_path / "cut"
    (tmp_path / "cut.json").write_text((packed["a"].parent / "a.json").read_text())
    (tmp_path / "cut.bin").write_bytes((packed["a"].parent / "a.bin").read_bytes()[:100])
    assert main([*run, "--pack", str(cut)]) == 1
    assert "broken pack" in capsys.readouterr().err
    assert main([*run, *packs]) == 0
    log = (tmp_path / "run" / "train.log").read_text()
    assert "6 training pairs from 2 pack(s)" in log
    model = WarpNet.from_pretrained(tmp_path / "run" / "final")
    assert tuple(model.config.size) == (64, 48)
