"""Test-time averaging over views of one crop from cameras turned about its optical axis.

A crop's camera turned by an angle ``θ`` about its optical axis sees the crop warped by
the homography ``H = K R_z(θ) K⁻¹`` (a plain rotation about the principal point, which
rectified crops put at their centre), and a point ``p`` of the crop's frame at
``R_z(θ) p``. The network runs once on all turned views; their 2D keypoints are mapped
back with ``H⁻¹``, their root-relative vertices and keypoints turned back with
``R_z(θ)ᵀ``, and everything is averaged before the hand is placed once, from the
averages. Training turns its crops the same way (up to ±90°), so every view is one the
network knows; the views' errors differ more than their hands do, and the average is
better than any one view (``reference_model/README.md`` has the numbers).

Meant for rectified crops, whose principal point is the crop's centre: in a plain crop
(ablation A4) the principal point may lie far off centre, and turning about it moves
the hand toward the crop's edge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from kornia.geometry.linalg import transform_points
from kornia.geometry.transform import warp_perspective
from torch import Tensor, nn

from dgpgeom.camera import invert_intrinsics
from handdgp.net.model import HandPrediction
from handdgp.net.positioning import place_hand

__all__ = ["DEFAULT_TURNS", "check_turns", "predict_turned", "turn_matrices"]

#: The view angles in degrees of ``--tta`` (``handdgp evaluate``, ``predict``,
#: ``baselines``): chosen on a validation set of the default distribution (seed 4242)
#: among sets of 1 to 9 angles (``reference_model/scripts/choose_turns.py``, the table in
#: ``reference_model/README.md``).
DEFAULT_TURNS = (0.0, 30.0, -30.0, 60.0, -60.0)


def check_turns(turns: Sequence[float] | None, name: str = "turns") -> None:
    """Raise a ``ValueError`` naming ``name`` unless ``turns`` is None or finite angles (at least one).

    Example:
        >>> check_turns([0, 30.0])
        >>> check_turns([])
        Traceback (most recent call last):
        ...
        ValueError: turns: expected None or at least one finite angle in degrees, got []
    """
    if turns is None:
        return
    values = list(turns) if isinstance(turns, (list, tuple)) else None
    if not values or not all(
        isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in values
    ):
        raise ValueError(
            f"{name}: expected None or at least one finite angle in degrees, got {turns!r}"
        )


def turn_matrices(angles: Sequence[float], *, dtype: torch.dtype, device: torch.device) -> Tensor:
    """`(V, 3, 3)` rotations about the optical axis by ``angles`` (degrees).

    With a positive angle, content right of the principal point moves down (as the
    training crops' ``rotation``, :func:`handdgp.data.crops.crop_rectification`).

    Example:
        >>> turn_matrices([90.0], dtype=torch.float64, device=torch.device("cpu")).round()
        tensor([[[ 0., -1.,  0.],
                 [ 1.,  0.,  0.],
                 [ 0.,  0.,  1.]]], dtype=torch.float64)
    """
    radians = torch.tensor([math.radians(a) for a in angles], dtype=dtype, device=device)
    c, s = radians.cos(), radians.sin()
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack((c, -s, zero, s, c, zero, zero, zero, one), -1).view(-1, 3, 3)


def predict_turned(
    model: nn.Module, images: Tensor, intrinsics: Tensor, angles: Sequence[float]
) -> HandPrediction:
    """The model's prediction averaged over views turned by ``angles`` about the optical axis.

    Args:
        model: a :class:`~handdgp.net.HandDGPNet` (``model(images, intrinsics)``).
        images: `(B, 3, S, S)` crops in [0, 1].
        intrinsics: `(B, 3, 3)` pixels, the crops' intrinsics.
        angles: degrees, at least one; ``(0.0,)`` is the model's own prediction.

    Returns:
        A :class:`~handdgp.net.HandPrediction` in the crop's frame: the views' mean 2D
        keypoints, root-relative vertices and keypoints and weights, placed by the
        model's positioning from those means (``"root_regression"``: the views' mean
        translation); ``valid`` where every view and the placement are valid.
        ``heatmaps`` and ``joint_rotations`` are those of no single view: None.

    Raises:
        ValueError: on ``angles`` that are not finite numbers, or none.
    """
    check_turns([] if angles is None else angles, "angles")  # None is no view: refused
    batch, size = images.shape[0], images.shape[-2:]
    work = torch.float64 if intrinsics.dtype == torch.float64 else torch.float32
    K = intrinsics.to(work)
    turns = turn_matrices(angles, dtype=work, device=images.device)  # (V, 3, 3)
    views = turns.shape[0]
    # H = K R K⁻¹ per view and crop, and its inverse K Rᵀ K⁻¹, in closed form: (V, B, 3, 3).
    k, k_inv = K.unsqueeze(0), invert_intrinsics(K).unsqueeze(0)
    H, H_inv = k @ turns.unsqueeze(1) @ k_inv, k @ turns.transpose(1, 2).unsqueeze(1) @ k_inv
    turned = warp_perspective(
        images.unsqueeze(0).expand(views, *images.shape).flatten(0, 1),
        H.flatten(0, 1).to(images.dtype),
        size,
        align_corners=True,
    )
    out = model(turned, intrinsics.repeat(views, 1, 1))

    def per_view(t: Tensor) -> Tensor:
        return t.view(views, batch, *t.shape[1:])

    # Back to the crop's frame: pixels by H⁻¹, points by Rᵀ (row vectors: p' R).
    keypoints2d = transform_points(H_inv.flatten(0, 1), out.keypoints2d.to(work))
    keypoints2d = keypoints2d.view(views, batch, -1, 2)
    back = turns.unsqueeze(1)  # (V, 1, 3, 3)
    vertices = (per_view(out.vertices).to(work) @ back).mean(0)
    keypoints3d = (per_view(out.keypoints3d).to(work) @ back).mean(0)
    keypoints2d, weights = keypoints2d.mean(0), per_view(out.weights).to(work).mean(0)
    positioning = getattr(getattr(model, "config", None), "positioning", "dgp")
    if positioning == "root_regression":
        translation = (per_view(out.translation).to(work).unsqueeze(-2) @ back).squeeze(-2).mean(0)
        valid = torch.ones_like(per_view(out.valid)[0])
    else:
        translation, valid = place_hand(keypoints3d, keypoints2d, K, weights, positioning)
    valid = valid & per_view(out.valid).all(0)
    dtype = out.keypoints3d.dtype
    offset = translation.unsqueeze(1)
    return HandPrediction(
        keypoints2d.to(dtype),
        vertices.to(dtype),
        keypoints3d.to(dtype),
        weights.to(dtype),
        translation.to(dtype),
        (vertices + offset).to(dtype),
        (keypoints3d + offset).to(dtype),
        valid,
    )
