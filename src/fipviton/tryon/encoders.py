"""Garment encoders: the global condition of the try-on module, as tokens for cross-attention.

Both map an in-shop garment photo (B, 3, h, w) in [-1, 1] (any size; resized inside) to tokens
(B, N, cross_attention_dim), layer-normalised.

* `ConvGarmentEncoder` *(ours)*: stride-2 convolution stages down to image/2^k, one token per cell of the
  last grid plus a learned position embedding, trained jointly with the UNet. Tokens keep *where* on the
  garment a print is, which a single pooled embedding would lose. 192 tokens at 256x192 and k=4.
* `ClipGarmentEncoder`: a transformers `CLIPVisionModel` loaded from a local folder (no download), frozen,
  its last hidden states (class token + patches) projected by a trained linear layer. It is what the paper
  uses; no CLIP weights exist offline, so ours is the default.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# OpenAI CLIP's input normalisation (the same constants for every released CLIP vision model).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def resize_garment(garment: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 3, H, W) float -> (B, 3, h, w): how `ConvGarmentEncoder` brings a garment of another size to its own
    (antialiased bilinear; training packs store the garment resized by this, `fipviton.tryon.pack`)."""
    return F.interpolate(garment, size=size, mode="bilinear", align_corners=False, antialias=True)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(channels, 8), channels)


class _Stage(nn.Module):
    """Stride-2 3x3 convolution, then a residual 3x3 convolution; GroupNorm + SiLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), _norm(cout), nn.SiLU())
        self.res = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1), _norm(cout), nn.SiLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        return x + self.res(x)


class ConvGarmentEncoder(nn.Module):
    """Our garment encoder. `forward(garment)`: (B, 3, h, w) in [-1, 1] -> (B, N, dim), N = grid cells.

    channels: widths of the stride-2 stages; size: (H, W) the garment is resized to (divisible by 2^stages).
    """

    def __init__(self, channels: tuple[int, ...], dim: int, size: tuple[int, int]) -> None:
        super().__init__()
        stride = 2 ** len(channels)
        if size[0] % stride or size[1] % stride:
            raise ValueError(f"garment size {size} must be divisible by {stride}")
        self.size = tuple(size)
        stages, cin = [], 3
        for cout in channels:
            stages.append(_Stage(cin, cout))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.grid = (size[0] // stride, size[1] // stride)
        self.proj = nn.Linear(cin, dim)
        self.position = nn.Parameter(torch.randn(1, self.grid[0] * self.grid[1], dim) * 0.02)
        self.norm = nn.LayerNorm(dim)

    @property
    def num_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    def forward(self, garment: torch.Tensor) -> torch.Tensor:
        if tuple(garment.shape[-2:]) != self.size:
            garment = resize_garment(garment, self.size)
        features = self.stages(garment)
        tokens = features.flatten(2).transpose(1, 2)
        return self.norm(self.proj(tokens) + self.position)


class ClipGarmentEncoder(nn.Module):
    """A frozen CLIP vision tower from a local folder + a trained projection. See the module docstring.

    The garment is resized (squashed) to CLIP's square input and normalised with CLIP's constants. The
    CLIP weights are not part of our saved state (`TryOnModel.save_pretrained` leaves `clip.*` out); the
    config stores `clip_path`, and the same folder must be present when the model is loaded.
    """

    def __init__(self, path: str, dim: int) -> None:
        super().__init__()
        from transformers import CLIPVisionModel

        from fipviton.errors import WeightsError

        try:
            self.clip = CLIPVisionModel.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise WeightsError(f"cannot load a CLIPVisionModel from {path}: {exc}") from exc
        self.clip.requires_grad_(False)
        self.clip.eval()
        vision = self.clip.config
        self.size = (int(vision.image_size), int(vision.image_size))
        self.proj = nn.Linear(int(vision.hidden_size), dim)
        self.norm = nn.LayerNorm(dim)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> ClipGarmentEncoder:
        super().train(mode)
        self.clip.eval()  # frozen: no dropout, whatever the mode of the rest
        return self

    def forward(self, garment: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(garment.float(), size=self.size, mode="bicubic", align_corners=False, antialias=True)
        x = ((x.clamp(-1, 1) + 1) / 2 - self.mean) / self.std
        with torch.no_grad():
            hidden = self.clip(pixel_values=x).last_hidden_state
        return self.norm(self.proj(hidden))
