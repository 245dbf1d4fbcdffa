"""Tests for handdgp.net.model: shapes, positioning modes, gradients."""

import pytest
import torch

import dgpgeom
from handdgp.net import HandDGPNet, NetConfig

from ..toy import toy_hierarchy


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


class TestWarmStart:
    def test_a_stride4_model_starts_from_a_stride8_one(self):
        from handdgp.train import warm_start

        torch.manual_seed(0)
        source = toy_net().eval()
        target = toy_net(keypoint_stride=4).eval()
        new, unused = warm_start(target, source.state_dict())
        assert new and all(name.startswith("keypoint_head.refine.") for name in new)
        assert unused == []
        images, K = torch.rand(2, 3, 64, 64), canonical_k(2)
        assert (source(images, K).keypoints2d - target(images, K).keypoints2d).abs().max() < 2.0
        assert target(images, K).heatmaps.shape[-1] == 16

    def test_top_down_context_starts_from_the_model_without_it(self):
        from handdgp.train import warm_start

        torch.manual_seed(0)
        source = toy_net(keypoint_stride=4).eval()
        target = toy_net(keypoint_stride=4, keypoint_context=True).eval()
        new, unused = warm_start(target, source.state_dict())
        assert new and all(name.startswith("keypoint_context.") for name in new)
        assert unused == []
        images, K = torch.rand(2, 3, 64, 64), canonical_k(2)
        with torch.no_grad():
            assert torch.equal(source(images, K).keypoints2d, target(images, K).keypoints2d)

    def test_top_down_context_carries_the_deep_features_once_trained(self):
        torch.manual_seed(0)
        net = toy_net(keypoint_context=True)
        out = net(torch.rand(2, 3, 64, 64), canonical_k(2))
        out.keypoints2d.sum().backward()
        # The zero-initialised fusion gets a gradient at once; after one step the
        # 2D keypoints depend on the encoder's deepest stage through it.
        assert net.keypoint_context.fuse[-1].weight.grad.abs().sum() > 0
        with torch.no_grad():
            net.keypoint_context.fuse[-1].weight.normal_()
        net.zero_grad()
        net(torch.rand(2, 3, 64, 64), canonical_k(2)).keypoints2d.sum().backward()
        assert net.keypoint_context.lateral_coarse.weight.grad.abs().sum() > 0
        assert net.encoder.stages[3][0].body[0].weight.grad.abs().sum() > 0

    def test_an_ablation_without_weights_drops_the_weight_head(self):
        from handdgp.train import warm_start

        new, unused = warm_start(toy_net(learned_weights=False), toy_net().state_dict())
        assert new == [] and unused and all(n.startswith("weight_head.") for n in unused)

    def test_a_shape_mismatch_raises(self):
        from handdgp.train import warm_start

        regressor, spirals, upsampling, _ = toy_hierarchy()
        wider = NetConfig(image_size=64, width=0.25, decoder_channels=(32, 16), decoder="spiral")
        with pytest.raises(RuntimeError, match="size mismatch"):
            warm_start(HandDGPNet(wider, regressor, spirals, upsampling), toy_net().state_dict())


class TestMixedPrecision:
    """Under bf16 autocast only the encoder runs in bf16; everything after it in float32."""

    @staticmethod
    def hand_model_net():
        from handdgp.config import ExperimentConfig
        from handdgp.loading import default_model_factory

        config = ExperimentConfig(name="tiny")
        config.net = NetConfig(
            image_size=64, width=0.125, depth=(1, 1, 1, 1), decoder_channels=(16, 8),
            keypoint_stride=4,
        )
        torch.manual_seed(0)
        return default_model_factory(config)[0].eval()

    def test_outputs_are_float32_and_close_to_the_float32_forward(self):
        net = self.hand_model_net()
        images, K = torch.rand(2, 3, 64, 64), canonical_k(2)
        with torch.no_grad():
            exact = net(images, K)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                mixed = net(images, K)
        for name in ("keypoints2d", "vertices", "keypoints3d", "weights", "translation", "heatmaps"):
            assert getattr(mixed, name).dtype == torch.float32, name
        # Only the encoder's features carry bf16 rounding (~0.4 % relative).
        assert (mixed.keypoints2d - exact.keypoints2d).abs().max() < 0.5  # crop pixels
        assert (mixed.vertices - exact.vertices).abs().max() < 1e-3  # metres

    def test_heads_run_no_bf16_op(self):
        net = self.hand_model_net()
        seen = []
        hooks = [
            module.register_forward_hook(
                lambda m, i, o, name=name: seen.append((name, o.dtype)) if isinstance(o, torch.Tensor) else None
            )
            for name, module in net.named_modules()
            if not name.startswith("encoder") and name
        ]
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            net(torch.rand(1, 3, 64, 64), canonical_k(1))
        for hook in hooks:
            hook.remove()
        assert seen and all(dtype == torch.float32 for _, dtype in seen), [s for s in seen if s[1] != torch.float32]
