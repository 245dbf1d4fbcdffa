"""The reference network: shapes, positioning modes, gradients, spiral layers."""

import pytest
import torch

import dgpgeom
from handdgp.net import HandDGPNet, NetConfig
from handdgp.net.heads import KeypointHead
from handdgp.net.sampling import sample_at_points
from handdgp.net.spiral import DepthwiseSpiralConv, MeshUpsample, SpiralConv

from .toy import toy_hierarchy


def toy_net(**overrides):
    regressor, spirals, upsampling, _ = toy_hierarchy()
    overrides.setdefault("decoder", "spiral")
    config = NetConfig(image_size=64, width=0.125, decoder_channels=(32, 16), **overrides)
    return HandDGPNet(config, regressor, spirals, upsampling)


def canonical_k(batch, size=64, focal=80.0):
    c = (size - 1) / 2
    return torch.tensor([[focal, 0.0, c], [0.0, focal, c], [0.0, 0.0, 1.0]]).expand(batch, 3, 3)


class TestHandDGPNet:
    @pytest.mark.parametrize("positioning", ["dgp", "root_regression"])
    def test_shapes_and_root_relative(self, positioning):
        torch.manual_seed(0)
        net = toy_net(positioning=positioning).eval()
        out = net(torch.rand(2, 3, 64, 64), canonical_k(2))
        assert out.keypoints2d.shape == (2, 21, 2)
        assert out.vertices.shape == (2, 96, 3) and out.vertices_cam.shape == (2, 96, 3)
        assert out.weights.shape == (2, 21) and out.valid.shape == (2,)
        assert torch.allclose(out.keypoints3d[:, 0], torch.zeros(2, 3), atol=1e-6)
        assert torch.allclose(
            out.vertices_cam - out.vertices, out.translation[:, None].expand(-1, 96, -1)
        )

    def test_dgp_translation_is_the_weighted_solve(self):
        torch.manual_seed(0)
        net = toy_net().eval()
        K = canonical_k(3)
        out = net(torch.rand(3, 3, 64, 64), K)
        solved = dgpgeom.solve_translation(out.keypoints3d, out.keypoints2d, K, out.weights)
        assert torch.allclose(out.translation, solved.translation, atol=1e-5)

    def test_camera_space_loss_reaches_every_head(self):
        torch.manual_seed(0)
        net = toy_net()
        out = net(torch.rand(2, 3, 64, 64), canonical_k(2))
        out.keypoints_cam.square().mean().backward()
        for name in ("keypoint_head", "mesh_decoder", "weight_head", "encoder"):
            grads = [p.grad for p in getattr(net, name).parameters() if p.grad is not None]
            assert grads and any(g.abs().sum() > 0 for g in grads), name

    def test_fixed_weights_ablation_has_unit_weights(self):
        net = toy_net(learned_weights=False).eval()
        out = net(torch.rand(1, 3, 64, 64), canonical_k(1))
        assert net.weight_head is None and torch.equal(out.weights, torch.ones(1, 21))

    def test_unknown_positioning_is_refused(self):
        with pytest.raises(ValueError, match="positioning"):
            toy_net(positioning="magic")


class TestKeypointHead:
    def test_heatmap_soft_argmax_lands_on_the_peak_cell_centre(self):
        head = KeypointHead(4, 1, image_size=64, feature_size=8)
        with torch.no_grad():
            for p in head.parameters():
                p.zero_()
        # Bypass the convolutions: a sharp peak at cell (row 2, col 5).
        maps = torch.full((1, 1, 8, 8), -50.0)
        maps[0, 0, 2, 5] = 50.0
        head.maps = torch.nn.Identity()
        xy, log_prob = head(maps)
        stride = 64 / 8
        assert torch.allclose(xy[0, 0], torch.tensor([5.5 * stride - 0.5, 2.5 * stride - 0.5]))
        assert torch.allclose(log_prob.exp().sum((-2, -1)), torch.ones(1, 1))
        assert log_prob[0, 0].argmax() == 2 * 8 + 5

    def test_heatmap_loss_is_zero_at_the_target_and_pulls_towards_it(self):
        from handdgp.objective import heatmap_loss

        truth = torch.tensor([[[20.0, 37.0], [-10.0, 70.0]]])  # the second point is outside
        logits = torch.zeros(1, 2, 8, 8, requires_grad=True)
        optimizer = torch.optim.Adam([logits], lr=0.3)
        losses = []
        for _ in range(300):
            loss = heatmap_loss(logits.flatten(2).log_softmax(-1).view(1, 2, 8, 8), truth, 64)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[0] > 1.0 and losses[-1] < 1e-3
        head = KeypointHead(4, 2, image_size=64, feature_size=8)
        head.maps = torch.nn.Identity()
        xy, _ = head(logits.detach())
        # The target's soft-argmax is the keypoint inside the crop
        # (to a small sampling bias of the discrete Gaussian: 0.25 px = 0.03 cell).
        assert torch.allclose(xy[0, 0], truth[0, 0], atol=0.25)
        assert xy[0, 1, 0] < 8.0 and xy[0, 1, 1] > 55.0  # pulled to the nearest corner cells

    def test_regression_mode_stays_inside_the_crop(self):
        head = KeypointHead(4, 21, image_size=64, feature_size=8, mode="regression")
        xy, heatmaps = head(torch.randn(2, 4, 8, 8) * 10)
        assert heatmaps is None
        assert xy.shape == (2, 21, 2) and xy.min() >= 0 and xy.max() <= 63


class TestSampling:
    def test_samples_the_pixel_under_the_point(self):
        features = torch.arange(16.0).view(1, 1, 4, 4)
        # With a 4x4 map over a 32 px crop, cell (row 1, col 2) is centred at pixel (19.5, 11.5).
        value = sample_at_points(features, torch.tensor([[[19.5, 11.5]]]), image_size=32)
        assert value.item() == pytest.approx(6.0)

    def test_non_finite_points_never_reach_grid_sample(self):
        # torch's CPU grid_sample backward crashes on a NaN sampling point.
        features = torch.arange(16.0).view(1, 1, 4, 4).requires_grad_()
        nan, inf = float("nan"), float("inf")
        points = torch.tensor([[[nan, 11.5], [inf, 11.5], [-inf, nan], [99.0, 11.5]]])
        points.requires_grad_()
        value = sample_at_points(features, points, image_size=32)
        value.sum().backward()
        assert value.flatten().tolist() == [5.5, 7.0, 6.0, 7.0]  # centre row 1 / border
        assert torch.isfinite(features.grad).all() and torch.isfinite(points.grad).all()
        # no gradient through a non-finite or clamped coordinate
        assert points.grad[0, :, 0].tolist() == [0.0] * 4 and points.grad[0, 2, 1] == 0.0


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
