"""The warping network: garment and person feature pyramids, cross-attention, coarse-to-fine appearance flow.

Garment branch: garment image + garment mask (4 channels). Person branch: the conditioning maps of
`fipviton.warp.conditioning` (one-hot dense body-part map, one-hot agnostic parsing, pose heatmaps). Both
branches are small convolutional pyramids (stride 2 per level). At the coarse levels (the last
`attention_levels`), person features attend to garment features with multi-head cross-attention (person =
queries, garment = keys/values, 2-D sinusoidal positional encodings added to both): every person location
can look up where its garment part is in the product photo, which a convolution's local window cannot do
for large displacements. Then a decoder predicts an appearance flow at the coarsest level and refines it
level by level (PF-AFN / HR-VITON style): at each level the garment features are warped with the current
flow, and a residual flow is predicted from the person features, the warped garment features and the
decoder state. The last level also predicts a visibility map: the garment is hidden where the person's arms
or hair are in front of it, so the warped mask is (warped garment mask) x (visibility), trained against the
garment region of the parsing, which already excludes what occludes it. With `WarpConfig.fine_channels`, one
more level corrects the flow at the network's full size from the raw garment and person inputs.

`WarpConfig.cross_attention = False` removes the attention blocks (the paper's ablation) and changes
nothing else: the coarse person features go to the decoder as they are.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fipviton.errors import WeightsError
from fipviton.warp.conditioning import GARMENT_CHANNELS, PERSON_CHANNELS
from fipviton.warp.flow import upsample_flow, warp

DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights" / "warp"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WARP_PRESETS = ("default", "tiny", "large")


@dataclass
class WarpConfig:
    """Hyper-parameters of `WarpNet`.

    size: (H, W) the network runs at; the flow is upsampled to any output size.
    channels: feature channels per pyramid level (level k has stride 2^(k+1)).
    attention_levels: how many of the coarsest levels get cross-attention.
    heads: attention heads (each level's channels must divide by it).
    cross_attention: False = the ablation without cross-attention, all else equal.
    predict_visibility: predict the occlusion/visibility map (else the warped mask is the warped garment mask).
    fine_channels: width of an extra flow level at the network's full size (`size`), fed by the raw garment
        input warped with the pyramid's flow and the raw person input (0 = off, as the first shipped
        weights). The pyramid's finest flow is at half the network size; this level corrects what is left
        at the resolution of the training loss. Its flow starts at zero, so weights trained without it
        warm-start it exactly (`WarpNet.warm_start_from`).
    """

    size: tuple[int, int] = (128, 96)
    channels: tuple[int, ...] = (32, 64, 96, 128)
    attention_levels: int = 2
    heads: int = 4
    cross_attention: bool = True
    predict_visibility: bool = True
    fine_channels: int = 0
    person_channels: int = PERSON_CHANNELS
    garment_channels: int = GARMENT_CHANNELS

    @classmethod
    def preset(cls, name: str) -> WarpConfig:
        """Named presets (`WARP_PRESETS`): "default" (the shipped model's pyramid), "tiny" (tests) and "large" (for
        a GPU: wider pyramid, cross-attention also at 32x24, a wider full-size flow level; same inputs and
        size, so it trains from the same caches and packs)."""
        if name == "default":
            return cls()
        if name == "tiny":
            return cls(size=(64, 48), channels=(8, 16, 16, 32), heads=2)
        if name == "large":
            return cls(channels=(48, 96, 144, 192), attention_levels=3, heads=8, fine_channels=32)
        raise ValueError(f"unknown warp config preset {name!r} (expected one of {WARP_PRESETS})")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["size"] = list(self.size)
        data["channels"] = list(self.channels)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> WarpConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise WeightsError(f"unknown warp config keys {unknown}")
        values = dict(data)
        if "size" in values:
            values["size"] = tuple(values["size"])
        if "channels" in values:
            values["channels"] = tuple(values["channels"])
        return cls(**values)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with GroupNorm and SiLU, and a residual connection."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm1 = nn.GroupNorm(_groups(out_channels), out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(_groups(out_channels), out_channels)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return F.silu(h + self.skip(x))


def _groups(channels: int) -> int:
    for groups in (8, 4, 2):
        if channels % groups == 0:
            return groups
    return 1


class Pyramid(nn.Module):
    """A feature pyramid: per level a stride-2 convolution and a residual block. Returns fine to coarse."""

    def __init__(self, in_channels: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.down = nn.ModuleList()
        self.blocks = nn.ModuleList()
        previous = in_channels
        for width in channels:
            self.down.append(nn.Conv2d(previous, width, 3, stride=2, padding=1))
            self.blocks.append(ResBlock(width, width))
            previous = width

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for down, block in zip(self.down, self.blocks, strict=True):
            x = block(F.silu(down(x)))
            features.append(x)
        return features


def positional_encoding(
    height: int, width: int, channels: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """2-D sinusoidal positional encoding (1, channels, H, W): half the channels for y, half for x.

    Positions are normalised to [0, 1] so that the encoding means the same place at any resolution.
    """
    quarter = max(channels // 4, 1)
    frequencies = torch.exp(torch.arange(quarter, device=device, dtype=torch.float32) * (-math.log(100.0) / quarter))
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    angle_y = ys[:, None] * frequencies[None] * 2 * math.pi * 8  # (H, q)
    angle_x = xs[:, None] * frequencies[None] * 2 * math.pi * 8  # (W, q)
    enc_y = torch.cat((angle_y.sin(), angle_y.cos()), dim=1)  # (H, 2q)
    enc_x = torch.cat((angle_x.sin(), angle_x.cos()), dim=1)  # (W, 2q)
    enc = torch.cat(
        (enc_y[:, None, :].expand(height, width, -1), enc_x[None, :, :].expand(height, width, -1)), dim=2
    )  # (H, W, 4q)
    enc = F.pad(enc, (0, channels - enc.shape[-1]))
    return enc.permute(2, 0, 1)[None].to(dtype)


class CrossAttention(nn.Module):
    """Person features (queries) attend to garment features (keys/values); pre-norm, residual, feed-forward.

    forward(person (B, C, H, W), garment (B, C, H, W)) -> (B, C, H, W).
    """

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(channels)
        self.norm_kv = nn.LayerNorm(channels)
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norm_ff = nn.LayerNorm(channels)
        self.feed_forward = nn.Sequential(
            nn.Linear(channels, 2 * channels), nn.GELU(), nn.Linear(2 * channels, channels)
        )

    def forward(self, person: torch.Tensor, garment: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = person.shape
        pos = positional_encoding(height, width, channels, person.device, person.dtype)
        pos_tokens = pos.flatten(2).transpose(1, 2)
        queries = person.flatten(2).transpose(1, 2)  # (B, HW, C)
        keys = garment.flatten(2).transpose(1, 2)
        q = self.norm_q(queries) + pos_tokens
        kv = self.norm_kv(keys)
        attended, _ = self.attention(q, kv + pos_tokens, kv, need_weights=False)
        tokens = queries + attended
        tokens = tokens + self.feed_forward(self.norm_ff(tokens))
        return tokens.transpose(1, 2).reshape(batch, channels, height, width)


class FlowLevel(nn.Module):
    """One decoder level: fuse (decoder state, person features, warped garment features), output a residual flow.

    in_channels: the three inputs' channels together.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.fuse = ResBlock(in_channels, out_channels)
        self.flow = nn.Conv2d(out_channels, 2, 3, padding=1)
        # Start from the identity warp: the in-shop garment is roughly centred, like the person's torso.
        nn.init.zeros_(self.flow.weight)
        nn.init.zeros_(self.flow.bias)

    def forward(
        self, state: torch.Tensor, person: torch.Tensor, garment: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.fuse(torch.cat((state, person, garment), dim=1))
        return hidden, self.flow(hidden)


def warp_on_white(
    garment: torch.Tensor, garment_mask: torch.Tensor, flow: torch.Tensor, visibility: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(warped garment on white (B, 3, H, W) in [-1, 1], visible warped mask (B, 1, H, W) in [0, 1]).

    garment (B, 3, h, w) in [-1, 1] and garment_mask (B, 1, h, w) sampled by `flow` (B, 2, H, W); the mask is
    multiplied by `visibility` (B, 1, H, W) when given. What `WarpNet.forward` outputs for its final flow.
    """
    mask = warp(garment_mask, flow, padding_mode="zeros")
    if visibility is not None:
        mask = mask * visibility
    mask = mask.clamp(0, 1)
    return warp(garment, flow, padding_mode="border") * mask + (1 - mask), mask


@dataclass
class WarpOutput:
    """What the warping module returns, at the requested output size (H, W).

    garment:    (B, 3, H, W) float in [-1, 1], the warped garment, white (1) where `mask` is 0.
    mask:       (B, 1, H, W) float in [0, 1], the visible warped garment (occluders removed).
    flow:       (B, 2, H, W) float, sampling offsets in normalised coordinates (`fipviton.warp.flow`).
    visibility: (B, 1, H, W) float in [0, 1], 1 where the garment is not hidden by arms/hair; None if off.
    flows:      the flows of every decoder level, coarse to fine, at their own resolutions (for losses).
    """

    garment: torch.Tensor
    mask: torch.Tensor
    flow: torch.Tensor
    visibility: torch.Tensor | None
    flows: list[torch.Tensor]


class WarpNet(nn.Module):
    """The learned warping module. See the module docstring; `WarpConfig` for the knobs."""

    def __init__(self, config: WarpConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or WarpConfig()
        channels = tuple(config.channels)
        self.garment_encoder = Pyramid(config.garment_channels, channels)
        self.person_encoder = Pyramid(config.person_channels, channels)
        levels = len(channels)
        self.attention_start = levels - config.attention_levels
        self.attention = nn.ModuleDict()
        if config.cross_attention:
            for level in range(self.attention_start, levels):
                self.attention[str(level)] = CrossAttention(channels[level], config.heads)
        self.decoder = nn.ModuleList()
        for level in range(levels):
            state = channels[level + 1] if level + 1 < levels else 0
            self.decoder.append(FlowLevel(state + 2 * channels[level], channels[level]))
        self.fine = (
            FlowLevel(channels[0] + config.person_channels + config.garment_channels, config.fine_channels)
            if config.fine_channels > 0
            else None
        )
        self.visibility = nn.Conv2d(channels[0], 1, 3, padding=1) if config.predict_visibility else None
        if self.visibility is not None:
            nn.init.zeros_(self.visibility.weight)
            nn.init.constant_(self.visibility.bias, 3.0)  # start fully visible (sigmoid(3) = 0.95)

    def predict_flow(
        self, garment_input: torch.Tensor, person_input: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Flows of every level (coarse to fine) and the visibility logits, at the network's resolutions.

        garment_input (B, 4, H, W): garment in [-1, 1] and mask in [0, 1]; person_input (B, P, H, W).
        H and W must be divisible by 2^levels. The flows are at H/2^(levels-k) for the pyramid's levels, plus
        one at (H, W) with `fine_channels`; the visibility logits are at (H/2, W/2).
        """
        garment_features = self.garment_encoder(garment_input)
        person_features = self.person_encoder(person_input)
        for key, block in self.attention.items():
            level = int(key)
            person_features[level] = block(person_features[level], garment_features[level])
        flows: list[torch.Tensor] = []
        flow: torch.Tensor | None = None
        state: torch.Tensor | None = None
        for level in reversed(range(len(person_features))):
            person = person_features[level]
            size = tuple(person.shape[-2:])
            garment = garment_features[level]
            if flow is not None:
                flow = upsample_flow(flow, size)
                garment = warp(garment, flow).to(person.dtype)
                state = F.interpolate(state, size=size, mode="bilinear", align_corners=False)
                inputs = state
            else:
                inputs = person.new_zeros((person.shape[0], 0, *size))
            state, residual = self.decoder[level](inputs, person, garment.contiguous(memory_format=torch.channels_last))
            flow = residual.float() if flow is None else flow + residual.float()
            flows.append(flow)
        visibility = self.visibility(state).float() if self.visibility is not None else None
        if self.fine is not None and flow is not None and state is not None:
            size = tuple(person_input.shape[-2:])
            flow = upsample_flow(flow, size)
            garment = warp(garment_input, flow).to(person_input.dtype)
            state = F.interpolate(state, size=size, mode="bilinear", align_corners=False)
            _, residual = self.fine(state, person_input, garment.contiguous(memory_format=torch.channels_last))
            flows.append(flow + residual.float())
        return flows, visibility

    def forward(
        self,
        garment: torch.Tensor,
        garment_mask: torch.Tensor,
        person: torch.Tensor,
        size: tuple[int, int] | None = None,
    ) -> WarpOutput:
        """Warp `garment` onto the person described by `person`.

        garment (B, 3, h, w) in [-1, 1] and garment_mask (B, 1, h, w) in [0, 1], at any resolution (they are
        resized to `config.size` for the flow prediction and sampled at full resolution for the output);
        person (B, P, H0, W0) conditioning maps (resized to `config.size` if needed). `size` is the output
        (H, W); default `config.size`.
        """
        net_size = tuple(self.config.size)
        size = tuple(size) if size is not None else net_size
        small_garment = _resize(garment, net_size)
        small_mask = _resize(garment_mask, net_size)
        person_small = _resize(person, net_size)
        garment_input = torch.cat((small_garment, small_mask), dim=1)
        flows, visibility_logits = self.predict_flow(garment_input, person_small)
        flow = upsample_flow(flows[-1], size)
        visibility = None
        if visibility_logits is not None:
            visibility = torch.sigmoid(
                F.interpolate(visibility_logits, size=size, mode="bilinear", align_corners=False)
            )
        warped, mask = warp_on_white(garment, garment_mask, flow, visibility)
        return WarpOutput(garment=warped, mask=mask, flow=flow, visibility=visibility, flows=flows)

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None) -> None:
        """Write `config.json` and `model.safetensors` (no pickle) into `directory`.

        dtype: store the floating-point tensors in this type (torch.float16: half the file; loading casts them
        back to the model's type). None keeps their own.
        """
        from fipviton.weights_file import write_weights

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        write_weights(self.state_dict(), directory / WEIGHTS_NAME, dtype)

    def warm_start_from(self, directory: str | Path) -> list[str]:
        """Copy the weights of a saved warping model into this one (the start of a fresh training run).

        The saved network must be this one, except that it may lack the full-size flow level
        (`fine_channels`), which then keeps its zero-flow start. Returns the names of the tensors that the
        folder did not have. `WeightsError` when the weights do not fit.
        """
        from safetensors.torch import load_file

        weights_path = Path(directory) / WEIGHTS_NAME
        if not weights_path.is_file():
            raise WeightsError(f"no warping-module weights in {directory} (expected {WEIGHTS_NAME})")
        state = load_file(str(weights_path))
        try:
            missing, unexpected = self.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # a tensor of another shape
            raise WeightsError(f"{weights_path} does not fit this network: {exc}") from exc
        not_new = [key for key in missing if not key.startswith("fine.")]
        if not_new or unexpected:
            raise WeightsError(
                f"{weights_path} does not fit this network: missing {not_new[:5]}, unexpected {unexpected[:5]}"
            )
        return sorted(missing)

    @staticmethod
    def saved_config(directory: str | Path) -> WarpConfig:
        """The `WarpConfig` of a folder written by `save_pretrained`; `WeightsError` when absent or invalid."""
        config_path = Path(directory) / CONFIG_NAME
        try:
            return WarpConfig.from_dict(json.loads(config_path.read_text()))
        except OSError as exc:
            raise WeightsError(f"no warping-module config in {directory} (expected {CONFIG_NAME})") from exc
        except (ValueError, TypeError) as exc:
            raise WeightsError(f"{config_path}: invalid warp config ({exc})") from exc

    @classmethod
    def from_pretrained(cls, directory: str | Path | None = None) -> WarpNet:
        """Load a model saved by `save_pretrained`; default: the shipped weights in `fipviton/weights/warp`."""
        from safetensors.torch import load_file

        directory = Path(directory) if directory is not None else DEFAULT_WEIGHTS_DIR
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        if not config_path.is_file() or not weights_path.is_file():
            raise WeightsError(f"no warping-module weights in {directory} (need {CONFIG_NAME} and {WEIGHTS_NAME})")
        model = cls(cls.saved_config(directory))
        state = load_file(str(weights_path))
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise WeightsError(f"{weights_path} does not match its config: {exc}") from exc
        return model.eval()


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False, antialias=True)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
