"""The human parser: a small CPU-friendly encoder-decoder that predicts internal parsing labels.

Input: an RGB photo of one person, uint8 (H, W, 3). Output: internal labels (`fipviton.labels.Label`),
uint8 (H, W) in [0, NUM_LABELS). The network works at a fixed input size (`ParserConfig.input_size`,
(256, 192) by default, the VITON resolution); `parse` letterboxes any photo to that aspect ratio, predicts,
and resizes the logits back to the photo's size, so the labels line up with the photo pixel for pixel.

Architecture *(ours)*: a stride-2 stem, four residual stages of depthwise-separable (or plain) convolutions
down to 1/32 resolution, a global-context block at the bottom (left/right arms need the whole body's
orientation), and a light FPN-style decoder with skips back to 1/2 resolution, whose logits are
upsampled bilinearly. Everything runs as `channels_last` tensors, which is what makes oneDNN fast on CPU.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fipviton.errors import WeightsError
from fipviton.labels import FLIP_SWAP, NUM_LABELS

# Output channel order of a mirrored prediction: left and right limbs exchanged.
_FLIP_CHANNELS = list(range(NUM_LABELS))
for _left, _right in FLIP_SWAP:
    _FLIP_CHANNELS[_left], _FLIP_CHANNELS[_right] = int(_right), int(_left)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights" / "parser"


@dataclass
class ParserConfig:
    """Hyper-parameters of `HumanParser` (everything needed to rebuild it before loading weights).

    input_size:  (height, width) the network sees; photos are letterboxed to this aspect ratio.
    stem:        channels of the stride-2 stem.
    widths:      channels of the four encoder stages (strides 4, 8, 16, 32).
    depths:      residual blocks per stage.
    decoder:     channels of the decoder from 1/32 up to 1/4 resolution.
    decoder_fine: channels of the last decoder level (1/2 resolution), kept narrow: it dominates the cost.
    separable:   depthwise-separable blocks (True) or plain 3x3 convolutions (False).
    num_labels:  output classes (the internal label set).
    logit_bias:  per-class constants added to the logits at inference only (empty: none; the shipped weights
                 have none). Optionally fitted on training images (`fipviton.training.parser.fit_logit_bias`)
                 against the over-prediction of rare classes that the class-weighted loss causes.
    test_time_flip: average every prediction with the one of the mirrored photo (left/right swapped back),
                 unless a call says otherwise (`flip=`): twice the network's cost for a somewhat better parsing
                 (the shipped weights' card measures both).
    test_time_scales: input scale factors whose predictions are averaged, unless a call says otherwise
                 (`scales=`): (1.0,) is one pass; (1.0, 1.25) costs 1 + 1.25^2 = 2.6x one pass (5.1x with flip).
    """

    input_size: tuple[int, int] = (256, 192)
    stem: int = 24
    widths: tuple[int, ...] = (48, 96, 192, 384)
    depths: tuple[int, ...] = (2, 3, 8, 3)
    decoder: int = 96
    decoder_fine: int = 32
    separable: bool = True
    num_labels: int = NUM_LABELS
    label_names: tuple[str, ...] = field(default_factory=tuple)
    logit_bias: tuple[float, ...] = field(default_factory=tuple)
    test_time_flip: bool = False
    test_time_scales: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        self.test_time_scales = check_scales(self.test_time_scales)

    @classmethod
    def preset(cls, name: str) -> ParserConfig:
        """`default` (the shipped model, 2.1 M parameters), `small` (the 0.45 M-parameter network shipped until
        2026-11-26) or `tiny` (for tests and smoke runs)."""
        if name == "default":
            return cls()
        if name == "small":
            return cls(stem=16, widths=(32, 64, 128, 192), depths=(1, 2, 3, 2), decoder=64, decoder_fine=24)
        if name == "tiny":
            return cls(
                input_size=(64, 48), stem=8, widths=(8, 16, 16, 24), depths=(1, 1, 1, 1), decoder=16, decoder_fine=8
            )
        raise ValueError(f"unknown parser preset {name!r} (choose default, small or tiny)")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["input_size"] = list(self.input_size)
        data["widths"] = list(self.widths)
        data["depths"] = list(self.depths)
        data["label_names"] = list(self.label_names)
        data["logit_bias"] = list(self.logit_bias)
        data["test_time_scales"] = list(self.test_time_scales)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ParserConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise WeightsError(f"parser config has unknown keys: {sorted(unknown)}")
        kwargs = dict(data)
        for key in ("input_size", "widths", "depths", "label_names", "logit_bias", "test_time_scales"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        try:
            return cls(**kwargs)
        except ValueError as error:  # e.g. test-time scales out of range
            raise WeightsError(f"parser config: {error}") from None


def _conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class _Block(nn.Module):
    """Residual block: (depthwise 3x3 + pointwise) x 2, or two plain 3x3 convolutions."""

    def __init__(self, channels: int, separable: bool) -> None:
        super().__init__()
        if separable:
            self.body = nn.Sequential(
                _conv_bn(channels, channels, 3, groups=channels, act=False),
                _conv_bn(channels, channels, 1),
                _conv_bn(channels, channels, 3, groups=channels, act=False),
                _conv_bn(channels, channels, 1, act=False),
            )
        else:
            self.body = nn.Sequential(_conv_bn(channels, channels, 3), _conv_bn(channels, channels, 3, act=False))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class _Down(nn.Module):
    """Stride-2 transition: depthwise 3x3 stride 2 + pointwise (or a plain strided 3x3)."""

    def __init__(self, cin: int, cout: int, separable: bool) -> None:
        super().__init__()
        if separable:
            self.body = nn.Sequential(_conv_bn(cin, cin, 3, 2, groups=cin, act=False), _conv_bn(cin, cout, 1))
        else:
            self.body = _conv_bn(cin, cout, 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class _GlobalContext(nn.Module):
    """Adds a projection of the globally pooled features to every position (image-level context)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(channels, channels), nn.ReLU(inplace=True), nn.Linear(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3))
        return F.relu(x + self.proj(pooled)[:, :, None, None])


class HumanParser(nn.Module):
    """Human parser. `forward(x)`: x (B, 3, H, W) float in [0, 1] -> logits (B, num_labels, H, W).

    H and W must be multiples of 32 (the input size of the config is; other sizes work for training crops).
    """

    def __init__(self, config: ParserConfig | None = None) -> None:
        super().__init__()
        self.config = config or ParserConfig()
        c = self.config
        sep = c.separable
        # The stem is one strided conv: full- and half-resolution layers dominate the cost on CPU.
        self.stem = _conv_bn(3, c.stem, 3, 2)
        stages = []
        cin = c.stem
        for width, depth in zip(c.widths, c.depths, strict=True):
            stages.append(nn.Sequential(_Down(cin, width, sep), *[_Block(width, sep) for _ in range(depth)]))
            cin = width
        self.stages = nn.ModuleList(stages)
        self.context = _GlobalContext(cin)
        # Decoder: lateral 1x1 projections of the 1/4..1/32 scales, top-down sum, a refining conv per level;
        # then a narrow 1/2-resolution level fed by the stem (edges).
        self.laterals = nn.ModuleList([_conv_bn(ch, c.decoder, 1) for ch in c.widths])
        self.refine = nn.ModuleList([self._refine(c.decoder, sep) for _ in c.widths[:-1]])
        self.to_fine = _conv_bn(c.decoder, c.decoder_fine, 1)
        self.fine_lateral = _conv_bn(c.stem, c.decoder_fine, 1)
        self.fine_refine = self._refine(c.decoder_fine, sep)
        self.head = nn.Conv2d(c.decoder_fine, c.num_labels, 1)
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1), persistent=False)
        # Kept in the config (config.json), not in the state dict, so older weight files still load.
        self.register_buffer("logit_bias", torch.zeros(c.num_labels), persistent=False)
        self.set_logit_bias(c.logit_bias)
        self.fused = False  # BatchNorm folded into the convolutions (`fuse_batchnorm`)

    def set_logit_bias(self, bias: Sequence[float]) -> None:
        """Set the inference-time per-class logit offsets (`num_labels` floats, or empty for none)."""
        values = [float(b) for b in bias]
        if values and len(values) != self.config.num_labels:
            raise WeightsError(f"logit_bias has {len(values)} values for {self.config.num_labels} labels")
        self.config.logit_bias = tuple(values)
        self.logit_bias.copy_(torch.tensor(values) if values else torch.zeros(self.config.num_labels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = (x - self.mean) / self.std
        stem = self.stem(x)
        feats = []
        y = stem
        for stage in self.stages:
            y = stage(y)
            feats.append(y)
        feats[-1] = self.context(feats[-1])
        y = self.laterals[-1](feats[-1])
        for level in range(len(feats) - 2, -1, -1):
            skip = self.laterals[level](feats[level])
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False) + skip
            y = self.refine[level](y)
        y = F.interpolate(self.to_fine(y), size=stem.shape[-2:], mode="bilinear", align_corners=False)
        y = self.fine_refine(y + self.fine_lateral(stem))
        logits = self.head(y)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def fuse_batchnorm(self) -> HumanParser:
        """Fold every BatchNorm into the convolution before it, for inference; in place, returns self.

        One pass at 256x192 on one thread of this CPU: ~30 ms instead of ~42 (the logits move by ~1e-5). A
        fused parser stays in eval mode: it cannot train or be saved (its state dict has no BatchNorm).
        """
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        self.eval()
        for module in self.modules():
            if isinstance(module, nn.Sequential) and len(module) >= 2:
                conv, norm = module[0], module[1]
                if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                    module[0], module[1] = fuse_conv_bn_eval(conv, norm), nn.Identity()
        self.fused = True
        return self

    def train(self, mode: bool = True) -> HumanParser:
        if mode and self.fused:
            raise RuntimeError("a parser with fused BatchNorm (fuse_batchnorm) cannot train: load it again")
        return super().train(mode)

    @staticmethod
    def _refine(channels: int, separable: bool) -> nn.Module:
        if separable:
            return nn.Sequential(
                _conv_bn(channels, channels, 3, groups=channels, act=False), _conv_bn(channels, channels, 1)
            )
        return _conv_bn(channels, channels, 3)

    # ----- weights -----

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None) -> None:
        """Write `model.safetensors` and `config.json` into `directory` (created if needed).

        dtype: store the floating-point tensors in this type (torch.float16: half the file; loading casts them
        back to the model's type). None keeps their own.
        """
        from fipviton.weights_file import write_weights

        if self.fused:
            raise RuntimeError("a parser with fused BatchNorm (fuse_batchnorm) cannot be saved: save the unfused one")

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_weights(self.state_dict(), directory / WEIGHTS_NAME, dtype)
        (directory / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")

    def warm_start_from(self, directory: str | Path) -> list[str]:
        """Copy the weights of a saved parser into this one (the start of a fresh training run, e.g. a longer
        schedule from the shipped weights). The saved network must be this one; returns the names of the
        tensors it lacked (none). `WeightsError` when the weights do not fit.
        """
        from safetensors.torch import load_file

        weights_path = Path(directory) / WEIGHTS_NAME
        if not weights_path.is_file():
            raise WeightsError(f"no parser weights in {directory} (expected {WEIGHTS_NAME})")
        try:
            self.load_state_dict(load_file(str(weights_path)), strict=True)
        except RuntimeError as exc:  # another architecture: a missing, unexpected or reshaped tensor
            raise WeightsError(f"{weights_path} does not fit this network (check --config): {exc}") from exc
        return []

    @classmethod
    def from_pretrained(cls, directory: str | Path | None = None, device: str | torch.device = "cpu") -> HumanParser:
        """Load a parser saved by `save_pretrained`; `None` loads the weights shipped with fipviton.

        Returns the model in eval mode on `device`. Raises `WeightsError` if files are missing or mismatched.
        """
        from safetensors.torch import load_file

        directory = Path(directory) if directory is not None else DEFAULT_WEIGHTS_DIR
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        if not config_path.is_file() or not weights_path.is_file():
            raise WeightsError(f"no parser weights in {directory} (expected {CONFIG_NAME} and {WEIGHTS_NAME})")
        config = ParserConfig.from_dict(json.loads(config_path.read_text()))
        model = cls(config)
        state = load_file(str(weights_path))
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"parser weights in {directory} do not match its config: {exc}") from exc
        return model.to(device).eval()

    # ----- inference -----

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _letterbox(self, image: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """Pad (H, W, 3) with edge pixels to the network's aspect ratio; returns the image and (top, left, h, w)."""
        h, w = image.shape[:2]
        th, tw = self.config.input_size
        if h * tw > w * th:  # too tall: pad the width
            new_w = round(h * tw / th)
            left = (new_w - w) // 2
            padded = np.pad(image, ((0, 0), (left, new_w - w - left), (0, 0)), mode="edge")
            return padded, (0, left, h, w)
        new_h = round(w * th / tw)
        top = (new_h - h) // 2
        padded = np.pad(image, ((top, new_h - h - top), (0, 0), (0, 0)), mode="edge")
        return padded, (top, 0, h, w)

    @torch.inference_mode()
    def _network_logits(
        self, images: Sequence[np.ndarray], flip: bool | None = None, scales: Sequence[float] | None = None
    ) -> tuple[torch.Tensor, list[tuple]]:
        """Letterbox + resize each photo, run the network: (B, C, h, w) float32 logits at the input size and
        per-photo boxes ((top, left, H, W) of the photo inside its padded frame, (padded H, padded W)).

        flip:   average with the prediction on the mirrored photo (left/right labels swapped back): twice the
                network cost. None: as `config.test_time_flip` says.
        scales: average the logits of the network run on the input resized by each factor (test-time
                augmentation; e.g. (1.0, 1.25) costs 1 + 1.25^2 = 2.6x one pass). None: `config.test_time_scales`.
        """
        import cv2

        scales = check_scales(self.config.test_time_scales if scales is None else scales)  # a config may be edited
        flip = self.config.test_time_flip if flip is None else flip

        th, tw = self.config.input_size
        batch, boxes = [], []
        for image in images:
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"expected an RGB uint8 (H, W, 3) array, got {image.dtype} {image.shape}")
            padded, box = self._letterbox(image)
            interp = cv2.INTER_AREA if padded.shape[0] > th else cv2.INTER_LINEAR
            batch.append(cv2.resize(padded, (tw, th), interpolation=interp))
            boxes.append((box, padded.shape[:2]))
        x = torch.from_numpy(np.stack(batch)).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        x = x.contiguous(memory_format=torch.channels_last)
        was_training = self.training
        if was_training:  # toggling walks every submodule: only do it when needed
            self.eval()
        total = torch.zeros(())
        for scale in scales:
            scaled = x
            if scale != 1.0:
                size = (round(th * scale), round(tw * scale))
                scaled = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=scale < 1.0)
                scaled = scaled.contiguous(memory_format=torch.channels_last)
            logits = self(scaled).float()
            if flip:
                mirrored = self(scaled.flip(-1)).float().flip(-1)
                logits = 0.5 * (logits + mirrored[:, _FLIP_CHANNELS])
            if scale != 1.0:
                logits = F.interpolate(logits, size=(th, tw), mode="bilinear", align_corners=False)
            total = total + logits
        # NCHW: argmax over channels is 10x slower on channels_last
        logits = (total / len(scales)).contiguous() + self.logit_bias.view(1, -1, 1, 1)
        if was_training:
            self.train()
        return logits, boxes

    @torch.inference_mode()
    def predict_logits(
        self, images: Sequence[np.ndarray], flip: bool | None = None, scales: Sequence[float] | None = None
    ) -> list[torch.Tensor]:
        """Per-photo logits at the photo's own size: list of (num_labels, H_i, W_i) float32 tensors (CPU).

        images: RGB uint8 (H_i, W_i, 3) arrays of any size (each is letterboxed and resized to the input size).
        Upsampling every class to a large photo is slow (~0.5 s at 1024x768); `parse_batch` avoids it.
        flip, scales: test-time augmentation (`_network_logits`); by default one network pass (two with
        `config.test_time_flip`, more with `config.test_time_scales`).
        """
        logits, boxes = self._network_logits(images, flip, scales)
        out = []
        for one, ((top, left, h, w), (ph, pw)) in zip(logits, boxes, strict=True):
            full = F.interpolate(one[None], size=(ph, pw), mode="bilinear", align_corners=False)[0]
            out.append(full[:, top : top + h, left : left + w].cpu())
        return out

    @torch.inference_mode()
    def parse_batch(
        self, images: Sequence[np.ndarray], flip: bool | None = None, scales: Sequence[float] | None = None
    ) -> list[np.ndarray]:
        """Parse several photos in one network call: a list of (H_i, W_i) uint8 internal-label maps.

        Logits are upsampled bilinearly to at most twice the network's input size, and the labels from there
        to the photo's size with nearest neighbour: the same labels as full-size logits up to a pixel or two on
        boundaries, ~20x cheaper for a 1024x768 photo. `flip`, `scales`: as in `predict_logits`.
        """
        import cv2

        th, tw = self.config.input_size
        logits, boxes = self._network_logits(images, flip, scales)
        out = []
        for one, ((top, left, h, w), (ph, pw)) in zip(logits, boxes, strict=True):
            mid = (min(ph, 2 * th), min(pw, 2 * tw))
            labels = F.interpolate(one[None], size=mid, mode="bilinear", align_corners=False)[0].argmax(0)
            labels = labels.to(torch.uint8).cpu().numpy()
            if mid != (ph, pw):
                labels = cv2.resize(labels, (pw, ph), interpolation=cv2.INTER_NEAREST)
            out.append(np.ascontiguousarray(labels[top : top + h, left : left + w]))
        return out

    def parse(self, image: np.ndarray, flip: bool | None = None, scales: Sequence[float] | None = None) -> np.ndarray:
        """Parse one RGB uint8 (H, W, 3) photo into an (H, W) uint8 internal-label map (`fipviton.labels`)."""
        return self.parse_batch([image], flip, scales)[0]


def check_scales(scales: Sequence[float]) -> tuple[float, ...]:
    """Test-time scale factors as a tuple; ValueError unless 1 to 4 factors in [0.5, 2]."""
    values = tuple(float(scale) for scale in scales)
    if not 1 <= len(values) <= 4 or not all(0.5 <= scale <= 2.0 for scale in values):
        raise ValueError(f"scales must be 1 to 4 factors in [0.5, 2], got {list(values)}")
    return values


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
