"""Appearance flow: sampling offsets in normalised coordinates, warping with them, and upsampling them.

A flow is a float tensor (B, 2, H, W): for each output pixel, the offset (dx, dy) to add to that pixel's own
normalised coordinate (x, y in [-1, 1], align_corners=False convention, x first as in `grid_sample`) to get
the point of the source image to sample. The zero flow is the identity. Normalised coordinates do not depend
on resolution, so a flow predicted at 128x96 is upsampled by plain bilinear interpolation of the offsets and
then samples a source image of any size (e.g. a 1024x768 garment) directly: the result is as sharp as the
source, not an upscaled low-resolution warp.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def base_grid(
    height: int, width: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Identity sampling grid (1, H, W, 2): pixel centres in normalised coordinates (align_corners=False)."""
    ys = (torch.arange(height, device=device, dtype=dtype) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=device, dtype=dtype) * 2 + 1) / width - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x, grid_y), dim=-1)[None]


def flow_to_grid(flow: torch.Tensor) -> torch.Tensor:
    """Sampling grid (B, H, W, 2) for `grid_sample` from a flow (B, 2, H, W)."""
    _, _, height, width = flow.shape
    return base_grid(height, width, flow.device, flow.dtype) + flow.permute(0, 2, 3, 1)


def warp(
    source: torch.Tensor, flow: torch.Tensor, padding_mode: str = "border", mode: str = "bilinear"
) -> torch.Tensor:
    """Sample `source` (B, C, h, w) with `flow` (B, 2, H, W) -> (B, C, H, W), in float32.

    The source may have any resolution: the flow's resolution is the output's. `padding_mode="zeros"` suits
    masks (nothing outside the garment photo), "border" suits images and features.
    """
    grid = flow_to_grid(flow.float())
    return F.grid_sample(source.float(), grid, mode=mode, padding_mode=padding_mode, align_corners=False)


def upsample_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Flow (B, 2, H, W) resized to `size` = (H', W'); offsets are normalised, so no rescaling is needed."""
    if tuple(flow.shape[-2:]) == tuple(size):
        return flow
    return F.interpolate(flow.float(), size=size, mode="bilinear", align_corners=False)


def warp_high_res(
    garment: torch.Tensor,
    garment_mask: torch.Tensor | None,
    flow: torch.Tensor,
    size: tuple[int, int],
    occlusion: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Warp a full-resolution garment with a flow predicted at a lower resolution.

    garment (B, 3, h, w) in [-1, 1] at any resolution; garment_mask (B, 1, h, w) in [0, 1] or None; flow
    (B, 2, H0, W0); size = (H, W) of the output person image. occlusion (B, 1, H0', W0') in [0, 1], the
    visible fraction of the garment that the warping module predicts (1 = visible), or None.
    Returns the warped garment (B, 3, H, W) in [-1, 1], white where the warped mask is 0 when a mask is
    given, and the warped mask (B, 1, H, W) in [0, 1] (None without a garment mask).
    """
    flow = upsample_flow(flow, size)
    warped = warp(garment, flow, padding_mode="border")
    if garment_mask is None:
        return warped.clamp(-1, 1), None
    mask = warp(garment_mask, flow, padding_mode="zeros")
    if occlusion is not None:
        mask = mask * F.interpolate(occlusion.float(), size=size, mode="bilinear", align_corners=False)
    mask = mask.clamp(0, 1)
    return (warped * mask + (1 - mask)).clamp(-1, 1), mask


def total_variation(flow: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring flow vectors (a scalar): the smoothness loss."""
    dx = (flow[..., :, 1:] - flow[..., :, :-1]).abs().mean()
    dy = (flow[..., 1:, :] - flow[..., :-1, :]).abs().mean()
    return dx + dy
