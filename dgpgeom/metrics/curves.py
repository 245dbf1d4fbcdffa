"""PCK curves with their AUC, and F-scores between point sets, as the FreiHAND evaluation.

- Per point over the data set: the PCK curve over 100 thresholds in 0–50 mm, whose
  trapezoid area (normalised) is averaged over points: :func:`pck_auc`
  (:func:`pck_from_fractions` from counts accumulated elsewhere).
- F-scores at 5 and 15 mm between the vertex sets: :func:`f_score`.
- One figure of several PCK curves: :func:`plot_pck` (needs matplotlib).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from dgpgeom.validation import ShapeChecker, ShapeError, broadcast_batch_shapes, compute_dtype

__all__ = [
    "NN_CHUNK_ELEMENTS",
    "FScore",
    "PCKResult",
    "f_score",
    "pck_auc",
    "pck_from_fractions",
    "pck_thresholds",
    "plot_pck",
]

#: Default budget, in distance entries, of one chunk of the nearest-neighbour search.
NN_CHUNK_ELEMENTS = 1 << 22


def pck_thresholds(
    low: float = 0.0, high: float = 0.05, steps: int = 100, *, dtype=torch.float64, device=None
) -> Tensor:
    """The PCK thresholds of the FreiHAND evaluation, ``numpy.linspace(0, 0.05, 100)`` metres.

    Built with :func:`numpy.linspace` so that they equal the official thresholds bit
    for bit.

    Example:
        >>> t = pck_thresholds()
        >>> t.shape, float(t[1])
        (torch.Size([100]), 0.000505050505050505)
    """
    return torch.as_tensor(np.linspace(low, high, steps), dtype=dtype, device=device)


class PCKResult(NamedTuple):
    """Result of :func:`pck_auc`.

    Attributes:
        thresholds: `(T,)` metres.
        curve: `(..., T)` the PCK curve averaged over points.
        auc: `(...)` the per-point AUCs averaged over points (FreiHAND's ``auc``).
        point_curves: `(..., N, T)` the PCK curve of each point over the samples.
        point_auc: `(..., N)` the normalised trapezoid area under each point's curve.
    """

    thresholds: Tensor
    curve: Tensor
    auc: Tensor
    point_curves: Tensor
    point_auc: Tensor


def pck_from_fractions(point_curves: Tensor, thresholds: Tensor) -> PCKResult:
    """PCK and AUC from per-point fractions below each threshold, counted elsewhere.

    For streaming evaluation: accumulate, per point, how many samples have an error at
    most each threshold, divide by the sample count, and pass the fractions here
    (:class:`~dgpgeom.metrics.FreiHANDEvaluator` does this). :func:`pck_auc` is this
    function applied to the fractions of a whole error tensor.

    Args:
        point_curves: `(..., N, T)` fraction of samples within each threshold, per point.
        thresholds: `(T,)` metres, increasing.

    Returns:
        A :class:`PCKResult`.

    Example:
        >>> result = pck_from_fractions(torch.tensor([[0.0, 0.5, 1.0]]), torch.tensor([0.0, 0.01, 0.02]))
        >>> float(result.auc)
        0.5
    """
    span = torch.trapezoid(torch.ones_like(thresholds), thresholds)
    area = torch.trapezoid(point_curves, thresholds, dim=-1)
    # A zero span (one threshold, or all equal): the AUC is the limit, the PCK itself.
    point_auc = torch.where(
        span > 0, area / torch.where(span > 0, span, 1.0), point_curves.mean(-1)
    )
    return PCKResult(thresholds, point_curves.mean(-2), point_auc.mean(-1), point_curves, point_auc)


def pck_auc(errors: Tensor, thresholds: Tensor | None = None) -> PCKResult:
    """PCK curves and their AUC over a data set, with the semantics of FreiHAND's ``EvalUtil``.

    For each point (keypoint or vertex) ``k`` and threshold ``t``, the PCK is the
    fraction of samples with ``error <= t``; the AUC of point ``k`` is the trapezoid
    area under its curve divided by that of a curve of ones (the threshold span); the
    reported AUC is the mean of the per-point AUCs and the reported curve the mean of
    the per-point curves. Where the thresholds span no interval (one threshold, or all
    equal, e.g. all zero) the AUC is the limit of that definition: the PCK at the
    threshold. A NaN error counts as a miss at every threshold.

    Args:
        errors: `(..., S, N)` metres, S samples of N points (e.g. from :func:`point_error`).
        thresholds: `(T,)` metres, increasing; default :func:`pck_thresholds` (0–50 mm,
            100 steps).

    Returns:
        A :class:`PCKResult`.

    Raises:
        ShapeError: on wrong shapes or dtypes, no sample (``S = 0``), no point
            (``N = 0``) or no threshold (``T = 0``).

    Example:
        >>> errors = torch.tensor([[0.0, 0.01], [0.02, 0.06]])  # 2 samples, 2 points
        >>> result = pck_auc(errors, torch.tensor([0.0, 0.02, 0.04]))
        >>> result.point_curves
        tensor([[0.5000, 1.0000, 1.0000],
                [0.0000, 0.5000, 0.5000]])
        >>> result.auc  # mean of the per-point AUCs 0.875 and 0.375
        tensor(0.6250)
    """
    check = ShapeChecker()
    check(errors, "errors", "... S N")
    if thresholds is None:
        thresholds = pck_thresholds(dtype=errors.dtype, device=errors.device)
    check(thresholds, "thresholds", "T")
    for name, size in (("S", "samples"), ("N", "points"), ("T", "thresholds")):
        if check.sizes[name] == 0:
            arg = "thresholds" if name == "T" else "errors"
            raise ShapeError(f"{arg}: expected at least one of the {size} ({name}), got none")
    below = errors.unsqueeze(-1) <= thresholds.to(errors.dtype)  # (..., S, N, T)
    fractions = below.to(errors.dtype).mean(-3)
    return pck_from_fractions(fractions, thresholds.to(errors.dtype))


class FScore(NamedTuple):
    """Result of :func:`f_score`, each `(..., T)` for T thresholds.

    Attributes:
        f: ``2PR / (P + R)``, 0 where ``P + R = 0``.
        precision: fraction of predicted points closer than the threshold to the ground truth.
        recall: fraction of ground-truth points closer than the threshold to the prediction.
    """

    f: Tensor
    precision: Tensor
    recall: Tensor


def _nearest_both_ways(pred: Tensor, gt: Tensor, chunk_elements: int) -> tuple[Tensor, Tensor]:
    """Distances `(..., P)` from each predicted point to the ground truth and `(..., G)` back."""
    batch = pred.shape[:-2]
    num_p, num_g = pred.shape[-2], gt.shape[-2]
    if num_g == 0:  # no ground truth: every predicted point is infinitely far from it
        return pred.new_full((*batch, num_p), math.inf), gt.new_zeros((*batch, 0))
    # Centre both on the ground truth's mean: cdist's matrix-product form then
    # loses no precision to the ~0.5 m camera-space offset.
    centre = gt.mean(-2, keepdim=True)
    pred, gt = pred - centre, gt - centre
    rows = max(1, chunk_elements // max(1, math.prod(batch) * num_g))
    to_gt = []
    to_pred = None
    for start in range(0, num_p, rows):
        d = torch.cdist(pred[..., start : start + rows, :], gt)  # (..., rows, G)
        to_gt.append(d.amin(-1))
        column = d.amin(-2)
        to_pred = column if to_pred is None else torch.minimum(to_pred, column)
    if to_pred is None:  # no predicted points
        to_pred = gt.new_full((*batch, num_g), math.inf)
        return pred.new_zeros((*batch, 0)), to_pred
    return torch.cat(to_gt, dim=-1), to_pred


def f_score(
    pred: Tensor,
    gt: Tensor,
    thresholds: Sequence[float] = (0.005, 0.015),
    *,
    chunk_elements: int = NN_CHUNK_ELEMENTS,
) -> FScore:
    """F-scores between predicted and ground-truth point sets, as the FreiHAND evaluation.

    Each point is matched to its nearest neighbour in the other set (no one-to-one
    correspondence; the two sets may have different sizes). Precision is the fraction
    of predicted points whose nearest ground-truth point is closer than the threshold
    (strictly), recall the fraction of ground-truth points closer than it to the
    prediction, and ``F = 2PR / (P + R)``, 0 where both are 0. (The official script,
    through Open3D's point-cloud distances, names precision and recall the other way
    round; ``F`` is symmetric and identical.) The distances are computed in chunks of
    at most ``chunk_elements`` pairs, so 1,609-vertex meshes need no large buffers.
    An empty set has a precision (empty prediction) or recall (empty ground truth) of
    0, so ``F = 0``; a NaN point is never closer than a threshold.

    Args:
        pred: `(..., P, 3)` metres.
        gt: `(..., G, 3)` metres.
        thresholds: metres, default 5 mm and 15 mm.
        chunk_elements: memory budget, in distance entries, of one chunk.

    Returns:
        An :class:`FScore` ``(f, precision, recall)``, each `(..., T)`.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch dimensions that do not broadcast.
        ValueError: on empty ``thresholds`` or a non-positive ``chunk_elements``.

    Example:
        >>> gt = torch.tensor([[0.0, 0.0, 0.5], [0.01, 0.0, 0.5]])
        >>> pred = torch.tensor([[0.0, 0.0, 0.5], [0.03, 0.0, 0.5], [0.0, 0.002, 0.5]])
        >>> result = f_score(pred, gt)
        >>> result.precision, result.recall
        (tensor([0.6667, 0.6667]), tensor([0.5000, 1.0000]))
    """
    check = ShapeChecker()
    batch = broadcast_batch_shapes(
        pred=check(pred, "pred", "... P 3"), gt=check(gt, "gt", "... G 3")
    )
    thresholds = tuple(float(t) for t in thresholds)
    if not thresholds:
        raise ValueError("thresholds: expected at least one threshold")
    if (
        isinstance(chunk_elements, bool)
        or not isinstance(chunk_elements, int)
        or chunk_elements < 1
    ):
        raise ValueError(f"chunk_elements: expected a positive int, got {chunk_elements!r}")
    dtype, out_dtype = compute_dtype(pred, gt)
    pred = pred.to(dtype).expand(*batch, *pred.shape[-2:])
    gt = gt.to(dtype).expand(*batch, *gt.shape[-2:])
    to_gt, to_pred = _nearest_both_ways(pred, gt, chunk_elements)
    # Python-float comparisons: no threshold tensor is copied to the device.
    # Fractions over possibly empty sets: the count divided by max(size, 1).
    num_p, num_g = max(pred.shape[-2], 1), max(gt.shape[-2], 1)
    precision = torch.stack([(to_gt < t).to(dtype).sum(-1) / num_p for t in thresholds], dim=-1)
    recall = torch.stack([(to_pred < t).to(dtype).sum(-1) / num_g for t in thresholds], dim=-1)
    total = precision + recall
    f = torch.where(total > 0, 2.0 * precision * recall / torch.where(total > 0, total, 1.0), 0.0)
    return FScore(f.to(out_dtype), precision.to(out_dtype), recall.to(out_dtype))


def plot_pck(
    path: str | Path,
    curves: Sequence[tuple[str, np.ndarray | Tensor, np.ndarray | Tensor]],
    *,
    title: str | None = None,
) -> Path:
    """Plot labelled PCK curves in one figure (thresholds in millimetres); needs matplotlib.

    Args:
        path: the image file to write (format from its suffix).
        curves: ``(label, thresholds, pck)`` triples, thresholds `(T,)` in metres, pck
            `(T,)` in ``[0, 1]``. A curve with a non-finite value is left out.
        title: the figure's title, or ``None``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Example:
        >>> import tempfile
        >>> t = pck_thresholds()
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     plot_pck(f"{tmp}/pck.png", [("ours", t, t / 0.05)]).stat().st_size > 0
        True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    for label, thresholds, pck in curves:
        pck = np.asarray(pck, dtype=np.float64)
        if np.all(np.isfinite(pck)):
            ax.plot(np.asarray(thresholds, dtype=np.float64) * 1000.0, pck, label=label)
    ax.set_xlabel("error threshold (mm)")
    ax.set_ylabel("3D PCK (fraction of correct points)")
    ax.set_ylim(0.0, 1.0)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
