"""``nn.Module`` twins of the functional API. They hold configuration only."""

from __future__ import annotations

from torch import Tensor, nn

from dgpgeom import losses
from dgpgeom.solvers.placement import MeshPlacement, position_mesh
from dgpgeom.solvers.translation import solve_translation

__all__ = ["DifferentiableGlobalPositioning", "EdgeLengthLoss", "NormalLoss", "ReprojectionLoss"]


class DifferentiableGlobalPositioning(nn.Module):
    """Module twin of :func:`~dgpgeom.position_mesh`; holds the regressor and damping.

    Without a ``joint_regressor`` the 3D input is taken as the keypoints themselves,
    and ``vertices_cam`` equals ``keypoints_cam``.

    Args:
        joint_regressor: `(N, V)` dense or sparse, stored as a buffer; or ``None``.
        damping: see :func:`~dgpgeom.solve_translation`.

    Example:
        >>> import torch
        >>> dgp = DifferentiableGlobalPositioning()
        >>> K = torch.tensor([[500.0, 0.0, 112.0], [0.0, 500.0, 112.0], [0.0, 0.0, 1.0]])
        >>> points3d = torch.tensor([[0.0, 0.0, 0.0], [0.06, 0.0, 0.0], [0.0, 0.06, 0.01]])
        >>> camera = points3d + torch.tensor([0.0, 0.0, 0.5])
        >>> placed = dgp(points3d, camera[:, :2] / camera[:, 2:] * 500.0 + 112.0, K)
        >>> torch.allclose(placed.translation, torch.tensor([0.0, 0.0, 0.5]), atol=1e-6)
        True
    """

    def __init__(self, joint_regressor: Tensor | None = None, *, damping: float = 0.0) -> None:
        super().__init__()
        self.damping = float(damping)
        self.register_buffer("joint_regressor", joint_regressor)

    def forward(
        self,
        points3d: Tensor,
        points2d: Tensor,
        intrinsics: Tensor,
        weights: Tensor | None = None,
        prior: Tensor | None = None,
    ) -> MeshPlacement:
        """See :func:`~dgpgeom.position_mesh`; ``points3d`` are vertices `(..., V, 3)`
        when a regressor is held, else keypoints `(..., N, 3)`."""
        if self.joint_regressor is not None:
            return position_mesh(
                points3d,
                points2d,
                intrinsics,
                weights,
                joint_regressor=self.joint_regressor,
                damping=self.damping,
                prior=prior,
            )
        solution = solve_translation(
            points3d, points2d, intrinsics, weights, damping=self.damping, prior=prior
        )
        placed = points3d + solution.translation.unsqueeze(-2)
        return MeshPlacement(placed, placed, solution.translation, solution.valid)

    def extra_repr(self) -> str:
        shape = None if self.joint_regressor is None else tuple(self.joint_regressor.shape)
        return f"joint_regressor={shape}, damping={self.damping}"


class ReprojectionLoss(nn.Module):
    """Module twin of :func:`~dgpgeom.losses.reprojection_loss`; holds its options.

    Example:
        >>> import torch
        >>> K = torch.tensor([[500.0, 0.0, 112.0], [0.0, 500.0, 112.0], [0.0, 0.0, 1.0]])
        >>> loss = ReprojectionLoss("l2")
        >>> loss(torch.tensor([[0.0, 0.0, 0.5]]), torch.tensor([[114.0, 112.0]]), K)
        tensor(2.)
    """

    def __init__(
        self,
        kind: str = "l1",
        *,
        delta: float = 1.0,
        reduction: str = "mean",
        min_depth: float = 1e-3,
    ) -> None:
        super().__init__()
        self.kind, self.delta, self.reduction, self.min_depth = kind, delta, reduction, min_depth

    def forward(
        self,
        points3d_cam: Tensor,
        points2d: Tensor,
        intrinsics: Tensor,
        weights: Tensor | None = None,
        valid: Tensor | None = None,
    ) -> Tensor:
        """See :func:`~dgpgeom.losses.reprojection_loss`."""
        return losses.reprojection_loss(
            points3d_cam,
            points2d,
            intrinsics,
            weights,
            valid,
            kind=self.kind,  # type: ignore[arg-type]
            delta=self.delta,
            reduction=self.reduction,  # type: ignore[arg-type]
            min_depth=self.min_depth,
        )

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, delta={self.delta}, reduction={self.reduction!r}"


class _MeshLoss(nn.Module):
    def __init__(self, faces: Tensor, *, reduction: str = "mean") -> None:
        super().__init__()
        self.register_buffer("faces", faces.long())
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"faces={tuple(self.faces.shape)}, reduction={self.reduction!r}"


class EdgeLengthLoss(_MeshLoss):
    """Module twin of :func:`~dgpgeom.losses.edge_length_loss`; holds the faces as a buffer."""

    def forward(self, vertices: Tensor, vertices_gt: Tensor, valid: Tensor | None = None) -> Tensor:
        """See :func:`~dgpgeom.losses.edge_length_loss`."""
        return losses.edge_length_loss(
            vertices, vertices_gt, self.faces, valid, reduction=self.reduction
        )  # type: ignore[arg-type]


class NormalLoss(_MeshLoss):
    """Module twin of :func:`~dgpgeom.losses.normal_loss`; holds the faces as a buffer."""

    def forward(self, vertices: Tensor, vertices_gt: Tensor, valid: Tensor | None = None) -> Tensor:
        """See :func:`~dgpgeom.losses.normal_loss`."""
        return losses.normal_loss(
            vertices, vertices_gt, self.faces, valid, reduction=self.reduction
        )  # type: ignore[arg-type]
