"""Helpers every trainer shares: resumable atomic checkpoints, run logging, throughput, weight EMA, LR schedule,
and `TrainLoop`, the loop of the warping-module and try-on trainers around their own data and loss.

Checkpoint layout (one folder per step, under `<out>/checkpoints/`):

    step_000200/
        model.safetensors      model weights (plus `ema.*` entries when an EMA is kept)
        optimizer.pt           optimizer state dict (tensors and numbers only; loaded with weights_only=True)
        rng.safetensors        torch CPU (and CUDA) generator states
        state.json             step, numpy generator state, config, metrics; written last

A checkpoint is written into a temporary folder and renamed into place, so a folder named `step_*` is always
complete; the newest complete one is what `--resume` continues from. Older ones beyond `keep` are deleted.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO, TypeVar, cast

import numpy as np
import torch
from torch import nn

CHECKPOINT_DIR = "checkpoints"
_PREFIX = "step_"


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module inside DDP / torch.compile / accelerate wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def _cpu_state(state: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(out_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX) :]))


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def save_checkpoint(
    out_dir: str | Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    ema: ModelEMA | None = None,
    meta: dict[str, Any] | None = None,
    keep: int = 3,
) -> Path:
    """Write a complete checkpoint for `step` atomically; returns its folder."""
    from safetensors.torch import save_file

    root = Path(out_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{_PREFIX}{step:06d}"
    tmp = root / f".tmp_{final.name}_{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    weights = _cpu_state(unwrap(model).state_dict())
    if ema is not None:
        weights.update(_cpu_state(ema.state_dict(), "ema."))
    save_file(weights, str(tmp / "model.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    generators = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            generators[f"torch_cuda_{i}"] = state
    save_file(generators, str(tmp / "rng.safetensors"))
    state = {"step": step, "numpy_rng": rng.bit_generator.state, "meta": meta or {}, "time": time.time()}
    (tmp / "state.json").write_text(json.dumps(state, indent=2, default=_json_default))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in list_checkpoints(out_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    rng: np.random.Generator | None,
    ema: ModelEMA | None = None,
) -> dict[str, Any]:
    """Restore what `save_checkpoint` wrote; returns the state dict (`step`, `meta`, ...)."""
    from safetensors.torch import load_file

    path = Path(path)
    weights = load_file(str(path / "model.safetensors"))
    model_state = {k: v for k, v in weights.items() if not k.startswith("ema.")}
    unwrap(model).load_state_dict(model_state, strict=True)
    if ema is not None:
        ema_state = {k[len("ema.") :]: v for k, v in weights.items() if k.startswith("ema.")}
        if ema_state:
            ema.load_state_dict(ema_state)
        else:
            ema.copy_from(unwrap(model))
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
    generators = load_file(str(path / "rng.safetensors"))
    torch.set_rng_state(generators["torch_cpu"])
    if torch.cuda.is_available():
        cuda = [generators[k] for k in sorted(generators) if k.startswith("torch_cuda_")]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
    state = json.loads((path / "state.json").read_text())
    if rng is not None:
        rng.bit_generator.state = state["numpy_rng"]
    return state


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")


class RunLogger:
    """Prints lines to stdout and appends them to `<out>/train.log`; metrics go to `<out>/metrics.jsonl`."""

    def __init__(self, out_dir: str | Path, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.enabled = enabled
        self.stream = stream or sys.stdout
        if enabled:
            self.out_dir.mkdir(parents=True, exist_ok=True)

    def log(self, message: str) -> None:
        if not self.enabled:
            return
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} {message}"
        print(line, file=self.stream, flush=True)
        with open(self.out_dir / "train.log", "a") as handle:
            handle.write(line + "\n")

    def metrics(self, step: int, **values: Any) -> None:
        if not self.enabled:
            return
        record = {"step": step, "time": round(time.time(), 2), **values}
        with open(self.out_dir / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record, default=_json_default) + "\n")


class Throughput:
    """Samples per second over the window since the last `rate()` call."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.count = 0

    def add(self, n: int) -> None:
        self.count += n

    def rate(self) -> float:
        now = time.perf_counter()
        value = self.count / max(now - self.start, 1e-9)
        self.start, self.count = now, 0
        return value


class ModelEMA:
    """Exponential moving average of a model's parameters and buffers (kept on the model's device, fp32)."""

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in unwrap(model).state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        # Warm-up: a short run should not average in its random initial weights.
        decay = self.decay if step is None else min(self.decay, (1 + step) / (10 + step))
        for key, value in unwrap(model).state_dict().items():
            shadow = self.shadow[key]
            if value.dtype.is_floating_point:
                shadow.mul_(decay).add_(value.detach().float(), alpha=1 - decay)
            else:
                shadow.copy_(value)

    def copy_from(self, model: nn.Module) -> None:
        self.shadow = {k: v.detach().clone().float() for k, v in unwrap(model).state_dict().items()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:5]}")
        # On the device of the current shadow (the model's): checkpoints load on the CPU.
        self.shadow = {k: state[k].to(self.shadow[k].device).clone().float() for k in self.shadow}

    def copy_to(self, model: nn.Module) -> None:
        target = unwrap(model)
        current = target.state_dict()
        target.load_state_dict({k: v.to(current[k].dtype) for k, v in self.shadow.items()})


def cosine_lr(step: int, total: int, base: float, warmup: int, final_ratio: float = 0.02) -> float:
    """Linear warm-up to `base`, then cosine decay to `base * final_ratio` at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class StopFlag:
    """Turns SIGTERM / SIGINT into a flag, so that a training loop can checkpoint and exit cleanly."""

    def __init__(self) -> None:
        self.stop = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not in the main thread: no signal handling
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.stop = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def infinite_batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Index batches over `n` samples, reshuffled every epoch, forever (the rng makes it resumable)."""
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def weighted_batches(weights: np.ndarray, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Index batches drawn with probability proportional to `weights` (N,), without repeats inside a batch."""
    p = np.asarray(weights, dtype=np.float64)
    p = p / p.sum()
    while True:
        yield rng.choice(len(p), size=batch_size, replace=False, p=p)


def copy_generator(rng: np.random.Generator) -> np.random.Generator:
    """A generator in the same state as `rng` that advances independently of it."""
    copy = np.random.default_rng()
    copy.bit_generator.state = rng.bit_generator.state
    return copy


def set_threads(num_threads: int | None) -> None:
    """Limit intra-op CPU threads (None keeps torch's default)."""
    if num_threads:
        torch.set_num_threads(num_threads)


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (AVX-512-BF16 or AMX); without them bf16 autocast
    is far slower than fp32 (measured 5-10x on an AVX2-only EPYC)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(mixed_precision: str, device_type: str) -> bool:
    """True when training should run under bf16 autocast ("auto": on CUDA, or on a CPU with fast bf16)."""
    if mixed_precision == "auto":
        return device_type == "cuda" or (device_type == "cpu" and cpu_has_fast_bf16())
    return mixed_precision == "bf16"


def source_fingerprint(*modules: str) -> str:
    """A short hash of the code of `modules` (dotted names, e.g. "fipviton.agnostic.build").

    Caches record it in their meta.json with the modules that computed their contents, so that any change to
    that code rebuilds them. A version number bumped by hand was forgotten once: the warping and try-on modules
    were then trained and scored on body-part maps that the code no longer produced. What is hashed is the code
    as Python parses it, without docstrings, comments, type annotations and layout (`_behaviour_of`): an edit
    to those cannot change what the code computes, and used to cost a rebuild of every cache (10-20 minutes).
    """
    import hashlib
    import importlib.util

    digest = hashlib.sha1()
    for name in sorted(set(modules)):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ValueError(f"no source for module {name}")
        code = _behaviour_of(Path(spec.origin).read_text(encoding="utf-8"))
        digest.update(name.encode() + b"\0" + code.encode() + b"\0")
    return digest.hexdigest()[:12]


def _behaviour_of(source: str) -> str:
    """`ast.dump` of a module's source with docstrings and annotations taken out (comments and layout never
    reach the tree). An annotated assignment keeps its target, so a dataclass keeps its fields."""
    import ast

    class Strip(ast.NodeTransformer):
        def generic_visit(self, node: ast.AST) -> ast.AST:
            body = getattr(node, "body", None)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body:
                first = body[0]
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                    node.body = body[1:] or [ast.Pass()]
            if isinstance(node, ast.arg):
                node.annotation = None
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                node.returns = None
            if isinstance(node, ast.AnnAssign):
                node.annotation = ast.Constant(None)
            return super().generic_visit(node)

    return ast.dump(Strip().visit(ast.parse(source)))


def cache_is_current(meta_path: Path, wanted: dict[str, Any]) -> bool:
    """True when a cache's meta.json exists and records every key of `wanted` with the same value."""
    if not meta_path.is_file():
        return False
    meta = json.loads(meta_path.read_text())
    return {k: meta.get(k) for k in wanted} == wanted


def write_cache(out: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write a cache folder: `<name>.npy` per array, then `meta.json` (what `cache_is_current` reads) last.

    Each file is written under a temporary name and renamed into place, so a process that reads (memory-maps)
    the cache while another builds the same one never sees a half-written file.
    """
    out.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        tmp = out / f"{name}.{os.getpid()}.tmp.npy"
        np.save(tmp, array)
        os.replace(tmp, out / f"{name}.npy")
    tmp = out / f"meta.{os.getpid()}.tmp.json"
    tmp.write_text(json.dumps(meta, indent=1) + "\n")
    os.replace(tmp, out / "meta.json")


@dataclass(kw_only=True)
class TrainRunOptions:
    """The options every `TrainLoop` run has (the shared CLI flags, `fipviton.cli._train_options`). Each
    trainer's options (`WarpTrainArgs`, `TryOnTrainArgs`, the parser's `TrainOptions`) extend it and may
    change the defaults.

    sample_every: steps between calls of the trainer's `sample` hook (a grid; the parser validates there too).
    time_limit: seconds of training over all resumed sessions; then checkpoint and stop.
    grad_clip: maximum gradient norm (None: no clipping).
    lr_final_ratio: the cosine schedule ends at `lr * lr_final_ratio`.
    keep: checkpoints kept in `<out>/checkpoints`.
    """

    data: Path | None
    out: Path
    steps: int = 20_000
    batch_size: int = 8
    lr: float = 3e-4
    warmup: int = 200
    resume: bool = False
    limit: int | None = None  # use only the first N training pairs (tests, smoke runs)
    cache_root: Path | None = None
    log_every: int = 25
    sample_every: int = 500
    ckpt_every: int = 250
    seed: int = 0
    threads: int | None = None
    mixed_precision: str = "auto"  # "auto", "no" or "bf16"
    ema_decay: float = 0.999
    time_limit: float | None = None
    weight_decay: float = 1e-4
    grad_clip: float | None = 1.0
    lr_final_ratio: float = 0.05
    keep: int = 2

    def __post_init__(self) -> None:
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.keep < 1:
            raise ValueError(f"keep must be >= 1 checkpoint, got {self.keep}")
        if self.mixed_precision not in ("auto", "no", "bf16"):  # anything else would silently train in fp32
            raise ValueError(f"mixed_precision must be auto, no or bf16, got {self.mixed_precision!r}")


class Pretrained(Protocol):
    """A model that writes its shipped form (`WarpNet`, `TryOnModel`)."""

    def save_pretrained(self, directory: str | Path) -> None: ...


class WarmStartable(Protocol):
    """A model that can start from another run's weights, keeping its new parts' initialisation."""

    def warm_start_from(self, directory: str | Path) -> list[str]: ...


_Batch = TypeVar("_Batch")
_Output = TypeVar("_Output")
_Final = TypeVar("_Final", bound=nn.Module)


def format_terms(means: dict[str, float]) -> str:
    """The loss terms of a progress line: "name value" pairs."""
    return " ".join(f"{k} {v:.4f}" for k, v in means.items())


class TrainLoop:
    """One resumable training run: accelerate, logging, resume, AdamW + EMA, LR schedule with time budget,
    stop on a signal or the budget, running-mean loss logging, sample grids, checkpoints, final EMA weights.

    A trainer uses it in this order (the order keeps runs reproducible from their seed and resumable):
        loop = TrainLoop(args)                  threads, Accelerator, RunLogger, the checkpoint to resume
        loop.saved_config()                     the resumed run's model config (it wins over the options)
        model = loop.start(model, params, cfg)  AdamW, RNGs, EMA, resume, accelerator.prepare
        loop.run(n, load, step, sample)         until `args.steps`, the time budget or SIGTERM / SIGINT
        return loop.finish(Model(cfg))          the EMA weights, also saved to `<out>/final`
    """

    optimizer: torch.optim.Optimizer
    model: nn.Module  # the prepared (possibly wrapped) model
    params: list[nn.Parameter]
    rng: np.random.Generator  # batch order; the same on every process (each takes its slice of a global batch)
    ema: ModelEMA
    meta: dict[str, Any]  # state.json "meta": options, config, elapsed_s

    def __init__(self, args: TrainRunOptions) -> None:
        from accelerate import Accelerator

        set_threads(args.threads)
        self.args = args
        self.out = Path(args.out)
        self.accelerator = Accelerator(cpu=not torch.cuda.is_available())
        self.device = self.accelerator.device
        self.log = RunLogger(self.out, enabled=self.accelerator.is_main_process)
        # Seeded before the trainer builds its network, so that a new run's initial weights follow the seed too.
        torch.manual_seed(args.seed + self.accelerator.process_index)
        self.bf16 = resolve_precision(args.mixed_precision, self.device.type)
        self.global_batch = args.batch_size * self.accelerator.num_processes
        self.found = latest_checkpoint(self.out) if args.resume else None
        self.step = 0
        self.stopped = False  # by a signal or the time budget: --resume continues
        self.elapsed_before = 0.0  # training seconds of earlier sessions of this run (for the time budget)

    def saved_config(self) -> dict[str, Any] | None:
        """The model config stored in the checkpoint being resumed (None: a new run, or none stored)."""
        if self.found is None:
            return None
        return json.loads((self.found / "state.json").read_text())["meta"].get("config")

    def warm_start(self, model: WarmStartable, init_weights: Path | None) -> None:
        """Copy `init_weights` (a saved model folder) into a new run's model; a resumed run ignores them."""
        if init_weights is None:
            return
        if self.found is not None:
            self.log.log(f"resume: --init-weights {init_weights} ignored (the run continues from its checkpoint)")
            return
        absent = model.warm_start_from(init_weights)
        kept = f"; {len(absent)} new tensors keep their initialisation" if absent else ""
        self.log.log(f"weights from {init_weights}{kept}")

    def start(
        self,
        model: nn.Module,
        params: list[nn.Parameter],
        config: dict[str, Any],
        channels_last: bool = False,
        lr_scales: dict[int, float] | None = None,
    ) -> nn.Module:
        """Optimizer, RNGs and EMA for `model` (training `params`), restored from the checkpoint when resuming;
        returns the model prepared by accelerate. `config` is saved in every checkpoint.

        lr_scales: {id(parameter): factor} for parameters that learn at `factor` x the schedule's rate (e.g. a
        new head on a warm-started network); the others at 1x.
        """
        args = self.args
        # On the training device before the EMA copy and the resumed optimizer state are made: both follow
        # the device of the parameters they are made from (on CUDA a CPU copy would mix devices).
        model = model.to(self.device)
        self.params = params
        scales = lr_scales or {}
        groups: dict[float, list[nn.Parameter]] = {}
        for param in params:
            groups.setdefault(scales.get(id(param), 1.0), []).append(param)
        self.optimizer = torch.optim.AdamW(
            [{"params": group, "lr_scale": scale} for scale, group in groups.items()],
            lr=args.lr,
            weight_decay=args.weight_decay,
        )
        self.rng = np.random.default_rng(args.seed)
        torch.manual_seed(args.seed + self.accelerator.process_index)
        self.ema = ModelEMA(model, args.ema_decay)
        if self.found is not None:
            state = load_checkpoint(self.found, model, self.optimizer, self.rng, self.ema)
            self.step = int(state["step"])
            self.elapsed_before = float(state["meta"].get("elapsed_s", 0.0))
            self.log.log(f"resumed from {self.found} at step {self.step}")
        elif args.resume:
            self.log.log("resume: no checkpoint found, starting from scratch")
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model, self.optimizer = self.accelerator.prepare(model, self.optimizer)
        options = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(args).items()}  # type: ignore[arg-type]
        self.meta = {"options": options, "config": config}
        return self.model

    def lr(self, elapsed: float) -> float:
        """Learning rate of the current step after `elapsed` training seconds (all sessions)."""
        args = self.args
        # With a time budget the cosine follows whichever ends first, the steps or the time, so that a run cut
        # by the clock still ends at a low learning rate.
        progress = self.step
        if args.time_limit:
            progress = max(self.step, int(args.steps * elapsed / args.time_limit))
        step = progress if self.step >= args.warmup else self.step
        return cosine_lr(step, args.steps, args.lr, args.warmup, args.lr_final_ratio)

    def run(
        self,
        n_samples: int,
        load: Callable[..., _Batch],
        step: Callable[[_Batch], tuple[torch.Tensor, dict[str, float], _Output]],
        sample: Callable[[_Batch, _Output], np.ndarray] | None = None,
        describe: Callable[[dict[str, float]], str] = format_terms,
        sample_first: bool = False,
        sample_weights: np.ndarray | None = None,
        prefetch: bool = False,
    ) -> None:
        """Train until `args.steps`, the time budget or a stop signal.

        load:   this process's dataset indices (b,) -> a batch on `self.device` (may draw from `self.rng`);
                with `prefetch`, (indices, rng) -> batch, see there
        step:   batch -> (scalar loss, float loss terms incl. "total", output): the forward pass and the loss
        sample: (batch, output) -> (H, W, 3) uint8 grid, saved to samples/step_N.png every `sample_every` steps
                (and after step 1 with `sample_first`)
        describe: mean loss terms -> their part of the progress line
        sample_weights: (n_samples,) relative probabilities of drawing each sample (None: epochs of shuffles)
        prefetch: build the next batch in a background thread while the current step runs (a GPU otherwise
                waits for the CPU's per-item augmentation). `load` is then called as load(indices, rng), one
                batch ahead, with a generator of its own (seeded from `self.rng`, drawn here in order, and
                from the process index), and must draw every random number from it: not from `self.rng`,
                `self.step` or torch's global generator, which the step uses meanwhile. The same seed gives the
                same batches whatever the timing of the thread.
        """
        from concurrent.futures import Future, ThreadPoolExecutor

        from fipviton.imageio import save_image

        args, accelerator = self.args, self.accelerator
        if n_samples < self.global_batch:  # batches are drawn without repeats: it would never fill one
            raise ValueError(f"{n_samples} training pairs cannot fill a batch of {self.global_batch}")
        if sample_weights is not None:
            batches = weighted_batches(sample_weights, self.global_batch, self.rng)
        else:
            batches = infinite_batches(n_samples, self.global_batch, self.rng)
        meter = Throughput()
        running: dict[str, float] = {}
        running_n = 0
        train_start = time.perf_counter()
        start_step = self.step
        self.model.train()

        def draw() -> tuple[np.ndarray, np.random.Generator | None]:
            indices = next(batches)[accelerator.process_index :: accelerator.num_processes]
            if not prefetch:
                return indices, None
            # The same draw on every process (their rngs agree); the process index makes their streams differ.
            return indices, np.random.default_rng([int(self.rng.integers(2**63)), accelerator.process_index])

        # With prefetch, self.rng is one batch ahead of the step: a checkpoint stores its state from before
        # that batch was drawn, so that a resumed run draws it again.
        resume_rng = self.rng
        pending: Future | None = None
        with StopFlag() as stop, ThreadPoolExecutor(1) as loader:
            if prefetch and self.step < args.steps:
                pending = loader.submit(load, *draw())
            while self.step < args.steps and not stop.stop:
                if prefetch:
                    assert pending is not None  # submitted before every step but after the last
                    batch = pending.result()
                    resume_rng = copy_generator(self.rng)
                    pending = loader.submit(load, *draw()) if self.step + 1 < args.steps else None
                else:
                    batch = load(draw()[0])
                lr = self.lr(self.elapsed_before + time.perf_counter() - train_start)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
                loss, terms, output = step(batch)
                self.optimizer.zero_grad(set_to_none=True)
                accelerator.backward(loss)
                if args.grad_clip is not None:
                    accelerator.clip_grad_norm_(self.params, args.grad_clip)
                self.optimizer.step()
                self.ema.update(self.model, self.step)
                self.step += 1
                meter.add(self.global_batch)
                for key, value in terms.items():
                    running[key] = running.get(key, 0.0) + value
                running_n += 1
                if self.step % args.log_every == 0 or self.step == args.steps:
                    means = {key: value / running_n for key, value in running.items()}
                    rate = meter.rate()
                    self.log.log(f"step {self.step}/{args.steps} {describe(means)} lr {lr:.2e} {rate:.2f} img/s")
                    self.log.metrics(self.step, lr=lr, images_per_s=rate, **means)
                    running, running_n = {}, 0
                elapsed = self.elapsed_before + time.perf_counter() - train_start
                time_up = args.time_limit is not None and elapsed >= args.time_limit
                due = (args.sample_every and self.step % args.sample_every == 0) or (sample_first and self.step == 1)
                # The last step of a run (by steps or by the time budget) always gets a sample (the parser's
                # final validation); a stop signal does not wait for one.
                if sample is not None and accelerator.is_main_process and (due or time_up or self.step == args.steps):
                    save_image(sample(batch, output), self.out / "samples" / f"step_{self.step:06d}.png")
                    meter.rate()  # the sample's time does not count as training throughput
                if time_up:
                    stop.stop = True
                checkpoint_due = self.step % args.ckpt_every == 0 or self.step == args.steps or stop.stop
                if checkpoint_due and accelerator.is_main_process:
                    self.meta["elapsed_s"] = elapsed
                    rng = resume_rng if prefetch else self.rng
                    save_checkpoint(
                        self.out, self.step, self.model, self.optimizer, rng, self.ema, self.meta, keep=args.keep
                    )
            self.stopped = stop.stop
        accelerator.wait_for_everyone()
        elapsed = time.perf_counter() - train_start
        done = self.step - start_step
        self.log.log(
            f"trained {done} steps (to step {self.step}) in {elapsed / 60:.1f} min "
            f"({done * self.global_batch / max(elapsed, 1e-9):.2f} img/s)"
            + ("; stopped early, --resume continues" * self.stopped)
        )

    def finish(self, final: _Final) -> _Final:
        """Copy the EMA weights into `final` (a fresh model of the run's config), save it to `<out>/final`."""
        self.ema.copy_to(final)
        if self.accelerator.is_main_process:
            cast(Pretrained, final).save_pretrained(self.out / "final")
        return final.eval()


def average_states(
    states: Sequence[dict[str, torch.Tensor]], weights: Sequence[float] | None = None
) -> dict[str, torch.Tensor]:
    """The weighted mean of state dicts of one network: a "model soup" of runs that share their start.

    weights: one per state, >= 0, summing to 1; None: the plain mean in the tensors' own dtype (what `train
    parser-average` has always computed, so its shipped result stays reproducible to the bit). With weights,
    floating tensors are summed in float64 and cast back. Integer tensors (e.g. BatchNorm's batch counters)
    are the first state's. `ValueError` when the states hold other tensors or the weights do not fit.
    """
    if len(states) < 2 or (weights is not None and len(weights) != len(states)):
        count = len(states) if weights is None else f"{len(states)} and {len(weights)}"
        raise ValueError(f"averaging needs two or more states and one weight each, got {count}")
    if weights is not None and (any(w < 0 for w in weights) or abs(sum(weights) - 1.0) > 1e-6):
        raise ValueError(f"averaging weights must be >= 0 and sum to 1, got {list(weights)}")
    first = states[0]
    for state in states[1:]:
        if state.keys() != first.keys() or any(state[k].shape != first[k].shape for k in first):
            raise ValueError("the states are of different networks")
    mean = {}
    for key, value in first.items():
        if not value.is_floating_point():
            mean[key] = value
        elif weights is None:
            mean[key] = torch.stack([state[key] for state in states]).mean(0)
        else:
            total = sum(w * state[key].double() for w, state in zip(weights, states, strict=True))
            mean[key] = total.to(value.dtype)
    return mean
