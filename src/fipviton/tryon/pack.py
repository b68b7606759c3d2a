"""Try-on training packs (`fipviton.data.pack`, kind "tryon"): the try-on's training items of chosen pairs.

The try-on training caches (`fipviton.warp.cache` + `fipviton.tryon.cache`) are gigabytes; a pack holds, per
pair, exactly what `TryOnCacheDataset` (`fipviton.tryon.dataset`) reads, compressed to about 9 KiB:

| field         | stored as                                             | decoded to                      |
|---------------|-------------------------------------------------------|---------------------------------|
| person        | WebP, quality 75 (lossy: ~40 dB PSNR)                 | (H, W, 3) uint8                 |
| garment       | at the garment encoder's size, as the encoder resizes | (h, w, 3) uint8                 |
|               | it (antialiased bilinear), WebP quality 80            |                                 |
| warped        | WebP, quality 75                                      | (H, W, 3) uint8                 |
| warped_mask   | lossless WebP                                         | (H, W) uint8 0..255             |
| masks         | lossless WebP: 85 x (2 x agnostic mask + foreground)  | agnostic_mask, foreground {0,1} |
| body_parts    | lossless WebP                                         | (H, W) uint8 part indices       |

(foreground = the parsing is not background: all that `replace_backdrop` reads of the parsing.)

The header also holds size, garment_size, the caches' code and warper tag.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fipviton.data.pack import PackItem, decode_webp, encode_webp
from fipviton.data.pack import read_pack as read_pack_file
from fipviton.data.pack import write_pack as write_pack_file
from fipviton.errors import DatasetError
from fipviton.tryon.dataset import NO_AUGMENTATION, Augmentation, TryOnItems

PACK_KIND = "tryon"
PACK_VERSION = 1
_LOSSY_QUALITY = {"person": 75, "garment": 80, "warped": 75}
_MASK_STEP = 85  # 2 bits (agnostic mask, foreground) spread over 0..255: a lossless code, easy to look at


def _garment_at(garment: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w, 3) uint8, the resize `ConvGarmentEncoder` applies to a larger garment."""
    import torch

    from fipviton.tryon.encoders import resize_garment

    x = resize_garment(torch.from_numpy(np.array(garment)).permute(2, 0, 1)[None].float(), size)
    return x.round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()


def write_pack(
    warp_cache: str | Path,
    tryon_cache: str | Path,
    indices: Sequence[int],
    prefix: str | Path,
    garment_size: tuple[int, int] = (128, 96),
    max_bytes: int | None = None,
) -> int:
    """Write the pairs `indices` (positions in the warp cache) of two built caches to PREFIX.bin/.json, in that
    order, stopping before the pair that would make the two files larger than `max_bytes`. Returns the number
    of pairs written. Refuses (FileExistsError) to replace an existing pack."""
    from fipviton.warp.cache import WarpCache

    source = WarpCache(warp_cache)
    tryon_dir = Path(tryon_cache)
    agnostic = np.load(tryon_dir / "agnostic_mask.npy", mmap_mode="r")
    warped = np.load(tryon_dir / "warped.npy", mmap_mode="r")
    warped_mask = np.load(tryon_dir / "warped_mask.npy", mmap_mode="r")
    tryon_meta = json.loads((tryon_dir / "meta.json").read_text())
    header = {
        "kind": PACK_KIND,
        "version": PACK_VERSION,
        "size": list(np.asarray(source[0]["person"]).shape[:2]),
        "garment_size": list(garment_size),
        "tryon_cache": {k: tryon_meta.get(k) for k in ("code", "warper", "count")},
        "dataset": {k: source.meta.get(k) for k in ("root", "split")},
    }

    def items() -> Iterator[PackItem]:
        for position in indices:
            record = source[int(position)]
            index = int(record["index"])
            foreground = np.asarray(record["parsing"]) != 0  # Label.BACKGROUND is 0
            garment = _garment_at(np.asarray(record["garment"]), garment_size)
            fields = {
                "person": encode_webp(np.asarray(record["person"]), _LOSSY_QUALITY["person"]),
                "garment": encode_webp(garment, _LOSSY_QUALITY["garment"]),
                "warped": encode_webp(np.asarray(warped[index]), _LOSSY_QUALITY["warped"]),
                "warped_mask": encode_webp(np.asarray(warped_mask[index]), None),
                "masks": encode_webp(((np.asarray(agnostic[index]) > 0) * 2 + foreground) * _MASK_STEP, None),
                "body_parts": encode_webp(np.asarray(record["body_parts"]), None),
            }
            yield index, fields, {}

    return write_pack_file(prefix, header, items(), max_bytes)


def read_pack(prefix: str | Path, workers: int | None = None) -> dict[str, np.ndarray]:
    """Decode a pack: person (N, H, W, 3), garment (N, h, w, 3), warped (N, H, W, 3), warped_mask (N, H, W)
    0..255, agnostic_mask and foreground (N, H, W) {0, 1}, body_parts (N, H, W); all uint8. `DatasetError` for
    files that are no try-on pack of this version."""

    def decode(field: Callable[[str], bytes], entry: dict[str, Any]) -> dict[str, np.ndarray]:
        masks = decode_webp(field("masks"))[..., 0] // _MASK_STEP
        return {
            "person": decode_webp(field("person")),
            "garment": decode_webp(field("garment")),
            "warped": decode_webp(field("warped")),
            "warped_mask": decode_webp(field("warped_mask"))[..., 0],
            "agnostic_mask": (masks >> 1).astype(np.uint8),
            "foreground": (masks & 1).astype(np.uint8),
            "body_parts": decode_webp(field("body_parts"))[..., 0],
        }

    return read_pack_file(prefix, PACK_KIND, PACK_VERSION, decode, workers)[1]


class PackDataset(TryOnItems):
    """The training items of one or more decoded packs, with `TryOnItems`' augmentation: item for item what
    `TryOnCacheDataset` gives for the same pairs and random draws (up to the packs' lossy WebP and
    the garment, stored at the encoder's size)."""

    def __init__(
        self,
        prefixes: Sequence[str | Path],
        augmentation: Augmentation = NO_AUGMENTATION,
        workers: int | None = None,
    ) -> None:
        if not prefixes:
            raise ValueError("no packs given")
        super().__init__(augmentation)
        parts = [read_pack(prefix, workers) for prefix in prefixes]
        shapes = {key: {part[key].shape[1:] for part in parts} for key in parts[0]}
        if any(len(s) > 1 for s in shapes.values()):
            raise DatasetError(f"the packs hold images of different sizes: {shapes}")
        self.arrays = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}

    def __len__(self) -> int:
        return len(self.arrays["person"])

    def record(self, item: int) -> dict[str, np.ndarray | int]:
        a = self.arrays
        # The foreground map (0 = background) stands in for the parsing: all that the backdrop reads of it.
        fields = ("person", "body_parts", "garment", "agnostic_mask", "warped", "warped_mask")
        return {"index": item, "parsing": a["foreground"][item]} | {key: a[key][item] for key in fields}
