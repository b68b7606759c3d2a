"""Mask-aware post-processing: a plug-in that restores the person's own pixels in any try-on output.

Two blocks (`../shared/DESIGN.md` section 4 item 6), each switchable in `PostProcessConfig`:

* unconditional `paste_back`: every original pixel outside the agnostic region, with a feathered seam;
* conditional `restore_identity` over `identity_mask`: inside the agnostic region, the identity pixels
  (skin, tattoos, hair, accessories, the other half's clothes) and the backdrop that the new garment does
  not cover, given back exactly, with the seam blended on the generated side (Poisson by default).

`postprocess` runs both; it takes only numpy images and masks.
"""

from fipviton.postprocess.blocks import (
    IDENTITY_LABELS,
    PostProcessConfig,
    config_from_overrides,
    identity_mask,
    paste_back,
    restore_identity,
)
from fipviton.postprocess.plugin import PostProcessResult, postprocess

__all__ = [
    "IDENTITY_LABELS",
    "PostProcessConfig",
    "PostProcessResult",
    "config_from_overrides",
    "identity_mask",
    "paste_back",
    "postprocess",
    "restore_identity",
]
