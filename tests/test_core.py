"""Label, keypoint, mask-component and image-input basics."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fipviton.errors import ImageInputError, OutputPathError
from fipviton.imageio import check_output_folder, load_image
from fipviton.keypoints import BODY25_TO_INTERNAL, Keypoint, flip_keypoints, from_flat
from fipviton.labels import VITON_PARSE_NEW, Label, flip_labels, has_label, label_table, map_labels
from fipviton.regions import components_touching, components_touching_border, mask_box


def test_flip_swaps_left_and_right_labels() -> None:
    parsing = np.zeros((4, 6), dtype=np.uint8)
    parsing[:, 0] = Label.LEFT_ARM
    flipped = flip_labels(parsing)
    assert (flipped[:, -1] == Label.RIGHT_ARM).all()
    assert (flip_labels(flipped) == parsing).all()


def test_viton_neck_maps_to_neck() -> None:
    assert map_labels(np.array([[20, 13, 5]], dtype=np.uint8), VITON_PARSE_NEW).tolist() == [
        [Label.NECK, Label.FACE, Label.UPPER]
    ]


def test_label_table_and_has_label() -> None:
    parsing = np.array(
        [[Label.FACE, Label.NECK, Label.UPPER], [Label.BACKGROUND, Label.LEFT_ARM, Label.FACE]], np.uint8
    )
    table = label_table((Label.FACE, Label.LEFT_ARM))
    assert table.shape == (256,) and table.dtype == np.uint8 and table.sum() == 2 * 255
    assert cv2.LUT(parsing, table).tolist() == [[255, 0, 0], [0, 255, 255]]
    assert has_label(parsing, {Label.FACE, Label.LEFT_ARM}).tolist() == [[True, False, False], [False, True, True]]
    assert not has_label(parsing, ()).any()


def test_components_touching_the_border_or_seeds() -> None:
    mask = np.zeros((8, 8), np.uint8)
    mask[0:2, 0:2] = 1  # touches the border
    mask[3:5, 3:5] = 1  # enclosed
    mask[6:8, 5] = 1  # touches the bottom border
    count, labels = cv2.connectedComponents(mask, connectivity=4)
    border = components_touching_border(labels, count)
    assert border.dtype == bool and border.sum() == 4 + 2 and not border[3:5, 3:5].any()
    assert np.array_equal(components_touching_border(labels), border)  # count computed when not given
    seeds = np.zeros((8, 8), bool)
    seeds[4, 4] = seeds[7, 7] = True  # one pixel of the enclosed square, one outside every component
    touching = components_touching(labels, seeds, count)
    assert touching.sum() == 4 and touching[3:5, 3:5].all()


def test_mask_box_grows_within_the_picture() -> None:
    mask = np.zeros((10, 8), bool)
    assert mask_box(mask, 3) is None
    mask[1:4, 5:7] = True
    assert mask_box(mask) == (slice(1, 4), slice(5, 7))
    assert mask_box(mask, 2) == (slice(0, 6), slice(3, 9))  # cut at 0; slicing stops at the edge
    assert mask[mask_box(mask, 2)].sum() == mask.sum()
    assert mask_box(mask.astype(np.uint8) * 255) == (slice(1, 4), slice(5, 7))


def test_keypoint_flip_swaps_sides() -> None:
    kp = np.zeros((18, 3), dtype=np.float32)
    kp[Keypoint.RIGHT_WRIST] = [10, 20, 0.9]
    out = flip_keypoints(kp, width=100)
    assert out[Keypoint.LEFT_WRIST].tolist() == pytest.approx([89, 20, 0.9])
    assert out[Keypoint.RIGHT_WRIST, 2] == 0


def test_body25_skips_midhip() -> None:
    flat = np.arange(75, dtype=np.float32)
    flat[2::3] = 1.0
    kp = from_flat(flat, BODY25_TO_INTERNAL)
    assert kp[Keypoint.RIGHT_HIP, 0] == 9 * 3  # BODY_25 index 9, not 8 (MidHip)


def _encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F"])
def test_every_mode_becomes_rgb(mode: str) -> None:
    image = Image.new("RGB", (64, 48), (200, 30, 30)).convert(mode) if mode != "I;16" else Image.new(mode, (64, 48))
    fmt = "TIFF" if mode in ("CMYK", "F", "I") else "PNG"
    array = load_image(_encode(image, fmt))
    assert array.shape == (48, 64, 3) and array.dtype == np.uint8


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (80, 40), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif)
    assert load_image(buf.getvalue()).shape == (80, 40, 3)


def test_bad_inputs_get_one_clear_error(tmp_path: Path) -> None:
    jpeg = _encode(Image.new("RGB", (200, 200), (1, 2, 3)), "JPEG")
    cases = {
        "truncated": jpeg[: len(jpeg) // 2],
        "not an image": b"hello, this is text",
        "tiny": _encode(Image.new("RGB", (8, 8))),
    }
    for label, data in cases.items():
        with pytest.raises(ImageInputError):
            load_image(data, name=label)
    with pytest.raises(ImageInputError, match="no such file"):
        load_image(tmp_path / "missing.png")


def test_decompression_bomb_is_refused() -> None:
    bomb = _encode(Image.new("1", (10_000, 8_000)))  # 80 MP, a few KB on disk
    with pytest.raises(ImageInputError, match="too many pixels"):
        load_image(bomb)


def test_output_folder_never_mixes_with_inputs(tmp_path: Path) -> None:
    data = tmp_path / "dataset"
    (data / "test").mkdir(parents=True)
    photo = tmp_path / "photos" / "me.jpg"
    photo.parent.mkdir()
    photo.write_bytes(b"x")
    check_output_folder(tmp_path / "results", [data, photo])  # a sibling folder is fine
    check_output_folder(photo.parent / "maps", [photo], allow_inside=True)  # below a photo's folder, if allowed
    for out, inputs in [(data, [data]), (data / "test" / "out", [data]), (photo.parent, [photo])]:
        with pytest.raises(OutputPathError, match="refusing to write"):
            check_output_folder(out, inputs)
    with pytest.raises(OutputPathError, match="not a folder"):
        check_output_folder(photo, [data])


def test_cache_files_are_replaced_whole_and_meta_comes_last(tmp_path: Path) -> None:
    from fipviton.training.common import cache_is_current, write_cache

    out = tmp_path / "cache"
    wanted = {"version": 1, "count": 2}
    assert not cache_is_current(out / "meta.json", wanted)
    first = np.arange(6, dtype=np.uint8).reshape(2, 3)
    write_cache(out, {"a": first}, wanted | {"size": [3]})
    # A reader that memory-mapped the old file keeps reading it whole while the cache is rebuilt.
    mapped = np.load(out / "a.npy", mmap_mode="r")
    write_cache(out, {"a": first + 10}, wanted | {"size": [3]})
    assert np.array_equal(mapped, first)
    assert np.array_equal(np.load(out / "a.npy"), first + 10)
    assert cache_is_current(out / "meta.json", wanted)
    assert sorted(p.name for p in out.iterdir()) == ["a.npy", "meta.json"]  # no temporary files left


def test_source_fingerprint_follows_the_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fipviton.training.common import source_fingerprint

    module = tmp_path / "fingerprinted_probe.py"
    module.write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = source_fingerprint("fingerprinted_probe", "fipviton.labels")
    assert first == source_fingerprint("fipviton.labels", "fingerprinted_probe")  # order does not matter
    module.write_text("VALUE = 2\n")  # an edit to the code that filled a cache makes it stale
    assert source_fingerprint("fingerprinted_probe", "fipviton.labels") != first
    assert source_fingerprint("fipviton.labels") != first
    # Docstrings, comments, annotations and layout do not change what the code computes: no rebuild for them.
    module.write_text(
        '"""A probe."""\n\nfrom dataclasses import dataclass\n\n\n@dataclass\nclass Box:\n    size: int = 1\n\n\n'
        "def double(x):\n    return 2 * x\n"
    )
    plain = source_fingerprint("fingerprinted_probe")
    module.write_text(
        '"""The same probe, documented."""\n\nfrom dataclasses import dataclass\n\n\n@dataclass\nclass Box:\n'
        '    """A box."""\n\n    size: float = 1  # the side\n\n\n'
        'def double(x: float) -> float:\n    """Twice x."""\n    return 2 * (\n        x\n    )\n'
    )
    assert source_fingerprint("fingerprinted_probe") == plain
    module.write_text(
        '"""A probe."""\n\nfrom dataclasses import dataclass\n\n\n@dataclass\nclass Box:\n    size: int = 2\n\n\n'
        "def double(x):\n    return 2 * x\n"
    )
    assert source_fingerprint("fingerprinted_probe") != plain  # a default changed
    module.write_text(
        '"""A probe."""\n\nfrom dataclasses import dataclass\n\n\n@dataclass\nclass Box:\n    size: int = 1\n\n\n'
        "def double(x):\n    return 3 * x\n"
    )
    assert source_fingerprint("fingerprinted_probe") != plain  # the computation changed
    with pytest.raises(ValueError, match="no source"):
        source_fingerprint("fipviton.no_such_module")
