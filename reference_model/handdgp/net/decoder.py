"""MobRecon-style mesh decoder: keypoint features lifted to a coarse mesh, then
up-sampled level by level with depthwise spiral convolutions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from handdgp.net.sampling import sample_at_points
from handdgp.net.spiral import DepthwiseSpiralConv, MeshUpsample

__all__ = ["HandModelDecoder", "MeshDecoder", "rotation_6d_to_matrix"]


class MeshDecoder(nn.Module):
    """Root-relative mesh vertices from a latent map and 2D keypoints.

    1. Sample the latent at the predicted 2D keypoints (MobRecon's PVL) and append
       each keypoint's 2D offset from the root keypoint, in units of a quarter of
       the crop (detached). Not in MobRecon: the offsets hand the decoder the
       image-plane layout of the hand directly, which it otherwise has to recover
       from the coarse latent (added to help short CPU runs learn shape; not
       ablated).
    2. Lift the ``N`` keypoint features to the coarsest mesh with a learnable
       `(V_coarsest, N)` matrix (initialised to 0.01, as MobRecon).
    3. For each finer level: up-sample, depthwise spiral convolution, ReLU.
    4. A last spiral convolution to 3 coordinates.

    Args:
        in_channels: channels of the latent map.
        num_keypoints: number of keypoints.
        image_size: crop size in pixels.
        spirals: per level, finest first, `(V_l, L)` long spiral indices.
        upsampling: per level transition, finest first: ``upsampling[l]`` is a
            `(V_l, V_{l+1})` matrix from level ``l + 1`` to level ``l``.
        channels: output channels per up-sampling block, coarsest block first
            (one per entry of ``upsampling``).
        vertex_scale: metres per output unit (MobRecon divides targets by 0.2 m).
    """

    def __init__(
        self,
        in_channels: int,
        num_keypoints: int,
        image_size: int,
        spirals: Sequence[Tensor],
        upsampling: Sequence[Tensor | tuple[Tensor, Tensor]],
        channels: Sequence[int] = (256, 128, 64, 32),
        vertex_scale: float = 0.2,
    ) -> None:
        super().__init__()
        if len(upsampling) != len(spirals) - 1 or len(channels) != len(upsampling):
            raise ValueError(
                f"expected len(spirals) - 1 == len(upsampling) == len(channels), got "
                f"{len(spirals)}, {len(upsampling)}, {len(channels)}"
            )
        self.image_size, self.vertex_scale = image_size, vertex_scale
        coarsest = spirals[-1].shape[0]
        self.lift = nn.Parameter(torch.full((coarsest, num_keypoints), 0.01))
        self.upsample = nn.ModuleList()
        self.convs = nn.ModuleList()
        width = in_channels + 2  # the sampled latent and the 2D layout
        for level, out_channels in zip(range(len(upsampling) - 1, -1, -1), channels, strict=True):
            self.upsample.append(MeshUpsample(upsampling[level]))
            self.convs.append(DepthwiseSpiralConv(width, out_channels, spirals[level]))
            width = out_channels
        self.head = DepthwiseSpiralConv(width, 3, spirals[0])

    def forward(self, latent: Tensor, keypoints2d: Tensor) -> Tensor:
        """Latent `(B, C, h, w)`, keypoints `(B, N, 2)` crop px -> vertices `(B, V, 3)` m."""
        x = sample_at_points(latent, keypoints2d, self.image_size)  # (B, N, C)
        layout = (keypoints2d - keypoints2d[:, :1]).detach() / (0.25 * self.image_size)
        x = self.lift @ torch.cat((x, layout), dim=-1)  # (B, V_coarsest, C + 2)
        for upsample, conv in zip(self.upsample, self.convs, strict=True):
            x = torch.relu(conv(upsample(x)))
        return self.head(x) * self.vertex_scale


def rotation_6d_to_matrix(d6: Tensor) -> Tensor:
    """Continuous 6D rotation representation (Zhou et al., CVPR 2019) -> matrix.

    The two 3-vectors are orthonormalised by Gram-Schmidt and become the first two
    *columns* of the matrix; the third is their cross product.

    Args:
        d6: `(..., 6)`.

    Returns:
        `(..., 3, 3)` rotation matrices.

    Example:
        >>> eye = rotation_6d_to_matrix(torch.tensor([1.0, 0, 0, 0, 1, 0]))
        >>> bool(torch.equal(eye, torch.eye(3)))
        True
    """
    a, b = d6[..., :3], d6[..., 3:]
    x = torch.nn.functional.normalize(a, dim=-1)
    y = torch.nn.functional.normalize(b - (x * b).sum(-1, keepdim=True) * x, dim=-1)
    z = torch.linalg.cross(x, y, dim=-1)
    return torch.stack((x, y, z), dim=-1)


class HandModelDecoder(nn.Module):
    """Root-relative hand mesh and keypoints through the open hand model.

    The features of every keypoint (the fine map sampled at the predicted 2D
    keypoints, as MobRecon's pose-vertex lifting, plus each keypoint's 2D offset
    from the root in units of a quarter crop) and the globally pooled coarse latent
    go through an MLP to one 6D rotation per skeleton joint (the first one the
    global orientation in the crop's camera frame) and the shape coefficients;
    linear blend skinning (:meth:`handdgp.hand.HandModel.from_rotations`) turns
    them into the mesh and the exact 21 keypoints. Unlike a free vertex decoder the
    output is always a plausible hand, and the network starts from the mean hand:
    the last layer starts at zero, its bias at the rest pose and the mean shape.

    Args:
        hand_model: a :class:`~handdgp.hand.HandModel` (skeleton and shape basis).
        shape_mean, shape_std: `(S,)` population statistics of the shape
            coefficients (the template's); the MLP predicts standardised ones.
        fine_channels: channels of the stride-8 feature map.
        coarse_channels: channels of the stride-32 latent.
        num_keypoints: number of keypoints.
        image_size: crop size in pixels.
        hidden: width of the MLP.
    """

    def __init__(
        self,
        hand_model: nn.Module,
        shape_mean: Tensor,
        shape_std: Tensor,
        fine_channels: int,
        coarse_channels: int,
        num_keypoints: int,
        image_size: int,
        hidden: int = 1024,
    ) -> None:
        super().__init__()
        self.hand_model, self.image_size = hand_model, image_size
        self.num_joints, self.num_shape = hand_model.num_joints, hand_model.num_shape
        inputs = num_keypoints * (fine_channels + 2) + coarse_channels
        outputs = 6 * self.num_joints + self.num_shape
        self.mlp = nn.Sequential(
            nn.Linear(inputs, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, outputs),
        )
        last = self.mlp[-1]
        nn.init.zeros_(last.weight)
        rest = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).repeat(self.num_joints)
        with torch.no_grad():
            last.bias.copy_(torch.cat((rest, torch.zeros(self.num_shape))))
        self.register_buffer("shape_mean", shape_mean.float().clone(), persistent=False)
        self.register_buffer("shape_std", shape_std.float().clone(), persistent=False)

    def forward(
        self, fine: Tensor, coarse: Tensor, keypoints2d: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Features and 2D keypoints `(B, N, 2)` -> vertices `(B, V, 3)`, keypoints
        `(B, N, 3)`, both metres relative to the root keypoint, and the local joint
        rotations `(B, J, 3, 3)`."""
        sampled = sample_at_points(fine, keypoints2d, self.image_size)  # (B, N, C)
        layout = (keypoints2d - keypoints2d[:, :1]).detach() / (0.25 * self.image_size)
        per_keypoint = torch.cat((sampled, layout), dim=-1).flatten(1)
        x = torch.cat((per_keypoint, coarse.mean((-2, -1))), dim=-1)
        out = self.mlp(x)
        rotations = rotation_6d_to_matrix(out[:, : 6 * self.num_joints].unflatten(-1, (-1, 6)))
        shape = self.shape_mean + self.shape_std * out[:, 6 * self.num_joints :]
        hand = self.hand_model.from_rotations(rotations, shape)
        root = hand.keypoints[:, :1]
        return hand.vertices - root, hand.keypoints - root, rotations
