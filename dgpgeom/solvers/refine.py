r"""Fixed-iteration refinement of a translation on the true reprojection error.

The weighted DLT (:func:`~dgpgeom.solve_translation`) minimises an algebraic error
whose weights are scaled by depth and which, like every least-squares fit, follows
outliers. This module refines its result on the pixel reprojection error

.. math::  E(t) = \sum_i w_i^2\, \rho\bigl(\lVert \pi(K, P_i + t) - u_i\rVert\bigr),

with :math:`\rho(s) = s^2/2` or a robust kernel (Huber, Cauchy), by a fixed number
of Gauss-Newton steps with iteratively re-weighted least squares (IRLS): at each
step the kernel's weights :math:`\rho'(s)/s` are recomputed from the current
residuals and the 3×3 normal system :math:`(J^\top W J + \lambda\,\mathrm{diag}(J^\top W J))
\Delta = -J^\top W e` is solved in closed form (``dgpgeom.solvers._sym3``). There
is no data-dependent loop or early exit, so the function is batched, runs on GPU
and ``meta`` tensors, under :func:`torch.func.vmap` and
``torch.compile(fullgraph=True)``; it is differentiated by plain autograd through
the unrolled iterations (the standard treatment of unrolled optimisers).

It is the differentiable counterpart of the test-time registration of MobRecon and
CMR, which fit the same translation with SciPy's SLSQP per sample.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from dgpgeom._core import check_single_view, expand_to
from dgpgeom.solvers import _sym3
from dgpgeom.solvers.translation import (
    CONDITION_TOLERANCE_EPS,
    MIN_RESIDUAL_DEPTH,
    solve_translation,
)
from dgpgeom.validation import (
    check_option,
    compute_dtype,
)

__all__ = ["ROBUST_KERNELS", "RefinedTranslation", "refine_translation"]

#: Robust kernels accepted by :func:`refine_translation` (``None`` is least squares).
ROBUST_KERNELS = ("huber", "cauchy")

#: A step may lower the weighted mean depth of the points by at most this fraction.
MAX_DEPTH_DECREASE = 0.5


class RefinedTranslation(NamedTuple):
    """Result of :func:`refine_translation`.

    Attributes:
        translation: `(..., 3)` metres, camera frame. Where ``valid`` is False it is
            the starting point (the DLT solution or ``initial``).
        valid: `(...)` bool: False where the starting point was invalid, fewer than
            two points with non-zero weight lie in front of the camera, or the final
            normal system is degenerate (relative pivot below
            :data:`~dgpgeom.solvers.translation.CONDITION_TOLERANCE_EPS` machine
            epsilons).
        residuals: `(..., N)` pixels, the reprojection error of every point at the
            returned translation, whatever its weight.
        robust_weights: `(..., N)` in ``[0, 1]``, the kernel's IRLS factor
            ``ρ'(s)/s`` of every point at the returned translation (ones without a
            kernel): small values flag the points treated as outliers.
        cost: `(...)` square pixels, the weighted mean robust cost
            ``Σ w² ρ(‖e‖) / Σ w²`` at the returned translation.
    """

    translation: Tensor
    valid: Tensor
    residuals: Tensor
    robust_weights: Tensor
    cost: Tensor


class _Problem(NamedTuple):
    """Per-problem constants, unpacked once for the whole loop."""

    px: Tensor  # (..., N) metres, components of points3d
    py: Tensor
    pz: Tensor
    offset_u: Tensor  # (..., N) pixels: cx - u (observed), cy - v
    offset_v: Tensor
    fx: Tensor  # (..., 1) pixels
    s: Tensor
    fy: Tensor
    to_hessian: Tensor  # (..., 6, 9): moments (S, m_x, m_y, Q_xx, Q_xy, Q_yy) -> H
    to_gradient: Tensor  # (..., 5, 3): moments of b·(e_u, e_v, x e_u, y e_u, y e_v) -> g
    ones: Tensor  # (..., N)


def _prepare(points3d: Tensor, points2d: Tensor, intrinsics: Tensor) -> _Problem:
    px, py, pz = points3d.unbind(-1)
    fx, s, cx = (intrinsics[..., 0, k, None] for k in range(3))
    fy, cy = intrinsics[..., 1, 1, None], intrinsics[..., 1, 2, None]
    fx, s, fy = (v.expand(*pz.shape[:-1], 1) for v in (fx, s, fy))
    offset_u = cx - points2d[..., 0]
    offset_v = cy - points2d[..., 1]
    # The pixel Jacobian of point i is J = K₂ G / z, with K₂ the upper 2×2 of the
    # intrinsics and G = [[1, 0, -x], [0, 1, -y]]. With M = K₂ᵀK₂ and a = c / z²,
    # H = Σ c JᵀJ = [[S M, -M m], [-mᵀM, tr(M Q)]] for S = Σa, m = Σ a (x, y),
    # Q = Σ a (x, y)(x, y)ᵀ: a fixed linear map of six moments.
    m11, m12, m22 = fx * fx, fx * s, s * s + fy * fy
    zero = torch.zeros_like(fx)
    to_hessian = torch.stack(
        (
            torch.cat((m11, m12, zero, m12, m22, zero, zero, zero, zero), -1),
            torch.cat((zero, zero, -m11, zero, zero, -m12, -m11, -m12, zero), -1),
            torch.cat((zero, zero, -m12, zero, zero, -m22, -m12, -m22, zero), -1),
            torch.cat((zero, zero, zero, zero, zero, zero, zero, zero, m11), -1),
            torch.cat((zero, zero, zero, zero, zero, zero, zero, zero, 2.0 * m12), -1),
            torch.cat((zero, zero, zero, zero, zero, zero, zero, zero, m22), -1),
        ),
        dim=-2,
    )
    # g = Σ c Jᵀe = Σ b Gᵀ K₂ᵀ e with b = c / z.
    to_gradient = torch.stack(
        (
            torch.cat((fx, s, zero), -1),
            torch.cat((zero, fy, zero), -1),
            torch.cat((zero, zero, -fx), -1),
            torch.cat((zero, zero, -s), -1),
            torch.cat((zero, zero, -fy), -1),
        ),
        dim=-2,
    )
    return _Problem(
        px, py, pz, offset_u, offset_v, fx, s, fy, to_hessian, to_gradient, torch.ones_like(pz)
    )


class _Projection(NamedTuple):
    x: Tensor  # (..., N) normalised image coordinates, at the clamped depth
    y: Tensor
    eu: Tensor  # (..., N) pixels, projected - observed
    ev: Tensor
    norm: Tensor  # (..., N) pixels, ‖(eu, ev)‖
    depth: Tensor  # (..., N) metres, clamped
    in_front: Tensor  # (..., N) bool


def _project(problem: _Problem, t: Tensor) -> _Projection:
    # Components rather than (..., N, 2) tensors: on CPU a reduction over a last
    # dimension of size 2 costs several times a whole element-wise pass.
    tx, ty, tz = (v.unsqueeze(-1) for v in t.unbind(-1))
    z = problem.pz + tz
    in_front = z > MIN_RESIDUAL_DEPTH
    depth = torch.where(in_front, z, MIN_RESIDUAL_DEPTH)
    x = (problem.px + tx) / depth
    y = (problem.py + ty) / depth
    eu = problem.fx * x + problem.s * y + problem.offset_u
    ev = problem.fy * y + problem.offset_v
    norm = torch.sqrt(eu * eu + ev * ev + torch.finfo(z.dtype).tiny)
    return _Projection(x, y, eu, ev, norm, depth, in_front)


def _irls_factor(norm: Tensor, robust: str | None, scale: float) -> Tensor:
    """The kernel's IRLS weight ``ρ'(s)/s`` of pixel residual norms ``s``."""
    if robust is None:
        return torch.ones_like(norm)
    if robust == "huber":
        return torch.where(norm <= scale, 1.0, scale / norm)
    return 1.0 / (1.0 + (norm / scale).square())


def _kernel_cost(norm: Tensor, robust: str | None, scale: float) -> Tensor:
    """The kernel ``ρ(s)``: ``s²/2``, Huber or Cauchy."""
    if robust is None:
        return 0.5 * norm.square()
    if robust == "huber":
        return torch.where(norm <= scale, 0.5 * norm.square(), scale * norm - 0.5 * scale**2)
    return 0.5 * scale**2 * torch.log1p((norm / scale).square())


def _normal_equations(problem: _Problem, proj: _Projection, c: Tensor) -> tuple[Tensor, Tensor]:
    """``H = Σ c JᵀJ`` `(..., 3, 3)` and ``g = Σ c Jᵀe`` `(..., 3)` from weighted moments.

    Moments keep the temporaries at `(..., N)`: no stacked per-point Jacobians.
    """
    x, y, eu, ev = proj.x, proj.y, proj.eu, proj.ev
    b = c / proj.depth
    a = b / proj.depth
    features = torch.stack((problem.ones, x, y, x * x, x * y, y * y), dim=-1)
    moments = a.unsqueeze(-2) @ features  # (..., 1, 6)
    hessian = (moments @ problem.to_hessian).unflatten(-1, (3, 3)).squeeze(-3)
    residual_features = torch.stack((eu, ev, x * eu, y * eu, y * ev), dim=-1)
    gradient = (b.unsqueeze(-2) @ residual_features) @ problem.to_gradient
    return hessian, gradient.squeeze(-2)


def _iterate(
    problem: _Problem,
    omega: Tensor,
    start: Tensor,
    iterations: int,
    robust: str | None,
    scale: float,
    damping: float,
) -> tuple[Tensor, Tensor]:
    """The unrolled Gauss-Newton / IRLS loop. Returns (translation, final system valid)."""
    tolerance = torch.finfo(start.dtype).eps * CONDITION_TOLERANCE_EPS
    tiny = torch.finfo(start.dtype).tiny
    t = start
    system_ok = torch.ones(start.shape[:-1], dtype=torch.bool, device=start.device)
    for _ in range(iterations):
        proj = _project(problem, t)
        c = torch.where(proj.in_front, omega * _irls_factor(proj.norm, robust, scale), 0.0)
        hessian, gradient = _normal_equations(problem, proj, c)
        if damping > 0:
            hessian = hessian + damping * torch.diag_embed(hessian.diagonal(dim1=-2, dim2=-1))
        sym = _sym3.factorize(hessian, tolerance, valid=(c > 0).sum(-1) >= 2)
        step = torch.where(sym.valid.unsqueeze(-1), -_sym3.solve(sym, gradient), 0.0)
        # Keep the object in front of the camera: the weighted mean depth of the
        # points may fall by at most MAX_DEPTH_DECREASE of itself in one step.
        mean_depth = (c * proj.depth).sum(-1) / c.sum(-1).clamp(min=tiny)
        limit = (MAX_DEPTH_DECREASE * mean_depth).clamp(min=tiny)
        t = t + step * (limit / torch.maximum(-step[..., 2], limit)).unsqueeze(-1)
        system_ok = sym.valid
    return t, system_ok


def _validated(
    points3d: Tensor,
    points2d: Tensor,
    intrinsics: Tensor,
    weights: Tensor | None,
    initial: Tensor | None,
    iterations: int,
    robust: str | None,
    scale: float,
    damping: float,
) -> tuple[torch.Size, int]:
    batch, num_points = check_single_view(points3d, points2d, intrinsics, weights, initial=initial)
    check_option(iterations, "iterations", minimum=0, integer=True)
    check_option(robust, "robust", choices=(None, *ROBUST_KERNELS))
    check_option(scale, "scale", minimum=0.0, strict=True)
    check_option(damping, "damping", minimum=0.0)
    return batch, num_points


def refine_translation(
    points3d: Tensor,
    points2d: Tensor,
    intrinsics: Tensor,
    weights: Tensor | None = None,
    *,
    initial: Tensor | None = None,
    iterations: int = 5,
    robust: str | None = None,
    scale: float = 2.0,
    damping: float = 0.0,
) -> RefinedTranslation:
    r"""Refine a camera-space translation on the pixel reprojection error (Gauss-Newton / IRLS).

    Minimises :math:`\sum_i w_i^2 \rho(\lVert\pi(K, P_i + t) - u_i\rVert)` over ``t``
    with ``iterations`` Gauss-Newton steps, starting from the weighted DLT
    (:func:`~dgpgeom.solve_translation`) unless ``initial`` is given. With a robust
    kernel the IRLS weights ``ρ'(s)/s`` are recomputed at every step, so points far
    from the fit (outliers the weights did not catch) lose their pull. Each step
    solves a 3×3 system in closed form; a step never lowers the mean depth of the
    points by more than half (:data:`MAX_DEPTH_DECREASE`), and points at or behind
    the camera are left out of the step (their residuals stay finite). No
    data-dependent control flow: batched, GPU- and ``torch.compile``-friendly, and
    differentiable by autograd through the unrolled iterations. See the Conventions
    page (https://dgpgeom.readthedocs.io/en/latest/conventions/)
    for pixel and intrinsics conventions.

    Weights scale residuals as in :func:`~dgpgeom.solve_translation`: multiplying all
    weights by ``c > 0`` changes nothing, ``w_i = 0`` drops point ``i``.

    Convergence (``python benchmarks/bench_solvers_extra.py --accuracy``; hand-sized
    problems 0.3–2 m away with 1 px noise): without a kernel, Gauss-Newton is
    quadratic near the optimum and 5 steps from the DLT reach SciPy SLSQP's
    optimum to 1e-6 m (tested; 1.3e-9 m measured). IRLS converges linearly: after
    5 steps the median distance to the converged robust optimum is 6e-10 m
    (Huber) and 7e-7 m (Cauchy); with 20% outliers 1e-6 m and 3e-5 m (90th
    percentile 0.6 mm and 1 mm), so raise ``iterations`` to 10–20 for a tighter
    fit on heavily contaminated data.

    Args:
        points3d: `(..., N, 3)` metres, root-relative, axes of the camera frame.
        points2d: `(..., N, 2)` pixels, (x, y), pixel centres on integers.
        intrinsics: `(..., 3, 3)` pixels, ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``.
        weights: `(..., N)` non-negative confidences (only ``w²`` matters); ``None``
            means all ones.
        initial: `(..., 3)` metres, the starting translation; ``None`` runs the DLT.
        iterations: the fixed number of Gauss-Newton steps (0 returns the start).
        robust: ``None`` (least squares), ``"huber"`` or ``"cauchy"``.
        scale: pixels, the kernel's scale: Huber's threshold between quadratic and
            linear, Cauchy's half-weight residual. Ignored without a kernel.
        damping: Levenberg-Marquardt ``λ >= 0``: each step solves
            ``(H + λ diag(H)) Δ = -g``. Larger values take shorter, more
            gradient-like steps, but slow convergence along the ill-conditioned
            depth direction of far objects (keep it small, e.g. 1e-3, or raise
            ``iterations``); 0 is plain Gauss-Newton. The depth cap above keeps
            steps safe either way.

    Returns:
        A :class:`RefinedTranslation`
        ``(translation, valid, residuals, robust_weights, cost)``.

    Raises:
        ShapeError: on a wrong shape, fewer than two points, mismatched ``N``, batch
            dimensions that do not broadcast, a non-floating dtype, or tensors on
            different devices.
        TypeError: if a tensor argument is not a tensor.
        ValueError: on an invalid ``iterations``, ``robust``, ``scale`` or ``damping``.

    Example:
        >>> import torch
        >>> from dgpgeom import solve_translation
        >>> K = torch.tensor([[500.0, 0.0, 112.0], [0.0, 500.0, 112.0], [0.0, 0.0, 1.0]])
        >>> points3d = torch.tensor(
        ...     [[0.0, 0.0, 0.0], [0.05, 0.0, 0.01], [0.0, 0.08, -0.01], [0.04, 0.05, 0.02],
        ...      [-0.03, 0.04, 0.0], [0.02, -0.04, 0.01]])
        >>> t_true = torch.tensor([0.02, -0.01, 0.6])
        >>> camera = points3d + t_true
        >>> points2d = (camera[:, :2] / camera[:, 2:]) * 500.0 + 112.0
        >>> points2d[1] += torch.tensor([40.0, -30.0])  # one outlier
        >>> dlt = solve_translation(points3d, points2d, K).translation
        >>> refined = refine_translation(points3d, points2d, K, robust="cauchy")
        >>> bool((dlt - t_true).norm() > 0.1), bool((refined.translation - t_true).norm() < 1e-3)
        (True, True)
        >>> refined.robust_weights.round(decimals=2)  # the outlier is found
        tensor([1., 0., 1., 1., 1., 1.])

    References:
        P. J. Huber. *Robust Statistics.* Wiley, 1981. B. Triggs, P. McLauchlan,
        R. Hartley and A. Fitzgibbon. *Bundle Adjustment — A Modern Synthesis.*
        Vision Algorithms 1999, §3–4 (Gauss-Newton, robust cost, IRLS).
    """
    batch, num_points = _validated(
        points3d, points2d, intrinsics, weights, initial, iterations, robust, scale, damping
    )
    tensors = [points3d, points2d, intrinsics] + [t for t in (weights, initial) if t is not None]
    dtype, out_dtype = compute_dtype(*tensors)
    points2d = expand_to(points2d.to(dtype), (*batch, num_points, 2))
    points3d = expand_to(points3d.to(dtype), (*batch, num_points, 3))
    intrinsics = intrinsics.to(dtype)
    if weights is None:
        weights = points3d.new_ones((*batch, num_points))
    else:
        weights = expand_to(weights.to(dtype), (*batch, num_points))

    if initial is None:
        dlt = solve_translation(points3d, points2d, intrinsics, weights)
        start, start_ok = dlt.translation, dlt.valid
    else:
        start = expand_to(initial.to(dtype), (*batch, 3))
        start_ok = torch.ones(batch, dtype=torch.bool, device=start.device)

    w2 = weights.square()
    total = w2.sum(-1, keepdim=True)
    omega = w2 / torch.where(total > 0, total, torch.ones_like(total))
    problem = _prepare(points3d, points2d, intrinsics)
    refined, system_ok = _iterate(
        problem, omega, start, iterations, robust, float(scale), float(damping)
    )
    in_front = problem.pz + refined[..., 2:] > MIN_RESIDUAL_DEPTH
    valid = start_ok & system_ok & (((weights != 0) & in_front).sum(-1) >= 2)
    translation = torch.where(valid.unsqueeze(-1), refined, start)

    proj = _project(problem, translation)
    factor = _irls_factor(proj.norm, robust, float(scale))
    cost = (omega * _kernel_cost(proj.norm, robust, float(scale))).sum(-1)
    residuals = proj.norm
    if out_dtype != dtype:
        translation, residuals, factor, cost = (
            x.to(out_dtype) for x in (translation, residuals, factor, cost)
        )
    return RefinedTranslation(translation, valid, residuals, factor, cost)
