"""Tests for handdgp.data.sample: HandSample, collation, the projection helper."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handdgp.data import (
    HandSample,
    collate_hand_samples,
    opengl_to_opencv,
    project_points,
)


class TestHandSampleAndCollate:
    def _sample(self, **kw):
        base = {
            "image": np.zeros((4, 5, 3), np.uint8),
            "intrinsics": np.eye(3, dtype=np.float32),
            "index": 0,
            "source": "x",
        }
        return HandSample(**{**base, **kw})

    def test_collate(self):
        kp = np.ones((21, 3), np.float32)
        batch = collate_hand_samples(
            [self._sample(keypoints3d=kp, scale=0.01, params={"p": np.zeros(2)})] * 3
        )
        assert batch["keypoints3d"].shape == (3, 21, 3) and batch["mask"] is None
        assert batch["scale"].dtype == torch.float32 and len(batch["params"]) == 3

    def test_collate_errors(self):
        kp = np.ones((21, 3), np.float32)
        with pytest.raises(ValueError, match="keypoints3d"):
            collate_hand_samples([self._sample(keypoints3d=kp), self._sample()])
        with pytest.raises(ValueError, match="image"):
            collate_hand_samples(
                [self._sample(), self._sample(image=np.zeros((5, 5, 3), np.uint8))]
            )
        with pytest.raises(ValueError, match="no samples"):
            collate_hand_samples([])

    def test_project_points(self):
        K = np.array([[100.0, 2.0, 50.0], [0.0, 110.0, 40.0], [0.0, 0.0, 1.0]])
        p = np.array([[0.1, -0.2, 2.0], [0.0, 0.0, 1.0]])
        expected = np.array([[100 * 0.05 + 2 * -0.1 + 50, 110 * -0.1 + 40], [50, 40]])
        np.testing.assert_allclose(project_points(p, K), expected, rtol=1e-6)

    def test_opengl_to_opencv(self):
        np.testing.assert_array_equal(
            opengl_to_opencv(np.array([[1.0, 2.0, -3.0]])), [[1.0, -2.0, 3.0]]
        )
