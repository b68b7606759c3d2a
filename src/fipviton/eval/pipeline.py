"""Evaluation of the full try-on pipeline on a dataset's official pair list (`fipviton eval pipeline`).

Each pair of the list goes through `TryOnPipeline.run_sample` (analysis from the dataset's own maps ->
agnostic -> warp -> try-on -> post-process) and is scored at the evaluation resolution, in up to two modes:

- `repaint`:    the final image (`TryOnResult.image`: original pixels pasted back, identity restored);
- `no_repaint`: the network's raw output at full resolution (`TryOnResult.generated`).

Metrics per mode (see `fipviton.tryon.evaluate.image_metrics`, `fipviton.eval.metrics`,
`fipviton.eval.identity`):

- paired (the person wears the garment; the person photo is the ground truth): SSIM (torchmetrics, RGB,
  data_range 1), PSNR, ST-LPIPS always; LPIPS (AlexNet / SqueezeNet) only with the user's weight files;
- both settings: FID and KID (x1000) against the reference set, only with the user's Inception file; the
  reference set is the person images of the evaluated pair list (all of it, also under --limit), per
  category; the identity metrics (masked SSIM/PSNR of face+hair, the other half's clothes, uncovered skin and
  everything outside the agnostic region, against the person's own pixels).

Metrics that need weights the user did not give are null in `metrics.json`, with the reason in `not_computed`
and in the report; no other number is ever reported under their names.

DressCode is evaluated per category (`by_category`); `--limit N` takes the first N pairs of each category.

Distribution: the pair list (and the reference images) are sharded by `accelerate.PartialState()`:
process i takes items i, i + P, i + 2P, ... Each process writes its per-pair rows to
`OUT/parts/pairs.<i>.jsonl` (and its Inception features to `OUT/parts/features.<i>.npz`); after a barrier the
main process merges them into `OUT/pairs.jsonl` (sorted by pair index), computes the aggregates and writes
`metrics.json`, `report.md` and `samples.png`. With several machines, OUT must be on a shared file system.
On one process it is the plain loop. Launch, e.g. (CUDA: NCCL; CPU-only machines: gloo, as the trainers do):

    accelerate launch --multi_gpu --num_processes 4 $(which fipviton) eval pipeline --data ... --out ...
    torchrun --nproc_per_node 4 $(which fipviton) eval pipeline --data ... --out ...

On a CPU, one process per core (run so on 2 cores; `accelerate launch --cpu --num_processes 2` started only one):

    torchrun --nproc_per_node 2 --no-python $(which fipviton) eval pipeline --data ... --threads 1 --out ...
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from fipviton.data.sample import Category, PairEntry, TryOnSample
from fipviton.errors import DatasetError, FipvitonError, WeightsError
from fipviton.eval.identity import IDENTITY_REGIONS, PSNR_CAP, identity_regions, identity_scores
from fipviton.eval.metrics import LPIPS, InceptionFeatures, fid, kid
from fipviton.imageio import check_output_folder
from fipviton.postprocess import PostProcessConfig

if TYPE_CHECKING:
    from fipviton.data.readers import BaseReader
    from fipviton.pipeline import TryOnPipeline

SIZES: dict[str, tuple[int, int]] = {"256x192": (256, 192), "512x384": (512, 384), "1024x768": (1024, 768)}
IMAGE_METRICS = ("ssim", "psnr", "st_lpips", "lpips_alex", "lpips_squeeze")
SET_METRICS = ("fid", "kid", "kid_std")
MODE_NAMES = {True: "repaint", False: "no_repaint"}
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
WEIGHT_FLAGS = {
    "inception": "--inception inception-2015-12-05.pt",
    "lpips_alex": "--lpips-alex alex.pth --alexnet alexnet-owt-7be5be79.pth",
    "lpips_squeeze": "--lpips-squeeze squeeze.pth --squeezenet squeezenet1_1-b8a52dc0.pth",
}


@dataclass
class MetricWeights:
    """The user's local weight files for the standard metrics (None: not given). See `fipviton.eval.metrics`."""

    inception: Path | None = None
    lpips_alex: Path | None = None
    alexnet: Path | None = None
    lpips_squeeze: Path | None = None
    squeezenet: Path | None = None


@dataclass
class PipelineEvalOptions:
    """What to evaluate and where to write it (the `fipviton eval pipeline` options).

    size:    (H, W) evaluation resolution; None = each sample's own resolution.
    repaint: True scores only the final image, False only the raw network output, None both.
    limit:   the first N pairs of each category (None = all).
    framing: try on in a person crop and a garment framed like the training photos (`fipviton.framing`).
    sharp_garment: the pipeline's sharp-garment mode (`TryOnPipeline`).
    mirror_average: the try-on network run on each photo and its mirror image, averaged (`TryOnPipeline`).
    postprocess: the post-processing's switches and knobs (None: `PostProcessConfig()`, as shipped); recorded in
        `metrics.json`, so an ablation says what it changed.
    parser_weights, warp_weights, tryon_weights: weight folders (None: the shipped ones).
    command: the command line to record in the report.
    """

    data: Path
    out: Path
    pairs: str = "paired"
    split: str = "test"
    category: Category | None = None
    size: tuple[int, int] | None = None
    repaint: bool | None = None
    limit: int | None = None
    steps: int = 1
    framing: bool = True
    sharp_garment: bool = False
    mirror_average: bool = False
    postprocess: PostProcessConfig | None = None
    parser_weights: Path | None = None
    warp_weights: Path | None = None
    tryon_weights: Path | None = None
    weights: MetricWeights = field(default_factory=MetricWeights)
    command: str = ""
    seed: int = 0
    grid_rows: int = 6

    @property
    def modes(self) -> tuple[str, ...]:
        """The scored outputs, among "repaint" and "no_repaint"."""
        if self.repaint is None:
            return ("repaint", "no_repaint")
        return (MODE_NAMES[bool(self.repaint)],)

    @property
    def paired(self) -> bool:
        return self.pairs == "paired"


@dataclass
class MetricNetworks:
    """The loaded metric networks (None / absent: not computed) and why each missing metric is missing."""

    st_lpips: torch.nn.Module | None = None
    lpips: dict[str, LPIPS] = field(default_factory=dict)
    inception: InceptionFeatures | None = None
    not_computed: dict[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    """The evaluated pairs and the FID/KID reference images.

    jobs:       (pair index, pair) in list order, per category, each category cut to --limit.
    references: one pair per unique person image of each category's whole list (the FID/KID references).
    listed:     category -> pairs in its list before --limit.
    """

    jobs: list[tuple[int, PairEntry]]
    references: list[PairEntry]
    listed: dict[Category, int]

    @property
    def categories(self) -> list[Category]:
        return list(self.listed)


def parse_size(text: str) -> tuple[int, int]:
    """ "256x192" -> (256, 192), one of `SIZES`; ValueError otherwise."""
    if text not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {text!r}")
    return SIZES[text]


def check_paths(options: PipelineEvalOptions) -> None:
    """Refuse a missing dataset folder and an --out inside it (no command writes into an input folder)."""
    data = options.data.resolve()
    if not data.is_dir():
        raise DatasetError(f"{options.data}: no such dataset folder")
    check_output_folder(options.out, [data])


def load_metric_networks(options: PipelineEvalOptions, device: torch.device | str = "cpu") -> MetricNetworks:
    """Load the metric networks the options ask for; `WeightsError` for missing or wrong weight files.

    Weight files are checked (existence, keys, shapes) even when the setting does not use them, so that a
    typo fails before the long run rather than silently.
    """
    weights = options.weights
    nets = MetricNetworks()
    for net, heads, backbone, flags in (
        ("alex", weights.lpips_alex, weights.alexnet, ("--lpips-alex", "--alexnet")),
        ("squeeze", weights.lpips_squeeze, weights.squeezenet, ("--lpips-squeeze", "--squeezenet")),
    ):
        name = f"lpips_{net}"
        if (heads is None) != (backbone is None):
            given, missing = flags if heads is not None else flags[::-1]
            raise WeightsError(f"{given} needs {missing} too (LPIPS = the lpips heads + torchvision's backbone)")
        if heads is not None and backbone is not None:
            nets.lpips[net] = LPIPS.from_files(net, heads, backbone).to(device)
        else:
            nets.not_computed[name] = f"not computed: no weights given (pass {WEIGHT_FLAGS[name]})"
    if weights.inception is not None:
        nets.inception = InceptionFeatures.from_file(weights.inception, device)
    else:
        for name in SET_METRICS:
            nets.not_computed[name] = f"not computed: no weights given (pass {WEIGHT_FLAGS['inception']})"
    if options.paired:
        from fipviton.losses.perceptual import STLPIPS

        nets.st_lpips = STLPIPS().eval().to(device)
    else:
        for name in IMAGE_METRICS:
            nets.not_computed[name] = "not applicable: unpaired setting (no ground truth)"
        nets.lpips.clear()
    return nets


def make_plan(reader: BaseReader, options: PipelineEvalOptions) -> Plan:
    """The pairs to evaluate and the reference images, from the split's official list (`DatasetError` if none)."""
    if options.split not in reader.splits():
        raise DatasetError(f"{options.data}: no split {options.split!r} (has {', '.join(reader.splits())})")
    entries = reader.pairs(options.split, paired=options.paired, category=options.category)
    by_category: dict[Category, list[PairEntry]] = {}
    for entry in entries:
        by_category.setdefault(entry.category, []).append(entry)
    if not by_category:
        which = f" of category {options.category.value}" if options.category else ""
        raise DatasetError(f"{options.data}: the {options.split} {options.pairs} list has no pairs{which}")
    jobs: list[tuple[int, PairEntry]] = []
    references: list[PairEntry] = []
    for category in sorted(by_category, key=list(Category).index):
        chosen = by_category[category][: options.limit] if options.limit else by_category[category]
        jobs += [(len(jobs) + i, pair) for i, pair in enumerate(chosen)]
        first: dict[str, PairEntry] = {}
        for pair in by_category[category]:
            first.setdefault(pair.person, pair)
        references += list(first.values())
    listed = {c: len(by_category[c]) for c in sorted(by_category, key=list(Category).index)}
    return Plan(jobs, references, listed)


def _resize(image: np.ndarray, size: tuple[int, int] | None, nearest: bool = False) -> np.ndarray:
    """(H, W[, C]) -> size (h, w): area interpolation for images, nearest for masks; unchanged if equal."""
    if size is None or image.shape[:2] == size:
        return image
    if nearest:
        return cv2.resize(image.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST).astype(bool)
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def _tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float in [-1, 1] on `device`."""
    return torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].float().div(127.5).sub(1).to(device)


@torch.no_grad()
def score_pair(
    sample: TryOnSample,
    outputs: dict[str, np.ndarray],
    regions: dict[str, np.ndarray],
    nets: MetricNetworks,
    size: tuple[int, int] | None,
    device: torch.device,
) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """Scores of one pair per mode, and the Inception features (2048,) of each mode's image (with weights).

    outputs: mode -> (H, W, 3) uint8 image at the sample's resolution; regions: name -> (H, W) bool. Whole-image
    metrics need a ground truth (a paired sample); identity metrics are always computed.
    """
    from fipviton.tryon.evaluate import image_metrics

    person = _resize(sample.person, size)
    regions = {name: _resize(mask, size, nearest=True) for name, mask in regions.items()}
    st = nets.st_lpips  # None in the unpaired setting
    ground_truth = sample.paired and st is not None
    target = _tensor(person, device)
    target_features: dict[str, list[torch.Tensor]] = {}
    if ground_truth and st is not None:
        # The ground truth's features serve every mode: computed once.
        target_features = {name: net.features(target) for name, net in nets.lpips.items()}
        target_features["st"] = st.features(target)
    scores: dict[str, dict] = {}
    features: dict[str, np.ndarray] = {}
    for mode, output in outputs.items():
        image = _resize(output, size)
        row: dict = {}
        if ground_truth and st is not None:
            prediction = _tensor(image, device)
            row = {key: float(value[0]) for key, value in image_metrics(prediction.cpu(), target.cpu()).items()}
            row["st_lpips"] = float(st.distance(st.features(prediction), target_features["st"])[0])
            for name, net in nets.lpips.items():
                row[f"lpips_{name}"] = float(net.distance(net.features(prediction), target_features[name])[0])
        row["identity"] = identity_scores(image, person, regions)
        scores[mode] = row
        if nets.inception is not None:
            features[mode] = nets.inception([image])[0]
    return scores, features


def _grid(rows: list[tuple[np.ndarray, ...]], titles: tuple[str, ...]) -> np.ndarray:
    """One RGB uint8 picture, one row per pair (panels 256 px tall)."""
    from fipviton.analysis.overlay import grid

    panels = [(titles[i], image) for row in rows for i, image in enumerate(row)]
    return grid(panels, height=256, columns=len(titles))


def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def evaluate_pipeline(
    options: PipelineEvalOptions,
    pipeline: TryOnPipeline | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict | None:
    """Run the evaluation (see the module docstring); the main process returns `metrics.json`'s content.

    pipeline: a `TryOnPipeline` (None: `TryOnPipeline.from_pretrained` with the options' weights, steps and
    framing, on the process's device). progress: called as progress(done, total) after each of this process's
    pairs. Other processes return None. Raises `FipvitonError` subclasses for bad data, out folders and weight files.
    """
    from accelerate import PartialState

    from fipviton.data.readers import open_dataset
    from fipviton.imageio import save_image

    check_paths(options)
    state = PartialState(cpu=not torch.cuda.is_available())  # gloo across CPU processes, like the trainers
    device = state.device
    reader = open_dataset(options.data)
    plan = make_plan(reader, options)
    nets = load_metric_networks(options, device)
    if pipeline is None:
        from fipviton.pipeline import TryOnPipeline

        pipeline = TryOnPipeline.from_pretrained(
            parser=options.parser_weights,
            warp=options.warp_weights,
            tryon=options.tryon_weights,
            device=device,
            steps=options.steps,
            framing=options.framing,
            sharp_garment=options.sharp_garment,
            mirror_average=options.mirror_average,
            postprocess=options.postprocess,
        )

    parts = options.out / "parts"
    if state.is_main_process:
        options.out.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(parts, ignore_errors=True)  # parts of an earlier run would be merged into this one
        parts.mkdir()
    state.wait_for_everyone()

    rank, world = state.process_index, state.num_processes
    mine = plan.jobs[rank::world]
    features: dict[str, list[np.ndarray]] = {mode: [] for mode in options.modes}
    feature_index: list[int] = []
    grid_rows: list[tuple[np.ndarray, ...]] = []
    with open(parts / f"pairs.{rank}.jsonl", "w") as handle:
        for done, (index, pair) in enumerate(mine, start=1):
            row: dict = {"index": index, "person": pair.person, "garment": pair.garment}
            row["category"] = pair.category.value
            try:
                sample = reader.load(options.split, pair)
                result = pipeline.run_sample(sample, seed=options.seed)
            except (FipvitonError, ValueError) as exc:  # one bad pair must not end a long run
                row["error"] = f"{type(exc).__name__}: {exc}"
            else:
                outputs = {"repaint": result.image, "no_repaint": result.generated}
                outputs = {mode: outputs[mode] for mode in options.modes}
                regions = identity_regions(
                    result.analysis.parsing, result.agnostic.mask, result.warped_mask, sample.category
                )
                scores, pair_features = score_pair(sample, outputs, regions, nets, options.size, device)
                row.update(
                    paired=sample.paired,
                    native_size=f"{sample.person.shape[0]}x{sample.person.shape[1]}",
                    seconds=result.timings.get("total"),
                    restored_pixels=int(result.restored_mask.sum()),
                    **scores,
                )
                if pair_features:
                    feature_index.append(index)
                    for mode, vector in pair_features.items():
                        features[mode].append(vector)
                if len(grid_rows) < options.grid_rows:
                    grid_rows.append(
                        (sample.person, _fit(sample.garment, sample.person.shape[:2]), result.generated, result.image)
                    )
            handle.write(json.dumps(row) + "\n")
            handle.flush()
            if progress is not None:
                progress(done, len(mine))
    if nets.inception is not None:
        _save_features(parts / f"features.{rank}.npz", reader, options, plan, nets.inception, features, feature_index)
    state.wait_for_everyone()
    if not state.is_main_process:
        return None

    rows = _merge_rows(parts, world)
    metrics = aggregate(rows, plan, options, nets, _merge_features(parts, world) if nets.inception else None)
    metrics["setting"]["processes"] = world
    metrics["setting"]["device"] = str(device)
    with open(options.out / "pairs.jsonl", "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    metrics["files"] = {"pairs": "pairs.jsonl", "report": "report.md", "grid": "samples.png" if grid_rows else None}
    if grid_rows:
        titles = ("person", "garment", "no repaint (network)", "repaint (final)")
        save_image(_grid(grid_rows, titles), options.out / "samples.png")
    (options.out / "metrics.json").write_text(json.dumps(metrics, indent=1, allow_nan=False) + "\n")
    (options.out / "report.md").write_text(render_report(metrics))
    shutil.rmtree(parts, ignore_errors=True)
    return metrics


def _save_features(
    path: Path,
    reader: BaseReader,
    options: PipelineEvalOptions,
    plan: Plan,
    inception: InceptionFeatures,
    features: dict[str, list[np.ndarray]],
    feature_index: list[int],
) -> None:
    """Inception features of this process's outputs and of its shard of the reference images, to `path`."""
    from accelerate import PartialState

    from fipviton.data.files import decode_or_none

    state = PartialState(cpu=not torch.cuda.is_available())  # gloo across CPU processes, like the trainers
    references = plan.references[state.process_index :: state.num_processes]
    categories = [pair.category.value for pair in references]
    vectors: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    for i, pair in enumerate(references):
        # The reference is the person photo itself (the dataset's own file, at the evaluation size); the
        # reader's file specs decode it safely without loading the rest of the pair.
        spec = next(spec for spec in reader.files(options.split, pair) if spec.role == "person")
        person = decode_or_none(spec)
        if person is None:
            raise DatasetError(f"{spec.path}: reference person image missing")
        batch.append(_resize(person, options.size))
        if len(batch) == 16 or i == len(references) - 1:
            vectors += list(inception(batch))
            batch = []
    arrays = {f"{mode}_features": np.asarray(v, dtype=np.float64).reshape(-1, 2048) for mode, v in features.items()}
    np.savez(
        path,
        index=np.asarray(feature_index, dtype=np.int64),
        reference_category=np.asarray(categories, dtype=str),
        reference_features=np.asarray(vectors, dtype=np.float64).reshape(-1, 2048),
        **arrays,
    )


def _merge_rows(parts: Path, world: int) -> list[dict]:
    rows: list[dict] = []
    for rank in range(world):
        with open(parts / f"pairs.{rank}.jsonl") as handle:
            rows += [json.loads(line) for line in handle if line.strip()]
    return sorted(rows, key=lambda row: row["index"])


def _merge_features(parts: Path, world: int) -> dict[str, np.ndarray]:
    """Concatenate every process's feature file: keys as in `_save_features`, rows in process order."""
    merged: dict[str, list[np.ndarray]] = {}
    for rank in range(world):
        with np.load(parts / f"features.{rank}.npz") as data:
            for key in data.files:
                merged.setdefault(key, []).append(data[key])
    return {key: np.concatenate(values) for key, values in merged.items()}


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(kept)) if kept else None


def _set_metrics(predicted: np.ndarray, reference: np.ndarray, seed: int) -> tuple[dict, str | None]:
    """FID and KID x1000 of two feature sets, or nulls and the reason (fewer than 2 images in a set)."""
    if predicted.shape[0] < 2 or reference.shape[0] < 2:
        reason = f"not computed: needs at least 2 images per set (have {predicted.shape[0]} and {reference.shape[0]})"
        return dict.fromkeys(SET_METRICS), reason
    mean, std = kid(predicted, reference, KID_SUBSETS, KID_SUBSET_SIZE, seed)
    return {"fid": fid(predicted, reference), "kid": 1000 * mean, "kid_std": 1000 * std}, None


def _mode_block(
    rows: list[dict], mode: str, nets: MetricNetworks, feats: tuple[np.ndarray, np.ndarray] | None, seed: int
) -> dict:
    """The aggregate of one mode over `rows`: image metrics, FID/KID, identity per region (means and counts)."""
    scored = [row[mode] for row in rows if mode in row]
    block: dict = {"count": len(scored)}
    for key in IMAGE_METRICS:
        block[key] = _mean([s.get(key) for s in scored])
    block.update(dict.fromkeys(SET_METRICS))
    if feats is not None:
        values, reason = _set_metrics(*feats, seed)
        block.update(values)
        if reason:
            block["set_metrics_note"] = reason
    identity = {}
    for region in IDENTITY_REGIONS:
        ssim = [s["identity"][region]["ssim"] for s in scored]
        psnr = [s["identity"][region]["psnr"] for s in scored]
        identity[region] = {"ssim": _mean(ssim), "psnr": _mean(psnr), "count": sum(v is not None for v in ssim)}
    block["identity"] = identity
    return block


def aggregate(
    rows: list[dict],
    plan: Plan,
    options: PipelineEvalOptions,
    nets: MetricNetworks,
    features: dict[str, np.ndarray] | None,
) -> dict:
    """`metrics.json`'s content from the merged per-pair rows (and merged Inception features, with weights)."""
    ok = [row for row in rows if "error" not in row]

    def feature_sets(mode: str, category: Category | None) -> tuple[np.ndarray, np.ndarray] | None:
        if features is None:
            return None
        index_category = {row["index"]: row["category"] for row in rows}
        predicted_categories = np.asarray([index_category[i] for i in features["index"]], dtype=str)
        predicted = features[f"{mode}_features"]
        reference = features["reference_features"]
        if category is None:
            return predicted, reference
        return (
            predicted[predicted_categories == category.value],
            reference[features["reference_category"] == category.value],
        )

    metrics: dict = {
        "setting": {
            "dataset": Path(options.data).name,
            "data": str(options.data),
            "split": options.split,
            "pairs": options.pairs,
            "categories": [c.value for c in plan.categories],
            "resolution": f"{options.size[0]}x{options.size[1]}" if options.size else "native",
            "native_sizes": sorted({row["native_size"] for row in ok}),
            "resized": bool(options.size) and any(row["native_size"] != _size_text(options.size) for row in ok),
            "steps": options.steps,
            "framing": options.framing,
            "sharp_garment": options.sharp_garment,
            "mirror_average": options.mirror_average,
            "postprocess": dataclasses.asdict(options.postprocess or PostProcessConfig()),
            "weights": {
                name: str(folder) if folder is not None else "shipped"
                for name, folder in (
                    ("parser", options.parser_weights),
                    ("warp", options.warp_weights),
                    ("tryon", options.tryon_weights),
                )
            },
            "modes": list(options.modes),
            "limit": options.limit,
            "seed": options.seed,
            "reference_set": "the person images of the evaluated pair list (all of it), per category",
        },
        "command": options.command,
        "counts": {
            "listed": sum(plan.listed.values()),
            "selected": len(plan.jobs),
            "evaluated": len(ok),
            "failed": len(rows) - len(ok),
            "reference_images": len(plan.references) if features is not None else 0,
        },
    }
    for mode in options.modes:
        metrics[mode] = _mode_block(ok, mode, nets, feature_sets(mode, None), options.seed)
    by_category: dict[str, dict] = {}
    for category in plan.categories:
        subset = [row for row in ok if row["category"] == category.value]
        block: dict = {"listed": plan.listed[category], "evaluated": len(subset)}
        for mode in options.modes:
            block[mode] = _mode_block(subset, mode, nets, feature_sets(mode, category), options.seed)
        by_category[category.value] = block
    metrics["by_category"] = by_category
    metrics["not_computed"] = dict(nets.not_computed)
    seconds = [row["seconds"] for row in ok if row.get("seconds") is not None]
    metrics["seconds_per_pair"] = float(np.median(seconds)) if seconds else None
    metrics["failures"] = [
        {"person": row["person"], "garment": row["garment"], "error": row["error"]} for row in rows if "error" in row
    ][:50]
    return metrics


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


METRIC_COLUMNS = (
    ("ssim", "SSIM ↑", 4),
    ("psnr", "PSNR ↑", 2),
    ("st_lpips", "ST-LPIPS ↓", 4),
    ("lpips_alex", "LPIPS-Alex ↓", 4),
    ("lpips_squeeze", "LPIPS-Squeeze ↓", 4),
    ("fid", "FID ↓", 2),
    ("kid", "KID×1000 ↓", 2),
)


def render_report(metrics: dict) -> str:
    """The Markdown report: setting, exact command, counts, metrics tables, what was not computed and why."""
    setting = metrics["setting"]
    counts = metrics["counts"]
    modes = setting["modes"]
    # Unpaired: no ground truth, so only the set metrics have a column (the identity table follows).
    columns = METRIC_COLUMNS if setting["pairs"] == "paired" else [c for c in METRIC_COLUMNS if c[0] in SET_METRICS]
    native = ", ".join(setting["native_sizes"]) or "n/a"
    resized = "; no resizing"
    if setting["resized"]:
        resized = "; prediction and reference resized with area interpolation (region masks: nearest)"
    lines = [
        f"# Pipeline evaluation: {setting['dataset']} {setting['split']}, {setting['pairs']}",
        "",
        "## Setting",
        "",
        f"- dataset: `{setting['data']}` (split `{setting['split']}`, the official {setting['pairs']} pair list)",
        f"- categories: {', '.join(setting['categories'])} (each scored on its own; FID/KID references per category)",
        f"- evaluation resolution: {setting['resolution']} (dataset images: {native}){resized}",
        f"- try-on network calls per image: {setting['steps']} ({'single step' if setting['steps'] == 1 else 'DDIM'})",
        "- modes: " + ", ".join(_mode_text(m) for m in modes),
        f"- limit: {_limit_text(setting['limit'])}; seed {setting['seed']}",
        f"- processes: {setting.get('processes', 1)}, device {setting.get('device', 'cpu')}",
        f"- FID/KID reference set: {setting['reference_set']}",
        f"- post-processing: {_postprocess_text(setting.get('postprocess'))}",
        "",
        "## Command",
        "",
        "```text",
        metrics["command"] or "(not recorded)",
        "```",
        "",
        "## Counts",
        "",
        f"- pairs in the list: {counts['listed']}; selected: {counts['selected']}; evaluated: {counts['evaluated']};"
        f" failed: {counts['failed']}",
        f"- reference images for FID/KID: {counts['reference_images'] or 'none (no Inception weights)'}",
        f"- median seconds per pair (whole pipeline): {_fmt(metrics['seconds_per_pair'], 3)}",
        "",
        "## Metrics",
        "",
        "| category | mode | n | " + " | ".join(title for _, title, _ in columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    blocks = [("all", metrics)] if len(metrics["by_category"]) > 1 else []
    blocks += list(metrics["by_category"].items())
    for name, block in blocks:
        for mode in modes:
            values = block[mode]
            cells = [_fmt(values[key], digits) for key, _, digits in columns]
            lines.append(f"| {name} | {mode} | {values['count']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Identity preservation (against the person's own pixels)",
        "",
        "Masked SSIM (mean of the SSIM map over the region, both images white outside it) and masked PSNR (dB, "
        f"MSE over the region; identical pixels count as {PSNR_CAP:.0f} dB). n = pairs where the region is not empty.",
        "",
        "| category | mode | region | n | SSIM ↑ | PSNR ↑ |",
        "|---|---|---|---|---|---|",
    ]
    for name, block in blocks:
        for mode in modes:
            for region, values in block[mode]["identity"].items():
                lines.append(
                    f"| {name} | {mode} | {region} | {values['count']} | {_fmt(values['ssim'], 4)} |"
                    f" {_fmt(values['psnr'], 2)} |"
                )
    lines += [
        "",
        "Regions: face_hair = FACE + HAIR labels; other_half = the clothes the garment does not replace (upper_body: "
        "bottom, legs, shoes; lower_body: upper clothes; dresses: shoes); skin = neck, arms, legs not covered by "
        "the warped garment; outside_agnostic = every pixel outside the repainted region.",
        "",
        "## Not computed",
        "",
    ]
    notes = dict(metrics["not_computed"])
    for name, block in blocks:
        for mode in modes:
            if block[mode].get("set_metrics_note"):
                notes[f"fid/kid ({name}, {mode})"] = block[mode]["set_metrics_note"]
    lines += [f"- {name}: {reason}" for name, reason in notes.items()] or ["- nothing: every metric was computed"]
    lines += [
        "",
        "Standard LPIPS, FID and KID are computed only from the standard weight files given on the command line "
        "(see `fipviton.eval.metrics`); no other number is reported under their names. ST-LPIPS is the "
        "shift-tolerant LPIPS (VGG16), not LPIPS.",
        "",
    ]
    if metrics["failures"]:
        lines += ["## Failed pairs", ""]
        lines += [f"- {f['person']} + {f['garment']}: {f['error']}" for f in metrics["failures"]]
        lines.append("")
    grid = metrics.get("files", {}).get("grid")
    if grid:
        lines += ["## Samples", "", f"![samples]({grid})", ""]
    return "\n".join(lines)


def _postprocess_text(config: dict | None) -> str:
    """The post-processing fields that differ from `PostProcessConfig`'s defaults, or "as shipped"."""
    defaults = dataclasses.asdict(PostProcessConfig())
    changed = [f"{name}={value}" for name, value in (config or {}).items() if defaults.get(name) != value]
    return "as shipped (PostProcessConfig defaults)" if not changed else "changed: " + ", ".join(changed)


def _mode_text(mode: str) -> str:
    if mode == "repaint":
        return "repaint (final image: original pixels pasted back, identity restored)"
    return "no_repaint (the try-on network's raw output at full resolution)"


def _limit_text(limit: int | None) -> str:
    return f"the first {limit} pairs per category" if limit else "none (every pair)"
