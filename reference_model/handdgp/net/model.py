"""The HandDGP reference network: encoder, 2D head, mesh decoder, weight head, DGP."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

import dgpgeom
from handdgp.net.decoder import HandModelDecoder, MeshDecoder
from handdgp.net.encoder import Encoder, EncoderFeatures
from handdgp.net.heads import KeypointHead, RootDepthHead, TopDownContext, WeightHead
from handdgp.net.positioning import POSITIONING, place_hand

__all__ = ["HandDGPNet", "HandPrediction", "NetConfig"]

DECODERS = ("hand_model", "spiral")


@dataclass
class NetConfig:
    """Architecture of :class:`HandDGPNet` (plain data, stored in checkpoints).

    Attributes:
        image_size: side of the square input crop, pixels.
        width: encoder channel multiplier (0.5: 32-64-128-256 channels).
        depth: basic blocks per encoder stage.
        keypoint_head: ``"heatmap"`` (soft-argmax) or ``"regression"`` (MobRecon).
        keypoint_stride: 8 (heat maps on the stride-8 features) or 4 (refined with
            the encoder's stride-4 features; heat-map head only).
        keypoint_context: add the encoder's stride-16 and stride-32 features to the
            stride-8 features the 2D head reads (:class:`~handdgp.net.heads.TopDownContext`).
        decoder_channels: channels of the mesh decoder blocks, coarsest first.
        learned_weights: predict per-keypoint weights (False: all ones, ablation A3).
        decoder: ``"hand_model"`` (an MLP to joint rotations and shape, skinned by
            the open hand model; the default) or ``"spiral"`` (MobRecon's spiral
            mesh decoder).
        positioning: ``"dgp"`` (weighted DLT, differentiable), ``"refine"``
            (DLT then robust Gauss-Newton on the reprojection error, test time
            only), or ``"root_regression"`` (baseline B5).
    """

    image_size: int = 128
    width: float = 0.5
    depth: tuple[int, ...] = (2, 2, 2, 2)
    keypoint_head: str = "heatmap"
    keypoint_stride: int = 8
    keypoint_context: bool = False
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32)
    learned_weights: bool = True
    positioning: str = "dgp"
    decoder: str = "hand_model"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class HandPrediction(NamedTuple):
    """Outputs of :class:`HandDGPNet` for a batch of ``B`` crops.

    Attributes:
        keypoints2d: `(B, 21, 2)` crop pixels.
        vertices: `(B, V, 3)` metres, root-relative (root = keypoint 0).
        keypoints3d: `(B, 21, 3)` metres, root-relative, regressed from the vertices.
        weights: `(B, 21)` keypoint weights in (0, 1] (ones without a weight head).
        translation: `(B, 3)` metres, the root in the crop's camera frame.
        vertices_cam: `(B, V, 3)` metres, camera frame of the crop.
        keypoints_cam: `(B, 21, 3)` metres, camera frame of the crop.
        valid: `(B,)` bool, False where positioning was degenerate.
        heatmaps: `(B, 21, h, w)` log-probabilities of the 2D head's heat maps (on
            the cells of its stride-8 or stride-4 map), or None (regression head).
        joint_rotations: `(B, J, 3, 3)` local joint rotations of the hand-model
            decoder (the global one in the crop's camera frame), or None.
    """

    keypoints2d: Tensor
    vertices: Tensor
    keypoints3d: Tensor
    weights: Tensor
    translation: Tensor
    vertices_cam: Tensor
    keypoints_cam: Tensor
    valid: Tensor
    heatmaps: Tensor | None = None
    joint_rotations: Tensor | None = None


class HandDGPNet(nn.Module):
    """MobRecon-style hand mesh network with differentiable global positioning.

    Args:
        config: the architecture.
        joint_regressor: `(21, V)` dense keypoint regressor of the template mesh.
        spirals: per mesh level, finest first, `(V_l, L)` spiral indices.
        upsampling: per level transition, finest first, `(V_l, V_{l+1})` matrices
            or `(index, weight)` pairs (see :class:`~handdgp.net.spiral.MeshUpsample`).
        hand_template: the :class:`~handdgp.hand.HandTemplate` the ``"hand_model"``
            decoder skins (required for it, ignored by the spiral decoder).
    """

    def __init__(
        self,
        config: NetConfig,
        joint_regressor: Tensor,
        spirals: Sequence[Tensor],
        upsampling: Sequence[Tensor | tuple[Tensor, Tensor]],
        hand_template: Any = None,
    ) -> None:
        super().__init__()
        if config.decoder not in DECODERS:
            raise ValueError(f"decoder: expected one of {DECODERS}, got {config.decoder!r}")
        if config.decoder == "hand_model" and hand_template is None:
            raise ValueError("hand_template: required by the 'hand_model' decoder, got None")
        if config.positioning not in POSITIONING:
            raise ValueError(
                f"positioning: expected one of {POSITIONING}, got {config.positioning!r}"
            )
        self.config = config
        num_keypoints = joint_regressor.shape[0]
        self.register_buffer("joint_regressor", joint_regressor.float().to_dense())
        self.register_buffer("pixel_mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1))
        self.encoder = Encoder(config.width, tuple(config.depth))
        size = config.image_size
        self.keypoint_context = (
            TopDownContext(
                self.encoder.fine_channels,
                self.encoder.middle_channels,
                self.encoder.coarse_channels,
            )
            if config.keypoint_context
            else None
        )
        self.keypoint_head = KeypointHead(
            self.encoder.fine_channels,
            num_keypoints,
            size,
            size // 8,
            config.keypoint_head,
            self.encoder.early_channels if config.keypoint_stride == 4 else None,
        )
        self.mesh_decoder: nn.Module
        if config.decoder == "hand_model":
            from handdgp.hand import HandModel

            self.mesh_decoder = HandModelDecoder(
                HandModel(hand_template),
                hand_template.shape_mean,
                hand_template.shape_std,
                self.encoder.fine_channels,
                self.encoder.coarse_channels,
                num_keypoints,
                size,
            )
        else:
            self.mesh_decoder = MeshDecoder(
                self.encoder.coarse_channels,
                num_keypoints,
                size,
                spirals,
                upsampling,
                tuple(config.decoder_channels),
            )
        self.weight_head = (
            WeightHead(self.encoder.fine_channels, num_keypoints, size)
            if config.learned_weights
            else None
        )
        self.root_head = (
            RootDepthHead(self.encoder.coarse_channels)
            if config.positioning == "root_regression"
            else None
        )

    def forward(self, images: Tensor, intrinsics: Tensor) -> HandPrediction:
        """Predict a camera-space hand mesh.

        Args:
            images: `(B, 3, S, S)` RGB crops in [0, 1], ``S = config.image_size``.
            intrinsics: `(B, 3, 3)` pixels, the crops' intrinsics (canonical ones
                after rectification).

        Returns:
            A :class:`HandPrediction`.
        """
        features = self.encoder((images - self.pixel_mean) / self.pixel_std)
        if torch.is_autocast_enabled(images.device.type):
            # Mixed precision for the encoder's convolutions only: heat maps read in
            # bf16 would quantise the keypoints to ~0.5 px, skinned vertices to ~0.4 mm.
            with torch.autocast(images.device.type, enabled=False):
                return self._heads(EncoderFeatures(*(f.float() for f in features)), intrinsics)
        return self._heads(features, intrinsics)

    def _heads(self, features: EncoderFeatures, intrinsics: Tensor) -> HandPrediction:
        """Everything after the encoder: keypoints, mesh, weights and the placement."""
        keypoint_features = features.fine
        if self.keypoint_context is not None:
            keypoint_features = self.keypoint_context(features.fine, features.middle, features.coarse)
        keypoints2d, heatmaps = self.keypoint_head(keypoint_features, features.early)
        joint_rotations = None
        if isinstance(self.mesh_decoder, HandModelDecoder):
            vertices, keypoints3d, joint_rotations = self.mesh_decoder(
                features.fine, features.coarse, keypoints2d
            )
        else:
            vertices = self.mesh_decoder(features.coarse, keypoints2d)
            keypoints3d = dgpgeom.regress_keypoints(vertices, self.joint_regressor)
        # Root-relative: the root keypoint (the wrist) at the origin.
        root = keypoints3d[:, :1]
        vertices, keypoints3d = vertices - root, keypoints3d - root
        if self.weight_head is not None:
            weights = self.weight_head(features.fine, keypoints2d)
        else:
            weights = torch.ones_like(keypoints2d[..., 0])

        root_depth = self.root_head(features.coarse) if self.root_head is not None else None
        translation, valid = place_hand(
            keypoints3d, keypoints2d, intrinsics, weights, self.config.positioning, root_depth
        )
        offset = translation.unsqueeze(1)
        return HandPrediction(
            keypoints2d,
            vertices,
            keypoints3d,
            weights,
            translation,
            vertices + offset,
            keypoints3d + offset,
            valid,
            heatmaps,
            joint_rotations,
        )
