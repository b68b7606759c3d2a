"""Time the try-on module on this CPU: single step vs N-step DDIM, batch 1 and 8, and training throughput.

Usage: `python benchmarks/bench_tryon.py [--preset cpu-256] [--weights DIR] [--batch-sizes 1 8]
[--ddim-steps 50] [--repeat N] [--threads N] [--precision fp32|bf16|auto] [--train-steps N]
[--set KEY=JSON ...] [--json]` (`--set` overrides TryOnConfig fields, to compare variants)

Random weights of the preset unless --weights is given (the same network, so the same time). Reports, per
batch size, milliseconds per image (median over --repeat runs after one warm-up) of

* `single`: one network call at t* on the noise condition image (what ships),
* `ddim`: --ddim-steps DDIM steps from pure noise (the diffusion baseline of the speed comparison),

the FLOPs of one call (torch's FlopCounterMode; independent of machine load), and, with --train-steps > 0,
training images per second (batch 8, fwd + bwd + AdamW; perceptual term off unless --perceptual).

A reference matmul rate (2048x2048 fp32) is measured in the same run: on a shared machine it shows how much
of the CPU this process actually had (about 180 GFLOP/s on an idle 2-core EPYC).

Measured 2026-11-25 on the 2-core AMD EPYC (AVX2 only: no AVX-512-BF16/AMX), random weights, cpu-256
(4.25 M UNet + 0.33 M encoder, 4.8 GFLOP per call), while two other trainings ran (load average 4-5; the
1-thread reference matmul reached 59 GFLOP/s), `--threads 1`, fp32:

| batch | single step, ms/img | 50 DDIM steps, ms/img | ratio |
|-------|---------------------|-----------------------|-------|
| 1     | 180                 | 8,310                 | 46x   |
| 8     | 193                 | 9,118                 | 47x   |

Training, batch 8, fp32: 1.87 img/s without the VGG term, 1.31 img/s with it (3 layers, 96x72 crops).
bf16 autocast on this CPU: 1,105 ms/img single step and 0.21 img/s training (5-7x slower than fp32), so
`auto` precision keeps fp32 here. With two threads on the loaded machine OpenMP spin-waiting made a call
~30x slower: use `--threads 1` while other jobs run. On an idle machine expect about 3x the speed above.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fipviton.tryon import TryOnConfig, TryOnInputs, TryOnModel, count_parameters
from fipviton.tryon.inputs import random_inputs as make_random_inputs


def random_inputs(config: TryOnConfig, batch: int, seed: int = 0) -> TryOnInputs:
    return make_random_inputs(tuple(config.image_size), batch, seed)


def matmul_gflops(seconds: float = 1.0) -> float:
    a = torch.randn(2048, 2048)
    a @ a
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ a
        count += 1
    return count * 2 * 2048**3 / (time.perf_counter() - start) / 1e9


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: oneDNN kernel selection
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu-256")
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--ddim-steps", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ddim-repeat", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    parser.add_argument("--train-steps", type=int, default=4)
    parser.add_argument("--perceptual", action="store_true", help="include the VGG term in the training timing")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=JSON")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.overrides)}

    if args.threads:
        torch.set_num_threads(args.threads)
    from fipviton.training.common import cpu_has_fast_bf16

    bf16 = args.precision == "bf16" or (args.precision == "auto" and cpu_has_fast_bf16())
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else nullcontext

    torch.manual_seed(0)
    if args.weights is not None:
        model = TryOnModel.from_pretrained(args.weights)
    else:
        model = TryOnModel(TryOnConfig.from_preset(args.preset, **overrides)).eval()
    model = model.to(memory_format=torch.channels_last)
    config = model.config
    report: dict = {
        "preset": config.preset,
        "overrides": overrides,
        "image_size": list(config.image_size),
        "unet_parameters": count_parameters(model.unet),
        "encoder_parameters": count_parameters(model.garment_encoder),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "bf16": bf16,
        "loadavg_1min": round(os.getloadavg()[0], 2),
        "matmul_gflops_before": round(matmul_gflops(), 1),
    }
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.generate(random_inputs(config, 1))
    report["gflop_per_call"] = round(counter.get_total_flops() / 1e9, 2)

    rows = []
    for batch in args.batch_sizes:
        inputs = random_inputs(config, batch)
        with torch.inference_mode(), autocast():
            single = timed(lambda inputs=inputs: model.generate(inputs), args.repeat)
            ddim = timed(
                lambda inputs=inputs: model.generate(inputs, steps=args.ddim_steps, start="noise"), args.ddim_repeat
            )
        rows.append(
            {
                "batch": batch,
                "single_ms_per_image": round(single * 1000 / batch, 1),
                f"ddim{args.ddim_steps}_ms_per_image": round(ddim * 1000 / batch, 1),
                "speedup": round(ddim / single, 1),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    report["inference"] = rows

    if args.train_steps > 0:
        from fipviton.tryon.losses import TryOnLoss

        model.train()
        loss_fn = TryOnLoss(
            perceptual_weight=0.2 if args.perceptual else 0.0, perceptual_layers=3, perceptual_crop=(96, 72)
        )
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        inputs = random_inputs(config, 8)

        def step() -> None:
            with autocast():
                x_t, t, target, _ = model.diffusion.training_example(model, inputs)
                prediction = model(x_t, t, inputs)
                image = model.decode(prediction) if loss_fn.needs_image else None
            loss, _ = loss_fn(prediction, target, image, inputs.person, inputs.agnostic_mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        seconds = timed(step, args.train_steps)
        report["train_images_per_s_batch8"] = round(8 / seconds, 2)
        report["train_perceptual"] = bool(args.perceptual)
        report["epoch_minutes_5459"] = round(5459 / (8 / seconds) / 60, 1)
    report["matmul_gflops_after"] = round(matmul_gflops(), 1)
    report["loadavg_1min_after"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
