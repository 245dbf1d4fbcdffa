"""Mesh convolutions over fixed spiral neighbourhoods, and mesh up-sampling.

A spiral is, for every vertex, a fixed-length list of vertex indices starting at
the vertex itself and winding outwards ring by ring (Gong et al., SpiralNet++,
2019). Gathering features along it turns a mesh into a regular ``(V, L)`` grid.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["DepthwiseSpiralConv", "MeshUpsample", "SpiralConv", "gather_spirals"]


def gather_spirals(features: Tensor, spirals: Tensor) -> Tensor:
    """Features `(B, V, C)` gathered along spirals `(V, L)` -> `(B, V, L, C)`."""
    # index_select's backward is an index_add, several times faster on CPU than the
    # accumulating index_put that advanced indexing back-propagates through.
    batch, channels = features.shape[0], features.shape[-1]
    flat = features.index_select(1, spirals.flatten())
    return flat.view(batch, *spirals.shape, channels)


class SpiralConv(nn.Module):
    """SpiralNet++ convolution: one linear layer over the concatenated spiral.

    Args:
        in_channels, out_channels: feature sizes.
        spirals: `(V, L)` long, the spiral of every vertex.
    """

    def __init__(self, in_channels: int, out_channels: int, spirals: Tensor) -> None:
        super().__init__()
        self.register_buffer("spirals", spirals.long(), persistent=False)
        self.linear = nn.Linear(in_channels * spirals.shape[1], out_channels)

    def forward(self, features: Tensor) -> Tensor:
        """`(B, V, C_in)` -> `(B, V, C_out)`."""
        gathered = gather_spirals(features, self.spirals)
        return self.linear(gathered.flatten(-2))


class DepthwiseSpiralConv(nn.Module):
    """MobRecon's DSConv: a depthwise filter along the spiral, then a channel mix.

    MobRecon reshapes a length-9 spiral to 3×3 and runs a depthwise ``Conv2d``;
    that is the same as one weight per (channel, spiral position), written here
    as an ``einsum`` so any spiral length works.

    Args:
        in_channels, out_channels: feature sizes.
        spirals: `(V, L)` long.
    """

    def __init__(self, in_channels: int, out_channels: int, spirals: Tensor) -> None:
        super().__init__()
        self.register_buffer("spirals", spirals.long(), persistent=False)
        length = spirals.shape[1]
        self.depthwise = nn.Parameter(torch.empty(in_channels, length))
        nn.init.kaiming_uniform_(self.depthwise, a=5**0.5)
        self.pointwise = nn.Linear(in_channels, out_channels)

    def forward(self, features: Tensor) -> Tensor:
        """`(B, V, C_in)` -> `(B, V, C_out)`."""
        # One gather per spiral position, accumulated: never materialises the
        # (B, V, L, C) neighbourhood tensor, and is ~5x faster than an einsum over
        # it (forward and backward, measured on CPU at the finest hand level).
        spirals, depthwise = self.spirals, self.depthwise
        filtered = features.index_select(1, spirals[:, 0]) * depthwise[:, 0]
        for position in range(1, spirals.shape[1]):
            filtered = (
                filtered + features.index_select(1, spirals[:, position]) * depthwise[:, position]
            )
        return self.pointwise(filtered)


class MeshUpsample(nn.Module):
    """Fixed linear map from a coarse mesh to a finer one (barycentric weights).

    Stored as a dense `(V_fine, K)` index table and weights (each fine vertex
    interpolates ``K`` coarse vertices, three for barycentric up-sampling), which
    runs on any device and under ``torch.compile``, unlike a sparse matrix.

    Args:
        up: either a `(V_fine, V_coarse)` dense or sparse matrix whose rows have at
            most ``K`` non-zeros, or an ``(index, weight)`` pair of `(V_fine, K)`
            tensors (as :class:`handdgp.hand.template.MeshHierarchy` stores them).
    """

    def __init__(self, up: Tensor | tuple[Tensor, Tensor]) -> None:
        super().__init__()
        if isinstance(up, tuple):
            index, weights = up
        else:
            dense = up.to_dense() if up.layout != torch.strided else up
            width = int((dense != 0).sum(1).max())
            index = dense.abs().topk(max(width, 1), dim=1).indices
            weights = torch.gather(dense, 1, index)
        self.register_buffer("index", index.long(), persistent=False)
        self.register_buffer("weights", weights.float(), persistent=False)

    def forward(self, features: Tensor) -> Tensor:
        """`(B, V_coarse, C)` -> `(B, V_fine, C)`."""
        weights = self.weights.to(features.dtype)
        fine = features.index_select(1, self.index[:, 0]) * weights[:, :1]
        for k in range(1, self.index.shape[1]):
            fine = fine + features.index_select(1, self.index[:, k]) * weights[:, k : k + 1]
        return fine
