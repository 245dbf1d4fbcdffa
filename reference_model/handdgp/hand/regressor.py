"""Fitting a sparse, non-negative keypoint regressor from posed meshes (export time).

Each keypoint is regressed as a convex combination of nearby vertices, as MANO's
``J_regressor``: non-negative least squares over the ``num_candidates`` vertices
closest to the keypoint in the rest pose, with the weights summing to one and a small
ridge term. Why this form rather than ridge-regularised least squares over all
vertices:

- rows summing to one make the regressor commute with translation, and linearity with
  rotation, so it can be applied to camera-space meshes;
- non-negative weights keep the keypoint inside the local hull of the surface and
  their absolute sum is 1, so no mesh error is amplified. Unconstrained (ridge) least
  squares reaches a lower error on exact meshes, but with large cancelling weights whose
  absolute sum is several times 1, which amplify the smooth, correlated errors of a
  network's predicted mesh;
- the ridge term (``ridge``, relative to the data scale) spreads each row over a few
  dozen vertices instead of NNLS's handful, which averages out independent per-vertex
  noise; the rows stay sparse and local.

Needs scipy (``pip install handdgp[export]``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["RegressorError", "fit_keypoint_regressor", "regressor_error"]


class RegressorError(NamedTuple):
    """Keypoint regression error on a set of posed hands, millimetres.

    Attributes:
        mean: mean Euclidean error over hands and keypoints.
        max: maximum error.
        per_keypoint_mean: `(K,)` mean error of each keypoint.
    """

    mean: float
    max: float
    per_keypoint_mean: np.ndarray


def fit_keypoint_regressor(
    vertices: np.ndarray,
    keypoints: np.ndarray,
    rest_vertices: np.ndarray,
    rest_keypoints: np.ndarray,
    num_candidates: int = 64,
    fixed_rows: dict[int, int] | None = None,
    ridge: float = 1e-3,
) -> np.ndarray:
    """Fit a `(K, V)` non-negative, rows-sum-to-one keypoint regressor.

    Args:
        vertices: `(N, V, 3)` posed meshes, metres.
        keypoints: `(N, K, 3)` their keypoints, metres.
        rest_vertices: `(V, 3)` rest mesh, to choose each keypoint's candidates.
        rest_keypoints: `(K, 3)` rest keypoints.
        num_candidates: vertices considered per keypoint.
        fixed_rows: ``{keypoint: vertex}`` rows that are one-hot (e.g. fingertips).
        ridge: weight of the squared-norm penalty, relative to the mean squared
            vertex coordinate.

    Returns:
        `(K, V)` float64 regressor.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> v = rng.normal(size=(50, 10, 3))
        >>> k = (0.25 * v[:, 0] + 0.75 * v[:, 1])[:, None]  # a keypoint on an edge
        >>> reg = fit_keypoint_regressor(v, k, v[0], k[0], num_candidates=10, ridge=0.0)
        >>> reg[0, :2].round(4).tolist(), round(float(reg.sum()), 6)
        ([0.25, 0.75], 1.0)
    """
    from scipy.optimize import nnls

    num_vertices = vertices.shape[1]
    num_keypoints = keypoints.shape[1]
    fixed_rows = fixed_rows or {}
    regressor = np.zeros((num_keypoints, num_vertices))
    for k in range(num_keypoints):
        if k in fixed_rows:
            regressor[k, fixed_rows[k]] = 1.0
            continue
        dist = np.linalg.norm(rest_vertices - rest_keypoints[k], axis=-1)
        candidates = np.argsort(dist)[: min(num_candidates, num_vertices)]
        a = vertices[:, candidates, :].transpose(0, 2, 1).reshape(-1, len(candidates))
        b = keypoints[:, k, :].reshape(-1)
        scale = np.mean(np.sum(a * a, axis=0))
        # sum-to-one as a heavily weighted extra equation (then exact renormalisation),
        # and the ridge term as sqrt(ridge) I rows
        penalty = np.sqrt(1e3 * scale)
        a = np.vstack(
            [a, np.full((1, len(candidates)), penalty), np.sqrt(ridge * scale) * np.eye(len(candidates))]
        )
        b = np.concatenate([b, [penalty], np.zeros(len(candidates))])
        weights, _ = nnls(a, b, maxiter=100 * len(candidates))
        regressor[k, candidates] = weights / weights.sum()
    return regressor


def regressor_error(regressor: np.ndarray, vertices: np.ndarray, keypoints: np.ndarray) -> RegressorError:
    """Error of a regressor on posed hands.

    Args:
        regressor: `(K, V)`.
        vertices: `(N, V, 3)` metres.
        keypoints: `(N, K, 3)` metres.

    Returns:
        :class:`RegressorError` in millimetres.

    Example:
        >>> v = np.zeros((2, 3, 3)); v[:, 1, 0] = 0.01
        >>> regressor_error(np.array([[0.0, 1.0, 0.0]]), v, np.zeros((2, 1, 3))).max
        10.0
    """
    predicted = np.einsum("kv,nvc->nkc", regressor, vertices)
    err = np.linalg.norm(predicted - keypoints, axis=-1) * 1000.0
    return RegressorError(float(err.mean()), float(err.max()), err.mean(axis=0))
