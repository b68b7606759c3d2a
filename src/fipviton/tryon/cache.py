"""The try-on training cache: the warping module run once over a dataset split, plus the agnostic masks.

The try-on module trains on the outputs of the shipped warping module. Running the warper (and building
the agnostic mask) at every step would cost more than the try-on step itself on a CPU, so both are computed
once and stored next to the warping module's own cache (`fipviton.warp.cache`, which already holds the
person, garment, parsing, agnostic parsing, body-part map and keypoints of every pair):

| file              | shape         | dtype | content                                                      |
|-------------------|---------------|-------|--------------------------------------------------------------|
| agnostic_mask.npy | (N, H, W)     | uint8 | {0, 1}, the region to repaint (`fipviton.agnostic`)          |
| warped.npy        | (N, H, W, 3)  | uint8 | the warped garment (white outside its mask)                  |
| warped_mask.npy   | (N, H, W)     | uint8 | the warped mask, soft, scaled to 0..255                      |
| meta.json         |               |       | warp cache folder, warper weights (content hash), code, N    |

Folder: `<cache root>/tryon/<warp cache name>-<warper tag>/` (default root: `cache/` in the checkout, git-ignored).
The cache is rebuilt when meta.json does not match (other warp weights, other split or size, or changed code).

The agnostic image is not stored: it is the person with `AGNOSTIC_GREY` where the agnostic mask is, exactly
what `fipviton.agnostic.build_agnostic` produces, and is recomputed when a batch is assembled.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from fipviton.training.common import cache_is_current, source_fingerprint, write_cache
from fipviton.tryon.inputs import TryOnInputs

if TYPE_CHECKING:
    from fipviton.warp.cache import CachedBatch

# Besides the warp cache's own code: this file and the warping network's code (its outputs are cached).
OUTPUTS_CODE = ("fipviton.tryon.cache", "fipviton.warp.model", "fipviton.warp.flow")
DEFAULT_CACHE_ROOT = Path(__file__).resolve().parents[3] / "cache"
_CATEGORIES = ("upper_body", "lower_body", "dresses")

# A warper maps a batch of warp-cache records (as collated by `WarpCache.collate`) to (warped garment
# (B, 3, H, W) in [-1, 1], warped mask (B, 1, H, W) in [0, 1]) at the cache size.
Warper = Callable[[object], tuple[torch.Tensor, torch.Tensor]]


def warpnet_warper(weights: str | Path | None = None, device: str = "cpu") -> tuple[Warper, str]:
    """The shipped (or given) `fipviton.warp.WarpNet` as a `Warper`, and a tag naming its weights."""
    from fipviton.warp import WarpNet
    from fipviton.warp.conditioning import person_conditioning
    from fipviton.warp.model import DEFAULT_WEIGHTS_DIR, WEIGHTS_NAME

    directory = Path(weights) if weights is not None else DEFAULT_WEIGHTS_DIR
    model = WarpNet.from_pretrained(directory).to(device).eval()
    # The weights' content names them, not their path or mtime (a checkout touches the file, a copy moves it).
    content = (directory / WEIGHTS_NAME).read_bytes() + (directory / "config.json").read_bytes()
    tag = hashlib.sha1(content).hexdigest()[:10]

    @torch.no_grad()
    def warp(batch: CachedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        size = tuple(batch.person.shape[-2:])
        # The warp cache stores an all-zero mask where the dataset has none (Dress Code): use the whole photo,
        # as fipviton.warp.inference does.
        garment_mask = batch.garment_mask.clone()
        garment_mask[garment_mask.flatten(1).amax(1) == 0] = 1.0
        person = person_conditioning(batch.body_parts, batch.agnostic, batch.keypoints, tuple(model.config.size))
        out = model(batch.garment.to(device), garment_mask.to(device), person.to(device), size=size)
        return out.garment.cpu(), out.mask.cpu()

    return warp, tag


def agnostic_mask_of(record: dict) -> np.ndarray:
    """The agnostic mask (H, W) bool of one warp-cache record (person, parsing, keypoints, category)."""
    from fipviton.agnostic import build_agnostic

    person = np.asarray(record["person"])
    height, width = person.shape[:2]
    keypoints = np.asarray(record["keypoints"], dtype=np.float32).copy()
    present = keypoints[:, 2] > 0
    keypoints[present, 0] = keypoints[present, 0] * width - 0.5  # the warp cache stores normalised x, y
    keypoints[present, 1] = keypoints[present, 1] * height - 0.5
    keypoints[~present] = 0.0
    category = _CATEGORIES[int(record["category"])]
    has_pose = bool(present.any())
    return build_agnostic(person, np.asarray(record["parsing"]), keypoints if has_pose else None, category).mask


def build_tryon_cache(
    warp_cache: str | Path,
    warper: Warper,
    warper_tag: str,
    cache_root: str | Path | None = None,
    batch_size: int = 16,
    log_every: int = 500,
) -> Path:
    """Run `warper` and the agnostic construction over a built warp cache; returns the try-on cache folder."""
    from fipviton.warp.cache import WarpCache

    warp_cache = Path(warp_cache)
    source = WarpCache(warp_cache)
    n = len(source)
    out = Path(cache_root or DEFAULT_CACHE_ROOT) / "tryon" / f"{warp_cache.name}-{warper_tag}"
    wanted = {
        "code": f"{source.meta.get('code')}-{source_fingerprint(*OUTPUTS_CODE)}",
        "warp_cache": str(warp_cache.resolve()),
        "warper": warper_tag,
        "count": n,
    }
    if cache_is_current(out / "meta.json", wanted):
        return out
    height, width = np.asarray(source[0]["person"]).shape[:2]
    agnostic = np.zeros((n, height, width), np.uint8)
    warped = np.zeros((n, height, width, 3), np.uint8)
    warped_mask = np.zeros((n, height, width), np.uint8)
    start = time.time()
    for first in range(0, n, batch_size):
        records = [source[i] for i in range(first, min(n, first + batch_size))]
        for offset, record in enumerate(records):
            agnostic[first + offset] = agnostic_mask_of(record)
        garment, mask = warper(WarpCache.collate(records))
        garment = ((garment.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        warped[first : first + len(records)] = garment
        warped_mask[first : first + len(records)] = (mask.clamp(0, 1)[:, 0] * 255).round().to(torch.uint8).numpy()
        done = first + len(records)
        if log_every and (done // log_every) != (first // log_every):
            print(f"try-on cache: {done}/{n} ({time.time() - start:.0f} s)", file=sys.stderr, flush=True)
    arrays = {"agnostic_mask": agnostic, "warped": warped, "warped_mask": warped_mask}
    write_cache(out, arrays, wanted | {"size": [height, width]})
    return out


def random_backdrop(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8: a solid colour, a smooth colour field, or a smooth field with noise, equally likely."""
    import cv2

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
    import cv2

    from fipviton.labels import Label

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
    import cv2

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


class TryOnCacheDataset(Dataset):
    """Training items from a warp cache + a try-on cache (memory-mapped). `collate` gives `TryOnInputs`.

    flip_prob: probability of the horizontal flip augmentation (images mirrored, left/right parts swapped).
    shrink_prob: probability of `shrink_warped` (erosion by 0 to `shrink_max_erode` pixels, and 0 to
        `shrink_max_hem` of the garment's height cut off the hem, each drawn uniformly).
    fixed_shrink: (erode_px, hem_fraction) applied to every item instead (evaluation of hole filling).
    backdrop_prob: probability of `replace_backdrop` with a `random_backdrop`.
    fixed_backdrops: a seed: every item gets a backdrop drawn from (seed, item index) instead, the same in
        every run (evaluation on other backdrops).
    """

    def __init__(
        self,
        warp_cache: str | Path,
        tryon_cache: str | Path,
        flip_prob: float = 0.5,
        indices: list[int] | None = None,
        shrink_prob: float = 0.0,
        shrink_max_erode: int = 10,
        shrink_max_hem: float = 0.3,
        fixed_shrink: tuple[int, float] | None = None,
        backdrop_prob: float = 0.0,
        fixed_backdrops: int | None = None,
    ) -> None:
        from fipviton.warp.cache import WarpCache

        self.source = WarpCache(warp_cache, indices)
        directory = Path(tryon_cache)
        self.agnostic_mask = np.load(directory / "agnostic_mask.npy", mmap_mode="r")
        self.warped = np.load(directory / "warped.npy", mmap_mode="r")
        self.warped_mask = np.load(directory / "warped_mask.npy", mmap_mode="r")
        self.flip_prob = flip_prob
        self.shrink_prob = shrink_prob
        self.shrink_max_erode = shrink_max_erode
        self.shrink_max_hem = shrink_max_hem
        self.fixed_shrink = fixed_shrink
        self.backdrop_prob = backdrop_prob
        self.fixed_backdrops = fixed_backdrops

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, item: int) -> dict[str, np.ndarray]:
        from fipviton.bodyparts import flip_parts

        record = self.source[item]
        index = int(record["index"])
        person = np.asarray(record["person"])
        rng = None
        if self.fixed_backdrops is not None:
            rng = np.random.default_rng((self.fixed_backdrops, index))
        elif self.backdrop_prob > 0 and float(torch.rand(())) < self.backdrop_prob:
            rng = np.random.default_rng(int(torch.randint(0, 2**31, ())))  # torch's seed: differs per worker
        if rng is not None:
            person = replace_backdrop(person, np.asarray(record["parsing"]), random_backdrop(*person.shape[:2], rng))
        mask = np.asarray(self.agnostic_mask[index]).astype(bool)
        values = {
            "person": person,
            "agnostic_mask": mask.astype(np.uint8),
            "warped": np.asarray(self.warped[index]),
            "warped_mask": np.asarray(self.warped_mask[index]),
            "body_parts": np.asarray(record["body_parts"]),
            "garment": np.asarray(record["garment"]),
        }
        shrink = self.fixed_shrink
        if shrink is None and self.shrink_prob > 0 and float(torch.rand(())) < self.shrink_prob:
            shrink = (int(torch.randint(0, self.shrink_max_erode + 1, ())), float(torch.rand(())) * self.shrink_max_hem)
        if shrink is not None:
            values["warped"], values["warped_mask"] = shrink_warped(values["warped"], values["warped_mask"], *shrink)
        if self.flip_prob > 0 and float(torch.rand(())) < self.flip_prob:
            # flip_parts mirrors and swaps left/right itself: the map must not be mirrored a second time (until
            # 2026-11-27 it was, so every mirrored training sample had its body-part map at the unmirrored place).
            parts = flip_parts(values.pop("body_parts"))
            values = {k: np.ascontiguousarray(v[:, ::-1]) for k, v in values.items()} | {"body_parts": parts}
        return values

    @staticmethod
    def collate(items: list[dict[str, np.ndarray]]) -> TryOnInputs:
        return inputs_from_arrays(items)


def inputs_from_arrays(items: list[dict[str, np.ndarray]]) -> TryOnInputs:
    """`TryOnInputs` from per-sample uint8 arrays: person (H, W, 3), agnostic_mask (H, W) {0, 1},
    warped (H, W, 3), warped_mask (H, W) 0..255, body_parts (H, W), garment (h, w, 3); the agnostic image
    is the person with `AGNOSTIC_GREY` inside the agnostic mask."""
    from fipviton.agnostic import AGNOSTIC_GREY

    def images(name: str) -> torch.Tensor:
        stacked = torch.from_numpy(np.stack([np.asarray(i[name]) for i in items]))
        return stacked.permute(0, 3, 1, 2).float() / 127.5 - 1.0

    person = images("person")
    mask = torch.from_numpy(np.stack([np.asarray(i["agnostic_mask"]) for i in items])).float()[:, None].clamp(0, 1)
    grey = AGNOSTIC_GREY / 127.5 - 1.0
    agnostic = person * (1 - mask) + grey * mask
    warped_mask = torch.from_numpy(np.stack([np.asarray(i["warped_mask"]) for i in items])).float()[:, None] / 255.0
    parts = torch.from_numpy(np.stack([np.asarray(i["body_parts"]) for i in items]).astype(np.int64))
    return TryOnInputs(
        agnostic=agnostic,
        agnostic_mask=mask,
        warped=images("warped"),
        warped_mask=warped_mask,
        body_parts=parts,
        garment=images("garment"),
        person=person,
    )
