r"""Training losses for camera-space hand (or any) meshes: projections, translation, mesh shape.

Every loss here is a plain function; the HandDGP paper's camera-space losses
(§3.4) are :func:`translation_loss`, :func:`keypoint_consistency_loss` and
:func:`vertex_projection_loss`, and MobRecon's mesh regularisers are
:func:`edge_length_loss` and :func:`normal_loss`.

The projection losses share one kernel, :func:`reprojection_loss`, written as a
custom :class:`torch.autograd.Function` that saves only its inputs and recomputes
the projection in its backward pass. Plain autograd keeps the projection's
intermediates alive until the backward pass (12 bytes per point in float32 for the
plain L1 loss, 30 with Huber, weights and a mask), the fused version nothing but
references to its inputs; its backward also peaks lower (``benchmarks/bench_losses.py``
measures both).

Shared conventions (see the Conventions page,
https://dgpgeom.readthedocs.io/en/latest/conventions/):

- ``intrinsics`` are ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``; a point projects to
  ``(u, v) = K[:2, :2] @ (x/z, y/z) + K[:2, 2]``. The last row of ``K`` is not read
  (it is taken to be ``[0, 0, 1]``) and receives a zero gradient.
- Depths are clamped to ``min_depth`` before the division, so points at or behind
  the camera give a large but finite loss; the gradient w.r.t. ``z`` is zero where
  the clamp is active (the loss cannot pull such a point back in front of the
  camera: add a depth term if your model can produce them).
- ``valid`` masks are boolean: a masked entry contributes exactly nothing to the
  loss and receives a zero gradient, even if its coordinates are NaN or Inf.
- ``reduction="mean"`` divides by the (weighted) number of valid entries, never by
  zero: a fully masked batch gives a loss of 0 with zero gradients.
"""

from __future__ import annotations

from typing import Literal

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
    "edge_length_loss",
    "keypoint_consistency_loss",
    "normal_loss",
    "reprojection_loss",
    "translation_loss",
    "vertex_projection_loss",
]

Kind = Literal["l1", "l2", "huber"]
Reduction = Literal["mean", "sum", "none"]

_KINDS = ("l1", "l2", "huber")
_REDUCTIONS = ("mean", "sum", "none")


# ----------------------------------------------------------------------------- checks


def _check_mask(check: ShapeChecker, valid: Tensor, pattern: str) -> tuple[int, ...]:
    batch = check(valid, "valid", pattern, floating=False)
    if valid.dtype != torch.bool:
        raise ShapeError(f"valid: expected dtype torch.bool, got {valid.dtype}")
    return batch


def _check_faces(check: ShapeChecker, faces: Tensor) -> None:
    check(faces, "faces", "F 3", floating=False)
    if faces.dtype not in (torch.int64, torch.int32):
        raise ShapeError(f"faces: expected dtype torch.int64 or torch.int32, got {faces.dtype}")


def _reduce(loss: Tensor, denominator: Tensor | float, reduction: str) -> Tensor:
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


# ------------------------------------------------------------------ reprojection kernel


def _penalty(r: Tensor, kind: str, delta: float) -> Tensor:
    if kind == "l1":
        return r.abs()
    if kind == "l2":
        return r.square()
    a = r.abs()
    return torch.where(a <= delta, 0.5 * r.square(), delta * (a - 0.5 * delta))


def _half_penalty_derivative(r: Tensor, kind: str, delta: float, inplace: bool) -> Tensor:
    """Derivative of ``0.5 * penalty(r)``; overwrites ``r`` when ``inplace``."""
    if kind == "l1":  # sign(r) is 0 at r == 0, as autograd's abs
        return r.sign_().mul_(0.5) if inplace else 0.5 * torch.sign(r)
    if kind == "l2":
        return r
    return r.clamp_(-delta, delta).mul_(0.5) if inplace else 0.5 * r.clamp(-delta, delta)


class _Projected:
    """The sanitised inputs and the residual of one projection, shared by forward and backward."""

    def __init__(
        self,
        points3d_cam: Tensor,
        points2d: Tensor,
        intrinsics: Tensor,
        weights: Tensor | None,
        valid: Tensor | None,
        min_depth: float,
    ) -> None:
        xy, z = points3d_cam[..., :2], points3d_cam[..., 2]
        if valid is not None:
            # Masked entries may hold NaN/Inf: replace them before any arithmetic so
            # that neither the loss nor any gradient sees them.
            xy = torch.where(valid.unsqueeze(-1), xy, torch.zeros_like(xy))
            z = torch.where(valid, z, torch.ones_like(z))
            points2d = torch.where(valid.unsqueeze(-1), points2d, torch.zeros_like(points2d))
            if weights is not None:
                weights = torch.where(valid, weights, torch.zeros_like(weights))
        self.z = z
        self.depth = z.clamp(min=min_depth)
        self.ab = xy / self.depth.unsqueeze(-1)  # normalised image coordinates
        self.k2 = intrinsics[..., :2, :2]
        self.residual = (
            self.ab @ self.k2.mT + intrinsics[..., None, :2, 2] - points2d
        )  # (..., N, 2) pixels
        self.weights = weights


def _per_point_loss(
    points3d_cam: Tensor,
    points2d: Tensor,
    intrinsics: Tensor,
    weights: Tensor | None,
    valid: Tensor | None,
    kind: str,
    delta: float,
    min_depth: float,
) -> Tensor:
    """`(..., N)`: mean over (x, y) of the penalised pixel residual, times weight and mask."""
    p = _Projected(points3d_cam, points2d, intrinsics, weights, valid, min_depth)
    loss = _penalty(p.residual, kind, delta).mean(-1)
    if p.weights is not None:
        loss = loss * p.weights
    if valid is not None:
        loss = torch.where(valid, loss, torch.zeros_like(loss))
    return loss


class _ReprojectionLoss(torch.autograd.Function):
    """Per-point reprojection loss; saves only its inputs and recomputes in backward."""

    generate_vmap_rule = True

    @staticmethod
    def forward(points3d_cam, points2d, intrinsics, weights, valid, kind, delta, min_depth):  # type: ignore[override]
        return _per_point_loss(
            points3d_cam, points2d, intrinsics, weights, valid, kind, delta, min_depth
        )

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[override]
        points3d_cam, points2d, intrinsics, weights, valid, kind, delta, min_depth = inputs
        ctx.save_for_backward(points3d_cam, points2d, intrinsics, weights, valid)
        ctx.kind, ctx.delta, ctx.min_depth = kind, delta, min_depth

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        # With create_graph the backward must be differentiable, so it is written out
        # of place; otherwise buffers are reused and freed early (lower peak memory).
        return _reprojection_backward(
            *ctx.saved_tensors,
            grad,
            ctx.kind,
            ctx.delta,
            ctx.min_depth,
            ctx.needs_input_grad,
            inplace=not torch.is_grad_enabled(),
        )


def _reprojection_backward(
    points3d_cam: Tensor,
    points2d: Tensor,
    intrinsics: Tensor,
    weights: Tensor | None,
    valid: Tensor | None,
    grad: Tensor,
    kind: str,
    delta: float,
    min_depth: float,
    needs: tuple[bool, ...],
    *,
    inplace: bool,
) -> tuple[Tensor | None, ...]:
    p = _Projected(points3d_cam, points2d, intrinsics, weights, valid, min_depth)
    g_points3d = g_points2d = g_intrinsics = g_weights = None
    if needs[3]:
        g_weights = grad * _penalty(p.residual, kind, delta).mean(-1)
        if valid is not None:
            g_weights = torch.where(valid, g_weights, torch.zeros_like(g_weights))

    # Gradient w.r.t. the pixel residual, (..., N, 2).
    g_res = _half_penalty_derivative(p.residual, kind, delta, inplace)
    del p.residual
    scale = grad if p.weights is None else grad * p.weights
    if valid is not None:
        scale = torch.where(valid, scale, torch.zeros_like(scale))
    g_res = g_res.mul_(scale.unsqueeze(-1)) if inplace else g_res * scale.unsqueeze(-1)
    del scale

    if needs[1]:
        g_points2d = -g_res
    if needs[2]:
        g_top = torch.cat((g_res.mT @ p.ab, g_res.sum(-2).unsqueeze(-1)), dim=-1)  # (..., 2, 3)
        g_intrinsics = torch.cat((g_top, torch.zeros_like(g_top[..., :1, :])), dim=-2)
    if needs[0]:
        # d(uv)/d(xyz) = K2 @ [[1, 0, -a], [0, 1, -b]] / depth, with (a, b) = (x, y) / depth.
        g_ab = g_res @ p.k2
        del g_res
        depth = p.depth.unsqueeze(-1)
        g_xy = g_ab.div_(depth) if inplace else g_ab / depth
        del g_ab
        along = p.ab.mul_(g_xy) if inplace else p.ab * g_xy
        g_z = -along.sum(-1)
        del along
        if inplace:
            g_z.masked_fill_(p.z < min_depth, 0.0)
        else:
            g_z = torch.where(p.z >= min_depth, g_z, torch.zeros_like(g_z))
        g_points3d = torch.cat((g_xy, g_z.unsqueeze(-1)), dim=-1)
    return g_points3d, g_points2d, g_intrinsics, g_weights, None, None, None, None


def _prepare_reprojection(
    points3d_cam: Tensor,
    points2d: Tensor,
    intrinsics: Tensor,
    weights: Tensor | None,
    valid: Tensor | None,
    kind: str,
    delta: float,
    reduction: str,
    min_depth: float,
    names: tuple[str, str] = ("points3d_cam", "points2d"),
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None, torch.dtype]:
    """Check and broadcast; ``names``: the caller's names of the 3D and 2D arguments."""
    check = ShapeChecker()
    batches = {
        names[0]: check(points3d_cam, names[0], "... N 3"),
        names[1]: check(points2d, names[1], "... N 2"),
        "intrinsics": check(intrinsics, "intrinsics", "... 3 3"),
    }
    if weights is not None:
        batches["weights"] = check(weights, "weights", "... N")
    if valid is not None:
        batches["valid"] = _check_mask(check, valid, "... N")
    check_option(kind, "kind", choices=_KINDS)
    check_option(reduction, "reduction", choices=_REDUCTIONS)
    check_option(delta, "delta", minimum=0.0, strict=True)
    check_option(min_depth, "min_depth", minimum=0.0, strict=True)
    batch = tuple(broadcast_batch_shapes(**batches))
    n = check.sizes["N"]
    floats = [points3d_cam, points2d, intrinsics] + ([weights] if weights is not None else [])
    dtype, out_dtype = compute_dtype(*floats)

    def expand(t: Tensor, tail: tuple[int, ...]) -> Tensor:
        shape = (*batch, *tail)
        return t if tuple(t.shape) == shape else t.expand(shape)

    points3d_cam = expand(points3d_cam.to(dtype), (n, 3))
    points2d = expand(points2d.to(dtype), (n, 2))
    intrinsics = expand(intrinsics.to(dtype), (3, 3))
    if weights is not None:
        weights = expand(weights.to(dtype), (n,))
    if valid is not None:
        valid = expand(valid, (n,))
    return points3d_cam, points2d, intrinsics, weights, valid, out_dtype


def _denominator(per_point: Tensor, weights: Tensor | None, valid: Tensor | None) -> Tensor | float:
    if weights is None and valid is None:
        return float(per_point.numel())
    if weights is None:
        return valid.sum().to(per_point.dtype)  # type: ignore[union-attr]
    if valid is None:
        return weights.sum()
    return torch.where(valid, weights, torch.zeros_like(weights)).sum()


def reprojection_loss(
    points3d_cam: Tensor,
    points2d: Tensor,
    intrinsics: Tensor,
    weights: Tensor | None = None,
    valid: Tensor | None = None,
    *,
    kind: Kind = "l1",
    delta: float = 1.0,
    reduction: Reduction = "mean",
    min_depth: float = 1e-3,
) -> Tensor:
    r"""Pixel reprojection loss of camera-space points against 2D targets.

    With :math:`r_i = \pi_K(P_i) - p_i \in \mathbb{R}^2` the pixel residual of point
    :math:`i` (projection with the depth clamped to ``min_depth``), the per-point loss is
    the **mean over the two components** of a penalty :math:`\rho`,

    .. math:: \ell_i = w_i\, m_i\, \tfrac12 \big(\rho(r_{i,x}) + \rho(r_{i,y})\big),

    with :math:`\rho(r) = |r|` (``"l1"``), :math:`r^2` (``"l2"``, the squared error)
    or the Huber penalty :math:`\tfrac12 r^2` for :math:`|r| \le \delta`, else
    :math:`\delta(|r| - \tfrac12\delta)` (``"huber"``, as :class:`torch.nn.HuberLoss`).
    Without weights or mask, ``kind="l1", reduction="mean"`` equals
    ``torch.nn.functional.l1_loss(project(points3d_cam), points2d)`` (element-wise mean,
    as MobRecon's 2D L1 loss) and ``"l2"`` equals ``mse_loss``. Weights multiply the
    per-point loss (not the residual). ``reduction="mean"`` returns
    :math:`\sum_i \ell_i / \sum_i w_i m_i` over all points and batch entries (the
    weighted mean; the plain mean over valid points without weights), with a
    denominator of 1 where it would be 0. Note that this mean does not change when all
    weights are scaled, so if the weights are predicted by a network, ``"sum"``
    (divided by a constant) lets their magnitude matter.

    The backward pass is fused: nothing but the inputs is saved, the projection is
    recomputed, and the backward is itself differentiable (double backward works).
    Runs under :func:`torch.func.vmap`, :func:`torch.func.grad` and ``torch.compile``.
    See the Conventions page (https://dgpgeom.readthedocs.io/en/latest/conventions/)
    for pixels and intrinsics.

    Args:
        points3d_cam: `(..., N, 3)` metres, camera frame (x right, y down, z forward).
        points2d: `(..., N, 2)` pixels, the targets.
        intrinsics: `(..., 3, 3)` pixels, ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``.
        weights: `(..., N)` non-negative per-point weights, or ``None`` (all ones).
        valid: `(..., N)` bool, or ``None``: False entries contribute nothing (any
            value, NaN included, is allowed there) and receive zero gradients.
        kind: the penalty, ``"l1"``, ``"l2"`` or ``"huber"``.
        delta: Huber threshold, pixels (only used by ``"huber"``).
        reduction: ``"mean"``, ``"sum"``, or ``"none"`` for the `(..., N)` per-point
            losses :math:`\ell_i` (zeros where masked).
        min_depth: metres; depths below it are clamped to it before the division.

    Returns:
        A scalar, or `(..., N)` for ``reduction="none"``, in pixels (``"l1"``,
        ``"huber"``) or square pixels (``"l2"``), in the promoted input dtype.

    Raises:
        ShapeError: on wrong shapes or dtypes (``valid`` must be bool), mismatched
            ``N``, batch dimensions that do not broadcast or tensors on different devices.
        ValueError: on an unknown ``kind``/``reduction`` or a non-positive
            ``delta``/``min_depth``.

    Example:
        >>> import torch
        >>> K = torch.tensor([[500.0, 0.0, 112.0], [0.0, 500.0, 112.0], [0.0, 0.0, 1.0]])
        >>> points = torch.tensor([[0.0, 0.0, 0.5], [0.05, -0.02, 0.5]])
        >>> targets = torch.tensor([[114.0, 112.0], [162.0, 91.0]])
        >>> reprojection_loss(points, targets, K)  # (2 + 0 + 0 + 1) / 4
        tensor(0.7500)
        >>> reprojection_loss(points, targets, K, valid=torch.tensor([True, False]))
        tensor(1.)
    """
    return _reprojection(
        points3d_cam, points2d, intrinsics, weights, valid, kind, delta, reduction, min_depth
    )


def _reprojection(
    points3d_cam: Tensor,
    points2d: Tensor,
    intrinsics: Tensor,
    weights: Tensor | None,
    valid: Tensor | None,
    kind: str,
    delta: float,
    reduction: str,
    min_depth: float,
    names: tuple[str, str] = ("points3d_cam", "points2d"),
) -> Tensor:
    """:func:`reprojection_loss`, naming the 3D and 2D arguments as the public caller does."""
    p3, p2, k, w, m, out_dtype = _prepare_reprojection(
        points3d_cam, points2d, intrinsics, weights, valid, kind, delta, reduction, min_depth, names
    )
    per_point = _ReprojectionLoss.apply(p3, p2, k, w, m, kind, float(delta), float(min_depth))
    loss = _reduce(per_point, _denominator(per_point, w, m), reduction)
    return loss.to(out_dtype)


def _reprojection_loss_naive(
    points3d_cam: Tensor,
    points2d: Tensor,
    intrinsics: Tensor,
    weights: Tensor | None = None,
    valid: Tensor | None = None,
    *,
    kind: Kind = "l1",
    delta: float = 1.0,
    reduction: Reduction = "mean",
    min_depth: float = 1e-3,
) -> Tensor:
    """Plain-autograd twin of :func:`reprojection_loss`, for tests and benchmarks."""
    p3, p2, k, w, m, out_dtype = _prepare_reprojection(
        points3d_cam, points2d, intrinsics, weights, valid, kind, delta, reduction, min_depth
    )
    per_point = _per_point_loss(p3, p2, k, w, m, kind, float(delta), float(min_depth))
    return _reduce(per_point, _denominator(per_point, w, m), reduction).to(out_dtype)


def keypoint_consistency_loss(
    points3d_cam: Tensor,
    points2d: Tensor,
    intrinsics: Tensor,
    valid: Tensor | None = None,
    *,
    reduction: Reduction = "mean",
    min_depth: float = 1e-3,
) -> Tensor:
    r"""HandDGP's keypoint consistency loss: L1 between 2D predictions and projected 3D keypoints.

    :func:`reprojection_loss` with ``kind="l1"``: the element-wise mean absolute
    difference, in pixels, between the 2D decoder's keypoints and the projection of
    the predicted camera-space 3D keypoints. Both arguments are predictions and both
    receive gradients; ``detach()`` one of them to make it a fixed target. To express
    the loss in image-size units (as MobRecon's normalised 2D coordinates), divide
    ``points2d`` and the first two rows of ``intrinsics`` by the image size.

    Args:
        points3d_cam: `(..., N, 3)` metres, the predicted camera-space keypoints.
        points2d: `(..., N, 2)` pixels, the 2D decoder's keypoints.
        intrinsics: `(..., 3, 3)` pixels.
        valid: `(..., N)` bool or ``None``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (see :func:`reprojection_loss`).
        min_depth: metres, depth clamp of the projection.

    Returns:
        A scalar (or `(..., N)`), pixels.

    Raises:
        ShapeError, ValueError: as :func:`reprojection_loss`.

    Example:
        >>> K = torch.tensor([[500.0, 0.0, 112.0], [0.0, 500.0, 112.0], [0.0, 0.0, 1.0]])
        >>> keypoints3d = torch.tensor([[0.0, 0.0, 0.5], [0.05, 0.0, 0.5]])
        >>> keypoints2d = torch.tensor([[112.0, 113.0], [162.0, 112.0]])
        >>> keypoint_consistency_loss(keypoints3d, keypoints2d, K)
        tensor(0.2500)

    References:
        E. Valassakis and G. Garcia-Hernando. *HandDGP*, ECCV 2024, §3.4 (camera-space losses).
    """
    return reprojection_loss(
        points3d_cam,
        points2d,
        intrinsics,
        valid=valid,
        kind="l1",
        reduction=reduction,
        min_depth=min_depth,
    )


def vertex_projection_loss(
    vertices_cam: Tensor,
    vertices2d: Tensor,
    intrinsics: Tensor,
    valid: Tensor | None = None,
    *,
    kind: Kind = "l1",
    reduction: Reduction = "mean",
    min_depth: float = 1e-3,
) -> Tensor:
    r"""HandDGP's 2D vertex loss: projected camera-space vertices against 2D vertex targets.

    :func:`reprojection_loss` over the mesh vertices (L1 by default, element-wise mean
    over vertices and (x, y)); the targets are usually the ground-truth vertices
    projected with the ground-truth intrinsics.

    Args:
        vertices_cam: `(..., V, 3)` metres, predicted camera-space vertices.
        vertices2d: `(..., V, 2)` pixels, target vertex projections.
        intrinsics: `(..., 3, 3)` pixels.
        valid: `(..., V)` bool or ``None``.
        kind: ``"l1"``, ``"l2"`` or ``"huber"`` (Huber with ``delta=1`` pixel).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        min_depth: metres, depth clamp of the projection.

    Returns:
        A scalar (or `(..., V)`), pixels (square pixels for ``"l2"``).

    Raises:
        ShapeError, ValueError: as :func:`reprojection_loss`.

    Example:
        >>> K = torch.tensor([[500.0, 0.0, 112.0], [0.0, 500.0, 112.0], [0.0, 0.0, 1.0]])
        >>> vertices = torch.tensor([[[0.0, 0.0, 0.5], [0.0, 0.05, 0.5], [0.05, 0.0, 0.5]]])
        >>> targets = torch.tensor([[[112.0, 112.0], [112.0, 162.0], [162.0, 112.0]]])
        >>> vertex_projection_loss(vertices, targets, K)
        tensor(0.)

    References:
        E. Valassakis and G. Garcia-Hernando. *HandDGP*, ECCV 2024, §3.4 (camera-space losses).
    """
    return _reprojection(
        vertices_cam,
        vertices2d,
        intrinsics,
        None,
        valid,
        kind,
        1.0,
        reduction,
        min_depth,
        names=("vertices_cam", "vertices2d"),
    )


# ------------------------------------------------------------------------ translation


def _safe_sqrt(x: Tensor) -> Tensor:
    """sqrt with a zero (not NaN) gradient at 0."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), 0.0)


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
        batches["valid"] = _check_mask(check, valid, "...")
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
        mean_sq = _reduce(sq, valid.expand(batch).sum().to(dtype), "mean")
    return _safe_sqrt(mean_sq).to(out_dtype)


# ----------------------------------------------------------------------- mesh losses


def _gather_faces(
    vertices: Tensor, vertices_gt: Tensor, faces: Tensor, valid: Tensor | None
) -> tuple[Tensor, Tensor, Tensor | None, torch.dtype, int]:
    """Corner positions `(..., F, 3, 3)` (face, corner, xyz) of prediction and ground truth."""
    check = ShapeChecker()
    batches = {
        "vertices": check(vertices, "vertices", "... V 3"),
        "vertices_gt": check(vertices_gt, "vertices_gt", "... V 3"),
    }
    _check_faces(check, faces)
    if valid is not None:
        batches["valid"] = _check_mask(check, valid, "...")
    batch = tuple(broadcast_batch_shapes(**batches))
    dtype, out_dtype = compute_dtype(vertices, vertices_gt)
    num_faces = faces.shape[0]
    index = faces.reshape(-1).long()

    def corners(v: Tensor) -> Tensor:
        v = v.to(dtype)
        if valid is not None:
            # Masked meshes become zeros before any arithmetic, so that their (possibly
            # NaN) values get exactly zero gradient.
            v = torch.where(valid[..., None, None], v, torch.zeros_like(v))
        return v.index_select(-2, index).unflatten(-2, (num_faces, 3))

    pred, gt = corners(vertices), corners(vertices_gt)
    pred = pred.expand(*batch, num_faces, 3, 3)
    gt = gt.expand(*batch, num_faces, 3, 3)
    if valid is not None:
        valid = valid.expand(batch)
    return pred, gt, valid, out_dtype, num_faces


def _masked_mesh_reduction(per_edge: Tensor, valid: Tensor | None, reduction: str) -> Tensor:
    """Reduce `(..., F, 3)` per-edge terms; ``valid`` `(...)` masks whole meshes."""
    if valid is not None:
        per_edge = torch.where(valid[..., None, None], per_edge, torch.zeros_like(per_edge))
        count = valid.sum().to(per_edge.dtype) * (per_edge.shape[-2] * 3)
    else:
        count = float(per_edge.numel())
    return _reduce(per_edge, count, reduction)


def edge_length_loss(
    vertices: Tensor,
    vertices_gt: Tensor,
    faces: Tensor,
    valid: Tensor | None = None,
    *,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""MobRecon's edge-length loss: L1 between predicted and ground-truth edge lengths.

    For every face :math:`(a, b, c)` and each of its three edges, in the order
    :math:`(a,b), (a,c), (b,c)`, the term is
    :math:`\big|\,\lVert \hat v_a - \hat v_b\rVert - \lVert v_a - v_b\rVert\,\big|`.
    ``"mean"`` averages over every face edge of every valid mesh (an edge shared by two
    faces counts twice, as in MobRecon). The term is translation- and
    rotation-invariant, so root-relative or camera-space vertices give the same loss.
    Zero-length edges have a zero (not NaN) gradient.

    Args:
        vertices: `(..., V, 3)` metres, predicted.
        vertices_gt: `(..., V, 3)` metres, ground truth.
        faces: `(F, 3)` int64 (or int32) vertex indices in ``[0, V)``; not range-checked.
        valid: `(...)` bool or ``None``: meshes to include.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (`(..., F, 3)` per face edge,
            zeros for masked meshes).

    Returns:
        A scalar (or `(..., F, 3)`), metres.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch dimensions that do not broadcast.
        ValueError: on an unknown ``reduction``.

    Example:
        >>> gt = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> faces = torch.tensor([[0, 1, 2]])
        >>> edge_length_loss(2.0 * gt, gt, faces)  # (1 + 1 + sqrt(2)) / 3
        tensor(1.1381)

    References:
        X. Chen et al. *MobRecon: Mobile-Friendly Hand Mesh Reconstruction from
        Monocular Image.* CVPR 2022 (mesh losses, after Moon and Lee, I2L-MeshNet).
    """
    check_option(reduction, "reduction", choices=_REDUCTIONS)
    pred, gt, valid, out_dtype, _ = _gather_faces(vertices, vertices_gt, faces, valid)

    def lengths(c: Tensor) -> Tensor:
        a, b, c = c.unbind(-2)
        edges = torch.stack((a - b, a - c, b - c), dim=-2)  # (..., F, 3, 3)
        return _safe_sqrt(edges.square().sum(-1))  # (..., F, 3)

    per_edge = (lengths(pred) - lengths(gt)).abs()
    return _masked_mesh_reduction(per_edge, valid, reduction).to(out_dtype)


def normal_loss(
    vertices: Tensor,
    vertices_gt: Tensor,
    faces: Tensor,
    valid: Tensor | None = None,
    *,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""MobRecon's normal loss: predicted edges should be perpendicular to the true face normals.

    For every face :math:`(a, b, c)`, with :math:`\mathrm{n}(x) = x / \max(\lVert x\rVert,
    10^{-12})` (:func:`torch.nn.functional.normalize`), the ground-truth unit normal is
    :math:`n = \mathrm{n}(\mathrm{n}(v_b - v_a) \times \mathrm{n}(v_c - v_a))` and the
    three terms are :math:`|\langle \mathrm{n}(\hat v_b - \hat v_a), n\rangle|`,
    :math:`|\langle \mathrm{n}(\hat v_c - \hat v_a), n\rangle|`,
    :math:`|\langle \mathrm{n}(\hat v_c - \hat v_b), n\rangle|`: the absolute cosine
    between each predicted edge and the true normal. ``"mean"`` averages over the three
    terms of every face of every valid mesh. Only the prediction receives gradients
    through the edge directions (the ground truth is usually a constant).

    Args:
        vertices: `(..., V, 3)` metres, predicted.
        vertices_gt: `(..., V, 3)` metres, ground truth.
        faces: `(F, 3)` int64 (or int32) vertex indices, counter-clockwise or not (the
            absolute value makes the orientation irrelevant).
        valid: `(...)` bool or ``None``: meshes to include.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (`(..., F, 3)`).

    Returns:
        A scalar (or `(..., F, 3)`), dimensionless, in ``[0, 1]`` per term.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch dimensions that do not broadcast.
        ValueError: on an unknown ``reduction``.

    Example:
        >>> gt = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> faces = torch.tensor([[0, 1, 2]])
        >>> normal_loss(gt, gt, faces)
        tensor(0.)
        >>> tilted = gt + torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
        >>> normal_loss(tilted, gt, faces)  # (cos 45° + 0 + 1/sqrt(3)) / 3
        tensor(0.4282)

    References:
        X. Chen et al. *MobRecon*, CVPR 2022; G. Moon and K. M. Lee. *I2L-MeshNet*,
        ECCV 2020 (normal and edge-length losses).
    """
    check_option(reduction, "reduction", choices=_REDUCTIONS)
    pred, gt, valid, out_dtype, _ = _gather_faces(vertices, vertices_gt, faces, valid)
    normalize = torch.nn.functional.normalize
    a, b, c = pred.unbind(-2)
    edges = normalize(torch.stack((b - a, c - a, c - b), dim=-2), dim=-1)
    ab = normalize(gt[..., 1, :] - gt[..., 0, :], dim=-1)
    ac = normalize(gt[..., 2, :] - gt[..., 0, :], dim=-1)
    normal = normalize(torch.linalg.cross(ab, ac), dim=-1)  # (..., F, 3)
    per_edge = (edges * normal.unsqueeze(-2)).sum(-1).abs()
    return _masked_mesh_reduction(per_edge, valid, reduction).to(out_dtype)
