"""`fipviton demo [--out DIR] [--no-data]`: the try-on on the bundled example pairs, with pictures to look at.

For each bundled example pair (VITON-HD test samples, CC BY-NC 4.0, see `fipviton/examples/NOTICE.md`) it
writes into DIR the try-on (`<person>__<garment>.png`) and a picture of every intermediate map
(`<person>__<garment>_maps.png`); `demo_grid.png` shows person | garment | result for all of them.

The bundled photos are half-body shots: no full-body photo may be redistributed with the package. When the
research data is present (`FIPVITON_DATA`, default `../shared/data`), the demo also runs the full-body and
in-the-wild pairs listed in `DATA_PAIRS` from it (read only, never copied into the package).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fipviton.data.sample import Category

# (folder under the data root, person, garment, category): full-body photos from the research data.
DATA_PAIRS: tuple[tuple[str, str, str, Category], ...] = (
    ("in_the_wild", "person/model_2.png", "garment/dresses/22153949_52376342_1000.jpg", Category.DRESSES),
    ("in_the_wild", "person/model_9.png", "garment/dresses/23962182_54027982_1000.jpg", Category.DRESSES),
    ("in_the_wild", "person/will1.jpg", "garment/upper_body/22790049_53294275_1000.jpg", Category.UPPER_BODY),
)


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    parser = groups[""].add_parser("demo", help="run the try-on on the bundled example pairs")
    parser.add_argument("--out", type=Path, default=Path("demo_output"), metavar="DIR", help="output folder")
    parser.add_argument(
        "--no-data", action="store_true", help="only the bundled pairs, not the full-body photos of the research data"
    )
    parser.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from fipviton.analysis.overlay import grid
    from fipviton.data.readers import default_data_root
    from fipviton.errors import FipvitonError
    from fipviton.examples import example_pairs
    from fipviton.imageio import save_image
    from fipviton.pipeline import TryOnPipeline

    jobs: list[tuple[str, Path, Path, Category]] = [
        (pair.name, pair.person, pair.garment, pair.category) for pair in example_pairs()
    ]
    root = default_data_root()
    if not args.no_data and root.is_dir():
        for folder, person, garment, category in DATA_PAIRS:
            if (root / folder / person).is_file() and (root / folder / garment).is_file():
                name = f"{folder}_{Path(person).stem}__{Path(garment).stem}"
                jobs.append((name, root / folder / person, root / folder / garment, category))
    start = time.perf_counter()
    pipeline = TryOnPipeline.from_pretrained()
    print(f"models loaded in {time.perf_counter() - start:.1f} s")
    rows = []
    failures = 0
    for i, (name, person, garment, category) in enumerate(jobs, 1):
        try:
            result = pipeline(person, garment, category)
        except FipvitonError as exc:
            print(f"[{i}/{len(jobs)}] {name}: failed: {exc}")
            failures += 1
            continue
        save_image(result.image, args.out / f"{name}.png")
        maps = result.maps()
        save_image(grid(list(maps.items()), height=384, columns=5), args.out / f"{name}_maps.png")
        rows += [("person", result.person), ("garment", result.garment), ("try-on", result.image)]
        stages = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in result.timings.items())
        print(f"[{i}/{len(jobs)}] {name} ({category.value}): {stages}")
        for warning in result.warnings:
            print(f"    warning: {warning}")
    if rows:
        save_image(grid(rows, height=384, columns=3), args.out / "demo_grid.png")
    print(f"demo: {len(jobs) - failures}/{len(jobs)} pairs tried on; results in {args.out}/ (demo_grid.png)")
    return 1 if failures else 0
