"""The try-on module's typed input (`TryOnInputs`) and the noise condition image.

All tensors are batched, float32 unless stated, at the model's `image_size` (H, W), on one device:

| field         | shape            | values                                                            |
|---------------|------------------|-------------------------------------------------------------------|
| agnostic      | (B, 3, H, W)     | RGB in [-1, 1], the person with the region to repaint greyed out  |
| agnostic_mask | (B, 1, H, W)     | {0, 1}, 1 = the region to repaint                                 |
| warped        | (B, 3, H, W)     | RGB in [-1, 1], the warped garment (white outside its mask)       |
| warped_mask   | (B, 1, H, W)     | [0, 1], where the warped garment is visible                       |
| body_parts    | (B, H, W) int64  | `fipviton.bodyparts.BodyPart` indices                             |
| garment       | (B, 3, Hg, Wg)   | RGB in [-1, 1], the in-shop garment photo (any size; resized)     |
| person        | (B, 3, H, W)     | RGB in [-1, 1], the ground truth; None at inference               |
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class TryOnInputs:
    """One batch of try-on conditions (see the module docstring for shapes and ranges)."""

    agnostic: torch.Tensor
    agnostic_mask: torch.Tensor
    warped: torch.Tensor
    warped_mask: torch.Tensor
    body_parts: torch.Tensor
    garment: torch.Tensor
    person: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> TryOnInputs:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return TryOnInputs(**{k: (v.to(device) if v is not None else None) for k, v in values.items()})

    @property
    def batch_size(self) -> int:
        return int(self.agnostic.shape[0])

    def resized(self, size: tuple[int, int]) -> TryOnInputs:
        """The same batch at (H, W): images and masks area-resized (bilinear when enlarging), body parts nearest.

        The garment keeps its size (the garment encoder resizes it itself).
        """
        size = (int(size[0]), int(size[1]))
        if tuple(self.agnostic.shape[-2:]) == size:
            return self

        def image(x: torch.Tensor | None) -> torch.Tensor | None:
            if x is None:
                return None
            shrinking = x.shape[-2] * x.shape[-1] > size[0] * size[1]
            if shrinking:
                return F.interpolate(x, size=size, mode="area")
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

        parts = F.interpolate(self.body_parts[:, None].float(), size=size, mode="nearest")[:, 0].long()
        mask = image(self.agnostic_mask)
        assert mask is not None
        return TryOnInputs(
            agnostic=image(self.agnostic),  # type: ignore[arg-type]
            agnostic_mask=(mask > 0.5).to(mask.dtype),
            warped=image(self.warped),  # type: ignore[arg-type]
            warped_mask=image(self.warped_mask),  # type: ignore[arg-type]
            body_parts=parts,
            garment=self.garment,
            person=image(self.person),
        )

    def mirrored(self) -> TryOnInputs:
        """The batch of the mirror-image photos: every image and mask flipped left-right, and the body-part map
        flipped with its left and right parts swapped (`fipviton.bodyparts.flip_parts`, the training flip)."""
        from fipviton.bodyparts import flip_parts

        def mirror(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.flip(-1)

        parts = torch.from_numpy(flip_parts(self.body_parts.cpu().numpy().astype(np.uint8)))
        return TryOnInputs(
            agnostic=self.agnostic.flip(-1),
            agnostic_mask=self.agnostic_mask.flip(-1),
            warped=self.warped.flip(-1),
            warped_mask=self.warped_mask.flip(-1),
            body_parts=parts.to(device=self.body_parts.device, dtype=self.body_parts.dtype),
            garment=self.garment.flip(-1),
            person=mirror(self.person),
        )

    def noise_condition(self) -> torch.Tensor:
        """The noise condition image (B, 3, H, W) in [-1, 1]: see `noise_condition_image`."""
        return noise_condition_image(self.agnostic, self.warped, self.warped_mask)

    def validate(self, size: tuple[int, int] | None = None) -> None:
        """Raise `ValueError` when shapes disagree (with each other, or with `size` = (H, W))."""
        b = self.batch_size
        h, w = size if size is not None else tuple(self.agnostic.shape[-2:])
        expected = {
            "agnostic": (b, 3, h, w),
            "agnostic_mask": (b, 1, h, w),
            "warped": (b, 3, h, w),
            "warped_mask": (b, 1, h, w),
            "body_parts": (b, h, w),
        }
        if self.person is not None:
            expected["person"] = (b, 3, h, w)
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"TryOnInputs.{name} must be {shape}, got {got}")
        if self.garment.ndim != 4 or self.garment.shape[:2] != (b, 3):
            raise ValueError(f"TryOnInputs.garment must be ({b}, 3, Hg, Wg), got {tuple(self.garment.shape)}")


def random_inputs(size: tuple[int, int], batch: int = 1, seed: int = 0) -> TryOnInputs:
    """A batch of random but well-formed inputs at (H, W) (for timing and shape checks; not an image)."""
    from fipviton.bodyparts import NUM_BODY_PARTS

    g = torch.Generator().manual_seed(seed)
    h, w = size

    def image() -> torch.Tensor:
        return torch.rand(batch, 3, h, w, generator=g) * 2 - 1

    def mask() -> torch.Tensor:
        return (torch.rand(batch, 1, h, w, generator=g) > 0.5).float()

    return TryOnInputs(
        agnostic=image(),
        agnostic_mask=mask(),
        warped=image(),
        warped_mask=mask(),
        body_parts=torch.randint(0, NUM_BODY_PARTS, (batch, h, w), generator=g),
        garment=image(),
        person=image(),
    )


def noise_condition_image(agnostic: torch.Tensor, warped: torch.Tensor, warped_mask: torch.Tensor) -> torch.Tensor:
    """The coarse composite that replaces the ground truth at inference (DESIGN section 4 item 5).

    The agnostic image (B, 3, H, W) with the warped garment (B, 3, H, W) pasted in where the warped mask
    (B, 1, H, W, in [0, 1]; soft edges blend) is: `agnostic * (1 - m) + warped * m`. Everything else of
    the agnostic image, including its grey fill where neither the person nor the garment is, stays.
    """
    m = warped_mask.clamp(0, 1).to(agnostic.dtype)
    return agnostic * (1 - m) + warped.to(agnostic.dtype) * m


def inputs_from_arrays(items: list[dict[str, np.ndarray]], device: torch.device | str | None = None) -> TryOnInputs:
    """`TryOnInputs` on `device` (None: the CPU) from per-sample uint8 arrays: person (H, W, 3), agnostic_mask
    (H, W) {0, 1}, warped (H, W, 3), warped_mask (H, W) 0..255, body_parts (H, W), garment (h, w, 3); the
    agnostic image is the person with `AGNOSTIC_GREY` inside the agnostic mask.

    The arrays travel as uint8 and become float on `device`: a quarter of the bytes, and on a GPU the
    conversion costs nothing (on one CPU thread it is ~2.5 ms per 256x192 item, as much as the augmentation).
    """
    from fipviton.agnostic import AGNOSTIC_GREY

    def stacked(name: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.asarray(i[name]) for i in items])).to(device)

    def images(name: str) -> torch.Tensor:
        return stacked(name).permute(0, 3, 1, 2).float() / 127.5 - 1.0

    person = images("person")
    mask = stacked("agnostic_mask").float()[:, None].clamp(0, 1)
    grey = AGNOSTIC_GREY / 127.5 - 1.0
    agnostic = person * (1 - mask) + grey * mask
    warped_mask = stacked("warped_mask").float()[:, None] / 255.0
    parts = stacked("body_parts").long()
    return TryOnInputs(
        agnostic=agnostic,
        agnostic_mask=mask,
        warped=images("warped"),
        warped_mask=warped_mask,
        body_parts=parts,
        garment=images("garment"),
        person=person,
    )
