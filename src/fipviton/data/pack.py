"""Training packs: the training items of chosen pairs in two small files, to train on another machine.

Why: a lent GPU machine receives at most 64 MiB of files per call, the repository included, and no dataset,
while the training caches are gigabytes. A pack stores each pair's fields as encoded bytes (WebP images,
raw arrays) one after another in `PREFIX.bin`, and a JSON header in `PREFIX.json`: the pack's `kind` and
`version`, whatever the writer adds, and per pair its `index` (position in the source cache), small
values the writer adds, and each field's byte range `[offset, length]` in the .bin.

This module is the container only; what a kind stores lives with its stage: `fipviton.tryon.pack` (the
try-on's items, `fipviton data pack-tryon`) and `fipviton.warp.pack` (the warp's, `fipviton data pack-warp`).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from fipviton.errors import DatasetError

# One pair as the writer gives it: (its cache index, {field: encoded bytes}, {small header values}).
PackItem = tuple[int, Mapping[str, bytes], Mapping[str, Any]]


def pack_paths(prefix: str | Path) -> tuple[Path, Path]:
    """(PREFIX.bin, PREFIX.json) of a pack prefix."""
    prefix = Path(prefix)
    return prefix.with_name(prefix.name + ".bin"), prefix.with_name(prefix.name + ".json")


def encode_webp(array: np.ndarray, quality: int | None) -> bytes:
    """(H, W, 3) or (H, W) uint8 -> WebP bytes; `quality` None = lossless."""
    from PIL import Image

    out = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(array, np.uint8))
    if quality is None:  # lossless; effort 75 / method 4 is ~100x faster than the maximum and ~5% larger
        image.save(out, "WEBP", lossless=True, quality=75, method=4)
    else:
        image.save(out, "WEBP", quality=quality, method=6)
    return out.getvalue()


def decode_webp(data: bytes) -> np.ndarray:
    """WebP bytes -> (H, W, 3) uint8 (a grey image comes back with three equal channels)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def write_pack(prefix: str | Path, header: Mapping[str, Any], items: Iterable[PackItem], max_bytes: int | None) -> int:
    """Write `items` in order to PREFIX.bin/.json under `header` (kind, version, ...), stopping before the item
    that would make the two files larger than `max_bytes`. Items are consumed lazily, so the encoding stops
    there too. Returns the number written. FileExistsError for an existing pack file (nothing is replaced);
    ValueError when not one item fits."""
    blob_path, index_path = pack_paths(prefix)
    for path in (blob_path, index_path):
        if path.exists():
            raise FileExistsError(f"{path} exists; choose another prefix")
    header = dict(header) | {"items": []}
    blob = bytearray()
    index_size = len(json.dumps(header, separators=(",", ":")))
    for index, fields, values in items:
        entry: dict[str, Any] = {"index": int(index), **values}
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


def read_pack(
    prefix: str | Path,
    kind: str,
    version: int,
    decode: Callable[[Callable[[str], bytes], dict[str, Any]], dict[str, np.ndarray]],
    workers: int | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Decode every pair of a pack: (header without its items, {field: (N, ...) stacked arrays}).

    decode(field_bytes, entry) -> one pair's arrays, where field_bytes(key) gives that field's bytes. Pairs are
    decoded in `workers` threads (Pillow's decoders release the GIL). `DatasetError` for a file that is not a
    pack of this kind and version, or that is cut or altered. A header without `kind` is a try-on pack: the
    first packs were written before other kinds existed.
    """
    blob_path, index_path = pack_paths(prefix)
    try:
        header = json.loads(index_path.read_text())
        blob = blob_path.read_bytes()
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{prefix}: cannot read the pack ({exc})") from exc
    if not isinstance(header, dict) or header.get("kind", "tryon") != kind or header.get("version") != version:
        raise DatasetError(f"{prefix}: not a {kind} training pack of version {version} (fipviton data pack-{kind})")

    def one(entry: dict[str, Any]) -> dict[str, np.ndarray]:
        def field_bytes(key: str) -> bytes:
            start, length = entry[key]
            if start < 0 or start + length > len(blob):
                raise ValueError(f"field {key} lies outside the .bin")
            return blob[start : start + length]

        return decode(field_bytes, entry)

    try:
        with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
            items = list(pool.map(one, header["items"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:  # a cut or altered .bin, a broken index
        raise DatasetError(f"{prefix}: broken pack ({exc})") from exc
    if not items:
        raise DatasetError(f"{prefix}: the pack holds no pairs")
    arrays = {key: np.stack([item[key] for item in items]) for key in items[0]}
    return {k: v for k, v in header.items() if k != "items"}, arrays
