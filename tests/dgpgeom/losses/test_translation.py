"""Tests for dgpgeom.losses.translation."""

import math

import numpy as np
import pytest
import torch
from torch.func import vmap

from dgpgeom.losses import (
    translation_loss,
)
from dgpgeom.validation import ShapeError

from ._problems import (
    leaves,
)

# ----------------------------------------------------------------------- translation


class TestTranslationLoss:
    def test_value(self, device, dtype):
        g = torch.Generator().manual_seed(1)
        pred = torch.randn(6, 3, generator=g, dtype=torch.float64)
        gt = torch.randn(6, 3, generator=g, dtype=torch.float64)
        expected = np.sqrt(np.mean(np.sum((pred.numpy() - gt.numpy()) ** 2, axis=1)))
        loss = translation_loss(pred.to(device, dtype), gt.to(device, dtype))
        assert loss.dtype == dtype
        assert abs(float(loss) - expected) < 1e-6 * max(1.0, expected)

    def test_valid_mask_and_batch_dims(self, device, dtype):
        g = torch.Generator().manual_seed(2)
        pred = torch.randn(2, 3, 3, generator=g).to(device, dtype)
        gt = torch.randn(2, 3, 3, generator=g).to(device, dtype)
        valid = torch.tensor([[True, False, True], [False, False, True]], device=device)
        sq = (pred - gt).square().sum(-1)
        torch.testing.assert_close(translation_loss(pred, gt, valid), sq[valid].mean().sqrt())
        bad = pred.clone()
        bad[0, 1] = math.nan
        torch.testing.assert_close(translation_loss(bad, gt, valid), sq[valid].mean().sqrt())
        none = translation_loss(pred, gt, torch.zeros_like(valid))
        assert none == 0

    def test_zero_loss_gradient_is_finite(self, device, dtype):
        t = torch.randn(4, 3, device=device, dtype=dtype, requires_grad=True)
        loss = translation_loss(t, t.detach())
        loss.backward()
        assert loss == 0 and torch.isfinite(t.grad).all()

    def test_bad_input(self):
        with pytest.raises(ShapeError, match="translation_gt"):
            translation_loss(torch.zeros(4, 3), torch.zeros(4, 2))
        with pytest.raises(ShapeError, match="valid"):
            translation_loss(torch.zeros(4, 3), torch.zeros(4, 3), torch.ones(4))
        with pytest.raises(ShapeError, match="broadcast"):
            translation_loss(torch.zeros(4, 3), torch.zeros(5, 3))

    def test_gradcheck(self):
        pred, gt = leaves(
            torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
        )
        valid = torch.tensor([True, True, False, True, True])
        assert torch.autograd.gradcheck(lambda a, b: translation_loss(a, b, valid), (pred, gt))
        assert torch.autograd.gradgradcheck(lambda a, b: translation_loss(a, b, valid), (pred, gt))

    def test_vmap_and_compile(self):
        pred, gt = torch.randn(3, 4, 3), torch.randn(3, 4, 3)
        mapped = vmap(translation_loss)(pred, gt)
        torch.testing.assert_close(
            mapped, torch.stack([translation_loss(pred[i], gt[i]) for i in range(3)])
        )
        compiled = torch.compile(translation_loss, backend="eager", fullgraph=True)
        torch.testing.assert_close(compiled(pred, gt), translation_loss(pred, gt))
