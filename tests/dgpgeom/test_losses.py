"""Tests for dgpgeom.losses."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import grad, vmap

from dgpgeom.losses import (
    edge_length_loss,
    keypoint_consistency_loss,
    normal_loss,
    reprojection_loss,
    translation_loss,
    vertex_projection_loss,
)
from dgpgeom.testing import reprojection_loss_naive
from dgpgeom.validation import ShapeError

# ----------------------------------------------------------------------------- helpers


def make_problem(batch=(4,), n=7, *, dtype=torch.float64, device="cpu", seed=0, noise=3.0):
    g = torch.Generator().manual_seed(seed)
    points = torch.randn(*batch, n, 3, generator=g, dtype=torch.float64) * 0.05
    points[..., 2] += 0.6
    k = torch.tensor(
        [[520.0, 0.7, 110.0], [0.0, 500.0, 115.0], [0.0, 0.0, 1.0]], dtype=torch.float64
    )
    targets = project(points, k) + noise * torch.randn(
        *batch, n, 2, generator=g, dtype=torch.float64
    )
    weights = torch.rand(*batch, n, generator=g, dtype=torch.float64)
    valid = torch.rand(*batch, n, generator=g) > 0.25
    return (
        points.to(device, dtype),
        targets.to(device, dtype),
        k.to(device, dtype),
        weights.to(device, dtype),
        valid.to(device),
    )


def project(points, k, min_depth=1e-3):
    z = points[..., 2:].clamp(min=min_depth)
    return (points[..., :2] / z) @ k[..., :2, :2].mT + k[..., None, :2, 2]


def leaves(*tensors):
    return tuple(t.detach().clone().requires_grad_(t.is_floating_point()) for t in tensors)


KINDS = ["l1", "l2", "huber"]
REDUCTIONS = ["mean", "sum", "none"]


# ------------------------------------------------------------------ reprojection_loss


class TestReprojectionLoss:
    def test_smoke(self, device, dtype):
        points, targets, k, weights, valid = make_problem(device=device, dtype=dtype)
        loss = reprojection_loss(points, targets, k, weights, valid)
        assert loss.shape == () and loss.dtype == dtype and loss.device.type == device.type
        assert torch.isfinite(loss) and loss > 0

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"points3d_cam": torch.zeros(4, 7, 2)}, "points3d_cam"),
            ({"points2d": torch.zeros(4, 6, 2)}, "points2d"),
            ({"intrinsics": torch.zeros(4, 3, 4)}, "intrinsics"),
            ({"weights": torch.zeros(4, 6)}, "weights"),
            ({"valid": torch.ones(4, 7)}, "valid"),
            ({"points2d": torch.zeros(3, 7, 2)}, "broadcast"),
            ({"points2d": torch.zeros(4, 7, 2, dtype=torch.int64)}, "floating"),
        ],
    )
    def test_bad_input(self, kwargs, match):
        points, targets, k, weights, valid = make_problem(dtype=torch.float32)
        args = {"points3d_cam": points, "points2d": targets, "intrinsics": k, "weights": weights}
        args |= {"valid": valid} | kwargs
        with pytest.raises(ShapeError, match=match):
            reprojection_loss(**args)

    def test_non_tensor_is_a_type_error(self):
        _, targets, k, _, _ = make_problem(dtype=torch.float32)
        with pytest.raises(TypeError, match=r"^points3d_cam: expected a torch\.Tensor"):
            reprojection_loss(np.zeros((4, 7, 3)), targets, k)

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"kind": "l3"}, "kind"),
            ({"reduction": "max"}, "reduction"),
            ({"delta": 0.0}, "delta"),
            ({"min_depth": -1.0}, "min_depth"),
        ],
    )
    def test_bad_options(self, kwargs, match):
        points, targets, k, _, _ = make_problem(dtype=torch.float32)
        with pytest.raises(ValueError, match=match):
            reprojection_loss(points, targets, k, **kwargs)

    def test_broadcasting(self, device, dtype):
        points, targets, k, weights, _ = make_problem(batch=(2, 3), device=device, dtype=dtype)
        per_point = reprojection_loss(points, targets, k, reduction="none")
        assert per_point.shape == (2, 3, 7)
        # A shared K, a per-batch K and a K broadcast over one dimension agree.
        k_full = k.expand(2, 3, 3, 3)
        torch.testing.assert_close(
            reprojection_loss(points, targets, k_full, reduction="none"), per_point
        )
        torch.testing.assert_close(
            reprojection_loss(points, targets, k[None, None], reduction="none"), per_point
        )
        # Targets broadcast against points: one set of targets for the whole batch.
        out = reprojection_loss(points, targets[0, 0], k, reduction="none")
        assert out.shape == (2, 3, 7)
        # Gradients of broadcast inputs have the inputs' shapes.
        k_leaf = k.clone().requires_grad_()
        w_leaf = weights[0, 0].clone().requires_grad_()
        reprojection_loss(points, targets, k_leaf, w_leaf).backward()
        assert k_leaf.grad.shape == (3, 3) and w_leaf.grad.shape == (7,)

    def test_batched_equals_per_item(self, device, dtype):
        points, targets, k, weights, valid = make_problem(batch=(5,), device=device, dtype=dtype)
        batched = reprojection_loss(points, targets, k, weights, valid, reduction="none")
        for i in range(5):
            item = reprojection_loss(
                points[i], targets[i], k, weights[i], valid[i], reduction="none"
            )
            torch.testing.assert_close(batched[i], item)

    @pytest.mark.parametrize("kind", KINDS)
    def test_matches_torch_losses(self, kind, device, dtype):
        points, targets, k, _, _ = make_problem(device=device, dtype=dtype, noise=5.0)
        projected = project(points, k)
        expected = {
            "l1": F.l1_loss(projected, targets),
            "l2": F.mse_loss(projected, targets),
            "huber": F.huber_loss(projected, targets, delta=2.5),
        }[kind]
        loss = reprojection_loss(points, targets, k, kind=kind, delta=2.5)
        torch.testing.assert_close(loss, expected)

    def test_weights_and_mask_semantics(self, device, dtype):
        points, targets, k, weights, valid = make_problem(device=device, dtype=dtype)
        per_point = reprojection_loss(points, targets, k, reduction="none")
        # Weights multiply the per-point loss; the mean divides by the valid weight mass.
        weighted = reprojection_loss(points, targets, k, weights, valid, reduction="none")
        expected = torch.where(valid, weights * per_point, torch.zeros_like(per_point))
        torch.testing.assert_close(weighted, expected)
        mean = reprojection_loss(points, targets, k, weights, valid)
        torch.testing.assert_close(mean, expected.sum() / (weights * valid).sum())
        total = reprojection_loss(points, targets, k, weights, valid, reduction="sum")
        torch.testing.assert_close(total, expected.sum())
        # Mask only: the mean over valid points.
        masked = reprojection_loss(points, targets, k, valid=valid)
        torch.testing.assert_close(masked, per_point[valid].mean())

    def test_zero_weight_is_removal(self, device, dtype):
        points, targets, k, weights, _ = make_problem(batch=(), n=6, device=device, dtype=dtype)
        weights = weights.clone()
        weights[2] = 0.0
        keep = [0, 1, 3, 4, 5]
        for reduction in ("mean", "sum"):
            torch.testing.assert_close(
                reprojection_loss(points, targets, k, weights, reduction=reduction),
                reprojection_loss(
                    points[keep], targets[keep], k, weights[keep], reduction=reduction
                ),
            )

    def test_masked_nan_contributes_nothing(self, device, dtype):
        points, targets, k, weights, valid = make_problem(device=device, dtype=dtype)
        valid = valid.clone()
        valid[0, 0] = False
        bad_points, bad_targets, bad_weights = points.clone(), targets.clone(), weights.clone()
        bad_points[0, 0] = math.nan
        bad_targets[0, 0] = math.inf
        bad_weights[0, 0] = math.nan
        clean = reprojection_loss(points, targets, k, weights, valid)
        p, t, w = leaves(bad_points, bad_targets, bad_weights)
        dirty = reprojection_loss(p, t, k, w, valid)
        torch.testing.assert_close(dirty, clean)
        dirty.backward()
        for g in (p.grad, t.grad, w.grad):
            assert torch.isfinite(g).all() and (g[0, 0] == 0).all()

    def test_fully_masked_is_zero(self, device, dtype):
        points, targets, k, weights, _ = make_problem(device=device, dtype=dtype)
        p = points.clone().requires_grad_()
        loss = reprojection_loss(
            p, targets, k, weights, torch.zeros_like(weights, dtype=torch.bool)
        )
        loss.backward()
        assert loss == 0 and (p.grad == 0).all()

    @pytest.mark.parametrize("kind", KINDS)
    def test_behind_camera_is_finite(self, kind, device, dtype):
        points, targets, k, _, _ = make_problem(device=device, dtype=dtype)
        points = points.clone()
        points[:, :3, 2] = torch.tensor([0.0, -0.5, 1e-9], dtype=dtype)
        p = points.requires_grad_()
        loss = reprojection_loss(p, targets, k, kind=kind)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(p.grad).all()
        # The clamp is active: no gradient along z for those points.
        assert (p.grad[:, :3, 2] == 0).all()

    @pytest.mark.parametrize("kind", KINDS)
    @pytest.mark.parametrize("reduction", REDUCTIONS)
    def test_fused_equals_naive(self, kind, reduction, device):
        inputs = leaves(*make_problem(batch=(3,), device=device, noise=4.0)[:4])
        valid = make_problem(batch=(3,), device=device)[4]
        opts = {"kind": kind, "reduction": reduction, "delta": 2.0}
        fused = reprojection_loss(*inputs, valid, **opts)
        naive = reprojection_loss_naive(*inputs, valid, **opts)
        torch.testing.assert_close(fused, naive, rtol=1e-12, atol=1e-12)
        seed = torch.randn_like(fused)
        g_fused = torch.autograd.grad(fused, inputs, seed)
        g_naive = torch.autograd.grad(naive, inputs, seed)
        for a, b in zip(g_fused, g_naive, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)

    @pytest.mark.parametrize("kind", KINDS)
    def test_backward_paths_agree(self, kind, device):
        """The buffer-reusing backward (plain .backward()) equals the differentiable one."""
        problem = make_problem(batch=(3,), device=device, noise=4.0)
        inputs = leaves(*problem[:4])
        before = [t.detach().clone() for t in inputs]
        loss = reprojection_loss(*inputs, problem[4], kind=kind, delta=2.0)
        plain = torch.autograd.grad(loss, inputs, retain_graph=True)
        graph = torch.autograd.grad(loss, inputs, create_graph=True)
        for a, b in zip(plain, graph, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        for t, t0 in zip(inputs, before, strict=True):
            assert torch.equal(t, t0)  # no input was overwritten

    @pytest.mark.parametrize("kind", KINDS)
    def test_gradcheck(self, kind, device):
        points, targets, k, weights, valid = make_problem(batch=(2,), n=4, device=device)
        inputs = leaves(points, targets, k, weights)

        def fn(*args):
            return reprojection_loss(*args, valid, kind=kind, delta=2.0, reduction="none")

        assert torch.autograd.gradcheck(fn, inputs)
        assert torch.autograd.gradgradcheck(fn, inputs)

    def test_double_backward_matches_naive(self, device):
        inputs = leaves(*make_problem(batch=(2,), n=5, device=device)[:4])
        out = []
        for fn in (reprojection_loss, reprojection_loss_naive):
            (g,) = torch.autograd.grad(
                fn(*inputs, kind="huber", delta=2.0), inputs[0], create_graph=True
            )
            out.append(torch.autograd.grad(g.square().sum(), inputs))
        for a, b in zip(*out, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)

    def test_float32_against_float64(self, device):
        problem = make_problem(batch=(16,), n=21, device=device)
        ref = reprojection_loss(*problem[:4], problem[4], kind="huber")
        low = reprojection_loss(*(t.float() for t in problem[:4]), problem[4], kind="huber")
        assert low.dtype == torch.float32
        torch.testing.assert_close(low.double(), ref, rtol=1e-5, atol=1e-5)

    def test_half_computed_in_float32(self, device):
        problem = make_problem(device=device)
        half = reprojection_loss(*(t.half() for t in problem[:4]), problem[4])
        assert half.dtype == torch.float16
        ref = reprojection_loss(*(t.half().float() for t in problem[:4]), problem[4])
        torch.testing.assert_close(half.float(), ref, rtol=2e-3, atol=2e-3)

    def test_saves_only_inputs(self):
        inputs = leaves(*make_problem(batch=(32,), n=21)[:4])
        valid = make_problem(batch=(32,), n=21)[4]
        storages = {t.untyped_storage().data_ptr() for t in (*inputs, valid)}

        def saved(fn):
            packed = []

            def pack(t):
                packed.append(t)
                return t

            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                fn(*inputs, valid, kind="huber")
            return packed

        fused = saved(reprojection_loss)
        extra = [t for t in fused if t.untyped_storage().data_ptr() not in storages]
        assert all(t.dim() == 0 for t in extra)  # only the scalars of the mean's division
        naive = saved(reprojection_loss_naive)
        naive_extra = [t for t in naive if t.untyped_storage().data_ptr() not in storages]
        assert sum(t.numel() for t in naive_extra) > 10 * 32 * 21

    def test_vmap_and_grad(self, device):
        points, targets, k, weights, valid = make_problem(batch=(5,), device=device)
        mapped = vmap(lambda p, t, w, m: reprojection_loss(p, t, k, w, m))(
            points, targets, weights, valid
        )
        loop = torch.stack(
            [reprojection_loss(points[i], targets[i], k, weights[i], valid[i]) for i in range(5)]
        )
        torch.testing.assert_close(mapped, loop)
        grads = vmap(grad(lambda p, t: reprojection_loss(p, t, k, kind="l2")))(points, targets)
        naive = vmap(grad(lambda p, t: reprojection_loss_naive(p, t, k, kind="l2")))(
            points, targets
        )
        torch.testing.assert_close(grads, naive)

    def test_compile(self, device):
        points, targets, k, weights, valid = make_problem(device=device)
        compiled = torch.compile(reprojection_loss, backend="aot_eager", fullgraph=True)
        p_eager, p_comp = leaves(points, points)
        eager = reprojection_loss(p_eager, targets, k, weights, valid, kind="huber")
        comp = compiled(p_comp, targets, k, weights, valid, kind="huber")
        eager.backward()
        comp.backward()
        torch.testing.assert_close(comp, eager)
        torch.testing.assert_close(p_comp.grad, p_eager.grad)

    def test_meta(self):
        points, targets, k, weights, valid = (
            t.to("meta") for t in make_problem(batch=(3,), dtype=torch.float32)
        )
        out = reprojection_loss(points, targets, k, weights, valid, reduction="none")
        assert out.shape == (3, 7) and out.device.type == "meta"
        p = points.requires_grad_()
        reprojection_loss(p, targets, k, weights, valid).backward()
        assert p.grad.shape == (3, 7, 3)

    @settings(max_examples=30, deadline=None)
    @given(
        seed=st.integers(0, 2**31 - 1),
        n=st.integers(1, 12),
        kind=st.sampled_from(KINDS),
        scale=st.floats(0.1, 10.0),
    )
    def test_properties(self, seed, n, kind, scale):
        points, targets, k, weights, valid = make_problem(batch=(2,), n=n, seed=seed)
        base = reprojection_loss(points, targets, k, weights, valid, kind=kind)
        # Scaling all weights leaves the weighted mean unchanged.
        torch.testing.assert_close(
            reprojection_loss(points, targets, k, scale * weights, valid, kind=kind), base
        )
        # Permuting the points changes nothing.
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(
            reprojection_loss(
                points[:, perm], targets[:, perm], k, weights[:, perm], valid[:, perm], kind=kind
            ),
            base,
        )
        # Exact projections give zero loss.
        assert reprojection_loss(points, project(points, k), k, kind=kind) < 1e-10
        # Fused and naive gradients agree.
        p1, p2 = leaves(points, points)
        g1 = torch.autograd.grad(reprojection_loss(p1, targets, k, weights, valid, kind=kind), p1)
        g2 = torch.autograd.grad(
            reprojection_loss_naive(p2, targets, k, weights, valid, kind=kind), p2
        )
        torch.testing.assert_close(g1, g2)


# ------------------------------------------------------- keypoint consistency / vertices


class TestKeypointConsistencyLoss:
    def test_is_l1_reprojection(self, device, dtype):
        points, targets, k, _, valid = make_problem(device=device, dtype=dtype)
        torch.testing.assert_close(
            keypoint_consistency_loss(points, targets, k, valid),
            reprojection_loss(points, targets, k, valid=valid, kind="l1"),
        )
        torch.testing.assert_close(
            keypoint_consistency_loss(points, targets, k), F.l1_loss(project(points, k), targets)
        )

    def test_both_sides_get_gradients(self, device):
        points, targets, k, _, _ = make_problem(device=device)
        p, t = leaves(points, targets)
        keypoint_consistency_loss(p, t, k).backward()
        assert p.grad.abs().sum() > 0 and t.grad.abs().sum() > 0

    def test_bad_input(self):
        points, targets, k, _, _ = make_problem()
        with pytest.raises(ShapeError, match="points2d"):
            keypoint_consistency_loss(points, targets[..., :1], k)
        with pytest.raises(ValueError, match="reduction"):
            keypoint_consistency_loss(points, targets, k, reduction="avg")

    def test_gradcheck(self):
        inputs = leaves(*make_problem(batch=(2,), n=3)[:3])
        targets = inputs[1]
        assert torch.autograd.gradcheck(
            lambda p, t, k: keypoint_consistency_loss(p, t, k), (inputs[0], targets, inputs[2])
        )


class TestVertexProjectionLoss:
    def test_values(self, device, dtype):
        points, targets, k, _, valid = make_problem(batch=(2,), n=30, device=device, dtype=dtype)
        for kind in KINDS:
            torch.testing.assert_close(
                vertex_projection_loss(points, targets, k, valid, kind=kind),
                reprojection_loss(points, targets, k, valid=valid, kind=kind),
            )
        assert vertex_projection_loss(points, project(points, k), k) < 1e-8

    def test_shapes_and_bad_input(self):
        points, targets, k, _, _ = make_problem(batch=(2,), n=30)
        assert vertex_projection_loss(points, targets, k, reduction="none").shape == (2, 30)
        with pytest.raises(ShapeError, match="intrinsics"):
            vertex_projection_loss(points, targets, k[:2])

    def test_errors_name_its_own_arguments(self):
        points, targets, k, _, _ = make_problem(batch=(2,), n=30)
        with pytest.raises(ShapeError, match="vertices_cam") as error:
            vertex_projection_loss(points[..., :2], targets, k)
        assert "points3d_cam" not in str(error.value)
        with pytest.raises(ShapeError, match="vertices2d") as error:
            vertex_projection_loss(points, targets[..., :1], k)
        assert "points2d" not in str(error.value)

    def test_gradcheck(self):
        inputs = leaves(*make_problem(batch=(2,), n=4)[:3])
        assert torch.autograd.gradcheck(lambda *a: vertex_projection_loss(*a, kind="l2"), inputs)


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


# ----------------------------------------------------------------------- mesh losses


def make_mesh(batch=(2,), v=12, f=16, *, dtype=torch.float64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    gt = torch.randn(*batch, v, 3, generator=g, dtype=torch.float64) * 0.05
    pred = gt + 0.01 * torch.randn(*batch, v, 3, generator=g, dtype=torch.float64)
    faces = torch.stack([torch.randperm(v, generator=g)[:3] for _ in range(f)])
    return pred.to(device, dtype), gt.to(device, dtype), faces.to(device)


def edge_length_reference(pred, gt, faces):
    out = np.zeros((*pred.shape[:-2], len(faces), 3))
    for fi, (a, b, c) in enumerate(faces.tolist()):
        for ei, (i, j) in enumerate(((a, b), (a, c), (b, c))):
            lp = np.linalg.norm(pred[..., i, :] - pred[..., j, :], axis=-1)
            lg = np.linalg.norm(gt[..., i, :] - gt[..., j, :], axis=-1)
            out[..., fi, ei] = np.abs(lp - lg)
    return out


def normal_reference(pred, gt, faces):
    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)

    out = np.zeros((*pred.shape[:-2], len(faces), 3))
    for fi, (a, b, c) in enumerate(faces.tolist()):
        n = unit(np.cross(unit(gt[..., b, :] - gt[..., a, :]), unit(gt[..., c, :] - gt[..., a, :])))
        for ei, (i, j) in enumerate(((b, a), (c, a), (c, b))):
            e = unit(pred[..., i, :] - pred[..., j, :])
            out[..., fi, ei] = np.abs(np.sum(e * n, axis=-1))
    return out


class _MeshLossTests:
    """Tests shared by edge_length_loss and normal_loss, which have one interface."""

    @pytest.fixture
    def loss_fn(self):
        return type(self).function

    @pytest.fixture
    def reference(self):
        return type(self).reference_impl

    def test_against_reference(self, loss_fn, reference, device, dtype):
        pred, gt, faces = make_mesh(device=device, dtype=dtype)
        expected = reference(pred.cpu().double().numpy(), gt.cpu().double().numpy(), faces.cpu())
        per_edge = loss_fn(pred, gt, faces, reduction="none")
        assert per_edge.shape == (2, 16, 3) and per_edge.dtype == dtype
        tol = 1e-10 if dtype == torch.float64 else 1e-5
        np.testing.assert_allclose(per_edge.cpu().double().numpy(), expected, atol=tol)
        assert abs(float(loss_fn(pred, gt, faces)) - expected.mean()) < tol
        assert abs(float(loss_fn(pred, gt, faces, reduction="sum")) - expected.sum()) < 100 * tol

    def test_identical_is_zero_and_rigid_invariant(self, loss_fn, reference, device, dtype):
        pred, gt, faces = make_mesh(device=device, dtype=dtype)
        assert loss_fn(gt, gt, faces) < 1e-6
        rot = torch.linalg.matrix_exp(
            torch.tensor(
                [[0.0, -0.3, 0.2], [0.3, 0.0, -0.1], [-0.2, 0.1, 0.0]], dtype=dtype, device=device
            )
        )
        moved_pred = pred @ rot.T + torch.tensor([0.1, -0.2, 0.6], dtype=dtype, device=device)
        moved_gt = gt @ rot.T + torch.tensor([0.1, -0.2, 0.6], dtype=dtype, device=device)
        torch.testing.assert_close(loss_fn(moved_pred, moved_gt, faces), loss_fn(pred, gt, faces))

    def test_valid_and_broadcast(self, loss_fn, reference, device, dtype):
        pred, gt, faces = make_mesh(batch=(3,), device=device, dtype=dtype)
        valid = torch.tensor([True, False, True], device=device)
        per_edge = loss_fn(pred, gt, faces, reduction="none")
        torch.testing.assert_close(loss_fn(pred, gt, faces, valid), per_edge[valid].mean())
        assert loss_fn(pred, gt, faces, torch.zeros_like(valid)) == 0
        # One ground-truth mesh for the whole batch.
        assert loss_fn(pred, gt[0], faces, reduction="none").shape == (3, 16, 3)
        # int32 faces work too.
        torch.testing.assert_close(loss_fn(pred, gt, faces.int()), loss_fn(pred, gt, faces))

    def test_bad_input(self, loss_fn, reference):
        pred, gt, faces = make_mesh()
        with pytest.raises(ShapeError, match="faces"):
            loss_fn(pred, gt, faces.double())
        with pytest.raises(ShapeError, match="faces"):
            loss_fn(pred, gt, faces[:, :2])
        with pytest.raises(ShapeError, match="vertices_gt"):
            loss_fn(pred, gt[..., :5, :], faces)
        with pytest.raises(ShapeError, match="valid"):
            loss_fn(pred, gt, faces, torch.ones(2))
        with pytest.raises(ValueError, match="reduction"):
            loss_fn(pred, gt, faces, reduction="mean_of_means")

    def test_degenerate_gradients_are_finite(self, loss_fn, reference):
        pred, gt, faces = make_mesh()
        collapsed = torch.zeros_like(pred, requires_grad=True)
        loss_fn(collapsed, gt, faces).backward()
        assert torch.isfinite(collapsed.grad).all()

    def test_gradcheck(self, loss_fn, reference):
        pred, gt, faces = make_mesh(batch=(1,), v=6, f=4)
        pred = pred.requires_grad_()
        assert torch.autograd.gradcheck(lambda p: loss_fn(p, gt, faces), (pred,))
        assert torch.autograd.gradgradcheck(lambda p: loss_fn(p, gt, faces), (pred,))

    def test_vmap_compile_meta(self, loss_fn, reference):
        pred, gt, faces = make_mesh(batch=(3,), dtype=torch.float32)
        mapped = vmap(lambda p, g: loss_fn(p, g, faces))(pred, gt)
        loop = torch.stack([loss_fn(pred[i], gt[i], faces) for i in range(3)])
        torch.testing.assert_close(mapped, loop)
        compiled = torch.compile(loss_fn, backend="eager", fullgraph=True)
        torch.testing.assert_close(compiled(pred, gt, faces), loss_fn(pred, gt, faces))
        meta = loss_fn(pred.to("meta"), gt.to("meta"), faces.to("meta"), reduction="none")
        assert meta.shape == (3, 16, 3)


class TestEdgeLengthLoss(_MeshLossTests):
    function = staticmethod(edge_length_loss)
    reference_impl = staticmethod(edge_length_reference)

    def test_scaled_mesh(self):
        gt = torch.tensor(
            [[0.0, 0.0, 0.0], [0.03, 0.0, 0.0], [0.0, 0.04, 0.0]], dtype=torch.float64
        )
        faces = torch.tensor([[0, 1, 2]])
        # Doubling the mesh adds each edge's own length: (0.03 + 0.04 + 0.05) / 3.
        torch.testing.assert_close(
            edge_length_loss(2.0 * gt, gt, faces), torch.tensor(0.04, dtype=torch.float64)
        )


class TestNormalLoss(_MeshLossTests):
    function = staticmethod(normal_loss)
    reference_impl = staticmethod(normal_reference)

    def test_bounded_and_orientation_free(self):
        pred, gt, faces = make_mesh(batch=(4,), v=20, f=30, seed=3)
        per_edge = normal_loss(pred * 5.0, gt, faces, reduction="none")
        assert (per_edge >= 0).all() and (per_edge <= 1 + 1e-12).all()
        torch.testing.assert_close(
            normal_loss(pred, gt, faces.flip(-1), reduction="none").sum(-1),
            normal_loss(pred, gt, faces, reduction="none").sum(-1),
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
