"""Time the person analysis of one photo (parser + pose + maps) and each of its parts, on this CPU.

Usage: `python benchmarks/bench_analysis.py [PHOTO] [--repeat N] [--parser-weights DIR] [--threads N] [--json]`

Default photo: `$FIPVITON_DATA/in_the_wild/person/model_5.png` (1024x768), or a synthetic 1024x768 image
when the data is absent (then pose finds no person, and only the parser and garment-mask rows are timed).
Without shipped parser weights the parser is timed with random weights of the shipped `config.json` (the
same network and test-time ensemble, so the same time; the parsing it produces is meaningless, which the
derived map does not mind for timing), or of `ParserConfig()` (one pass) when that file is missing too.
Reports the median and the spread (25th-75th percentile, min, max) in milliseconds, after one warm-up run per
step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _stats(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000.0 for s in samples)
    q = statistics.quantiles(ms, n=4) if len(ms) > 1 else [ms[0]] * 3
    return {
        "median_ms": round(statistics.median(ms), 1),
        "p25_ms": round(q[0], 1),
        "p75_ms": round(q[2], 1),
        "min_ms": round(ms[0], 1),
        "max_ms": round(ms[-1], 1),
    }


def _time(fn: Callable[[], object], repeat: int) -> dict[str, float]:
    fn()  # warm-up: graph creation, oneDNN kernel selection
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return _stats(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", nargs="?", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--parser-weights", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    from fipviton.agnostic import build_agnostic
    from fipviton.analysis import pose as pose_module
    from fipviton.analysis.body_parts import derive_body_parts
    from fipviton.analysis.garment import garment_mask
    from fipviton.analysis.parser import DEFAULT_WEIGHTS_DIR, HumanParser, ParserConfig
    from fipviton.analysis.person import analyze_person, parse_photo
    from fipviton.analysis.pose import estimate_pose
    from fipviton.errors import NoPersonError, WeightsError
    from fipviton.imageio import load_image

    data = Path(os.environ.get("FIPVITON_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
    if args.photo is not None and not args.photo.is_file():
        parser.error(f"{args.photo}: no such file")
    photo = args.photo or data / "in_the_wild" / "person" / "model_5.png"
    if photo.is_file():
        image = load_image(photo)
        source = str(photo)
    else:
        print(f"{photo} not found (set FIPVITON_DATA): timing a synthetic image, without pose", file=sys.stderr)
        image = np.random.default_rng(0).integers(0, 255, (1024, 768, 3), dtype=np.uint8)
        source = "synthetic 1024x768 noise"
    garment_photo = data / "in_the_wild" / "garment" / "upper_body" / "22790049_53294275_1000.jpg"
    garment = load_image(garment_photo) if garment_photo.is_file() else image

    try:
        # As the pipeline loads it (`load_parser`): BatchNorm fused into the convolutions.
        human_parser = HumanParser.from_pretrained(args.parser_weights).fuse_batchnorm()
        parser_note = "trained weights"
    except WeightsError:
        # The shipped config.json (network and test-time ensemble) where it is readable: the same time.
        try:
            config = ParserConfig.from_dict(json.loads((DEFAULT_WEIGHTS_DIR / "config.json").read_text()))
            parser_note = "random weights, shipped config (same network, ensemble and time as the shipped one)"
        except (OSError, ValueError, WeightsError):
            config = ParserConfig()
            parser_note = "random weights, default config (one pass: faster than the shipped ensemble)"
        human_parser = HumanParser(config).fuse_batchnorm()

    report: dict[str, object] = {
        "photo": source,
        "size": f"{image.shape[1]}x{image.shape[0]}",
        "repeat": args.repeat,
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "parser": parser_note,
        "parser_test_time": {  # the ensemble in the weights' config.json (flip: 2x, scales 1,1.25: 2.6x the passes)
            "flip": human_parser.config.test_time_flip,
            "scales": list(human_parser.config.test_time_scales),
        },
        "steps": {},
    }
    steps: dict[str, dict[str, float]] = report["steps"]  # type: ignore[assignment]
    steps["parser"] = _time(lambda: parse_photo(human_parser, image), args.repeat)
    steps["parser_own_parse"] = _time(lambda: human_parser.parse(image), max(3, args.repeat // 4))
    try:
        result = estimate_pose(image)
    except NoPersonError:
        result = None
    if result is not None:
        steps["mediapipe_pose"] = _time(lambda: pose_module._run_pose(image), args.repeat)
        steps["face_detection"] = _time(lambda: pose_module.detect_faces(image), args.repeat)
        steps["selfie_segmentation"] = _time(lambda: pose_module._silhouette_components(image), args.repeat)
        steps["estimate_pose_total"] = _time(lambda: estimate_pose(image), args.repeat)
        parsing = human_parser.parse(image)
        steps["body_parts"] = _time(
            lambda: derive_body_parts(parsing, result.keypoints, result.person_mask), args.repeat
        )
        steps["analyze_person_total"] = _time(lambda: analyze_person(image, parser=human_parser), args.repeat)
        steps["agnostic_upper_body"] = _time(
            lambda: build_agnostic(image, parsing, result.keypoints, "upper_body"), args.repeat
        )
    steps["garment_mask"] = _time(lambda: garment_mask(garment), args.repeat)
    report["garment_size"] = f"{garment.shape[1]}x{garment.shape[0]}"

    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"photo {report['photo']} ({report['size']}), {args.repeat} runs, torch threads {report['torch_threads']}")
    print(f"load average {report['load_average']}; parser: {parser_note}")
    for name, s in steps.items():
        print(
            f"  {name:24s} median {s['median_ms']:7.1f} ms  (p25 {s['p25_ms']:.1f}, p75 {s['p75_ms']:.1f}, "
            f"min {s['min_ms']:.1f}, max {s['max_ms']:.1f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
