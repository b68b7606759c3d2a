"""Time the mask-aware post-processing (`fipviton.postprocess`) and its parts on the bundled example pairs.

Usage: `python benchmarks/bench_postprocess.py [--repeat N] [--threads N] [--json]`

The pipeline runs once per example pair (`fipviton/examples/pairs.txt`, VITON-HD photos at 1024x768) to get
the post-processing's inputs: the network's output, the agnostic mask, the parsing, the warped garment's mask
and the person mask. Then `postprocess` is timed on them with the default configuration, with the feathered
seam instead of the Poisson one, without the backdrop-colour rule (backdrop by the replaced clothes), and without
the backdrop restore, and so are its three blocks (`paste_back`, `identity_mask`, `restore_identity`) with the
defaults. Medians over the pairs' medians are in milliseconds, after one warm-up run per step; post-processing is
numpy and OpenCV, so torch's threads only matter for the pipeline run that prepares the inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from bench_analysis import _time  # same folder: `python benchmarks/bench_postprocess.py` puts it on sys.path

if TYPE_CHECKING:
    from fipviton.pipeline import TryOnResult
    from fipviton.postprocess import PostProcessConfig


def _time_pair(result: TryOnResult, configs: dict[str, PostProcessConfig], repeat: int) -> dict[str, float]:
    """Median milliseconds of `postprocess` under each of `configs` and of its blocks (default configuration),
    on the inputs of one pipeline result (`fipviton.pipeline.TryOnResult`)."""
    from fipviton.postprocess import PostProcessConfig, identity_mask, paste_back, postprocess, restore_identity

    person, generated, category = result.person, result.generated, result.category
    mask, parsing = result.agnostic.mask, result.agnostic.person_parsing
    warped_mask, person_mask = result.warped_mask, result.analysis.person_mask
    default = PostProcessConfig()
    steps = {
        name: lambda config=config: postprocess(
            generated, person, mask, parsing, warped_mask, category, config, person_mask
        )
        for name, config in configs.items()
    }
    pasted = paste_back(generated, person, mask, default)
    restored = identity_mask(parsing, warped_mask, mask, category, default, person_mask, person)
    steps["paste_back"] = lambda: paste_back(generated, person, mask, default)
    steps["identity_mask"] = lambda: identity_mask(parsing, warped_mask, mask, category, default, person_mask, person)
    steps["restore_identity"] = lambda: restore_identity(pasted, person, restored, default, mask)
    return {name: _time(step, repeat)["median_ms"] for name, step in steps.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    from fipviton.examples import example_pairs
    from fipviton.imageio import load_image
    from fipviton.pipeline import TryOnPipeline
    from fipviton.postprocess import PostProcessConfig

    pipeline = TryOnPipeline.from_pretrained()
    default = PostProcessConfig()
    configs = {
        "postprocess (default: poisson seam)": default,
        "postprocess, feathered seam": replace(default, blend="feather"),
        "postprocess, no backdrop-colour rule": replace(default, backdrop_tolerance=0),
        "postprocess, no backdrop restore": replace(default, restore_background=False),
    }
    per_pair: dict[str, list[float]] = {}
    sizes = set()
    for pair in example_pairs():
        person = load_image(pair.person)
        result = pipeline(person, load_image(pair.garment), category=pair.category)
        sizes.add(f"{person.shape[1]}x{person.shape[0]}")
        for name, ms in _time_pair(result, configs, args.repeat).items():
            per_pair.setdefault(name, []).append(ms)

    report = {
        "pairs": len(per_pair["paste_back"]),
        "sizes": sorted(sizes),
        "repeat": args.repeat,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "median_ms": {name: round(statistics.median(values), 1) for name, values in per_pair.items()},
        "per_pair_ms": per_pair,
    }
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{report['pairs']} example pairs ({', '.join(report['sizes'])}), {args.repeat} runs each")
    print(f"load average {report['load_average']}")
    for name, value in report["median_ms"].items():
        pairs = ", ".join(f"{v:.1f}" for v in per_pair[name])
        print(f"  {name:38s} median {value:6.1f} ms  (per pair: {pairs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
