"""The altered diffusion of the try-on module *(ours, from the paper's wording; DESIGN section 4 item 5)*.

A standard forward process x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, with abar from a stock diffusers
`DDPMScheduler` (`beta_schedule`, `num_train_timesteps` of `TryOnConfig`), and a network that predicts the
clean image x_0 directly (x0-prediction), so one call gives a result.

Training (`AlteredDiffusion.training_example`): the ground truth, or the noise condition image, or a mix
(`train_source`, `composite_prob`) is noised to a timestep drawn by `timestep_sampling`:

* "fixed": always t*. The model only works in one step from t*.
* "range": uniform in [t* - t_spread, t* + t_spread]: robust to the exact t*.
* "uniform": all of [0, T-1], the usual x0-prediction diffusion training: what the DDIM sampler needs.
* "mixed": t* with probability p_fixed, uniform otherwise: one model serves single-step inference and the
  N-step DDIM comparison (the shipped default).

The loss compares the prediction with the ground truth whatever was noised (`fipviton.tryon.losses`).

Inference, single step (`single_step`): the noise condition image (the agnostic image with the warped
garment pasted in, `fipviton.tryon.inputs.noise_condition_image`) is noised to t* and the network predicts
the clean image in one call. Noising it hides the composite's seams and holes (its high frequencies are
drowned) while its layout and colours survive, which is what makes it a usable stand-in for the noised
ground truth seen at training.

Inference, N steps (`sample_ddim`): a stock diffusers `DDIMScheduler` (same betas, `prediction_type="sample"`,
"trailing" timestep spacing, eta = 0 by default) over the same network, for the speed and quality
comparison. Two starts:

* `start="noise"`: from pure Gaussian noise at t = T-1, N calls (text-to-image style; the conditions carry
  all the information). Needs a model trained with "uniform" or "mixed" timesteps.
* `start="condition"`: from the noise condition image noised to t_start = strength * (T-1) (default: the
  model's t*), img2img style. The DDIM grid is chosen so that about N of its steps lie in [0, t_start]: N
  network calls, the first at the largest grid timestep <= t_start. With N = 1 this is the single-step mode
  (up to the grid rounding of t*).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from fipviton.tryon.config import TryOnConfig
from fipviton.tryon.inputs import TryOnInputs

if TYPE_CHECKING:
    from diffusers import DDIMScheduler

    from fipviton.tryon.model import TryOnModel


def _randn(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Gaussian noise drawn on the generator's device (CPU by default), then moved: reproducible anywhere."""
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device, dtype=torch.float32).to(like.device, like.dtype)


def _rand(n: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.rand((n,), generator=generator, device=gen_device).to(device)


class AlteredDiffusion:
    """Noise schedule, training timesteps and sources, single-step and DDIM inference (module docstring)."""

    def __init__(self, config: TryOnConfig) -> None:
        from diffusers import DDPMScheduler

        self.config = config
        self.scheduler = DDPMScheduler(
            num_train_timesteps=config.num_train_timesteps,
            beta_schedule=config.beta_schedule,
            beta_start=config.beta_start,
            beta_end=config.beta_end,
            prediction_type="sample",
            clip_sample=False,
        )
        self.alphas_cumprod = self.scheduler.alphas_cumprod.to(torch.float32)

    @property
    def num_timesteps(self) -> int:
        return self.config.num_train_timesteps

    def alpha_bar(self, timesteps: torch.Tensor) -> torch.Tensor:
        """abar_t (B,) float32 for integer timesteps (B,)."""
        return self.alphas_cumprod.to(timesteps.device)[timesteps.long()]

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, per sample."""
        abar = self.alpha_bar(timesteps).view(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def sample_timesteps(
        self, batch: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Training timesteps (B,) int64 drawn by `config.timestep_sampling` (module docstring)."""
        c = self.config
        device = torch.device(device)
        last = self.num_timesteps - 1
        fixed = torch.full((batch,), c.t_star, dtype=torch.long, device=device)
        if c.timestep_sampling == "fixed":
            return fixed
        u = _rand(batch, device, generator)
        if c.timestep_sampling == "range":
            low, high = max(0, c.t_star - c.t_spread), min(last, c.t_star + c.t_spread)
            return (low + (u * (high - low + 1)).floor().long()).clamp(low, high)
        uniform = (u * (last + 1)).floor().long().clamp(0, last)
        if c.timestep_sampling == "uniform":
            return uniform
        choose_fixed = _rand(batch, device, generator) < c.p_fixed
        return torch.where(choose_fixed, fixed, uniform)

    def training_example(
        self, model: TryOnModel, inputs: TryOnInputs, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_t, timesteps, target, from_composite) for one training batch.

        target: the ground truth in the diffusion space (B, c, h, w); x_t: the noised source; from_composite:
        (B,) bool, which samples were noised from the noise condition image instead of the ground truth.
        """
        if inputs.person is None:
            raise ValueError("training needs the ground truth (inputs.person)")
        c = self.config
        b = inputs.batch_size
        device = inputs.person.device
        target = model.encode_image(inputs.person)
        if c.train_source == "gt":
            from_composite = torch.zeros(b, dtype=torch.bool, device=device)
        elif c.train_source == "composite":
            from_composite = torch.ones(b, dtype=torch.bool, device=device)
        else:
            from_composite = _rand(b, device, generator) < c.composite_prob
        source = target
        if bool(from_composite.any()):
            composite = model.encode_image(inputs.noise_condition())
            pick = from_composite.view(-1, 1, 1, 1)
            source = torch.where(pick, composite, target)
        timesteps = self.sample_timesteps(b, device, generator)
        noise = _randn(tuple(source.shape), source, generator)
        return self.add_noise(source, noise, timesteps), timesteps, target, from_composite

    @torch.no_grad()
    def single_step(
        self,
        model: TryOnModel,
        inputs: TryOnInputs,
        t: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Single-step try-on: (B, 3, H, W) in [-1, 1] from the noise condition image noised to t
        (default: the config's inference t*)."""
        t = self.config.sampling_t_star if t is None else int(t)
        local, tokens = model.conditions(inputs)
        source = model.encode_image(inputs.noise_condition())
        timesteps = torch.full((inputs.batch_size,), t, dtype=torch.long, device=source.device)
        x_t = self.add_noise(source, _randn(tuple(source.shape), source, generator), timesteps)
        x0 = model.denoise(x_t, timesteps, local, tokens)
        return model.decode(x0.float()).clamp(-1, 1)

    def ddim_scheduler(self, steps: int, t_start: int | None = None) -> DDIMScheduler:
        """A diffusers `DDIMScheduler` over the same betas, with about `steps` timesteps in [0, t_start]."""
        from diffusers import DDIMScheduler

        scheduler = DDIMScheduler(
            num_train_timesteps=self.num_timesteps,
            beta_schedule=self.config.beta_schedule,
            beta_start=self.config.beta_start,
            beta_end=self.config.beta_end,
            prediction_type="sample",
            clip_sample=False,
            set_alpha_to_one=True,
            timestep_spacing="trailing",
        )
        last = self.num_timesteps - 1
        t_start = last if t_start is None else max(0, min(last, int(t_start)))
        # A grid of M trailing steps over [0, T-1] has about M * (t_start + 1) / T of them in [0, t_start].
        grid = max(steps, min(self.num_timesteps, math.ceil(steps * self.num_timesteps / (t_start + 1))))
        scheduler.set_timesteps(grid)
        kept = scheduler.timesteps[scheduler.timesteps <= t_start][:steps]
        if len(kept) == 0:
            kept = scheduler.timesteps[-1:]
        return scheduler, kept

    @torch.no_grad()
    def sample_ddim(
        self,
        model: TryOnModel,
        inputs: TryOnInputs,
        steps: int = 50,
        start: str = "noise",
        strength: float | None = None,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """N-step DDIM try-on: (B, 3, H, W) in [-1, 1]. `start` is "noise" or "condition" (module docstring).

        strength: for start="condition", t_start / (T-1) (default t* / (T-1)).
        """
        if steps < 1:
            raise ValueError("steps must be >= 1")
        local, tokens = model.conditions(inputs)
        b = inputs.batch_size
        last = self.num_timesteps - 1
        if start == "noise":
            scheduler, timesteps = self.ddim_scheduler(steps)
            like = local if local.shape[1] else inputs.agnostic
            h, w = model.model_size
            x = _randn((b, model.latent_channels, h, w), like.float(), generator)
        elif start == "condition":
            t_start = self.config.sampling_t_star if strength is None else round(float(strength) * last)
            scheduler, timesteps = self.ddim_scheduler(steps, t_start)
            source = model.encode_image(inputs.noise_condition()).float()
            first = torch.full((b,), int(timesteps[0]), dtype=torch.long, device=source.device)
            x = self.add_noise(source, _randn(tuple(source.shape), source, generator), first)
        else:
            raise ValueError(f"start must be 'noise' or 'condition', got {start!r}")
        x0 = x
        for t in timesteps:
            step_t = torch.full((b,), int(t), dtype=torch.long, device=x.device)
            x0 = model.denoise(x, step_t, local, tokens).float()
            x = scheduler.step(x0, int(t), x, eta=eta, generator=generator).prev_sample
        # The result is the last x0 prediction (what the final DDIM step, onto abar = 1, would return).
        return model.decode(x0).clamp(-1, 1)
