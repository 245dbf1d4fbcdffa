"""Tests for handdgp.net.sampling: bilinear feature sampling at pixel positions."""

import pytest
import torch

from handdgp.net.sampling import sample_at_points


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
