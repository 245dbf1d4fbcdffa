"""HandDGP's translation loss (§3.4). Conventions: see :mod:`dgpgeom.losses`."""

from __future__ import annotations

import torch
from torch import Tensor

from dgpgeom._core import check_mask, reduce_loss, safe_sqrt
from dgpgeom.validation import (
    ShapeChecker,
    broadcast_batch_shapes,
    compute_dtype,
)

__all__ = ["translation_loss"]


def translation_loss(
    translation: Tensor,
    translation_gt: Tensor,
    valid: Tensor | None = None,
) -> Tensor:
    r"""Root-mean-square Euclidean error of predicted translations (HandDGP's translation loss).

    .. math:: L_t = \sqrt{\frac{\sum_b m_b \lVert \hat t_b - t_b\rVert^2}{\sum_b m_b}},

    i.e. the Euclidean error of each sample, then the root mean square over every
    leading (batch) entry with ``valid`` True. This is :math:`\sqrt3` times the RMSE
    over the individual x, y, z components. The denominator is 1 when no entry is
    valid (loss 0), and the gradient at a loss of exactly 0 is 0, not NaN.

    Args:
        translation: `(..., 3)` metres, predicted.
        translation_gt: `(..., 3)` metres, ground truth.
        valid: `(...)` bool or ``None``: samples to include.

    Returns:
        A scalar, metres.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch dimensions that do not broadcast.

    Example:
        >>> pred = torch.tensor([[0.0, 0.0, 0.6], [0.03, 0.0, 0.5]])
        >>> gt = torch.tensor([[0.0, 0.0, 0.5], [0.0, 0.04, 0.5]])
        >>> translation_loss(pred, gt)  # sqrt((0.1² + 0.05²) / 2)
        tensor(0.0791)

    References:
        E. Valassakis and G. Garcia-Hernando. *HandDGP*, ECCV 2024, §3.4 (camera-space losses).
    """
    check = ShapeChecker()
    batches = {
        "translation": check(translation, "translation", "... 3"),
        "translation_gt": check(translation_gt, "translation_gt", "... 3"),
    }
    if valid is not None:
        batches["valid"] = check_mask(check, valid, "...")
    batch = tuple(broadcast_batch_shapes(**batches))
    dtype, out_dtype = compute_dtype(translation, translation_gt)
    diff = translation.to(dtype) - translation_gt.to(dtype)
    if valid is not None:
        # Masked before any arithmetic: where's backward gives them exactly zero, even
        # when they hold NaN (a mask applied after the square would give 0 * NaN).
        diff = torch.where(valid.unsqueeze(-1), diff, torch.zeros_like(diff))
    sq = diff.square().sum(-1).expand(batch)
    if valid is None:
        mean_sq = sq.mean() if sq.numel() > 0 else sq.sum()
    else:
        mean_sq = reduce_loss(sq, valid.expand(batch).sum().to(dtype), "mean")
    return safe_sqrt(mean_sq).to(out_dtype)
