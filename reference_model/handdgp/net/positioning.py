"""The one positioning switch: where a root-relative hand sits in the camera frame."""

from __future__ import annotations

import torch
from torch import Tensor

import dgpgeom

__all__ = ["POSITIONING", "place_hand"]

#: ``"dgp"``: weighted DLT, differentiable (:func:`dgpgeom.solve_translation`);
#: ``"refine"``: DLT then robust Gauss-Newton on the reprojection error (test time);
#: ``"root_regression"``: a regressed root depth on the ray of the 2D root (baseline B5).
POSITIONING = ("dgp", "refine", "root_regression")


def place_hand(
    keypoints3d: Tensor,
    keypoints2d: Tensor,
    intrinsics: Tensor,
    weights: Tensor,
    positioning: str,
    root_depth: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The camera-space root of a hand, by the named positioning.

    Args:
        keypoints3d: `(B, N, 3)` metres, relative to the root keypoint 0.
        keypoints2d: `(B, N, 2)` pixels.
        intrinsics: `(B, 3, 3)` pixels.
        weights: `(B, N)` keypoint weights.
        positioning: one of :data:`POSITIONING`.
        root_depth: `(B,)` metres, the regressed root depth (``"root_regression"`` only).

    Returns:
        ``(translation, valid)``: `(B, 3)` metres and `(B,)` bool.

    Raises:
        ValueError: on an unknown positioning, or ``"root_regression"`` without a depth.

    Example:
        >>> import torch
        >>> K = torch.tensor([[[100.0, 0.0, 16.0], [0.0, 100.0, 16.0], [0.0, 0.0, 1.0]]])
        >>> kp3d = torch.tensor([[[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.0, 0.05, 0.01]]])
        >>> cam = kp3d + torch.tensor([0.01, 0.02, 0.5])
        >>> kp2d = cam[..., :2] / cam[..., 2:] * 100.0 + 16.0
        >>> t, valid = place_hand(kp3d, kp2d, K, torch.ones(1, 3), "dgp")
        >>> [round(v, 4) for v in t[0].tolist()], bool(valid)
        ([0.01, 0.02, 0.5], True)
    """
    if positioning == "dgp":
        solution = dgpgeom.solve_translation(keypoints3d, keypoints2d, intrinsics, weights)
        return solution.translation, solution.valid
    if positioning == "refine":
        from dgpgeom.solvers.refine import refine_translation

        refined = refine_translation(keypoints3d, keypoints2d, intrinsics, weights, robust="huber")
        return refined.translation, refined.valid
    if positioning == "root_regression":
        if root_depth is None:
            raise ValueError("root_depth: required by positioning='root_regression', got None")
        translation = dgpgeom.camera.unproject(keypoints2d[:, :1], root_depth[:, None], intrinsics)
        return translation[:, 0], torch.ones_like(root_depth, dtype=torch.bool)
    raise ValueError(f"positioning: expected one of {POSITIONING}, got {positioning!r}")
