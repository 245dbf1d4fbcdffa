"""Closed-form symmetric 3×3 solves shared by the multi-view and refinement solvers.

The inverse of a symmetric 3×3 matrix is its adjugate over its determinant; the
adjugate's rows are cross products of the matrix's rows (row ``k`` is
``row[k+1] × row[k+2]``), so the whole thing is a handful of element-wise
operations: no LAPACK call, no host synchronisation, and it runs on ``meta``
tensors, under :func:`torch.func.vmap` and ``torch.compile(fullgraph=True)``.

Cramer's rule is not backward stable for badly conditioned matrices; callers that
need full accuracy there follow the first solve with a refinement step whose
residual they evaluate in a better-conditioned (factored) form.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Sym3(NamedTuple):
    """A factorised symmetric 3×3 matrix: ``inverse = adjugate / det``."""

    adjugate: Tensor  # (..., 3, 3), symmetric
    det: Tensor  # (...)
    safe_det: Tensor  # (...), ``det`` where ``valid`` else 1
    valid: Tensor  # (...) bool: relative conditioning above the bound


def adjugate(matrix: Tensor) -> tuple[Tensor, Tensor]:
    """Adjugate `(..., 3, 3)` and determinant `(...)` of symmetric 3×3 matrices."""
    adj = torch.linalg.cross(matrix.roll(-1, -2), matrix.roll(-2, -2), dim=-1)
    det = (matrix[..., 0, :] * adj[..., 0, :]).sum(-1)
    return adj, det


def factorize(matrix: Tensor, tolerance: float, *, valid: Tensor | None = None) -> Sym3:
    """Adjugate and determinant, with a validity mask from a relative pivot bound.

    The matrix counts as invertible where ``det > tolerance · e₂ · trace``, with
    ``e₂ = trace(adjugate)`` the sum of its principal 2×2 minors. For a positive
    semi-definite matrix with eigenvalues ``λ₁ ≥ λ₂ ≥ λ₃``, ``det / e₂`` lies in
    ``[λ₃ / 3, λ₃]`` and ``trace`` in ``[λ₁, 3 λ₁]``, so the ratio brackets the
    inverse condition number ``λ₃ / λ₁`` within a factor of 9, and does not depend
    on the scale of the matrix.

    Args:
        matrix: `(..., 3, 3)` symmetric positive semi-definite.
        tolerance: the bound on ``det / (e₂ · trace)``.
        valid: `(...)` bool, an extra condition to combine with the bound.
    """
    adj, det = adjugate(matrix)
    e2 = adj.diagonal(dim1=-2, dim2=-1).sum(-1)
    trace = matrix.diagonal(dim1=-2, dim2=-1).sum(-1)
    ok = det > tolerance * e2 * trace
    if valid is not None:
        ok = ok & valid
    safe_det = torch.where(ok, det, torch.ones_like(det))
    return Sym3(adj, det, safe_det, ok)


def solve(system: Sym3, rhs: Tensor) -> Tensor:
    """``matrix⁻¹ rhs`` for `(..., 3)` right-hand sides; finite (meaningless) where invalid."""
    return (system.adjugate @ rhs.unsqueeze(-1)).squeeze(-1) / system.safe_det.unsqueeze(-1)
