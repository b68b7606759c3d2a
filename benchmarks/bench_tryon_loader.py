"""Time how fast the try-on trainer builds its batches (`fipviton.training.tryon.BatchLoader`), per thread count.

Usage: `python benchmarks/bench_tryon_loader.py (--pack PREFIX ... | --data DIR) [--threads 1 2 4]
[--batch-size 32] [--batches 20] [--flip-prob 0.5] [--shrink-prob 0.3] [--backdrop-prob 0.5] [--json]`

Why: on a lent GPU one thread of per-item augmentation held each training run at ~100 images/s while the GPU
waited (session 17). The trainer now builds each batch one step ahead, its items in `--loader-threads`
threads; this measures what the threads give on the machine it runs on, without a network: the same
batches (same seed) built by each thread count in turn, images per second as the median over --batches
batches after one warm-up batch. The default augmentation is the shipped try-on recipe's (flip 0.5, shrink
0.3, backdrop 0.5). Data: packs (`fipviton data pack-tryon`), or the training caches of `--data` (built on
first use, minutes). The batches stay on the CPU (`--device cuda` moves them, as training does).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fipviton.training.tryon import BatchLoader, TryOnTrainArgs, prepare_cache_dataset
from fipviton.tryon.dataset import Augmentation, TryOnItems


def load_dataset(args: argparse.Namespace, augmentation: Augmentation) -> TryOnItems:
    if args.pack:
        from fipviton.tryon.pack import PackDataset

        return PackDataset(args.pack, augmentation)
    options = TryOnTrainArgs(data=args.data, out=Path("unused"), flip_prob=augmentation.flip_prob)
    dataset = prepare_cache_dataset(options)
    assert isinstance(dataset, TryOnItems)
    dataset.augmentation = augmentation
    return dataset


def images_per_second(loader: BatchLoader, batches: list[np.ndarray], seed: int) -> list[float]:
    """Images per second of each batch (the first one, a warm-up, left out)."""
    rates = []
    for i, indices in enumerate(batches):
        rng = np.random.default_rng((seed, i))  # the same batches for every thread count
        start = time.perf_counter()
        inputs = loader(indices, rng)
        if inputs.person is not None and inputs.person.is_cuda:
            torch.cuda.synchronize()
        if i:
            rates.append(len(indices) / (time.perf_counter() - start))
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pack", type=Path, action="append", help="a pack prefix (repeatable)")
    source.add_argument("--data", type=Path, help="dataset folder: its training caches")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--flip-prob", type=float, default=0.5)
    parser.add_argument("--shrink-prob", type=float, default=0.3)
    parser.add_argument("--backdrop-prob", type=float, default=0.5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the collate's tensor work: one thread, as beside a training step
    augmentation = Augmentation(
        flip_prob=args.flip_prob, shrink_prob=args.shrink_prob, backdrop_prob=args.backdrop_prob
    )
    dataset = load_dataset(args, augmentation)
    order = np.random.default_rng(args.seed).permutation(len(dataset))
    count = min(args.batches + 1, len(dataset) // args.batch_size)
    batches = [order[i * args.batch_size : (i + 1) * args.batch_size] for i in range(count)]
    size = tuple(np.asarray(dataset.record(0)["person"]).shape[:2])
    results: list[dict[str, float]] = []  # in the order run (a thread count given twice is run twice)
    for threads in args.threads:
        loader = BatchLoader(dataset, dataset.collate, size, torch.device(args.device), threads)
        try:
            rate = statistics.median(images_per_second(loader, batches, args.seed))
        finally:
            loader.close()
        results.append({"threads": threads, "images_per_second": rate})
    report = {
        "runs": results,
        "batch_size": args.batch_size,
        "batches": count - 1,
        "pairs": len(dataset),
        "augmentation": asdict(augmentation),
        "cpus": len(os.sched_getaffinity(0)),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for row in results:
            print(
                f"{row['threads']} thread(s): {row['images_per_second']:.0f} images/s "
                f"(median of {count - 1} batches of {args.batch_size})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
