"""The try-on module: single-step conditional diffusion on a stock diffusers UNet.

`TryOnModel` (config `TryOnConfig`) refines the coarse composite of the warping module and generates the
missing body parts; `TryOnInputs` is its typed input; `fipviton.tryon.diffusion.AlteredDiffusion` holds
the noise schedule, t*, single-step and DDIM inference; `fipviton.tryon.cache` prepares training inputs.
"""

from fipviton.tryon.config import PRESETS, TryOnConfig
from fipviton.tryon.inputs import TryOnInputs, noise_condition_image
from fipviton.tryon.model import DEFAULT_WEIGHTS_DIR, TryOnModel, count_parameters

__all__ = [
    "DEFAULT_WEIGHTS_DIR",
    "PRESETS",
    "TryOnConfig",
    "TryOnInputs",
    "TryOnModel",
    "count_parameters",
    "noise_condition_image",
]
