"""The weighted-DLT solve and its backward in NumPy, for CPU calls.

At a small batch the solver's cost is the per-operation overhead, not the arithmetic,
and a NumPy call on a few hundred values costs less than an ATen dispatch. At a large
one the sums over the N points of each problem are contractions (``einsum``,
``matmul``), and minima and maxima run over a transposed copy: reductions along a
short last axis are slow in NumPy and torch alike. For CPU tensors outside function
transforms, compilation, tracing and dispatch modes (up to a size that depends on
torch's thread count: NumPy runs on one core),
:func:`~dgpgeom.solve_translation` runs this twin of its torch ``_closed_form`` and
``_backward`` on NumPy views of the inputs: the same centred closed form, the same
implicit-function backward and the same validity tests (see the notes of
:mod:`dgpgeom.solvers.translation`). The solver's test suite runs on each path.

The layout is plane-major, as there: a per-point quantity with ``k`` components is
``(k, ..., N)``, so that every sum runs along the contiguous last axis (NumPy's
reductions across a short inner axis are slow). ``points3d`` `(..., N, 3)`,
``points2d`` `(..., N, 2)` and ``weights`` `(..., N)` have the batch shape;
``intrinsics`` `(..., 3, 3)` and ``prior`` `(..., 3)` broadcast against it; ``weights``
and ``prior`` may be None.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["NumPyState", "backward", "closed_form"]


class NumPyState(NamedTuple):
    """What the backward needs (none of these arrays aliases an input)."""

    translation: np.ndarray  # (..., 3) the solution where valid, else the prior (or zeros)
    valid: np.ndarray  # (...) bool
    planes: np.ndarray  # (5, ..., N) x, y (normalised image coordinates), b = (X, Y) - Z (x, y), Z
    mean_xy: np.ndarray  # (2, ...) weighted means of x and y
    pivot: np.ndarray  # (...) D_lambda, made safe where ill-conditioned
    solution: np.ndarray  # (..., 3) the closed-form solution (not masked)
    intrinsics: np.ndarray  # (..., 2, 3) the upper two rows of K
    omega: np.ndarray | float  # (..., N) w² / Σw², zero for unused points; 1 / N without weights
    weight_factor: np.ndarray | None  # (..., N) d omega_i / d w_i = 2 w_i / Σw²


def _last_first(array: np.ndarray, count: int = 1) -> np.ndarray:
    """``array`` with its first ``count`` axes moved to the end (a view; ``np.moveaxis`` costs µs)."""
    return array.transpose((*range(count, array.ndim), *range(count)))


#: Up to this many elements a row-by-row reduction costs less than the transposed copy
#: (measured crossing between 672 and 1,344 float32 values in rows of 21).
_ROWWISE_REDUCTION_MAX_SIZE = 1024


def _reduce_last(ufunc: np.ufunc, array: np.ndarray) -> np.ndarray:
    """``ufunc.reduce(array, axis=-1)``, fast for many short rows.

    NumPy reduces a contiguous last axis of a few points row by row; over the leading
    axis of the transposed copy it runs whole rows of problems at once (the weights'
    largest magnitude and the nearest depth took 2.4× and 3.4× less time at 4,096
    hands of 21 points).
    """
    if array.size <= _ROWWISE_REDUCTION_MAX_SIZE:
        return ufunc.reduce(array, axis=-1)
    columns = np.ascontiguousarray(array.reshape(-1, array.shape[-1]).T)
    return ufunc.reduce(columns, axis=0).reshape(array.shape[:-1])


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
    weight_factor: bool = False,
) -> NumPyState:
    """The closed form; ``tolerance`` is the relative pivot and depth tolerance of the dtype.

    The weights' scale needs no floor here: all-zero weights give NaN, which the
    validity mask turns into an invalid problem (as the torch path's zeros do).
    """
    with np.errstate(all="ignore"):  # NaN and Inf end in the validity mask
        shape = points2d.shape[:-1]
        planes = np.empty((5, *shape), points2d.dtype)
        x, y, bx, by, Z = planes
        k = intrinsics[..., :2, :].copy()
        fx, skew, cx = k[..., 0, 0, None], k[..., 0, 1, None], k[..., 0, 2, None]
        fy, cy = k[..., 1, 1, None], k[..., 1, 2, None]
        np.subtract(points2d[..., 1], cy, out=y)
        np.divide(y, fy, out=y)
        np.subtract(points2d[..., 0], cx, out=x)
        if skew.any():  # (zero for almost every camera: two passes saved)
            np.subtract(x, skew * y, out=x)
        np.divide(x, fx, out=x)
        np.copyto(Z, points3d[..., 2])
        np.subtract(points3d[..., 0], Z * x, out=bx)
        np.subtract(points3d[..., 1], Z * y, out=by)
        factor = squared = None
        if weights is None:
            omega: np.ndarray | float = 1.0 / shape[-1]
            means = (planes[:4] @ np.full(shape[-1], omega, planes.dtype))[..., None]
        else:
            # Unused points are zeros from here on, whatever they held.
            unused = weights == 0
            if unused.any():
                np.copyto(planes, 0.0, where=unused)
            ones = np.ones(shape[-1], weights.dtype)
            scale, normalised = 1.0, weights
            squared = weights * weights
            total = (squared @ ones)[..., None]
            low, high = _SAFE_TOTAL[weights.dtype.type]
            if not (total.size == 0 or (low < total.min() and total.max() < high)):  # (or NaN)
                # Those problems divided by their largest magnitude first: no over- or
                # underflow of w²; the others by exactly 1, so that they are unchanged.
                safe = (low < total) & (total < high)
                scale = np.where(safe, 1.0, _reduce_last(np.maximum, np.abs(weights))[..., None])
                normalised = weights / scale
                squared = normalised * normalised
                total = (squared @ ones)[..., None]
            omega = squared / total
            if weight_factor:
                factor = normalised * (2.0 / (scale * total))
            means = np.einsum("k...n,...n->k...", planes[:4], omega)[..., None]
        centred = planes[:4] - means
        # Σ omega |δx|² and Σ omega δx·δb: ((δx, δy), (δbx, δby)) times omega (δx, δy).
        pivot, numerator = np.einsum(
            "ij...n,j...n->i...", centred.reshape(2, 2, *shape), centred[:2] * omega
        )
        mean_x, mean_y, mean_bx, mean_by = means[..., 0]
        rho2 = mean_x * mean_x + mean_y * mean_y
        mu = 1.0 + damping
        if damping > 0:
            pivot = pivot + (damping + damping / mu * rho2)
            pull_x, pull_y = mean_bx, mean_by
            if prior is not None:
                pull_x, pull_y = mean_bx + prior[..., 0], mean_by + prior[..., 1]
            numerator = numerator + damping / mu * (mean_x * pull_x + mean_y * pull_y)
            if prior is not None:
                numerator = numerator + damping * prior[..., 2]
        spread = rho2 + 1.0
        bound = tolerance * spread * spread
        # The upper two rows of K must be finite (an infinite focal length gives x = 0).
        finite_k = _reduce_last(np.logical_and, np.isfinite(k).reshape(*k.shape[:-2], 6))
        well_posed = (pivot > bound) & finite_k
        pivot = np.maximum(pivot, bound)
        solution = np.empty((*shape[:-1], 3), points2d.dtype)
        tz = np.divide(numerator, pivot, out=solution[..., 2])
        np.subtract(mean_x * tz, mean_bx, out=solution[..., 0])
        np.subtract(mean_y * tz, mean_by, out=solution[..., 1])
        if damping > 0:
            if prior is not None:
                solution[..., :2] += damping * prior[..., :2]
            solution[..., :2] /= mu
        # In front of the camera: the root and every used point (unused ones have Z = 0).
        nearest = np.minimum(_reduce_last(np.minimum, Z), 0.0) + tz
        valid = np.asarray(well_posed & (nearest > tolerance * tz))
        if damping > 0 and squared is not None:
            valid &= total[..., 0] > 0  # (not all weights zero)
        translation = np.where(valid[..., None], solution, 0.0 if prior is None else prior)
    return NumPyState(
        translation, valid, planes, means[:2, ..., 0], pivot, solution, k, omega, factor
    )


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
    (``prior`` gets the translation's gradient there).
    """
    with np.errstate(all="ignore"):
        valid = s.valid
        g = np.where(valid[..., None], grad_t, 0.0)
        gx, gy, gz = g[..., 0], g[..., 1], g[..., 2]
        mu = 1.0 + damping
        mean_x, mean_y = s.mean_xy
        # Adjoint solve with the normalised normal matrix: l = (M/S)^-1 g.
        lz = ((mean_x * gx + mean_y * gy) / mu + gz) / s.pivot
        lx, ly = (gx + mean_x * lz) / mu, (gy + mean_y * lz) / mu
        x, y, bx, by, Z = s.planes
        tx, ty, tz = (s.solution[..., i, None] for i in range(3))
        lz_n = lz[..., None]
        rx, ry = bx + tx - x * tz, by + ty - y * tz  # r = B - A t
        qx, qy = lx[..., None] - x * lz_n, ly[..., None] - y * lz_n  # q = -A l
        omega = s.omega
        # Point gradients, plane-major: X, Y, Z (points3d), u, v (points2d), w (weights).
        grads = np.empty((6, *x.shape), x.dtype)
        minus_grad_x = np.multiply(omega, qx, out=grads[0])
        minus_grad_y = np.multiply(omega, qy, out=grads[1])
        np.add(x * minus_grad_x, y * minus_grad_y, out=grads[2])
        omega_lz, depth = omega * lz_n, Z + tz
        k = s.intrinsics
        fx, skew, fy = k[..., 0, 0, None], k[..., 0, 1, None], k[..., 1, 1, None]
        grad_u = np.divide(omega_lz * rx + depth * minus_grad_x, fx, out=grads[3])
        grad_v = np.add(omega_lz * ry, depth * minus_grad_y, out=grads[4])
        if skew.any():
            grad_v -= skew * grad_u
        grad_v /= fy
        np.negative(grads[:2], out=grads[:2])
        if needs[3]:
            # omega = w² / Σw²: dL/dw_k = 2 w_k / Σw² (g_k - Σ_i omega_i g_i), g = (A l)·r.
            minus_grad_omega = qx * rx + qy * ry
            minus_mean = np.einsum("...n,...n->...", omega, minus_grad_omega)[..., None]
            np.multiply(s.weight_factor, minus_mean - minus_grad_omega, out=grads[5])
        if not valid.all():
            grads[:, ~valid] = 0.0  # (touches the invalid problems only)
        outputs: list[np.ndarray | None] = [None] * 6
        if needs[0]:
            outputs[0] = _last_first(grads[:3])
        if needs[1]:
            outputs[1] = _last_first(grads[3:5])
        if needs[3]:
            outputs[3] = grads[5]
        if needs[2]:
            # dL/dK[:2] = -Σ_i (dL/du_i, dL/dv_i) (x_i, y_i, 1) with K[1, 0] unused.
            grad_uv = grads[3:5]
            top = np.einsum("i...n,j...n->ij...", grad_uv, s.planes[:2])
            top = np.where(valid, top, 0.0)  # (x, y of an invalid problem may be NaN)
            grad_k = np.zeros((*x.shape[:-1], 3, 3), x.dtype)
            grad_k[..., :2, :2] = _last_first(top, 2)
            grad_k[..., :2, 2] = _last_first(grad_uv @ np.ones(x.shape[-1], x.dtype))
            grad_k[..., 1, 0] = 0.0
            np.negative(grad_k, out=grad_k)
            outputs[2] = _sum_to(grad_k, intrinsics_shape)
        if needs[4] and prior_shape is not None:
            if damping > 0:
                adjoint = np.stack((lx, ly, lz), -1)
                grad_prior = np.where(valid[..., None], damping * adjoint, grad_t)
            else:
                grad_prior = np.where(valid[..., None], 0.0, grad_t)
            outputs[4] = _sum_to(grad_prior, prior_shape)
    return outputs
