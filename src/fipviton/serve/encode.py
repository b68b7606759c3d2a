"""Turning a try-on result into response bytes: PNG, or JSON with base64 PNGs of the image and every map."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image


def encode_png(image: np.ndarray) -> bytes:
    """(H, W, 3) or (H, W) uint8 -> PNG bytes.

    zlib level 1: a 1024x768 photo encodes in ~20 ms instead of ~100 ms at the default level, for files about
    15% larger; on loopback or a LAN the CPU time is the scarcer resource.
    """
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    """Resize (H, W, 3) uint8 so that its longest side is at most `max_side` (0: unchanged); keeps the aspect."""
    height, width = image.shape[:2]
    if max_side <= 0 or max(height, width) <= max_side:
        return image
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def result_json(
    image: np.ndarray,
    maps: Mapping[str, np.ndarray],
    warnings: Sequence[str],
    timings: Mapping[str, float],
    category: str,
    map_size: int,
    frame: tuple[int, int, int, int] | None = None,
) -> bytes:
    """The JSON body of a try-on: {"image", "width", "height", "category", "maps", "warnings", "timings",
    "frame"}.

    image: (H, W, 3) uint8, sent at full size as base64 PNG; maps: name -> (H, W, 3) uint8, each shrunk to
    `map_size` on its longest side (0: full size) because ten full-size maps would be ~10 MB of base64.
    frame: (top, left, height, width) of the person crop the try-on ran in (`fipviton.framing`), sent as an
    object with those keys, or None (null) when it ran on the whole photo.
    """
    height, width = image.shape[:2]
    body = {
        "image": _b64_png(image),
        "width": width,
        "height": height,
        "category": category,
        "maps": {name: _b64_png(shrink(picture, map_size)) for name, picture in maps.items()},
        "warnings": list(warnings),
        "timings": {name: round(float(seconds), 4) for name, seconds in timings.items()},
        "frame": dict(zip(("top", "left", "height", "width"), map(int, frame), strict=True)) if frame else None,
    }
    return json.dumps(body).encode("utf-8")


def _b64_png(image: np.ndarray) -> str:
    return base64.b64encode(encode_png(image)).decode("ascii")


def server_timing(timings: Mapping[str, float]) -> str:
    """A `Server-Timing` header value (milliseconds per stage), which browsers show in their network panel."""
    return ", ".join(f"{name};dur={1000.0 * float(seconds):.1f}" for name, seconds in timings.items())
