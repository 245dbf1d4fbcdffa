"""Tests for handdgp.errors: one meaning of RS (root-relative) and CS (camera space)."""

import pytest
import torch

from dgpgeom.metrics import point_error, procrustes_error, root_relative_error
from dgpgeom.validation import ShapeError
from handdgp.errors import hand_errors


def make_hands(b=4, j=21, v=60, seed=9):
    g = torch.Generator().manual_seed(seed)
    centre = torch.tensor([0.02, -0.01, 0.6], dtype=torch.float64)
    gt = torch.randn(b, j, 3, generator=g, dtype=torch.float64) * 0.04 + centre
    gt_v = torch.randn(b, v, 3, generator=g, dtype=torch.float64) * 0.04 + centre
    pred = gt + 0.01 * torch.randn(b, j, 3, generator=g, dtype=torch.float64) + 0.02
    pred_v = gt_v + 0.01 * torch.randn(b, v, 3, generator=g, dtype=torch.float64) + 0.02
    return pred, pred_v, gt, gt_v


class TestHandErrors:
    def test_values(self, device, dtype):
        pred, pred_v, gt, gt_v = (t.to(device, dtype) for t in make_hands())
        row = hand_errors(pred, pred_v, gt, gt_v)
        assert all(v.shape == () and v.dtype == dtype for v in row)
        torch.testing.assert_close(row.cs_mje, 1000 * point_error(pred, gt).mean())
        torch.testing.assert_close(row.cs_mve, 1000 * point_error(pred_v, gt_v).mean())
        torch.testing.assert_close(row.rs_mje, 1000 * root_relative_error(pred, gt).mean())
        torch.testing.assert_close(
            row.rs_mve, 1000 * root_relative_error(pred_v, gt_v, pred[:, 0], gt[:, 0]).mean()
        )
        # RS is root-relative, not Procrustes-aligned (PA), which can only be lower
        assert row.rs_mje > 1000 * procrustes_error(pred, gt).mean()

    def test_bad_input(self):
        pred, pred_v, gt, gt_v = make_hands()
        with pytest.raises(ShapeError, match="gt_verts"):
            hand_errors(pred, pred_v, gt, gt_v[:, :10])
