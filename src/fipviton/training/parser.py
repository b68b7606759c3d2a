"""Training the human parser on VITON 256x192 person images and their `image-parse-new` maps.

Inputs are decoded once into a uint8 numpy cache (`<cache>/parser_<dataset>_<split>_<H>x<W>.npz`), so a
step costs only augmentation and the network. Augmentation (batched, in torch): horizontal flip with the
left/right label swap, random scale / rotation / translation, colour jitter, and replacement of the
near-white VITON background by random colours and smooth patterns (the parser must work on other photos).
Loss: class-weighted cross-entropy + soft Dice (rare classes count as much as common ones in mIoU).
The weighting and the oversampling of rare classes make the network over-predict them; optionally
(`calibrate_count`), `fit_logit_bias` fits one logit offset per class on training images (maximising their
mIoU), stored in the config and applied at inference. It raises VITON's mIoU but follows VITON's label prior
(it turned a tattooed forearm into background), so the shipped weights do not use it. What they use instead
is a last stage with unweighted cross-entropy (`class_weight_power=0`), which calibrates per pixel.

`train(TrainOptions)` is what `fipviton train parser` calls. It runs on the shared `TrainLoop` of the warping and
try-on trainers (resume, EMA, cosine schedule with an optional time budget, checkpoints, logs); checkpoints, logs,
validation lines and sample grids go to `out`.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from fipviton.analysis.parser import HumanParser, ParserConfig, check_scales, count_parameters
from fipviton.errors import DatasetError, WeightsError
from fipviton.labels import FLIP_SWAP, LABEL_NAMES, NUM_LABELS, colorize_labels
from fipviton.training.common import RunLogger, TrainRunOptions, average_states

if TYPE_CHECKING:
    from fipviton.eval.segmentation import SegmentationReport


@dataclass(kw_only=True)
class TrainOptions(TrainRunOptions):
    """Options of `fipviton train parser`: the shared `TrainRunOptions` (with the parser's defaults) and its own.

    sample_every: steps between validations (mIoU on `val_count` images) with a sample grid; and the last step.
    cache_root:   folder for the decoded arrays (None: decode on every run and keep nothing).
    init_weights: a saved parser folder (same network as `config`) whose weights a fresh run starts from, with
                  a new optimizer and schedule; ignored when resuming.
    teacher:      a saved parser folder (any network). Its logits with test-time flip and `teacher_scales` (5x
                  its one-pass cost for (1, 1.25)) are computed once per training image, kept at half the input
                  size in `<out>/teacher_logits.npy`, augmented with the image, and the network also learns
                  them (`distill_weight` x KL divergence per pixel): one pass that learns what the averaged
                  passes see (self-distillation when the teacher is the network's own start).
    """

    data: Path
    config: str = "default"
    steps: int = 3000
    batch_size: int = 12
    lr: float = 3e-3
    warmup: int = 150
    log_every: int = 20
    sample_every: int = 250
    ckpt_every: int = 100
    keep: int = 3
    mixed_precision: str = "no"  # bf16 autocast made this depthwise network ~8x slower on this CPU
    ema_decay: float = 0.998
    grad_clip: float | None = None
    lr_final_ratio: float = 0.02
    dice_weight: float = 0.5
    val_count: int = 200
    holdout: int = 0  # the last N training images are not trained on and are the validation set (0: test images)
    background_p: float = 0.5
    rare_boost: float = 8.0  # images with rare classes (legs, shoes, accessories) are drawn up to this much more
    class_weight_power: float = 0.5  # cross-entropy class weights (median freq / freq) ** this; 0: unweighted
    low_res_until: int = 0  # steps before this one train at half the input size (4x cheaper), then full size
    calibrate_count: int = 0  # training images for a logit-bias fit after training (0: none; opt-in, see the card)
    calibrate_only: bool = False  # only fit the logit bias of <out>/final and save it there again
    calibrate_min_images: int = 50  # classes in fewer calibration images keep logit offset 0
    init_weights: Path | None = None
    teacher: Path | None = None  # a saved parser whose test-time-augmented logits are soft targets (distillation)
    teacher_scales: tuple[float, ...] = (1.0, 1.25)  # the teacher's test-time scales (always with flip)
    distill_weight: float = 1.0  # weight of KL(teacher || network) per pixel, beside the labels' loss

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.holdout < 0:
            raise ValueError(f"holdout must be >= 0, got {self.holdout}")
        if self.distill_weight < 0:
            raise ValueError(f"distill_weight must be >= 0, got {self.distill_weight}")
        if self.teacher is not None:
            check_scales(self.teacher_scales)
        if self.calibrate_count < 0:
            raise ValueError(f"calibrate_count must be >= 0, got {self.calibrate_count}")
        if self.calibrate_only and self.calibrate_count == 0:
            raise ValueError("calibrate_only needs calibrate_count > 0 (training images for the fit, e.g. 1500)")
        parser_config(self.config)  # an unknown preset or a bad config file fails here, before any data is read


def parser_config(name: str) -> ParserConfig:
    """A `ParserConfig` preset by name (`ParserConfig.preset`), or read from a JSON file of its fields
    (architecture experiments without a new preset)."""
    if name.endswith(".json"):
        path = Path(name)
        if not path.is_file():
            raise ValueError(f"parser config file {path} does not exist")
        try:
            return ParserConfig.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError, WeightsError) as exc:
            raise ValueError(f"{path}: not a parser config ({exc})") from exc
    return ParserConfig.preset(name)


# ----- data -----


def build_cache(
    data: Path, split: str, size: tuple[int, int], cache_dir: Path | None, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode (and resize to `size` = (H, W)) every person image and parsing map of a split.

    Returns (images (N, H, W, 3) uint8, parsing (N, H, W) uint8 internal labels, names list[str]).
    The arrays are stored in `cache_dir` (when given) and reused on the next call, unless the code that
    decodes the data has changed since.
    """
    import cv2

    from fipviton.data import open_dataset
    from fipviton.data.readers import READER_CODE
    from fipviton.training.common import source_fingerprint

    data = Path(data)
    name = f"parser_{data.name}_{split}_{size[0]}x{size[1]}" + (f"_n{limit}" if limit else "")
    path = Path(cache_dir) / f"{name}.npz" if cache_dir is not None else None
    code = source_fingerprint(*READER_CODE)  # a change to the decoding code rebuilds the cache
    if path is not None and path.is_file():
        with np.load(path) as stored:
            if "code" in stored.files and str(stored["code"]) == code:
                return stored["images"], stored["parsing"], list(stored["names"])
    reader = open_dataset(data)
    pairs = reader.pairs(split, paired=True)
    seen: set[str] = set()
    unique = [p for p in pairs if not (p.person in seen or seen.add(p.person))]
    if limit:
        unique = unique[:limit]
    h, w = size
    images = np.zeros((len(unique), h, w, 3), dtype=np.uint8)
    parsing = np.zeros((len(unique), h, w), dtype=np.uint8)
    names = []
    for i, pair in enumerate(unique):
        sample = reader.load(split, pair)
        if sample.parsing is None:
            raise DatasetError(f"{pair.person}: no parsing map")
        image, labels = sample.person, sample.parsing
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
            labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
        images[i], parsing[i] = image, labels
        names.append(pair.person)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")  # per process: two runs may build the same cache
        np.savez(tmp, images=images, parsing=parsing, names=np.array(names), code=np.array(code))
        tmp.replace(path)
    return images, parsing, names


def resize_arrays(images: np.ndarray, labels: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) images and (N, H, W) label maps resized to `size` = (h, w) with the dataset layer's
    `resize_image` (area when shrinking) and `resize_nearest`; unchanged if they already have it."""
    if tuple(images.shape[1:3]) == tuple(size):
        return images, labels
    from fipviton.data.torch_dataset import resize_image, resize_nearest

    return np.stack([resize_image(im, size) for im in images]), np.stack([resize_nearest(lb, size) for lb in labels])


_SWAP = torch.arange(256, dtype=torch.long)
for _left, _right in FLIP_SWAP:
    _SWAP[int(_left)], _SWAP[int(_right)] = int(_right), int(_left)


def augment(
    images: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int],
    background_p: float = 0.5,
    device: torch.device | str = "cpu",
    soft: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Random augmentation of a batch, computed on `device` (on a GPU the CPU would otherwise be the limit).

    images (B, H, W, 3) uint8, labels (B, H, W) uint8 -> x (B, 3, h, w) float in [0, 1], y (B, h, w) long,
    with (h, w) = `size`, both on `device`. soft: None, or (B, C, H', W') logits of a teacher at any size
    (e.g. H / 2), which get the same flip (left/right channels swapped) and geometry, bilinearly: returned as
    (B, C, h, w) float, else None. The random draws come from `rng` (and torch's generator for the noise
    backgrounds), so a given seed gives the same parameters on any device, with or without `soft`.
    """
    b = images.shape[0]

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(device)

    x = tensor(images).permute(0, 3, 1, 2).float().div_(255.0)
    y = tensor(labels).long()
    s = None
    if soft is not None:
        s = F.interpolate(tensor(soft).float(), size=images.shape[1:3], mode="bilinear", align_corners=False)
    flip = tensor(rng.random(b) < 0.5)
    if flip.any():
        x[flip] = x[flip].flip(-1)
        y[flip] = _SWAP.to(device)[y[flip].flip(-1)]
        if s is not None:
            s[flip] = s[flip].flip(-1)[:, _SWAP[: s.shape[1]].to(device)]  # the label swap, on channels
    # Affine: scale, rotation, translation (in normalised coordinates; output -> input sampling grid).
    # Mostly zoom-in and small vertical shifts: VITON persons touch the top and bottom edges, and zooming out
    # would smear those edge rows into streaks.
    scale = np.exp(rng.uniform(math.log(0.92), math.log(1.3), b))
    angle = np.deg2rad(rng.uniform(-10, 10, b))
    shift = np.stack([rng.uniform(-0.12, 0.12, b), rng.uniform(-0.05, 0.05, b)], 1)
    aspect = images.shape[1] / images.shape[2]  # H / W: rotations in pixel space, not in the unit square
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    theta = np.zeros((b, 2, 3), dtype=np.float32)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = cos, -sin * aspect, shift[:, 0]
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = sin / aspect, cos, shift[:, 1]
    grid = F.affine_grid(tensor(theta), [b, 3, *size], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    y = (
        F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="border", align_corners=False)[:, 0]
        .round()
        .long()
    )
    if s is not None:
        s = F.grid_sample(s, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # Background replacement: solid colours, smooth colour fields, or noise, with a softened person edge.
    replace = rng.random(b) < background_p
    if replace.any():
        idx = tensor(np.nonzero(replace)[0])
        n = len(idx)
        h, w = size
        kind = rng.integers(0, 3, n)
        coarse = tensor(rng.random((n, 3, 4, 4))).float()
        solid = tensor(kind == 0)
        coarse[solid] = coarse[solid].mean((2, 3), keepdim=True).expand(-1, -1, 4, 4)
        background = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp_(0, 1)
        noisy = tensor(kind == 2)
        if noisy.any():
            noise = torch.randn(int(noisy.sum()), 3, h, w).to(device)  # drawn on the CPU: same on any device
            background[noisy] = (background[noisy] + 0.15 * noise).clamp_(0, 1)
        person = (y[idx] != 0).float()[:, None]
        person = F.avg_pool2d(person, 3, 1, 1)
        x[idx] = x[idx] * person + background * (1 - person)
    # Colour jitter: brightness, contrast, saturation, per-channel gain.
    bright = tensor(rng.uniform(0.75, 1.25, (b, 1, 1, 1))).float()
    contrast = tensor(rng.uniform(0.75, 1.25, (b, 1, 1, 1))).float()
    sat = tensor(rng.uniform(0.6, 1.4, (b, 1, 1, 1))).float()
    gain = tensor(rng.uniform(0.92, 1.08, (b, 3, 1, 1))).float()
    gray = x.mean(1, keepdim=True)
    x = gray + (x - gray) * sat
    mean = x.mean((1, 2, 3), keepdim=True)
    x = ((x - mean) * contrast + mean) * bright * gain
    return x.clamp_(0, 1).contiguous(memory_format=torch.channels_last), y, s


def class_weights(labels: np.ndarray, num_classes: int = NUM_LABELS, power: float = 0.5) -> torch.Tensor:
    """(num_classes,) cross-entropy weights: (median frequency / frequency) ** power, clipped to [0.3, 5]
    (power 0: all 1, plain cross-entropy)."""
    counts = np.bincount(labels.ravel(), minlength=num_classes).astype(np.float64)
    freq = counts / counts.sum()
    present = freq > 0
    median = np.median(freq[present])
    weights = np.where(present, (median / np.maximum(freq, 1e-12)) ** power, 1.0)
    return torch.from_numpy(np.clip(weights, 0.3, 5.0)).float()


def image_weights(labels: np.ndarray, num_classes: int = NUM_LABELS, most: float = 8.0) -> np.ndarray:
    """(N,) sampling weights: an image weighs sqrt(median images per class / images with class c) for its
    rarest class c, clipped to [1, most], so that the few images with shoes or bags are seen more often."""
    present = np.stack([(labels == c).any((1, 2)) for c in range(num_classes)], 1)  # (N, C)
    images_per_class = present.sum(0).astype(np.float64)
    median = np.median(images_per_class[images_per_class > 0])
    rarity = np.clip(np.sqrt(median / np.maximum(images_per_class, 1)), 1.0, most)
    return np.where(present, rarity[None], 1.0).max(1)


def parser_loss(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, dice_weight: float) -> torch.Tensor:
    """Weighted cross-entropy + `dice_weight` * (1 - mean soft Dice over classes present in the batch)."""
    logits = logits.float().contiguous()
    log_prob = F.log_softmax(logits, 1)
    loss = F.nll_loss(log_prob, target, weight=weights.to(logits.device))
    if dice_weight > 0:
        # Per-class soft Dice from sums (scatter_add instead of a one-hot tensor: 10x less memory traffic).
        num_classes = logits.shape[1]
        prob = log_prob.exp()
        flat = target.reshape(-1)
        p_true = prob.gather(1, target[:, None]).reshape(-1)
        inter = torch.zeros(num_classes, device=logits.device).scatter_add(0, flat, p_true)
        count = torch.bincount(flat, minlength=num_classes).float()
        dice = (2 * inter + 1) / (prob.sum((0, 2, 3)) + count + 1)
        loss = loss + dice_weight * (1 - dice[count > 0].mean())
    return loss


def distill_loss(logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """KL(teacher || network) per pixel (summed over classes), averaged over pixels; both (B, C, h, w) logits."""
    return (
        F.kl_div(F.log_softmax(logits.float(), 1), F.log_softmax(teacher.float(), 1), log_target=True, reduction="none")
        .sum(1)
        .mean()
    )


@torch.no_grad()
def teacher_logits(
    teacher: HumanParser, images: np.ndarray, scales: tuple[float, ...], batch_size: int = 16
) -> np.ndarray:
    """(N, C, H / 2, W / 2) float16: `teacher`'s logits for images (N, H, W, 3) uint8 at its input size, with
    test-time flip and `scales`, averaged over 2x2 pixels (the network's finest level is at half size, so
    little is lost, and 5,159 VITON images then take 1.6 GB instead of 6.6)."""
    h, w = images.shape[1:3]
    out = np.zeros((len(images), teacher.config.num_labels, h // 2, w // 2), dtype=np.float16)
    for start in range(0, len(images), batch_size):
        logits = teacher.predict_logits(list(images[start : start + batch_size]), flip=True, scales=scales)
        out[start : start + batch_size] = F.avg_pool2d(torch.stack(logits), 2).numpy()
    return out


def _cached_teacher_logits(opts: TrainOptions, images: np.ndarray, device: torch.device, log: RunLogger) -> np.ndarray:
    """`teacher_logits` of `opts.teacher` for the training images, reused from `<out>/teacher_logits.npy` when
    that was made by the same teacher, scales and images (a resumed run)."""
    import hashlib

    path = opts.out / "teacher_logits.npy"
    teacher_dir = Path(opts.teacher)
    weights = teacher_dir / "model.safetensors"
    key = {
        "teacher": str(teacher_dir.resolve()),
        "weights": hashlib.sha1(weights.read_bytes()).hexdigest() if weights.is_file() else None,
        "scales": list(opts.teacher_scales),
        "images": len(images),
    }
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file() and json.loads(meta.read_text()) == key:
        log.log(f"teacher logits: reused {path}")
        return np.load(path, mmap_mode="r")
    t = time.perf_counter()
    teacher = HumanParser.from_pretrained(teacher_dir, device=device)
    logits = teacher_logits(teacher, images, tuple(opts.teacher_scales))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, logits)
    meta.write_text(json.dumps(key))
    log.log(
        f"teacher logits of {teacher_dir} (flip, scales {list(opts.teacher_scales)}) for {len(images)} images in "
        f"{time.perf_counter() - t:.0f} s: {path}"
    )
    return logits


# ----- validation and pictures -----


@torch.no_grad()
def evaluate_arrays(
    model: HumanParser, images: np.ndarray, labels: np.ndarray, batch_size: int = 16
) -> SegmentationReport:
    """Dataset-level mIoU report of `model` on cached arrays at the model's input size, one network pass per
    image whatever test-time ensemble its config asks for: validation compares networks, at one pass's cost."""
    from fipviton.eval.segmentation import ConfusionMatrix

    matrix = ConfusionMatrix(NUM_LABELS, LABEL_NAMES)
    was_training = model.training
    model.eval()
    for start in range(0, len(images), batch_size):
        preds = model.parse_batch(list(images[start : start + batch_size]), flip=False, scales=(1.0,))
        matrix.update(labels[start : start + batch_size], np.stack(preds))
    model.train(was_training)
    return matrix.report()


def sample_grid(model: HumanParser, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rows of photo | ground truth | prediction (one pass, as `evaluate_arrays`), (n * H, 3 * W, 3) uint8."""
    preds = model.parse_batch(list(images), flip=False, scales=(1.0,))
    rows = [
        np.concatenate([im, colorize_labels(gt), colorize_labels(p)], 1)
        for im, gt, p in zip(images, labels, preds, strict=True)
    ]
    return np.concatenate(rows, 0)


# ----- weight averaging -----


def average_parsers(directories: list[Path]) -> HumanParser:
    """The mean of the weights (and BatchNorm statistics) of saved parsers of one network: a "model soup" of
    runs that share their start (e.g. fine-tunes of the same weights), which is often better than each of them.

    Raises `WeightsError` when fewer than two folders are given or their configs differ.
    """
    if len(directories) < 2:
        raise WeightsError(f"averaging needs at least two parser folders, got {len(directories)}")
    models = [HumanParser.from_pretrained(directory) for directory in directories]
    first = models[0].config.to_dict()
    for directory, model in zip(directories[1:], models[1:], strict=True):
        if model.config.to_dict() != first:
            raise WeightsError(f"{directory} is another network than {directories[0]} (config.json differs)")
    models[0].load_state_dict(average_states([model.state_dict() for model in models]))
    return models[0]


# ----- calibration -----


@torch.no_grad()
def fit_logit_bias(
    model: HumanParser,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    keep_fraction: float = 0.05,
    min_images: int = 50,
    rounds: int = 3,
    batch_size: int = 32,
    seed: int = 0,
) -> tuple[np.ndarray, float, float]:
    """Fit per-class logit offsets that maximise the dataset-level mIoU of `model` on (images, labels).

    images: (N, H, W, 3) uint8 at the model's input size; labels: (N, H, W) uint8 internal labels.
    Coordinate ascent over a grid of offsets, on a pixel sample: every pixel whose label or prediction is
    a rare class (< 1% of the pixels) and `keep_fraction` of the others, counted with inverse-probability
    weights so that the confusion matrix stays unbiased. A class present in fewer than `min_images` of the
    images keeps offset 0: a handful of examples cannot estimate it, and such classes (shoes, accessories in
    VITON) are common in other photos. The model's own `logit_bias` is ignored.
    Returns (bias (num_labels,) float32, mIoU on the sample before, after).
    """
    num = model.config.num_labels
    generator = torch.Generator().manual_seed(seed)
    freq = np.bincount(labels.ravel(), minlength=num)[:num] / labels.size
    rare = torch.from_numpy(freq < 0.01)
    was_training = model.training
    model.eval()
    log_probs, targets, weights = [], [], []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start : start + batch_size]).to(model.device).permute(0, 3, 1, 2).float() / 255
        lp = torch.log_softmax(model(x).float(), 1).permute(0, 2, 3, 1).reshape(-1, num).cpu()
        y = torch.from_numpy(labels[start : start + batch_size].astype(np.int64)).reshape(-1)
        keep_p = torch.where(rare[y] | rare[lp.argmax(1)], 1.0, keep_fraction)
        chosen = torch.rand(len(y), generator=generator) < keep_p
        log_probs.append(lp[chosen])
        targets.append(y[chosen])
        weights.append(1.0 / keep_p[chosen].double())
    model.train(was_training)
    lp, y, w = torch.cat(log_probs), torch.cat(targets), torch.cat(weights)

    def miou(bias: torch.Tensor) -> float:
        pred = (lp + bias).argmax(1)
        conf = torch.bincount(y * num + pred, weights=w, minlength=num * num).reshape(num, num)
        union = conf.sum(0) + conf.sum(1) - conf.diag()
        present = union > 0
        return float((conf.diag()[present] / union[present]).mean())

    images_with = [(labels == k).reshape(len(labels), -1).any(1).sum() for k in range(num)]
    fitted = [k for k in range(num) if images_with[k] >= min_images]
    bias = torch.zeros(num)
    before = best = miou(bias)
    for _ in range(rounds):
        for k in fitted:
            for delta in (-2.0, -1.0, -0.5, -0.25, -0.1, 0.1, 0.25, 0.5, 1.0):
                trial = bias.clone()
                trial[k] += delta
                score = miou(trial)
                if score > best + 1e-5:
                    best, bias = score, trial
    return bias.numpy().astype(np.float32), before, best


def calibrate(model: HumanParser, opts: TrainOptions, images: np.ndarray, labels: np.ndarray, log: RunLogger) -> None:
    """Fit and set `model`'s logit bias on `opts.calibrate_count` random training images."""
    if opts.calibrate_count <= 0:
        return
    t = time.perf_counter()
    rng = np.random.default_rng(opts.seed + 1)
    idx = np.sort(rng.choice(len(images), min(opts.calibrate_count, len(images)), replace=False))
    sub_images, sub_labels = resize_arrays(images[idx], labels[idx], model.config.input_size)
    bias, before, after = fit_logit_bias(
        model, sub_images, sub_labels, seed=opts.seed, min_images=opts.calibrate_min_images
    )
    model.set_logit_bias([round(float(b), 3) for b in bias])
    log.log(
        f"logit bias fitted on {len(idx)} training images in {time.perf_counter() - t:.0f} s: "
        f"mIoU on their pixel sample {before:.4f} -> {after:.4f}; bias {np.round(bias, 2).tolist()}"
    )


# ----- training -----


def train(opts: TrainOptions) -> HumanParser:
    """Train (or resume) a parser; returns the EMA model, also saved with `save_pretrained` to `<out>/final`.

    The loop is the shared `TrainLoop` (resume, EMA, cosine schedule with the time budget, checkpoints); the
    parser brings its data (cached arrays, rare-class oversampling, augmentation on the training device),
    its loss, and a validation at every `sample_every` steps.
    """
    from fipviton.training.common import TrainLoop

    loop = TrainLoop(opts)
    log, device, out = loop.log, loop.device, loop.out
    saved = loop.saved_config()
    # A resumed run keeps the network it started with.
    config = ParserConfig.from_dict(saved) if saved is not None else parser_config(opts.config)
    config.label_names = LABEL_NAMES
    size = config.input_size

    t0 = time.perf_counter()
    images, labels, _ = build_cache(opts.data, "train", (256, 192), opts.cache_root, opts.limit)
    if opts.calibrate_only:
        final = HumanParser.from_pretrained(out / "final")
        calibrate(final, opts, images, labels, log)
        if loop.accelerator.is_main_process:
            final.save_pretrained(out / "final")
            log.log(f"saved {out / 'final'}")
        return final
    if opts.holdout:
        if opts.holdout >= len(images):
            raise DatasetError(f"holdout {opts.holdout} leaves no training images (there are {len(images)})")
        images, val_images = images[: -opts.holdout], images[-opts.holdout :]
        labels, val_labels = labels[: -opts.holdout], labels[-opts.holdout :]
    else:
        val_images, val_labels, _ = build_cache(
            opts.data, "test", (256, 192), opts.cache_root, 64 if opts.limit else None
        )
    stride = max(1, len(val_images) // max(1, opts.val_count))
    val_images, val_labels = val_images[::stride][: opts.val_count], val_labels[::stride][: opts.val_count]
    val_images, val_labels = resize_arrays(val_images, val_labels, size)
    source = f"the last {opts.holdout} training images" if opts.holdout else "test images"
    log.log(
        f"data: {len(images)} train, {len(val_images)} val images from {source} "
        f"({time.perf_counter() - t0:.1f} s to load/cache)"
    )

    model = HumanParser(config)
    weights = class_weights(labels, power=opts.class_weight_power)
    log.log(f"parser {opts.config}: {count_parameters(model):,} parameters; class weights {weights.numpy().round(2)}")
    weights = weights.to(device)
    loop.warm_start(model, opts.init_weights)
    model = loop.start(model, list(model.parameters()), config.to_dict(), channels_last=True)
    eval_model = HumanParser(config).to(device, memory_format=torch.channels_last)  # validation on the GPU too

    def snapshot() -> HumanParser:
        loop.ema.copy_to(eval_model)
        return eval_model.eval()

    soft = _cached_teacher_logits(opts, images, device, log) if opts.teacher is not None else None

    def load(indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        idx = np.sort(indices)
        train_size = (size[0] // 2, size[1] // 2) if loop.step < opts.low_res_until else size
        targets = None if soft is None else soft[idx]
        return augment(images[idx], labels[idx], loop.rng, train_size, opts.background_p, device, targets)

    def step(
        batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
    ) -> tuple[torch.Tensor, dict[str, float], None]:
        x, y, teacher = batch
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=loop.bf16):
            logits = model(x)
        loss = parser_loss(logits, y, weights, opts.dice_weight)
        terms = {"labels": loss.item()}
        if teacher is not None:
            distill = distill_loss(logits, teacher)
            loss = loss + opts.distill_weight * distill
            terms["distill"] = distill.item()
        terms["total"] = loss.item()
        return loss, terms, None

    def validate(_batch: object, _output: None) -> np.ndarray:
        t = time.perf_counter()
        current = snapshot()  # the EMA weights, copied once for the score and the grid
        report = evaluate_arrays(current, val_images, val_labels)
        log.log(
            f"val step {loop.step}: mIoU {report.miou:.4f} pixel acc {report.pixel_accuracy:.4f} "
            f"({time.perf_counter() - t:.1f} s) "
            + " ".join(f"{k}={v:.2f}" for k, v in report.per_class.items() if v is not None)
        )
        log.metrics(loop.step, val_miou=report.miou, val_pixel_accuracy=report.pixel_accuracy)
        return sample_grid(current, val_images[:6:2], val_labels[:6:2])

    sample_weights = image_weights(labels, most=opts.rare_boost) if opts.rare_boost > 1 else None
    loop.run(len(images), load, step, validate, sample_weights=sample_weights)
    final = loop.finish(HumanParser(config))
    if loop.accelerator.is_main_process and not loop.stopped and opts.calibrate_count:
        calibrate(final, opts, images, labels, log)
        final.save_pretrained(out / "final")
        log.log(f"saved {out / 'final'} with the logit bias")
    return final
