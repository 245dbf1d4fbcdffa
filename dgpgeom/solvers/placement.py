"""Placing a root-relative mesh in camera space: the whole DGP step of HandDGP."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from dgpgeom.solvers.translation import solve_translation
from dgpgeom.validation import ShapeChecker, ShapeError, broadcast_batch_shapes

__all__ = ["MeshPlacement", "position_mesh", "regress_keypoints"]


class MeshPlacement(NamedTuple):
    """Result of :func:`position_mesh`.

    Attributes:
        vertices_cam: `(..., V, 3)` metres, camera frame.
        keypoints_cam: `(..., N, 3)` metres, camera frame.
        translation: `(..., 3)` metres, what was added to the root-relative inputs.
        valid: `(...)` bool, see :class:`~dgpgeom.solvers.translation.TranslationSolution`.
    """

    vertices_cam: Tensor
    keypoints_cam: Tensor
    translation: Tensor
    valid: Tensor


def regress_keypoints(vertices: Tensor, joint_regressor: Tensor) -> Tensor:
    """Keypoints as fixed linear combinations of mesh vertices (HandDGP Eq. 1).

    Args:
        vertices: `(..., V, 3)` metres.
        joint_regressor: `(N, V)`, dense or sparse COO/CSR. A dense regressor also
            works under ``torch.func.vmap`` and ``torch.compile``. Vertices that no
            keypoint uses (all-zero columns) are never read, with either layout.

    Returns:
        `(..., N, 3)` keypoints, same units and frame as ``vertices``.

    Example:
        >>> import torch
        >>> regressor = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
        >>> regress_keypoints(torch.eye(3), regressor)
        tensor([[0.5000, 0.5000, 0.0000],
                [0.0000, 0.0000, 1.0000]])
    """
    check = ShapeChecker()
    batch = check(vertices, "vertices", "... V 3")
    if not isinstance(joint_regressor, Tensor):
        raise TypeError(
            f"joint_regressor: expected a torch.Tensor, got {type(joint_regressor).__name__}"
        )
    if joint_regressor.dim() != 2:
        raise ShapeError(
            f"joint_regressor: expected shape (N, V), got {tuple(joint_regressor.shape)}"
        )
    if joint_regressor.shape[1] != check.sizes["V"]:
        raise ShapeError(
            f"joint_regressor: expected shape (N, V={check.sizes['V']}), "
            f"got {tuple(joint_regressor.shape)}"
        )
    if not joint_regressor.dtype.is_floating_point:
        raise ShapeError(
            f"joint_regressor: expected a real floating dtype, got {joint_regressor.dtype}"
        )
    if joint_regressor.device != vertices.device:
        raise ShapeError(
            f"joint_regressor: expected the vertices' device {vertices.device}, "
            f"got {joint_regressor.device}"
        )
    regressor = joint_regressor.to(dtype=vertices.dtype)
    if not regressor.is_sparse and regressor.layout == torch.strided:
        # A vertex no keypoint uses must not matter, whatever it holds (0 * NaN is NaN):
        # the same answer as a sparse regressor, which never reads it.
        used = (regressor != 0).any(0).unsqueeze(-1)
        return regressor @ torch.where(used, vertices, 0.0)
    # torch.sparse.mm takes 2D operands only: fold the batch into the columns.
    num_vertices = vertices.shape[-2]
    columns = vertices.movedim(-2, 0).reshape(num_vertices, -1)
    keypoints = torch.sparse.mm(regressor, columns)
    return keypoints.reshape(regressor.shape[0], *batch, 3).movedim(0, -2)


def position_mesh(
    vertices: Tensor,
    points2d: Tensor,
    intrinsics: Tensor,
    weights: Tensor | None = None,
    *,
    joint_regressor: Tensor,
    damping: float = 0.0,
    prior: Tensor | None = None,
) -> MeshPlacement:
    """Place a root-relative mesh in camera space from its 2D keypoints (the DGP step).

    Regresses 3D keypoints from the vertices, solves their camera-space translation
    with :func:`~dgpgeom.solve_translation` against the 2D keypoints, and moves the
    whole mesh by it. Differentiable end to end. See the Conventions page
    (https://dgpgeom.readthedocs.io/en/latest/conventions/) for pixel and intrinsics conventions.

    Args:
        vertices: `(..., V, 3)` metres, root-relative, camera orientation.
        points2d: `(..., N, 2)` pixels, the keypoints the regressor produces.
        intrinsics: `(..., 3, 3)` pixels.
        weights: `(..., N)` per-keypoint confidences, or ``None`` for all ones.
        joint_regressor: `(N, V)` dense or sparse (keyword-only).
        damping: see :func:`~dgpgeom.solve_translation`.
        prior: `(..., 3)` metres, see :func:`~dgpgeom.solve_translation`.

    Returns:
        A :class:`MeshPlacement` ``(vertices_cam, keypoints_cam, translation, valid)``.

    Example:
        >>> K = torch.tensor([[500.0, 0.0, 112.0], [0.0, 500.0, 112.0], [0.0, 0.0, 1.0]])
        >>> vertices = torch.tensor([[0.0, 0.0, 0.0], [0.06, 0.0, 0.0], [0.0, 0.06, 0.01]])
        >>> regressor = torch.eye(3)
        >>> camera = vertices + torch.tensor([0.0, 0.0, 0.5])
        >>> points2d = camera[:, :2] / camera[:, 2:] * 500.0 + 112.0
        >>> placed = position_mesh(vertices, points2d, K, joint_regressor=regressor)
        >>> torch.allclose(placed.translation, torch.tensor([0.0, 0.0, 0.5]), atol=1e-6)
        True

    References:
        E. Valassakis and G. Garcia-Hernando. *HandDGP: Camera-Space Hand Mesh
        Prediction with Differentiable Global Positioning.* ECCV 2024, §3.1, Eq. 1.
    """
    # Name the arguments of this function, not solve_translation's, on an N mismatch.
    check = ShapeChecker()
    vertex_batch = check(vertices, "vertices", "... V 3")
    point_batch = check(points2d, "points2d", "... N 2")
    # Checked here so that errors name this function's arguments, not the solver's.
    broadcast_batch_shapes(vertices=vertex_batch, points2d=point_batch)
    if isinstance(joint_regressor, Tensor) and joint_regressor.dim() == 2:
        if joint_regressor.shape[0] != check.sizes["N"]:
            raise ShapeError(
                f"joint_regressor: expected shape (N={check.sizes['N']}, V), one row per "
                f"point of points2d {tuple(points2d.shape)}, got {tuple(joint_regressor.shape)}"
            )
    keypoints = regress_keypoints(vertices, joint_regressor)
    solution = solve_translation(
        keypoints, points2d, intrinsics, weights, damping=damping, prior=prior
    )
    offset = solution.translation.unsqueeze(-2)
    return MeshPlacement(
        vertices + offset, keypoints + offset, solution.translation, solution.valid
    )
