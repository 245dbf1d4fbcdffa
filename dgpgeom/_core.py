"""Small tensor helpers shared by several dgpgeom modules (private)."""

from __future__ import annotations

import torch
from torch import Tensor


def cast_all(dtype: torch.dtype, *tensors: Tensor) -> tuple[Tensor, ...]:
    """``tensors`` in ``dtype``, each converted only if needed."""
    return tuple(t if t.dtype == dtype else t.to(dtype) for t in tensors)


def expand_to(t: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``t`` expanded to ``shape`` (a view), unless it already has it."""
    return t if t.shape == shape else t.expand(shape)


def normalize_pixels(p: Tensor, k: Tensor) -> Tensor:
    """``K⁻¹ (u, v, 1)`` in closed form: `(..., N, 2)` pixels to normalised coordinates."""
    d = p - k[..., :2, 2].unsqueeze(-2)
    y = d[..., 1:] / k[..., 1:2, 1:2]
    x = (d[..., :1] - k[..., 0:1, 1:2] * y) / k[..., 0:1, 0:1]
    return torch.cat([x, y], dim=-1)
