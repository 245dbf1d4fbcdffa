"""MobRecon-style mesh decoder: keypoint features lifted to a coarse mesh, then
up-sampled level by level with depthwise spiral convolutions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from handdgp.net.sampling import sample_at_points
from handdgp.net.spiral import DepthwiseSpiralConv, MeshUpsample

__all__ = ["MeshDecoder"]


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
