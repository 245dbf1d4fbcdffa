"""Tests for dgpgeom.metrics.freihand: the evaluator against the NumPy/SciPy FreiHAND protocol."""

import json
import math

import numpy as np
import pytest
import torch

from dgpgeom.metrics import (
    FreiHANDEvaluator,
)
from dgpgeom.validation import ShapeError

from ._reference import (
    make_hands,
    np_,
    ref_evaluate,
)

# ----------------------------------------------------------------------------- evaluator


def run_evaluator(data, batch_size=4, device="cpu", **kwargs):
    evaluator = FreiHANDEvaluator(**kwargs)
    for start in range(0, data[0].shape[0], batch_size):
        evaluator.update(*(t[start : start + batch_size].to(device) for t in data))
    return evaluator.compute()


def assert_scores_close(ours, ref, atol=1e-9):
    assert list(ours) == [
        "xyz_mean3d", "xyz_auc3d", "xyz_al_mean3d", "xyz_al_auc3d",
        "mesh_mean3d", "mesh_auc3d", "mesh_al_mean3d", "mesh_al_auc3d",
        "f_score_5", "f_al_score_5", "f_score_15", "f_al_score_15",
    ]  # fmt: skip
    for key, value in ref.items():
        if math.isnan(value):
            assert math.isnan(ours[key]), key
        else:
            assert abs(ours[key] - value) < atol, (key, ours[key], value)


class TestFreiHANDEvaluator:
    def test_against_reference(self, device):
        data = make_hands(b=10, v=80, seed=11)
        result = run_evaluator(data, device=device)
        ref_scores, ref_curves = ref_evaluate(*(np_(t) for t in data))
        assert_scores_close(result.scores, ref_scores)
        for name, curve in ref_curves.items():
            np.testing.assert_allclose(result.pck_curves[name], curve, atol=1e-12)
        assert result.num_samples == 10
        assert 0 < result.scores["xyz_auc3d"] < 1 and 0 < result.scores["f_al_score_15"] <= 1

    @pytest.mark.parametrize("mode", ["keypoints", "keypoints_official"])
    def test_other_vertex_count(self, mode):
        data = make_hands(b=5, v=40, seed=12, v_pred=55)
        result = run_evaluator(data, batch_size=2, mesh_alignment=mode)
        ref_scores, _ = ref_evaluate(*(np_(t) for t in data), mode=mode)
        assert_scores_close(result.scores, ref_scores)
        assert math.isnan(result.scores["mesh_mean3d"])
        if mode == "keypoints":  # "auto" picks the keypoint transform for other counts
            auto = run_evaluator(data, batch_size=2)
            assert auto.scores == pytest.approx(result.scores, nan_ok=True)

    def test_keypoint_transform_on_same_count(self):
        data = make_hands(b=4, v=30, seed=13)
        result = run_evaluator(data, mesh_alignment="keypoints")
        ref_scores, _ = ref_evaluate(*(np_(t) for t in data), mode="keypoints")
        for key in ("f_al_score_5", "f_al_score_15", "xyz_al_mean3d"):
            assert abs(result.scores[key] - ref_scores[key]) < 1e-9

    def test_umeyama_option(self):
        data = make_hands(b=6, v=30, seed=14)
        mirror = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
        data = (data[0] * mirror, data[1] * mirror, data[2], data[3])
        allow = run_evaluator(data)
        forbid = run_evaluator(data, reflection="forbid")
        ref_forbid, _ = ref_evaluate(*(np_(t) for t in data), umeyama=True)
        assert_scores_close(forbid.scores, ref_forbid)
        assert allow.scores["xyz_al_mean3d"] < forbid.scores["xyz_al_mean3d"]

    def test_identity(self):
        _, _, gt, gt_v = make_hands(b=3)
        result = run_evaluator((gt, gt_v, gt, gt_v))
        s = result.scores
        assert s["xyz_mean3d"] == 0 and s["mesh_mean3d"] == 0
        assert s["xyz_auc3d"] == 1 and s["mesh_auc3d"] == 1
        assert s["f_score_5"] == 1 and s["f_al_score_15"] == 1
        # The official alignment adds 1e-8 to the norms, so aligned errors are ~1e-9 m,
        # not 0: the first PCK threshold (0 m) fails and the AUC is 1 - 0.5/99.
        assert s["xyz_al_mean3d"] < 1e-6
        ref_scores, _ = ref_evaluate(*(np_(t) for t in (gt, gt_v, gt, gt_v)))
        assert_scores_close(s, ref_scores)
        assert s["mesh_al_auc3d"] >= 1 - 0.5 / 99

    def test_zero_predictor(self):
        _, _, gt, gt_v = make_hands(b=8, seed=15)
        zero = run_evaluator((torch.zeros_like(gt), torch.zeros_like(gt_v), gt, gt_v))
        ref_scores, _ = ref_evaluate(
            np.zeros_like(np_(gt)), np.zeros_like(np_(gt_v)), np_(gt), np_(gt_v)
        )
        assert_scores_close(zero.scores, ref_scores)
        # Raw error ~ the camera distance (60 cm); aligned error ~ the spread of the points.
        assert 55 < zero.scores["xyz_mean3d"] < 65
        assert all(math.isfinite(v) for v in zero.scores.values())
        assert zero.scores["xyz_al_mean3d"] < 10

    def test_batching_does_not_matter(self):
        data = make_hands(b=9, v=25, seed=16)
        one = run_evaluator(data, batch_size=9)
        many = run_evaluator(data, batch_size=2)
        assert one.scores == pytest.approx(many.scores, abs=1e-12)

    def test_float32_inputs(self):
        data = make_hands(b=4, v=25, seed=17)
        ref = run_evaluator(data).scores
        low = run_evaluator(tuple(t.float() for t in data)).scores
        for key in ("xyz_mean3d", "xyz_al_mean3d", "mesh_mean3d", "mesh_al_mean3d"):
            assert abs(low[key] - ref[key]) < 1e-4  # cm

    def test_outputs(self, tmp_path):
        data = make_hands(b=4, v=25, seed=18)
        result = run_evaluator(data)
        path = result.write_scores(tmp_path / "scores.txt")
        lines = path.read_text().splitlines()
        assert len(lines) == 12
        assert lines[0] == f"xyz_mean3d: {result.scores['xyz_mean3d']:f}"
        assert lines[-1].startswith("f_al_score_15: ")
        pck = json.loads(result.write_pck_data(tmp_path / "pck_data.json").read_text())
        assert pck["xyz"][0][-1] == pytest.approx(5.0) and len(pck["mesh_al"][1]) == 100
        png = result.plot_pck(tmp_path / "pck.png")
        assert png.stat().st_size > 1000

    def test_bad_input(self):
        pred, pred_v, gt, gt_v = make_hands(b=2)
        with pytest.raises(ValueError, match="reflection"):
            FreiHANDEvaluator(reflection="no")
        with pytest.raises(ValueError, match="mesh_alignment"):
            FreiHANDEvaluator(mesh_alignment="vertices")
        evaluator = FreiHANDEvaluator()
        with pytest.raises(RuntimeError, match="no samples"):
            evaluator.compute()
        with pytest.raises(ShapeError, match="gt_xyz"):
            evaluator.update(pred, pred_v, gt[:, :20], gt_v)
        with pytest.raises(ShapeError, match="pred_verts"):
            evaluator.update(pred, pred_v[0], gt, gt_v)
        with pytest.raises(ShapeError, match="pred_verts"):
            FreiHANDEvaluator(mesh_alignment="own").update(pred, pred_v[:, :7], gt, gt_v)
        evaluator.update(pred, pred_v, gt, gt_v)
        with pytest.raises(ShapeError, match="pred_verts"):
            evaluator.update(pred, pred_v[:, :7], gt, gt_v[:, :7])

    def test_reset_and_meta_update(self):
        data = make_hands(b=2, v=20)
        evaluator = FreiHANDEvaluator()
        evaluator.update(*data)
        evaluator.reset()
        assert evaluator.num_samples == 0
        meta = FreiHANDEvaluator()
        meta.update(*(t.to("meta") for t in data))  # update() needs no host values
        assert meta.num_samples == 2
