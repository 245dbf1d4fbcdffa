"""The metrics on empty and non-finite input, and misuse."""

import math

import pytest
import torch

from dgpgeom.metrics import (
    FreiHANDEvaluator,
    f_score,
    pck_auc,
    root_relative_error,
)
from dgpgeom.validation import ShapeError

# ------------------------------------------------- empty and non-finite input, misuse


class TestEmptyAndNonFinite:
    def test_f_score_empty_ground_truth_and_prediction(self):
        points = torch.rand(2, 5, 3)
        empty = torch.zeros(2, 0, 3)
        no_gt = f_score(points, empty)
        assert torch.equal(no_gt.precision, torch.zeros(2, 2))
        assert torch.equal(no_gt.recall, torch.zeros(2, 2)) and torch.equal(
            no_gt.f, torch.zeros(2, 2)
        )
        no_pred = f_score(empty, points)
        assert torch.equal(no_pred.precision, torch.zeros(2, 2))
        assert torch.equal(no_pred.recall, torch.zeros(2, 2)) and torch.equal(
            no_pred.f, torch.zeros(2, 2)
        )

    def test_f_score_nan_points_are_misses(self):
        gt = torch.tensor([[0.0, 0.0, 0.5], [0.01, 0.0, 0.5]])
        pred = gt.clone()
        pred[1] = float("nan")
        result = f_score(pred, gt)
        assert result.precision.tolist() == [0.5, 0.5] and torch.isfinite(result.f).all()

    def test_pck_auc_zero_span_is_the_pck(self):
        errors = torch.tensor([[0.0, 0.01], [0.02, 0.0]])
        result = pck_auc(errors, torch.zeros(3))
        assert result.point_auc.tolist() == [0.5, 0.5] and result.auc.item() == 0.5
        single = pck_auc(errors, torch.tensor([0.01]))
        assert single.point_auc.tolist() == [0.5, 1.0]

    @pytest.mark.parametrize(
        ("errors", "thresholds", "message"),
        [
            (torch.zeros(0, 21), None, "samples"),
            (torch.zeros(4, 0), None, "points"),
            (torch.zeros(4, 21), torch.zeros(0), "thresholds"),
        ],
    )
    def test_pck_auc_empty_input_is_an_error(self, errors, thresholds, message):
        with pytest.raises(ShapeError, match=message):
            pck_auc(errors, thresholds)

    def test_evaluator_nan_prediction_is_a_miss_not_a_linalg_error(self):
        gt_xyz = torch.rand(3, 21, 3, generator=torch.Generator().manual_seed(0)) * 0.1 + 0.5
        gt_verts = torch.rand(3, 30, 3, generator=torch.Generator().manual_seed(1)) * 0.1 + 0.5
        pred_xyz, pred_verts = gt_xyz.clone(), gt_verts.clone()
        pred_xyz[1, 4] = float("nan")
        for verts in (gt_verts, gt_verts[:, :20]):  # "own" and "keypoints" mesh alignment
            evaluator = FreiHANDEvaluator()
            evaluator.update(pred_xyz, pred_verts[:, : verts.shape[1]], gt_xyz, verts)
            scores = evaluator.compute().scores
            assert scores["xyz_mean3d"] == math.inf and scores["xyz_al_mean3d"] == math.inf
            assert scores["xyz_auc3d"] == pytest.approx(2 / 3)  # two perfect samples of three
            assert scores["f_score_5"] == pytest.approx(2 / 3)
            assert scores["f_al_score_15"] == pytest.approx(2 / 3)


class TestMisuse:
    def test_evaluator_dtype_as_a_string(self):
        with pytest.raises(ValueError, match=r"dtype: expected a floating-point torch\.dtype"):
            FreiHANDEvaluator(dtype="float64")

    @pytest.mark.parametrize("root_index", [0.5, True, "0"])
    def test_root_index_not_an_int(self, root_index):
        points = torch.rand(2, 21, 3)
        with pytest.raises(ValueError, match="root_index: expected an int"):
            root_relative_error(points, points, root_index=root_index)
