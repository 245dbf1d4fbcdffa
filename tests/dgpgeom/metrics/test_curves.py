"""Tests for dgpgeom.metrics.curves, against the NumPy/SciPy reference."""

import numpy as np
import pytest
import torch

from dgpgeom.metrics import (
    f_score,
    pck_auc,
    pck_thresholds,
)
from dgpgeom.validation import ShapeError

from ._reference import (
    make_hands,
    np_,
    ref_fscore,
    ref_measures,
)

# ----------------------------------------------------------------------- PCK and AUC


class TestPckAuc:
    def test_against_reference(self, device, dtype):
        g = torch.Generator().manual_seed(0)
        errors = torch.rand(50, 21, generator=g, dtype=torch.float64) * 0.06
        errors[0, 0] = 0.0
        errors[1, 0] = float(np.linspace(0, 0.05, 100)[40])  # exactly on a threshold
        result = pck_auc(errors.to(device, dtype))
        thresholds = np.linspace(0.0, 0.05, 100)
        _, auc, curve = ref_measures(np_(errors.to(dtype)), thresholds)
        assert result.thresholds.shape == (100,)
        assert abs(float(result.auc) - auc) < 1e-6
        np.testing.assert_allclose(np_(result.curve), curve, atol=1e-6)
        assert result.point_curves.shape == (21, 100) and result.point_auc.shape == (21,)

    def test_perfect_and_hopeless(self):
        assert pck_auc(torch.zeros(5, 3, dtype=torch.float64)).auc == 1.0
        assert pck_auc(torch.full((5, 3), 0.06, dtype=torch.float64)).auc == 0.0

    def test_thresholds_equal_numpy(self):
        np.testing.assert_array_equal(pck_thresholds().numpy(), np.linspace(0.0, 0.05, 100))

    def test_bad_input(self):
        with pytest.raises(ShapeError, match="errors"):
            pck_auc(torch.zeros(5))
        with pytest.raises(ShapeError, match="thresholds"):
            pck_auc(torch.zeros(5, 3), torch.zeros(2, 2))

    def test_batch_dims(self):
        errors = torch.rand(2, 10, 4, dtype=torch.float64) * 0.05
        result = pck_auc(errors)
        assert result.auc.shape == (2,)
        torch.testing.assert_close(result.auc[1], pck_auc(errors[1]).auc)


# ------------------------------------------------------------------------------ F-score


class TestFScore:
    @pytest.mark.parametrize("v_pred", [60, 45])
    def test_against_kdtree(self, v_pred, device, dtype):
        pred, _, gt, _ = make_hands(b=4, j=60, seed=2, noise=0.006)
        pred = pred[:, :v_pred]
        result = f_score(pred.to(device, dtype), gt.to(device, dtype), (0.005, 0.015, 0.03))
        assert result.f.shape == (4, 3)
        for i in range(4):
            for j, t in enumerate((0.005, 0.015, 0.03)):
                assert abs(float(result.f[i, j]) - ref_fscore(np_(gt[i]), np_(pred[i]), t)) < 1e-6

    def test_precision_recall_definitions(self):
        gt = torch.zeros(1, 4, 3, dtype=torch.float64)
        gt[0, :, 0] = torch.tensor([0.0, 0.1, 0.2, 0.3])
        pred = gt[:, :1].clone()  # one predicted point, on the first GT point
        result = f_score(pred, gt, (0.005,))
        assert float(result.precision) == 1.0 and float(result.recall) == 0.25
        assert abs(float(result.f) - 0.4) < 1e-12
        far = f_score(pred + 1.0, gt, (0.005,))
        assert float(far.f) == 0.0 and torch.isfinite(far.f).all()

    def test_chunking_is_exact(self):
        pred, _, gt, _ = make_hands(b=3, j=100, seed=6)
        full = f_score(pred, gt)
        tiny = f_score(pred, gt, chunk_elements=7)
        for a, b in zip(full, tiny, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)

    def test_identity_and_threshold_is_strict(self):
        _, _, gt, _ = make_hands(b=2)
        assert (f_score(gt, gt).f == 1).all()
        pred = gt.clone()
        pred[..., 0] += 0.25  # every point exactly 0.25 from its twin
        assert (f_score(pred[:, :1], gt[:, :1], (0.25,)).f == 0).all()

    def test_bad_input(self):
        pred, _, gt, _ = make_hands(b=2)
        with pytest.raises(ShapeError, match="gt"):
            f_score(pred, gt[..., :2])
        with pytest.raises(ValueError, match="thresholds"):
            f_score(pred, gt, ())
        with pytest.raises(ValueError, match="chunk_elements"):
            f_score(pred, gt, chunk_elements=0)

    def test_meta_and_compile(self):
        pred, _, gt, _ = make_hands(b=2)
        meta = f_score(pred.to("meta"), gt.to("meta"))
        assert meta.f.shape == (2, 2)
        compiled = torch.compile(f_score, backend="eager", fullgraph=True)
        torch.testing.assert_close(compiled(pred, gt).f, f_score(pred, gt).f)
