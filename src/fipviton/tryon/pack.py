"""Try-on training packs: the training items of chosen pairs in one small file, to train on another machine.

Why: a lent GPU machine receives at most 64 MiB of files per call, the repository included, and no dataset,
while the try-on training caches (`fipviton.warp.cache` + `fipviton.tryon.cache`) are gigabytes. A pack holds,
per pair, exactly what `TryOnCacheDataset` (`fipviton.tryon.dataset`) reads, compressed to about 9 KiB:

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

Files: `PREFIX.bin` (the encoded images, one after another) and `PREFIX.json` (a header: version, size,
garment_size, the caches' code and warper tag, and per pair its cache index and each field's byte range).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from fipviton.errors import DatasetError
from fipviton.tryon.dataset import NO_AUGMENTATION, Augmentation, TryOnItems

PACK_VERSION = 1
_LOSSY_QUALITY = {"person": 75, "garment": 80, "warped": 75}
_MASK_STEP = 85  # 2 bits (agnostic mask, foreground) spread over 0..255: a lossless code, easy to look at


def _webp(array: np.ndarray, quality: int | None) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    if quality is None:  # lossless; effort 75 / method 4 is ~100x faster than the maximum and ~5% larger
        Image.fromarray(np.ascontiguousarray(array, np.uint8)).save(out, "WEBP", lossless=True, quality=75, method=4)
    else:
        Image.fromarray(np.ascontiguousarray(array, np.uint8)).save(out, "WEBP", quality=quality, method=6)
    return out.getvalue()


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

    prefix = Path(prefix)
    blob_path, index_path = prefix.with_name(prefix.name + ".bin"), prefix.with_name(prefix.name + ".json")
    for path in (blob_path, index_path):
        if path.exists():
            raise FileExistsError(f"{path} exists; choose another prefix")
    source = WarpCache(warp_cache)
    tryon_dir = Path(tryon_cache)
    agnostic = np.load(tryon_dir / "agnostic_mask.npy", mmap_mode="r")
    warped = np.load(tryon_dir / "warped.npy", mmap_mode="r")
    warped_mask = np.load(tryon_dir / "warped_mask.npy", mmap_mode="r")
    tryon_meta = json.loads((tryon_dir / "meta.json").read_text())
    header = {
        "version": PACK_VERSION,
        "size": list(np.asarray(source[0]["person"]).shape[:2]),
        "garment_size": list(garment_size),
        "tryon_cache": {k: tryon_meta.get(k) for k in ("code", "warper", "count")},
        "dataset": {k: source.meta.get(k) for k in ("root", "split")},
        "items": [],
    }
    blob = bytearray()
    index_size = len(json.dumps(header, separators=(",", ":")))
    for position in indices:
        record = source[int(position)]
        index = int(record["index"])
        foreground = np.asarray(record["parsing"]) != 0  # Label.BACKGROUND is 0
        fields = {
            "person": _webp(np.asarray(record["person"]), _LOSSY_QUALITY["person"]),
            "garment": _webp(_garment_at(np.asarray(record["garment"]), garment_size), _LOSSY_QUALITY["garment"]),
            "warped": _webp(np.asarray(warped[index]), _LOSSY_QUALITY["warped"]),
            "warped_mask": _webp(np.asarray(warped_mask[index]), None),
            "masks": _webp(((np.asarray(agnostic[index]) > 0) * 2 + foreground) * _MASK_STEP, None),
            "body_parts": _webp(np.asarray(record["body_parts"]), None),
        }
        entry: dict[str, object] = {"index": index}
        offset = len(blob)
        for key, data in fields.items():
            entry[key] = [offset, len(data)]
            offset += len(data)
        entry_size = len(json.dumps(entry, separators=(",", ":"))) + 1  # + its comma
        if max_bytes is not None and offset + index_size + entry_size > max_bytes:
            break
        for data in fields.values():
            blob += data
        header["items"].append(entry)
        index_size += entry_size
    if not header["items"]:
        raise ValueError(f"not one pair fits in {max_bytes} bytes")
    blob_path.write_bytes(bytes(blob))
    index_path.write_text(json.dumps(header, separators=(",", ":")))
    return len(header["items"])


def read_pack(prefix: str | Path, workers: int | None = None) -> dict[str, np.ndarray]:
    """Decode a pack: person (N, H, W, 3), garment (N, h, w, 3), warped (N, H, W, 3), warped_mask (N, H, W)
    0..255, agnostic_mask and foreground (N, H, W) {0, 1}, body_parts (N, H, W); all uint8. `DatasetError` for
    files that are no pack of this version."""
    from PIL import Image

    prefix = Path(prefix)
    try:
        header = json.loads(prefix.with_name(prefix.name + ".json").read_text())
        blob = prefix.with_name(prefix.name + ".bin").read_bytes()
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{prefix}: cannot read the pack ({exc})") from exc
    if not isinstance(header, dict) or header.get("version") != PACK_VERSION:
        raise DatasetError(f"{prefix}: not a try-on pack of version {PACK_VERSION} (fipviton data pack-tryon)")

    def image(entry: dict, key: str) -> np.ndarray:
        start, length = entry[key]
        return np.asarray(Image.open(io.BytesIO(blob[start : start + length])).convert("RGB"))

    def decode(entry: dict) -> dict[str, np.ndarray]:
        masks = image(entry, "masks")[..., 0] // _MASK_STEP
        return {
            "person": image(entry, "person"),
            "garment": image(entry, "garment"),
            "warped": image(entry, "warped"),
            "warped_mask": image(entry, "warped_mask")[..., 0],
            "agnostic_mask": (masks >> 1).astype(np.uint8),
            "foreground": (masks & 1).astype(np.uint8),
            "body_parts": image(entry, "body_parts")[..., 0],
        }

    # Pillow's decoders release the GIL: threads decode in parallel.
    try:
        with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
            items = list(pool.map(decode, header["items"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:  # a cut or altered .bin, a broken index
        raise DatasetError(f"{prefix}: broken pack ({exc})") from exc
    if not items:
        raise DatasetError(f"{prefix}: the pack holds no pairs")
    return {key: np.stack([item[key] for item in items]) for key in items[0]}


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
