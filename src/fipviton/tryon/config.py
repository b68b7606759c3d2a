"""Configuration of the try-on module (`TryOnConfig`) and its named presets.

Everything needed to rebuild the network before loading weights, and everything inference needs (image
size, noise schedule, t*), lives here and is saved as `config.json` next to the weights. Training-only
knobs (learning rate, loss weights, batch size) live in `fipviton.training.tryon.TrainConfig`.

Presets:

* `cpu-256`: pixel space at 256x192, the model we ship. The UNet works on 2x2 pixel patches
  (space-to-depth, `patch_size=2`, 1x1 patch-embedding conv_in), so its four levels run at 128x96, 64x48,
  32x24 and 16x12 with 24, 32, 64, 128 channels; transformer blocks (cross-attention to the garment tokens)
  only at 32x24, 16x12 and in the middle block. The garment encoder sees the garment at 128x96 and gives
  16x12 = 192 tokens. 4.25 M UNet + 0.33 M encoder parameters, 4.8 GFLOP per image and call. Budget:
  <= ~60 ms per image at batch 1 on 2 CPU cores; time scales with the FLOPs (measured: 7.1 / 5.7 / 4.8
  GFLOP variants took 257 / 190 / 159 ms on one thread of a loaded machine), see benchmarks/bench_tryon.py.
* `latent-512` / `latent-1024`: the same design in the latent space of an `AutoencoderKL` that the user
  provides from a local folder (`vae_path`; e.g. a Stable Diffusion VAE, scaling factor from its config).
  512x384 gives a 64x48 latent, 1024x768 a 128x96 one.
* `tiny`: about 0.28 M parameters at 64x48, for tests and smoke runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from fipviton.bodyparts import NUM_BODY_PARTS
from fipviton.errors import WeightsError

PRESETS = ("cpu-256", "latent-512", "latent-1024", "tiny")
SPACES = ("pixel", "latent")
ABLATION_MODES = ("zeros", "drop")
GARMENT_ENCODERS = ("conv", "clip")
TIMESTEP_SAMPLINGS = ("fixed", "range", "uniform", "mixed")
TRAIN_SOURCES = ("gt", "composite", "mix")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")

# Local conditions, in the order they are concatenated, and their channel counts in pixel space.
LOCAL_CONDITIONS: tuple[tuple[str, int], ...] = (
    ("agnostic", 3),
    ("agnostic_mask", 1),
    ("warped", 3),
    ("warped_mask", 1),
    ("body_parts", NUM_BODY_PARTS),
)


@dataclass
class TryOnConfig:
    """Hyper-parameters of `TryOnModel` and of its altered diffusion.

    Image and space
        image_size:   (H, W) of the output image (and of every pixel-space input).
        space:        "pixel" (the UNet sees pixels in [-1, 1]) or "latent" (it sees the latents of an
                      `AutoencoderKL` loaded from `vae_path`; the VAE is frozen and not saved with our weights).
        vae_path:     local folder of a diffusers `AutoencoderKL` (latent space only).
        patch_size:   pixel space only: the UNet works on patch_size x patch_size space-to-depth patches
                      (PixelUnshuffle in, PixelShuffle out), which divides the cost of every level by p^2.
        refine_channels: pixel space with patch_size > 1 only: width of a small full-resolution head after
                      the PixelShuffle (three 3x3 convolutions fed the UNet's output, x_t and the local
                      conditions; its last layer starts at zero, so it starts as the identity). The UNet alone
                      predicts each p x p patch from one position of its grid, which leaves patch-edge
                      artefacts. 0: no head (the weights shipped before 2026-11-26 afternoon).

    UNet (a stock diffusers `UNet2DConditionModel`, built from these values)
        block_out_channels, layers_per_block, norm_num_groups, conv_in_kernel: as in diffusers (a 1x1
                      conv_in on 2x2 patches is a patch embedding, and saves the most expensive 3x3 layer).
        attention_levels: indices of the levels (0 = highest resolution) that get transformer blocks
                      (self-attention + cross-attention to the garment tokens); the middle block always
                      has one. Keep attention at the low-resolution levels: it is what makes pixel UNets slow.
        attention_head_dim: channels per attention head.
        cross_attention_dim: width of the garment tokens.

    Conditions (the paper's ablations switch them off, everything else equal)
        use_agnostic, use_agnostic_mask, use_warped, use_warped_mask, use_body_parts: local conditions,
                      concatenated on channels (body parts as a one-hot of `fipviton.bodyparts.BodyPart`).
        use_garment_tokens: the global condition (garment tokens through cross-attention).
        ablation_mode: how a switched-off condition disappears: "zeros" keeps the channels (and the
                      cross-attention) and feeds zeros; "drop" removes the channels from the UNet input
                      (and, for the garment tokens, builds the UNet without transformer blocks at the
                      attention levels; the middle block keeps a self-attention).

    Garment encoder (global condition)
        garment_encoder: "conv" (ours, trained jointly) or "clip" (a transformers `CLIPVisionModel` loaded
                      from the local folder `clip_path`, frozen; its tokens are projected to
                      `cross_attention_dim` by a trained linear layer).
        encoder_channels: widths of the conv encoder's stride-2 stages (the token grid is image/2^len).
        garment_size: (H, W) the conv encoder sees the garment at.

    Altered diffusion (DESIGN section 4 item 5)
        num_train_timesteps, beta_schedule, beta_start, beta_end: the diffusers noise schedule.
        t_star:       the timestep of "fixed" training, and of single-step inference unless inference_t_star is set.
        inference_t_star: the timestep of single-step inference when it differs from t_star (None: t_star).
                      A network trained with "mixed" timesteps can be run at another t*; it is chosen on
                      training pairs (see the model card), never on test pairs.
        timestep_sampling: training timesteps: "fixed" (always t*), "range" (uniform in t* +- t_spread),
                      "uniform" (all of [1, T-1]: what the DDIM sampler needs), "mixed" (t* with
                      probability p_fixed, else uniform: one model for both).
        train_source: what is noised at training: "gt" (the ground truth, the paper's wording),
                      "composite" (the noise condition image, what inference sees) or "mix" (the composite
                      with probability composite_prob).
    """

    image_size: tuple[int, int] = (256, 192)
    space: str = "pixel"
    vae_path: str | None = None
    patch_size: int = 2
    refine_channels: int = 0
    block_out_channels: tuple[int, ...] = (24, 32, 64, 128)
    layers_per_block: int = 1
    attention_levels: tuple[int, ...] = (2, 3)
    attention_head_dim: int = 32
    cross_attention_dim: int = 128
    norm_num_groups: int = 8
    conv_in_kernel: int = 1
    use_agnostic: bool = True
    use_agnostic_mask: bool = True
    use_warped: bool = True
    use_warped_mask: bool = True
    use_body_parts: bool = True
    use_garment_tokens: bool = True
    ablation_mode: str = "zeros"
    garment_encoder: str = "conv"
    clip_path: str | None = None
    encoder_channels: tuple[int, ...] = (32, 64, 128)
    garment_size: tuple[int, int] = (128, 96)
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    beta_start: float = 0.0001
    beta_end: float = 0.02
    t_star: int = 500
    inference_t_star: int | None = None
    timestep_sampling: str = "mixed"
    t_spread: int = 100
    p_fixed: float = 0.7
    train_source: str = "mix"
    composite_prob: float = 0.5
    preset: str = ""
    notes: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.image_size = tuple(self.image_size)
        self.block_out_channels = tuple(self.block_out_channels)
        self.attention_levels = tuple(self.attention_levels)
        self.encoder_channels = tuple(self.encoder_channels)
        self.garment_size = tuple(self.garment_size)
        self.validate()

    def validate(self) -> None:
        """Raise `ValueError` for values that cannot work together."""
        choices = {
            "space": (self.space, SPACES),
            "ablation_mode": (self.ablation_mode, ABLATION_MODES),
            "garment_encoder": (self.garment_encoder, GARMENT_ENCODERS),
            "timestep_sampling": (self.timestep_sampling, TIMESTEP_SAMPLINGS),
            "train_source": (self.train_source, TRAIN_SOURCES),
            "beta_schedule": (self.beta_schedule, BETA_SCHEDULES),
        }
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if not 0 < self.t_star < self.num_train_timesteps:
            raise ValueError(f"t_star must be in (0, {self.num_train_timesteps}), got {self.t_star}")
        if self.inference_t_star is not None and not 0 < self.inference_t_star < self.num_train_timesteps:
            raise ValueError(
                f"inference_t_star must be in (0, {self.num_train_timesteps}) or None, got {self.inference_t_star}"
            )
        levels = len(self.block_out_channels)
        if any(not 0 <= level < levels for level in self.attention_levels):
            raise ValueError(f"attention_levels {self.attention_levels} outside 0..{levels - 1}")
        if self.space == "latent" and not self.vae_path:
            raise ValueError("space='latent' needs vae_path (a local diffusers AutoencoderKL folder, e.g. --vae-path)")
        if self.space == "latent" and self.patch_size != 1:
            raise ValueError("patch_size applies to pixel space only (use 1 with space='latent')")
        if self.refine_channels < 0:
            raise ValueError(f"refine_channels must be >= 0, got {self.refine_channels}")
        if self.refine_channels and (self.space != "pixel" or self.patch_size == 1):
            raise ValueError("refine_channels needs pixel space with patch_size > 1 (it undoes patch artefacts)")
        if self.garment_encoder == "clip" and not self.clip_path:
            raise ValueError("garment_encoder='clip' needs clip_path (a local CLIPVisionModel folder)")
        for channels in self.block_out_channels:
            if channels % self.norm_num_groups:
                raise ValueError(f"block_out_channels {channels} not divisible by norm_num_groups")
        stride = 2 ** (levels - 1) * self.patch_size
        if self.space == "pixel" and (self.image_size[0] % stride or self.image_size[1] % stride):
            raise ValueError(f"image_size {self.image_size} must be divisible by {stride}")
        if not 0.0 <= self.p_fixed <= 1.0 or not 0.0 <= self.composite_prob <= 1.0:
            raise ValueError("p_fixed and composite_prob are probabilities")

    # ----- derived -----

    @property
    def sampling_t_star(self) -> int:
        """The timestep single-step inference (and DDIM from the noise condition image) starts from."""
        return self.t_star if self.inference_t_star is None else self.inference_t_star

    def enabled_local_conditions(self) -> list[tuple[str, int]]:
        """(name, pixel-space channels) of the local conditions that are switched on."""
        return [(name, ch) for name, ch in LOCAL_CONDITIONS if getattr(self, f"use_{name}")]

    def input_conditions(self) -> list[tuple[str, int]]:
        """(name, pixel-space channels) of the local conditions that have input channels in the UNet."""
        if self.ablation_mode == "drop":
            return self.enabled_local_conditions()
        return list(LOCAL_CONDITIONS)

    @property
    def cross_attention_in_unet(self) -> bool:
        """Whether the UNet has transformer blocks at `attention_levels` (False only for a dropped condition)."""
        return self.use_garment_tokens or self.ablation_mode == "zeros"

    # ----- presets and (de)serialisation -----

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> TryOnConfig:
        """A named preset (see the module docstring), with field overrides."""
        if name == "cpu-256":
            # Single-step inference at t* = 100, chosen on training pairs for this recipe (try-on model card).
            config = cls(preset=name, inference_t_star=100)
        elif name in ("latent-512", "latent-1024"):
            size = (512, 384) if name == "latent-512" else (1024, 768)
            config = cls(
                vae_path=overrides.pop("vae_path", None),
                preset=name,
                image_size=size,
                space="latent",
                patch_size=1,
                block_out_channels=(128, 256, 384, 512),
                layers_per_block=2,
                attention_levels=(1, 2, 3),
                attention_head_dim=64,
                cross_attention_dim=512,
                norm_num_groups=32,
                conv_in_kernel=3,
                encoder_channels=(32, 64, 128, 256),
                garment_size=(256, 192),
                t_star=500,
            )
        elif name == "tiny":
            config = cls(
                preset=name,
                image_size=(64, 48),
                patch_size=1,
                block_out_channels=(16, 32),
                layers_per_block=1,
                attention_levels=(1,),
                attention_head_dim=8,
                cross_attention_dim=32,
                norm_num_groups=8,
                conv_in_kernel=3,
                encoder_channels=(8, 16, 32),
                garment_size=(64, 48),
            )
        else:
            raise ValueError(f"unknown try-on preset {name!r} (choose from {', '.join(PRESETS)})")
        return replace(config, **overrides) if overrides else config

    def to_dict(self) -> dict:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TryOnConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise WeightsError(f"try-on config has unknown keys: {unknown}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise WeightsError(f"invalid try-on config: {exc}") from exc

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> TryOnConfig:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise WeightsError(f"{path}: unreadable try-on config ({exc})") from exc
        if not isinstance(data, dict):
            raise WeightsError(f"{path}: a try-on config must be a JSON object")
        return cls.from_dict(data)
