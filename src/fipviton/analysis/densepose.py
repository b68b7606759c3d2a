"""DensePose maps as the datasets ship them: reading, decoding the colour renderings, rendering our maps.

Two forms exist in the data:

- DressCode `dense/*_5.png`: the fine-part index map I (uint8, 0 = background, 1..24 the DensePose parts),
  mapped to our `BodyPart`s with `fipviton.bodyparts.densepose24_to_parts`.
- VITON-HD and DressCode `image-densepose/*.jpg` (the StableVITON / IDM-VTON map): a colour rendering of the
  same index map. **Verified on the data**: it is detectron2's fine-segmentation rendering, i.e. the index
  scaled to 0..255 (`I * 255 / 24`, truncated) through OpenCV's PARULA colormap, with the background black.
  On DressCode ids that have both maps (dresses 020714/020715/020718, upper_body 000000-000002, lower_body
  013563-013565, 013567), the median colour of every part region (eroded 3 px) equals the colormap entry of
  its index within JPEG noise (<= 3 levels per channel) for 1..24. A few parts of some samples disagree
  between the two maps (e.g. left/right lower legs in one dresses sample), because the two files come from
  separate DensePose runs, not because the colormap differs.

Decoding a JPEG rendering is a nearest-colour match against the 24 part colours, weighted towards luma
(which rises strictly with the index and survives JPEG's chroma subsampling); dark pixels become background,
and specks left by JPEG halos at part borders take the label of the nearest larger region. Agreement of
decoded `image-densepose` with `dense` on the 10 DressCode ids with both: 88 % of body pixels.

`render_parts` draws our `BodyPart` maps in the same colour convention (each part gets the colour of one of
its DensePose indices), so a map of ours and a dataset's `image-densepose` look alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fipviton.bodyparts import DENSEPOSE24_TO_PART, NUM_BODY_PARTS, BodyPart, densepose24_to_parts
from fipviton.imageio import load_image, load_label_map

if TYPE_CHECKING:
    from fipviton.data import DatasetReader, PairEntry

NUM_DENSEPOSE_PARTS = 24


def _parula_table() -> np.ndarray:
    """(25, 3) uint8 RGB: row i is the rendering colour of DensePose index i; row 0 (background) is black."""
    values = (np.arange(NUM_DENSEPOSE_PARTS + 1) * (255.0 / NUM_DENSEPOSE_PARTS)).astype(np.uint8)
    bgr = cv2.applyColorMap(values.reshape(-1, 1), cv2.COLORMAP_PARULA)[:, 0]
    rgb = bgr[:, ::-1].copy()
    rgb[0] = 0
    return rgb


DENSEPOSE_COLORS: np.ndarray = _parula_table()

# One DensePose index per body part of ours, used to pick its rendering colour (the front surface, or the
# first index of the part).
_PART_TO_INDEX: dict[int, int] = {}
for _index, _part in sorted(DENSEPOSE24_TO_PART.items()):
    _PART_TO_INDEX.setdefault(int(_part), _index)
PART_COLORS: np.ndarray = np.stack([DENSEPOSE_COLORS[_PART_TO_INDEX[p]] for p in range(NUM_BODY_PARTS)])

# Dark pixels (max channel below this) decode as background: the darkest part colour (index 1) has a blue
# channel of 163, JPEG noise on black stays far below 60.
_BACKGROUND_MAX = 60


def _to_ycrcb(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) RGB values (any int dtype, 0..255) as float32 (N, 3) Y, Cr, Cb."""
    pixels = rgb.astype(np.uint8).reshape(-1, 1, 3)
    return cv2.cvtColor(pixels, cv2.COLOR_RGB2YCrCb).reshape(-1, 3).astype(np.float32)


_TABLE_YCC = _to_ycrcb(DENSEPOSE_COLORS[1:])
_YCC_WEIGHTS = np.array([1.0, 0.05, 0.05], np.float32)


def encode_index(index_map: np.ndarray) -> np.ndarray:
    """Colour rendering (H, W, 3) uint8 RGB of a DensePose index map (H, W) with values 0..24."""
    return DENSEPOSE_COLORS[np.clip(index_map, 0, NUM_DENSEPOSE_PARTS).astype(np.intp)]


def decode_colors(image: np.ndarray, clean: bool = True) -> np.ndarray:
    """DensePose index map (H, W) uint8 in 0..24 from a colour rendering (H, W, 3) uint8 RGB (JPEG or PNG).

    Each pixel takes the index of the nearest rendering colour (luma first, chroma breaking ties; see
    `_YCC_WEIGHTS`); dark pixels are background.
    With `clean`, specks are removed (`_remove_specks`): at a JPEG border between two parts the blurred
    colour can be nearest to a third part's colour (torso/upper-leg borders decode as feet otherwise).
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"decode_colors expects (H, W, 3), got {image.shape}")
    pixels = image.reshape(-1, 3).astype(np.int32)
    # Quantise colours first: renderings have few distinct colours, so the search runs on the unique ones.
    codes = (pixels[:, 0] << 16) | (pixels[:, 1] << 8) | pixels[:, 2]
    unique, inverse = np.unique(codes, return_inverse=True)
    colors = np.stack([(unique >> 16) & 255, (unique >> 8) & 255, unique & 255], axis=1)
    # Match mostly on luma: the PARULA entries' luma rises strictly with the index (steps of 4-10 levels),
    # and JPEG keeps luma at full resolution while it halves the chroma (4:2:0), which smears part borders.
    ycc = _to_ycrcb(colors)
    dist = (((ycc[:, None, :] - _TABLE_YCC[None, :, :]) ** 2) * _YCC_WEIGHTS).sum(axis=2)
    index = (1 + dist.argmin(axis=1)).astype(np.uint8)
    index[colors.max(axis=1) < _BACKGROUND_MAX] = 0
    decoded = index[inverse.reshape(-1)].reshape(image.shape[:2])
    return _remove_specks(decoded) if clean else decoded


def _remove_specks(index_map: np.ndarray) -> np.ndarray:
    """Give every connected region smaller than ~0.03 % of the image the label of the nearest larger region."""
    h, w = index_map.shape
    min_area = max(16, int(3e-4 * h * w))
    speck = np.zeros((h, w), dtype=bool)
    for value in np.unique(index_map):
        _, labels, stats, _ = cv2.connectedComponentsWithStats((index_map == value).astype(np.uint8), 8)
        small = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] < min_area) + 1
        if len(small):
            speck |= np.isin(labels, small)
    if not speck.any() or speck.all():
        return index_map
    # Nearest non-speck pixel: a distance transform whose labels are the zero (kept) pixels.
    _, nearest = cv2.distanceTransformWithLabels(speck.astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    kept = ~speck
    ys, xs = np.nonzero(kept)
    # `nearest` numbers the kept pixels 1..N in row-major order.
    order = np.zeros(len(ys) + 1, dtype=index_map.dtype)
    order[1:] = index_map[ys, xs]
    out = index_map.copy()
    out[speck] = order[nearest[speck]]
    return out


def decode_parts(image: np.ndarray) -> np.ndarray:
    """Our body-part map (H, W) uint8 (`BodyPart`) from a DensePose colour rendering (H, W, 3) uint8 RGB."""
    return densepose24_to_parts(decode_colors(image))


def render_parts(parts: np.ndarray) -> np.ndarray:
    """Colour picture (H, W, 3) uint8 RGB of a body-part map (H, W), in the `image-densepose` convention."""
    return PART_COLORS[np.clip(parts, 0, NUM_BODY_PARTS - 1).astype(np.intp)]


def read_dense_index(path: str | Path) -> np.ndarray:
    """Body-part map (H, W) uint8 from a DressCode `dense/*_5.png` fine-part index map (values 0..24)."""
    index_map = load_label_map(path, name=Path(path).name)
    if int(index_map.max(initial=0)) > NUM_DENSEPOSE_PARTS:
        raise ValueError(f"{Path(path).name}: values above {NUM_DENSEPOSE_PARTS}: not a DensePose index map")
    return densepose24_to_parts(index_map)


def read_densepose_rgb(path: str | Path) -> np.ndarray:
    """Body-part map (H, W) uint8 from an `image-densepose/*.jpg` colour rendering (VITON-HD, DressCode)."""
    return decode_parts(load_image(path, name=Path(path).name))


def read_dataset_body_parts(reader: DatasetReader, split: str, pair: PairEntry) -> np.ndarray | None:
    """The dataset's own body-part map of a pair's person, or None: DressCode `dense/*_5.png` (index map) when
    present, else an `image-densepose` colour rendering (VITON-HD, DressCode)."""
    specs = {spec.role: spec for spec in reader.files(split, pair)}
    dense, rendering = specs.get("body_parts"), specs.get("densepose_rgb")
    if dense is not None and dense.path.is_file():
        return read_dense_index(dense.path)
    if rendering is not None and rendering.path.is_file():
        return read_densepose_rgb(rendering.path)
    return None


def part_iou(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """IoU per body part (parts present in either map) and their mean under "mean"; maps (H, W) uint8."""
    out: dict[str, float] = {}
    for part in BodyPart:
        if part == BodyPart.BACKGROUND:
            continue
        p, t = pred == part, target == part
        union = int((p | t).sum())
        if union:
            out[part.name.lower()] = float((p & t).sum() / union)
    values = list(out.values())
    out["mean"] = float(np.mean(values)) if values else float("nan")
    return out
