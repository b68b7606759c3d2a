"""Segmentation metrics from an accumulated confusion matrix: per-class IoU, mean IoU, pixel accuracy.

The confusion matrix is summed over the whole dataset before any ratio is taken (the standard
dataset-level mIoU, as in the Cityscapes/CIHP evaluation scripts), not averaged per image. A class that
appears neither in the ground truth nor in the predictions of the whole dataset has no IoU: it is excluded
from the mean and listed in `absent`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class SegmentationReport:
    """miou: mean over present classes, in [0, 1]; per_class: name -> IoU or None when absent."""

    miou: float
    per_class: dict[str, float | None]
    pixel_accuracy: float
    count: int
    absent: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "miou": self.miou,
            "per_class": self.per_class,
            "pixel_accuracy": self.pixel_accuracy,
            "count": self.count,
            "absent": self.absent,
        }

    def table(self) -> str:
        """A Markdown table of per-class IoU followed by the summary."""
        lines = ["| class | IoU |", "|---|---|"]
        for name, iou in self.per_class.items():
            lines.append(f"| {name} | {'absent' if iou is None else f'{iou:.3f}'} |")
        lines.append(f"| **mean IoU** | **{self.miou:.3f}** |")
        lines.append(f"| pixel accuracy | {self.pixel_accuracy:.3f} |")
        return "\n".join(lines)


class ConfusionMatrix:
    """Accumulates a (num_classes, num_classes) matrix: rows = ground truth, columns = prediction.

    Pixels whose ground truth equals `ignore_index` (or lies outside [0, num_classes)) are skipped.
    """

    def __init__(self, num_classes: int, names: Sequence[str] | None = None, ignore_index: int | None = 255) -> None:
        self.num_classes = num_classes
        self.names = tuple(names) if names is not None else tuple(str(i) for i in range(num_classes))
        if len(self.names) != num_classes:
            raise ValueError("one name per class")
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.count = 0

    def update(self, target: np.ndarray, prediction: np.ndarray) -> None:
        """Add one map or a batch: integer arrays of the same shape (..., H, W)."""
        if target.shape != prediction.shape:
            raise ValueError(f"shape mismatch: target {target.shape} vs prediction {prediction.shape}")
        t = np.asarray(target).astype(np.int64).ravel()
        p = np.asarray(prediction).astype(np.int64).ravel()
        valid = (t >= 0) & (t < self.num_classes)
        if self.ignore_index is not None:
            valid &= t != self.ignore_index
        p = np.clip(p, 0, self.num_classes - 1)
        self.matrix += np.bincount(t[valid] * self.num_classes + p[valid], minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )
        self.count += 1 if target.ndim <= 2 else int(np.prod(target.shape[:-2]))

    def merge(self, other: ConfusionMatrix) -> None:
        self.matrix += other.matrix
        self.count += other.count

    def iou(self) -> np.ndarray:
        """Per-class IoU (num_classes,) float64; NaN for classes absent from both ground truth and predictions."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def report(self) -> SegmentationReport:
        iou = self.iou()
        total = self.matrix.sum()
        present = ~np.isnan(iou)
        return SegmentationReport(
            miou=float(np.nanmean(iou)) if present.any() else 0.0,
            per_class={n: (None if np.isnan(v) else float(v)) for n, v in zip(self.names, iou, strict=True)},
            pixel_accuracy=float(np.diag(self.matrix).sum() / total) if total else 0.0,
            count=self.count,
            absent=[n for n, ok in zip(self.names, present, strict=True) if not ok],
        )


class MissedPixels:
    """Per image, the ground-truth pixels of each class that the prediction calls something else.

    `update(target, prediction)` once per image, in order; `worst(n)` then names, per class, the n images that
    miss the most of its pixels and what they were mostly called instead. It finds where a mean IoU is lost,
    often a handful of images whose labels are wrong (e.g. trousers labelled as legs in pseudo-labels).
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.per_image: list[np.ndarray] = []  # (num_classes, num_classes) int64 confusion of one image

    def update(self, target: np.ndarray, prediction: np.ndarray) -> None:
        one = ConfusionMatrix(len(self.names), self.names)
        one.update(target, prediction)
        self.per_image.append(one.matrix)

    def worst(self, n: int, image_names: Sequence[str]) -> dict[str, list[dict]]:
        """{class: [{image, missed, of, predicted_as}, ...]} (at most n per class, most missed first); classes
        with no missed pixel are left out. image_names: one per `update`, in the same order."""
        if len(image_names) != len(self.per_image):
            raise ValueError(f"{len(image_names)} names for {len(self.per_image)} images")
        if not self.per_image:
            return {}
        stack = np.stack(self.per_image)  # (images, truth, prediction)
        classes = np.arange(len(self.names))
        off_diagonal = stack.copy()
        off_diagonal[:, classes, classes] = 0
        missed = off_diagonal.sum(2)  # (images, classes)
        out: dict[str, list[dict]] = {}
        for c, name in enumerate(self.names):
            order = [int(i) for i in np.argsort(-missed[:, c], kind="stable")[:n] if missed[i, c] > 0]
            if order:
                out[name] = [
                    {
                        "image": str(image_names[i]),
                        "missed": int(missed[i, c]),
                        "of": int(stack[i, c].sum()),
                        "predicted_as": self.names[int(off_diagonal[i, c].argmax())],
                    }
                    for i in order
                ]
        return out


def evaluate_segmenter(
    predict: Callable[[list[np.ndarray]], list[np.ndarray]],
    samples: Iterable[tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    names: Sequence[str] | None = None,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
    missed: MissedPixels | None = None,
) -> SegmentationReport:
    """Run `predict` over (image (H, W, 3) uint8, ground truth (H, W) int) pairs and accumulate one matrix.

    `predict` maps a list of images to a list of label maps of the same sizes (e.g. `HumanParser.parse_batch`).
    Images of one batch may differ in size. `progress(done)` is called after each batch. `missed`, if given,
    also gets every image's (target, prediction), in the order of `samples`.
    """
    matrix = ConfusionMatrix(num_classes, names)
    batch: list[tuple[np.ndarray, np.ndarray]] = []
    done = 0

    def flush() -> None:
        nonlocal done
        predictions = predict([image for image, _ in batch])
        for (_, target), prediction in zip(batch, predictions, strict=True):
            matrix.update(target, prediction)
            if missed is not None:
                missed.update(target, prediction)
        done += len(batch)
        batch.clear()
        if progress is not None:
            progress(done)

    for pair in samples:
        batch.append(pair)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return matrix.report()
