"""The training objective: MobRecon's relative losses plus HandDGP's camera-space losses."""

from __future__ import annotations

import torch
from torch import Tensor

from dgpgeom import losses
from dgpgeom.camera import project
from handdgp.config import LossConfig
from handdgp.net.model import HandPrediction

__all__ = ["BATCH_KEYS", "heatmap_loss", "training_losses"]

#: What a training batch must hold (all in the crop's camera frame, FreiHAND keypoint
#: order): ``image`` `(B, 3, S, S)` in [0, 1]; ``intrinsics`` `(B, 3, 3)` of the crop;
#: ``keypoints2d`` `(B, 21, 2)` crop pixels; ``keypoints3d`` `(B, 21, 3)` metres;
#: ``vertices`` `(B, V, 3)` metres. Every keypoint is supervised, seen or not; the
#: crops' ``visibility`` is for inspection (contact sheets, figures).
BATCH_KEYS = ("image", "intrinsics", "keypoints2d", "keypoints3d", "vertices")

VERTEX_SCALE = 0.2  # metres per unit of the relative losses, as MobRecon
HEATMAP_SIGMA = 1.0  # cells, spread of the heat-map targets


def heatmap_loss(heatmaps: Tensor, keypoints2d: Tensor, image_size: int) -> Tensor:
    """KL divergence from Gaussian targets at the true keypoints to the predicted heat maps.

    Integral (soft-argmax) regression alone learns slowly from a flat start: the L1
    gradient reaches each cell scaled by its tiny probability. Supervising the heat
    maps themselves gives every cell a direct signal. The targets are separable
    Gaussians of :data:`HEATMAP_SIGMA` cells around the keypoints, normalised over the
    cells (a keypoint outside the crop puts its mass on the nearest border cells).

    Args:
        heatmaps: `(B, N, h, w)` log-probabilities over the cells of a square map
            covering the crop (cell ``j`` centred on ``(j + 0.5) * stride - 0.5`` px).
        keypoints2d: `(B, N, 2)` true keypoints, crop pixels.
        image_size: crop side, pixels.

    Returns:
        Scalar, nats per keypoint (0 when the heat maps equal the targets).

    Example:
        >>> import torch
        >>> flat = torch.full((1, 1, 4, 4), 1 / 16).log()
        >>> bool(heatmap_loss(flat, torch.tensor([[[7.5, 7.5]]]), 16) > 0)
        True
    """
    size = heatmaps.shape[-1]
    stride = image_size / size
    centres = (torch.arange(size, dtype=heatmaps.dtype, device=heatmaps.device) + 0.5) * stride - 0.5
    offsets = (centres - keypoints2d.unsqueeze(-1)) / (stride * HEATMAP_SIGMA)  # (B, N, 2, size)
    target_1d = (-0.5 * offsets.square()).softmax(-1)
    target = target_1d[..., 1, :, None] * target_1d[..., 0, None, :]  # (B, N, h=y, w=x)
    kl = torch.xlogy(target, target) - target * heatmaps
    return kl.sum((-2, -1)).mean()


def training_losses(
    prediction: HandPrediction,
    batch: dict[str, Tensor],
    faces: Tensor,
    weights: LossConfig,
    image_size: int,
    *,
    camera_space_scale: float = 1.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Weighted sum of the loss terms and each (unweighted) term, detached.

    Relative terms: vertex and keypoint L1 and edge length (in 0.2 m units), normal,
    the mean squared error of the hand-model decoder's joint rotation matrices where
    the batch has ``joint_rotations`` (synthetic data), 2D keypoint
    L1 (in crop-size units), and the heat-map divergence of :func:`heatmap_loss`
    (nats; heat-map head only). Camera-space terms, where their weight is positive and
    the positioning is valid, each scaled by ``camera_space_scale`` (the training
    loop ramps it in, see :meth:`LossConfig.camera_space_scale`): translation RMSE (metres), keypoint consistency
    between the 2D head and the projected camera-space keypoints, and the 2D
    projection of the camera-space vertices (both in crop-size units).
    """
    root = batch["keypoints3d"][:, :1]
    vertices_rel = batch["vertices"] - root
    terms: dict[str, Tensor] = {
        "vertex": (prediction.vertices - vertices_rel).abs().mean() / VERTEX_SCALE,
        "keypoint3d": (prediction.keypoints3d - (batch["keypoints3d"] - root)).abs().mean()
        / VERTEX_SCALE,
        "keypoint2d": (prediction.keypoints2d - batch["keypoints2d"]).abs().mean() / image_size,
        "edge": losses.edge_length_loss(prediction.vertices, vertices_rel, faces) / VERTEX_SCALE,
        "normal": losses.normal_loss(prediction.vertices, vertices_rel, faces),
    }
    if weights.pose > 0 and prediction.joint_rotations is not None and "joint_rotations" in batch:
        terms["pose"] = (prediction.joint_rotations - batch["joint_rotations"]).square().mean()
    if weights.heatmap > 0 and prediction.heatmaps is not None:
        terms["heatmap"] = heatmap_loss(prediction.heatmaps, batch["keypoints2d"], image_size)
    valid = prediction.valid
    intrinsics = batch["intrinsics"]
    if weights.translation > 0:
        terms["translation"] = losses.translation_loss(
            prediction.translation, root.squeeze(1), valid
        )
    if weights.consistency > 0:
        mask = valid.unsqueeze(-1).expand_as(prediction.weights)
        terms["consistency"] = (
            losses.keypoint_consistency_loss(
                prediction.keypoints_cam, prediction.keypoints2d, intrinsics, mask
            )
            / image_size
        )
    if weights.vertex2d > 0:
        target = project(batch["vertices"], intrinsics).points2d
        mask = valid.unsqueeze(-1).expand(target.shape[:-1])
        terms["vertex2d"] = (
            losses.vertex_projection_loss(prediction.vertices_cam, target, intrinsics, mask)
            / image_size
        )
    camera_terms = ("translation", "consistency", "vertex2d")
    total = sum(
        getattr(weights, name) * (camera_space_scale if name in camera_terms else 1.0) * value
        for name, value in terms.items()
    )
    return total, {name: value.detach() for name, value in terms.items()}
