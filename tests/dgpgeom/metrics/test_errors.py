"""Tests for dgpgeom.metrics.errors, against the NumPy/SciPy reference."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import vmap

from dgpgeom.metrics import (
    point_error,
    procrustes_align,
    procrustes_error,
    root_relative_error,
)
from dgpgeom.validation import ShapeError

from ._reference import (
    make_hands,
    np_,
    random_rotation,
    ref_align,
)

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


class TestProcrustesNonFinite:
    @pytest.mark.parametrize("bad", [float("nan"), float("inf")])
    @pytest.mark.parametrize("where", ["pred", "gt"])
    def test_a_bad_problem_is_nan_and_the_others_unchanged(self, bad, where):
        generator = torch.Generator().manual_seed(3)
        pred = torch.randn(4, 21, 3, generator=generator, dtype=torch.float64)
        gt = torch.randn(4, 21, 3, generator=generator, dtype=torch.float64)
        clean = procrustes_align(pred, gt)
        (pred if where == "pred" else gt)[2, 5, 1] = bad
        result = procrustes_align(pred, gt)
        for name in ("aligned", "rotation", "scale", "translation"):
            value, expected = getattr(result, name), getattr(clean, name)
            assert value[2].isnan().all(), name
            torch.testing.assert_close(value[[0, 1, 3]], expected[[0, 1, 3]])
        errors = procrustes_error(pred, gt)
        assert errors[2].isnan().all() and errors[[0, 1, 3]].isfinite().all()


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
