"""The try-on module's training items and their augmentation.

An item is a dict of uint8 arrays at the cache size (H, W), what `fipviton.tryon.inputs.inputs_from_arrays`
batches into `TryOnInputs`:

| key           | shape         | values                                   |
|---------------|---------------|------------------------------------------|
| person        | (H, W, 3)     | RGB, the ground truth                    |
| agnostic_mask | (H, W)        | {0, 1}, the region to repaint            |
| warped        | (H, W, 3)     | RGB, the warped garment (white outside)  |
| warped_mask   | (H, W)        | 0..255, where the warped garment lies    |
| body_parts    | (H, W)        | `fipviton.bodyparts.BodyPart` indices    |
| garment       | (h, w, 3)     | RGB, the in-shop garment photo           |

`TryOnItems` draws the augmentation (another backdrop, a shrunk warp, the mirror image) of each item from a
numpy generator given to `item(i, rng)`, so that a trainer can build the items of a batch in several threads
and still get the same batch from the same seeds. `dataset[i]` seeds that generator from torch's global
generator (which differs per `DataLoader` worker).

Subclasses: `TryOnCacheDataset` (the training caches, `fipviton.warp.cache` + `fipviton.tryon.cache`) and
`fipviton.tryon.pack.PackDataset` (packs of them). This module is not part of any cache's fingerprint:
changing the augmentation rebuilds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from fipviton.labels import Label
from fipviton.tryon.inputs import TryOnInputs, inputs_from_arrays


def random_backdrop(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8: a solid colour, a smooth colour field, or a smooth field with noise, equally likely."""
    coarse = rng.random((4, 4, 3)).astype(np.float32)
    kind = int(rng.integers(0, 3))
    if kind == 0:
        coarse[:] = coarse.mean((0, 1))
    field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    if kind == 2:
        field += 0.08 * rng.standard_normal((height, width, 3)).astype(np.float32)
    return np.rint(np.clip(field, 0.0, 1.0) * 255).astype(np.uint8)


def replace_backdrop(person: np.ndarray, parsing: np.ndarray, backdrop: np.ndarray) -> np.ndarray:
    """The person photo (H, W, 3) uint8 with its background (`parsing` (H, W) == BACKGROUND, the edge softened
    over 3 px) replaced by `backdrop` (H, W, 3) uint8.

    Why: VITON's backdrops are all near-white, so a network trained on them paints near-white wherever the
    agnostic region holds no garment, a pale halo on any other photo. Other backdrops at training teach it
    to continue the one around the region.
    """
    on_person = cv2.blur((parsing != Label.BACKGROUND).astype(np.float32), (3, 3))[..., None]
    mixed = person.astype(np.float32) * on_person + backdrop.astype(np.float32) * (1.0 - on_person)
    return np.rint(mixed).astype(np.uint8)


def shrink_warped(
    warped: np.ndarray, warped_mask: np.ndarray, erode_px: int, hem_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """The warped garment (H, W, 3) uint8 and its mask (H, W) uint8 0..255, made smaller: the mask eroded by
    `erode_px` pixels and the lowest `hem_fraction` of its height cut off; the garment is white where removed.

    Why: on paired training data the warped garment fills the agnostic region almost exactly, but on unpaired
    pairs (another cut, another length) it leaves holes between its hem or sides and the region's edge, which
    the network, never having had to fill them, left as grey smudges. Shrinking the warp at training teaches
    it to extend the garment and the body into such holes; the ground truth says what belongs there.
    """
    keep = warped_mask > 127
    if erode_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode_px + 1, 2 * erode_px + 1))
        keep = cv2.erode(keep.astype(np.uint8), kernel).astype(bool)
    rows = np.flatnonzero(keep.any(1))
    if hem_fraction > 0 and len(rows):
        top, bottom = int(rows[0]), int(rows[-1])
        keep[bottom - round((bottom - top) * hem_fraction) + 1 :] = False
    mask = np.where(keep, warped_mask, 0).astype(np.uint8)
    garment = np.where(keep[..., None], warped, 255).astype(np.uint8)
    return garment, mask


def refill_warped(warped: np.ndarray, warped_mask: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """The warped garment (H, W, 3) uint8, on white where its mask (H, W) uint8 0..255 is below 255, put on
    `fill` (3,) instead: `warped + (fill - 255) * (1 - mask)`, exact for a garment composited on white with that
    mask (`fipviton.warp.model.warp_on_white`, `shrink_warped`); unchanged where the mask is 255."""
    outside = 1.0 - warped_mask.astype(np.float32)[..., None] / 255.0
    refilled = warped.astype(np.float32) + (np.asarray(fill, np.float32) - 255.0) * outside
    return np.clip(refilled, 0, 255).round().astype(np.uint8)


def perfect_warp(person: np.ndarray, record: dict[str, np.ndarray | int]) -> tuple[np.ndarray, np.ndarray]:
    """The person's own garment as a warp would give it: (H, W, 3) uint8 `person` inside the record's garment
    region (its "parsing" == the label of its "category"), white outside, and that region as a (H, W) uint8
    0/255 mask. ValueError for a record without real labels and a category (a pack's)."""
    from fipviton.warp.cache import record_garment_label

    if "category" not in record:
        raise ValueError("a perfect warp needs the parsing and category of the caches (packs keep neither)")
    region = np.asarray(record["parsing"]) == record_garment_label(record)
    garment = np.where(region[..., None], person, 255).astype(np.uint8)
    return garment, region.astype(np.uint8) * 255


@dataclass(frozen=True)
class Augmentation:
    """What `TryOnItems` does to each item (all off but the flip by default).

    flip_prob: probability of the horizontal flip (images mirrored, left/right parts swapped).
    shrink_prob: probability of `shrink_warped` (erosion by 0 to `shrink_max_erode` pixels, and 0 to
        `shrink_max_hem` of the garment's height cut off the hem, each drawn uniformly).
    fixed_shrink: (erode_px, hem_fraction) applied to every item instead (evaluation of hole filling).
    backdrop_prob: probability of `replace_backdrop` with a `random_backdrop`.
    fixed_backdrops: a seed: every item gets a backdrop drawn from (seed, item index) instead, the same in
        every run (evaluation on other backdrops).
    oracle_warp: the person's own garment (the parsing's region for the item's category, on white) in place of
        the warped garment and its mask: a perfect warp, so the scores say what the warp leaves on the table
        (evaluation only; needs the caches' parsing and category, which packs do not keep).
    fill_prob: probability of `refill_warped`: the warped garment's white around it (and in the holes a shrink
        cut) replaced by a random colour, so that white no longer tells the network "no garment here" and it
        must read that from the warped mask (white areas inside garments were painted over, session 21). A
        45-minute fine-tune of the shipped weights with 0.5 made colours worse, not better (try-on card, "Keeping
        the garment's colours"); off by default.
    """

    flip_prob: float = 0.5
    shrink_prob: float = 0.0
    shrink_max_erode: int = 10
    shrink_max_hem: float = 0.3
    fixed_shrink: tuple[int, float] | None = None
    backdrop_prob: float = 0.0
    fixed_backdrops: int | None = None
    oracle_warp: bool = False
    fill_prob: float = 0.0


NO_AUGMENTATION = Augmentation(flip_prob=0.0)


class TryOnItems(Dataset):
    """Training items (see the module docstring) with their `Augmentation`; `collate` gives `TryOnInputs`.

    A subclass gives `__len__` and `record(item)`: the item's unaugmented arrays, plus "index" (its position in
    the source, which seeds `fixed_backdrops`) and "parsing" ((H, W) labels, or any map that is 0 exactly on
    the background: all that `replace_backdrop` reads of it).
    """

    def __init__(self, augmentation: Augmentation = NO_AUGMENTATION) -> None:
        self.augmentation = augmentation

    def __len__(self) -> int:
        raise NotImplementedError

    def record(self, item: int) -> dict[str, np.ndarray | int]:
        """The unaugmented arrays of `item`, with "index" and "parsing" (see the class docstring)."""
        raise NotImplementedError

    def __getitem__(self, item: int) -> dict[str, np.ndarray]:
        return self.item(item, np.random.default_rng(int(torch.randint(0, 2**31, ()))))

    def item(self, item: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The augmented item; every random choice is drawn from `rng`."""
        from fipviton.bodyparts import flip_parts

        aug = self.augmentation
        record = self.record(item)
        index = int(record["index"])  # type: ignore[arg-type]
        person = np.asarray(record["person"])
        backdrop_rng = None
        if aug.fixed_backdrops is not None:
            backdrop_rng = np.random.default_rng((aug.fixed_backdrops, index))
        elif aug.backdrop_prob > 0 and rng.random() < aug.backdrop_prob:
            backdrop_rng = rng
        if backdrop_rng is not None:
            backdrop = random_backdrop(*person.shape[:2], backdrop_rng)
            person = replace_backdrop(person, np.asarray(record["parsing"]), backdrop)
        values = {
            "person": person,
            "agnostic_mask": np.asarray(record["agnostic_mask"]).astype(bool).astype(np.uint8),
            "warped": np.asarray(record["warped"]),
            "warped_mask": np.asarray(record["warped_mask"]),
            "body_parts": np.asarray(record["body_parts"]),
            "garment": np.asarray(record["garment"]),
        }
        if aug.oracle_warp:
            values["warped"], values["warped_mask"] = perfect_warp(person, record)
        shrink = aug.fixed_shrink
        if shrink is None and aug.shrink_prob > 0 and rng.random() < aug.shrink_prob:
            shrink = (int(rng.integers(0, aug.shrink_max_erode + 1)), float(rng.random()) * aug.shrink_max_hem)
        if shrink is not None:
            values["warped"], values["warped_mask"] = shrink_warped(values["warped"], values["warped_mask"], *shrink)
        if aug.fill_prob > 0 and rng.random() < aug.fill_prob:
            fill = rng.integers(0, 256, 3)
            values["warped"] = refill_warped(values["warped"], values["warped_mask"], fill)
        if aug.flip_prob > 0 and rng.random() < aug.flip_prob:
            # flip_parts mirrors and swaps left/right itself: the map must not be mirrored a second time (until
            # 2026-11-27 it was, so every mirrored training sample had its body-part map at the unmirrored place).
            parts = flip_parts(values.pop("body_parts"))
            values = {k: np.ascontiguousarray(v[:, ::-1]) for k, v in values.items()} | {"body_parts": parts}
        return values

    @staticmethod
    def collate(items: list[dict[str, np.ndarray]], device: torch.device | str | None = None) -> TryOnInputs:
        return inputs_from_arrays(items, device)


class TryOnCacheDataset(TryOnItems):
    """Training items from a warp cache + a try-on cache (memory-mapped); `indices` selects warp-cache
    entries."""

    def __init__(
        self,
        warp_cache: str | Path,
        tryon_cache: str | Path,
        augmentation: Augmentation = NO_AUGMENTATION,
        indices: list[int] | None = None,
    ) -> None:
        from fipviton.warp.cache import WarpCache

        super().__init__(augmentation)
        self.source = WarpCache(warp_cache, indices)
        directory = Path(tryon_cache)
        self.agnostic_mask = np.load(directory / "agnostic_mask.npy", mmap_mode="r")
        self.warped = np.load(directory / "warped.npy", mmap_mode="r")
        self.warped_mask = np.load(directory / "warped_mask.npy", mmap_mode="r")

    def __len__(self) -> int:
        return len(self.source)

    def record(self, item: int) -> dict[str, np.ndarray | int]:
        record = self.source[item]
        index = int(record["index"])
        return {
            "index": index,
            "person": record["person"],
            "parsing": record["parsing"],
            "category": record["category"],
            "body_parts": record["body_parts"],
            "garment": record["garment"],
            "agnostic_mask": self.agnostic_mask[index],
            "warped": self.warped[index],
            "warped_mask": self.warped_mask[index],
        }
