"""Sampling feature maps at keypoints given in crop pixels."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["sample_at_points"]


def sample_at_points(features: Tensor, points2d: Tensor, image_size: int) -> Tensor:
    """Bilinearly sample `(B, C, h, w)` features at `(B, N, 2)` crop pixels -> `(B, N, C)`.

    Pixel centres are on integer coordinates of the `image_size`-wide crop; the
    feature map covers the same field of view, so crop pixel ``x`` sits at
    normalised ``(x + 0.5) / image_size * 2 - 1`` (``align_corners=False``).

    Non-finite points never reach ``grid_sample`` (whose CPU backward crashes on
    a NaN sampling point): NaN samples the centre and ±Inf the border, with zero
    gradient. Points beyond the border are clamped just outside it, where
    ``padding_mode="border"`` gives the same values.
    """
    grid = (points2d + 0.5) / image_size * 2.0 - 1.0
    grid = torch.nan_to_num(grid, nan=0.0).clamp(-1.5, 1.5)
    sampled = torch.nn.functional.grid_sample(
        features, grid.unsqueeze(2), mode="bilinear", padding_mode="border", align_corners=False
    )
    return sampled.squeeze(-1).transpose(1, 2)
