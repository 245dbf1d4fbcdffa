r"""Weighted-DLT translation solver: closed form with an implicit-function backward.

Given 2D keypoints :math:`u_i` (pixels), root-relative 3D keypoints
:math:`P_i = (X_i, Y_i, Z_i)` (metres, camera orientation) and weights
:math:`w_i`, the HandDGP paper (Eq. 3, 5, 7) finds the camera-space translation
:math:`t` that minimises

.. math::  E(t) = \sum_i w_i^2 \lVert A_i t - B_i \rVert^2 + \lambda S \lVert t - p \rVert^2,

with :math:`(\tilde x_i, \tilde y_i, 1)^\top = K^{-1}(u_i, v_i, 1)^\top`,
:math:`A_i = [[-1, 0, \tilde x_i], [0, -1, \tilde y_i]]`,
:math:`B_i = (X_i - Z_i \tilde x_i,\ Y_i - Z_i \tilde y_i)`,
:math:`S = \sum_i w_i^2`, an optional Tikhonov pull of relative strength
:math:`\lambda` (``damping``) toward a prior :math:`p`.

Implementation notes (see also the design notes of the project):

- The weights are first divided by their largest magnitude, then squared and
  normalised, :math:`\omega_i = w_i^2 / S`: multiplying all weights by any
  :math:`c > 0` changes nothing, over the whole floating-point range (no
  :math:`w^2` overflows or underflows). The planes of points with :math:`w_i = 0`
  (:math:`\tilde x, \tilde y, b, Z`) are replaced by zeros before any weighted sum
  (one ``where`` over all of them), so whatever those points hold (NaN, Inf, huge
  values) never reaches the answer or the gradients; the paths that differentiate
  the closed form with autograd (double backward, covariance, the naive twin) zero
  their raw coordinates as well. Without weights there is nothing to mask:
  :math:`\omega_i = 1/N`.
- The 3×3 normal matrix :math:`M/S = [[\mu, 0, -\bar x], [0, \mu, -\bar y],
  [-\bar x, -\bar y, \overline{r^2} + \lambda]]` (:math:`\mu = 1 + \lambda`) is solved
  through its Schur complement in the centred form: with :math:`\delta\tilde x_i =
  \tilde x_i - \bar x` and :math:`b_i = (X_i, Y_i) - Z_i (\tilde x_i, \tilde y_i)`,

  .. math::  D_\lambda = \sum_i \omega_i \lVert\delta\tilde x_i\rVert^2 + \lambda
             + \tfrac{\lambda}{\mu}\lVert\bar x\rVert^2, \qquad
             t_z = \frac{\sum_i \omega_i\, \delta\tilde x_i \cdot b_i
             + \tfrac{\lambda}{\mu}\, \bar x \cdot (\bar b + p_{xy}) + \lambda p_z}{D_\lambda},

  and :math:`t_{xy} = (\bar x\, t_z - \bar b + \lambda p_{xy}) / \mu`. Centring first
  keeps float32 accurate to a few micrometres where the uncentred adjugate loses
  tens. No LAPACK call, no host synchronisation, no data-dependent control flow.
  At a small batch each ATen op costs more than its arithmetic, so the solve works
  on stacked planes; at a large one an op along a short last dimension (the 2 or 3
  coordinates of a point) costs more than one over whole planes, so the stacking is
  plane-major (``(4, ..., N)`` for :math:`\tilde x, \tilde y, b`, per-problem columns
  ``(k, ..., 1)``) and every element-wise op runs over contiguous planes of ``N``
  points. Its validity tests are two comparisons: the relative pivot (whose
  bound is NaN when ``fx``, ``fy`` or ``K[1, 0]`` is not finite) and the depth of the
  nearest point (False for a NaN or infinite :math:`t_z`, which any other NaN/Inf
  used reaches).
- The whole solve, from the raw inputs to :math:`t`, is one autograd Function: its
  forward records nothing, its backward is the implicit-function theorem on the
  stationarity condition :math:`F(t) = \lambda (t - p) - \sum_i \omega_i A_i^\top r_i = 0`
  with :math:`r_i = B_i - A_i t`: one adjoint solve
  :math:`\hat\ell = (M/S)^{-1} g`, :math:`(M/S)^{-1} = \operatorname{diag}(1, 1, 0)/\mu +
  u u^\top / D_\lambda`, :math:`u = (\bar x/\mu, \bar y/\mu, 1)`, then every input
  gradient is element-wise in :math:`\hat\ell`, :math:`q_i = A_i \hat\ell` and
  :math:`r_i`, chained by hand through :math:`K^{-1}` and :math:`\omega = w^2 / S`.
  The gradients of a problem whose ``valid`` is False are set to zero (or, for
  ``prior``, passed through) by one mask over all point gradients, and before ``K``'s
  gradient is summed over broadcast dimensions, so a NaN in one problem never
  reaches a shared ``K`` or another problem. For double
  backward the backward recomputes the intermediate planes from the saved inputs
  with autograd; without ``create_graph`` it reuses the forward's.
- Covariance and pixel residuals are computed only on request, with plain autograd
  from the translation.
- CPU calls of at most :data:`NUMPY_PATH_MAX_POINTS` points (any number while torch
  runs on one thread, :data:`NUMPY_PATH_MAX_POINTS_ONE_THREAD`) are solved by a NumPy
  twin of the closed form and of the backward (``dgpgeom/solvers/_translation_numpy.py``):
  at a small batch each operation costs more than its arithmetic, and a NumPy call less
  than an ATen dispatch; at a large one it works in chunks of a few thousand problems
  that stay in a core's cache, each on transposed copies of its inputs (problems last),
  so that its per-problem broadcasts and its sums, minima and maxima over the N points
  run along whole rows of problems. Same formulas, same validity, same gradients
  (double backward goes through the torch state).
  A CPU call holding exactly one problem of at most :data:`SCALAR_PATH_MAX_POINTS`
  points (one hand in one frame) is solved in Python floats instead
  (``dgpgeom/solvers/_translation_scalar.py``): one loop over the points and a few
  scalar formulas cost less than half of the forty-odd NumPy calls.
  A plain CPU call (tensors of one float dtype and one batch shape, ``K`` shared or
  per problem) reaches its twin after a few comparisons of shapes and dtypes
  (:func:`_cpu_twin_of_plain_call`): for one hand, the general checks, casts and
  broadcasts cost as much as the solve. Every other call is checked in full first.
  Both twins skip the division of the weights by their largest magnitude where the sum
  of their squares is far from over- and underflow (almost always).
  Function transforms, forward-mode AD, ``torch.compile``, tracing, dispatch modes,
  tensor subclasses and every other device take the torch path.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch._C._functorch import peek_interpreter_stack
from torch.autograd import forward_ad
from torch.utils._python_dispatch import _get_current_dispatch_mode

from dgpgeom._core import check_single_view
from dgpgeom.solvers import _translation_numpy as numpy_twin
from dgpgeom.solvers import _translation_scalar as scalar_twin
from dgpgeom.validation import broadcast_batch_shapes, check_option, compute_dtype

__all__ = ["TranslationSolution", "solve_translation"]

#: A system is reported invalid when the relative pivot of its normalised normal
#: matrix, :math:`D_\lambda / (1 + \lVert\bar x\rVert^2)^2` (roughly the inverse of
#: its condition number), is below this many machine epsilons of the compute dtype:
#: about 7.6e-6 in float32 and 1.4e-14 in float64. The same relative tolerance bounds
#: how close to the camera plane the nearest weighted point may lie (as a fraction of
#: the root's depth) before the solution is reported invalid.
CONDITION_TOLERANCE_EPS = 64.0

#: Depth (metres) used in place of a non-positive depth when the pixel residual of
#: a point at or behind the camera is computed: its residual is large but finite.
MIN_RESIDUAL_DEPTH = 1e-6


class TranslationSolution(NamedTuple):
    """Result of :func:`solve_translation`.

    Attributes:
        translation: `(..., 3)` metres, camera frame: the root's position, so that
            ``points3d + translation[..., None, :]`` are the camera-space points.
            Where ``valid`` is False it is the prior (zeros if none was given).
        valid: `(...)` bool: False where the answer cannot be trusted: fewer than two
            points with non-zero weight (none, with ``damping > 0``); all weighted
            points on one camera ray, without damping; a normal matrix whose
            condition exceeds the bound of :data:`CONDITION_TOLERANCE_EPS`; the
            solved root or any weighted point at or behind the camera (which also
            catches root-relative points collapsed to one point); any NaN or Inf in
            what the problem uses (its weighted points, its weights, the upper two
            rows of its ``K``, the prior when ``damping > 0``).
        residuals: `(..., N)` pixels, or None unless requested with
            ``return_residuals=True``: the reprojection error
            ``‖project(K, points3d + translation) - points2d‖`` of every point,
            whatever its weight (a point at or behind the camera is projected from
            depth :data:`MIN_RESIDUAL_DEPTH`). Zeros where ``valid`` is False.
        covariance: `(..., 3, 3)` square metres, or None unless requested with
            ``return_covariance=True``: :math:`\\hat\\sigma^2 M^{-1}` with
            :math:`\\hat\\sigma^2 = \\sum_i w_i^2 \\lVert r_i\\rVert^2 / (2n - 3)` estimated
            from the weighted DLT residuals of the ``n`` points with non-zero weight
            (the usual weighted least-squares estimate; invariant to the scale of the
            weights). Zeros where ``valid`` is False.
    """

    translation: Tensor
    valid: Tensor
    residuals: Tensor | None
    covariance: Tensor | None


class _State(NamedTuple):
    """Everything the closed form computes; the backward reuses it.

    Plane-major: a per-point quantity with ``k`` components is ``(k, ..., N)``, a
    per-problem one ``(k, ..., 1)`` (``(..., N)`` and ``(..., 1)`` for one component
    that needs no stacking), so that they broadcast against each other and every
    element-wise op runs over whole contiguous planes.
    """

    translation: Tensor  # (3, ..., 1) the closed-form solution (not yet masked)
    valid: Tensor  # (1, ..., 1) bool
    planes: Tensor  # (4, ..., N) x, y (normalised image coordinates), b = (X, Y) - Z (x, y)
    Z: Tensor  # (..., N) depth of the used points relative to the root
    means: Tensor  # (4, ..., 1) weighted means of the planes
    pivot: Tensor  # (1, ..., 1) D_lambda, made safe where ill-conditioned
    intrinsics: Tensor  # (..., 6, 1) the upper two rows of K, as columns
    omega: Tensor | float  # (..., N) w² / Σw², zero for unused points (1 / N without weights)
    weight_factor: Tensor | None  # (..., N) d omega_i / d w_i = 2 w_i / Σw², on request


#: The smallest positive subnormal of each dtype: the floor of the weights' scale, so
#: that all-zero weights give zeros (not NaN) while any non-zero scale is kept exactly.
_SMALLEST = {dtype: torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps
             for dtype in (torch.float32, torch.float64)}  # fmt: skip


def _columns(prior: Tensor) -> Tensor:
    """A `(..., 3)` vector as the column `(3, ..., 1)` of the plane-major state."""
    return prior.movedim(-1, 0).unsqueeze(-1)


def _closed_form(
    points3d: Tensor,
    points2d: Tensor,
    intrinsics: Tensor,
    weights: Tensor | None,
    prior: Tensor | None,
    damping: float,
    weight_factor: bool = False,
) -> _State:
    """The solve in plain torch ops (differentiable by autograd: the naive twin).

    ``points2d``, ``points3d`` and ``weights`` share their batch shape; ``intrinsics``
    and ``prior`` broadcast against it. Every step works on whole planes: the op
    count, not the arithmetic, is the cost of a small batch, and ops over contiguous
    planes (never along a short last dimension) the cost of a large one.
    """
    k = intrinsics.flatten(-2)[..., :6, None]
    fx, skew, cx, k10, fy, cy = k.unbind(-2)
    u, v = points2d.unbind(-1)
    X, Y, Z = points3d.unbind(-1)
    y = (v - cy) / fy
    x = torch.addcmul(u - cx, skew, y, value=-1.0) / fx
    # (5, ..., N): x, y (normalised image coordinates), b = (X, Y) - Z (x, y) (metres), Z.
    planes = torch.stack((x, y, torch.addcmul(X, Z, x, value=-1.0), torch.addcmul(Y, Z, y, value=-1.0), Z))  # fmt: skip
    if weights is None:
        omega: Tensor | float = 1.0 / planes.shape[-1]
        means = planes[:4].mean(-1, keepdim=True)
    else:
        # Unused points are zeros from here on, whatever they held. (Their raw
        # coordinates may be NaN: the autograd paths mask those first, see _drop_unused.)
        planes = torch.where(weights == 0, 0.0, planes)
        # Divided by the largest magnitude first: no over- or underflow of w².
        scale = weights.abs().amax(-1, keepdim=True).clamp(min=_SMALLEST[weights.dtype])
        normalised = weights / scale
        squared = normalised * normalised
        # Σ >= 1 when any weight is non-zero (the largest is exactly 1): the floor
        # only turns all-zero weights into omega = 0.
        total = squared.sum(-1, keepdim=True).clamp(min=1.0)
        omega = squared / total
        means = (planes[:4] * omega).sum(-1, keepdim=True)
    Z = planes[4]
    planes = planes[:4]
    centred = planes - means
    weighted = centred[:2] * omega
    # Σ omega |δx|² and Σ omega δx·δb, (1, ..., 1) each, from one product of
    # ((δx, δy), (δbx, δby)) by omega (δx, δy), summed over the points first.
    products = centred.view(2, 2, *centred.shape[1:]) * weighted
    pivot, numerator = products.sum(-1, keepdim=True).sum(1, keepdim=True).unbind(0)
    mean_xy, mean_b = means[:2], means[2:]
    rho2 = (mean_xy * mean_xy).sum(0, keepdim=True)
    prior_col = None if prior is None else _columns(prior)
    if damping > 0:
        mu = 1.0 + damping
        pivot = pivot + (damping + damping / mu * rho2)
        pull = mean_b if prior_col is None else mean_b + prior_col[:2]
        numerator = numerator + damping / mu * (mean_xy * pull).sum(0, keepdim=True)
        if prior_col is not None:
            numerator = torch.add(numerator, prior_col[2:], alpha=damping)
    # Relative pivot test. fx, fy and K[1, 0] enter through a zero that is NaN when one
    # of them is not finite (an infinite focal length would otherwise give x = 0).
    tolerance = torch.finfo(x.dtype).eps * CONDITION_TOLERANCE_EPS
    spread = rho2 + 1.0
    bound = torch.addcmul(torch.addcmul(k10, fx, fy) * 0.0, spread, spread, value=tolerance)
    well_posed = pivot > bound
    pivot = torch.clamp(pivot, min=bound)
    tz = numerator / pivot
    txy = torch.addcmul(-mean_b, mean_xy, tz)
    if damping > 0:
        txy = (txy if prior_col is None else torch.add(txy, prior_col[:2], alpha=damping)) / mu
    translation = torch.cat((txy, tz))
    # In front of the camera: the root and every used point (unused ones have Z = 0),
    # by a margin relative to the root's depth (collapsed points sit at depth ~0). The
    # comparisons are False for NaN and for an infinite depth: any NaN/Inf that was
    # used shows in tz (see the tests).
    nearest = Z.amin(-1, keepdim=True).clamp(max=0.0) + tz
    valid = well_posed & (nearest > tolerance * tz)
    if damping > 0 and weights is not None:  # (without damping, no points is ill-posed)
        valid = valid & (squared.sum(-1, keepdim=True) > 0)
    factor = None
    if weight_factor and weights is not None:
        factor = normalised / scale / (0.5 * total)  # (scale may be subnormal)
    return _State(translation, valid, planes, Z, means, pivot, k, omega, factor)


def _drop_unused(inputs: tuple[Tensor | None, ...]) -> tuple[Tensor | None, ...]:
    """The inputs with the points of zero weight replaced by zeros.

    The closed form replaces those points' planes, which is enough for its values and
    for the analytic backward; a path that differentiates the closed form with
    autograd masks the raw coordinates too, so that a NaN they hold never meets the
    zero gradient of a replaced plane.
    """
    points3d, points2d, intrinsics, weights, prior = inputs
    if weights is None:
        return inputs
    drop = (weights == 0).unsqueeze(-1)
    return (
        points3d.masked_fill(drop, 0.0),
        points2d.masked_fill(drop, 0.0),
        intrinsics,
        weights,
        prior,
    )


class _WeightedDLT(torch.autograd.Function):
    """Closed-form forward; implicit-function backward (one adjoint solve).

    Inputs: ``points3d, points2d, intrinsics, weights, prior, damping`` (the first
    three and ``weights`` with the batch shape, see :func:`_closed_form`; ``weights``
    and ``prior`` may be None). Outputs: the translation `(..., 3)` (the prior where
    invalid), then the planes of the state (not differentiable; the backward reuses
    them).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(points3d, points2d, intrinsics, weights, prior, damping):  # type: ignore[override]
        state = _closed_form(points3d, points2d, intrinsics, weights, prior, damping, True)
        translation = _answer(state, prior)
        return translation, *(t for t in state if isinstance(t, Tensor))

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[override]
        *tensors, damping = inputs
        ctx.damping = damping
        ctx.weighted = tensors[3] is not None
        ctx.set_materialize_grads(False)
        ctx.mark_non_differentiable(*output[1:])
        ctx.save_for_backward(*tensors, *output[1:])

    @staticmethod
    def backward(ctx, grad_translation, *_):  # type: ignore[override]
        if grad_translation is None:
            return (None,) * 6
        points3d, points2d, intrinsics, weights, prior, *saved = ctx.saved_tensors
        damping = ctx.damping
        if torch.is_grad_enabled():  # double backward: intermediates with their graph
            inputs = _drop_unused((points3d, points2d, intrinsics, weights, prior))
            s = _closed_form(*inputs, damping, True)
        elif ctx.weighted:
            s = _State(*saved)
        else:
            s = _State(*saved[:7], 1.0 / points2d.shape[-2], None)
        return _backward(s, grad_translation, intrinsics, prior, damping, ctx.needs_input_grad)


#: The most points (problems times N) a CPU call may hold to be solved in NumPy while
#: torch runs on several threads, whose kernels then win on large batches; 0 turns the
#: NumPy path off (``benchmarks/README.md``).
NUMPY_PATH_MAX_POINTS = 16384

#: The same limit while torch runs on one thread (``torch.get_num_threads() == 1``), as
#: NumPy does: none by default. Solving in chunks of problems
#: (``CHUNK_PROBLEMS`` in ``_translation_numpy.py``), the NumPy path measured
#: 2.8 times as fast as the plain-autograd prototype forward and 1.95 times forward and
#: backward at 1,048,576 hands of 21 points, torch's own path 4.5 times slower than the
#: NumPy path (``benchmarks/README.md``).
NUMPY_PATH_MAX_POINTS_ONE_THREAD: float = math.inf


def _nothing_watching() -> bool:
    """Whether no transform sees the call: function transforms (``vmap``, ``grad``),
    forward-mode AD (dual tensors), ``torch.compile``, tracing (ONNX export) and dispatch
    modes must see the ATen ops, so they always take the torch path."""
    return (
        not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
        and forward_ad._current_level < 0
        and peek_interpreter_stack() is None
        and _get_current_dispatch_mode() is None
        and not torch._C._is_torch_function_mode_enabled()
    )


def _within_numpy_limit(points3d: Tensor) -> bool:
    """Whether a CPU call is small enough for the NumPy path (see its limits)."""
    one_thread = torch.get_num_threads() == 1
    limit = NUMPY_PATH_MAX_POINTS_ONE_THREAD if one_thread else NUMPY_PATH_MAX_POINTS
    return points3d.numel() <= 3 * limit


def _numpy_path_applies(tensors: tuple[Tensor | None, ...]) -> bool:
    """Whether a call may run in NumPy: small, on the CPU, plain tensors, nothing watching."""
    # (Checked before the sizes, which a tracer would record as a guard.)
    return (
        _nothing_watching()
        and all(t is None or type(t) is Tensor for t in tensors)
        and tensors[0].device.type == "cpu"
        and NUMPY_PATH_MAX_POINTS > 0
        and _within_numpy_limit(tensors[0])
    )


def _numpy_view(tensor: Tensor) -> np.ndarray:
    """The NumPy view of a CPU tensor: no copy, detached, and never a device transfer
    (a tensor on another device raises rather than synchronising; the CPU paths are only
    taken for CPU tensors)."""
    if tensor.requires_grad:
        tensor = tensor.detach()
    return tensor.resolve_neg().numpy() if tensor.is_neg() else tensor.numpy()


def _numpy_arrays(tensors: tuple[Tensor | None, ...]) -> list:
    """NumPy views of CPU tensors (see :func:`_numpy_view`)."""
    return [None if t is None else _numpy_view(t) for t in tensors]


#: The relative pivot and depth tolerance of each NumPy compute dtype (as the torch path's).
_NUMPY_TOLERANCE = {np.dtype(t): float(np.finfo(t).eps) * CONDITION_TOLERANCE_EPS
                    for t in (np.float32, np.float64)}  # fmt: skip


def _numpy_state(
    arrays: list, damping: float, weight_factor: bool = False
) -> numpy_twin.NumPyState:
    """The NumPy closed form, with the tolerance of the arrays' dtype."""
    tolerance = _NUMPY_TOLERANCE[arrays[0].dtype]
    return numpy_twin.closed_form(*arrays, damping, tolerance, weight_factor)


class _NumPyTwin:
    """The NumPy path (see :func:`_numpy_path_applies`): solve and gradients as tensors."""

    @staticmethod
    def solve(tensors: tuple[Tensor | None, ...], damping: float, weight_factor: bool = False):
        """``(state, translation (..., 3), valid (...))``; the state keeps its own ``valid``."""
        state = _numpy_state(_numpy_arrays(tensors), damping, weight_factor)
        return state, torch.from_numpy(state.translation), torch.from_numpy(state.valid.copy())

    @staticmethod
    def gradients(state, grad_translation: Tensor, saved: tuple, damping: float, needs: tuple):
        """The five input gradients (None where not needed)."""
        intrinsics, prior = saved[2], saved[4]
        grads = numpy_twin.backward(
            state,
            _numpy_view(grad_translation),
            intrinsics.shape,
            None if prior is None else prior.shape,
            damping,
            needs,
        )
        return [None if g is None else torch.from_numpy(g) for g in grads[:5]]


#: The most points a CPU call holding exactly one problem may have to be solved in
#: Python floats (``dgpgeom/solvers/_translation_scalar.py``) rather than NumPy, under
#: the NumPy path's conditions; 0 turns the scalar path off. For one hand of 21 points
#: (one thread, float32) it took 25.9 against 54.3 µs forward and 115 against 177 µs
#: forward+backward (``benchmarks/README.md``); its loops grow with the points where
#: NumPy's calls hardly do, so it stops at a little over twice a hand's keypoints.
SCALAR_PATH_MAX_POINTS = 48

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}
_SCALAR_TOLERANCE = {dtype: float(torch.finfo(dtype).eps) * CONDITION_TOLERANCE_EPS
                     for dtype in _NUMPY_DTYPES}  # fmt: skip


def _scalar_path_applies(tensors: tuple[Tensor | None, ...]) -> bool:
    """Whether a call the NumPy path may take holds one problem of few enough points."""
    points2d = tensors[1]
    count = points2d.shape[-2]
    return count <= SCALAR_PATH_MAX_POINTS and points2d.numel() == 2 * count


def _from_values(values: list, like: Tensor) -> Tensor:
    """A new tensor shaped and typed like ``like`` holding ``values`` (in order)."""
    return torch.from_numpy(np.array(values, _NUMPY_DTYPES[like.dtype])).view(like.shape)


class _ScalarTwin:
    """The scalar path (see :func:`_scalar_path_applies`): solve and gradients as tensors.

    Its values enter and leave through the NumPy views of the CPU tensors, as the NumPy
    path's do (the path is only taken on the CPU: no device synchronisation).
    """

    @staticmethod
    def solve(tensors: tuple[Tensor | None, ...], damping: float, weight_factor: bool = False):
        """``(state, translation (..., 3), valid (...))`` of the one problem the tensors hold."""
        # Python floats read from the CPU tensors' memory (NumPy's tolist, not torch's).
        values = [None if a is None else a.ravel().tolist() for a in _numpy_arrays(tensors)]
        dtype, batch = tensors[1].dtype, tensors[1].shape[:-2]
        state = scalar_twin.closed_form(*values, damping, _SCALAR_TOLERANCE[dtype], weight_factor)
        # (Shaped in NumPy: a torch view would cost one more dispatch than the copy.)
        translation = np.array(state.translation, _NUMPY_DTYPES[dtype]).reshape(*batch, 3)
        return state, torch.from_numpy(translation), torch.full(batch, state.valid)

    @staticmethod
    def gradients(state, grad_translation: Tensor, saved: tuple, damping: float, needs: tuple):
        """The five input gradients (None where not needed)."""
        if not state.valid:  # zeros; the translation's gradient passes to the prior
            grads = [
                torch.zeros_like(t) if need else None
                for t, need in zip(saved, needs[:5], strict=True)
            ]
            if needs[4]:
                grads[4] = grad_translation.clone()
            return grads
        # NumPy's tolist on the CPU tensor's memory, as in ``solve`` (never a device sync).
        cotangent = _numpy_view(grad_translation).ravel().tolist()
        values = scalar_twin.backward(state, cotangent, damping, needs)
        return [
            None if v is None else _from_values(v, t) for v, t in zip(values, saved, strict=True)
        ]


def _cpu_twin_of_plain_call(
    points3d: Tensor,
    points2d: Tensor,
    intrinsics: Tensor,
    weights: Tensor | None,
    prior: Tensor | None,
    damping: float,
) -> type[_ScalarTwin] | type[_NumPyTwin] | None:
    """The CPU twin of a plain call, in a few comparisons; None sends it through the checks.

    Plain: CPU tensors of one dtype (float32 or float64) with nothing watching, the points,
    the weights and the prior (if given) of one batch shape, ``K`` of that batch shape or
    one ``(3, 3)`` for all, a float or int ``damping >= 0``. Such a call needs no cast, no
    broadcast and no further check, so it goes straight to its twin: for one hand in one
    frame the general checks and dispatch cost as much as the solve.
    """
    if not (
        type(points2d) is Tensor and type(points3d) is Tensor and type(intrinsics) is Tensor
        and (weights is None or type(weights) is Tensor) and (prior is None or type(prior) is Tensor)
        and (type(damping) is float or type(damping) is int) and damping >= 0
    ):  # fmt: skip
        return None
    s2, s3, sk, dtype = points2d.shape, points3d.shape, intrinsics.shape, points2d.dtype
    if not (
        (dtype is torch.float32 or dtype is torch.float64)
        and len(s2) >= 2 and s2[-1] == 2 and s2[-2] >= 2 and s3[:-1] == s2[:-1] and s3[-1:] == (3,)
        and sk[-2:] == (3, 3) and (len(sk) == 2 or sk[:-2] == s2[:-2])
        and (weights is None or (weights.shape == s2[:-1] and weights.dtype is dtype))
        and (prior is None or (prior.shape[:-1] == s2[:-2] and prior.shape[-1:] == (3,)
                               and prior.dtype is dtype))
        and points3d.dtype is dtype and intrinsics.dtype is dtype
        and points2d.is_cpu and points3d.is_cpu and intrinsics.is_cpu
        and (weights is None or weights.is_cpu) and (prior is None or prior.is_cpu)
        and NUMPY_PATH_MAX_POINTS > 0
        and _nothing_watching()
    ):  # fmt: skip
        return None
    if _scalar_path_applies((points3d, points2d)):
        return _ScalarTwin
    return _NumPyTwin if _within_numpy_limit(points3d) else None


class _WeightedDLTOnCPU(torch.autograd.Function):
    """:class:`_WeightedDLT` computed by a CPU twin (:class:`_NumPyTwin` or :class:`_ScalarTwin`).

    Inputs: the twin, then those of :class:`_WeightedDLT`. Outputs: the translation
    `(..., 3)` and ``valid`` `(...)`. Double backward recomputes the torch state from the
    saved inputs and differentiates it.
    """

    @staticmethod
    def forward(ctx, twin, points3d, points2d, intrinsics, weights, prior, damping):  # type: ignore[override]
        tensors = (points3d, points2d, intrinsics, weights, prior)
        state, translation, valid = twin.solve(tensors, damping, weight_factor=True)
        ctx.twin, ctx.state, ctx.damping = twin, state, damping
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(*tensors)
        ctx.mark_non_differentiable(valid)
        return translation, valid

    @staticmethod
    def backward(ctx, grad_translation, _):  # type: ignore[override]
        if grad_translation is None:
            return (None,) * 7
        saved, damping, needs = ctx.saved_tensors, ctx.damping, ctx.needs_input_grad[1:]
        if torch.is_grad_enabled():  # double backward: the torch state, with its graph
            s = _closed_form(*_drop_unused(saved), damping, True)
            return (None, *_backward(s, grad_translation, saved[2], saved[4], damping, needs))
        grads = ctx.twin.gradients(ctx.state, grad_translation, saved, damping, needs)
        return (None, *grads, None)


def _answer(state: _State, prior: Tensor | None) -> Tensor:
    """The translation `(..., 3)`: the solution where valid, else the prior (or zeros)."""
    fallback = 0.0 if prior is None else _columns(prior)
    answer = torch.where(state.valid, state.translation, fallback)
    return answer.squeeze(-1).movedim(0, -1).contiguous()


def _backward(
    s: _State,
    grad_t: Tensor,
    intrinsics: Tensor,
    prior: Tensor | None,
    damping: float,
    needs: tuple[bool, ...],
) -> tuple[Tensor | None, ...]:
    """Input gradients of one batch of problems, see the module notes.

    The gradients of a problem whose ``valid`` is False are zeros (a NaN of that
    problem never reaches a shared ``K``); ``prior`` gets the translation's gradient
    there instead.
    """
    valid, omega = s.valid, s.omega
    g = torch.where(valid, _columns(grad_t), 0.0)
    mu = 1.0 + damping
    mean_xy = s.means[:2]
    # Adjoint solve with the normalised normal matrix: l = (M/S)^-1 g.
    gxy, gz = g[:2], g[2:]
    if damping > 0:
        lz = ((mean_xy * gxy).sum(0, keepdim=True) / mu + gz) / s.pivot
        lxy = torch.addcmul(gxy, mean_xy, lz) / mu
    else:
        lz = ((mean_xy * gxy).sum(0, keepdim=True) + gz) / s.pivot
        lxy = torch.addcmul(gxy, mean_xy, lz)
    txy, tz = s.translation[:2], s.translation[2:]
    xy, b = s.planes[:2], s.planes[2:]
    r = torch.addcmul(b + txy, xy, tz, value=-1.0)  # r = B - A t (x, y planes)
    q = torch.addcmul(lxy, xy, lz, value=-1.0)  # q = -A l
    minus_grad_XY = omega * q
    grad_Z = (xy * minus_grad_XY).sum(0, keepdim=True)
    grad_xy = torch.addcmul((omega * lz) * r, s.Z + tz, minus_grad_XY)
    # Through K^-1: y = (v - cy) / fy, x = (u - cx - skew y) / fx.
    fx, skew, _, _, fy, _ = s.intrinsics.unbind(-2)
    grad_u = grad_xy[:1] / fx
    grad_v = torch.addcmul(grad_xy[1:], skew, grad_u, value=-1.0) / fy
    rows = [grad_u, grad_v, -minus_grad_XY, grad_Z]
    if needs[3]:
        # omega = w² / Σw²: dL/dw_k = 2 w_k / Σw² (g_k - Σ_i omega_i g_i), g = (A l)·r.
        minus_grad_omega = (q * r).sum(0, keepdim=True)
        minus_mean = (omega * minus_grad_omega).sum(-1, keepdim=True)
        rows.append(s.weight_factor * (minus_mean - minus_grad_omega))
    # One mask for every point gradient: (5 or 6, ..., N), zero where invalid.
    grads = torch.where(valid, torch.cat(rows), 0.0)
    outputs: list[Tensor | None] = [None] * 6
    if needs[0]:
        outputs[0] = grads[2:5].movedim(0, -1)
    if needs[1]:
        outputs[1] = grads[:2].movedim(0, -1)
    if needs[3]:
        outputs[3] = grads[5]
    if needs[2]:
        # dL/dK[:2] = -Σ_i (dL/du_i, dL/dv_i) (x_i, y_i, 1) with K[1, 0] unused.
        uv = grads[:2].unsqueeze(1)
        top = torch.cat(((uv * xy).sum(-1), uv.sum(-1)), 1)  # (2, 3, ...)
        top = torch.where(valid[..., 0], top, 0.0)  # (x, y of an invalid problem may be NaN)
        grad_k = torch.nn.functional.pad(-top.movedim((0, 1), (-2, -1)).triu(), (0, 0, 0, 1))
        outputs[2] = grad_k.sum_to_size(intrinsics.shape)
    if needs[4]:
        if damping > 0:
            grad_prior = torch.where(valid, damping * torch.cat((lxy, lz)), _columns(grad_t))
            grad_prior = grad_prior.squeeze(-1).movedim(0, -1)
        else:
            grad_prior = grad_t.masked_fill(valid[0], 0.0)
        outputs[4] = grad_prior.sum_to_size(prior.shape)
    return tuple(outputs)


def _covariance(state: _State, damping: float, num_points: int) -> Tensor:
    """Covariance `(..., 3, 3)` from the (sanitised) state, differentiable by autograd."""
    txy, tz = state.translation[:2], state.translation[2:]
    xy, b = state.planes[:2], state.planes[2:]
    r = torch.addcmul(b + txy, xy, tz, value=-1.0)
    omega = state.omega
    if isinstance(omega, Tensor):
        count = (omega > 0).sum(-1, keepdim=True)
        dof = (2.0 * count - 3.0).clamp(min=1.0)
    else:
        dof = max(2.0 * num_points - 3.0, 1.0)
    sigma2 = (omega * (r * r)).sum((0, -1), keepdim=True)[0] / dof
    sigma2 = torch.where(state.valid[0], sigma2, 0.0)  # the covariance is zero where invalid
    # covariance = σ̂² M^-1 = (σ̂² / S) (diag(1, 1, 0) / mu + u u^T / D) with
    # u = (x̄/mu, ȳ/mu, 1), assembled from its six distinct entries.
    mu = 1.0 + damping
    mean_x, mean_y = state.means[0], state.means[1]
    ux, uy, diagonal = mean_x / mu, mean_y / mu, sigma2 / mu
    zz = sigma2 / state.pivot[0]
    xz = zz * ux
    yz = zz * uy
    xx = torch.addcmul(diagonal, xz, ux)
    xy_ = xz * uy
    yy = torch.addcmul(diagonal, yz, uy)
    entries = torch.cat((xx, xy_, xz, xy_, yy, yz, xz, yz, zz), -1)
    return entries.unflatten(-1, (3, 3))


def _pixel_residuals(
    points3d: Tensor, points2d: Tensor, intrinsics: Tensor, translation: Tensor, valid: Tensor
) -> Tensor:
    """``‖project(K, points3d + t) - points2d‖`` `(..., N)`, zeros where invalid.

    The inputs of invalid problems are replaced by harmless values first, so that
    their gradients are zeros, not NaN.
    """
    ok = valid[..., None, None]
    camera = torch.where(ok, points3d + translation.unsqueeze(-2), 1.0)
    observed = torch.where(ok, points2d, 0.0)
    safe_k = torch.eye(2, 3, dtype=camera.dtype, device=camera.device)
    k = torch.where(ok, intrinsics[..., :2, :], safe_k)
    depth = camera[..., 2:].clamp(min=MIN_RESIDUAL_DEPTH)
    projected = (camera[..., :2] / depth) @ k[..., :2].transpose(-1, -2) + k[..., 2].unsqueeze(-2)
    error2 = (projected - observed).square().sum(-1) + torch.finfo(camera.dtype).tiny
    return torch.where(valid[..., None], error2.sqrt(), 0.0)


def _batch_shape(
    points3d: Tensor,
    points2d: Tensor,
    intrinsics: Tensor,
    weights: Tensor | None,
    prior: Tensor | None,
    damping: float,
) -> tuple[torch.Size, int]:
    """Validate the arguments; returns the broadcast batch shape and N.

    Well-formed arguments pass a few plain comparisons of shapes, dtypes and devices;
    anything else goes through the full checks, which raise with the message.
    """
    s3, s2, sk = points3d.shape, points2d.shape, intrinsics.shape
    vectors = [t for t in (weights, prior) if t is not None]
    if (
        (type(damping) is float or type(damping) is int)
        and damping >= 0
        and len(s3) >= 2 and s3[-1] == 3 and len(s2) >= 2 and s2[-1] == 2 and s2[-2] == s3[-2] >= 2
        and len(sk) >= 2 and sk[-1] == 3 and sk[-2] == 3
        and (weights is None or (weights.dim() >= 1 and weights.shape[-1] == s3[-2]))
        and (prior is None or (prior.dim() >= 1 and prior.shape[-1] == 3))
        and all(t.is_floating_point() for t in (points3d, points2d, intrinsics, *vectors))
        and all(t.device == points3d.device for t in (points2d, intrinsics, *vectors))
    ):  # fmt: skip
        batches = {"points3d": s3[:-2], "points2d": s2[:-2], "intrinsics": sk[:-2]}
        if weights is not None:
            batches["weights"] = weights.shape[:-1]
        if prior is not None:
            batches["prior"] = prior.shape[:-1]
        return broadcast_batch_shapes(**batches), s3[-2]
    batch, num_points = check_single_view(points3d, points2d, intrinsics, weights, prior=prior)
    check_option(damping, "damping", minimum=0.0)
    return batch, num_points


def _prepared(
    points3d: Tensor,
    points2d: Tensor,
    intrinsics: Tensor,
    weights: Tensor | None,
    prior: Tensor | None,
    damping: float,
) -> tuple[tuple[Tensor | None, ...], torch.dtype, torch.dtype]:
    """Validated inputs in the compute dtype, points and weights with the batch shape.

    ``weights`` and ``prior`` stay None when not given.
    """
    if not isinstance(points3d, Tensor) or not isinstance(points2d, Tensor) or not isinstance(
        intrinsics, Tensor
    ) or not (weights is None or isinstance(weights, Tensor)) or not (
        prior is None or isinstance(prior, Tensor)
    ):  # fmt: skip
        check_single_view(points3d, points2d, intrinsics, weights, prior=prior)  # raises
    batch, num_points = _batch_shape(points3d, points2d, intrinsics, weights, prior, damping)
    dtype, out_dtype = compute_dtype(
        *(t for t in (points3d, points2d, intrinsics, weights, prior) if t is not None)
    )

    def cast(t: Tensor | None, shape: tuple[int, ...] | None = None) -> Tensor | None:
        if t is None:
            return None
        t = t if t.dtype == dtype else t.to(dtype)
        return t if shape is None or t.shape == shape else t.expand(shape)

    tensors = (
        cast(points3d, (*batch, num_points, 3)),
        cast(points2d, (*batch, num_points, 2)),
        cast(intrinsics),
        cast(weights, (*batch, num_points)),
        cast(prior, (*batch, 3)),  # the plane-major state needs every batch dimension
    )
    return tensors, dtype, out_dtype


def solve_translation(
    points3d: Tensor,
    points2d: Tensor,
    intrinsics: Tensor,
    weights: Tensor | None = None,
    *,
    damping: float = 0.0,
    prior: Tensor | None = None,
    return_covariance: bool = False,
    return_residuals: bool = False,
) -> TranslationSolution:
    r"""Camera-space translation of a root-relative 3D shape from its 2D keypoints.

    Solves the weighted DLT system of HandDGP (Eq. 7) in closed form:
    :math:`t = (A^\top W^2 A)^{-1} A^\top W^2 B`, i.e. the minimiser of
    :math:`\sum_i w_i^2 \lVert A_i t - B_i\rVert^2`, where the residual of point
    ``i`` is its algebraic reprojection error in normalised coordinates scaled by
    its depth (metres). Batched over any leading dimensions, differentiable with an
    analytic backward (implicit-function theorem, double backward supported), and
    free of host synchronisation, LAPACK calls and data-dependent control flow, so it
    runs unchanged on GPU, under :func:`torch.func.vmap`, :func:`torch.func.jacrev`
    and ``torch.compile(fullgraph=True)``. See the Conventions page
    (https://dgpgeom.readthedocs.io/en/latest/conventions/) for pixel and intrinsics
    conventions.

    Weights scale residuals: multiplying all weights by any ``c > 0`` changes
    nothing (they are divided by their largest magnitude first), and ``w_i = 0`` is
    exactly dropping point ``i``, whatever it holds (NaN and Inf included).

    On the CPU a call with at most :data:`NUMPY_PATH_MAX_POINTS` points in all
    (:data:`NUMPY_PATH_MAX_POINTS_ONE_THREAD`, no limit by default, while torch runs on
    one thread) is computed in NumPy, and a call holding one problem of at most
    :data:`SCALAR_PATH_MAX_POINTS` points in Python floats (in float64 whatever the
    dtype): the same answers and gradients to rounding, faster (see the benchmarks).
    Anything else, and any call under ``vmap``, ``grad``, ``torch.compile`` or export,
    runs in torch ops.

    Trouble that depends on the values (degenerate geometry, a solution behind the
    camera, NaN or Inf in a used input) never raises: it sets ``valid`` to False for
    that problem, whose outputs are then finite (the prior, zero covariance and
    residuals) and whose input gradients are zeros (the gradient of ``translation``
    passes to ``prior``). Other problems of the batch, and a ``K`` they share, are
    unaffected.

    Accuracy: in float32, for 21 keypoints (any N ≥ 8) of a 10 cm hand 0.3–2 m away,
    focal 300–2000 px and 1 px keypoint noise, the translation agrees with the float64
    solution to within 2e-5 m + 1e-5 × depth (tested); with 3–5 points the error grows
    with the conditioning (up to 1.1e-4 m measured at N = 3). float16/bfloat16 inputs
    are computed in float32.

    Args:
        points3d: `(..., N, 3)` metres, root-relative, axes of the camera frame
            (x right, y down, z forward).
        points2d: `(..., N, 2)` pixels, (x, y), pixel centres on integers.
        intrinsics: `(..., 3, 3)` pixels, ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``.
            Broadcasts against the points: one matrix may serve a whole batch.
        weights: `(..., N)` confidences (only ``w²`` matters); ``None`` means all
            ones. Needs at least two points (``N >= 2``).
        damping: relative strength ``λ >= 0`` of a Tikhonov pull toward ``prior``: the
            objective gains ``λ · Σw² · ‖t - prior‖²``, i.e. each coordinate of ``t``
            is pulled like one extra point carrying a fraction ``λ`` of the total
            weight. Its scale is set by the keypoints' own constraint on depth,
            ``D ≈ (object size / depth)²`` (about 6e-4 for a hand at 2 m): the depth moves
            about ``λ / (D + λ)`` of the way to the prior, so keep ``λ ≤ D / 100`` (or 0)
            unless the prior should win. See the Conventions page.
        prior: `(..., 3)` metres, the translation to pull toward (default zeros). It is
            also what is returned where ``valid`` is False.
        return_covariance: also compute :attr:`TranslationSolution.covariance` (else
            None). Off by default: training and placement need only the translation.
        return_residuals: also compute :attr:`TranslationSolution.residuals` (else
            None), the pixel reprojection errors.

    Returns:
        A :class:`TranslationSolution` ``(translation, valid, residuals, covariance)``.

    Raises:
        ShapeError: on a wrong shape, too few points, mismatched ``N``, batch
            dimensions that do not broadcast, a non-floating dtype, or tensors on
            different devices.
        TypeError: if a tensor argument is not a tensor.
        ValueError: on a negative ``damping``.

    Example:
        >>> import torch
        >>> K = torch.tensor([[500.0, 0.0, 112.0], [0.0, 500.0, 112.0], [0.0, 0.0, 1.0]])
        >>> points3d = torch.tensor([[0.0, 0.0, 0.0], [0.05, 0.0, 0.01], [0.0, 0.08, -0.01]])
        >>> t_true = torch.tensor([0.02, -0.01, 0.6])
        >>> camera = points3d + t_true
        >>> points2d = (camera[:, :2] / camera[:, 2:]) * 500.0 + 112.0
        >>> solution = solve_translation(points3d, points2d, K, return_residuals=True)
        >>> torch.allclose(solution.translation, t_true, atol=1e-5), bool(solution.valid)
        (True, True)
        >>> bool(solution.residuals.max() < 1e-2), solution.covariance is None
        (True, True)

    References:
        E. Valassakis and G. Garcia-Hernando. *HandDGP: Camera-Space Hand Mesh
        Prediction with Differentiable Global Positioning.* ECCV 2024, §3.1–3.2.
    """
    if not (return_covariance or return_residuals) and (
        twin := _cpu_twin_of_plain_call(points3d, points2d, intrinsics, weights, prior, damping)
    ):
        inputs = (points3d, points2d, intrinsics, weights, prior)
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs):
            translation, valid = _WeightedDLTOnCPU.apply(twin, *inputs, float(damping))
        else:
            _, translation, valid = twin.solve(inputs, float(damping))
        return TranslationSolution(translation, valid, None, None)
    inputs, dtype, out_dtype = _prepared(points3d, points2d, intrinsics, weights, prior, damping)
    damping = float(damping)
    tracked = any(t is not None and t.requires_grad for t in inputs)
    differentiable = tracked and torch.is_grad_enabled()
    if _numpy_path_applies(inputs):
        twin = _ScalarTwin if _scalar_path_applies(inputs) else _NumPyTwin
        if differentiable:
            translation, valid = _WeightedDLTOnCPU.apply(twin, *inputs, damping)
        else:
            _, translation, valid = twin.solve(inputs, damping)
    else:
        if differentiable:
            translation, _, valid, *_ = _WeightedDLT.apply(*inputs, damping)
        else:
            state = _closed_form(*inputs, damping)
            valid = state.valid
            translation = _answer(state, inputs[4])
        valid = valid.view(valid.shape[1:-1])
    covariance = residuals = None
    if return_covariance:
        sanitised = _sanitised(_drop_unused(inputs), valid)
        covariance = _covariance(_closed_form(*sanitised, damping), damping, inputs[1].shape[-2])
    if return_residuals:
        residuals = _pixel_residuals(*inputs[:3], translation, valid)
    if out_dtype != dtype:
        translation = translation.to(out_dtype)
        covariance = None if covariance is None else covariance.to(out_dtype)
        residuals = None if residuals is None else residuals.to(out_dtype)
    return TranslationSolution(translation, valid, residuals, covariance)


def _sanitised(inputs: tuple[Tensor | None, ...], valid: Tensor) -> tuple[Tensor | None, ...]:
    """The inputs with the problems that are not valid replaced by finite ones.

    Plain-autograd statistics computed from these have zero (not NaN) gradients for
    those problems, and none reaching a ``K`` they share with valid ones.
    """
    points3d, points2d, intrinsics, weights, prior = inputs
    ok = valid[..., None, None]
    eye = torch.eye(3, dtype=intrinsics.dtype, device=intrinsics.device)
    return (
        torch.where(ok, points3d, 0.0),
        torch.where(ok, points2d, 0.0),
        torch.where(ok, intrinsics, eye),
        None if weights is None else torch.where(valid[..., None], weights, 0.0),
        None if prior is None else torch.where(valid[..., None], prior, 0.0),
    )


def solve_translation_naive(
    points3d: Tensor,
    points2d: Tensor,
    intrinsics: Tensor,
    weights: Tensor | None = None,
    *,
    damping: float = 0.0,
    prior: Tensor | None = None,
) -> Tensor:
    """Plain-autograd twin of :func:`solve_translation`: the same closed form, no custom backward.

    Public as :func:`dgpgeom.testing.solve_translation_naive`, to check gradients of code
    built on the solver against autograd's (see roma's ``*_naive`` twins).

    Args:
        points3d: `(..., N, 3)` metres, root-relative.
        points2d: `(..., N, 2)` pixels.
        intrinsics: `(..., 3, 3)` pixels.
        weights: `(..., N)` or ``None`` (all ones).
        damping: relative Tikhonov damping toward ``prior``, as in the solver.
        prior: `(..., 3)` metres, or ``None`` (zeros).

    Returns:
        `(..., 3)` metres, the translation (``prior`` where the problem is degenerate).

    Example:
        >>> from dgpgeom import solve_translation
        >>> K = torch.tensor([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
        >>> p3 = torch.tensor([[0.0, 0.0, 0.0], [0.05, 0.0, 0.01], [0.0, 0.05, -0.01]])
        >>> p2 = torch.tensor([[320.0, 240.0], [345.0, 240.0], [320.0, 265.0]])
        >>> torch.allclose(solve_translation_naive(p3, p2, K), solve_translation(p3, p2, K).translation)
        True
    """
    inputs, _, _ = _prepared(points3d, points2d, intrinsics, weights, prior, damping)
    return _answer(_closed_form(*_drop_unused(inputs), float(damping)), inputs[4])
