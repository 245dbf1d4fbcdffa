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
from dgpgeom.testing import check_gradients
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


def svd_align(pred, gt, reflection="allow"):
    """The SVD form of procrustes_align (as before it went SVD-free), batched, in float64.

    Returns ``(aligned, rotation, scale)``.
    """
    pred, gt = pred.double(), gt.double()
    mean_p, mean_g = pred.mean(-2, keepdim=True), gt.mean(-2, keepdim=True)
    norm_p = (pred - mean_p).norm(dim=(-2, -1)) + 1e-8
    norm_g = (gt - mean_g).norm(dim=(-2, -1)) + 1e-8
    p_n = (pred - mean_p) / norm_p[..., None, None]
    g_n = (gt - mean_g) / norm_g[..., None, None]
    u, sigma, vh = torch.linalg.svd(g_n.mT @ p_n)
    d = torch.ones_like(sigma)
    if reflection == "forbid":
        d[..., 2] = torch.linalg.det(u @ vh).sign()
    rotation = (u * d[..., None, :]) @ vh
    s = (sigma * d).sum(-1)
    aligned = (p_n @ rotation.mT) * (s * norm_g)[..., None, None] + mean_g
    return aligned, rotation, s * norm_g / norm_p


def similar_problems(b, n=21, *, seed, mirror=False):
    """Ground truth ~10 cm across and predictions under random rotations, scales
    (e^N(0, 0.5²)), shifts and noise (0 to 5 cm, 0 for the first problem); mirrored
    in x with ``mirror``. Float64 ``(pred, gt)``, `(b, n, 3)`."""
    g = torch.Generator().manual_seed(seed)
    f64 = {"generator": g, "dtype": torch.float64}
    gt = torch.randn(b, n, 3, **f64) * 0.04 + torch.tensor([0.02, -0.01, 0.6], dtype=torch.float64)
    source = gt * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64) if mirror else gt
    scale = torch.exp(0.5 * torch.randn(b, 1, 1, **f64))
    noise = 0.05 * torch.rand(b, 1, 1, **f64)
    noise[0] = 0.0
    pred = scale * source @ random_rotation(g, (b,)).mT + torch.randn(b, 1, 3, **f64)
    return pred + noise * torch.randn(b, n, 3, **f64), gt


def assert_rotations(rotation, proper):
    """Finite, orthogonal, and of determinant +1 where ``proper`` (a bool or a mask)."""
    eye = torch.eye(3, dtype=rotation.dtype, device=rotation.device)
    atol = 1e-12 if rotation.dtype == torch.float64 else 2e-6
    assert rotation.isfinite().all()
    torch.testing.assert_close(rotation.mT @ rotation, eye.expand_as(rotation), atol=atol, rtol=0)
    det = torch.linalg.det(rotation)
    assert ((det - 1).abs() < 10 * atol)[proper].all()
    assert ((det.abs() - 1).abs() < 10 * atol).all()


def squared_residual(aligned, gt):
    return ((aligned.double() - gt.double()) ** 2).sum((-2, -1))


class TestProcrustesMatchesSVD:
    """The SVD-free solver against the SVD form it replaces (float64 SVD reference).

    Measured on 4096 problems of these generators: |aligned - SVD| at most 8e-16 m in
    float64 (2e-15 mirrored under "forbid") and 9e-7 m in float32, as the float32 SVD;
    rotations 1e-14 and 3e-5. Unrelated unit-size point sets: 5e-14 and 1.6e-5 m (the
    float32 SVD: 5e-6 m; the "forbid" rotation is ill-conditioned there).

    Where the SVD's rotation is not unique (exactly planar or collinear sets) the
    result must be finite and orthogonal, proper under "forbid", with the SVD's scale
    and squared residual (to the tolerances); the aligned points are unique, and equal
    the SVD's, when only the prediction is degenerate; when the ground truth is, they
    may differ by a rotation about its line or a reflection through its plane, which
    leaves every per-point error unchanged.
    """

    @staticmethod
    def tolerances(dtype):
        # (aligned, metres; rotation; relative scale; relative squared residual)
        return (1e-10, 1e-9, 1e-10, 1e-10) if dtype == torch.float64 else (5e-6, 2e-4, 1e-5, 1e-5)

    @pytest.mark.parametrize("reflection", ["allow", "forbid"])
    @pytest.mark.parametrize("mirror", [False, True])
    def test_random_similarities(self, reflection, mirror, device, dtype):
        pred, gt = similar_problems(256, seed=11 + mirror, mirror=mirror)
        ref_aligned, ref_rotation, ref_scale = svd_align(pred, gt, reflection)
        result = procrustes_align(
            pred.to(device, dtype), gt.to(device, dtype), reflection=reflection
        )
        tol_aligned, tol_rotation, tol_scale, _ = self.tolerances(dtype)
        np.testing.assert_allclose(np_(result.aligned), np_(ref_aligned), atol=tol_aligned, rtol=0)
        np.testing.assert_allclose(
            np_(result.rotation), np_(ref_rotation), atol=tol_rotation, rtol=0
        )
        np.testing.assert_allclose(np_(result.scale), np_(ref_scale), rtol=tol_scale)
        assert_rotations(result.rotation, proper=reflection == "forbid")
        if mirror:  # the noise-free mirror image needs a reflection, which only "allow" gives
            det = torch.linalg.det(result.rotation.double())
            error = point_error(result.aligned[0], gt[0].to(device, dtype)).max()
            if reflection == "allow":
                assert det[0] < 0 and error < (1e-7 if dtype == torch.float64 else 5e-6)
            else:
                assert (det > 0).all() and error > 1e-3

    def test_pure_noise(self, device, dtype):
        """Unrelated point sets: the optimum is far from exact but still the SVD's (float32:
        10x the tolerance, the "forbid" rotation being ill-conditioned there)."""
        g = torch.Generator().manual_seed(12)
        pred, gt = torch.randn(2, 128, 8, 3, generator=g, dtype=torch.float64)
        tol_aligned, tol_rotation, *_ = self.tolerances(dtype)
        if dtype != torch.float64:
            tol_aligned, tol_rotation = 10 * tol_aligned, 10 * tol_rotation
        for reflection in ("allow", "forbid"):
            ref_aligned, ref_rotation, _ = svd_align(pred, gt, reflection)
            result = procrustes_align(
                pred.to(device, dtype), gt.to(device, dtype), reflection=reflection
            )
            np.testing.assert_allclose(np_(result.aligned), np_(ref_aligned), atol=tol_aligned)
            np.testing.assert_allclose(np_(result.rotation), np_(ref_rotation), atol=tol_rotation)

    @pytest.mark.parametrize("reflection", ["allow", "forbid"])
    @pytest.mark.parametrize("shape", ["planar", "collinear"])
    def test_degenerate_prediction(self, reflection, shape, device, dtype):
        """A planar or collinear prediction: the aligned points are unique, the SVD's."""
        pred, gt = similar_problems(64, seed=13)
        pred = pred.clone()
        pred[..., 2] = 0.5  # planar: z = 0.5 (exactly representable, so is its mean)
        if shape == "collinear":
            pred[..., 1] = -0.25
        ref_aligned, _, ref_scale = svd_align(pred, gt, reflection)
        result = procrustes_align(
            pred.to(device, dtype), gt.to(device, dtype), reflection=reflection
        )
        tol_aligned, _, tol_scale, tol_sq = self.tolerances(dtype)
        assert_rotations(result.rotation, proper=reflection == "forbid")
        np.testing.assert_allclose(np_(result.aligned), np_(ref_aligned), atol=tol_aligned, rtol=0)
        np.testing.assert_allclose(np_(result.scale), np_(ref_scale), rtol=tol_scale)
        reference = squared_residual(ref_aligned, gt)
        assert (squared_residual(result.aligned, gt) <= reference * (1 + tol_sq)).all()

    @pytest.mark.parametrize("reflection", ["allow", "forbid"])
    @pytest.mark.parametrize("shape", ["planar", "collinear"])
    def test_degenerate_ground_truth(self, reflection, shape, device, dtype):
        """A planar or collinear ground truth: the rotation is not unique; the result is an
        optimal one, with the SVD's residual and per-point errors."""
        pred, gt = similar_problems(64, seed=14)
        gt = gt.clone()
        gt[..., 2] = 0.5
        if shape == "collinear":
            gt[..., 1] = -0.25
        ref_aligned, _, ref_scale = svd_align(pred, gt, reflection)
        result = procrustes_align(
            pred.to(device, dtype), gt.to(device, dtype), reflection=reflection
        )
        tol_aligned, _, tol_scale, tol_sq = self.tolerances(dtype)
        # det M = 0 exactly, so "allow" takes the rotation (the SVD's sign is arbitrary).
        assert_rotations(result.rotation, proper=True)
        np.testing.assert_allclose(np_(result.scale), np_(ref_scale), rtol=tol_scale)
        np.testing.assert_allclose(
            np_(squared_residual(result.aligned, gt)),
            np_(squared_residual(ref_aligned, gt)),
            rtol=tol_sq,
        )
        # Rotated about the line or mirrored through the plane at most: the same errors.
        np.testing.assert_allclose(
            np_(point_error(result.aligned.double(), gt)),
            np_(point_error(ref_aligned, gt)),
            atol=tol_aligned,
            rtol=0,
        )

    @pytest.mark.parametrize("reflection", ["allow", "forbid"])
    def test_meta_device(self, reflection):
        """No data-dependent operation: meta tensors go through and broadcast."""
        pred = torch.zeros(2, 1, 21, 3, device="meta")
        gt = torch.zeros(5, 21, 3, device="meta", dtype=torch.float64)
        result = procrustes_align(pred, gt, reflection=reflection)
        shapes = tuple(tuple(t.shape) for t in result)
        assert shapes == ((2, 5, 21, 3), (2, 5, 3, 3), (2, 5), (2, 5, 3))
        assert all(t.device.type == "meta" and t.dtype == torch.float64 for t in result)

    def test_no_host_synchronisation(self, device):
        if device.type != "cuda":
            pytest.skip("the synchronisation check needs CUDA (pytest --device cuda)")
        pred, gt = (t.to(device) for t in similar_problems(8, seed=15))
        torch.cuda.synchronize(device)
        previous = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for reflection in ("allow", "forbid"):
                procrustes_align(pred, gt, reflection=reflection)
        finally:
            torch.cuda.set_sync_debug_mode(previous)

    @pytest.mark.parametrize("reflection", ["allow", "forbid"])
    def test_gradients(self, reflection):
        """Autograd through the fixed squarings: first and second derivatives, float64."""
        g = torch.Generator().manual_seed(16)
        pred, gt = torch.randn(2, 6, 3, generator=g, dtype=torch.float64)
        assert check_gradients(lambda p, t: procrustes_align(p, t, reflection=reflection), pred, gt)


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
