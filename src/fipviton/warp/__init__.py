"""The warping module: a learned appearance flow that aligns the in-shop garment with the person.

`WarpNet` (config `WarpConfig`) predicts the flow from a garment branch and a person branch fused with
multi-head cross-attention; `fipviton.warp.flow` warps images with it at any resolution;
`fipviton.warp.conditioning` builds the person-branch input.
"""

from fipviton.warp.flow import upsample_flow, warp, warp_high_res
from fipviton.warp.model import DEFAULT_WEIGHTS_DIR, WarpConfig, WarpNet, WarpOutput

__all__ = ["DEFAULT_WEIGHTS_DIR", "WarpConfig", "WarpNet", "WarpOutput", "upsample_flow", "warp", "warp_high_res"]
