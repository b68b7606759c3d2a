"""`fipviton data check`: is a dataset folder complete and readable?

For each split the layout's official pair list is parsed (refused lines are problems), then every file of
every pair is checked: present, fully decoded (a truncated JPEG is a problem), label values known to the
layout's source mapping, dense maps within 0..24, keypoint json loadable with enough points, parsing and
dense maps the size of the person image. Each distinct file is checked once (test garments are shared by
several pairs), in a thread pool: decoding releases the GIL.

A pair is *complete* when all its required files are present and valid and no optional file that is present
is broken. Required files per layout (see `fipviton.data.readers`): viton: image, cloth, cloth-mask,
image-parse-new, pose json; vitonhd: image and cloth; dresscode: person, garment and keypoints json.

Groups ("splits" in the report): `train`, `test` for VITON and VITON-HD; `<split>/<category>` for Dress Code
(e.g. `test/upper_body`), because Dress Code's lists are per category. Lists checked: viton and vitonhd
`train_pairs.txt` and `test_pairs.txt` (the official unpaired test list); dresscode the per-category
`test_pairs_unpaired.txt` (or `test_pairs_paired.txt` when there is no unpaired list) and `train_pairs.txt`.

Nothing is ever written into the dataset folder.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fipviton.data.files import DRESSCODE_KEYPOINT_FRAME, FileSpec, Kind, decode
from fipviton.data.pairs import PairList
from fipviton.data.readers import BaseReader, DressCodeReader, detect_layout, open_dataset
from fipviton.errors import DatasetError, ImageInputError

MAX_PROBLEMS_PER_SPLIT = 1000  # in the report; the counts stay exact


@dataclass
class FileResult:
    """The outcome of checking one file: present, an error message (None when valid), decoded (H, W)."""

    present: bool
    error: str | None = None
    shape: tuple[int, int] | None = None


@dataclass
class SplitReport:
    """One group of the report (a split, or split/category for Dress Code)."""

    lists: list[str] = field(default_factory=list)
    pairs: int = 0
    complete: int = 0
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    maps: dict[str, int] = field(default_factory=dict)  # role -> number of pairs where that file is present

    def add_problem(self, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS_PER_SPLIT:
            self.problems.append(message)

    def as_dict(self) -> dict[str, object]:
        return {
            "lists": self.lists,
            "pairs": self.pairs,
            "complete": self.complete,
            "problem_count": self.problem_count,
            "problems": self.problems,
            "maps_present": self.maps,
        }


@dataclass
class CheckReport:
    layout: str
    root: Path
    splits: dict[str, SplitReport]
    required: list[str]
    files_checked: int
    seconds: float
    problems: list[str] = field(default_factory=list)  # dataset-level problems (no pair list at all)

    @property
    def ok(self) -> bool:
        return not self.problems and all(s.problem_count == 0 for s in self.splits.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "layout": self.layout,
            "root": str(self.root),
            "ok": self.ok,
            "lists_checked": [name for s in self.splits.values() for name in s.lists],
            "required_files": self.required,
            "splits": {name: s.as_dict() for name, s in self.splits.items()},
            "problems": self.problems,
            "files_checked": self.files_checked,
            "seconds": round(self.seconds, 2),
        }


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def check_file(spec: FileSpec) -> FileResult:
    """Check one file fully (see the module docstring); never raises for bad data."""
    if not spec.path.is_file():
        return FileResult(present=spec.path.exists(), error="no such file" if not spec.path.exists() else "not a file")
    try:
        frame = (int(DRESSCODE_KEYPOINT_FRAME[0]), int(DRESSCODE_KEYPOINT_FRAME[1]))
        array = decode(spec, frame)
    except (DatasetError, ImageInputError) as exc:
        message = str(exc)
        prefix = f"{spec.path.name}: "
        return FileResult(present=True, error=message.removeprefix(prefix))
    except (OSError, ValueError, MemoryError) as exc:  # anything else a broken file can raise while decoding
        return FileResult(present=True, error=f"cannot be read ({type(exc).__name__}: {exc})")
    shape = None
    if spec.kind in (Kind.IMAGE, Kind.OTHER_IMAGE, Kind.MASK, Kind.LABELS, Kind.DENSE_I):
        shape = (int(array.shape[0]), int(array.shape[1]))
    if spec.kind in (Kind.LABELS, Kind.DENSE_I) and spec.labels is not None:
        counts = np.bincount(array.ravel(), minlength=256)
        unknown = [int(v) for v in np.flatnonzero(counts) if int(v) not in spec.labels]
        if unknown:
            return FileResult(present=True, error=f"label values {unknown} are not in the layout's label set")
    return FileResult(present=True, shape=shape)


def _groups(reader: BaseReader, split: str) -> list[tuple[str, PairList]]:
    """(group name, PairList) for one split: one group, or one per category for Dress Code."""
    if isinstance(reader, DressCodeReader):
        return [(f"{split}/{c.value}", reader.official_list(split, c)) for c in reader.categories()]
    return [(split, reader.official_list(split))]


def _pair_problems(specs: list[FileSpec], results: dict[tuple[Path, Kind], FileResult], root: Path) -> list[str]:
    """The problems of one pair: broken required or present optional files, maps not the person's size."""
    problems = []
    by_role = {spec.role: results[(spec.path, spec.kind)] for spec in specs}
    person_shape = by_role["person"].shape if "person" in by_role else None
    for spec in specs:
        result = by_role[spec.role]
        if result.error is not None and (spec.required or result.present):
            problems.append(f"{spec.role} {_relative(spec.path, root)}: {result.error}")
        elif spec.role in ("parsing", "body_parts") and result.shape and person_shape and result.shape != person_shape:
            problems.append(
                f"{spec.role} {_relative(spec.path, root)}: size {result.shape[::-1]} differs from the person "
                f"image {person_shape[::-1]}"
            )
    return problems


def check_dataset(
    root: Path,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Check a dataset folder. Raises `DatasetError` when `root` is missing or matches no layout.

    workers:  threads decoding files (default: 2 x CPU count, at most 8).
    progress: called as progress(done, total) while files are checked.
    """
    started = time.perf_counter()
    root = Path(root)
    layout = detect_layout(root)
    reader = open_dataset(root)
    report = CheckReport(layout=layout, root=root, splits={}, required=[], files_checked=0, seconds=0.0)
    # group -> [(where, entry, specs)]
    plan: dict[str, list[tuple[str, list[FileSpec]]]] = {}
    unique: dict[tuple[Path, Kind], FileSpec] = {}
    required_roles: list[str] = []
    splits = reader.splits()
    if not splits:
        report.problems.append("no pair list found (expected train_pairs.txt / test_pairs*.txt)")
    for split in splits:
        for group, pair_list in _groups(reader, split):
            split_report = SplitReport(lists=[_relative(p, root) for p in pair_list.files])
            report.splits[group] = split_report
            for problem in pair_list.problems:
                split_report.add_problem(problem)
            if not pair_list.entries and not pair_list.problems:
                split_report.add_problem("the pair list has no entries")
            split_report.pairs = len(pair_list.entries) + pair_list.refused
            items = []
            for entry in pair_list.entries:
                specs = reader.files(split, entry)
                for spec in specs:
                    unique.setdefault((spec.path, spec.kind), spec)
                    if spec.required and spec.role not in required_roles:
                        required_roles.append(spec.role)
                items.append((f"{entry.person} {entry.garment}", specs))
            plan[group] = items
    report.required = required_roles

    keys = list(unique)
    results: dict[tuple[Path, Kind], FileResult] = {}
    workers = workers or min(8, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        checked = pool.map(check_file, [unique[k] for k in keys])
        for done, (key, result) in enumerate(zip(keys, checked, strict=True), 1):
            results[key] = result
            if progress is not None and (done % 500 == 0 or done == len(keys)):
                progress(done, len(keys))
    report.files_checked = sum(1 for r in results.values() if r.present)

    for group, items in plan.items():
        split_report = report.splits[group]
        for where, specs in items:
            problems = _pair_problems(specs, results, root)
            for spec in specs:
                if results[(spec.path, spec.kind)].present:
                    split_report.maps[spec.role] = split_report.maps.get(spec.role, 0) + 1
            if problems:
                for problem in problems:
                    split_report.add_problem(f"pair {where}: {problem}")
            else:
                split_report.complete += 1
    report.seconds = time.perf_counter() - started
    return report


def format_report(report: CheckReport, max_problems: int = 20) -> str:
    """A human summary: layout, per-split counts, the first problems of each split."""
    lines = [f"{report.root}: layout {report.layout}"]
    lines.append(f"required files per pair: {', '.join(report.required) or '-'}")
    for problem in report.problems:
        lines.append(f"  problem: {problem}")
    for name, split in report.splits.items():
        status = "complete" if split.problem_count == 0 else f"{split.problem_count} problem(s)"
        lists = ", ".join(split.lists) or "no list"
        lines.append(f"{name}: {split.complete}/{split.pairs} pairs complete ({lists}) - {status}")
        optional = {k: v for k, v in split.maps.items() if k not in report.required}
        if optional:
            lines.append("  optional maps present: " + ", ".join(f"{k} {v}" for k, v in sorted(optional.items())))
        for problem in split.problems[:max_problems]:
            lines.append(f"  - {problem}")
        if split.problem_count > max_problems:
            lines.append(f"  ... and {split.problem_count - max_problems} more (use --json for up to 1000)")
    verdict = "OK" if report.ok else "PROBLEMS FOUND"
    lines.append(f"{verdict}: {report.files_checked} files checked in {report.seconds:.1f} s")
    return "\n".join(lines)
