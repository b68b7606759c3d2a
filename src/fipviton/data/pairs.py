"""Pair lists: parsing `*_pairs*.txt` files safely.

A pair list has one pair per line, columns separated by spaces or tabs: `person garment` or, for DressCode's
root-level lists, `person garment category` (0 upper body, 1 lower body, 2 dresses). Every entry must be a
plain file name inside the split (or category) folder: names with path separators, `..`, absolute paths or
drive letters are reported as problems and never followed. Malformed lines (wrong column count, unknown
category) are problems too. Blank lines and lines starting with `#` are ignored.

A photo folder's list (`read_photo_pairs`: the in-the-wild photos, the bundled examples, a user's folder for
`fipviton try-on --data DIR --pairs LIST`) names paths inside the folder instead, with an optional category column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from fipviton.data.sample import Category, PairEntry
from fipviton.errors import DatasetError

# DressCode's numeric category column.
CATEGORY_CODES: dict[str, Category] = {
    "0": Category.UPPER_BODY,
    "1": Category.LOWER_BODY,
    "2": Category.DRESSES,
}
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass
class PairList:
    """The parsed entries of one or more pair-list files, plus every problem found while parsing.

    entries:  the valid entries, in file order.
    problems: human-readable messages `file:line: what is wrong` for refused lines.
    files:    the pair-list files read (a missing file is a problem, not an entry here).
    refused:  the number of non-blank lines refused (each has a problem).
    """

    entries: list[PairEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    refused: int = 0

    def extend(self, other: PairList) -> None:
        self.entries.extend(other.entries)
        self.problems.extend(other.problems)
        self.files.extend(other.files)
        self.refused += other.refused

    def strict(self) -> list[PairEntry]:
        """The entries, or a `DatasetError` listing the problems when there are any."""
        if self.problems:
            raise problems_error(self.problems)
        return list(self.entries)


def problems_error(problems: list[str]) -> DatasetError:
    """One `DatasetError` for a pair list's problems: the first five, and how many more."""
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return DatasetError(f"pair list problems: {'; '.join(problems[:5])}{more}")


def unsafe_name_reason(name: str) -> str | None:
    """Why `name` is not a plain file name inside a dataset folder, or None when it is one."""
    if not name:
        return "empty file name"
    if name in (".", ".."):
        return f"{name!r} is not a file name"
    if "/" in name or "\\" in name:
        return f"{name!r} contains a path separator"
    if "\x00" in name:
        return f"{name!r} contains a NUL character"
    if _DRIVE.match(name):
        return f"{name!r} is an absolute path"
    return None


def check_entry(entry: PairEntry) -> None:
    """Raise `DatasetError` unless both names of `entry` are plain file names."""
    for name in (entry.person, entry.garment):
        reason = unsafe_name_reason(name)
        if reason is not None:
            raise DatasetError(f"refusing pair entry {entry.person!r} {entry.garment!r}: {reason}")


def read_pair_list(
    path: Path,
    category: Category = Category.UPPER_BODY,
    with_category_column: bool = False,
) -> PairList:
    """Parse one pair-list file.

    Lines have 2 columns (the category is `category`), or 3 when `with_category_column` (DressCode's
    root-level lists). A missing or unreadable file gives one problem and no entries.
    """
    result = PairList()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        result.problems.append(f"{path.name}: pair list not found")
        return result
    except (OSError, UnicodeDecodeError) as exc:
        result.problems.append(f"{path.name}: pair list cannot be read ({exc})")
        return result
    result.files.append(path)
    columns = 3 if with_category_column else 2
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        where = f"{path.name}:{number}"
        if len(parts) != columns:
            result.problems.append(f"{where}: expected {columns} columns, got {len(parts)}: {line[:80]!r}")
            result.refused += 1
            continue
        reasons = [r for r in (unsafe_name_reason(parts[0]), unsafe_name_reason(parts[1])) if r is not None]
        if reasons:
            result.problems.append(f"{where}: refused entry: {'; '.join(reasons)}")
            result.refused += 1
            continue
        entry_category = category
        if with_category_column:
            code = parts[2]
            if code not in CATEGORY_CODES:
                result.problems.append(f"{where}: unknown category {code!r} (expected 0, 1 or 2)")
                result.refused += 1
                continue
            entry_category = CATEGORY_CODES[code]
        result.entries.append(PairEntry(person=parts[0], garment=parts[1], category=entry_category))
    return result


@dataclass(frozen=True)
class PhotoPair:
    """One pair of a photo folder's list: person and garment paths relative to the folder, the category."""

    person: str
    garment: str
    category: Category

    @property
    def name(self) -> str:
        """The output name: `<person stem>__<garment stem>`."""
        return f"{PurePosixPath(self.person).stem}__{PurePosixPath(self.garment).stem}"


def parse_category(text: str) -> Category:
    """A category from its name or DressCode's code (0/1/2); `DatasetError` otherwise."""
    if text in CATEGORY_CODES:
        return CATEGORY_CODES[text]
    try:
        return Category(text)
    except ValueError:
        raise DatasetError(f"unknown category {text!r} (expected upper_body, lower_body, dresses or 0/1/2)") from None


def read_photo_pairs(path: Path, default: Category, allow_subfolders: bool) -> list[PhotoPair]:
    """The pairs of a list file (`person garment [category]` per line; `default` where the category is absent);
    `DatasetError` naming every bad line (paths leaving the folder, column count, unknown category).

    allow_subfolders: names may be paths inside the folder (`person/a.jpg`, a photo folder's list); otherwise
    they must be plain file names (a dataset's list, `unsafe_name_reason`).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: pair list cannot be read ({exc})") from exc
    jobs, problems = [], []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        where = f"{path.name}:{number}"
        if len(parts) not in (2, 3):
            problems.append(f"{where}: expected 2 or 3 columns, got {len(parts)}")
            continue
        names = parts[:2]
        for name in names:
            if allow_subfolders:
                pure = PurePosixPath(name.replace("\\", "/"))
                reason = None
                if pure.is_absolute() or ".." in pure.parts or ":" in name:
                    reason = f"{name!r} leaves the data folder"
            else:
                reason = unsafe_name_reason(name)
            if reason:
                problems.append(f"{where}: {reason}")
        try:
            category = parse_category(parts[2]) if len(parts) == 3 else default
        except DatasetError as exc:
            problems.append(f"{where}: {exc}")
            continue
        jobs.append(PhotoPair(names[0], names[1], category))
    if problems:
        raise problems_error(problems)
    if not jobs:
        raise DatasetError(f"{path}: the pair list has no pairs")
    return jobs
