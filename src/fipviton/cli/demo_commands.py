"""`fipviton demo [--out DIR]`: run what the pipeline has on the bundled example pairs and write pictures.

Today that is the analysis stage (keypoints, parsing, body-part map, person mask, garment mask) and the
agnostic construction, through the same code as `fipviton analyze`: one sub-folder per example pair, each
with an overlay grid. The try-on stages join here when they ship.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    parser = groups[""].add_parser("demo", help="run the pipeline on the bundled example pairs")
    parser.add_argument("--out", type=Path, default=Path("demo_output"), metavar="DIR", help="output folder")
    parser.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from fipviton.cli.analyze_commands import run_analyze
    from fipviton.examples import example_pairs

    pairs = example_pairs()
    for i, pair in enumerate(pairs, 1):
        print(f"[{i}/{len(pairs)}] {pair.person.name} + {pair.garment.name} ({pair.category.value})")
        run_analyze(
            argparse.Namespace(
                person=pair.person,
                garment=pair.garment,
                out=args.out / pair.name,
                category=pair.category.value,
                parser_weights=None,
            )
        )
    print(f"demo: {len(pairs)} example pairs analysed; overlays in {args.out}/*/*_overlay.png")
    return 0
