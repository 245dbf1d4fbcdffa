"""Tests for dgpgeom.solvers.placement."""

from __future__ import annotations

import functools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dgpgeom import MeshPlacement, position_mesh, regress_keypoints, solve_translation
from dgpgeom.testing import check_gradients, translation_problems
from tests.dgpgeom._solver_problems import make_problem, project, raises_for, well_scaled_problem

F64 = torch.float64
PROPERTY = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def make_regressor(num_keypoints, num_vertices, seed=0, dtype=F64, device="cpu"):
    """Row-stochastic: each keypoint is mostly one vertex plus a little of all the others."""
    gen = torch.Generator().manual_seed(seed)
    spread = torch.rand(num_keypoints, num_vertices, generator=gen, dtype=F64)
    spread = spread * (torch.rand(spread.shape, generator=gen) < 0.3)
    spread = 0.3 * spread / spread.sum(-1, keepdim=True).clamp(min=1e-12)
    anchors = torch.randperm(num_vertices, generator=gen)[:num_keypoints]
    regressor = spread + 0.7 * torch.nn.functional.one_hot(anchors, num_vertices).to(F64)
    return regressor.to(device=device, dtype=dtype)


def mesh_problem(
    seed,
    batch_shape=(),
    num_vertices=40,
    num_keypoints=21,
    *,
    noise_px=1.0,
    dtype=F64,
    device="cpu",
):
    """Vertices, a regressor, and the 2D keypoints of the regressed keypoints."""
    base = make_problem(seed, batch_shape, num_vertices, noise_px=0.0)
    regressor = make_regressor(num_keypoints, num_vertices, seed)
    keypoints = regressor @ base.points3d
    gen = torch.Generator().manual_seed(seed)
    points2d = project(keypoints + base.translation.unsqueeze(-2), base.intrinsics)
    points2d = points2d + noise_px * torch.randn(points2d.shape, generator=gen, dtype=F64)
    weights = 0.1 + 0.9 * torch.rand((*batch_shape, num_keypoints), generator=gen, dtype=F64)
    out = (base.points3d, points2d, base.intrinsics, regressor, weights, base.translation)
    return tuple(t.to(device=device, dtype=dtype) for t in out)


class TestRegressKeypoints:
    def test_smoke_docstring(self, device, dtype):
        regressor = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], dtype=dtype, device=device)
        vertices = torch.eye(3, dtype=dtype, device=device)
        keypoints = regress_keypoints(vertices, regressor)
        expected = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], dtype=dtype, device=device)
        assert torch.equal(keypoints, expected)

    @pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
    @pytest.mark.parametrize("batch_shape", [(), (4,), (2, 3)])
    @pytest.mark.parametrize("layout", ["coo", "csr"])
    def test_sparse_equals_dense(self, batch_shape, layout, device, dtype):
        regressor = make_regressor(21, 50, dtype=dtype, device=device)
        gen = torch.Generator().manual_seed(1)
        vertices = torch.randn(*batch_shape, 50, 3, generator=gen, dtype=F64).to(device, dtype)
        sparse = regressor.to_sparse() if layout == "coo" else regressor.to_sparse_csr()
        dense = regress_keypoints(vertices, regressor)
        assert dense.shape == (*batch_shape, 21, 3)
        torch.testing.assert_close(regress_keypoints(vertices, sparse), dense)
        torch.testing.assert_close(dense, torch.einsum("nv,...vc->...nc", regressor, vertices))

    def test_output_follows_the_vertices_dtype(self, device):
        vertices = torch.rand(2, 7, 3, device=device, dtype=torch.float32)
        regressor = make_regressor(3, 7, device=device)  # float64
        assert regress_keypoints(vertices, regressor).dtype == torch.float32
        assert regress_keypoints(vertices, regressor.to_sparse()).dtype == torch.float32

    @pytest.mark.parametrize(
        ("vertices", "regressor", "pattern"),
        [
            (torch.rand(4, 7, 2), torch.rand(3, 7), r"^vertices: expected shape"),
            (torch.rand(7), torch.rand(3, 7), r"^vertices: expected shape"),
            (torch.ones(4, 7, 3, dtype=torch.int64), torch.rand(3, 7), r"^vertices: .*floating"),
            ([[0.0, 0.0, 0.0]], torch.rand(3, 1), r"^vertices: expected a torch.Tensor"),
            (torch.rand(4, 7, 3), torch.rand(7), r"^joint_regressor: expected shape \(N, V\)"),
            (torch.rand(4, 7, 3), torch.rand(2, 3, 7), r"^joint_regressor: expected shape"),
            (torch.rand(4, 7, 3), torch.rand(3, 8), r"^joint_regressor: .*V=7.*got \(3, 8\)"),
            (torch.rand(4, 7, 3), [[1.0] * 7], r"^joint_regressor: expected a torch.Tensor"),
            (
                torch.rand(4, 7, 3),
                torch.rand(3, 7, dtype=torch.complex64),
                r"^joint_regressor: .*real",
            ),
            (torch.rand(4, 7, 3), torch.ones(3, 7, dtype=torch.int64), r"^joint_regressor: .*real"),
            (torch.rand(4, 7, 3), torch.rand(3, 7, device="meta"), r"^joint_regressor: .*device"),
            (torch.empty(4, 7, 3, device="meta"), torch.rand(3, 7), r"^joint_regressor: .*device"),
        ],
        ids=[
            "last-dim",
            "rank",
            "int",
            "list",
            "1d",
            "3d",
            "wrong-V",
            "list-regressor",
            "complex-regressor",
            "int-regressor",
            "meta-regressor",
            "cpu-regressor-meta-vertices",
        ],
    )
    def test_bad_input(self, vertices, regressor, pattern):
        with raises_for(pattern):
            regress_keypoints(vertices, regressor)

    def test_gradients(self):
        regressor = make_regressor(4, 6)
        vertices = torch.randn(2, 6, 3, dtype=F64)
        assert check_gradients(lambda v: regress_keypoints(v, regressor), vertices, gradgrad=False)
        assert check_gradients(
            lambda v: regress_keypoints(v, regressor.to_sparse()), vertices, gradgrad=False
        )

    def test_vmap_and_meta_with_dense_regressor(self, dtype):
        regressor = make_regressor(5, 9, dtype=dtype)
        vertices = torch.randn(4, 9, 3, dtype=dtype)
        mapped = torch.func.vmap(regress_keypoints, in_dims=(0, None))(vertices, regressor)
        torch.testing.assert_close(mapped, regress_keypoints(vertices, regressor))
        meta = regress_keypoints(torch.empty(4, 9, 3, device="meta"), regressor.to("meta"))
        assert meta.shape == (4, 5, 3) and meta.device.type == "meta"


class TestUnusedVertices:
    @pytest.mark.parametrize("bad", [float("nan"), float("inf")])
    def test_dense_and_sparse_agree_and_a_used_bad_vertex_is_invalid(self, bad):
        vertices, points2d, K, regressor, weights, _ = mesh_problem(4, (3,))
        regressor = regressor.clone()
        regressor[:, 7] = 0.0  # vertex 7 feeds no keypoint
        vertices = vertices.clone()
        vertices[1, 7, 0] = bad
        dense = position_mesh(vertices, points2d, K, weights, joint_regressor=regressor)
        sparse = position_mesh(
            vertices, points2d, K, weights, joint_regressor=regressor.to_sparse()
        )
        torch.testing.assert_close(dense.translation, sparse.translation)
        assert dense.valid.all() and dense.translation.isfinite().all()
        used = int(regressor[0].nonzero()[0, 0])
        vertices[2, used, 1] = bad
        broken = position_mesh(vertices, points2d, K, weights, joint_regressor=regressor)
        assert broken.valid.tolist() == [True, True, False]


class TestPositionMesh:
    def test_smoke_docstring(self, device, dtype):
        K = torch.tensor(
            [[500.0, 0.0, 112.0], [0.0, 500.0, 112.0], [0.0, 0.0, 1.0]], dtype=dtype, device=device
        )
        vertices = torch.tensor(
            [[0.0, 0.0, 0.0], [0.06, 0.0, 0.0], [0.0, 0.06, 0.01]], dtype=dtype, device=device
        )
        camera = vertices + torch.tensor([0.0, 0.0, 0.5], dtype=dtype, device=device)
        placed = position_mesh(
            vertices,
            project(camera, K),
            K,
            joint_regressor=torch.eye(3, dtype=dtype, device=device),
        )
        assert isinstance(placed, MeshPlacement)
        assert MeshPlacement._fields == ("vertices_cam", "keypoints_cam", "translation", "valid")
        torch.testing.assert_close(placed.vertices_cam, camera, rtol=0, atol=1e-6)
        assert bool(placed.valid)

    @pytest.mark.parametrize("damping", [0.0, 0.05])
    def test_equals_solve_translation_on_regressed_keypoints(self, damping, device, dtype):
        vertices, points2d, K, regressor, weights, truth = mesh_problem(
            0, (3,), dtype=dtype, device=device
        )
        prior = truth * 1.1
        placed = position_mesh(
            vertices, points2d, K, weights, joint_regressor=regressor, damping=damping, prior=prior
        )
        keypoints = regress_keypoints(vertices, regressor)
        solution = solve_translation(keypoints, points2d, K, weights, damping=damping, prior=prior)
        assert torch.equal(placed.translation, solution.translation)
        assert torch.equal(placed.valid, solution.valid)
        offset = solution.translation.unsqueeze(-2)
        assert torch.equal(placed.vertices_cam, vertices + offset)
        assert torch.equal(placed.keypoints_cam, keypoints + offset)
        assert placed.vertices_cam.shape == (3, 40, 3) and placed.keypoints_cam.shape == (3, 21, 3)

    def test_sparse_regressor_equals_dense(self, device, dtype):
        vertices, points2d, K, regressor, weights, _ = mesh_problem(
            1, (2, 2), dtype=dtype, device=device
        )
        dense = position_mesh(vertices, points2d, K, weights, joint_regressor=regressor)
        sparse = position_mesh(
            vertices, points2d, K, weights, joint_regressor=regressor.to_sparse()
        )
        for a, b in zip(dense, sparse, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10 if dtype == F64 else 1e-5, atol=0)
        # The gradients to the vertices agree as well.
        grads = []
        for r in (regressor, regressor.to_sparse()):
            leaf = vertices.clone().requires_grad_()
            placed = position_mesh(leaf, points2d, K, weights, joint_regressor=r)
            grads.append(torch.autograd.grad(placed.vertices_cam.square().sum(), leaf)[0])
        scale = float(grads[0].abs().max())
        tol = 1e-9 if dtype == F64 else 1e-3
        torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=tol * scale)

    def test_batched_equals_per_item(self, device, dtype):
        vertices, points2d, K, regressor, weights, _ = mesh_problem(
            2, (3,), dtype=dtype, device=device
        )
        batched = position_mesh(vertices, points2d, K, weights, joint_regressor=regressor)
        for i in range(3):
            single = position_mesh(
                vertices[i], points2d[i], K[i], weights[i], joint_regressor=regressor
            )
            for a, b in zip(batched, single, strict=True):
                torch.testing.assert_close(a[i], b, rtol=1e-10 if dtype == F64 else 1e-5, atol=0)

    @PROPERTY
    @given(data=st.data())
    def test_noise_free_recovery(self, data, device, dtype):
        problem = data.draw(
            translation_problems(
                min_points=12, max_points=60, depth_range=(0.3, 3.0), size_range=(0.1, 0.3)
            )
        )
        vertices = problem.points3d
        regressor = make_regressor(8, vertices.shape[-2], seed=data.draw(st.integers(0, 99)))
        camera = regressor @ vertices + problem.translation
        points2d = project(camera, problem.intrinsics)
        cast = [
            t.to(device=device, dtype=dtype)
            for t in (vertices, points2d, problem.intrinsics, regressor)
        ]
        placed = position_mesh(*cast[:3], joint_regressor=cast[3])
        assert bool(placed.valid)
        tol = 1e-9 if dtype == F64 else 1e-4
        expected = (vertices + problem.translation).to(device=device, dtype=dtype)
        torch.testing.assert_close(placed.vertices_cam, expected, rtol=0, atol=tol * 3.0)
        torch.testing.assert_close(
            placed.keypoints_cam, camera.to(device=device, dtype=dtype), rtol=0, atol=tol * 3.0
        )

    def test_gradcheck_vertices_and_inputs(self):
        problem = well_scaled_problem(3, num_points=6)
        regressor = make_regressor(4, 6, seed=3)
        points2d = project(
            regressor @ problem.points3d + problem.translation, problem.intrinsics
        ) + 0.05 * torch.randn(4, 2, generator=torch.Generator().manual_seed(3), dtype=F64)

        def place(vertices, points2d, intrinsics, weights):
            return position_mesh(
                vertices, points2d, intrinsics, weights, joint_regressor=regressor, damping=0.01
            )

        assert check_gradients(
            place,
            problem.points3d,
            points2d,
            problem.intrinsics,
            problem.weights[:4],
            atol=1e-7,
            rtol=1e-5,
        )

    @pytest.mark.parametrize(
        ("changes", "pattern"),
        [
            ({"joint_regressor": torch.rand(21)}, r"^joint_regressor: expected shape \(N, V\)"),
            ({"joint_regressor": torch.rand(21, 39)}, r"^joint_regressor: .*V=40.*got \(21, 39\)"),
            ({"joint_regressor": torch.rand(20, 40)}, r"^joint_regressor: .*N=21.*points2d"),
            ({"joint_regressor": None}, r"^joint_regressor: expected a torch.Tensor"),
            ({"vertices": torch.rand(2, 40, 3)}, r"vertices.*points2d|points2d.*vertices"),
            ({"points2d": torch.rand(3, 20, 2)}, r"^joint_regressor: .*N=20.*points2d"),
            ({"points2d": torch.rand(3, 21, 3)}, r"^points2d: expected shape"),
            ({"vertices": torch.rand(3, 40, 2)}, r"^vertices: expected shape"),
            ({"weights": torch.rand(3, 20)}, r"^weights: "),
            ({"damping": -1.0}, r"^damping: "),
        ],
        ids=[
            "1d",
            "wrong-V",
            "wrong-N",
            "none",
            "batch",
            "points2d-N",
            "points2d-dim",
            "vertices-dim",
            "weights-N",
            "damping",
        ],
    )
    def test_bad_input(self, changes, pattern):
        vertices, points2d, K, regressor, weights, _ = mesh_problem(4, (3,))
        arguments = {
            "vertices": vertices,
            "points2d": points2d,
            "intrinsics": K,
            "joint_regressor": regressor,
            "weights": weights,
            "damping": 0.0,
            **changes,
        }
        with raises_for(pattern):
            position_mesh(**arguments)

    def test_meta_device_with_dense_regressor(self):
        def meta(*shape):
            return torch.empty(*shape, device="meta").requires_grad_()

        vertices, points2d, K, weights = meta(2, 40, 3), meta(2, 21, 2), meta(3, 3), meta(2, 21)
        regressor = torch.empty(21, 40, device="meta")
        placed = position_mesh(
            vertices, points2d, K, weights, joint_regressor=regressor, damping=0.01
        )
        assert placed.vertices_cam.shape == (2, 40, 3) and placed.valid.shape == (2,)
        assert placed.vertices_cam.device.type == "meta"
        grads = torch.autograd.grad(placed.vertices_cam.sum(), (vertices, points2d, K, weights))
        assert [g.shape for g in grads] == [(2, 40, 3), (2, 21, 2), (3, 3), (2, 21)]

    def test_vmap_and_compile_with_dense_regressor(self, device, dtype):
        vertices, points2d, K, regressor, weights, _ = mesh_problem(
            5, (4,), dtype=dtype, device=device
        )
        batched = position_mesh(vertices, points2d, K, weights, joint_regressor=regressor)
        place = functools.partial(position_mesh, joint_regressor=regressor)
        mapped = torch.func.vmap(place)(vertices, points2d, K, weights)
        compiled = torch.compile(place, fullgraph=True, backend="eager")(
            vertices, points2d, K, weights
        )
        # The batched call takes the NumPy path on the CPU, vmap and compile the torch one:
        # float32 sums in a different order differ by rounding (1 µm at 1 m).
        tol = {"rtol": 1e-12, "atol": 0} if dtype == F64 else {"rtol": 1e-6, "atol": 1e-6}
        for a, b, c in zip(batched, mapped, compiled, strict=True):
            torch.testing.assert_close(b, a, **tol)
            torch.testing.assert_close(c, a, **tol)
