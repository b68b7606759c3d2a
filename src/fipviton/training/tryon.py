"""Training entry point of the try-on module (`fipviton train tryon`).

Runs with `accelerate` (CPU, one GPU, or `accelerate launch` on many). Data: the paired training list of a
dataset (VITON 256x192 `viton_resize` by default), prepared once into two memory-mapped caches: the warping
module's (`fipviton.warp.cache`: person, garment, parsing, body parts, keypoints) and ours
(`fipviton.tryon.cache`: the shipped warping module's warped garment and mask, run once over the split,
and the agnostic mask). A training step is then only the try-on network (and the loss). Or, with `packs`,
the same items from packs of them (`fipviton.tryon.pack`), to train on a machine without the dataset.

Each step (`fipviton.tryon.diffusion`): draw timesteps (`timestep_sampling`), noise the ground truth or
the noise condition image (`train_source`), predict x0 in one call, L1 + perceptual loss against the ground
truth (`fipviton.tryon.losses`). AdamW, warm-up + cosine learning rate, EMA of the weights (what ships),
gradient clipping at 1. Tensors are channels-last; `mixed_precision="auto"` uses bf16 autocast on CUDA and
on CPUs with native bf16 (AVX-512-BF16 / AMX) and fp32 elsewhere (bf16 is several times slower than fp32 on
an AVX2-only CPU).

Output folder (checkpoint layout and logs from `fipviton.training.common`):
  checkpoints/step_N/   resumable state (weights + EMA, optimizer, RNG; options and config in state.json)
  final/                `TryOnModel.save_pretrained` of the EMA weights (copy to src/fipviton/weights/tryon)
  train.log, metrics.jsonl  progress lines; per-log-step loss terms, learning rate, images/s
  samples/step_N.png    agnostic | warped garment | noise condition image | single-step result | ground truth
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from fipviton.training.common import TrainRunOptions
from fipviton.tryon.config import TryOnConfig
from fipviton.tryon.dataset import Augmentation, TryOnCacheDataset, TryOnItems
from fipviton.tryon.inputs import TryOnInputs
from fipviton.tryon.losses import TryOnLoss
from fipviton.tryon.model import TryOnModel, count_parameters

# (items of a dataset, device) -> their batch on that device, e.g. `fipviton.tryon.inputs.inputs_from_arrays`.
Collate = Callable[[list[Any], torch.device], TryOnInputs]

# Config fields that change only how the trained network is sampled, never its weights.
INFERENCE_ONLY_FIELDS = frozenset({"inference_t_star"})


@dataclass(kw_only=True)
class TryOnTrainArgs(TrainRunOptions):
    """Options of a training run (the CLI flags of `fipviton train tryon`).

    preset:     network preset (`TryOnConfig.from_preset`); `overrides` replace config fields (ablations:
                e.g. {"use_body_parts": False}).
    perceptual_crop: (h, w) crop for the VGG term (None: the whole image).
    init_weights: a saved try-on model folder whose weights a fresh run starts from (new optimizer and
                schedule, step 0), with its config (`preset` is then unused; `overrides` apply on top); it may
                lack the full-resolution head (`refine_channels`). Ignored on resume.
    """

    preset: str = "cpu-256"
    overrides: dict[str, Any] = field(default_factory=dict)
    steps: int = 30_000
    lr: float = 2e-4
    warmup: int = 500
    sample_every: int = 1000
    warp_weights: Path | None = None
    init_weights: Path | None = None
    refine_lr_scale: float = 1.0  # the full-resolution head (refine_channels) learns at this x the learning rate
    l1_weight: float = 1.0
    perceptual_weight: float = 0.2
    perceptual_layers: int = 3
    perceptual_crop: tuple[int, int] | None = (96, 72)
    mask_weight: float = 0.0
    ssim_weight: float = 0.0  # (1 - SSIM) in the agnostic region (`fipviton.tryon.losses`), off by default
    flip_prob: float = 0.5
    shrink_prob: float = 0.0  # probability of shrinking the warped garment (`fipviton.tryon.dataset.shrink_warped`)
    backdrop_prob: float = 0.0  # probability of another backdrop (`fipviton.tryon.dataset.replace_backdrop`)
    fill_prob: float = 0.0  # probability of a random colour around the warped garment (`refill_warped`)
    packs: tuple[Path, ...] = ()  # train on these packs (`fipviton.tryon.pack`) instead of the caches of `data`
    # Threads that build a batch's items (augmentation), in the background while the step runs; None: 1 on a
    # CPU (the step needs the cores), up to 8 on a GPU (one thread held a GPU run at ~100 images/s).
    loader_threads: int | None = None

    @property
    def augmentation(self) -> Augmentation:
        return Augmentation(
            flip_prob=self.flip_prob,
            shrink_prob=self.shrink_prob,
            backdrop_prob=self.backdrop_prob,
            fill_prob=self.fill_prob,
        )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.refine_lr_scale <= 0:
            raise ValueError(f"refine_lr_scale must be > 0, got {self.refine_lr_scale}")
        for name in ("l1_weight", "perceptual_weight", "mask_weight", "ssim_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.loader_threads is not None and self.loader_threads < 1:
            raise ValueError(f"loader_threads must be >= 1, got {self.loader_threads}")
        for name in ("flip_prob", "shrink_prob", "backdrop_prob", "fill_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")


def prepare_cache_dataset(args: TryOnTrainArgs, size: tuple[int, int] | None = None) -> Dataset:
    """Build (or reuse) the warp cache and the try-on cache of the training split; the dataset over them.

    size: (H, W) of the caches (default: the preset's image size).
    """
    from fipviton.tryon.cache import build_tryon_cache, warpnet_warper
    from fipviton.warp.cache import build_cache

    if args.data is None:
        raise ValueError("no --data folder")
    cache_root = Path(args.cache_root) if args.cache_root else None
    if size is None:
        size = TryOnConfig.from_preset(args.preset, **args.overrides).image_size
    warper, tag = warpnet_warper(args.warp_weights)  # first: fail early when there are no warp weights
    warp_root = cache_root / "warp" if cache_root else None
    warp_dir = build_cache(args.data, "train", size=tuple(size), cache_root=warp_root, limit=args.limit)
    tryon_dir = build_tryon_cache(warp_dir, warper, tag, cache_root=cache_root)
    return TryOnCacheDataset(warp_dir, tryon_dir, args.augmentation)


class BatchLoader:
    """Builds a training batch, `TryOnInputs` on `device` at `size` (H, W), from dataset indices and a generator
    (the `load` of `TrainLoop.run(prefetch=True)`).

    The items of a `TryOnItems` dataset are built in `threads` threads (their augmentation is numpy and OpenCV,
    which release the GIL), each with a generator seeded from `rng` in index order, so the batch is the same
    for any number of threads. Other datasets (a list of items, in tests) are indexed as they are.
    threads: None = 1 on a CPU (the training step needs the cores), up to 8 on a GPU (one thread held a GPU
    run at ~100 images/s).
    """

    def __init__(
        self,
        dataset: Dataset,
        collate: Collate,
        size: tuple[int, int],
        device: torch.device,
        threads: int | None = None,
    ) -> None:
        self.dataset, self.collate, self.size, self.device = dataset, collate, size, device
        self.threads = threads or (min(8, os.cpu_count() or 1) if device.type == "cuda" else 1)
        self.pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None

    def __call__(self, indices: np.ndarray, rng: np.random.Generator) -> TryOnInputs:
        order = [int(i) for i in np.sort(indices)]
        if isinstance(self.dataset, TryOnItems):
            generators = [np.random.default_rng(seed) for seed in rng.integers(2**63, size=len(order))]
            mapper = self.pool.map if self.pool is not None else map
            items = list(mapper(self.dataset.item, order, generators))
        else:
            items = [self.dataset[i] for i in order]
        return self.collate(items, self.device).resized(self.size)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def sample_grid(inputs: TryOnInputs, result: torch.Tensor, rows: int = 4) -> np.ndarray:
    """(rows*H, 5*W, 3) uint8: agnostic | warped | noise condition image | result | ground truth."""
    n = min(rows, inputs.batch_size)
    columns = [inputs.agnostic, inputs.warped, inputs.noise_condition(), result]
    if inputs.person is not None:
        columns.append(inputs.person)
    grid = torch.cat([c[:n].detach().float().cpu() for c in columns], dim=3)
    grid = ((grid.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
    return grid.reshape(-1, grid.shape[2], 3).numpy()


def train_tryon(
    args: TryOnTrainArgs,
    dataset: Dataset | None = None,
    collate: Collate | None = None,
) -> TryOnModel:
    """Train (or resume) the try-on module; returns the EMA model, also saved to `<out>/final`.

    dataset/collate: a map-style dataset and a `Collate` of its items (tests pass their own); by default the
    caches of `args.data` (`prepare_cache_dataset`), or the packs of `args.packs`.
    """
    from fipviton.training.common import TrainLoop

    loop = TrainLoop(args)
    log, accelerator = loop.log, loop.accelerator
    saved = loop.saved_config()
    if args.init_weights is not None:
        # Fine-tuning keeps the network and recipe of the weights it starts from (their t*, training source,
        # conditions), not the preset's; --set still overrides them.
        config = replace(TryOnConfig.load(Path(args.init_weights) / "config.json"), **args.overrides)
        if saved is None:
            log.log(f"network config from {args.init_weights} (preset {config.preset or 'custom'}; --preset unused)")
    else:
        config = TryOnConfig.from_preset(args.preset, **args.overrides)
    if saved is not None:
        # A resumed run keeps its network; only inference-time fields may still be set with --set.
        config = TryOnConfig.from_dict(saved)
        inference_only = {k: v for k, v in args.overrides.items() if k in INFERENCE_ONLY_FIELDS}
        config = replace(config, **inference_only)
        ignored = sorted(k for k, v in args.overrides.items() if k not in inference_only and saved.get(k) != v)
        if ignored:
            log.log(f"resume: --set {', '.join(ignored)} ignored (the run keeps the network config it started with)")
    t0 = time.perf_counter()
    if dataset is None and args.packs:
        from fipviton.tryon.pack import PackDataset

        dataset = PackDataset(args.packs, args.augmentation)
        collate = dataset.collate
    elif dataset is None:
        with accelerator.main_process_first():
            dataset = prepare_cache_dataset(args, config.image_size)
        collate = dataset.collate  # type: ignore[attr-defined]
    if collate is None:
        collate = getattr(dataset, "collate", None)
    if collate is None:
        raise ValueError("a dataset without .collate needs a collate function")
    make_inputs: Collate = collate
    n_samples = len(dataset)  # type: ignore[arg-type]
    log.log(f"data: {n_samples} training pairs ({time.perf_counter() - t0:.1f} s)")

    model = TryOnModel(config)
    loop.warm_start(model, args.init_weights)
    trainable = [p for p in model.parameters() if p.requires_grad]  # not the frozen VAE / CLIP encoder
    device_type = loop.device.type
    head = {id(p): args.refine_lr_scale for p in model.refine.parameters()} if model.refine is not None else None
    model = loop.start(model, trainable, config.to_dict(), channels_last=device_type == "cpu", lr_scales=head)
    loss_fn = TryOnLoss(
        l1_weight=args.l1_weight,
        perceptual_weight=args.perceptual_weight,
        perceptual_layers=args.perceptual_layers,
        perceptual_crop=args.perceptual_crop,
        mask_weight=args.mask_weight,
        ssim_weight=args.ssim_weight,
    ).to(loop.device)
    bare: TryOnModel = accelerator.unwrap_model(model)
    bf16 = loop.bf16
    log.log(
        f"tryon {config.preset or 'custom'}: {count_parameters(bare, trainable_only=True):,} trainable parameters "
        f"(unet {count_parameters(bare.unet):,}), {config.space} space {tuple(config.image_size)}, "
        f"t* {config.t_star}, timesteps {config.timestep_sampling}, source {config.train_source}, "
        f"device {loop.device} x{accelerator.num_processes}, bf16 {bf16}"
    )

    load = BatchLoader(dataset, make_inputs, tuple(config.image_size), loop.device, args.loader_threads)

    def step(inputs: TryOnInputs) -> tuple[torch.Tensor, dict[str, float], None]:
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            x_t, timesteps, target, _ = bare.diffusion.training_example(bare, inputs)
            prediction = model(x_t, timesteps, inputs)
            image_prediction = bare.decode(prediction) if loss_fn.needs_image else None
        loss, terms = loss_fn(prediction, target, image_prediction, inputs.person, inputs.agnostic_mask)
        return loss, terms, None

    def sample(inputs: TryOnInputs, _: None) -> np.ndarray:
        bare.eval()
        # Its own noise: drawing from the global generator would make a run that stopped after a sample (at its
        # last step or time budget) and was resumed differ from one that went on.
        generator = torch.Generator(loop.device).manual_seed(args.seed)
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            result = bare.generate(inputs, generator=generator)
        bare.train()
        return sample_grid(inputs, result)

    log.log(f"batches built by {load.threads} thread{'s' * (load.threads > 1)}, one batch ahead of the step")
    try:
        loop.run(n_samples, load, step, sample, prefetch=True)
    finally:
        load.close()
    return loop.finish(TryOnModel(replace(config)))


def average_tryon_models(directories: Sequence[Path], weights: Sequence[float] | None = None) -> TryOnModel:
    """The weighted mean of the weights of saved try-on models of one network (a "model soup" of runs that
    started from the same weights; `fipviton.training.common.average_states`). weights: one per folder, summing
    to 1 (None: equal). `WeightsError` when the folders hold other networks or the weights do not fit.
    """
    from fipviton.errors import WeightsError
    from fipviton.training.common import average_states

    models = [TryOnModel.from_pretrained(directory) for directory in directories]
    first = models[0].config.to_dict()
    for directory, model in zip(directories[1:], models[1:], strict=False):
        if model.config.to_dict() != first:
            raise WeightsError(f"{directory} is another network than {directories[0]} (config.json differs)")
    try:
        mean = average_states([model.trainable_state_dict() for model in models], weights)
    except ValueError as exc:
        raise WeightsError(str(exc)) from exc
    models[0].load_trainable_state_dict(mean, "the average")
    return models[0]
