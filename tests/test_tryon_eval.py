"""`fipviton eval tryon`: paired metrics on real test pairs (tiny network), keys, ranges and the repaint effect."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import require
from fipviton.cli import main
from fipviton.data.sample import Category
from fipviton.tryon import TryOnConfig, TryOnModel
from fipviton.tryon.evaluate import evaluate_paired, image_metrics, ssim_inside_regions


def test_image_metrics_of_identical_and_different_images() -> None:
    a = torch.rand(2, 3, 64, 48) * 2 - 1
    same = image_metrics(a, a)
    assert torch.allclose(same["ssim"], torch.ones(2), atol=1e-4)
    noisy = image_metrics((a + 0.2 * torch.randn_like(a)).clamp(-1, 1), a)
    assert (noisy["ssim"] < 0.99).all() and (noisy["psnr"] < 30).all()


def test_region_ssim_scores_only_the_region() -> None:
    target = torch.rand(2, 3, 64, 48) * 2 - 1
    prediction = target.clone()
    prediction[:, :, :32] = -target[:, :, :32]  # the top half is wrong, the bottom half exact
    top = torch.zeros(2, 1, 64, 48, dtype=torch.bool)
    top[:, :, :20] = True
    bottom = torch.zeros_like(top)
    bottom[:, :, 44:] = True  # away from the seam: the 11x11 SSIM window sees only exact pixels
    empty = torch.zeros_like(top)
    empty[0, :, 50:] = True  # the second image has no pixels in this region
    scores = ssim_inside_regions(prediction, target, {"top": top, "bottom": bottom, "empty": empty})
    assert (scores["top"] < 0.2).all() and torch.allclose(scores["bottom"], torch.ones(2), atol=1e-4)
    assert not scores["empty"][0].isnan() and scores["empty"][1].isnan()


def test_warped_colour_error_sees_a_repainted_band_not_a_small_shift() -> None:
    from fipviton.tryon.evaluate import warped_colour_error

    generator = torch.Generator().manual_seed(0)
    warped = torch.full((3, 3, 64, 48), -0.6)  # a dark garment...
    warped[:, :, 28:36] = 1.0  # ...with a white band across it
    warped = warped + 0.1 * torch.rand(warped.shape, generator=generator)
    mask = torch.zeros(3, 1, 64, 48)
    mask[:, :, 8:56, 6:42] = 1
    mask[2] = 0  # the third image has no garment
    faithful = warped.roll(1, dims=2)  # the same garment one pixel lower
    painted = warped.clone()
    painted[:, :, 26:38] = -0.6  # the band painted over in the garment's colour
    same, shifted, repainted = (warped_colour_error(x, warped, mask) for x in (warped, faithful, painted))
    assert same[0] == pytest.approx(0.0, abs=1e-6) and shifted[0] < 0.05 and repainted[0] > 3 * shifted[0]
    assert same[2].isnan() and repainted[2].isnan()


def test_eval_tryon_paired(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = require(data_dir / "viton_resize")
    torch.manual_seed(0)
    model = TryOnModel(TryOnConfig.from_preset("tiny")).eval()
    results, grid = evaluate_paired(model, root, "test", limit=4, batch_size=2, cache_root=tmp_path / "cache")
    raw, pasted = results["raw"], results["repaint"]
    for scores in (raw, pasted):
        assert scores["count"] == 4 and 0 <= scores["ssim"] <= 1 and scores["psnr"] > 0 and scores["st_lpips"] >= 0
        for region in ("ssim_in_warped_garment", "ssim_in_rest_of_mask"):
            assert -1 <= scores[region] <= 1
        assert 0 <= scores["warped_colour_error"] <= 1 and 0 <= scores["truth_warped_colour_error"] <= 1
    # The regions lie inside the agnostic mask, where the repainted image is the raw one.
    assert pasted["ssim_in_warped_garment"] == pytest.approx(raw["ssim_in_warped_garment"], abs=0.05)
    # Pasting the ground truth back outside the agnostic mask can only bring the image closer to it.
    assert pasted["ssim"] > raw["ssim"] and pasted["psnr"] > raw["psnr"]
    assert grid.ndim == 3 and grid.shape[2] == 3

    # With the warped garments shrunk, the noise condition images (third column of the grid) have holes.
    holed, holed_grid = evaluate_paired(
        model, root, "test", limit=4, batch_size=2, cache_root=tmp_path / "cache", shrink_warp=(6, 0.2)
    )
    assert holed["repaint"]["shrink_warp"] == [6, 0.2] and results["repaint"]["shrink_warp"] is None
    assert holed_grid.shape == grid.shape and not (holed_grid == grid).all()

    # On other backdrops: the ground truth (first column of the grid) changes, and the run says so.
    other, other_grid = evaluate_paired(
        model, root, "test", limit=4, batch_size=2, cache_root=tmp_path / "cache", backdrops=7
    )
    assert other["repaint"]["backdrops"] == 7 and results["repaint"]["backdrops"] is None
    width = grid.shape[1] // 4
    assert not (other_grid[:, :width] == grid[:, :width]).all()
    assert other["raw"]["ssim"] != raw["ssim"]

    # Mirrored: the photos are the mirror images (the dataset's training flip, whose test checks it exactly), so
    # the first column of the grid changes, and the run says so.
    mirrored, mirrored_grid = evaluate_paired(
        model, root, "test", limit=4, batch_size=2, cache_root=tmp_path / "cache", mirror=True
    )
    assert mirrored["repaint"]["mirror"] is True and results["repaint"]["mirror"] is False
    assert not (mirrored_grid[:, :width] == grid[:, :width]).all()
    assert mirrored["raw"]["ssim"] != raw["ssim"]

    # A perfect warp: the noise condition images (third column) change, the ground truth (first) does not.
    oracle, oracle_grid = evaluate_paired(
        model, root, "test", limit=4, batch_size=2, cache_root=tmp_path / "cache", oracle_warp=True
    )
    assert oracle["repaint"]["oracle_warp"] is True and results["repaint"]["oracle_warp"] is False
    assert (oracle_grid[:, :width] == grid[:, :width]).all()
    assert not (oracle_grid[:, 2 * width : 3 * width] == grid[:, 2 * width : 3 * width]).all()
    # The sharp-garment mode adds the detail above the network's grid: none for this tiny network, whose grid is
    # its image; the shipped one (a 2x2-patch grid) gets other outputs (fourth column), the same inputs.
    sharp, sharp_grid = evaluate_paired(
        model, root, "test", limit=4, batch_size=2, cache_root=tmp_path / "cache", oracle_warp=True, sharp_garment=True
    )
    assert sharp["repaint"]["sharp_garment"] is True and (sharp_grid == oracle_grid).all()
    shipped, cache = TryOnModel.from_pretrained().eval(), tmp_path / "cache"
    options = {"limit": 2, "batch_size": 2, "cache_root": cache, "oracle_warp": True}
    runs = [evaluate_paired(shipped, root, "test", sharp_garment=mode, **options) for mode in (False, True)]
    (plain, plain_grid), (sharpened, sharpened_grid) = runs
    quarter = plain_grid.shape[1] // 4
    assert sharpened["raw"]["ssim"] != plain["raw"]["ssim"]
    assert not (sharpened_grid[:, 3 * quarter :] == plain_grid[:, 3 * quarter :]).all()
    assert (sharpened_grid[:, : 3 * quarter] == plain_grid[:, : 3 * quarter]).all()

    weights = tmp_path / "tiny"
    model.save_pretrained(weights)
    out = tmp_path / "grid.png"
    args = ["eval", "tryon", "--data", str(root), "--limit", "2", "--weights", str(weights), "--json"]
    args += ["--cache-root", str(tmp_path / "cache"), "--no-repaint", "--grid", str(out)]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"ssim", "psnr", "st_lpips", "count", "seconds_per_image"} <= set(report) and report["count"] == 2
    assert out.is_file()
    # The inference ablation: the same weights with the body-part map fed as zeros score differently.
    assert main([*args, "--zero", "body_parts"]) == 0
    zeroed = json.loads(capsys.readouterr().out)
    assert zeroed["count"] == 2 and zeroed["ssim"] != report["ssim"]
    assert zeroed["zeroed"] == ["body_parts"] and report["zeroed"] == []


@pytest.mark.slow
def test_eval_tryon_unpaired_runs_the_pipeline(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--pairs unpaired`: the shipped pipeline on the official unpaired list, no scores (no ground truth), a
    timing and a grid of (person | garment | noise condition | try-on) rows; `--mirror-average` changes the
    try-on column only."""
    from PIL import Image

    root = require(data_dir / "viton_resize")
    grids, reports = {}, {}
    for mirror in (False, True):
        out = tmp_path / f"grid_{mirror}.png"
        args = ["eval", "tryon", "--data", str(root), "--pairs", "unpaired", "--limit", "2", "--threads", "1"]
        assert main([*args, "--json", "--grid", str(out)] + (["--mirror-average"] if mirror else [])) == 0
        reports[mirror] = json.loads(capsys.readouterr().out)["unpaired"]
        grids[mirror] = np.asarray(Image.open(out).convert("RGB")).astype(int)
    for mirror, report in reports.items():
        assert report["count"] == 2 and report["seconds_per_image"] > 0 and report["mirror_average"] is mirror
        assert 0 <= report["warped_colour_error"] <= 1
        assert "ssim" not in report
    plain, mirrored = grids[False], grids[True]
    assert plain.shape == mirrored.shape and plain.shape[0] > plain.shape[1] / 4  # two rows of four panels
    columns = np.abs(plain - mirrored).max(axis=(0, 2)).reshape(4, -1).max(axis=1)
    assert (columns[:3] == 0).all() and columns[3] > 0, columns


def test_eval_tryon_unpaired_on_a_photo_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--pairs unpaired --data FOLDER` with a pairs.txt of photo paths (the bundled examples here, no dataset
    needed): the pipeline from the photos alone, the colour score per pair; a pair it refuses is listed as failed
    with its reason, and a folder without pairs.txt is refused."""
    import shutil

    from PIL import Image

    from fipviton.examples import EXAMPLES_DIR

    assert main(["eval", "tryon", "--data", str(EXAMPLES_DIR), "--pairs", "unpaired", "--limit", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["unpaired"]
    assert report["source"] == "photo folder" and report["count"] == 2 and report["failed"] == []
    assert [row["pair"] for row in report["per_pair"]] == [
        "person/01861_00.jpg + garment/03032_00.jpg",
        "person/00891_00.jpg + garment/00470_00.jpg",
    ]
    errors = [row["warped_colour_error"] for row in report["per_pair"]]
    assert all(0 < e < 0.5 for e in errors) and report["warped_colour_error"] == pytest.approx(np.mean(errors))

    folder = tmp_path / "photos"
    shutil.copytree(EXAMPLES_DIR / "person", folder / "person")
    shutil.copytree(EXAMPLES_DIR / "garment", folder / "garment")
    blank = folder / "person" / "blank.png"
    Image.new("RGB", (192, 256), (200, 200, 200)).save(blank)  # no person in it
    pairs = ["person/blank.png garment/03032_00.jpg", "person/03615_00.jpg garment/09166_00.jpg"]
    (folder / "pairs.txt").write_text("\n".join(pairs) + "\n")
    assert main(["eval", "tryon", "--data", str(folder), "--pairs", "unpaired", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["unpaired"]
    assert report["count"] == 1 and [row["pair"] for row in report["failed"]] == [pairs[0].replace(" ", " + ")]
    assert "person" in report["failed"][0]["error"]
    (folder / "pairs.txt").unlink()
    assert main(["eval", "tryon", "--data", str(folder), "--pairs", "unpaired"]) == 1
    err = capsys.readouterr().err
    assert "not a known dataset layout" in err and "nor is it a photo folder (no pairs.txt" in err


def test_perfect_warp_is_the_person_s_own_garment() -> None:
    from fipviton.labels import Label
    from fipviton.tryon.dataset import perfect_warp
    from fipviton.warp.cache import CATEGORIES

    person = np.random.default_rng(0).integers(0, 256, (8, 6, 3), dtype=np.uint8)
    parsing = np.zeros((8, 6), np.uint8)
    parsing[2:6, 1:5] = Label.UPPER
    parsing[6:, :] = Label.BOTTOM
    region = parsing == Label.UPPER
    record = {"parsing": parsing, "category": CATEGORIES.index(Category.UPPER_BODY)}
    garment, mask = perfect_warp(person, record)
    assert (garment[region] == person[region]).all() and (garment[~region] == 255).all()
    assert (mask == np.where(region, 255, 0)).all() and mask.dtype == np.uint8
    lower, _ = perfect_warp(person, record | {"category": CATEGORIES.index(Category.LOWER_BODY)})
    assert (lower[parsing == Label.BOTTOM] == person[parsing == Label.BOTTOM]).all() and (lower[region] == 255).all()
    with pytest.raises(ValueError, match="packs"):
        perfect_warp(person, {"parsing": parsing})


def test_eval_tryon_refuses_bad_shrink_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "tryon", "--data", str(tmp_path), "--shrink-warp", "6"])
    assert exit_info.value.code == 2 and "PX,FRACTION" in capsys.readouterr().err
    assert main(["eval", "tryon", "--data", str(tmp_path), "--pairs", "unpaired", "--shrink-warp", "6,0.2"]) == 2
    assert "--shrink-warp needs --pairs paired" in capsys.readouterr().err
    assert main(["eval", "tryon", "--data", str(tmp_path), "--pairs", "unpaired", "--backdrops", "0"]) == 2
    assert "--backdrops needs --pairs paired" in capsys.readouterr().err
    assert main(["eval", "tryon", "--data", str(tmp_path), "--pairs", "unpaired", "--mirror"]) == 2
    assert "--mirror needs --pairs paired" in capsys.readouterr().err
    assert main(["eval", "tryon", "--data", str(tmp_path), "--pairs", "unpaired", "--mirror", "--backdrops", "1"]) == 2
    assert "--backdrops and --mirror need --pairs paired" in capsys.readouterr().err
    assert main(["eval", "tryon", "--data", str(tmp_path), "--pairs", "unpaired", "--oracle-warp"]) == 2
    assert "--oracle-warp needs --pairs paired" in capsys.readouterr().err
    assert main(["eval", "tryon", "--data", str(tmp_path), "--pairs", "unpaired", "--sharp-garment"]) == 2
    assert "--sharp-garment needs --pairs paired" in capsys.readouterr().err


def test_eval_tryon_zero_needs_paired_pairs_and_zeros_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", "tryon", "--data", str(tmp_path), "--pairs", "unpaired", "--zero", "body_parts"]) == 2
    assert "--zero needs --pairs paired" in capsys.readouterr().err
    dropped = tmp_path / "drop"
    TryOnModel(TryOnConfig.from_preset("tiny", ablation_mode="drop")).save_pretrained(dropped)
    assert main(["eval", "tryon", "--data", str(tmp_path), "--weights", str(dropped), "--zero", "body_parts"]) == 2
    assert "ablation_mode zeros" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # not a condition
        main(["eval", "tryon", "--data", str(tmp_path), "--zero", "colour"])
