"""Tests for handdgp.hand.regressor: the non-negative keypoint regressor fit."""

from __future__ import annotations

import numpy as np
import pytest

from handdgp.hand.regressor import fit_keypoint_regressor, regressor_error


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    vertices = rng.normal(size=(200, 30, 3))
    true = np.zeros((3, 30))
    true[0, [0, 1, 2]] = [0.2, 0.3, 0.5]
    true[1, [5, 6]] = [0.5, 0.5]
    true[2, 7] = 1.0
    keypoints = np.einsum("kv,nvc->nkc", true, vertices)
    return vertices, keypoints, true


class TestFitKeypointRegressor:
    def test_recovers_convex_combination(self, data):
        vertices, keypoints, true = data
        reg = fit_keypoint_regressor(vertices, keypoints, vertices[0], keypoints[0], num_candidates=30, ridge=0.0)
        np.testing.assert_allclose(reg, true, atol=1e-6)

    def test_constraints_with_noise(self, data):
        vertices, keypoints, _ = data
        noisy = keypoints + np.random.default_rng(1).normal(scale=0.1, size=keypoints.shape)
        reg = fit_keypoint_regressor(vertices, noisy, vertices[0], keypoints[0], num_candidates=10)
        assert (reg >= 0).all()
        np.testing.assert_allclose(reg.sum(1), 1.0, atol=1e-12)
        assert ((reg > 0).sum(1) <= 10).all()  # only the 10 candidates

    def test_fixed_rows(self, data):
        vertices, keypoints, _ = data
        reg = fit_keypoint_regressor(vertices, keypoints, vertices[0], keypoints[0], fixed_rows={1: 12})
        assert reg[1, 12] == 1.0 and reg[1].sum() == 1.0

    def test_ridge_spreads_weights(self, data):
        vertices, keypoints, _ = data
        sharp = fit_keypoint_regressor(vertices, keypoints, vertices[0], keypoints[0], num_candidates=30, ridge=0.0)
        spread = fit_keypoint_regressor(vertices, keypoints, vertices[0], keypoints[0], num_candidates=30, ridge=1.0)
        assert (spread > 1e-6).sum() > (sharp > 1e-6).sum()


class TestRegressorError:
    def test_values(self, data):
        vertices, keypoints, true = data
        err = regressor_error(true, vertices, keypoints)
        assert err.mean == 0.0 and err.max == 0.0 and err.per_keypoint_mean.shape == (3,)
        shifted = regressor_error(true, vertices, keypoints + np.array([0.001, 0.0, 0.0]))
        np.testing.assert_allclose([shifted.mean, shifted.max], [1.0, 1.0])
