"""Tests for dgpgeom.losses.reprojection."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import grad, vmap

from dgpgeom.losses import (
    keypoint_consistency_loss,
    reprojection_loss,
    vertex_projection_loss,
)
from dgpgeom.validation import ShapeError

from ._problems import (
    KINDS,
    leaves,
    make_problem,
    project,
)

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
    def test_gradcheck(self, kind, device):
        points, targets, k, weights, valid = make_problem(batch=(2,), n=4, device=device)
        inputs = leaves(points, targets, k, weights)

        def fn(*args):
            return reprojection_loss(*args, valid, kind=kind, delta=2.0, reduction="none")

        assert torch.autograd.gradcheck(fn, inputs)
        assert torch.autograd.gradgradcheck(fn, inputs)

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
        one = grad(lambda p, t: reprojection_loss(p, t, k, kind="l2"))
        loop = torch.stack([one(points[i], targets[i]) for i in range(5)])
        torch.testing.assert_close(grads, loop)

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
