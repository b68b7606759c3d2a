"""Warp training packs (`fipviton.data.pack`, kind "warp"): what `fipviton train warp` reads of each pair.

The warp's training cache (`fipviton.warp.cache`) is about a gigabyte at 256x192; a pack holds, per pair, what
`WarpCache` gives to the training step, about 5.3 KiB, so that every VITON training pair fits beside the
repository in one call to a lent GPU. The images are stored at the network's size, because the step only
ever sees them area-resized to it (`fipviton.training.warp.to_network_size`); the label maps keep the cache's
size, because the step resizes their one-hot channels (soft borders) and the garment region:

| field        | stored as                                                        | decoded to                     |
|--------------|------------------------------------------------------------------|--------------------------------|
| person       | area-resized to `image_size` (the network's, 128x96), WebP q 85 | (h, w, 3) uint8                |
| garment      | the same                                                         | (h, w, 3) uint8                |
| maps         | lossless WebP, R = parsing, G = agnostic parsing, B = body parts | (H, W) uint8 each              |
| garment_mask | lossless WebP, 255 x mask                                        | (H, W) uint8 {0, 1}            |
| keypoints    | raw float32, little-endian                                       | (18, 3) float32, exact         |
| category     | an int in the pair's header entry                                | uint8                          |

`WarpPackDataset` gives the same records as `WarpCache` (same keys; person and garment smaller), and
`WarpCache.collate` batches them. The images are box-averaged (`resize_image`: OpenCV's area resize, the step's
torch area resize up to 1 grey level of rounding); the flip of a batch commutes with it, so a pair trains as
it does from the cache up to the WebP loss (~39 dB PSNR).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fipviton.data.pack import PackItem, decode_webp, encode_webp
from fipviton.data.pack import read_pack as read_pack_file
from fipviton.data.pack import write_pack as write_pack_file
from fipviton.data.torch_dataset import resize_image
from fipviton.errors import DatasetError
from fipviton.warp.cache import WarpCache

PACK_KIND = "warp"
PACK_VERSION = 1
# WebP quality of person and garment at 128x96: 39.4 dB mean PSNR, 1.7 KiB an image (q 75: 36.5 dB, 1.2 KiB;
# q 90: 41.5 dB, 2.2 KiB; 200 training images). At 90 all 5,459 VITON pairs no longer fit beside the tree.
IMAGE_QUALITY = 85
_KEYPOINT_DTYPE = np.dtype("<f4")


def write_warp_pack(
    warp_cache: str | Path,
    indices: Sequence[int],
    prefix: str | Path,
    image_size: tuple[int, int] = (128, 96),
    max_bytes: int | None = None,
) -> int:
    """Write the pairs `indices` (positions in a built warp cache) to PREFIX.bin/.json, in that order, stopping
    before the pair that would make the two files larger than `max_bytes`. Returns the number of pairs written.
    Refuses (FileExistsError) to replace an existing pack; ValueError for an `image_size` larger than the
    cache's or when not one pair fits."""
    source = WarpCache(warp_cache)
    cache_size = tuple(np.asarray(source[0]["parsing"]).shape[:2])
    if image_size[0] > cache_size[0] or image_size[1] > cache_size[1]:
        raise ValueError(f"image size {tuple(image_size)} is larger than the cache's {cache_size}")
    header = {
        "kind": PACK_KIND,
        "version": PACK_VERSION,
        "size": list(cache_size),
        "image_size": list(image_size),
        "warp_cache": {k: source.meta.get(k) for k in ("code", "count")},
        "dataset": {k: source.meta.get(k) for k in ("root", "split")},
    }

    def items() -> Iterator[PackItem]:
        for position in indices:
            record = source[int(position)]
            maps = np.stack([np.asarray(record[k]) for k in ("parsing", "agnostic", "body_parts")], axis=-1)
            fields = {
                "person": encode_webp(resize_image(np.asarray(record["person"]), image_size), IMAGE_QUALITY),
                "garment": encode_webp(resize_image(np.asarray(record["garment"]), image_size), IMAGE_QUALITY),
                "maps": encode_webp(maps, None),
                "garment_mask": encode_webp((np.asarray(record["garment_mask"]) > 0).astype(np.uint8) * 255, None),
                "keypoints": np.asarray(record["keypoints"], _KEYPOINT_DTYPE).tobytes(),
            }
            yield int(record["index"]), fields, {"category": int(record["category"])}

    return write_pack_file(prefix, header, items(), max_bytes)


def read_warp_pack(prefix: str | Path, workers: int | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Decode a warp pack: (header, arrays). Arrays: person, garment (N, h, w, 3) uint8; parsing, agnostic,
    body_parts, garment_mask (N, H, W) uint8; keypoints (N, 18, 3) float32; category (N,) uint8; index (N,)
    int64 (positions in the cache it was written from). `DatasetError` for files that are no warp pack of this
    version, or are cut or altered."""

    def decode(field: Callable[[str], bytes], entry: dict[str, Any]) -> dict[str, np.ndarray]:
        maps = decode_webp(field("maps"))
        keypoints = np.frombuffer(field("keypoints"), _KEYPOINT_DTYPE)
        if keypoints.size != 18 * 3:
            raise ValueError(f"{keypoints.size} keypoint values instead of 54")
        return {
            "person": decode_webp(field("person")),
            "garment": decode_webp(field("garment")),
            "parsing": maps[..., 0],
            "agnostic": maps[..., 1],
            "body_parts": maps[..., 2],
            "garment_mask": (decode_webp(field("garment_mask"))[..., 0] > 127).astype(np.uint8),
            "keypoints": keypoints.reshape(18, 3).astype(np.float32),
            "category": np.uint8(entry["category"]),
            "index": np.int64(entry["index"]),
        }

    return read_pack_file(prefix, PACK_KIND, PACK_VERSION, decode, workers)


class WarpPackDataset:
    """The training records of one or more decoded warp packs, as `WarpCache` gives them (`collate` batches
    them), sorted by their position in the source cache (`cache_index`). `index` is the record's position in
    this dataset. `image_size`: the size the packs store person and garment at (H, W)."""

    collate = staticmethod(WarpCache.collate)

    def __init__(self, prefixes: Sequence[str | Path], workers: int | None = None) -> None:
        if not prefixes:
            raise ValueError("no packs given")
        parts = [read_warp_pack(prefix, workers) for prefix in prefixes]
        sizes = {(tuple(h["size"]), tuple(h["image_size"])) for h, _ in parts}
        if len(sizes) > 1:
            raise DatasetError(f"the packs were written at different sizes: {sorted(sizes)}")
        (self.size, self.image_size) = sizes.pop()
        arrays = {key: np.concatenate([arrays[key] for _, arrays in parts]) for key in parts[0][1]}
        # In cache order, whatever order the packs hold: packs of every pair then train exactly as the cache
        # does (the same positions drawn, the same batches), up to the WebP loss.
        order = np.argsort(arrays["index"], kind="stable")
        self.arrays = {key: values[order] for key, values in arrays.items()}
        self.cache_index = self.arrays.pop("index")

    def __len__(self) -> int:
        return len(self.cache_index)

    def __getitem__(self, item: int) -> dict[str, np.ndarray | int]:
        return {key: values[item] for key, values in self.arrays.items()} | {"index": int(item)}
