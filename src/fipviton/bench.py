"""`fipviton bench`: how fast the shipped pipeline is on this machine, stage by stage, and how much memory it takes.

Measured in one process, one run, so that ratios compare like with like on a noisy machine:

- per-stage seconds (analysis, agnostic, warp, try-on, post-process) and end to end, median and spread
  (min, max) over `repeat` runs after one warm-up, for a 1024x768 photo (a bundled VITON-HD example pair)
  and for the same photo at 256x192;
- the single-step try-on against the same network sampled with an N-step DDIM (default 50), end to end on
  the 1024x768 photo: `speedup_vs_50_steps` is the ratio of the two end-to-end medians (and
  `speedup_tryon_stage` the ratio of the try-on stage alone);
- the same 1024x768 pair with `mirror_average` (the try-on network on the photo and its mirror image): its
  end-to-end median and `mirror_average_cost`, the ratio to the plain run's;
- networks only (warping module + try-on module, one call each, no analysis), at 256x192, images per second
  at batch 1 and 8 (the inputs of the example pair, repeated);
- peak resident memory of the process (`ru_maxrss`), after all of the above.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np
import torch

from fipviton.pipeline import STAGES, TryOnPipeline, TryOnResult


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(values), 4),
        "min_s": round(min(values), 4),
        "max_s": round(max(values), 4),
    }


def _stage_table(runs: list[TryOnResult]) -> dict[str, dict[str, float]]:
    return {name: _spread([r.timings[name] for r in runs]) for name in (*STAGES, "total")}


def _repeat(call: Callable[[], TryOnResult], repeat: int) -> list[TryOnResult]:
    call()  # warm-up: model loading, oneDNN kernel choice, MediaPipe graph start
    return [call() for _ in range(repeat)]


def _network_throughput(pipeline: TryOnPipeline, result: TryOnResult, batch: int, repeat: int) -> float:
    """Images per second of the warping + try-on networks on a batch of `batch` copies of one pair at 256x192."""
    from fipviton.tryon.inputs import inputs_from_arrays
    from fipviton.warp.conditioning import image_to_tensor, mask_to_tensor, person_input_from_maps

    size = tuple(pipeline.tryon.config.image_size)
    h, w = size

    def small(image: np.ndarray, nearest: bool = False) -> np.ndarray:
        return cv2.resize(image, (w, h), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)

    person = small(result.person)
    garment = small(result.garment)
    garment_mask = small(result.garment_analysis.mask.astype(np.uint8), nearest=True)
    parts = small(result.analysis.body_parts, nearest=True)
    agnostic_mask = small(result.agnostic.mask.astype(np.uint8), nearest=True)
    warp_person = person_input_from_maps(
        result.analysis.body_parts, result.agnostic.parsing, result.analysis.keypoints, pipeline.warp.config.size
    ).expand(batch, -1, -1, -1)
    garments = image_to_tensor(garment)[None].expand(batch, -1, -1, -1).contiguous()
    masks = mask_to_tensor(garment_mask)[None].expand(batch, -1, -1, -1).contiguous()

    @torch.no_grad()
    def call() -> None:
        out = pipeline.warp(garments, masks, warp_person, size=size)
        warped = ((out.garment.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        warped_mask = (out.mask[:, 0].clamp(0, 1) * 255).round().byte().numpy()
        items = [
            {
                "person": person,
                "agnostic_mask": agnostic_mask,
                "warped": warped[i],
                "warped_mask": warped_mask[i],
                "body_parts": parts,
                "garment": garment,
            }
            for i in range(batch)
        ]
        inputs = inputs_from_arrays(items)
        inputs.person = None
        pipeline.tryon.generate(inputs, steps=1)

    call()
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return batch / statistics.median(seconds)


def run_bench(repeat: int = 5, ddim_steps: int = 50, ddim_repeat: int = 2) -> dict:
    """Run every measurement of the module docstring with the shipped weights; returns one JSON-able dict."""
    from fipviton.examples import example_pairs
    from fipviton.imageio import load_image

    pair = example_pairs()[0]
    person = load_image(pair.person)
    garment = load_image(pair.garment)
    if person.shape[:2] != (1024, 768):
        person = cv2.resize(person, (768, 1024), interpolation=cv2.INTER_AREA)
    person_256 = cv2.resize(person, (192, 256), interpolation=cv2.INTER_AREA)
    garment_256 = cv2.resize(garment, (192, 256), interpolation=cv2.INTER_AREA)

    started = time.perf_counter()
    pipeline = TryOnPipeline.from_pretrained()
    load_seconds = time.perf_counter() - started
    full = _repeat(lambda: pipeline(person, garment, pair.category), repeat)
    small = _repeat(lambda: pipeline(person_256, garment_256, pair.category), repeat)

    mirrored = TryOnPipeline(pipeline.parser, pipeline.warp, pipeline.tryon, pipeline.postprocess, mirror_average=True)
    averaged = _repeat(lambda: mirrored(person, garment, pair.category), repeat)
    ddim = TryOnPipeline(pipeline.parser, pipeline.warp, pipeline.tryon, pipeline.postprocess, steps=ddim_steps)
    slow = [ddim(person, garment, pair.category) for _ in range(ddim_repeat)]
    single_median = statistics.median(r.timings["total"] for r in full)
    ddim_median = statistics.median(r.timings["total"] for r in slow)
    single_tryon = statistics.median(r.timings["tryon"] for r in full)
    ddim_tryon = statistics.median(r.timings["tryon"] for r in slow)
    averaged_median = statistics.median(r.timings["total"] for r in averaged)

    throughput = {f"batch{b}": round(_network_throughput(pipeline, small[0], b, repeat), 2) for b in (1, 8)}
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
    return {
        "speedup_vs_50_steps" if ddim_steps == 50 else f"speedup_vs_{ddim_steps}_steps": round(
            ddim_median / single_median, 2
        ),
        "speedup_tryon_stage": round(ddim_tryon / single_tryon, 2),
        "end_to_end_1024x768_median_s": round(single_median, 4),
        "end_to_end_1024x768_ddim_median_s": round(ddim_median, 4),
        "end_to_end_256x192_median_s": round(statistics.median(r.timings["total"] for r in small), 4),
        "end_to_end_1024x768_mirror_average_median_s": round(averaged_median, 4),
        "mirror_average_cost": round(averaged_median / single_median, 2),
        "networks_256x192_batch8_images_per_s": throughput["batch8"],
        "networks_256x192_batch1_images_per_s": throughput["batch1"],
        "peak_rss_mb": round(peak_rss_mb, 1),
        "stages_1024x768": _stage_table(full),
        "stages_256x192": _stage_table(small),
        "ddim_steps": ddim_steps,
        "repeat": repeat,
        "ddim_repeat": ddim_repeat,
        "model_load_s": round(load_seconds, 3),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "loadavg_1min": round(os.getloadavg()[0], 2),
        "example": pair.name,
    }
