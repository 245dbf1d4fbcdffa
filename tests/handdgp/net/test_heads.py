"""Tests for handdgp.net.heads: the 2D keypoint head."""

import pytest
import torch

from handdgp.net.heads import KeypointHead


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


class TestStride4KeypointHead:
    def test_starts_as_the_upsampled_stride8_head_and_refines_at_stride_4(self):
        torch.manual_seed(0)
        coarse = KeypointHead(8, 3, image_size=64, feature_size=8).eval()
        fine = KeypointHead(8, 3, image_size=64, feature_size=8, early_channels=4).eval()
        fine.load_state_dict(coarse.state_dict(), strict=False)
        features, early = torch.randn(2, 8, 8, 8), torch.randn(2, 4, 16, 16)
        xy8, maps8 = coarse(features)
        xy4, maps4 = fine(features, early)
        assert maps8.shape == (2, 3, 8, 8) and maps4.shape == (2, 3, 16, 16)
        # The correction starts at zero: the soft-argmax of the up-sampled logits
        # stays within a quarter of a stride-8 cell of the stride-8 one.
        assert (xy4 - xy8).abs().max() < 2.0
        xy4.sum().backward()
        assert fine.refine[-1].weight.grad.abs().sum() > 0

    def test_needs_the_stride4_features(self):
        head = KeypointHead(8, 3, image_size=64, feature_size=8, early_channels=4)
        with pytest.raises(ValueError, match="early"):
            head(torch.randn(1, 8, 8, 8))

    def test_regression_head_cannot_refine(self):
        with pytest.raises(ValueError, match="early_channels"):
            KeypointHead(8, 3, image_size=64, feature_size=8, mode="regression", early_channels=4)
