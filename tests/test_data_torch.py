"""The torch TryOnDataset: shapes, ranges, collate with missing maps, flip consistency."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import require
from fipviton.bodyparts import BodyPart, flip_parts
from fipviton.data import Category, TryOnSample, open_dataset
from fipviton.data.torch_dataset import TryOnDataset, letterbox, resize_nearest
from fipviton.keypoints import Keypoint
from fipviton.labels import Label, flip_labels
from test_data_readers import side_agreement

SIZE = (128, 96)


def synthetic_sample() -> TryOnSample:
    """A 64x48 person whose left arm (image right) carries keypoints and body parts."""
    height, width = 64, 48
    person = np.zeros((height, width, 3), dtype=np.uint8)
    person[:, width // 2 :] = 200  # right half of the image is bright
    parsing = np.zeros((height, width), dtype=np.uint8)
    parsing[20:40, 36:44] = Label.LEFT_ARM
    parsing[20:40, 4:12] = Label.RIGHT_ARM
    parts = np.zeros((height, width), dtype=np.uint8)
    parts[20:40, 36:44] = BodyPart.LEFT_LOWER_ARM
    parts[20:40, 4:12] = BodyPart.RIGHT_LOWER_ARM
    keypoints = np.zeros((18, 3), dtype=np.float32)
    keypoints[Keypoint.LEFT_WRIST] = (40, 30, 1.0)
    keypoints[Keypoint.RIGHT_WRIST] = (8, 30, 1.0)
    garment = np.full((32, 48, 3), 255, dtype=np.uint8)
    garment[:, :10] = 0
    mask = np.zeros((32, 48), dtype=bool)
    mask[:, :10] = True
    maps = {"parsing": parsing, "keypoints": keypoints, "body_parts": parts}
    ids = {"person_id": "p", "garment_id": "g", "dataset": "synthetic"}
    return TryOnSample(person, garment, mask, **maps, category=Category.UPPER_BODY, **ids, paired=True)


class _OneSample:
    name = "synthetic"
    root = Path(".")

    def __init__(self, sample: TryOnSample) -> None:
        self.sample = sample

    def splits(self) -> list[str]:
        return ["test"]

    def pairs(self, split: str, paired: bool = True, category: Category | None = None) -> list:
        return [None]

    def load(self, split: str, pair: object) -> TryOnSample:
        return self.sample


def test_flip_is_consistent_across_all_maps() -> None:
    sample = synthetic_sample()
    dataset = TryOnDataset(_OneSample(sample), "test", size=SIZE)
    plain = dataset.to_tensors(sample, flip=False)
    flipped = dataset.to_tensors(sample, flip=True)
    assert bool(flipped["flipped"]) and not bool(plain["flipped"])
    assert torch.equal(flipped["person"], plain["person"].flip(-1))
    assert torch.equal(flipped["garment"], plain["garment"].flip(-1))
    assert torch.equal(flipped["garment_mask"], plain["garment_mask"].flip(-1))
    expected_parsing = flip_labels(plain["parsing"].numpy().astype(np.uint8))
    assert np.array_equal(flipped["parsing"].numpy(), expected_parsing)
    expected_parts = flip_parts(plain["body_parts"].numpy().astype(np.uint8))
    assert np.array_equal(flipped["body_parts"].numpy(), expected_parts)
    # A mirrored frontal person has their left arm on the image's right again: the arm that was on the image's
    # left (the right arm) becomes the left arm, and labels, parts and keypoints must all agree on that.
    kp = flipped["keypoints"].numpy()
    assert kp[Keypoint.RIGHT_WRIST, 0] < SIZE[1] / 2 < kp[Keypoint.LEFT_WRIST, 0]
    np.testing.assert_allclose(kp[Keypoint.LEFT_WRIST, 0], SIZE[1] - 1 - plain["keypoints"][Keypoint.RIGHT_WRIST, 0])
    for wrist, label, part in (
        (Keypoint.LEFT_WRIST, Label.LEFT_ARM, BodyPart.LEFT_LOWER_ARM),
        (Keypoint.RIGHT_WRIST, Label.RIGHT_ARM, BodyPart.RIGHT_LOWER_ARM),
    ):
        x, y = kp[wrist, :2].round().astype(int)
        assert flipped["parsing"][y, x] == label
        assert flipped["body_parts"][y, x] == part
    assert (flipped["parsing"].numpy() == Label.LEFT_ARM).sum() == (plain["parsing"].numpy() == Label.RIGHT_ARM).sum()


def test_keypoints_scale_with_the_resize() -> None:
    sample = synthetic_sample()
    out = TryOnDataset(_OneSample(sample), "test", size=SIZE).to_tensors(sample)
    np.testing.assert_allclose(out["keypoints"][Keypoint.LEFT_WRIST].numpy(), [80.0, 60.0, 1.0])
    x, y = out["keypoints"][Keypoint.LEFT_WRIST, :2].round().long().tolist()
    assert out["parsing"][y, x] == Label.LEFT_ARM


def test_letterbox_keeps_aspect_and_pads_white() -> None:
    image = np.zeros((50, 100, 3), dtype=np.uint8)
    mask = np.ones((50, 100), dtype=bool)
    boxed, boxed_mask = letterbox(image, mask, (100, 100))
    assert boxed.shape == (100, 100, 3) and boxed_mask is not None
    assert (boxed[:25] == 255).all() and (boxed[25:75] == 0).all() and (boxed[75:] == 255).all()
    assert boxed_mask[25:75].all() and not boxed_mask[:25].any()


def test_resize_nearest_keeps_label_values() -> None:
    labels = np.random.default_rng(0).integers(0, 13, size=(37, 29)).astype(np.uint8)
    resized = resize_nearest(labels, (100, 80))
    assert set(np.unique(resized)) <= set(np.unique(labels))


@pytest.mark.parametrize(
    ("folder", "split", "paired"),
    [("viton_resize", "test", True), ("vitonhd_extra", "test", False), ("dresscode", "test", True)],
)
def test_real_batches_collate(data_dir: Path, folder: str, split: str, paired: bool) -> None:
    """Default collate works even when maps are missing for some items (mixed has_* flags)."""
    reader = open_dataset(require(data_dir / folder))
    pairs = reader.pairs(split, paired)[:8]
    dataset = TryOnDataset(reader, split, paired, size=SIZE, augment=True, garment_fit="letterbox", pairs=pairs)
    batch = next(iter(DataLoader(dataset, batch_size=len(pairs), shuffle=False)))
    n = len(pairs)
    assert batch["person"].shape == (n, 3, *SIZE) and batch["person"].dtype == torch.float32
    assert batch["garment"].shape == (n, 3, *SIZE)
    assert float(batch["person"].min()) >= -1.0 and float(batch["person"].max()) <= 1.0
    assert batch["garment_mask"].shape == (n, 1, *SIZE)
    assert set(batch["garment_mask"].unique().tolist()) <= {0.0, 1.0}
    assert batch["parsing"].shape == (n, *SIZE) and batch["parsing"].dtype == torch.int64
    assert int(batch["parsing"].max()) < len(Label)
    assert batch["body_parts"].shape == (n, *SIZE)
    assert batch["keypoints"].shape == (n, 18, 3)
    present = batch["keypoints"][..., 2] > 0
    xs, ys = batch["keypoints"][..., 0][present], batch["keypoints"][..., 1][present]
    assert xs.min() >= -1 and xs.max() <= SIZE[1] and ys.min() >= -1 and ys.max() <= SIZE[0]
    for flag in ("has_garment_mask", "has_parsing", "has_body_parts", "has_keypoints", "paired", "flipped"):
        assert batch[flag].shape == (n,) and batch[flag].dtype == torch.bool
    assert (batch["parsing"][~batch["has_parsing"]] == 0).all()
    assert batch["category"].shape == (n,) and len(batch["person_id"]) == n


def test_flip_keeps_real_left_right_consistency(data_dir: Path) -> None:
    """On real VITON samples the left-arm label stays at the left wrist/elbow after the flip."""
    reader = open_dataset(require(data_dir / "viton_resize"))
    pairs = reader.pairs("train", True)[:12]
    dataset = TryOnDataset(reader, "train", size=(256, 192), pairs=pairs)
    agree = disagree = 0
    for index, pair in enumerate(pairs):
        out = dataset.to_tensors(reader.load("train", pair), index, flip=True)
        a, d = side_agreement(out["parsing"].numpy(), out["keypoints"].numpy())
        agree, disagree = agree + a, disagree + d
    assert agree > 0 and agree >= 0.9 * (agree + disagree)
