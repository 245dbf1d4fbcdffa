"""The weighted-DLT solve and its backward for one problem, in Python floats.

A single problem (one hand in one frame) costs the NumPy twin about forty array
operations of about a microsecond each, almost none of it arithmetic. In Python floats
the same closed form is one loop over the N points and a few scalar formulas, in less
than half the time (``benchmarks/README.md``); the backward is one more loop.
:func:`~dgpgeom.solve_translation` runs this twin for CPU calls holding exactly one
problem of at most :data:`~dgpgeom.solvers.translation.SCALAR_PATH_MAX_POINTS` points,
under the same conditions as the NumPy path. The validity tests and the gradients are
those of :mod:`dgpgeom.solvers.translation` (see its notes), and so is the closed form,
with one difference in how its sums are formed: instead of centring the image
coordinates on their weighted mean (a second pass), the loop takes them relative to one
used point and recovers the centred moments from the same sums, which cancel only down
to the hand's own extent (as the centred ones do). The arithmetic is float64 whatever
the input dtype (outputs are cast back), and the sums run in point order.

Python raises on a division by zero where arrays give Inf or NaN, so every divisor is
tested first: a problem that would divide by zero is not valid, as it is on the other
paths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from operator import mul

__all__ = ["ScalarState", "backward", "closed_form"]


@dataclass
class ScalarState:
    """One problem's solution and what its backward needs (lists run over the N points)."""

    translation: list[float]  # the solution where valid, else the prior (or zeros)
    valid: bool
    # Only where valid (else empty or zero): the backward's inputs. Points of zero weight
    # hold u = cx, v = cy and X = Y = Z = 0 (so x = y = b = 0), whatever they held.
    u: list[float]  # pixels
    v: list[float]
    X: list[float]  # metres, relative to the root
    Y: list[float]
    Z: list[float]
    omega: list[float]  # w² / Σw², zero for unused points
    weight_factor: list[float]  # d omega_i / d w_i = 2 w_i / Σw²
    mean_x: float = 0.0
    mean_y: float = 0.0
    pivot: float = 0.0
    solution: tuple[float, float, float] = (0.0, 0.0, 0.0)
    intrinsics: tuple[float, ...] = ()  # fx, skew, cx, K[1, 0], fy, cy


#: Sums of squared weights between these need no division by the largest weight first:
#: no square in them overflows, and one small enough to underflow is below the float64
#: rounding of the sum. (Every float32 weight squares into this range in float64.)
_SAFE_TOTAL = (2.0**-900, 2.0**900)


def _invalid(prior: list[float] | None) -> ScalarState:
    """The state of a problem that is not valid: the prior (or zeros) as its answer."""
    return ScalarState(list(prior) if prior else [0.0, 0.0, 0.0], False, [], [], [], [], [], [], [])


def closed_form(
    points3d: list[float],
    points2d: list[float],
    intrinsics: list[float],
    weights: list[float] | None,
    prior: list[float] | None,
    damping: float,
    tolerance: float,
    weight_factor: bool = False,
) -> ScalarState:
    """The closed form of one problem from flat lists of its values.

    Args:
        points3d: ``3 N`` values, ``X, Y, Z`` of each point (metres, root-relative).
        points2d: ``2 N`` values, ``u, v`` of each point (pixels).
        intrinsics: the 9 entries of ``K``, row by row.
        weights: ``N`` values, or None (all ones).
        prior: 3 values (metres), or None (zeros).
        damping: the relative Tikhonov damping toward ``prior`` (>= 0).
        tolerance: the relative pivot and depth tolerance of the input dtype.
        weight_factor: also compute ``d omega_i / d w_i`` (for the backward).
    """
    fx, skew, cx, k10, fy, cy = intrinsics[:6]
    if not (fx != 0.0 and fy != 0.0 and all(map(math.isfinite, intrinsics[:6]))):
        return _invalid(prior)
    count = len(points2d) // 2
    factor: list[float] = []
    if weights is None:
        omega = [1.0 / count] * count
    else:
        scale, normalised = 1.0, weights
        total = sum(map(mul, weights, weights))
        if not _SAFE_TOTAL[0] < total < _SAFE_TOTAL[1]:  # (also NaN): divide by the largest first
            scale = max(map(abs, weights))
            if not scale > 0.0 or scale == math.inf:  # all zero, an Inf, or a NaN first
                return _invalid(prior)
            normalised = [w / scale for w in weights]
            total = sum(map(mul, normalised, normalised))
        omega = [n * n / total for n in normalised]
        if weight_factor:
            factor = [n * (2.0 / (scale * total)) for n in normalised]
    u, v = points2d[0::2], points2d[1::2]
    X, Y, Z = points3d[0::3], points3d[1::3], points3d[2::3]
    if weights is not None and 0.0 in weights:  # those points are gone, whatever they held
        kept = [w != 0.0 for w in weights]
        u, v, X, Y, Z = (
            [value if keep else gone for keep, value in zip(kept, plane, strict=True)]
            for plane, gone in ((u, cx), (v, cy), (X, 0.0), (Y, 0.0), (Z, 0.0))
        )
        first = kept.index(True)  # (all zero returned above)
    else:
        first = 0
    # One pass over the points. The image coordinates are taken relative to one used
    # point (x_r, y_r): their second moments then cancel only to the hand's own extent,
    # as the centred form's do, and the weighted means follow from the same sums.
    y_r = (v[first] - cy) / fy
    x_r = (u[first] - cx - skew * y_r) / fx
    sum_dx = sum_dy = sum_bx = sum_by = sum_dd = sum_db = 0.0
    for o, ui, vi, Xi, Yi, Zi in zip(omega, u, v, X, Y, Z, strict=True):
        yi = (vi - cy) / fy
        xi = (ui - cx - skew * yi) / fx
        bx, by = Xi - Zi * xi, Yi - Zi * yi  # b = (X, Y) - Z (x, y)
        odx, ody = o * (xi - x_r), o * (yi - y_r)
        sum_dx += odx
        sum_dy += ody
        sum_bx += o * bx
        sum_by += o * by
        sum_dd += odx * (xi - x_r) + ody * (yi - y_r)
        sum_db += odx * bx + ody * by
    mean_x, mean_y, mean_bx, mean_by = x_r + sum_dx, y_r + sum_dy, sum_bx, sum_by
    # Σ omega |x - mean|² and Σ omega (x - mean)·(b - mean_b), as Σ omega = 1.
    pivot = sum_dd - sum_dx * sum_dx - sum_dy * sum_dy
    numerator = sum_db - sum_dx * sum_bx - sum_dy * sum_by
    nearest = min(0.0, *Z)  # at most 0 (a NaN depth shows in b, hence in tz)
    rho2 = mean_x * mean_x + mean_y * mean_y
    mu = 1.0 + damping
    px, py, pz = prior if prior else (0.0, 0.0, 0.0)
    if damping > 0:
        pivot += damping + damping / mu * rho2
        numerator += damping / mu * (mean_x * (mean_bx + px) + mean_y * (mean_by + py))
        numerator += damping * pz
    spread = rho2 + 1.0
    if not pivot > tolerance * spread * spread:  # (False for NaN)
        return _invalid(prior)
    tz = numerator / pivot
    tx, ty = mean_x * tz - mean_bx, mean_y * tz - mean_by
    if damping > 0:
        tx, ty = (tx + damping * px) / mu, (ty + damping * py) / mu
    if not nearest + tz > tolerance * tz:  # (False for NaN and Inf)
        return _invalid(prior)
    return ScalarState(
        [tx, ty, tz], True, u, v, X, Y, Z, omega, factor,
        mean_x, mean_y, pivot, (tx, ty, tz), (fx, skew, cx, k10, fy, cy),
    )  # fmt: skip


def backward(
    s: ScalarState, grad_t: list[float], damping: float, needs: tuple[bool, ...]
) -> list[list[float] | None]:
    """Input gradients of one valid problem as flat lists (as the torch ``_backward``).

    Returns the gradients of ``points3d`` (``3 N``), ``points2d`` (``2 N``), ``K`` (9),
    ``weights`` (``N``) and ``prior`` (3), None where not needed. (Those of a problem
    that is not valid are zeros, and ``prior`` gets the translation's gradient: the
    caller's business.)
    """
    outputs: list[list[float] | None] = [None] * 5
    gx, gy, gz = grad_t
    mu = 1.0 + damping
    mean_x, mean_y = s.mean_x, s.mean_y
    # Adjoint solve with the normalised normal matrix: l = (M/S)^-1 g.
    lz = ((mean_x * gx + mean_y * gy) / mu + gz) / s.pivot
    lx, ly = (gx + mean_x * lz) / mu, (gy + mean_y * lz) / mu
    tx, ty, tz = s.solution
    fx, skew, cx, _, fy, cy = s.intrinsics
    grad3: list[float] = []
    grad2: list[float] = []
    grad_w: list[float] = []
    minus_mean = 0.0
    weighted = needs[3] and bool(s.weight_factor)
    sum_ux = sum_uy = sum_u = sum_vy = sum_v = 0.0
    for o, ui, vi, Xi, Yi, zi in zip(s.omega, s.u, s.v, s.X, s.Y, s.Z, strict=True):
        yi = (vi - cy) / fy
        xi = (ui - cx - skew * yi) / fx
        rx, ry = Xi - zi * xi + tx - xi * tz, Yi - zi * yi + ty - yi * tz  # r = B - A t
        qx, qy = lx - xi * lz, ly - yi * lz  # q = -A l
        mgx, mgy = o * qx, o * qy
        depth, olz = zi + tz, o * lz
        gu = (olz * rx + depth * mgx) / fx
        gv = (olz * ry + depth * mgy - skew * gu) / fy
        grad3 += (-mgx, -mgy, xi * mgx + yi * mgy)
        grad2 += (gu, gv)
        sum_ux += gu * xi
        sum_uy += gu * yi
        sum_u += gu
        sum_vy += gv * yi
        sum_v += gv
        if weighted:
            minus_grad_omega = qx * rx + qy * ry
            grad_w.append(minus_grad_omega)
            minus_mean += o * minus_grad_omega
    outputs[0] = grad3 if needs[0] else None
    outputs[1] = grad2 if needs[1] else None
    if needs[2]:
        # dL/dK[:2] = -Σ_i (dL/du_i, dL/dv_i) (x_i, y_i, 1) with K[1, 0] unused.
        outputs[2] = [-sum_ux, -sum_uy, -sum_u, 0.0, -sum_vy, -sum_v, 0.0, 0.0, 0.0]
    if weighted:
        # omega = w² / Σw²: dL/dw_k = 2 w_k / Σw² (g_k - Σ_i omega_i g_i), g = (A l)·r.
        outputs[3] = [f * (minus_mean - g) for f, g in zip(s.weight_factor, grad_w, strict=True)]
    if needs[4]:
        outputs[4] = [damping * lx, damping * ly, damping * lz] if damping > 0 else [0.0] * 3
    return outputs
