r"""Evaluation metrics for camera-space meshes, defined exactly as the FreiHAND evaluation.

The FreiHAND benchmark script (``eval.py`` with ``EvalUtil``) scores each sample's
21 keypoints and 778 vertices, in metres and camera space:

- **Unaligned** errors: Euclidean distance per point (HandDGP's CS-MJE / CS-MVE, in
  CMR and MobRecon "CS-MPJPE / CS-MPVPE"): :func:`point_error`.
- **Aligned** errors after a similarity Procrustes fit of the prediction to the
  ground truth: :func:`procrustes_align` / :func:`procrustes_error`.
- Per point over the data set: mean error, and the PCK curve over 100 thresholds in
  0–50 mm, whose trapezoid area (normalised) is averaged over points: :func:`pck_auc`.
- F-scores at 5 and 15 mm between the vertex sets: :func:`f_score`.

:class:`FreiHANDEvaluator` accumulates these over a data set and returns the
``scores.txt`` numbers. The per-batch functions take any number of leading batch
dimensions, run on any device and never synchronise with the host, except that
:func:`procrustes_align` calls :func:`torch.linalg.svd`, which on CUDA checks its
convergence flag on the host (one synchronisation per call).

References:
    C. Zimmermann et al. *FreiHAND: A Dataset for Markerless Capture of Hand Pose and
    Shape from Single RGB Images.* ICCV 2019 (benchmark and evaluation script).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from dgpgeom.validation import (
    ShapeChecker,
    ShapeError,
    broadcast_batch_shapes,
    check_option,
    compute_dtype,
)

__all__ = [
    "FScore",
    "FreiHANDEvaluator",
    "FreiHANDResult",
    "HandDGPErrors",
    "PCKResult",
    "ProcrustesAlignment",
    "f_score",
    "handdgp_errors",
    "pck_auc",
    "pck_thresholds",
    "point_error",
    "procrustes_align",
    "procrustes_error",
    "root_relative_error",
]

Reflection = Literal["allow", "forbid"]
MeshAlignment = Literal["auto", "own", "keypoints", "keypoints_official"]

#: Added to the Frobenius norms of the centred point sets before dividing by them,
#: as the official script does (it keeps an all-zero prediction finite).
NORM_EPS = 1e-8

#: Default budget, in distance entries, of one chunk of the nearest-neighbour search.
NN_CHUNK_ELEMENTS = 1 << 22


def _pair(pred: Tensor, gt: Tensor, pattern: str = "... N 3") -> tuple[Tensor, Tensor, torch.dtype]:
    check = ShapeChecker()
    batch = broadcast_batch_shapes(pred=check(pred, "pred", pattern), gt=check(gt, "gt", pattern))
    dtype, out_dtype = compute_dtype(pred, gt)
    tail_p, tail_g = pred.shape[pred.dim() - 2 :], gt.shape[gt.dim() - 2 :]
    return pred.to(dtype).expand(*batch, *tail_p), gt.to(dtype).expand(*batch, *tail_g), out_dtype


def point_error(pred: Tensor, gt: Tensor) -> Tensor:
    """Euclidean distance between corresponding points (the unaligned, camera-space error).

    Averaged over keypoints this is HandDGP's CS-MJE, over vertices its CS-MVE
    (FreiHAND's ``xyz_mean3d`` / ``mesh_mean3d`` before averaging over the data set).

    Args:
        pred: `(..., N, 3)` metres.
        gt: `(..., N, 3)` metres.

    Returns:
        `(..., N)` metres.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch dimensions that do not broadcast.

    Example:
        >>> point_error(torch.tensor([[0.0, 0.0, 0.5]]), torch.tensor([[0.03, 0.04, 0.5]]))
        tensor([0.0500])
    """
    pred, gt, out_dtype = _pair(pred, gt)
    return torch.linalg.vector_norm(pred - gt, dim=-1).to(out_dtype)


def root_relative_error(
    pred: Tensor,
    gt: Tensor,
    pred_root: Tensor | None = None,
    gt_root: Tensor | None = None,
    *,
    root_index: int = 0,
) -> Tensor:
    """Euclidean error after subtracting each set's root (no rotation or scale alignment).

    Each set is translated so that its root sits at the origin: by default the root
    is point ``root_index`` of the set itself (joint 0, the wrist, in FreiHAND order);
    for vertices pass the *keypoints'* roots, ``pred_root=pred_xyz[..., 0, :]`` and
    ``gt_root=gt_xyz[..., 0, :]``, so that the mesh is judged relative to the root joint.

    Args:
        pred: `(..., N, 3)` metres.
        gt: `(..., N, 3)` metres.
        pred_root: `(..., 3)` metres, or ``None`` for ``pred[..., root_index, :]``.
        gt_root: `(..., 3)` metres, or ``None`` for ``gt[..., root_index, :]``.
        root_index: the root point of ``pred`` and ``gt`` when the roots are not given.

    Returns:
        `(..., N)` metres.

    Raises:
        ShapeError: on wrong shapes or dtypes, or an out-of-range ``root_index``.

    Example:
        >>> gt = torch.tensor([[0.0, 0.0, 0.5], [0.0, 0.1, 0.5]])
        >>> root_relative_error(gt + torch.tensor([0.0, 0.0, 0.2]), gt)
        tensor([0., 0.])
    """
    check = ShapeChecker()
    batches = {"pred": check(pred, "pred", "... N 3"), "gt": check(gt, "gt", "... N 3")}
    if pred_root is not None:
        batches["pred_root"] = check(pred_root, "pred_root", "... 3")
    if gt_root is not None:
        batches["gt_root"] = check(gt_root, "gt_root", "... 3")
    broadcast_batch_shapes(**batches)
    n = check.sizes["N"]
    if isinstance(root_index, bool) or not isinstance(root_index, int):
        raise ValueError(f"root_index: expected an int, got {root_index!r}")
    if (pred_root is None or gt_root is None) and not -n <= root_index < n:
        raise ShapeError(f"root_index: expected an index into N={n} points, got {root_index}")
    if pred_root is None:
        pred_root = pred[..., root_index, :]
    if gt_root is None:
        gt_root = gt[..., root_index, :]
    return point_error(pred - pred_root.unsqueeze(-2), gt - gt_root.unsqueeze(-2))


class ProcrustesAlignment(NamedTuple):
    """Result of :func:`procrustes_align`: ``aligned = scale · pred @ rotationᵀ + translation``.

    Attributes:
        aligned: `(..., N, 3)` metres, the aligned prediction.
        rotation: `(..., 3, 3)` orthogonal; a reflection (determinant -1) is possible
            with ``reflection="allow"``.
        scale: `(...)` dimensionless.
        translation: `(..., 3)` metres.
    """

    aligned: Tensor
    rotation: Tensor
    scale: Tensor
    translation: Tensor

    def transform(self, points: Tensor) -> Tensor:
        """Apply the same similarity to other points `(..., M, 3)` (e.g. a mesh)."""
        return (
            self.scale[..., None, None] * (points @ self.rotation.mT)
            + self.translation[..., None, :]
        )


def _det3(m: Tensor) -> Tensor:
    return (torch.linalg.cross(m[..., 0, :], m[..., 1, :]) * m[..., 2, :]).sum(-1)


def procrustes_align(
    pred: Tensor, gt: Tensor, *, reflection: Reflection = "allow"
) -> ProcrustesAlignment:
    r"""Similarity Procrustes alignment of a prediction to the ground truth, as FreiHAND's ``align_w_scale``.

    Both sets are centred on their means and divided by their Frobenius norms plus
    ``1e-8`` (:data:`NORM_EPS`), giving :math:`\tilde G` and :math:`\tilde P`. The SVD
    :math:`\tilde G^\top \tilde P = U \Sigma V^\top` gives :math:`R = U V^\top` and
    :math:`s = \operatorname{tr}\Sigma`, exactly as ``scipy.linalg.orthogonal_procrustes``
    (:math:`R` minimises :math:`\lVert \tilde G R - \tilde P \rVert_F`, without a guard
    against reflections), and the aligned prediction is
    :math:`\tilde P R^\top s \lVert G_c\rVert + \bar g`.

    With ``reflection="forbid"`` the rotation is the Umeyama one,
    :math:`R = U \operatorname{diag}(1, 1, d) V^\top` and :math:`s = \sigma_1 + \sigma_2 + d\sigma_3`
    with :math:`d = \operatorname{sign}\det(U V^\top)`, so a mirrored prediction cannot
    be aligned onto the ground truth. (MobRecon's internal validation uses this form.)

    An all-zero (or constant) prediction gets scale 0 and is aligned onto the ground
    truth's mean. On CUDA, :func:`torch.linalg.svd` synchronises with the host once.

    Args:
        pred: `(..., N, 3)` metres.
        gt: `(..., N, 3)` metres.
        reflection: ``"allow"`` (the FreiHAND protocol) or ``"forbid"`` (Umeyama).

    Returns:
        A :class:`ProcrustesAlignment` ``(aligned, rotation, scale, translation)``.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch dimensions that do not broadcast.
        ValueError: on an unknown ``reflection``.

    Example:
        >>> gt = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 0.1]])
        >>> rot = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        >>> pred = 2.0 * gt @ rot.T + torch.tensor([0.1, 0.2, 0.6])
        >>> result = procrustes_align(pred, gt)
        >>> torch.allclose(result.aligned, gt, atol=1e-6), round(float(result.scale), 4)
        (True, 0.5)

    References:
        P. H. Schönemann. *A generalized solution of the orthogonal Procrustes
        problem.* Psychometrika 1966. S. Umeyama. *Least-squares estimation of
        transformation parameters between two point patterns.* TPAMI 1991.
    """
    check_option(reflection, "reflection", choices=("allow", "forbid"))
    pred, gt, out_dtype = _pair(pred, gt)
    mean_p, mean_g = pred.mean(-2), gt.mean(-2)
    centred_p, centred_g = pred - mean_p.unsqueeze(-2), gt - mean_g.unsqueeze(-2)
    norm_p = torch.linalg.vector_norm(centred_p, dim=(-2, -1)) + NORM_EPS
    norm_g = torch.linalg.vector_norm(centred_g, dim=(-2, -1)) + NORM_EPS
    p_n = centred_p / norm_p[..., None, None]
    g_n = centred_g / norm_g[..., None, None]
    u, sigma, vh = torch.linalg.svd(g_n.mT @ p_n)
    if reflection == "forbid":
        d = torch.where(_det3(u @ vh) < 0, -1.0, 1.0).to(sigma.dtype)
        flip = torch.cat((torch.ones_like(sigma[..., :2]), d.unsqueeze(-1)), dim=-1)
        rotation = (u * flip.unsqueeze(-2)) @ vh
        s = (sigma * flip).sum(-1)
    else:
        rotation = u @ vh
        s = sigma.sum(-1)
    scale = s * norm_g / norm_p
    translation = mean_g - scale.unsqueeze(-1) * (mean_p.unsqueeze(-2) @ rotation.mT).squeeze(-2)
    aligned = (p_n @ rotation.mT) * (s * norm_g)[..., None, None] + mean_g.unsqueeze(-2)
    return ProcrustesAlignment(
        aligned.to(out_dtype),
        rotation.to(out_dtype),
        scale.to(out_dtype),
        translation.to(out_dtype),
    )


def procrustes_error(pred: Tensor, gt: Tensor, *, reflection: Reflection = "allow") -> Tensor:
    """Per-point Euclidean error after :func:`procrustes_align` (FreiHAND's aligned error).

    Averaged over keypoints this is the PA-MPJPE (``xyz_al_mean3d``), over vertices the
    PA-MPVPE (``mesh_al_mean3d``), and HandDGP's RS-MJE / RS-MVE.

    Args:
        pred: `(..., N, 3)` metres.
        gt: `(..., N, 3)` metres.
        reflection: ``"allow"`` (FreiHAND) or ``"forbid"`` (Umeyama).

    Returns:
        `(..., N)` metres.

    Raises:
        ShapeError, ValueError: as :func:`procrustes_align`.

    Example:
        >>> gt = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 0.1]])
        >>> procrustes_error(3.0 * gt + 0.5, gt).abs().max() < 1e-7
        tensor(True)
    """
    alignment = procrustes_align(pred, gt, reflection=reflection)
    return point_error(alignment.aligned, gt)


def _align_by_keypoints_official(points: Tensor, alignment: _Keypoint) -> Tensor:
    """FreiHAND's ``align_by_trafo``, reproduced with its quirks (see the evaluator)."""
    centred = points - points.mean(-2, keepdim=True)
    rotated = centred @ alignment.rotation.mT * alignment.unnormalised_scale[..., None, None]
    return rotated + (alignment.mean_gt - alignment.mean_pred + points.mean(-2)).unsqueeze(-2)


class _Keypoint(NamedTuple):
    rotation: Tensor
    unnormalised_scale: Tensor  # s · ‖gt_c‖, without the division by ‖pred_c‖
    mean_gt: Tensor
    mean_pred: Tensor


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


def _pck_from_fractions(point_curves: Tensor, thresholds: Tensor) -> PCKResult:
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
    return _pck_from_fractions(fractions, thresholds.to(errors.dtype))


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


class HandDGPErrors(NamedTuple):
    """The error columns of HandDGP's Table 1, each a 0-dim tensor in millimetres.

    Attributes:
        rs_mje: root-relative keypoint error (Procrustes-aligned by default).
        rs_mve: root-relative vertex error (Procrustes-aligned by default).
        cs_mje: camera-space keypoint error.
        cs_mve: camera-space vertex error.
    """

    rs_mje: Tensor
    rs_mve: Tensor
    cs_mje: Tensor
    cs_mve: Tensor


def handdgp_errors(
    pred_xyz: Tensor,
    pred_verts: Tensor,
    gt_xyz: Tensor,
    gt_verts: Tensor,
    *,
    relative: Literal["procrustes", "root"] = "procrustes",
    reflection: Reflection = "allow",
) -> HandDGPErrors:
    """HandDGP's Table-1 row (RS-MJE, RS-MVE, CS-MJE, CS-MVE in mm), averaged over the batch.

    CS-MJE / CS-MVE are the mean camera-space Euclidean errors of keypoints and
    vertices. The paper defines RS-MJE / RS-MVE as the errors "between
    Procrustes-aligned predicted and ground truth joints and vertices" (§4), which is
    the default (``relative="procrustes"``: each set aligned with its own similarity
    transform, as FreiHAND's ``xyz_al_mean3d`` / ``mesh_al_mean3d``). With
    ``relative="root"`` they are root-relative errors without any other alignment
    (:func:`root_relative_error`, vertices relative to the root joint).

    Args:
        pred_xyz: `(..., 21, 3)` metres, camera space (any keypoint count ``J``).
        pred_verts: `(..., V, 3)` metres, camera space.
        gt_xyz: `(..., J, 3)` metres.
        gt_verts: `(..., V, 3)` metres.
        relative: ``"procrustes"`` (the paper) or ``"root"``.
        reflection: Procrustes variant, ``"allow"`` (FreiHAND) or ``"forbid"``.

    Returns:
        A :class:`HandDGPErrors` of 0-dim tensors, millimetres.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch dimensions that do not broadcast.
        ValueError: on an unknown ``relative`` or ``reflection``.

    Example:
        >>> gt_xyz = torch.tensor([[[0.0, 0.0, 0.5], [0.05, 0.0, 0.5], [0.0, 0.05, 0.52]]])
        >>> gt_verts = gt_xyz + 0.01
        >>> row = handdgp_errors(gt_xyz + 0.002, gt_verts + 0.002, gt_xyz, gt_verts)
        >>> [round(float(v), 3) for v in row]
        [0.0, 0.0, 3.464, 3.464]
    """
    if relative not in ("procrustes", "root"):
        raise ValueError(f"relative: expected 'procrustes' or 'root', got {relative!r}")
    check_option(reflection, "reflection", choices=("allow", "forbid"))
    check = ShapeChecker()
    broadcast_batch_shapes(
        pred_xyz=check(pred_xyz, "pred_xyz", "... J 3"),
        pred_verts=check(pred_verts, "pred_verts", "... V 3"),
        gt_xyz=check(gt_xyz, "gt_xyz", "... J 3"),
        gt_verts=check(gt_verts, "gt_verts", "... V 3"),
    )
    if relative == "procrustes":
        rs_j = procrustes_error(pred_xyz, gt_xyz, reflection=reflection)
        rs_v = procrustes_error(pred_verts, gt_verts, reflection=reflection)
    else:
        rs_j = root_relative_error(pred_xyz, gt_xyz)
        rs_v = root_relative_error(
            pred_verts, gt_verts, pred_root=pred_xyz[..., 0, :], gt_root=gt_xyz[..., 0, :]
        )
    cs_j = point_error(pred_xyz, gt_xyz)
    cs_v = point_error(pred_verts, gt_verts)
    return HandDGPErrors(*(1000.0 * e.mean() for e in (rs_j, rs_v, cs_j, cs_v)))


# ------------------------------------------------------------------------- evaluator

#: Keys of the official ``scores.txt``, in the order the official script writes them.
SCORE_KEYS = (
    "xyz_mean3d",
    "xyz_auc3d",
    "xyz_al_mean3d",
    "xyz_al_auc3d",
    "mesh_mean3d",
    "mesh_auc3d",
    "mesh_al_mean3d",
    "mesh_al_auc3d",
)


@dataclass
class FreiHANDResult:
    """The scores of :meth:`FreiHANDEvaluator.compute`.

    Attributes:
        scores: the official ``scores.txt`` entries: ``*_mean3d`` in centimetres,
            ``*_auc3d`` and ``f_*score_*`` in ``[0, 1]``. The mesh entries are NaN when
            the predicted meshes have another vertex count than the ground truth (the
            official script writes -100 and -1 there).
        pck_curves: ``"xyz"``, ``"xyz_al"``, ``"mesh"``, ``"mesh_al"`` → `(T,)` PCK curves.
        thresholds: `(T,)` metres.
        num_samples: number of samples accumulated.
        point_auc: ``"xyz"``, ``"xyz_al"``, ``"mesh"``, ``"mesh_al"`` → the AUC of each
            keypoint `(J,)` or vertex `(V,)` (the ``*_auc3d`` scores are their means);
            the mesh entries are absent when the mesh scores are NaN.
    """

    scores: dict[str, float]
    pck_curves: dict[str, np.ndarray]
    thresholds: np.ndarray
    num_samples: int
    point_auc: dict[str, np.ndarray] = field(default_factory=dict)

    def format_scores(self) -> str:
        """The text of ``scores.txt``: ``key: value`` lines, ``%f`` formatted, official order."""
        return "".join(f"{key}: {value:f}\n" for key, value in self.scores.items())

    def write_scores(self, path: str | Path) -> Path:
        """Write ``scores.txt`` (the official format) and return its path."""
        path = Path(path)
        path.write_text(self.format_scores())
        return path

    def write_pck_data(self, path: str | Path) -> Path:
        """Write ``pck_data.json`` as the official script: ``{name: [thresholds_cm, pck]}``."""
        import json

        path = Path(path)
        cm = (self.thresholds * 100.0).tolist()
        data = {name: [cm, curve.tolist()] for name, curve in self.pck_curves.items()}
        path.write_text(json.dumps(data))
        return path

    def plot_pck(self, path: str | Path) -> Path:
        """Plot the four PCK curves (thresholds in cm) to an image file; needs matplotlib."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = Path(path)
        fig, ax = plt.subplots(figsize=(6, 4.5))
        names = {"xyz": "keypoints", "xyz_al": "keypoints, aligned"}
        names |= {"mesh": "vertices", "mesh_al": "vertices, aligned"}
        for name, curve in self.pck_curves.items():
            if np.all(np.isfinite(curve)):
                auc = self.scores.get(f"{name}_auc3d", math.nan)
                ax.plot(self.thresholds * 100.0, curve, label=f"{names[name]} (AUC {auc:.3f})")
        ax.set_xlabel("Distance in cm")
        ax.set_ylabel("Fraction of correct points")
        ax.set_ylim(0.0, 1.0)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


class _Accumulator:
    """Per-point error sums and PCK counts over samples (bounded memory, no host sync)."""

    def __init__(self) -> None:
        self.sum: Tensor | None = None
        self.below: Tensor | None = None

    def add(self, errors: Tensor, thresholds: Tensor) -> None:
        s = errors.sum(0)
        b = (errors.unsqueeze(-1) <= thresholds).sum(0)
        self.sum = s if self.sum is None else self.sum + s
        self.below = b if self.below is None else self.below + b


class FreiHANDEvaluator:
    """Accumulates the FreiHAND benchmark scores over a data set.

    Reproduces the official evaluation (``eval.py`` / ``EvalUtil``): per point, the mean
    Euclidean error and the PCK over ``numpy.linspace(0, 0.05, 100)`` metres (``<=``),
    the AUC per point (normalised trapezoid) averaged over points; the similarity
    Procrustes alignment of :func:`procrustes_align`; F-scores at 5 and 15 mm on the
    vertices, raw and aligned (:func:`f_score`), averaged over samples.

    Mesh alignment (``mesh_alignment``):

    - ``"own"``: the predicted vertices get their own Procrustes fit to the ground-truth
      vertices, as the official script does for 778-vertex (MANO) meshes. Needs the same
      vertex count as the ground truth.
    - ``"keypoints"``: the similarity found from the keypoints is applied to the
      vertices (:meth:`ProcrustesAlignment.transform`), for meshes with another topology.
    - ``"keypoints_official"``: what the official ``align_by_trafo`` does for non-MANO
      meshes, quirks included: the vertices are rotated about their own centroid, scaled
      by ``s·‖gt_c‖`` without the division by ``‖pred_c‖`` and shifted by the difference
      of the keypoint means. Only for reproducing official numbers.
    - ``"auto"`` (default): ``"own"`` when the predicted and ground-truth vertex counts
      are equal, else ``"keypoints"``.

    When the counts differ, per-vertex errors are undefined and the ``mesh_*`` scores are
    NaN; the F-scores are still computed. A sample whose prediction holds NaN or Inf
    counts as infinitely wrong: its points miss at every PCK threshold, its F-scores
    are 0 and the mean errors (``*_mean3d``) become ``inf`` (it is never aligned, so no
    SVD sees it). :meth:`update` keeps only per-point sums and
    PCK counts on the device (memory independent of the data set size) and never
    synchronises with the host, except through :func:`torch.linalg.svd` on CUDA;
    :meth:`compute` moves the totals to the CPU. Median errors are not kept (the
    official ``scores.txt`` does not report them).

    Args:
        f_thresholds: metres, the F-score thresholds (default 5 and 15 mm).
        thresholds: `(T,)` metres, PCK thresholds (default :func:`pck_thresholds`).
        reflection: Procrustes variant, ``"allow"`` (official) or ``"forbid"``.
        mesh_alignment: see above.
        dtype: computation dtype (float64 by default, as the official NumPy script).
        chunk_elements: memory budget of the nearest-neighbour search, see :func:`f_score`.

    Example:
        >>> gt_xyz = torch.rand(4, 21, 3) * 0.1 + torch.tensor([0.0, 0.0, 0.6])
        >>> gt_verts = torch.rand(4, 50, 3) * 0.1 + torch.tensor([0.0, 0.0, 0.6])
        >>> evaluator = FreiHANDEvaluator()
        >>> evaluator.update(gt_xyz, gt_verts, gt_xyz, gt_verts)
        >>> result = evaluator.compute()
        >>> result.scores["xyz_mean3d"], result.scores["xyz_auc3d"], result.scores["f_score_5"]
        (0.0, 1.0, 1.0)
        >>> print(result.format_scores().splitlines()[0])
        xyz_mean3d: 0.000000
    """

    def __init__(
        self,
        f_thresholds: Sequence[float] = (0.005, 0.015),
        thresholds: Tensor | None = None,
        *,
        reflection: Reflection = "allow",
        mesh_alignment: MeshAlignment = "auto",
        dtype: torch.dtype = torch.float64,
        chunk_elements: int = NN_CHUNK_ELEMENTS,
    ) -> None:
        check_option(reflection, "reflection", choices=("allow", "forbid"))
        if mesh_alignment not in ("auto", "own", "keypoints", "keypoints_official"):
            raise ValueError(
                "mesh_alignment: expected 'auto', 'own', 'keypoints' or "
                f"'keypoints_official', got {mesh_alignment!r}"
            )
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(
                f"dtype: expected a floating-point torch.dtype (e.g. torch.float64), got {dtype!r}"
            )
        self.f_thresholds = tuple(float(t) for t in f_thresholds)
        if not self.f_thresholds:
            raise ValueError("f_thresholds: expected at least one threshold")
        self.thresholds = (
            pck_thresholds(dtype=dtype) if thresholds is None else thresholds.to(dtype).cpu()
        )
        ShapeChecker()(self.thresholds, "thresholds", "T")
        self.reflection = reflection
        self.mesh_alignment = mesh_alignment
        self.dtype = dtype
        self.chunk_elements = chunk_elements
        self._device_thresholds: dict[torch.device, Tensor] = {}
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated."""
        self.num_samples = 0
        self._acc = {name: _Accumulator() for name in ("xyz", "xyz_al", "mesh", "mesh_al")}
        self._f: Tensor | None = None
        self._f_al: Tensor | None = None
        self._mesh_defined = True

    def _thresholds_on(self, device: torch.device) -> Tensor:
        # Cached per device: a host-to-device copy at every update would synchronise.
        if device not in self._device_thresholds:
            self._device_thresholds[device] = self.thresholds.to(device)
        return self._device_thresholds[device]

    def _align_mesh(
        self, pred_xyz: Tensor, pred_verts: Tensor, gt_xyz: Tensor, gt_verts: Tensor
    ) -> Tensor:
        mode = self.mesh_alignment
        if mode == "auto":
            mode = "own" if pred_verts.shape[-2] == gt_verts.shape[-2] else "keypoints"
        if mode == "own":
            return procrustes_align(pred_verts, gt_verts, reflection=self.reflection).aligned
        alignment = procrustes_align(pred_xyz, gt_xyz, reflection=self.reflection)
        if mode == "keypoints":
            return alignment.transform(pred_verts)
        centred_p = pred_xyz - pred_xyz.mean(-2, keepdim=True)
        norm_p = torch.linalg.vector_norm(centred_p, dim=(-2, -1)) + NORM_EPS
        official = _Keypoint(
            alignment.rotation,
            alignment.scale * norm_p,
            gt_xyz.mean(-2),
            pred_xyz.mean(-2),
        )
        return _align_by_keypoints_official(pred_verts, official)

    @torch.no_grad()
    def update(
        self, pred_xyz: Tensor, pred_verts: Tensor, gt_xyz: Tensor, gt_verts: Tensor
    ) -> None:
        """Add a batch of predictions and ground truths.

        Args:
            pred_xyz: `(B, J, 3)` metres, camera space (J = 21 for FreiHAND).
            pred_verts: `(B, V, 3)` metres, camera space.
            gt_xyz: `(B, J, 3)` metres.
            gt_verts: `(B, G, 3)` metres (G = 778 for FreiHAND).

        Raises:
            ShapeError: on wrong shapes or dtypes, tensors on different devices,
                ``mesh_alignment="own"`` with ``V != G``, or a point count that differs
                from the earlier batches.
        """
        check = ShapeChecker()
        check(pred_xyz, "pred_xyz", "B J 3")
        check(pred_verts, "pred_verts", "B V 3")
        check(gt_xyz, "gt_xyz", "B J 3")
        check(gt_verts, "gt_verts", "B G 3")
        v, g = check.sizes["V"], check.sizes["G"]
        if self.mesh_alignment == "own" and v != g:
            raise ShapeError(
                f"pred_verts: mesh_alignment='own' needs as many vertices as gt_verts "
                f"({g}), got {v}"
            )
        acc = self._acc["xyz"]
        if acc.sum is not None and acc.sum.shape[0] != check.sizes["J"]:
            raise ShapeError(
                f"pred_xyz: expected {acc.sum.shape[0]} keypoints as in earlier batches, "
                f"got {check.sizes['J']}"
            )
        mesh = self._acc["mesh"]
        if mesh.sum is not None and mesh.sum.shape[0] != v:
            raise ShapeError(
                f"pred_verts: expected {mesh.sum.shape[0]} vertices as in earlier batches, got {v}"
            )
        if self.num_samples > 0 and self._mesh_defined != (v == g):
            raise ShapeError("pred_verts: the vertex count changed relative to gt_verts")

        pred_xyz, pred_verts, gt_xyz, gt_verts = (
            t.detach().to(self.dtype) for t in (pred_xyz, pred_verts, gt_xyz, gt_verts)
        )
        thresholds = self._thresholds_on(pred_xyz.device)
        # Non-finite predictions are replaced by a harmless stand-in (the ground truth,
        # or zeros for another topology) before alignment, then scored as misses.
        finite = torch.isfinite(pred_xyz).all(-1).all(-1) & torch.isfinite(pred_verts).all(-1).all(-1)
        row = finite[:, None, None]
        pred_xyz = torch.where(row, pred_xyz, gt_xyz)
        pred_verts = torch.where(row, pred_verts, gt_verts if v == g else torch.zeros_like(pred_verts))
        xyz_al = procrustes_align(pred_xyz, gt_xyz, reflection=self.reflection).aligned
        verts_al = self._align_mesh(pred_xyz, pred_verts, gt_xyz, gt_verts)

        def errors(pred: Tensor, gt: Tensor) -> Tensor:
            return torch.where(finite[:, None], point_error(pred, gt), math.inf)

        self._acc["xyz"].add(errors(pred_xyz, gt_xyz), thresholds)
        self._acc["xyz_al"].add(errors(xyz_al, gt_xyz), thresholds)
        self._mesh_defined = v == g
        if self._mesh_defined:
            self._acc["mesh"].add(errors(pred_verts, gt_verts), thresholds)
            self._acc["mesh_al"].add(errors(verts_al, gt_verts), thresholds)

        def f_sum(pred: Tensor) -> Tensor:
            f = f_score(pred, gt_verts, self.f_thresholds, chunk_elements=self.chunk_elements).f
            return torch.where(finite[:, None], f, 0.0).sum(0)

        f_raw, f_al = f_sum(pred_verts), f_sum(verts_al)
        self._f = f_raw if self._f is None else self._f + f_raw
        self._f_al = f_al if self._f_al is None else self._f_al + f_al
        self.num_samples += pred_xyz.shape[0]

    def compute(self) -> FreiHANDResult:
        """The scores over everything accumulated (moves the totals to the CPU).

        Raises:
            RuntimeError: if nothing was accumulated.
        """
        if self.num_samples == 0:
            raise RuntimeError("FreiHANDEvaluator.compute(): no samples were added")
        n = self.num_samples
        thresholds = self.thresholds.cpu()
        scores: dict[str, float] = {}
        curves: dict[str, np.ndarray] = {}
        point_auc: dict[str, np.ndarray] = {}
        for name in ("xyz", "xyz_al", "mesh", "mesh_al"):
            acc = self._acc[name]
            prefix = name
            if acc.sum is None:
                scores[f"{prefix}_mean3d"] = math.nan
                scores[f"{prefix}_auc3d"] = math.nan
                curves[name] = np.full(thresholds.shape[0], np.nan)
                continue
            mean = acc.sum.cpu() / n  # per point
            fractions = acc.below.cpu().to(thresholds.dtype) / n  # type: ignore[union-attr]
            pck = _pck_from_fractions(fractions, thresholds)
            scores[f"{prefix}_mean3d"] = float(mean.mean()) * 100.0
            scores[f"{prefix}_auc3d"] = float(pck.auc)
            curves[name] = pck.curve.numpy()
            point_auc[name] = pck.point_auc.numpy()
        scores = {key: scores[key] for key in SCORE_KEYS}
        f_raw = (self._f.cpu() / n).tolist()  # type: ignore[union-attr]
        f_al = (self._f_al.cpu() / n).tolist()  # type: ignore[union-attr]
        for t, f, fa in zip(self.f_thresholds, f_raw, f_al, strict=True):
            scores[f"f_score_{round(t * 1000)}"] = f
            scores[f"f_al_score_{round(t * 1000)}"] = fa
        return FreiHANDResult(scores, curves, thresholds.numpy(), n, point_auc)
