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

This file's code is part of the cache's fingerprint (a change rebuilds every try-on cache), so it holds only
what decides the cached arrays; the training items over the caches, and their augmentation, are in
`fipviton.tryon.dataset`.
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

from fipviton.training.common import cache_is_current, source_fingerprint, write_cache

if TYPE_CHECKING:
    from fipviton.warp.cache import CachedBatch

# Besides the warp cache's own code: this file and the warping network's code (its outputs are cached).
OUTPUTS_CODE = ("fipviton.tryon.cache", "fipviton.warp.model", "fipviton.warp.flow")
DEFAULT_CACHE_ROOT = Path(__file__).resolve().parents[3] / "cache"

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
    from fipviton.warp.cache import record_category

    person = np.asarray(record["person"])
    height, width = person.shape[:2]
    keypoints = np.asarray(record["keypoints"], dtype=np.float32).copy()
    present = keypoints[:, 2] > 0
    keypoints[present, 0] = keypoints[present, 0] * width - 0.5  # the warp cache stores normalised x, y
    keypoints[present, 1] = keypoints[present, 1] * height - 0.5
    keypoints[~present] = 0.0
    category = record_category(record)
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
