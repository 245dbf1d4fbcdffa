"""Tests for handdgp.net.spiral: spiral convolutions and mesh up-sampling."""

import torch

from handdgp.net.spiral import DepthwiseSpiralConv, MeshUpsample, SpiralConv

from ..toy import toy_hierarchy


class TestSpiralLayers:
    def test_spiral_conv_matches_explicit_gather(self):
        torch.manual_seed(0)
        spirals = torch.tensor([[0, 1, 2], [1, 2, 0], [2, 0, 1]])
        conv = SpiralConv(2, 4, spirals)
        x = torch.randn(1, 3, 2)
        expected = conv.linear(torch.cat([x[:, spirals[:, k]] for k in range(3)], -1))
        assert torch.allclose(conv(x), expected)

    def test_depthwise_conv_is_per_channel_filter_then_mix(self):
        torch.manual_seed(0)
        spirals = torch.tensor([[0, 1], [1, 0]])
        conv = DepthwiseSpiralConv(3, 5, spirals)
        x = torch.randn(2, 2, 3)
        filtered = (
            x[:, spirals[:, 0]] * conv.depthwise[:, 0] + x[:, spirals[:, 1]] * conv.depthwise[:, 1]
        )
        assert torch.allclose(conv(x), conv.pointwise(filtered), atol=1e-6)

    def test_upsample_equals_dense_matrix_product(self):
        _, _, upsampling, _ = toy_hierarchy()
        up = MeshUpsample(upsampling[0])
        x = torch.randn(2, 48, 5)
        assert torch.allclose(up(x), upsampling[0] @ x, atol=1e-5)
        sparse = MeshUpsample(upsampling[0].to_sparse())
        assert torch.allclose(sparse(x), up(x))
        pair = MeshUpsample((up.index, up.weights))
        assert torch.allclose(pair(x), up(x))
