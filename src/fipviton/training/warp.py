"""Training entry point of the warping module (`fipviton train warp`).

Runs with `accelerate` (CPU, one GPU, or `accelerate launch` on many), on the paired training list of a
dataset (VITON 256x192 `viton_resize` by default). The conditioning maps are precomputed once into a
memory-mapped cache (`fipviton.warp.cache`), so a step is only the network; or it trains from packs of the
same records (`fipviton.warp.pack`), on a machine without the dataset. Tensors are channels-last;
`mixed_precision="auto"` uses bf16 autocast on CUDA and on CPUs with native bf16 (AVX-512-BF16/AMX, where
it is about 2.8x faster) and fp32 elsewhere (on an AVX2-only CPU bf16 convolutions are 5-10x slower).

Output folder (checkpoint layout and logs from `fipviton.training.common`):
  checkpoints/step_N/   resumable state (weights + EMA, optimizer, RNG, options and config in state.json)
  final/                `WarpNet.save_pretrained` of the EMA weights (what ships)
  train.log, metrics.jsonl  progress lines and per-log-step loss terms, learning rate, images/s
  samples/step_N.png    garment | person | warped garment | warped mask over the person | target
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fipviton.errors import DatasetError
from fipviton.training.common import TrainRunOptions
from fipviton.warp.cache import CachedBatch, WarpCache, build_cache
from fipviton.warp.conditioning import person_conditioning
from fipviton.warp.losses import WarpLoss, WarpLossWeights, garment_target
from fipviton.warp.model import WarpConfig, WarpNet, WarpOutput, count_parameters
from fipviton.warp.pack import WarpPackDataset


@dataclass(kw_only=True)
class WarpTrainArgs(TrainRunOptions):
    """Options of a training run (the CLI flags of `fipviton train warp`).

    fine_channels: the width of the full-size flow level (`WarpConfig.fine_channels`; None = the preset's).
    init_weights: a saved warping model folder whose weights a fresh run starts from (new optimizer and
        schedule), with its network config (`--preset` is then unused); `fine_channels` may add the full-size
        flow level to weights that lack it, which then starts at zero flow.
    packs: train on these warp packs (`fipviton.warp.pack`, `fipviton data pack-warp`) instead of the cache of
        `data` (exactly one of the two is given).
    """

    preset: str = "default"
    cross_attention: bool = True
    fine_channels: int | None = None
    init_weights: Path | None = None
    perceptual_layers: int = 2
    perceptual_weight: float = 1.0
    perceptual_samples: int = 2
    ssim_weight: float = 0.0  # (1 - SSIM) inside the garment region (`fipviton.warp.losses`), off by default
    flip: bool = True
    packs: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.data is None) == (not self.packs):
            raise ValueError("give either data or packs")
        if self.ssim_weight < 0:
            raise ValueError(f"ssim_weight must be >= 0, got {self.ssim_weight}")


@dataclass
class NetBatch:
    """A `CachedBatch` resized to the network's size (H, W), with the person conditioning built."""

    garment: torch.Tensor  # (B, 3, H, W) [-1, 1]
    garment_mask: torch.Tensor  # (B, 1, H, W) [0, 1]
    person_input: torch.Tensor  # (B, 46, H, W)
    person: torch.Tensor  # (B, 3, H, W) [-1, 1]
    region: torch.Tensor  # (B, 1, H, W) [0, 1]


def to_network_size(batch: CachedBatch, size: tuple[int, int], use_body_parts: bool = True) -> NetBatch:
    def area(x: torch.Tensor) -> torch.Tensor:
        return x if tuple(x.shape[-2:]) == tuple(size) else F.interpolate(x, size=size, mode="area")

    return NetBatch(
        garment=area(batch.garment),
        garment_mask=area(batch.garment_mask),
        person_input=person_conditioning(batch.body_parts, batch.agnostic, batch.keypoints, size, use_body_parts),
        person=area(batch.person),
        region=area(batch.region),
    )


def flip_batch(batch: CachedBatch, flip: torch.Tensor) -> CachedBatch:
    """Mirror the samples where `flip` (B,) is True: images, maps (left/right labels swapped), keypoints. `flip`
    lies on the batch's device."""
    if not bool(flip.any()):
        return batch
    from fipviton.bodyparts import FLIP_SWAP as PART_SWAP
    from fipviton.keypoints import FLIP_PAIRS
    from fipviton.labels import FLIP_SWAP as LABEL_SWAP

    def swap_table(pairs: Iterable[tuple[int, int]]) -> torch.Tensor:
        table = torch.arange(256, device=batch.agnostic.device)
        for a, b in pairs:
            table[int(a)], table[int(b)] = int(b), int(a)
        return table

    def mirror(x: torch.Tensor) -> torch.Tensor:
        selector = flip.view(-1, *([1] * (x.dim() - 1)))
        return torch.where(selector, x.flip(-1), x)

    keypoints = batch.keypoints.clone()
    present = keypoints[..., 2] > 0
    mirrored = keypoints.clone()
    mirrored[..., 0] = torch.where(present, 1 - keypoints[..., 0], keypoints[..., 0])
    order = list(range(keypoints.shape[1]))
    for a, b in FLIP_PAIRS:
        order[a], order[b] = order[b], order[a]
    mirrored = mirrored[:, order]
    return CachedBatch(
        person=mirror(batch.person),
        garment=mirror(batch.garment),
        garment_mask=mirror(batch.garment_mask),
        region=mirror(batch.region),
        agnostic=torch.where(flip[:, None, None], swap_table(LABEL_SWAP)[batch.agnostic.flip(-1)], batch.agnostic),
        body_parts=torch.where(flip[:, None, None], swap_table(PART_SWAP)[batch.body_parts.flip(-1)], batch.body_parts),
        keypoints=torch.where(flip[:, None, None], mirrored, keypoints),
        index=batch.index,
    )


def run_model(model: WarpNet, batch: NetBatch, bf16: bool, device_type: str) -> WarpOutput:
    channels_last = torch.channels_last
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
        return model(
            batch.garment.contiguous(memory_format=channels_last),
            batch.garment_mask,
            batch.person_input.contiguous(memory_format=channels_last),
        )


def sample_grid(batch: NetBatch, output: WarpOutput, rows: int = 4) -> np.ndarray:
    """(rows*H, 5*W, 3) uint8: garment | person | warped garment | warped mask over person | target."""

    def rgb(x: torch.Tensor) -> torch.Tensor:
        return ((x.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu()

    n = min(rows, batch.person.shape[0])
    red = torch.tensor([1.0, -1.0, -1.0], device=batch.person.device).view(1, 3, 1, 1)
    overlay = batch.person[:n] * 0.5 + red * 0.5
    mask = output.mask[:n].float()
    overlay = batch.person[:n] * (1 - mask) + overlay * mask
    columns = [
        batch.garment[:n],
        batch.person[:n],
        output.garment[:n],
        overlay,
        garment_target(batch.person[:n], batch.region[:n]),
    ]
    grid = torch.cat([rgb(c.detach()) for c in columns], dim=2)
    return grid.reshape(-1, grid.shape[2], 3).numpy()


def describe_terms(means: dict[str, float]) -> str:
    """The loss terms of a progress line (mean total, mask, L1, VGG and smoothness terms)."""
    return (
        f"loss {means['total']:.4f} mask {means['mask']:.4f} l1 {means['l1']:.4f} "
        f"vgg {means['perceptual']:.4f} tv {means['smoothness']:.4f}"
        + (f" ssim {means['ssim']:.4f}" if means.get("ssim") else "")
    )


def train_warp(args: WarpTrainArgs) -> WarpNet:
    """Train (or resume) the warping module; returns the EMA model, also saved to `<out>/final`."""
    from fipviton.training.common import TrainLoop

    loop = TrainLoop(args)
    log, accelerator = loop.log, loop.accelerator
    config = WarpConfig.preset(args.preset)
    if args.init_weights is not None:
        # Fine-tuning keeps the network it starts from (e.g. the shipped one's full-size level), not the preset's.
        config = WarpNet.saved_config(args.init_weights)
    if not args.cross_attention:
        config.cross_attention = False
    if args.fine_channels is not None:
        config.fine_channels = args.fine_channels
    saved = loop.saved_config()
    if saved is not None:
        config = WarpConfig.from_dict(saved)
    t0 = time.perf_counter()
    dataset: WarpCache | WarpPackDataset
    if args.packs:
        dataset = WarpPackDataset(args.packs)
        if dataset.image_size[0] < config.size[0] or dataset.image_size[1] < config.size[1]:
            sizes = f"{dataset.image_size}, smaller than the network's {tuple(config.size)}"
            raise DatasetError(f"the packs hold person and garment images at {sizes}")
        source = f"{len(args.packs)} pack(s), images at {dataset.image_size}"
    else:
        with accelerator.main_process_first():
            source = str(build_cache(args.data, "train", cache_root=args.cache_root, limit=args.limit))
        dataset = WarpCache(source)
    log.log(f"data: {len(dataset)} training pairs from {source} ({time.perf_counter() - t0:.1f} s)")

    model = WarpNet(config)
    loop.warm_start(model, args.init_weights)
    model = loop.start(model, list(model.parameters()), config.to_dict(), channels_last=True)
    loss_fn = WarpLoss(
        WarpLossWeights(
            perceptual=args.perceptual_weight,
            perceptual_layers=args.perceptual_layers,
            perceptual_samples=args.perceptual_samples,
            ssim=args.ssim_weight,
        )
    ).to(loop.device)
    log.log(
        f"warp {args.preset}: {count_parameters(model):,} parameters, cross-attention {config.cross_attention}, "
        f"full-size flow level {config.fine_channels or 'off'}, "
        f"net size {tuple(config.size)}, device {loop.device} x{accelerator.num_processes}, bf16 {loop.bf16}"
    )
    size = tuple(config.size)

    def load(indices: np.ndarray) -> NetBatch:
        # On the device before the flip: on a GPU the flip and the one-hot maps cost it little, while on the CPU
        # they took ~5x the collation of a 64-pair batch (110 + 770 ms against 23).
        cached = dataset.collate([dataset[int(i)] for i in np.sort(indices)]).to(loop.device)
        if args.flip:
            flip = torch.from_numpy(loop.rng.random(len(indices)) < 0.5).to(loop.device)
            cached = flip_batch(cached, flip)
        return to_network_size(cached, size)

    def step(batch: NetBatch) -> tuple[torch.Tensor, dict[str, float], WarpOutput]:
        output = run_model(model, batch, loop.bf16, loop.device.type)
        loss, terms = loss_fn(output, batch.garment_mask, batch.person, batch.region, batch.garment)
        return loss, terms, output

    # sample_first: a grid after step 1 shows the inputs and what the run starts from.
    loop.run(len(dataset), load, step, sample_grid, describe=describe_terms, sample_first=True)
    return loop.finish(WarpNet(config))
