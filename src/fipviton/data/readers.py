"""Dataset readers: one per on-disk layout, all yielding `TryOnSample`s at native resolution.

Layouts (see `../shared/DESIGN.md` section 3):

* `viton`: VITON 256x192 in the CP-VTON+ layout. `{train,test}/{image,cloth,cloth-mask,image-parse-new,pose}`;
  `train_pairs.txt` (paired), `test_pairs.txt` (unpaired, the official test list), `test_pairs_same.txt`
  (paired). Required per pair: image, cloth, cloth-mask, image-parse-new, pose json. `image-mask` and
  `image-parse` are optional (checked when present, not loaded).
* `vitonhd`: VITON-HD 1024x768 in the HR-VITON/StableVITON layout. `{train,test}/{image,cloth,...}`;
  `test_pairs.txt` (unpaired), `test_pairs_paired.txt`, `train_pairs.txt` (paired). Required per pair:
  image and cloth only (the `vitonhd_extra` copy has few maps). Optional: cloth-mask, image-parse-v3 (or the
  original release's image-parse, same labels), openpose_json (BODY_25), image-densepose (a colour rendering:
  not decoded into body parts here), agnostic-mask, agnostic-v3.2, image-parse-agnostic-v3.2, openpose_img,
  gt_cloth_wraped_mask.
* `dresscode`: Dress Code. `{upper_body,lower_body,dresses}/{images,keypoints,label_maps,dense,...}`; the
  person is `images/X_0.jpg`, the garment `images/Y_1.jpg`. Per-category `test_pairs_paired.txt` /
  `test_pairs_unpaired.txt` (and `train_pairs.txt` when present); root-level lists with a category column
  are used for a category only when its folder has no list of its own. Required per pair: person, garment,
  keypoints json. Optional: label_maps, dense I map (+ UV npz), skeletons, image-densepose. Dress Code has no
  garment masks (garment_mask is None).

`paired` in a sample means the garment is the one the person wears; it is derived from the file names
(same id), so it is right even for mixed lists such as `vitonhd_extra/test_pairs.txt`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

from fipviton.bodyparts import densepose24_to_parts
from fipviton.data.files import FileSpec, Kind, decode_or_none
from fipviton.data.pairs import PairList, check_entry, read_pair_list
from fipviton.data.sample import Category, PairEntry, TryOnSample
from fipviton.errors import DatasetError
from fipviton.labels import DRESSCODE_LABEL_MAPS, VITON_PARSE_NEW, VITONHD_PARSE_V3, Label, map_labels

LAYOUTS = ("viton", "vitonhd", "dresscode")
# The modules whose code decides the images and label maps a reader returns: caches of decoded samples record
# their `fipviton.training.common.source_fingerprint` and are rebuilt when it changes.
READER_CODE = ("fipviton.data.readers", "fipviton.data.files", "fipviton.imageio", "fipviton.labels")
SPLITS = ("train", "test")


def default_data_root() -> Path:
    """Where the datasets are: `$FIPVITON_DATA`, else `../shared/data` next to the repository checkout.

    The default is resolved from this file's location (`<repo>/src/fipviton/data/readers.py` ->
    `<repo>/../shared/data`), so it only makes sense for a source checkout; installed copies set the variable.
    """
    env = os.environ.get("FIPVITON_DATA")
    if env:
        return Path(env)
    return (Path(__file__).resolve().parents[3] / ".." / "shared" / "data").resolve()


@runtime_checkable
class DatasetReader(Protocol):
    """One implementation per layout. Paths in pair entries are plain file names (see `data.pairs`)."""

    name: str
    root: Path

    def splits(self) -> list[str]:
        """The splits that have a pair list, e.g. ["train", "test"]."""
        ...

    def pairs(self, split: str, paired: bool = True, category: Category | None = None) -> list[PairEntry]:
        """The pair entries of a split; `DatasetError` when the list is missing or has refused lines."""
        ...

    def load(self, split: str, pair: PairEntry) -> TryOnSample:
        """One sample at native resolution; `DatasetError` for missing, corrupt or unsafe files."""
        ...


def _stem_id(name: str) -> str:
    """The sample id of a file name: `000003_0.jpg` -> `000003`, `00013_00.jpg` -> `00013_00`."""
    stem = Path(name).stem
    head, sep, tail = stem.rpartition("_")
    if sep and tail in ("0", "1", "2", "4", "5"):  # VITON / DressCode role suffixes
        return head
    return stem


class BaseReader:
    """What every reader shares: safe loading through `files()`, strict `pairs()`."""

    name = ""
    root: Path
    MAPPING: ClassVar[dict[int, Label]] = {}  # source parsing labels -> internal labels

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such dataset folder")

    # Subclasses fill these in.
    def pair_list(self, split: str, paired: bool = True, category: Category | None = None) -> PairList:
        raise NotImplementedError

    def official_list(self, split: str, category: Category | None = None) -> PairList:
        """The list `fipviton data check` checks for a split (see each reader)."""
        raise NotImplementedError

    def files(self, split: str, pair: PairEntry) -> list[FileSpec]:
        raise NotImplementedError

    def _split_dir(self, split: str) -> Path:
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
        return self.root / split

    def pairs(self, split: str, paired: bool = True, category: Category | None = None) -> list[PairEntry]:
        return self.pair_list(split, paired, category).strict()

    def _by_role(self, split: str, pair: PairEntry) -> dict[str, FileSpec]:
        check_entry(pair)
        return {spec.role: spec for spec in self.files(split, pair)}

    @property
    def label_values(self) -> frozenset[int]:
        """The source parsing labels this layout uses (values outside are problems)."""
        return frozenset(self.MAPPING)

    def load(self, split: str, pair: PairEntry) -> TryOnSample:
        specs = self._by_role(split, pair)
        try:
            return self._load(specs, pair)
        except DatasetError as exc:
            raise DatasetError(f"{self.root.name} {split} pair {pair.person} {pair.garment}: {exc}") from exc

    def _load(self, specs: dict[str, FileSpec], pair: PairEntry) -> TryOnSample:
        person = decode_or_none(specs["person"])
        garment = decode_or_none(specs["garment"])
        assert person is not None and garment is not None  # required files
        size = (person.shape[1], person.shape[0])
        mask = decode_or_none(specs.get("garment_mask"))
        if mask is not None and mask.shape != garment.shape[:2]:
            raise DatasetError(f"{specs['garment_mask'].path.name}: size {mask.shape} differs from the garment")
        parsing = None
        parse_spec = specs.get("parsing")
        raw = decode_or_none(parse_spec)
        if raw is not None and parse_spec is not None:
            if raw.shape != person.shape[:2]:
                raise DatasetError(f"{parse_spec.path.name}: size {raw.shape} differs from the person image")
            parsing = map_labels(raw, self.MAPPING)
        keypoints = decode_or_none(specs.get("keypoints"), size)
        body_parts = None
        dense = decode_or_none(specs.get("body_parts"))
        if dense is not None:
            if dense.shape != person.shape[:2]:
                raise DatasetError(f"{specs['body_parts'].path.name}: size differs from the person image")
            body_parts = densepose24_to_parts(dense)
        return TryOnSample(
            person=person,
            garment=garment,
            garment_mask=mask,
            parsing=parsing,
            keypoints=keypoints,
            body_parts=body_parts,
            category=pair.category,
            person_id=Path(pair.person).stem,
            garment_id=Path(pair.garment).stem,
            dataset=self.name,
            paired=_stem_id(pair.person) == _stem_id(pair.garment),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"


class _SplitFolderReader(BaseReader):
    """Layouts with one folder per split and pair lists at the root (VITON, VITON-HD)."""

    LISTS: ClassVar[dict[tuple[str, bool], str]] = {}
    OFFICIAL: ClassVar[dict[str, str]] = {"train": "train_pairs.txt", "test": "test_pairs.txt"}

    def splits(self) -> list[str]:
        return [s for s in SPLITS if (self.root / self.OFFICIAL[s]).is_file() and (self.root / s).is_dir()]

    def pair_list(self, split: str, paired: bool = True, category: Category | None = None) -> PairList:
        self._split_dir(split)
        name = self.LISTS.get((split, paired))
        if name is not None and (self.root / name).is_file():
            return _filter(read_pair_list(self.root / name), category)
        official = self.root / self.OFFICIAL[split]
        if paired and official.is_file():
            # Copies without a paired list (vitonhd_extra): the same-id lines of the official list.
            found = read_pair_list(official)
            found.entries = [e for e in found.entries if _stem_id(e.person) == _stem_id(e.garment)]
            return _filter(found, category)
        raise DatasetError(f"{self.root}: no {'paired' if paired else 'unpaired'} pair list for {split}")

    def official_list(self, split: str, category: Category | None = None) -> PairList:
        """The list `fipviton data check` checks: `train_pairs.txt`, `test_pairs.txt` (unpaired)."""
        self._split_dir(split)
        return _filter(read_pair_list(self.root / self.OFFICIAL[split]), category)


class VitonReader(_SplitFolderReader):
    """VITON 256x192, CP-VTON+ layout (see the module docstring)."""

    name = "viton"
    MAPPING = VITON_PARSE_NEW
    LISTS: ClassVar[dict[tuple[str, bool], str]] = {
        ("train", True): "train_pairs.txt",
        ("test", True): "test_pairs_same.txt",
        ("test", False): "test_pairs.txt",
    }

    def files(self, split: str, pair: PairEntry) -> list[FileSpec]:
        base = self._split_dir(split)
        person_stem = Path(pair.person).stem
        return [
            FileSpec("person", base / "image" / pair.person, Kind.IMAGE, True),
            FileSpec("garment", base / "cloth" / pair.garment, Kind.IMAGE, True),
            FileSpec("garment_mask", base / "cloth-mask" / pair.garment, Kind.MASK, True),
            FileSpec("parsing", base / "image-parse-new" / f"{person_stem}.png", Kind.LABELS, True, self.label_values),
            FileSpec("keypoints", base / "pose" / f"{person_stem}_keypoints.json", Kind.KEYPOINTS_COCO18, True),
            FileSpec("image_mask", base / "image-mask" / f"{person_stem}.png", Kind.MASK, False),
            FileSpec("image_parse_lip", base / "image-parse" / f"{person_stem}.png", Kind.OTHER_IMAGE, False),
        ]


class VitonHDReader(_SplitFolderReader):
    """VITON-HD 1024x768, HR-VITON/StableVITON layout (see the module docstring)."""

    name = "vitonhd"
    MAPPING = VITONHD_PARSE_V3
    LISTS: ClassVar[dict[tuple[str, bool], str]] = {
        ("train", True): "train_pairs.txt",
        ("test", True): "test_pairs_paired.txt",
        ("test", False): "test_pairs.txt",
    }

    def files(self, split: str, pair: PairEntry) -> list[FileSpec]:
        base = self._split_dir(split)
        p = Path(pair.person).stem
        g = Path(pair.garment).stem
        parse_dir = "image-parse-v3"
        if not (base / parse_dir / f"{p}.png").exists() and (base / "image-parse" / f"{p}.png").exists():
            parse_dir = "image-parse"  # the original VITON-HD release: same CIHP labels as v3
        render_dir = "openpose_img" if (base / "openpose_img").is_dir() else "openpose-img"
        return [
            FileSpec("person", base / "image" / pair.person, Kind.IMAGE, True),
            FileSpec("garment", base / "cloth" / pair.garment, Kind.IMAGE, True),
            FileSpec("garment_mask", base / "cloth-mask" / pair.garment, Kind.MASK, False),
            FileSpec("parsing", base / parse_dir / f"{p}.png", Kind.LABELS, False, self.label_values),
            FileSpec("keypoints", base / "openpose_json" / f"{p}_keypoints.json", Kind.KEYPOINTS_BODY25, False),
            FileSpec("densepose_rgb", base / "image-densepose" / pair.person, Kind.OTHER_IMAGE, False),
            FileSpec("agnostic_mask", base / "agnostic-mask" / f"{p}_mask.png", Kind.OTHER_IMAGE, False),
            FileSpec("agnostic", base / "agnostic-v3.2" / pair.person, Kind.OTHER_IMAGE, False),
            FileSpec(
                "parse_agnostic", base / "image-parse-agnostic-v3.2" / f"{p}.png", Kind.LABELS, False, self.label_values
            ),
            FileSpec("pose_rendered", base / render_dir / f"{p}_rendered.png", Kind.OTHER_IMAGE, False),
            FileSpec("warped_mask", base / "gt_cloth_wraped_mask" / f"{g}.jpg", Kind.OTHER_IMAGE, False),
        ]


class DressCodeReader(BaseReader):
    """Dress Code, original layout (see the module docstring). Splits: "test" (and "train" when listed)."""

    name = "dresscode"
    LISTS: ClassVar[dict[tuple[str, bool], str]] = {
        ("train", True): "train_pairs.txt",
        ("test", True): "test_pairs_paired.txt",
        ("test", False): "test_pairs_unpaired.txt",
    }
    MAPPING = DRESSCODE_LABEL_MAPS

    def categories(self) -> list[Category]:
        return [c for c in Category if (self.root / c.value / "images").is_dir()]

    def _list_names(self, split: str) -> list[str]:
        return [name for (s, _), name in self.LISTS.items() if s == split]

    def splits(self) -> list[str]:
        found = []
        for split in SPLITS:
            names = self._list_names(split)
            places = [self.root, *(self.root / c.value for c in self.categories())]
            if any((place / name).is_file() for place in places for name in names):
                found.append(split)
        return found

    def _category_list(self, name: str, category: Category) -> PairList:
        own = self.root / category.value / name
        if own.is_file():
            return read_pair_list(own, category=category)
        shared = self.root / name
        if shared.is_file():
            return _filter(read_pair_list(shared, with_category_column=True), category)
        return PairList()

    def _lists(self, name: str, category: Category | None) -> PairList:
        result = PairList()
        for cat in [category] if category is not None else self.categories():
            result.extend(self._category_list(name, cat))
        return result

    def pair_list(self, split: str, paired: bool = True, category: Category | None = None) -> PairList:
        self._split_dir(split)
        name = self.LISTS.get((split, paired))
        if name is None:
            raise DatasetError(f"dresscode has no unpaired list for {split}")
        result = self._lists(name, category)
        if not result.files:
            raise DatasetError(f"{self.root}: no {name} for {category.value if category else 'any category'}")
        return result

    def official_list(self, split: str, category: Category | None = None) -> PairList:
        """test: `test_pairs_unpaired.txt` (falling back to the paired list); train: `train_pairs.txt`."""
        self._split_dir(split)
        names = ["test_pairs_unpaired.txt", "test_pairs_paired.txt"] if split == "test" else ["train_pairs.txt"]
        for name in names:
            result = self._lists(name, category)
            if result.files:
                return result
        return PairList(problems=[f"no {' or '.join(names)} found"])

    def files(self, split: str, pair: PairEntry) -> list[FileSpec]:
        # Dress Code keeps both splits in one folder per category; the split only selects the list.
        base = self.root / pair.category.value
        p = _stem_id(pair.person)
        return [
            FileSpec("person", base / "images" / pair.person, Kind.IMAGE, True),
            FileSpec("garment", base / "images" / pair.garment, Kind.IMAGE, True),
            FileSpec("keypoints", base / "keypoints" / f"{p}_2.json", Kind.KEYPOINTS_DRESSCODE, True),
            FileSpec("parsing", base / "label_maps" / f"{p}_4.png", Kind.LABELS, False, self.label_values),
            FileSpec("body_parts", base / "dense" / f"{p}_5.png", Kind.DENSE_I, False, frozenset(range(25))),
            FileSpec("dense_uv", base / "dense" / f"{p}_5_uv.npz", Kind.NPZ, False),
            FileSpec("skeleton", base / "skeletons" / f"{p}_5.jpg", Kind.OTHER_IMAGE, False),
            FileSpec("densepose_rgb", base / "image-densepose" / pair.person, Kind.OTHER_IMAGE, False),
        ]


def _filter(found: PairList, category: Category | None) -> PairList:
    if category is not None:
        found.entries = [e for e in found.entries if e.category == category]
    return found


READERS: dict[str, type[BaseReader]] = {
    "viton": VitonReader,
    "vitonhd": VitonHDReader,
    "dresscode": DressCodeReader,
}


def detect_layout(root: Path) -> str:
    """The layout name of a dataset folder; `DatasetError` when it does not exist or matches no layout."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such directory")
    if any((root / c.value / "images").is_dir() for c in Category):
        return "dresscode"
    for split in SPLITS:
        base = root / split
        if (base / "pose").is_dir() or (base / "image-parse-new").is_dir():
            return "viton"
    for split in SPLITS:
        base = root / split
        if (base / "image").is_dir() and (base / "cloth").is_dir():
            return "vitonhd"
    raise DatasetError(
        f"{root}: not a known dataset layout (expected VITON {{train,test}}/pose, VITON-HD {{train,test}}/image "
        "+ cloth, or Dress Code {upper_body,lower_body,dresses}/images)"
    )


def open_dataset(root: Path) -> BaseReader:
    """The reader for the layout of `root` (see `detect_layout`)."""
    return READERS[detect_layout(root)](Path(root))


__all__ = [
    "LAYOUTS",
    "DatasetReader",
    "DressCodeReader",
    "VitonHDReader",
    "VitonReader",
    "default_data_root",
    "detect_layout",
    "open_dataset",
]
