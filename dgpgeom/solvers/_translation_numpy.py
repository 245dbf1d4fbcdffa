"""The weighted-DLT solve and its backward in NumPy, for CPU calls.

At a small batch the solver's cost is the per-operation overhead, not the arithmetic,
and a NumPy call on a few hundred values costs less than an ATen dispatch. For CPU
tensors outside function transforms, compilation, tracing and dispatch modes (up to a
size that depends on torch's thread count: NumPy runs on one core),
:func:`~dgpgeom.solve_translation` runs this twin of its torch ``_closed_form`` and
``_backward`` on NumPy views of the inputs: the same centred closed form, the same
implicit-function backward and the same validity tests (see the notes of
:mod:`dgpgeom.solvers.translation`). The solver's test suite runs on each path.

The batch is flattened to ``M`` problems and solved in chunks of
:data:`CHUNK_PROBLEMS` (forward and backward), so that a chunk's planes and temporaries
stay in a core's cache. Within a chunk of ``m`` problems the layout is point-major with
the problems last: a per-point quantity with ``k`` components is a ``(k, N, m)`` plane,
filled by one transposing copy of each input (in blocks of :data:`TRANSPOSE_BLOCK`
problems). NumPy runs its inner loop over the last axis, so every per-problem broadcast
(a focal length, a mean) and every sum, minimum or maximum over the N points then runs
whole rows of problems at once; with the problems first it loops over rows of N points
(the forward took about a fifth less time this way at 1,024 and 4,096 hands of 21
points, one thread, in spite of the copies).
``points3d`` `(..., N, 3)`, ``points2d`` `(..., N, 2)` and ``weights``
`(..., N)`, ``intrinsics`` `(..., 3, 3)` and ``prior`` `(..., 3)` have batch shapes
that broadcast together; ``weights`` and ``prior`` may be None.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = [
    "CHUNK_PROBLEMS",
    "TRANSPOSE_BLOCK",
    "ChunkState",
    "NumPyState",
    "backward",
    "closed_form",
]


class NumPyState(NamedTuple):
    """The solution, and what the backward needs (no array in it aliases an input)."""

    translation: np.ndarray  # (..., 3) the solution where valid, else the prior (or zeros)
    valid: np.ndarray  # (...) bool
    count: int  # N, the points of each problem
    chunks: list[ChunkState]  # one per chunk of problems; empty unless kept for the backward


class ChunkState(NamedTuple):
    """What the backward needs of one chunk of ``m`` problems (see :data:`CHUNK_PROBLEMS`).

    Per-problem values are ``(m,)``, planes ``(k, N, m)``.
    """

    valid: np.ndarray  # (m,) bool
    planes: np.ndarray  # (5, N, m) x, y (normalised image coordinates), b = (X, Y) - Z (x, y), Z
    mean_xy: np.ndarray  # (2, m) weighted means of x and y
    pivot: np.ndarray  # (m,) D_lambda, made safe where ill-conditioned
    solution: np.ndarray  # (m, 3) the closed-form solution (not masked)
    intrinsics: np.ndarray  # (2, 3) or (m, 2, 3) the upper two rows of K
    omega: np.ndarray | float  # (N, m) w² / Σw², zero for unused points; 1 / N without weights
    weight_factor: np.ndarray | None  # (N, m) d omega_i / d w_i = 2 w_i / Σw²


#: Problems solved per pass (forward and backward): a chunk's planes and temporaries stay
#: in a core's cache and are reused by the next chunk. In one pass, 262,144 hands took
#: about 2.8 times as long per hand as in chunks of 2,048, with their fresh temporaries
#: (a page fault every 4 KiB) and passes over memory; one chunk is also one block for the
#: transposing copies.
CHUNK_PROBLEMS = 2048


def _batch_shape(*arrays_and_widths: tuple[np.ndarray | None, int]) -> tuple[int, ...]:
    """The broadcast batch shape of arrays with ``width`` trailing non-batch axes each."""
    shapes = {a.shape[: a.ndim - width] for a, width in arrays_and_widths if a is not None}
    return shapes.pop() if len(shapes) == 1 else np.broadcast_shapes(*shapes)


def _flat(array: np.ndarray, batch: tuple[int, ...], size: int, width: int) -> np.ndarray:
    """``array`` (batch axes, then ``width`` more) as ``(M, ...)``, broadcast to ``batch``."""
    trailing = array.shape[array.ndim - width :]
    if array.shape[: array.ndim - width] != batch:  # (broadcast_to costs microseconds)
        array = np.broadcast_to(array, (*batch, *trailing))
    return array.reshape(size, *trailing)


def _per_problem(array: np.ndarray, batch: tuple[int, ...], size: int, width: int) -> np.ndarray:
    """``array`` as one for all (as it is) or ``(M, ...)`` (see :func:`_flat`)."""
    return array if array.ndim == width else _flat(array, batch, size, width)


def _part(array: np.ndarray | None, part: slice, width: int) -> np.ndarray | None:
    """The problems ``part`` of an ``(M, ...)`` array; one for all (or None) as it is."""
    return array if array is None or array.ndim == width else array[part]


#: Problems per block of a transposing copy. The copy reads each input with a stride of
#: a whole problem; a block of 512 problems keeps the cache lines it reads in L1 until
#: each is used up (one thread, 21 points: 3D points of 2,048 problems 54 -> 36 µs).
TRANSPOSE_BLOCK = 512


def _transpose_into(out: np.ndarray, source: np.ndarray) -> np.ndarray:
    """``out`` `(k, N, m)` or `(N, m)` filled with ``source`` `(m, N, k)` or `(m, N)`, transposed."""
    size = source.shape[0]
    for start in range(0, size, TRANSPOSE_BLOCK):
        block = slice(start, start + TRANSPOSE_BLOCK)
        np.copyto(out[..., block], source[block].T)
    return out


def _transpose_planes_into(out: np.ndarray, planes: np.ndarray) -> None:
    """``out`` `(m, N, k)` filled with ``planes`` `(k, N, m)`, transposed.

    One component at a time: a whole copy would run its inner loop over the k components
    of a point (two or three), one component runs it over the N points (one thread, 21
    points, gradients of 2,048 problems: 3D points 144 -> 64 µs, 2D points 124 -> 36 µs).
    """
    for component, plane in enumerate(planes):
        np.copyto(out[..., component], plane.T)


def _pair_planes(pair: np.ndarray) -> np.ndarray:
    """Per-problem pairs ``(2,)`` or ``(m, 2)`` as ``(2, 1, 1)`` or ``(2, 1, m)``, against planes."""
    return pair[:, None, None] if pair.ndim == 1 else np.ascontiguousarray(pair.T)[:, None]


#: Sums of squared weights between these need no division by the largest weight first:
#: no square in them overflows, and one small enough to underflow is far below the
#: rounding of the sum.
_SAFE_TOTAL = {np.float32: (2.0**-60, 2.0**60), np.float64: (2.0**-900, 2.0**900)}


def closed_form(
    points3d: np.ndarray,
    points2d: np.ndarray,
    intrinsics: np.ndarray,
    weights: np.ndarray | None,
    prior: np.ndarray | None,
    damping: float,
    tolerance: float,
    for_backward: bool = False,
) -> NumPyState:
    """The closed form; ``tolerance`` is the relative pivot and depth tolerance of the dtype.

    ``for_backward``: keep what the backward needs (``NumPyState.chunks``), with the
    derivatives of the weights' normalisation.
    """
    with np.errstate(all="ignore"):  # NaN and Inf end in the validity mask
        batch = _batch_shape(
            (points2d, 2), (points3d, 2), (weights, 1), (intrinsics, 2), (prior, 1)
        )
        size = math.prod(batch)
        points2d, points3d = _flat(points2d, batch, size, 2), _flat(points3d, batch, size, 2)
        weights = None if weights is None else _flat(weights, batch, size, 1)
        k = _per_problem(intrinsics[..., :2, :], batch, size, 2)
        prior = None if prior is None else _per_problem(prior, batch, size, 1)
        translation = np.empty((size, 3), points2d.dtype)
        valid = np.empty(size, bool)
        chunks = []
        for start in range(0, size, CHUNK_PROBLEMS):
            part = slice(start, start + CHUNK_PROBLEMS)
            chunk = _chunk_closed_form(
                points3d[part], points2d[part], _part(k, part, 2), _part(weights, part, 1),
                _part(prior, part, 1), damping, tolerance, for_backward, translation[part],
            )  # fmt: skip
            valid[part] = chunk.valid
            if for_backward:
                chunks.append(chunk)
    return NumPyState(
        translation.reshape(*batch, 3), valid.reshape(batch), points2d.shape[1], chunks
    )


def _chunk_closed_form(
    points3d: np.ndarray,
    points2d: np.ndarray,
    intrinsics: np.ndarray,
    weights: np.ndarray | None,
    prior: np.ndarray | None,
    damping: float,
    tolerance: float,
    for_backward: bool,
    translation: np.ndarray,
) -> ChunkState:
    """The closed form of ``m`` problems: ``points3d`` `(m, N, 3)`, ``points2d`` `(m, N, 2)`,
    ``intrinsics`` `(2, 3)` or `(m, 2, 3)`, ``weights`` `(m, N)`, ``prior`` `(3,)` or
    `(m, 3)`; writes the masked ``translation`` `(m, 3)`.

    The weights' scale needs no floor here: all-zero weights give NaN, which the
    validity mask turns into an invalid problem (as the torch path's zeros do).
    """
    size, count = points2d.shape[:2]
    # One transposing copy of each input into the planes, then contiguous passes.
    planes = np.empty((5, count, size), points2d.dtype)
    x, y, Z = planes[0], planes[1], planes[4]
    _transpose_into(planes[:2], points2d)  # u, v
    _transpose_into(planes[2:], points3d)  # X, Y, Z
    k = intrinsics.copy() if for_backward else intrinsics  # (kept for the backward)
    skew = k[..., 0, 1]
    # x, y = ((u, v) - (cx, cy)) / (fx, fy), the skew taken out of x (two planes a call).
    planes[:2] -= _pair_planes(k[..., :, 2])
    if skew.any():  # (zero for almost every camera)
        np.divide(y, k[..., 1, 1], out=y)
        np.subtract(x, skew * y, out=x)
        np.divide(x, k[..., 0, 0], out=x)
    else:
        planes[:2] /= _pair_planes(np.diagonal(k, 0, -2, -1))
    planes[2:4] -= Z * planes[:2]  # b = (X, Y) - Z (x, y)
    factor = None
    if weights is None:
        omega: np.ndarray | float = 1.0 / count
        means = planes[:4].sum(1) * omega
    else:
        w = _transpose_into(np.empty((count, size), weights.dtype), weights)
        squared = np.square(w)
        # Unused points are zeros from here on, whatever they held.
        if not squared.all():  # (a zero weight has a zero square)
            np.copyto(planes, 0.0, where=w == 0)
        scale, normalised = 1.0, w
        total = squared.sum(0)
        low, high = _SAFE_TOTAL[weights.dtype.type]
        if not (total.size == 0 or (low < total.min() and total.max() < high)):  # (or NaN)
            # Those problems divided by their largest magnitude first: no over- or
            # underflow of w²; the others by exactly 1, so that they are unchanged.
            safe = (low < total) & (total < high)
            scale = np.where(safe, 1.0, np.abs(w).max(0))
            normalised = w / scale
            squared = normalised * normalised
            total = squared.sum(0)
        omega = np.divide(squared, total, out=squared)
        if for_backward:
            factor = normalised * (2.0 / (scale * total))
        means = np.einsum("knm,nm->km", planes[:4], omega)
    # Σ omega |δx|² and Σ omega δx·δb: ((δx, δy), (δbx, δby)) times omega (δx, δy).
    if for_backward:
        centred = planes[:4] - means[:, None]
    else:  # (nothing is kept for a backward: centre the planes in place)
        centred = planes[:4]
        centred -= means[:, None]
    centred = centred.reshape(2, 2, count, size)
    if weights is None:
        pivot, numerator = np.einsum("ijnm,jnm->im", centred, centred[0]) * omega
    else:
        pivot, numerator = np.einsum("ijnm,nm,jnm->im", centred, omega, centred[0])
    mean_x, mean_y, mean_bx, mean_by = means[0], means[1], means[2], means[3]
    rho2 = mean_x * mean_x + mean_y * mean_y
    mu = 1.0 + damping
    if prior is not None:
        prior_x, prior_y, prior_z = prior[..., 0], prior[..., 1], prior[..., 2]
    if damping > 0:
        pivot = pivot + (damping + damping / mu * rho2)
        pull_x, pull_y = mean_bx, mean_by
        if prior is not None:
            pull_x, pull_y = mean_bx + prior_x, mean_by + prior_y
        numerator = numerator + damping / mu * (mean_x * pull_x + mean_y * pull_y)
        if prior is not None:
            numerator = numerator + damping * prior_z
    spread = rho2 + 1.0
    bound = tolerance * spread * spread
    # fx, fy and K[1, 0] enter through a zero that is NaN when one of them is not
    # finite (an infinite focal length would otherwise give x = 0), as in torch.
    well_posed = pivot > bound + (k[..., 1, 0] + k[..., 0, 0] * k[..., 1, 1]) * 0.0
    pivot = np.maximum(pivot, bound)
    solution = np.empty((size, 3), points2d.dtype)
    tz = np.divide(numerator, pivot, out=solution[:, 2])
    np.subtract(mean_x * tz, mean_bx, out=solution[:, 0])
    np.subtract(mean_y * tz, mean_by, out=solution[:, 1])
    if damping > 0:
        if prior is not None:
            solution[:, :2] += damping * prior[..., :2]
        solution[:, :2] /= mu
    # In front of the camera: the root and every used point (unused ones have Z = 0).
    nearest = np.minimum(Z.min(0), 0.0) + tz
    valid = well_posed & (nearest > tolerance * tz)
    if damping > 0 and weights is not None:
        valid &= total > 0  # (not all weights zero)
    translation[...] = solution
    if not valid.all():
        translation[~valid] = 0.0 if prior is None else prior[~valid] if prior.ndim == 2 else prior
    return ChunkState(valid, planes, means[:2], pivot, solution, k, omega, factor)


def _sum_to(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``array`` summed over the dimensions it was broadcast along (torch's ``sum_to_size``)."""
    array = array.sum(tuple(range(array.ndim - len(shape))))
    axes = tuple(i for i, size in enumerate(shape) if size == 1 and array.shape[i] != 1)
    return array.sum(axes, keepdims=True) if axes else array


def backward(
    s: NumPyState,
    grad_t: np.ndarray,
    intrinsics_shape: tuple[int, ...],
    prior_shape: tuple[int, ...] | None,
    damping: float,
    needs: tuple[bool, ...],
) -> list[np.ndarray | None]:
    """Input gradients (as the torch ``_backward``): one adjoint solve, then element-wise.

    Returns the gradients of ``points3d, points2d, intrinsics, weights, prior`` (None
    where not needed) and None for ``damping``; zeros for a problem that is not valid
    (``prior`` gets the translation's gradient there). ``s`` must hold its chunks.
    """
    batch = s.valid.shape
    size = math.prod(batch)
    count = s.count
    dtype = s.translation.dtype
    grad_m = _flat(grad_t, batch, size, 1)
    # Point gradients, problems first: X, Y, Z (points3d), u, v (points2d), w (weights).
    grad3 = np.empty((size, count, 3), dtype) if needs[0] else None
    grad2 = np.empty((size, count, 2), dtype) if needs[1] else None
    grad_w = np.empty((size, count), dtype) if needs[3] else None
    grad_k = np.zeros((size, 3, 3), dtype) if needs[2] else None
    with_prior = needs[4] and prior_shape is not None
    grad_prior = np.empty((size, 3), dtype) if with_prior else None
    with np.errstate(all="ignore"):
        start = 0
        for chunk in s.chunks:  # (each knows its size: the forward's chunking holds)
            part = slice(start, start + chunk.valid.shape[0])
            _chunk_backward(
                chunk, grad_m[part], damping,
                *(None if g is None else g[part] for g in (grad3, grad2, grad_k, grad_w, grad_prior)),
            )  # fmt: skip
            start = part.stop
    outputs: list[np.ndarray | None] = [None] * 6
    if grad3 is not None:
        outputs[0] = grad3.reshape(*batch, count, 3)
    if grad2 is not None:
        outputs[1] = grad2.reshape(*batch, count, 2)
    if grad_k is not None:
        outputs[2] = _sum_to(grad_k.reshape(*batch, 3, 3), intrinsics_shape)
    if grad_w is not None:
        outputs[3] = grad_w.reshape(*batch, count)
    if grad_prior is not None:
        outputs[4] = _sum_to(grad_prior.reshape(*batch, 3), prior_shape)
    return outputs


def _chunk_backward(
    s: ChunkState,
    grad_m: np.ndarray,
    damping: float,
    grad3: np.ndarray | None,
    grad2: np.ndarray | None,
    grad_k: np.ndarray | None,
    grad_w: np.ndarray | None,
    grad_prior: np.ndarray | None,
) -> None:
    """One chunk's input gradients, written into the given `(m, ...)` slices (None: not needed).

    ``grad_k`` must hold zeros.
    """
    count, size = s.planes.shape[1:]
    valid = s.valid
    g = np.where(valid, grad_m.T, 0.0)
    gx, gy, gz = g
    mu = 1.0 + damping
    mean_x, mean_y = s.mean_xy
    # Adjoint solve with the normalised normal matrix: l = (M/S)^-1 g.
    lz = ((mean_x * gx + mean_y * gy) / mu + gz) / s.pivot
    lx, ly = (gx + mean_x * lz) / mu, (gy + mean_y * lz) / mu
    xy, b, Z = s.planes[:2], s.planes[2:4], s.planes[4]
    solution = s.solution.T  # (3, m)
    tz = solution[2]
    # Two planes per call: r = B - A t = b + t_xy - (x, y) t_z and q = -A l = l_xy - (x, y) l_z.
    r = np.multiply(xy, tz, out=np.empty_like(xy))
    np.subtract(b, r, out=r)
    r += solution[:2, None]
    q = np.multiply(xy, lz, out=np.empty_like(xy))
    np.subtract(np.stack((lx, ly))[:, None], q, out=q)
    # Point gradients, plane-major: X, Y, Z (points3d), u, v (points2d), w (weights).
    grads = np.empty((6, count, size), xy.dtype)
    minus_grad_xy = np.multiply(q, s.omega, out=grads[:2])
    np.einsum("knm,knm->nm", xy, minus_grad_xy, out=grads[2])
    # (dL/du, dL/dv) = (omega l_z r + (Z + t_z) (-dL/dX, -dL/dY)) / (fx, fy), skew aside.
    grad_uv = np.multiply(r, s.omega * lz, out=grads[3:5])
    grad_uv += (Z + tz) * minus_grad_xy
    k = s.intrinsics
    skew = k[..., 0, 1]
    if skew.any():
        grad_u, grad_v = grad_uv
        grad_u /= k[..., 0, 0]
        grad_v -= skew * grad_u
        grad_v /= k[..., 1, 1]
    else:
        grad_uv /= _pair_planes(np.diagonal(k, 0, -2, -1))
    np.negative(grads[:2], out=grads[:2])
    if grad_w is not None:
        # omega = w² / Σw²: dL/dw_k = 2 w_k / Σw² (g_k - Σ_i omega_i g_i), g = (A l)·r.
        minus_grad_omega = np.einsum("knm,knm->nm", q, r)
        minus_mean = np.einsum("nm,nm->m", s.omega, minus_grad_omega)
        np.subtract(minus_mean, minus_grad_omega, out=minus_grad_omega)
        np.multiply(s.weight_factor, minus_grad_omega, out=grads[5])
    if not valid.all():
        grads[..., ~valid] = 0.0  # (touches the invalid problems only)
    if grad3 is not None:
        _transpose_planes_into(grad3, grads[:3])
    if grad2 is not None:
        _transpose_planes_into(grad2, grads[3:5])
    if grad_w is not None:
        np.copyto(grad_w, grads[5].T)
    if grad_k is not None:
        # dL/dK[:2] = -Σ_i (dL/du_i, dL/dv_i) (x_i, y_i, 1) with K[1, 0] unused.
        grad_uv = grads[3:5]
        top = np.einsum("inm,jnm->ijm", grad_uv, s.planes[:2])
        top = np.where(valid, top, 0.0)  # (x, y of an invalid problem may be NaN)
        grad_k[:, :2, :2] = top.transpose(2, 0, 1)
        grad_k[:, :2, 2] = grad_uv.sum(1).T
        grad_k[:, 1, 0] = 0.0
        np.negative(grad_k, out=grad_k)
    if grad_prior is not None:
        if damping > 0:
            grad_prior[...] = np.where(valid, damping * np.stack((lx, ly, lz)), grad_m.T).T
        else:
            grad_prior[...] = np.where(valid, 0.0, grad_m.T).T
