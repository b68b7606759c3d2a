"""A precomputed, memory-mapped cache of everything the warping module trains and evaluates on.

Building the agnostic parsing and the body-part map costs far more than a training step of the warping
network, so each split is converted once into uint8 arrays (`np.save`, read back with mmap):

| file               | shape          | dtype   | content                                                   |
|--------------------|----------------|---------|-----------------------------------------------------------|
| person.npy         | (N, H, W, 3)   | uint8   | person RGB                                                |
| garment.npy        | (N, H, W, 3)   | uint8   | in-shop garment RGB, resized to (H, W)                    |
| garment_mask.npy   | (N, H, W)      | uint8   | {0, 1}                                                    |
| parsing.npy        | (N, H, W)      | uint8   | internal labels (`Label`)                                 |
| agnostic.npy       | (N, H, W)      | uint8   | the agnostic parsing (labels, BACKGROUND in the mask)     |
| body_parts.npy     | (N, H, W)      | uint8   | `BodyPart` map (dataset DensePose, else derived)          |
| keypoints.npy      | (N, 18, 3)     | float32 | x, y normalised to [0, 1], confidence                     |
| category.npy       | (N,)           | uint8   | index into `list(Category)`                               |
| meta.json          |                |         | ids, source folder, split, size, code fingerprint         |

The cache lives in an ignored folder (default `cache/warp/` in the checkout) and is rebuilt when its
`meta.json` does not match the request, or when the code that computes its maps has changed since it was
built (`code`: `source_fingerprint` of `MAPS_CODE`).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from fipviton.data.readers import READER_CODE
from fipviton.data.sample import Category, TryOnSample
from fipviton.training.common import cache_is_current, source_fingerprint, write_cache
from fipviton.warp.conditioning import CATEGORY_LABEL, normalise_keypoints

# The modules whose code decides what the cache holds (readers, labels, agnostic, derived body parts, this file).
MAPS_CODE = (
    *READER_CODE,
    "fipviton.warp.cache",
    "fipviton.warp.conditioning",
    "fipviton.keypoints",
    "fipviton.bodyparts",
    "fipviton.agnostic.build",
    "fipviton.agnostic.geometry",
    "fipviton.regions",
    "fipviton.analysis.body_parts",
)
CATEGORIES: tuple[Category, ...] = tuple(Category)
DEFAULT_CACHE_ROOT = Path(__file__).resolve().parents[3] / "cache" / "warp"
_IMAGE_FIELDS = ("person", "garment")
_MAP_FIELDS = ("garment_mask", "parsing", "agnostic", "body_parts")


def record_category(record: dict) -> Category:
    """The garment category of one cache record (stored as its index into `CATEGORIES`)."""
    return CATEGORIES[int(record["category"])]


def record_garment_label(record: dict) -> int:
    """The parsing label of one cache record's garment region (`CATEGORY_LABEL` of its category)."""
    return int(CATEGORY_LABEL[record_category(record).value])


def body_part_map(sample: TryOnSample) -> np.ndarray:
    """The dense body-part map the warping module is trained with: always derived from parsing + keypoints.

    `fipviton.analysis.body_parts.derive_body_parts`, even where a dataset has its own DensePose: VITON
    256x192 (the training set) has none, and the network should see the same kind of map at test time.
    """
    from fipviton.analysis.body_parts import derive_body_parts

    if sample.parsing is None or sample.keypoints is None:
        raise ValueError(f"{sample.person_id}: the warping module needs a parsing and keypoints")
    return derive_body_parts(sample.parsing, sample.keypoints)


def derived_maps(sample: TryOnSample) -> tuple[np.ndarray, np.ndarray]:
    """(agnostic parsing, body-part map) of a sample at its native resolution, both (H, W) uint8."""
    from fipviton.agnostic import build_agnostic

    agnostic = build_agnostic(sample.person, sample.parsing, sample.keypoints, sample.category)
    return agnostic.parsing, body_part_map(sample)


def cache_dir_for(root: Path, split: str, size: tuple[int, int], cache_root: Path | None = None) -> Path:
    name = f"{Path(root).resolve().name}-{split}-{size[0]}x{size[1]}"
    return Path(cache_root or DEFAULT_CACHE_ROOT) / name


def build_cache(
    root: str | Path,
    split: str,
    size: tuple[int, int] = (256, 192),
    cache_root: str | Path | None = None,
    limit: int | None = None,
    paired: bool = True,
    log_every: int = 500,
) -> Path:
    """Build (or reuse) the cache of a dataset split's paired samples; returns its folder."""
    from fipviton.data import open_dataset
    from fipviton.data.torch_dataset import resize_image, resize_nearest

    root = Path(root)
    out = cache_dir_for(root, split, size, Path(cache_root) if cache_root else None)
    if limit is not None:
        out = out.with_name(out.name + f"-first{limit}")
    reader = open_dataset(root)
    entries = reader.pairs(split, paired=paired)
    if limit is not None:
        entries = entries[:limit]
    wanted = {
        "code": source_fingerprint(*MAPS_CODE),
        "root": str(root.resolve()),
        "split": split,
        "size": list(size),
        "paired": paired,
        "count": len(entries),
    }
    meta_path = out / "meta.json"
    if cache_is_current(meta_path, wanted):
        return out
    out.mkdir(parents=True, exist_ok=True)
    n = len(entries)
    height, width = size
    arrays = {
        "person": np.zeros((n, height, width, 3), np.uint8),
        "garment": np.zeros((n, height, width, 3), np.uint8),
        "garment_mask": np.zeros((n, height, width), np.uint8),
        "parsing": np.zeros((n, height, width), np.uint8),
        "agnostic": np.zeros((n, height, width), np.uint8),
        "body_parts": np.zeros((n, height, width), np.uint8),
        "keypoints": np.zeros((n, 18, 3), np.float32),
        "category": np.zeros((n,), np.uint8),
    }
    ids = []
    start = time.time()
    for index, entry in enumerate(entries):
        sample = reader.load(split, entry)
        agnostic, parts = derived_maps(sample)
        native_h, native_w = sample.person.shape[:2]
        arrays["person"][index] = resize_image(sample.person, size)
        arrays["garment"][index] = resize_image(sample.garment, size)
        if sample.garment_mask is not None:
            arrays["garment_mask"][index] = resize_nearest(sample.garment_mask.astype(np.uint8), size)
        arrays["parsing"][index] = resize_nearest(sample.parsing, size)
        arrays["agnostic"][index] = resize_nearest(agnostic, size)
        arrays["body_parts"][index] = resize_nearest(parts, size)
        if sample.keypoints is not None:
            arrays["keypoints"][index] = normalise_keypoints(sample.keypoints, native_w, native_h)
        arrays["category"][index] = CATEGORIES.index(sample.category)
        ids.append([sample.person_id, sample.garment_id])
        if log_every and (index + 1) % log_every == 0:
            print(f"cache {split}: {index + 1}/{n} ({time.time() - start:.0f} s)", file=sys.stderr, flush=True)
    write_cache(out, arrays, wanted | {"ids": ids})
    return out


@dataclass
class CachedBatch:
    """A batch from the cache as tensors at the cache size (H, W).

    person, garment: (B, 3, H, W) float in [-1, 1]; garment_mask, region: (B, 1, H, W) float {0, 1} (region
    = garment region of the parsing for the sample's category); agnostic, body_parts: (B, H, W) int64;
    keypoints: (B, 18, 3) float (normalised x, y); index: (B,) int64.
    """

    person: torch.Tensor
    garment: torch.Tensor
    garment_mask: torch.Tensor
    region: torch.Tensor
    agnostic: torch.Tensor
    body_parts: torch.Tensor
    keypoints: torch.Tensor
    index: torch.Tensor

    def to(self, device: torch.device) -> CachedBatch:
        return CachedBatch(**{k: v.to(device) for k, v in self.__dict__.items()})


class WarpCache(Dataset):
    """Items of a built cache (memory-mapped); `collate` turns a list of items into a `CachedBatch`."""

    def __init__(self, directory: str | Path, indices: list[int] | None = None) -> None:
        self.directory = Path(directory)
        self.meta = json.loads((self.directory / "meta.json").read_text())
        self.arrays = {
            name: np.load(self.directory / f"{name}.npy", mmap_mode="r")
            for name in (*_IMAGE_FIELDS, *_MAP_FIELDS, "keypoints", "category")
        }
        count = len(self.arrays["category"])
        self.indices = list(range(count)) if indices is None else list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def ids(self, item: int) -> tuple[str, str]:
        person, garment = self.meta["ids"][self.indices[item]]
        return person, garment

    def __getitem__(self, item: int) -> dict[str, np.ndarray | int]:
        index = self.indices[item]
        record: dict[str, np.ndarray | int] = {name: np.asarray(self.arrays[name][index]) for name in self.arrays}
        record["index"] = index
        return record

    @staticmethod
    def collate(records: list[dict]) -> CachedBatch:
        def stack(name: str) -> torch.Tensor:
            return torch.from_numpy(np.stack([r[name] for r in records]))

        person = stack("person").permute(0, 3, 1, 2).float() / 127.5 - 1
        garment = stack("garment").permute(0, 3, 1, 2).float() / 127.5 - 1
        parsing = stack("parsing")
        labels = torch.tensor([record_garment_label(r) for r in records], dtype=torch.uint8)
        region = (parsing == labels[:, None, None]).float()[:, None]
        return CachedBatch(
            person=person,
            garment=garment,
            garment_mask=stack("garment_mask").float()[:, None],
            region=region,
            agnostic=stack("agnostic").long(),
            body_parts=stack("body_parts").long(),
            keypoints=stack("keypoints").float(),
            index=torch.tensor([int(r["index"]) for r in records]),
        )
