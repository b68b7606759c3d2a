"""`postprocess`: both blocks in order, on images and masks only, so it can wrap any try-on model.

Inputs at the person's resolution (H, W): `generated` and `person` (H, W, 3) uint8; `agnostic_mask` (H, W)
bool; `parsing` (H, W) uint8 internal labels of the original person; `warped_mask` (H, W) float in [0, 1]
or bool; the garment `category`; optionally `person_mask` (H, W) bool, the person's silhouette (background
labels inside it are restored too: a parser calls ink on skin background). See `fipviton.postprocess.blocks`
for what each block does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fipviton.data.sample import Category
from fipviton.postprocess.blocks import (
    PostProcessConfig,
    check_image,
    check_mask,
    identity_mask,
    paste_back,
    restore_identity,
)


@dataclass
class PostProcessResult:
    """What `postprocess` returns, at the person's resolution.

    image:         (H, W, 3) uint8, the final image.
    restored_mask: (H, W) bool, the pixels the conditional block gave back, exactly the person's (all False
                   when it is off).
    repaint_mask:  (H, W) bool, where generated pixels remain: the agnostic region minus the restored pixels
                   (everything but the restored pixels when paste back is off). Both blocks' seam bands
                   lie in it.
    """

    image: np.ndarray
    restored_mask: np.ndarray
    repaint_mask: np.ndarray


def postprocess(
    generated: np.ndarray,
    person: np.ndarray,
    agnostic_mask: np.ndarray,
    parsing: np.ndarray,
    warped_mask: np.ndarray,
    category: Category | str,
    config: PostProcessConfig | None = None,
    person_mask: np.ndarray | None = None,
) -> PostProcessResult:
    """Restore the person's own pixels in a try-on output: paste back, then identity restore.

    Raises ValueError when shapes disagree or dtypes are not the documented ones. With both blocks off the
    image is a copy of `generated`.
    """
    config = config or PostProcessConfig()
    check_image("person", person)
    hw = person.shape[:2]
    check_image("generated", generated, hw)
    check_mask("agnostic_mask", agnostic_mask, hw)
    check_mask("parsing", parsing, hw, "uint8")
    check_mask("warped_mask", warped_mask, hw, "soft")

    image = paste_back(generated, person, agnostic_mask, config) if config.paste_back else generated.copy()
    if config.restore_identity:
        restored = identity_mask(parsing, warped_mask, agnostic_mask, category, config, person_mask, person)
        # With paste back, the person's pixels outside the agnostic region are final: no seam goes there.
        seam = agnostic_mask if config.paste_back else None
        image = restore_identity(image, person, restored, config, seam)
    else:
        restored = np.zeros(hw, dtype=bool)
    repaint = (agnostic_mask if config.paste_back else np.ones(hw, dtype=bool)) & ~restored
    return PostProcessResult(image=image, restored_mask=restored, repaint_mask=repaint)
