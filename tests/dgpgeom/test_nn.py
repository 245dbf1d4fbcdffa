"""Tests for dgpgeom.nn."""

from __future__ import annotations

import io

import pytest
import torch

from dgpgeom import (
    DifferentiableGlobalPositioning,
    MeshPlacement,
    ShapeError,
    position_mesh,
    solve_translation,
)
from tests.dgpgeom._solver_problems import make_problem, project

F64 = torch.float64


def regressor_and_mesh(seed, batch_shape=(), dtype=F64, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    regressor = torch.rand(21, 30, generator=gen, dtype=F64)
    regressor = regressor / regressor.sum(-1, keepdim=True)
    base = make_problem(seed, batch_shape, 30, noise_px=0.0)
    points2d = project(regressor @ base.points3d + base.translation.unsqueeze(-2), base.intrinsics)
    points2d = points2d + torch.randn(points2d.shape, generator=gen, dtype=F64)
    weights = 0.2 + torch.rand((*batch_shape, 21), generator=gen, dtype=F64)
    out = (regressor, base.points3d, points2d, base.intrinsics, weights, base.translation)
    return tuple(t.to(device=device, dtype=dtype) for t in out)


class TestDifferentiableGlobalPositioning:
    def test_smoke_docstring(self, device, dtype):
        dgp = DifferentiableGlobalPositioning()
        K = torch.tensor(
            [[500.0, 0.0, 112.0], [0.0, 500.0, 112.0], [0.0, 0.0, 1.0]], dtype=dtype, device=device
        )
        points3d = torch.tensor(
            [[0.0, 0.0, 0.0], [0.06, 0.0, 0.0], [0.0, 0.06, 0.01]], dtype=dtype, device=device
        )
        camera = points3d + torch.tensor([0.0, 0.0, 0.5], dtype=dtype, device=device)
        placed = dgp(points3d, project(camera, K), K)
        assert isinstance(placed, MeshPlacement)
        torch.testing.assert_close(placed.vertices_cam, camera, rtol=0, atol=1e-6)
        assert bool(placed.valid)
        assert list(dgp.parameters()) == [] and dgp.joint_regressor is None
        assert repr(dgp) == "DifferentiableGlobalPositioning(joint_regressor=None, damping=0.0)"

    @pytest.mark.parametrize("damping", [0.0, 0.02])
    def test_without_regressor_equals_solve_translation(self, damping, device, dtype):
        problem = make_problem(0, (3,), dtype=dtype, device=device)
        prior = problem.translation * 1.1
        placed = DifferentiableGlobalPositioning(damping=damping)(
            problem.points3d, problem.points2d, problem.intrinsics, problem.weights, prior
        )
        solution = solve_translation(*problem[:4], damping=damping, prior=prior)
        assert torch.equal(placed.translation, solution.translation)
        assert torch.equal(placed.valid, solution.valid)
        expected = problem.points3d + solution.translation.unsqueeze(-2)
        assert torch.equal(placed.vertices_cam, expected)
        assert torch.equal(placed.keypoints_cam, expected)

    @pytest.mark.parametrize("sparse", [False, True])
    @pytest.mark.parametrize("damping", [0.0, 0.02])
    def test_with_regressor_equals_position_mesh(self, sparse, damping, device, dtype):
        regressor, vertices, points2d, K, weights, truth = regressor_and_mesh(
            1, (2,), dtype=dtype, device=device
        )
        held = regressor.to_sparse() if sparse else regressor
        dgp = DifferentiableGlobalPositioning(held, damping=damping)
        assert repr(dgp) == (
            f"DifferentiableGlobalPositioning(joint_regressor=(21, 30), damping={damping})"
        )
        placed = dgp(vertices, points2d, K, weights, truth)
        expected = position_mesh(
            vertices, points2d, K, weights, joint_regressor=held, damping=damping, prior=truth
        )
        for a, b in zip(placed, expected, strict=True):
            assert torch.equal(a, b)
        assert placed.vertices_cam.shape == (2, 30, 3) and placed.keypoints_cam.shape == (2, 21, 3)

    def test_regressor_is_a_buffer_not_a_parameter(self):
        regressor = regressor_and_mesh(2)[0]
        dgp = DifferentiableGlobalPositioning(regressor)
        assert list(dgp.parameters()) == []
        assert dict(dgp.named_buffers()).keys() == {"joint_regressor"}
        assert torch.equal(dgp.joint_regressor, regressor)

    @pytest.mark.parametrize("sparse", [False, True])
    def test_buffer_moves_with_to(self, sparse):
        regressor = regressor_and_mesh(3, dtype=torch.float32)[0]
        dgp = DifferentiableGlobalPositioning(regressor.to_sparse() if sparse else regressor)
        dgp = dgp.to(F64)
        assert dgp.joint_regressor.dtype == F64
        assert dgp.joint_regressor.is_sparse == sparse
        dgp = dgp.to("meta")
        assert dgp.joint_regressor.device.type == "meta"
        if not sparse:
            # And the module runs there: no host synchronisation on the way.
            vertices = torch.empty(2, 30, 3, device="meta", dtype=F64, requires_grad=True)
            placed = dgp(
                vertices,
                torch.empty(2, 21, 2, device="meta", dtype=F64),
                torch.empty(3, 3, device="meta", dtype=F64),
            )
            assert placed.vertices_cam.device.type == "meta"
            (grad,) = torch.autograd.grad(placed.vertices_cam.sum(), vertices)
            assert grad.shape == vertices.shape

    @pytest.mark.parametrize("sparse", [False, True])
    def test_state_dict_round_trip(self, sparse):
        regressor, vertices, points2d, K, weights, _ = regressor_and_mesh(4, (2,))
        held = regressor.to_sparse() if sparse else regressor
        source = DifferentiableGlobalPositioning(held, damping=0.01)
        buffer = io.BytesIO()
        torch.save(source.state_dict(), buffer)
        buffer.seek(0)
        state = torch.load(buffer, weights_only=True)
        assert state.keys() == {"joint_regressor"}
        blank = torch.zeros(21, 30, dtype=F64)
        target = DifferentiableGlobalPositioning(
            blank.to_sparse() if sparse else blank, damping=0.01
        )
        target.load_state_dict(state)
        torch.testing.assert_close(target.joint_regressor.to_dense(), regressor, rtol=0, atol=0)
        for a, b in zip(
            target(vertices, points2d, K, weights),
            source(vertices, points2d, K, weights),
            strict=True,
        ):
            assert torch.equal(a, b)

    def test_state_dict_without_regressor_is_empty(self):
        dgp = DifferentiableGlobalPositioning()
        assert dgp.state_dict() == {}
        DifferentiableGlobalPositioning().load_state_dict(dgp.state_dict())

    def test_gradients_reach_every_input(self, device, dtype):
        regressor, vertices, points2d, K, weights, truth = regressor_and_mesh(
            5, (2,), dtype=dtype, device=device
        )
        dgp = DifferentiableGlobalPositioning(regressor, damping=0.01)
        inputs = [t.clone().requires_grad_() for t in (vertices, points2d, K, weights, truth * 1.1)]
        placed = dgp(*inputs)
        grads = torch.autograd.grad(placed.vertices_cam.square().sum(), inputs)
        for g, t in zip(grads, inputs, strict=True):
            assert g.shape == t.shape and bool(g.isfinite().all())
        assert all(float(g.abs().max()) > 0 for g in grads[:2] + grads[3:])

    def test_bad_input_raises_shape_error(self):
        regressor, vertices, points2d, K, *_ = regressor_and_mesh(6, (2,))
        with pytest.raises(ShapeError, match=r"^vertices: "):
            DifferentiableGlobalPositioning(regressor)(vertices[..., :2], points2d, K)
        with pytest.raises(ShapeError, match=r"^joint_regressor: .*points2d"):
            DifferentiableGlobalPositioning(regressor)(vertices, points2d[:, :20], K)
        with pytest.raises(ShapeError, match=r"^points2d: .*N was set to \d+ by points3d"):
            DifferentiableGlobalPositioning()(vertices, points2d, K)
        with pytest.raises(ValueError, match=r"^damping: "):
            DifferentiableGlobalPositioning(damping=-1.0)(vertices[:, :21], points2d, K)

    def test_vmap_and_compile(self, dtype):
        regressor, vertices, points2d, K, weights, _ = regressor_and_mesh(7, (3,), dtype=dtype)
        dgp = DifferentiableGlobalPositioning(regressor, damping=0.01)
        eager = dgp(vertices, points2d, K, weights)
        mapped = torch.func.vmap(dgp)(vertices, points2d, K, weights)
        compiled = torch.compile(dgp, fullgraph=True, backend="eager")(
            vertices, points2d, K, weights
        )
        # Eager takes the NumPy path on the CPU, vmap and compile the torch one: sums in a
        # different order differ by rounding (in float64 by ~1e-18 m, relatively large
        # for a coordinate near zero: hence the absolute term).
        tol = {"rtol": 1e-12, "atol": 1e-15} if dtype == F64 else {"rtol": 1e-6, "atol": 1e-6}
        for a, b, c in zip(eager, mapped, compiled, strict=True):
            torch.testing.assert_close(b, a, **tol)
            torch.testing.assert_close(c, a, **tol)


class TestLossModules:
    """The loss module twins hold options and call the functions unchanged."""

    def test_reprojection_loss_module_equals_function(self):
        from dgpgeom import losses
        from dgpgeom.nn import ReprojectionLoss

        gen = torch.Generator().manual_seed(0)
        points = torch.rand(3, 5, 3, generator=gen, dtype=torch.float64) + torch.tensor(
            [0.0, 0.0, 0.5], dtype=torch.float64
        )
        targets = torch.rand(3, 5, 2, generator=gen, dtype=torch.float64) * 200
        K = torch.tensor(
            [[500.0, 0.0, 100.0], [0.0, 480.0, 90.0], [0.0, 0.0, 1.0]], dtype=torch.float64
        )
        weights = torch.rand(3, 5, generator=gen, dtype=torch.float64)
        module = ReprojectionLoss("huber", delta=2.0, reduction="sum")
        expected = losses.reprojection_loss(
            points, targets, K, weights, kind="huber", delta=2.0, reduction="sum"
        )
        assert torch.equal(module(points, targets, K, weights), expected)
        assert "huber" in repr(module)

    def test_mesh_loss_modules_hold_faces_as_a_buffer(self):
        from dgpgeom import losses
        from dgpgeom.nn import EdgeLengthLoss, NormalLoss

        faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
        gt = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
        pred = gt + 0.1 * torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(1))
        for module_type, function in (
            (EdgeLengthLoss, losses.edge_length_loss),
            (NormalLoss, losses.normal_loss),
        ):
            module = module_type(faces.int())
            assert "faces" in dict(module.named_buffers()) and module.faces.dtype == torch.int64
            assert torch.equal(module(pred, gt), function(pred, gt, faces))
            assert module.to(torch.float64).faces.dtype == torch.int64
