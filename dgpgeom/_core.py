"""Small tensor helpers shared by several dgpgeom modules (private)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from dgpgeom.validation import ShapeChecker, ShapeError, broadcast_batch_shapes, compute_dtype

Kind = Literal["l1", "l2", "huber"]
Reduction = Literal["mean", "sum", "none"]

KINDS = ("l1", "l2", "huber")
REDUCTIONS = ("mean", "sum", "none")


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


def paired_points(
    pred: Tensor, gt: Tensor, pattern: str = "... N 3"
) -> tuple[Tensor, Tensor, torch.dtype]:
    """Check a prediction and its ground truth, broadcast their batches, cast to the
    compute dtype; returns ``(pred, gt, output_dtype)`` (used by the metrics)."""
    check = ShapeChecker()
    batch = broadcast_batch_shapes(pred=check(pred, "pred", pattern), gt=check(gt, "gt", pattern))
    dtype, out_dtype = compute_dtype(pred, gt)
    tail_p, tail_g = pred.shape[pred.dim() - 2 :], gt.shape[gt.dim() - 2 :]
    return pred.to(dtype).expand(*batch, *tail_p), gt.to(dtype).expand(*batch, *tail_g), out_dtype


def check_mask(check: ShapeChecker, valid: Tensor, pattern: str) -> tuple[int, ...]:
    """Check a boolean ``valid`` mask against ``pattern``; returns its batch shape."""
    batch = check(valid, "valid", pattern, floating=False)
    if valid.dtype != torch.bool:
        raise ShapeError(f"valid: expected dtype torch.bool, got {valid.dtype}")
    return batch


def reduce_loss(loss: Tensor, denominator: Tensor | float, reduction: str) -> Tensor:
    """Sum or mean of an already weighted and masked loss tensor."""
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    if isinstance(denominator, Tensor):
        denominator = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    else:
        denominator = max(denominator, 1.0)
    return total / denominator


def safe_sqrt(x: Tensor) -> Tensor:
    """sqrt with a zero (not NaN) gradient at 0."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), 0.0)


def check_single_view(
    points3d: Tensor,
    points2d: Tensor,
    intrinsics: Tensor,
    weights: Tensor | None,
    **vectors: Tensor | None,
) -> tuple[torch.Size, int]:
    """Check a single-view problem (and optional `(..., 3)` ``vectors`` such as a
    prior); returns the broadcast batch shape and the point count N >= 2."""
    check = ShapeChecker()
    batches = {
        "points3d": check(points3d, "points3d", "... N 3"),
        "points2d": check(points2d, "points2d", "... N 2"),
        "intrinsics": check(intrinsics, "intrinsics", "... 3 3"),
    }
    if weights is not None:
        batches["weights"] = check(weights, "weights", "... N")
    for name, vector in vectors.items():
        if vector is not None:
            batches[name] = check(vector, name, "... 3")
    num_points = check.sizes["N"]
    if num_points < 2:
        raise ShapeError(f"points3d: expected at least 2 points (N >= 2), got N={num_points}")
    return broadcast_batch_shapes(**batches), num_points
