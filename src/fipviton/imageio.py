"""Reading user images safely (one error type, clear messages, never a traceback or a silently wrong image),
writing results atomically, and refusing output folders that would mix with the inputs."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fipviton.errors import ImageInputError, OutputPathError

# 50 megapixels: far above any photo a try-on needs, far below a decompression bomb.
MAX_PIXELS = 50_000_000
MIN_SIDE = 32
MAX_FILE_BYTES = 50 * 1024 * 1024

ImageSource = str | Path | bytes | Image.Image | np.ndarray


def _open(source: str | Path | bytes, name: str) -> Image.Image:
    if isinstance(source, bytes):
        if len(source) > MAX_FILE_BYTES:
            raise ImageInputError(f"{name}: file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
        stream: io.BytesIO | Path = io.BytesIO(source)
    else:
        stream = Path(source)
        if not stream.is_file():
            raise ImageInputError(f"{name}: no such file")
        if stream.stat().st_size > MAX_FILE_BYTES:
            raise ImageInputError(f"{name}: file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(stream)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageInputError(f"{name}: image has too many pixels (limit {MAX_PIXELS:,})") from exc
    except UnidentifiedImageError as exc:
        raise ImageInputError(f"{name}: not an image file, or a format that cannot be read") from exc
    except OSError as exc:
        raise ImageInputError(f"{name}: cannot be read ({exc})") from exc


def _to_rgb(image: Image.Image, name: str) -> Image.Image:
    """Convert any PIL mode to RGB; transparency is composited onto white (the product-photo background)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        high = array.max() if array.size else 0.0
        scale = 255.0 / high if high > 255 else 1.0
        return Image.fromarray(np.clip(array * scale, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageInputError(f"{name}: unsupported image mode {mode}") from exc


def _check_size(width: int, height: int, name: str) -> None:
    if width * height > MAX_PIXELS:
        raise ImageInputError(f"{name}: image has too many pixels ({width}x{height}, limit {MAX_PIXELS:,})")
    if min(width, height) < MIN_SIDE:
        raise ImageInputError(f"{name}: image is too small ({width}x{height}, at least {MIN_SIDE} px a side)")


def load_image(source: ImageSource, name: str = "image") -> np.ndarray:
    """Load a photo as RGB uint8 (H, W, 3), upright (EXIF orientation applied).

    `source` is a path, encoded file bytes, a PIL image or an array ((H, W), (H, W, 3) or (H, W, 4), uint8).
    Raises `ImageInputError` with a message naming `name` for anything that is not a usable image.
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, name)
    image = source if isinstance(source, Image.Image) else _open(source, name)
    _check_size(image.width, image.height, name)
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        rgb = _to_rgb(image, name)
        array = np.asarray(rgb, dtype=np.uint8)
    except ImageInputError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageInputError(f"{name}: image data is truncated or corrupt ({exc})") from exc
    return np.ascontiguousarray(array)


def _array_to_rgb(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype != np.uint8:
        raise ImageInputError(f"{name}: array images must be uint8, got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageInputError(f"{name}: array images must be (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    _check_size(array.shape[1], array.shape[0], name)
    if array.shape[2] == 4:
        alpha = array[:, :, 3:4].astype(np.float32) / 255.0
        array = (array[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(array)


def load_label_map(path: str | Path, name: str = "label map") -> np.ndarray:
    """Load an indexed or grayscale label PNG as uint8 (H, W) of raw label values (palette indices kept)."""
    image = _open(path, name)
    try:
        image.load()
    except (OSError, SyntaxError) as exc:
        raise ImageInputError(f"{name}: image data is truncated or corrupt ({exc})") from exc
    if image.mode in ("P", "L"):
        return np.asarray(image, dtype=np.uint8)
    if image.mode in ("RGB", "RGBA"):
        # Some releases save label maps as RGB with equal channels.
        return np.asarray(image.convert("RGB"), dtype=np.uint8)[:, :, 0].copy()
    return np.asarray(image.convert("L"), dtype=np.uint8)


def load_mask(path: str | Path, name: str = "mask", threshold: int = 128) -> np.ndarray:
    """Load a mask image (PNG, or a lossy JPEG that must be thresholded) as bool (H, W)."""
    image = _open(path, name)
    try:
        gray = np.asarray(image.convert("L"), dtype=np.uint8)
    except (OSError, SyntaxError) as exc:
        raise ImageInputError(f"{name}: image data is truncated or corrupt ({exc})") from exc
    return gray >= threshold


def save_image(array: np.ndarray, path: str | Path) -> None:
    """Write an RGB/L uint8 array atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), "PNG")
    Image.fromarray(array).save(tmp, format=fmt)
    tmp.replace(path)


def check_output_folder(out: Path, inputs: Sequence[Path], *, allow_inside: bool = False) -> None:
    """Refuse an output folder that would mix results with the user's inputs (`OutputPathError`).

    inputs: input folders; an input file stands for the folder it is in. `out` may not be one of them, nor,
    unless `allow_inside`, a folder below one (a dataset folder stays untouched). An existing `out` must be
    a folder.
    """
    resolved = Path(out).resolve()
    for source in inputs:
        source = Path(source).resolve()
        folder = source if source.is_dir() else source.parent
        if resolved == folder or (not allow_inside and folder in resolved.parents):
            raise OutputPathError(
                f"refusing to write into {out}: it is {'inside ' * (resolved != folder)}the input folder {folder} "
                "(choose another output folder)"
            )
    if resolved.exists() and not resolved.is_dir():
        raise OutputPathError(f"{out} exists and is not a folder")
