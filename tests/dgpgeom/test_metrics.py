"""Tests for dgpgeom.metrics, against an independent NumPy/SciPy version of the FreiHAND protocol."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import orthogonal_procrustes
from scipy.spatial import cKDTree
from torch.func import vmap

from dgpgeom.metrics import (
    FreiHANDEvaluator,
    f_score,
    pck_auc,
    pck_thresholds,
    point_error,
    procrustes_align,
    procrustes_error,
    root_relative_error,
)
from dgpgeom.validation import ShapeError

# --------------------------------------------------- reference (NumPy / SciPy, per sample)


def ref_align(gt, pred, *, umeyama=False):
    """Similarity alignment of pred onto gt; returns (aligned, R, s, s_gt, mean_gt, mean_pred)."""
    mean_gt, mean_pred = gt.mean(0), pred.mean(0)
    g, p = gt - mean_gt, pred - mean_pred
    s_gt = np.linalg.norm(g) + 1e-8
    s_pred = np.linalg.norm(p) + 1e-8
    g, p = g / s_gt, p / s_pred
    if umeyama:
        u, sig, vt = np.linalg.svd(g.T @ p)
        d = np.sign(np.linalg.det(u @ vt))
        r = u @ np.diag([1.0, 1.0, d]) @ vt
        s = sig[0] + sig[1] + d * sig[2]
    else:
        r, s = orthogonal_procrustes(g, p)
    aligned = p @ r.T * s * s_gt + mean_gt
    return aligned, r, s, s_gt, s_pred, mean_gt, mean_pred


def ref_align_verts_by_keypoints(verts, trafo, *, official):
    _, r, s, s_gt, s_pred, mean_gt, mean_pred = trafo
    if official:  # the official script's transform for non-MANO meshes
        mean_v = verts.mean(0)
        return (verts - mean_v) @ r.T * s * s_gt + (mean_gt - mean_pred) + mean_v
    return (verts - mean_pred) / s_pred @ r.T * s * s_gt + mean_gt


def ref_fscore(gt, pred, th):
    d_gt = cKDTree(pred).query(gt)[0]  # each GT point to the prediction
    d_pred = cKDTree(gt).query(pred)[0]
    precision = np.mean(d_pred < th)
    recall = np.mean(d_gt < th)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def ref_measures(errors, thresholds):
    """errors: (S, N). Per point over samples, as the official EvalUtil."""
    means, aucs, curves = [], [], []
    norm = np.trapezoid(np.ones_like(thresholds), thresholds)
    for k in range(errors.shape[1]):
        data = errors[:, k]
        means.append(np.mean(data))
        curve = np.array([np.mean((data <= t).astype(float)) for t in thresholds])
        curves.append(curve)
        aucs.append(np.trapezoid(curve, thresholds) / norm)
    return np.mean(means), np.mean(aucs), np.mean(np.array(curves), 0)


def ref_evaluate(pred_xyz, pred_verts, gt_xyz, gt_verts, *, mode="own", umeyama=False):
    thresholds = np.linspace(0.0, 0.05, 100)
    errs = {"xyz": [], "xyz_al": [], "mesh": [], "mesh_al": []}
    f, f_al = [], []
    for i in range(len(pred_xyz)):
        xyz, verts, xyz_p, verts_p = gt_xyz[i], gt_verts[i], pred_xyz[i], pred_verts[i]
        errs["xyz"].append(np.linalg.norm(xyz - xyz_p, axis=1))
        trafo = ref_align(xyz, xyz_p, umeyama=umeyama)
        errs["xyz_al"].append(np.linalg.norm(xyz - trafo[0], axis=1))
        if mode == "own":
            verts_al = ref_align(verts, verts_p, umeyama=umeyama)[0]
            errs["mesh"].append(np.linalg.norm(verts - verts_p, axis=1))
            errs["mesh_al"].append(np.linalg.norm(verts - verts_al, axis=1))
        else:
            verts_al = ref_align_verts_by_keypoints(
                verts_p, trafo, official=mode == "keypoints_official"
            )
        f.append([ref_fscore(verts, verts_p, t) for t in (0.005, 0.015)])
        f_al.append([ref_fscore(verts, verts_al, t) for t in (0.005, 0.015)])
    scores, curves = {}, {}
    for name in ("xyz", "xyz_al", "mesh", "mesh_al"):
        if errs[name]:
            mean, auc, curve = ref_measures(np.array(errs[name]), thresholds)
            scores[f"{name}_mean3d"], scores[f"{name}_auc3d"] = mean * 100.0, auc
            curves[name] = curve
        else:
            scores[f"{name}_mean3d"] = scores[f"{name}_auc3d"] = math.nan
    f, f_al = np.array(f).mean(0), np.array(f_al).mean(0)
    for j, t in enumerate((5, 15)):
        scores[f"f_score_{t}"], scores[f"f_al_score_{t}"] = f[j], f_al[j]
    return scores, curves


# ------------------------------------------------------------------------- data


def random_rotation(g, batch=()):
    q = torch.randn(*batch, 3, 3, generator=g, dtype=torch.float64)
    r, _ = torch.linalg.qr(q)
    return r * torch.linalg.det(r)[..., None, None].sign()


def make_hands(b=6, j=21, v=60, *, seed=0, noise=0.008, v_pred=None):
    """Random point sets ~10 cm across, 0.6 m in front of the camera, with noisy predictions."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.tensor([0.02, -0.01, 0.6], dtype=torch.float64)
    gt_xyz = torch.randn(b, j, 3, generator=g, dtype=torch.float64) * 0.04 + centre
    gt_verts = torch.randn(b, v, 3, generator=g, dtype=torch.float64) * 0.04 + centre
    rot = random_rotation(g, (b,))
    shift = torch.randn(b, 1, 3, generator=g, dtype=torch.float64) * 0.02
    scale = 1.0 + 0.1 * torch.randn(b, 1, 1, generator=g, dtype=torch.float64)

    def perturb(x):
        local = (x - centre) @ (0.9 * torch.eye(3, dtype=torch.float64) + 0.1 * rot).mT
        return (
            local * scale
            + centre
            + shift
            + noise * torch.randn(x.shape, generator=g, dtype=torch.float64)
        )

    pred_xyz = perturb(gt_xyz)
    pred_verts = perturb(gt_verts)
    if v_pred is not None:
        pred_verts = torch.randn(b, v_pred, 3, generator=g, dtype=torch.float64) * 0.04 + centre
    return pred_xyz, pred_verts, gt_xyz, gt_verts


def np_(t):
    return t.detach().cpu().double().numpy()


# ------------------------------------------------------------------------ point_error


class TestPointError:
    def test_values_and_shapes(self, device, dtype):
        pred, _, gt, _ = make_hands()
        err = point_error(pred.to(device, dtype), gt.to(device, dtype))
        assert err.shape == (6, 21) and err.dtype == dtype
        rtol = 1e-12 if dtype == torch.float64 else 1e-5  # float32: input rounding
        np.testing.assert_allclose(
            np_(err), np.linalg.norm(np_(pred) - np_(gt), axis=-1), rtol=rtol
        )
        assert point_error(pred[0], gt).shape == (6, 21)

    def test_bad_input(self):
        with pytest.raises(ShapeError, match="gt"):
            point_error(torch.zeros(2, 21, 3), torch.zeros(2, 20, 3))
        with pytest.raises(ShapeError, match="pred"):
            point_error(torch.zeros(2, 21, 2), torch.zeros(2, 21, 3))

    def test_meta_and_half(self):
        assert point_error(
            torch.zeros(2, 5, 3, device="meta"), torch.zeros(5, 3, device="meta")
        ).shape == (2, 5)
        half = point_error(
            torch.ones(2, 3, dtype=torch.float16), torch.zeros(2, 3, dtype=torch.float16)
        )
        assert half.dtype == torch.float16 and torch.allclose(
            half.float(), torch.full((2,), 3**0.5), atol=1e-3
        )


class TestRootRelativeError:
    def test_translation_invariant(self, device, dtype):
        pred, _, gt, _ = (t.to(device, dtype) for t in make_hands())
        shift = torch.tensor([0.1, -0.2, 0.3], device=device, dtype=dtype)
        torch.testing.assert_close(
            root_relative_error(pred + shift, gt), root_relative_error(pred, gt)
        )
        assert (root_relative_error(pred, gt)[..., 0] == 0).all()

    def test_vertices_relative_to_root_joint(self, device, dtype):
        pred, pred_v, gt, gt_v = (t.to(device, dtype) for t in make_hands())
        err = root_relative_error(pred_v, gt_v, pred[..., 0, :], gt[..., 0, :])
        expected = np.linalg.norm(
            (np_(pred_v) - np_(pred)[:, :1]) - (np_(gt_v) - np_(gt)[:, :1]), axis=-1
        )
        np.testing.assert_allclose(np_(err), expected, rtol=1e-5, atol=1e-7)

    def test_bad_input(self):
        pred, _, gt, _ = make_hands()
        with pytest.raises(ShapeError, match="root_index"):
            root_relative_error(pred, gt, root_index=21)
        with pytest.raises(ShapeError, match="gt_root"):
            root_relative_error(pred, gt, pred[..., 0, :], gt[..., 0, :2])


# ------------------------------------------------------------------------- Procrustes


class TestProcrustesAlign:
    @pytest.mark.parametrize("reflection", ["allow", "forbid"])
    def test_against_scipy(self, reflection, device, dtype):
        pred, _, gt, _ = make_hands(b=8, seed=1, noise=0.02)
        result = procrustes_align(
            pred.to(device, dtype), gt.to(device, dtype), reflection=reflection
        )
        tol = 1e-10 if dtype == torch.float64 else 2e-6
        for i in range(8):
            aligned, r, *_ = ref_align(np_(gt[i]), np_(pred[i]), umeyama=reflection == "forbid")
            np.testing.assert_allclose(np_(result.aligned[i]), aligned, atol=tol)
            np.testing.assert_allclose(np_(result.rotation[i]), r, atol=50 * tol)
        # The returned similarity reproduces the aligned points.
        torch.testing.assert_close(result.transform(pred.to(device, dtype)), result.aligned)

    def test_similarity_is_undone(self, device, dtype):
        g = torch.Generator().manual_seed(5)
        _, _, gt, _ = make_hands()
        rot = random_rotation(g, (6,))
        pred = 1.7 * gt @ rot.mT + torch.tensor([0.3, -0.1, 0.2], dtype=torch.float64)
        result = procrustes_align(pred.to(device, dtype), gt.to(device, dtype))
        # The 1e-8 added to the norms (as the official script) leaves ~1e-8 m.
        atol = 1e-7 if dtype == torch.float64 else 1e-5
        torch.testing.assert_close(result.aligned, gt.to(device, dtype), atol=atol, rtol=0)
        torch.testing.assert_close(
            result.scale, torch.full((6,), 1 / 1.7, device=device, dtype=dtype)
        )
        assert procrustes_error(pred.to(device, dtype), gt.to(device, dtype)).max() < 10 * atol

    def test_reflection_no_guard_vs_umeyama(self, device, dtype):
        _, _, gt, _ = make_hands(b=4)
        mirrored = gt * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
        gt, mirrored = gt.to(device, dtype), mirrored.to(device, dtype)
        allow = procrustes_align(mirrored, gt, reflection="allow")
        forbid = procrustes_align(mirrored, gt, reflection="forbid")
        # FreiHAND's alignment maps a mirror image exactly onto the ground truth...
        assert procrustes_error(mirrored, gt).max() < 1e-5
        assert (torch.linalg.det(allow.rotation) < 0).all()
        # ...the Umeyama variant cannot.
        assert (torch.linalg.det(forbid.rotation) > 0).all()
        assert procrustes_error(mirrored, gt, reflection="forbid").mean() > 1e-3
        for i in range(4):
            ref = ref_align(np_(gt[i]), np_(mirrored[i]), umeyama=True)[0]
            np.testing.assert_allclose(np_(forbid.aligned[i]), ref, atol=1e-5)

    def test_zero_predictor(self, device, dtype):
        _, _, gt, _ = make_hands()
        gt = gt.to(device, dtype)
        zeros = torch.zeros_like(gt)
        result = procrustes_align(zeros, gt)
        assert torch.isfinite(result.aligned).all() and (result.scale == 0).all()
        centroid = gt.mean(-2, keepdim=True).expand_as(gt)
        torch.testing.assert_close(result.aligned, centroid)

    def test_batched_equals_per_item_and_vmap(self):
        pred, _, gt, _ = make_hands(b=5, seed=3)
        batched = procrustes_align(pred, gt).aligned
        for i in range(5):
            torch.testing.assert_close(procrustes_align(pred[i], gt[i]).aligned, batched[i])
        mapped = vmap(lambda p, g: procrustes_align(p, g).aligned)(pred, gt)
        torch.testing.assert_close(mapped, batched)

    def test_bad_input_and_meta(self):
        pred, _, gt, _ = make_hands()
        with pytest.raises(ValueError, match="reflection"):
            procrustes_align(pred, gt, reflection="maybe")
        with pytest.raises(ShapeError, match="gt"):
            procrustes_align(pred, gt[..., :2])
        meta = procrustes_align(pred.to("meta"), gt.to("meta"))
        assert meta.aligned.shape == (6, 21, 3) and meta.scale.shape == (6,)

    @settings(max_examples=30, deadline=None)
    @given(seed=st.integers(0, 2**31 - 1), n=st.integers(4, 30), noise=st.floats(0.0, 0.05))
    def test_property_matches_scipy(self, seed, n, noise):
        pred, _, gt, _ = make_hands(b=2, j=n, seed=seed, noise=noise)
        result = procrustes_align(pred, gt)
        for i in range(2):
            np.testing.assert_allclose(
                np_(result.aligned[i]), ref_align(np_(gt[i]), np_(pred[i]))[0], atol=1e-9
            )
        # Alignment never increases the error of the best-fitting similarity: it is
        # at most the error after translation alone, and invariant to moving pred.
        rigid = pred @ random_rotation(torch.Generator().manual_seed(seed)).mT + 0.4
        torch.testing.assert_close(
            procrustes_align(rigid, gt).aligned, result.aligned, atol=1e-9, rtol=0
        )


class TestProcrustesError:
    def test_against_reference(self, device, dtype):
        pred, _, gt, _ = make_hands(seed=4)
        err = procrustes_error(pred.to(device, dtype), gt.to(device, dtype))
        assert err.shape == (6, 21)
        for i in range(6):
            ref = np.linalg.norm(np_(gt[i]) - ref_align(np_(gt[i]), np_(pred[i]))[0], axis=1)
            np.testing.assert_allclose(np_(err[i]), ref, atol=1e-6)

    def test_zero_predictor_is_constant(self):
        """The all-zero prediction's aligned error is the GT's spread: finite, position-independent."""
        _, _, gt, _ = make_hands(b=20, seed=8)
        zeros = torch.zeros_like(gt)
        err = procrustes_error(zeros, gt).mean(-1)
        spread = (gt - gt.mean(-2, keepdim=True)).norm(dim=-1).mean(-1)
        assert torch.isfinite(err).all()
        torch.testing.assert_close(err, spread)
        moved = procrustes_error(zeros, gt + torch.tensor([0.5, -0.3, 1.0], dtype=torch.float64))
        torch.testing.assert_close(moved.mean(-1), err)
        assert (point_error(zeros, gt).mean(-1) > 5 * err).all()  # raw error ~ the distance


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


# ------------------------------------------------- empty and non-finite input, misuse


class TestEmptyAndNonFinite:
    def test_f_score_empty_ground_truth_and_prediction(self):
        points = torch.rand(2, 5, 3)
        empty = torch.zeros(2, 0, 3)
        no_gt = f_score(points, empty)
        assert torch.equal(no_gt.precision, torch.zeros(2, 2))
        assert torch.equal(no_gt.recall, torch.zeros(2, 2)) and torch.equal(no_gt.f, torch.zeros(2, 2))
        no_pred = f_score(empty, points)
        assert torch.equal(no_pred.precision, torch.zeros(2, 2))
        assert torch.equal(no_pred.recall, torch.zeros(2, 2)) and torch.equal(no_pred.f, torch.zeros(2, 2))

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
