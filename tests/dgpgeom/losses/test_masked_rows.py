"""Every loss: masked rows get zero gradients, even with NaN inside."""

import pytest
import torch

from dgpgeom.losses import (
    edge_length_loss,
    normal_loss,
    reprojection_loss,
    translation_loss,
    vertex_projection_loss,
)

# ------------------------------------------------------------- masked rows, NaN inside


def _nan_in_masked_row(*shape, seed=0, dtype=torch.float64):
    x = torch.rand(*shape, dtype=dtype, generator=torch.Generator().manual_seed(seed)) + 0.5
    x[1] = float("nan")  # row 1 is masked out below
    return x.requires_grad_()


class TestMaskedRowsGetZeroGradients:
    """A masked-out row holding NaN must leave the loss and every gradient finite, and
    its own gradient exactly zero (the docstrings promise it)."""

    valid = torch.tensor([True, False, True])

    def _check(self, loss, *inputs):
        assert torch.isfinite(loss)
        grads = torch.autograd.grad(loss, inputs, allow_unused=True)
        for g in grads:
            assert g is not None and torch.isfinite(g).all()
            assert torch.equal(g[1], torch.zeros_like(g[1]))
            assert g[0].abs().sum() > 0  # the valid rows do learn

    def test_translation_loss(self):
        pred, gt = _nan_in_masked_row(3, 3), _nan_in_masked_row(3, 3, seed=1)
        self._check(translation_loss(pred, gt, self.valid), pred, gt)

    @pytest.mark.parametrize("loss", [edge_length_loss, normal_loss])
    def test_mesh_losses(self, loss):
        faces = torch.tensor([[0, 1, 2], [1, 2, 3]])
        pred, gt = _nan_in_masked_row(3, 4, 3), _nan_in_masked_row(3, 4, 3, seed=1)
        if loss is normal_loss:
            self._check(loss(pred, gt, faces, self.valid), pred)  # no gradient into gt
        else:
            self._check(loss(pred, gt, faces, self.valid), pred, gt)

    @pytest.mark.parametrize("loss", [reprojection_loss, vertex_projection_loss])
    def test_projection_losses(self, loss):
        points = _nan_in_masked_row(3, 5, 3)
        targets = _nan_in_masked_row(3, 5, 2, seed=1) * 20
        valid = self.valid[:, None].expand(3, 5)
        k = torch.tensor([[100.0, 0, 10], [0, 100.0, 10], [0, 0, 1]], dtype=torch.float64)
        self._check(loss(points, targets, k, valid=valid), points, targets)
