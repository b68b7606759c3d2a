"""`fipviton try-on`: one pair, or every pair of a list, through the end-to-end pipeline.

One pair:   `fipviton try-on PERSON GARMENT -o OUT.png [--category upper_body|lower_body|dresses] [--grid]`
A list:     `fipviton try-on --data DIR --pairs FILE --out DIR [--split test] [--grid] [--limit N]`

In list mode each line of FILE is `PERSON GARMENT [CATEGORY]` (spaces or tabs; CATEGORY a name such as
`dresses` or DressCode's code 0/1/2; default `--category`):

- when DIR is a dataset (VITON, VITON-HD, Dress Code layouts), the names are the dataset's file names of the
  split and the dataset's own maps (parsing, keypoints, garment mask) are used, the way `fipviton eval` does;
- otherwise the names are paths of photos relative to DIR (sub-folders allowed, nothing outside DIR), and
  everything is estimated from the photos.

Outputs are `OUT/<person>__<garment>.png` (plus `..._grid.png` with --grid: person | garment | result). Each is
written atomically; outputs that already exist are skipped, so a killed run started again finishes the list
with nothing lost or done twice. OUT may not be DIR or inside it. A failing pair is reported and the run goes
on; the failures are listed at the end and the exit code is 1 when there were any.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from fipviton.cli._postprocess_option import add_postprocess_option, postprocess_config
from fipviton.cli._usage import UsageError
from fipviton.data.sample import Category
from fipviton.errors import DatasetError, FipvitonError, OutputPathError

if TYPE_CHECKING:
    import numpy as np

    from fipviton.pipeline import TryOnPipeline, TryOnResult


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    parser = groups[""].add_parser(
        "try-on",
        help="dress a person in a garment: one pair, or every pair of a list (resumable)",
        description=(
            "Run the try-on pipeline (analysis, agnostic, warp, single-step try-on, post-processing) on one "
            "person + garment pair, or with --data/--pairs/--out on every pair of a list."
        ),
    )
    parser.add_argument("person", type=Path, nargs="?", metavar="PERSON", help="photo of a person (one pair)")
    parser.add_argument("garment", type=Path, nargs="?", metavar="GARMENT", help="photo of a garment (one pair)")
    parser.add_argument("-o", "--out", type=Path, metavar="PATH", help="output PNG (one pair) or folder (list)")
    parser.add_argument(
        "--category",
        default=Category.UPPER_BODY.value,
        choices=[c.value for c in Category],
        help="garment category (default: upper_body; in a list, a third column overrides it)",
    )
    parser.add_argument("--data", type=Path, metavar="DIR", help="list mode: dataset or photo folder")
    parser.add_argument(
        "--pairs", type=Path, metavar="FILE", help="list mode: pair list (relative to DIR if not found)"
    )
    parser.add_argument("--split", default="test", choices=["train", "test"], help="dataset split (default: test)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="list mode: only the first N pairs")
    parser.add_argument("--grid", action="store_true", help="also write person | garment | result side by side")
    parser.add_argument("--steps", type=int, default=1, help="try-on network calls (1: single step; N: DDIM)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (results are deterministic)")
    parser.add_argument("--overwrite", action="store_true", help="one pair: replace an existing output file")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    parser.add_argument(
        "--no-framing",
        dest="framing",
        action="store_false",
        help="run the networks on the photos as they are, not on a person crop and a garment framed like the "
        "training photos (see fipviton.framing)",
    )
    parser.add_argument(
        "--sharp-garment",
        action="store_true",
        help="keep the warped garment's fine detail (stripes, prints) that the try-on network blurs: crisper "
        "textures, a little less faithful garment edges (see fipviton.pipeline.TryOnPipeline)",
    )
    parser.add_argument(
        "--mirror-average",
        action="store_true",
        help="run the try-on network on the photo and on its mirror image and average the two: twice its time, "
        "a little higher SSIM, a little softer picture (see fipviton.pipeline.TryOnPipeline)",
    )
    add_postprocess_option(parser, "to switch a part of it off or tune it")
    for name in ("parser", "warp", "tryon"):
        parser.add_argument(
            f"--{name}-weights", type=Path, default=None, metavar="DIR", help=f"{name} weights (default: shipped)"
        )
    parser.set_defaults(func=run_try_on)


def _load_pipeline(args: argparse.Namespace) -> TryOnPipeline:
    from fipviton.pipeline import TryOnPipeline

    return TryOnPipeline.from_pretrained(
        parser=args.parser_weights,
        warp=args.warp_weights,
        tryon=args.tryon_weights,
        steps=args.steps,
        framing=args.framing,
        sharp_garment=args.sharp_garment,
        mirror_average=args.mirror_average,
        postprocess=postprocess_config(args.postprocess),
    )


def result_grid(result: TryOnResult) -> np.ndarray:
    """person | garment | result, one RGB uint8 picture at the person's height (at most 1024 px)."""
    from fipviton.analysis.overlay import grid

    height = min(1024, result.person.shape[0])
    panels = [("person", result.person), ("garment", result.garment), ("try-on", result.image)]
    return grid(panels, height=height, columns=3)


def run_try_on(args: argparse.Namespace) -> int:
    if args.steps < 1:
        raise UsageError("--steps must be >= 1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    list_mode = args.data is not None or args.pairs is not None
    if list_mode:
        if args.person is not None or args.garment is not None:
            raise UsageError("give either PERSON GARMENT or --data/--pairs, not both")
        if args.data is None or args.pairs is None or args.out is None:
            raise UsageError("list mode needs --data DIR, --pairs FILE and --out DIR")
        return _run_list(args)
    if args.person is None or args.garment is None or args.out is None:
        raise UsageError("give PERSON GARMENT -o OUT.png (or --data/--pairs/--out for a list)")
    return _run_one(args)


def _run_one(args: argparse.Namespace) -> int:
    from fipviton.imageio import save_image

    out: Path = args.out
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise OutputPathError(f"{out}: the output must be a .png or .jpg file")
    for source in (args.person, args.garment):
        if out.resolve() == source.resolve():
            raise OutputPathError(f"refusing to overwrite the input {source}")
    if out.exists() and not args.overwrite:
        raise OutputPathError(f"{out} exists; pass --overwrite to replace it")
    pipeline = _load_pipeline(args)
    result = pipeline(args.person, args.garment, category=args.category, seed=args.seed)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.grid:
        save_image(result_grid(result), out.with_name(f"{out.stem}_grid.png"))
    save_image(result.image, out)
    print(f"wrote {out} ({result.image.shape[1]}x{result.image.shape[0]}, {result.timings['total']:.2f} s)")
    return 0


def _run_list(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from fipviton.data.pairs import read_photo_pairs
    from fipviton.data.readers import open_dataset
    from fipviton.data.sample import PairEntry
    from fipviton.imageio import check_output_folder, save_image

    data: Path = args.data
    if not data.is_dir():
        raise DatasetError(f"{data}: no such folder")
    pairs_file: Path = args.pairs if args.pairs.is_file() else data / args.pairs
    if not pairs_file.is_file():
        raise DatasetError(f"{args.pairs}: pair list not found (also looked in {data})")
    out: Path = args.out
    check_output_folder(out, [data])
    try:
        reader = open_dataset(data)  # DatasetError for a folder of no known layout: a photo folder
    except DatasetError:
        reader = None
    jobs = read_photo_pairs(pairs_file, Category(args.category), allow_subfolders=reader is None)
    if args.limit is not None:
        jobs = jobs[: args.limit]
    names = [job.name for job in jobs]
    if len(set(names)) != len(names):
        raise DatasetError(f"{pairs_file}: the list names the same person + garment pair twice")
    todo = [job for job in jobs if not (out / f"{job.name}.png").exists()]
    print(f"{len(jobs)} pairs, {len(jobs) - len(todo)} already done, {len(todo)} to run -> {out}")
    if not todo:
        return 0
    pipeline = _load_pipeline(args)
    out.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    start = time.perf_counter()
    for job in tqdm(todo, unit="pair", file=sys.stderr):
        try:
            if reader is not None:
                sample = reader.load(args.split, PairEntry(job.person, job.garment, job.category))
                result = pipeline.run_sample(sample, seed=args.seed)
            else:
                result = pipeline(data / job.person, data / job.garment, category=job.category, seed=args.seed)
            if args.grid:
                save_image(result_grid(result), out / f"{job.name}_grid.png")
            save_image(result.image, out / f"{job.name}.png")  # last: its presence marks the pair done
        except (FipvitonError, ValueError) as exc:
            failures.append(f"{job.person} + {job.garment}: {exc}")
    seconds = time.perf_counter() - start
    print(f"done: {len(todo) - len(failures)} written, {len(failures)} failed, {seconds:.1f} s")
    for failure in failures:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if failures else 0
