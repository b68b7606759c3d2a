"""The try-on network: a stock diffusers `UNet2DConditionModel` with local and global conditions.

`TryOnModel.denoise(x_t, t, local, tokens)` predicts the clean image (x0-prediction) from a noised one.
The UNet is built from `TryOnConfig` (never a forked copy); everything around it is small:

* local conditions (agnostic image, agnostic mask, warped garment, warped mask, one-hot body-part map) are
  concatenated with x_t on channels. In pixel space the concatenation is folded into p x p patches
  (PixelUnshuffle) before the UNet and its output unfolded (PixelShuffle) after it, so a 256x192 image
  costs what a 128x96 one does; an optional full-resolution head (`refine_channels`) then corrects the
  unfolded output, seeing x_t and the local conditions at full resolution. In latent space the two images
  go through the frozen VAE encoder and the masks and the one-hot map are area-resized to the latent grid.
* the global condition: garment tokens (`fipviton.tryon.encoders`) through the UNet's cross-attention,
  which sits only at the low-resolution levels (`attention_levels`) and in the middle block.

Body parts enter as a one-hot of the 15 `BodyPart` values rather than a learned embedding: the UNet's first
convolution already learns a linear map of the one-hot (an embedding would only factor that convolution),
area-resizing a one-hot to a latent or patch grid gives meaningful part fractions, and "switched off" is
well defined (all zeros).

Weights: `save_pretrained(dir)` writes `config.json` + `model.safetensors` (no pickle). A frozen VAE or
CLIP tower is not saved: the config stores its local path and `from_pretrained` loads it from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from fipviton.bodyparts import NUM_BODY_PARTS
from fipviton.errors import WeightsError
from fipviton.tryon.config import LOCAL_CONDITIONS, TryOnConfig
from fipviton.tryon.encoders import ClipGarmentEncoder, ConvGarmentEncoder
from fipviton.tryon.inputs import TryOnInputs

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, UNet2DConditionModel

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights" / "tryon"
# State-dict prefixes of frozen third-party modules that are loaded from their own folders, never saved.
EXTERNAL_PREFIXES = ("vae.", "garment_encoder.clip.")


def build_unet(config: TryOnConfig, in_channels: int, out_channels: int) -> UNet2DConditionModel:
    """The diffusers `UNet2DConditionModel` of a config (random init)."""
    from diffusers import UNet2DConditionModel

    levels = len(config.block_out_channels)
    attention = set(config.attention_levels) if config.cross_attention_in_unet else set()
    down = [("CrossAttnDownBlock2D" if level in attention else "DownBlock2D") for level in range(levels)]
    up = [("CrossAttnUpBlock2D" if (levels - 1 - i) in attention else "UpBlock2D") for i in range(levels)]
    mid = "UNetMidBlock2DCrossAttn" if config.cross_attention_in_unet else "UNetMidBlock2D"
    # diffusers' `attention_head_dim` of this class is, for historical reasons, the number of heads per block.
    heads = tuple(max(1, channels // config.attention_head_dim) for channels in config.block_out_channels)
    return UNet2DConditionModel(
        sample_size=None,
        in_channels=in_channels,
        out_channels=out_channels,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        mid_block_type=mid,
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        cross_attention_dim=config.cross_attention_dim,
        attention_head_dim=heads,
        norm_num_groups=config.norm_num_groups,
        conv_in_kernel=config.conv_in_kernel,
    )


def load_vae(path: str) -> AutoencoderKL:
    """A frozen diffusers `AutoencoderKL` from a local folder; `WeightsError` when it cannot be loaded."""
    from diffusers import AutoencoderKL

    try:
        vae = AutoencoderKL.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise WeightsError(f"cannot load an AutoencoderKL from {path}: {exc}") from exc
    vae.requires_grad_(False)
    return vae.eval()


class TryOnModel(nn.Module):
    """The try-on network (see the module docstring). Build it from a `TryOnConfig`."""

    def __init__(self, config: TryOnConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or TryOnConfig()
        self.vae = None
        if config.space == "latent":
            if not config.vae_path:
                raise WeightsError("space='latent' needs vae_path (a local diffusers AutoencoderKL folder)")
            self.vae = load_vae(config.vae_path)
            vae_config = self.vae.config
            self.latent_channels = int(vae_config.latent_channels)
            self.vae_factor = 2 ** (len(vae_config.block_out_channels) - 1)
            self.scaling_factor = float(getattr(vae_config, "scaling_factor", 1.0) or 1.0)
            self.shift_factor = float(getattr(vae_config, "shift_factor", 0.0) or 0.0)
            target_channels = self.latent_channels
        else:
            self.latent_channels = 3
            self.vae_factor = 1
            self.scaling_factor = 1.0
            self.shift_factor = 0.0
            target_channels = 3
        cond_channels = sum(self._model_channels(name, ch) for name, ch in config.input_conditions())
        p = config.patch_size
        self.unet = build_unet(config, (target_channels + cond_channels) * p * p, target_channels * p * p)
        self.refine: nn.Sequential | None = None
        if config.refine_channels:
            width = config.refine_channels
            self.refine = nn.Sequential(
                nn.Conv2d(2 * target_channels + cond_channels, width, 3, padding=1),
                nn.SiLU(),
                nn.Conv2d(width, width, 3, padding=1),
                nn.SiLU(),
                nn.Conv2d(width, target_channels, 3, padding=1),
            )
            # A residual correction that starts at zero: a network warm-started from weights without the
            # head (`--init-weights`) begins exactly where those weights were.
            nn.init.zeros_(self.refine[-1].weight)
            nn.init.zeros_(self.refine[-1].bias)
        if config.garment_encoder == "clip":
            assert config.clip_path is not None
            self.garment_encoder: nn.Module = ClipGarmentEncoder(config.clip_path, config.cross_attention_dim)
        else:
            self.garment_encoder = ConvGarmentEncoder(
                config.encoder_channels, config.cross_attention_dim, config.garment_size
            )
        if not config.use_garment_tokens:
            # Switched off: the encoder stays (everything else equal) but is frozen, so that no optimizer or
            # DDP sees parameters without gradients.
            self.garment_encoder.requires_grad_(False)
        # Imported here: diffusion.py needs nothing from this module at import time.
        from fipviton.tryon.diffusion import AlteredDiffusion

        self.diffusion = AlteredDiffusion(config)

    # ----- shapes -----

    def _model_channels(self, name: str, pixel_channels: int) -> int:
        """Channels a local condition occupies at the UNet input (images become latents in latent space)."""
        if self.config.space == "latent" and name in ("agnostic", "warped"):
            return self.latent_channels
        return pixel_channels

    @property
    def model_size(self) -> tuple[int, int]:
        """(h, w) of the diffusion variable: the image size, or the latent size."""
        h, w = self.config.image_size
        return h // self.vae_factor, w // self.vae_factor

    @property
    def grid_size(self) -> tuple[int, int]:
        """(h, w) of the grid the UNet predicts on: the diffusion variable's size over the patch size (each
        position paints one patch). Image detail finer than this grid comes from the layers after it alone."""
        h, w = self.model_size
        return h // self.config.patch_size, w // self.config.patch_size

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def train(self, mode: bool = True) -> TryOnModel:
        super().train(mode)
        if self.vae is not None:
            self.vae.eval()  # frozen
        return self

    # ----- image <-> diffusion space -----

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> the diffusion variable (pixels, or scaled VAE latent means)."""
        if self.vae is None:
            return image
        with torch.no_grad():
            latents = self.vae.encode(image.float()).latent_dist.mean
        return (latents - self.shift_factor) * self.scaling_factor

    def decode(self, sample: torch.Tensor) -> torch.Tensor:
        """The diffusion variable -> (B, 3, H, W) image (not clamped; gradients flow through the VAE decoder)."""
        if self.vae is None:
            return sample
        return self.vae.decode(sample.float() / self.scaling_factor + self.shift_factor).sample

    # ----- conditions -----

    def local_conditions(self, inputs: TryOnInputs) -> torch.Tensor:
        """The local conditions (B, C, h, w) at the diffusion variable's size, zeros for switched-off ones."""
        config = self.config
        size = self.model_size
        parts: list[torch.Tensor] = []
        for name, _channels in config.input_conditions():
            enabled = getattr(config, f"use_{name}")
            value = self._condition(inputs, name, size, enabled)
            parts.append(value)
        if not parts:
            return inputs.agnostic.new_zeros((inputs.batch_size, 0, *size))
        return torch.cat(parts, dim=1)

    def _condition(self, inputs: TryOnInputs, name: str, size: tuple[int, int], enabled: bool) -> torch.Tensor:
        b = inputs.batch_size
        channels = self._model_channels(name, dict(LOCAL_CONDITIONS)[name])
        if not enabled:
            return inputs.agnostic.new_zeros((b, channels, *size))
        if name == "body_parts":
            one_hot = F.one_hot(inputs.body_parts.long().clamp(0, NUM_BODY_PARTS - 1), NUM_BODY_PARTS)
            value = one_hot.permute(0, 3, 1, 2).to(inputs.agnostic.dtype)
        else:
            value = getattr(inputs, name)
        if name in ("agnostic", "warped") and self.vae is not None:
            return self.encode_image(value)
        if tuple(value.shape[-2:]) != size:
            value = F.interpolate(value.float(), size=size, mode="area")
        return value

    def garment_tokens(self, inputs: TryOnInputs) -> torch.Tensor:
        """Garment tokens (B, N, cross_attention_dim); one zero token when the global condition is off."""
        if not self.config.use_garment_tokens:
            return inputs.agnostic.new_zeros((inputs.batch_size, 1, self.config.cross_attention_dim))
        return self.garment_encoder(inputs.garment)

    def conditions(self, inputs: TryOnInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(local, tokens): computed once per batch and reused by every denoising step."""
        inputs.validate(self.config.image_size)
        return self.local_conditions(inputs), self.garment_tokens(inputs)

    # ----- the network -----

    def denoise(
        self, x_t: torch.Tensor, timesteps: torch.Tensor, local: torch.Tensor, tokens: torch.Tensor
    ) -> torch.Tensor:
        """Predict the clean diffusion variable (B, c, h, w) from the noised one at `timesteps` (B,) int."""
        p = self.config.patch_size
        full = torch.cat((x_t, local.to(x_t.dtype)), dim=1)
        x = F.pixel_unshuffle(full, p) if p > 1 else full
        if x_t.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.unet(x, timesteps, encoder_hidden_states=tokens).sample
        if p > 1:
            out = F.pixel_shuffle(out, p)
        if self.refine is not None:
            head_input = torch.cat((out, full.to(out.dtype)), dim=1)
            if x_t.device.type == "cpu":  # 2-4x faster full-resolution convolutions on CPU
                head_input = head_input.contiguous(memory_format=torch.channels_last)
            out = out + self.refine(head_input)
        return out

    def forward(self, x_t: torch.Tensor, timesteps: torch.Tensor, inputs: TryOnInputs) -> torch.Tensor:
        local, tokens = self.conditions(inputs)
        return self.denoise(x_t, timesteps, local, tokens)

    # ----- inference shortcuts (see fipviton.tryon.diffusion) -----

    @torch.no_grad()
    def generate(
        self,
        inputs: TryOnInputs,
        steps: int = 1,
        generator: torch.Generator | None = None,
        mirror_average: bool = False,
        **kwargs: Any,
    ) -> torch.Tensor:
        """The try-on image (B, 3, H, W) in [-1, 1]: one call at t* (steps=1), or an N-step DDIM run.

        mirror_average: also run the network on the mirror image of the inputs (`TryOnInputs.mirrored`), mirror
        that output back and return the mean of the two: twice the network time for a steadier image (the two
        differ most where the network guesses, e.g. arms and folds; try-on card, "Mirror averaging").
        Extra keyword arguments go to `AlteredDiffusion.sample_ddim` (`start`, `strength`, `eta`).
        """
        if mirror_average:
            direct = self.generate(inputs, steps, generator, **kwargs)
            mirrored = self.generate(inputs.mirrored(), steps, generator, **kwargs).flip(-1)
            return (direct + mirrored) / 2
        if steps == 1 and not kwargs:
            return self.diffusion.single_step(self, inputs, generator=generator)
        return self.diffusion.sample_ddim(self, inputs, steps=steps, generator=generator, **kwargs)

    # ----- weights -----

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The state without the frozen external modules (`EXTERNAL_PREFIXES`)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(EXTERNAL_PREFIXES)}

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None) -> None:
        """Write `config.json` and `model.safetensors` (no pickle) into `directory` (created if needed).

        dtype: store the floating-point tensors in this type (e.g. torch.float16: half the file; loading casts
        them back to the model's type). None keeps their own.
        """
        from fipviton.weights_file import write_weights

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_weights(self.trainable_state_dict(), directory / WEIGHTS_NAME, dtype)
        self.config.save(directory / CONFIG_NAME)

    def load_trainable_state_dict(
        self, state: dict[str, torch.Tensor], source: str = "state", allow_missing: tuple[str, ...] = ()
    ) -> None:
        """Load a state saved by `save_pretrained` (external frozen modules keep their own weights).

        allow_missing: name prefixes of tensors that `state` may lack (they keep their current values).
        """
        own = set(self.trainable_state_dict())
        missing = sorted(k for k in own - set(state) if not k.startswith(allow_missing))
        unexpected = sorted(set(state) - own)
        if missing or unexpected:
            raise WeightsError(
                f"try-on weights in {source} do not match the config: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )
        try:
            self.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise WeightsError(f"try-on weights in {source} do not match the config: {exc}") from exc

    def warm_start_from(self, directory: str | Path) -> list[str]:
        """Copy the weights of a saved try-on model into this one (the start of a fresh training run).

        The saved network must be this one, except that it may lack the full-resolution head
        (`refine_channels`), which then keeps its zero-output start. Returns the names of the tensors that
        the folder did not have. `WeightsError` when the weights do not fit.
        """
        from safetensors.torch import load_file

        weights_path = Path(directory) / WEIGHTS_NAME
        if not weights_path.is_file():
            raise WeightsError(f"no try-on weights in {directory} (expected {WEIGHTS_NAME})")
        state = load_file(str(weights_path))
        absent = sorted(k for k in self.trainable_state_dict() if k not in state)
        self.load_trainable_state_dict(state, str(directory), allow_missing=("refine.",))
        return absent

    @classmethod
    def from_pretrained(
        cls, directory: str | Path | None = None, device: str | torch.device = "cpu", **overrides: Any
    ) -> TryOnModel:
        """Load a model saved by `save_pretrained`; `None` loads the weights shipped in `fipviton/weights/tryon`.

        `overrides` replace config fields that do not change the weights (e.g. `vae_path`, `clip_path` for a user
        whose VAE or CLIP folder lives elsewhere, `inference_t_star`). Returns the model in eval mode on `device`.
        """
        from dataclasses import replace

        from safetensors.torch import load_file

        directory = Path(directory) if directory is not None else DEFAULT_WEIGHTS_DIR
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        if not config_path.is_file() or not weights_path.is_file():
            raise WeightsError(f"no try-on weights in {directory} (expected {CONFIG_NAME} and {WEIGHTS_NAME})")
        config = TryOnConfig.load(config_path)
        if overrides:
            config = replace(config, **overrides)
        model = cls(config)
        model.load_trainable_state_dict(load_file(str(weights_path)), str(directory))
        return model.to(device).eval()


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
