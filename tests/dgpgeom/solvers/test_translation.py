"""Tests for dgpgeom.solvers.translation."""

from __future__ import annotations

import functools
import math
import warnings

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dgpgeom import ShapeError, TranslationSolution, solve_translation
from dgpgeom.solvers import translation as translation_module
from dgpgeom.solvers.translation import CONDITION_TOLERANCE_EPS
from dgpgeom.testing import (
    check_gradients,
    degenerate_translation_problems,
    solve_translation_naive,
    translation_problems,
)
from tests.dgpgeom._solver_problems import (
    explicit_system,
    make_problem,
    project,
    raises_for,
    reprojection_error,
    well_scaled_problem,
)

F64 = torch.float64
#: The NumPy path's size limit as shipped (tests may set it to 0: the torch path only).
NUMPY_PATH_MAX_POINTS = translation_module.NUMPY_PATH_MAX_POINTS
#: The scalar path's size limit as shipped.
SCALAR_PATH_MAX_POINTS = translation_module.SCALAR_PATH_MAX_POINTS


#: ATen ops one hand (B = 1, N = 21) may dispatch on the scalar path: the tensor-to-list
#: and list-to-tensor conversions only (20 and 33 measured; the torch path runs 63 and
#: 113, see the benchmarks).
SCALAR_OP_BUDGET = {"forward": 24, "forward+backward": 36}


@pytest.fixture(autouse=True, params=["scalar", "numpy", "numpy-chunks", "torch"])
def solver_path(request, monkeypatch):
    """Every test runs on each path: Python floats (one CPU problem, as shipped), NumPy
    (small CPU batches; the scalar path off), NumPy in chunks of three problems copied in
    blocks of two (so that batches of the suite cross chunk and block boundaries, as a
    large one does, and end in partial ones) and torch (all others; both off)."""
    if request.param != "scalar":
        monkeypatch.setattr(translation_module, "SCALAR_PATH_MAX_POINTS", 0)
    if request.param == "numpy-chunks":
        monkeypatch.setattr(translation_module.numpy_twin, "CHUNK_PROBLEMS", 3)
        monkeypatch.setattr(translation_module.numpy_twin, "TRANSPOSE_BLOCK", 2)
    if request.param == "torch":
        monkeypatch.setattr(translation_module, "NUMPY_PATH_MAX_POINTS", 0)
    return request.param


PROPERTY = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
DAMPINGS = st.sampled_from([0.0, 1e-3, 0.1])

#: solve_translation with every output computed.
solve_all = functools.partial(solve_translation, return_covariance=True, return_residuals=True)

# Each argument of solve_translation, broken one way at a time, and the message.
BAD_INPUTS = [
    pytest.param({"points2d": torch.rand(2)}, r"^points2d: expected shape", id="points2d-rank"),
    pytest.param(
        {"points2d": torch.rand(4, 5, 3)},
        r"^points2d: expected shape .*got \(4, 5, 3\)",
        id="points2d-last-dim",
    ),
    pytest.param({"points3d": torch.rand(5)}, r"^points3d: expected shape", id="points3d-rank"),
    pytest.param(
        {"points3d": torch.rand(4, 5, 2)},
        r"^points3d: expected shape .*got \(4, 5, 2\)",
        id="points3d-last-dim",
    ),
    pytest.param(
        {"points2d": torch.rand(4, 6, 2)},
        r"^points2d: .*N=5.*N was set to 5 by points3d",
        id="points2d-N",
    ),
    pytest.param(
        {"intrinsics": torch.rand(3)}, r"^intrinsics: expected shape", id="intrinsics-rank"
    ),
    pytest.param(
        {"intrinsics": torch.rand(3, 4)},
        r"^intrinsics: expected shape .*got \(3, 4\)",
        id="intrinsics-shape",
    ),
    pytest.param({"weights": torch.rand(4, 6)}, r"^weights: .*N=5.*got \(4, 6\)", id="weights-N"),
    pytest.param({"weights": torch.rand(4, 5, 1)}, r"^weights: ", id="weights-rank"),
    pytest.param(
        {"prior": torch.rand(4, 2)}, r"^prior: expected shape .*got \(4, 2\)", id="prior-last-dim"
    ),
    pytest.param(
        {"points2d": torch.rand(4, 1, 2), "points3d": torch.rand(4, 1, 3), "weights": None},
        r"^points3d: expected at least 2 points.*N=1",
        id="too-few-points",
    ),
    pytest.param(
        {"points3d": torch.rand(3, 5, 3)},
        r"do not broadcast: points3d \(3,\), points2d \(4,\)",
        id="batch-points3d",
    ),
    pytest.param(
        {"intrinsics": torch.rand(2, 3, 3)},
        r"do not broadcast: .*intrinsics \(2,\)",
        id="batch-intrinsics",
    ),
    pytest.param(
        {"weights": torch.rand(2, 5)}, r"do not broadcast: .*weights \(2,\)", id="batch-weights"
    ),
    pytest.param(
        {"prior": torch.rand(2, 3)}, r"do not broadcast: .*prior \(2,\)", id="batch-prior"
    ),
    pytest.param(
        {"points2d": torch.ones(4, 5, 2, dtype=torch.int64)},
        r"^points2d: .*floating",
        id="int-points2d",
    ),
    pytest.param(
        {"points3d": torch.ones(4, 5, 3, dtype=torch.int32)},
        r"^points3d: .*floating",
        id="int-points3d",
    ),
    pytest.param(
        {"intrinsics": torch.eye(3, dtype=torch.int64)},
        r"^intrinsics: .*floating",
        id="int-intrinsics",
    ),
    pytest.param(
        {"weights": torch.ones(4, 5, dtype=torch.bool)}, r"^weights: .*floating", id="bool-weights"
    ),
    pytest.param(
        {"prior": torch.ones(4, 3, dtype=torch.int64)}, r"^prior: .*floating", id="int-prior"
    ),
    pytest.param(
        {"points2d": torch.rand(4, 5, 2, device="meta")},
        r"^points2d: .*on cpu \(the device of points3d\), got one on meta",
        id="device-points2d",
    ),
    pytest.param(
        {"intrinsics": torch.eye(3, device="meta")},
        r"^intrinsics: .*on meta",
        id="device-intrinsics",
    ),
    pytest.param(
        {"weights": torch.rand(4, 5, device="meta")}, r"^weights: .*on meta", id="device-weights"
    ),
    pytest.param(
        {"prior": torch.rand(4, 3, device="meta")}, r"^prior: .*on meta", id="device-prior"
    ),
    pytest.param({"damping": -0.1}, r"^damping: .*non-negative", id="damping-negative"),
    pytest.param({"damping": float("nan")}, r"^damping: ", id="damping-nan"),
    pytest.param({"damping": "0.1"}, r"^damping: ", id="damping-str"),
    pytest.param({"damping": torch.tensor(0.1)}, r"^damping: ", id="damping-tensor"),
    pytest.param(
        {"points2d": [[0.0, 0.0], [1.0, 1.0]]},
        r"^points2d: expected a torch.Tensor.*list",
        id="points2d-list",
    ),
    pytest.param(
        {"points3d": (1.0, 2.0, 3.0)}, r"^points3d: expected a torch.Tensor", id="points3d-tuple"
    ),
    pytest.param(
        {"intrinsics": torch.eye(3).numpy()},
        r"^intrinsics: expected a torch.Tensor.*ndarray",
        id="intrinsics-ndarray",
    ),
    pytest.param({"weights": [1.0] * 5}, r"^weights: expected a torch.Tensor", id="weights-list"),
    pytest.param({"prior": 0.0}, r"^prior: expected a torch.Tensor", id="prior-float"),
]


def problems(dtype, device, **overrides):
    """Problems for a correctness test in ``dtype``.

    float64 covers the strategy's whole default range (0.1-10 m, N from 2). float32
    is only claimed accurate at a realistic scale (see the solve_translation
    docstring), so its problems are hand-like: 0.3-2 m, 10-30 cm, at least 8 points.
    """
    if dtype != F64:
        overrides = {
            "depth_range": (0.3, 2.0),
            "size_range": (0.1, 0.3),
            "min_points": 8,
            "max_points": 50,
            **overrides,
        }
    return translation_problems(dtype=dtype, device=device, **overrides)


def rel_tol(dtype):
    """Relative agreement expected between two solutions of one problem in ``dtype``.

    float32: twice the documented bound 2e-5 m + 1e-5 x depth at depth >= 0.3 m.
    """
    return 1e-10 if dtype == F64 else 2e-4


def assert_translation_close(actual, expected, dtype, rtol=None):
    rtol = rel_tol(dtype) if rtol is None else rtol
    err = (actual - expected).norm(dim=-1)
    scale = expected.norm(dim=-1)
    assert bool((err <= rtol * scale).all()), f"max relative error {(err / scale).max():.3g}"


def assert_solutions_close(actual, expected, dtype):
    """Two solutions of the same problem computed along different (equivalent) paths.

    In float32 the rounding of the two paths differs by about 1e-7 relative in the
    translation, which the conditioning of the system (about 100-1000 for a hand)
    carries into the residuals: 1e-4 of the largest value.
    """
    tol = 1e-12 if dtype == F64 else 1e-4
    assert torch.equal(actual.valid, expected.valid)
    for a, e in zip(actual, expected, strict=True):
        if a is not None and a.is_floating_point():
            atol = tol * float(e.abs().max()) if e.numel() else 0.0
            torch.testing.assert_close(a, e, rtol=tol, atol=atol)


def grads_close(actual, expected, rtol):
    for a, e in zip(actual, expected, strict=True):
        scale = e.abs().max().clamp(min=1e-30)
        assert float((a - e).abs().max() / scale) <= rtol


def inputs_of(problem, prior=None, *, requires_grad=False):
    prior = problem.translation * 1.05 if prior is None else prior
    tensors = (problem.points3d, problem.points2d, problem.intrinsics, problem.weights, prior)
    return tuple(t.detach().clone().requires_grad_(requires_grad) for t in tensors)


def lstsq_translation(points3d, points2d, intrinsics, weights, damping=0.0, prior=None):
    """float64 ``lstsq`` of the paper's explicit weighted system (Eq. 5, 7), per item.

    With damping, the rows ``sqrt(λ Σw²) I`` (right-hand side ``sqrt(λ Σw²) prior``)
    are appended: that is the documented objective ``+ λ Σw² ‖t - prior‖²``.
    """
    batch = points2d.shape[:-2]
    flat = [t.to(F64).reshape(-1, *t.shape[len(batch) :]) for t in (points3d, points2d, weights)]
    K = intrinsics.to(F64).expand(*batch, 3, 3).reshape(-1, 3, 3)
    if prior is None:
        prior = torch.zeros(*batch, 3, dtype=F64, device=points2d.device)
    prior = prior.to(F64).expand(*batch, 3).reshape(-1, 3)
    solutions = []
    for p3, p2, w, k, p in zip(*flat, K, prior, strict=True):
        A, B, W = explicit_system(p3, p2, k, w)
        lhs, rhs = W @ A, W @ B
        if damping > 0:
            root = math.sqrt(damping) * w.square().sum().sqrt()
            lhs = torch.cat((lhs, root * torch.eye(3, dtype=F64, device=lhs.device)))
            rhs = torch.cat((rhs, root * p))
        solutions.append(torch.linalg.lstsq(lhs, rhs.unsqueeze(-1)).solution.squeeze(-1))
    return torch.stack(solutions).reshape(*batch, 3)


def explicit_covariance(points3d, points2d, intrinsics, weights, translation, damping=0.0):
    """σ̂² (AᵀW²A + λΣw² I)⁻¹ with σ̂² = Σw²‖r‖²/(2n-3), from the explicit system."""
    A, B, W = explicit_system(*(t.to(F64) for t in (points3d, points2d, intrinsics, weights)))
    r = W @ (A @ translation.to(F64) - B)
    n = int((weights != 0).sum())
    sigma2 = r.square().sum() / (2 * n - 3)
    normal = A.T @ W @ W @ A + damping * weights.to(F64).square().sum() * torch.eye(3, dtype=F64)
    return sigma2 * torch.linalg.inv(normal)


class TestSolveTranslation:
    # ------------------------------------------------------------------ smoke
    def test_smoke_docstring_problem(self, device, dtype):
        K = torch.tensor(
            [[500.0, 0.0, 112.0], [0.0, 500.0, 112.0], [0.0, 0.0, 1.0]], dtype=dtype, device=device
        )
        points3d = torch.tensor(
            [[0.0, 0.0, 0.0], [0.05, 0.0, 0.01], [0.0, 0.08, -0.01]], dtype=dtype, device=device
        )
        t_true = torch.tensor([0.02, -0.01, 0.6], dtype=dtype, device=device)
        points2d = project(points3d + t_true, K)
        solution = solve_all(points3d, points2d, K)
        assert isinstance(solution, TranslationSolution)
        assert TranslationSolution._fields == ("translation", "valid", "residuals", "covariance")
        assert solution.translation.shape == (3,) and solution.translation.dtype == dtype
        assert solution.valid.shape == () and solution.valid.dtype == torch.bool
        assert solution.covariance.shape == (3, 3) and solution.residuals.shape == (3,)
        assert solution.translation.device == device
        assert bool(solution.valid)
        assert_translation_close(solution.translation, t_true, dtype, rtol=1e-5)
        assert float(solution.residuals.max()) < (1e-6 if dtype == F64 else 1e-2)

    # -------------------------------------------------------------- bad input
    @staticmethod
    def _valid_arguments():
        return {
            "points2d": torch.rand(4, 5, 2),
            "points3d": torch.rand(4, 5, 3),
            "intrinsics": torch.eye(3),
            "weights": torch.rand(4, 5),
            "prior": torch.rand(4, 3),
            "damping": 0.1,
        }

    @pytest.mark.parametrize(("changes", "pattern"), BAD_INPUTS)
    def test_bad_input_raises_shape_error_naming_argument(self, changes, pattern):
        arguments = {**self._valid_arguments(), **changes}
        positional = [arguments.pop(k) for k in ("points3d", "points2d", "intrinsics", "weights")]
        with raises_for(pattern):
            solve_all(*positional, **arguments)
        # The twin validates identically, so the tests of one cover both.
        with raises_for(pattern):
            solve_translation_naive(*positional, **arguments)

    def test_shape_error_is_value_error(self):
        assert issubclass(ShapeError, ValueError)

    # ------------------------------------------------ shapes and broadcasting
    @pytest.mark.parametrize("batch_shape", [(), (3,), (2, 3)])
    def test_output_shapes(self, batch_shape, device, dtype):
        problem = make_problem(0, batch_shape, 6, dtype=dtype, device=device)
        solution = solve_all(*problem[:4])
        assert solution.translation.shape == (*batch_shape, 3)
        assert solution.valid.shape == batch_shape
        assert solution.covariance.shape == (*batch_shape, 3, 3)
        assert solution.residuals.shape == (*batch_shape, 6)
        for out in (solution.translation, solution.covariance, solution.residuals):
            assert out.dtype == dtype and out.device == device
        assert bool(solution.valid.all())

    @pytest.mark.parametrize("shared_k", [False, True])
    @pytest.mark.parametrize("batch_shape", [(0,), (2, 0)])
    def test_empty_batch_forward_and_backward(self, batch_shape, shared_k, device, dtype):
        problem = make_problem(0, (2,), 6, dtype=dtype, device=device)
        inputs = [
            t[:1].expand(*batch_shape, *t.shape[1:]).clone().requires_grad_()
            for t in (problem.points3d, problem.points2d, problem.intrinsics, problem.weights)
        ]
        if shared_k:
            inputs[2] = problem.intrinsics[0].clone().requires_grad_()
        solution = solve_translation(*inputs)
        assert solution.translation.shape == (*batch_shape, 3)
        assert solution.valid.shape == batch_shape
        grads = torch.autograd.grad(solution.translation.sum(), inputs)
        for grad, tensor in zip(grads, inputs, strict=True):
            assert grad.shape == tensor.shape and not bool(grad.any())

    def test_one_intrinsics_for_a_batch(self, device, dtype):
        problem = make_problem(1, (5,), dtype=dtype, device=device)
        K = problem.intrinsics[0]
        shared = solve_all(problem.points3d, problem.points2d, K, problem.weights)
        expanded = solve_all(problem.points3d, problem.points2d, K.expand(5, 3, 3), problem.weights)
        assert_solutions_close(shared, expanded, dtype)

    def test_extra_leading_dims(self, device, dtype):
        problem = make_problem(2, (2, 3), dtype=dtype, device=device)
        prior = problem.translation.flip(0)
        nested = solve_all(*problem[:4], damping=0.01, prior=prior)
        flat = solve_all(
            *(t.flatten(0, 1) for t in problem[:4]), damping=0.01, prior=prior.flatten(0, 1)
        )
        assert_solutions_close(TranslationSolution(*(t.flatten(0, 1) for t in nested)), flat, dtype)

    def test_one_prior_for_a_batch(self, device, dtype):
        """A `(3,)` prior broadcasts over the batch, in the answer and in its gradient."""
        problem = make_problem(4, (2, 3), dtype=dtype, device=device)
        prior = problem.translation[0, 0].clone().requires_grad_()
        shared = solve_translation(*problem[:4], damping=0.01, prior=prior)
        expanded_prior = prior.detach().expand(2, 3, 3).clone().requires_grad_()
        expanded = solve_translation(*problem[:4], damping=0.01, prior=expanded_prior)
        assert_solutions_close(shared, expanded, dtype)
        shared.translation.sum().backward()
        expanded.translation.sum().backward()
        torch.testing.assert_close(prior.grad, expanded_prior.grad.sum((0, 1)))

    def test_intrinsics_and_points_broadcast_against_each_other(self, device, dtype):
        # points (A=2, 1, N, 2) against intrinsics (B=3, 3, 3): batch (2, 3).
        problem = make_problem(3, (2, 3), dtype=dtype, device=device)
        points3d, points2d = problem.points3d[:, :1], problem.points2d[:, :1]
        weights, K = problem.weights[0, 0], problem.intrinsics[0]  # (N,), (3, 3, 3)
        solution = solve_all(points3d, points2d, K, weights)
        assert solution.translation.shape == (2, 3, 3)
        assert solution.residuals.shape == (2, 3, points2d.shape[-2])
        for a in range(2):
            for b in range(3):
                single = solve_all(points3d[a, 0], points2d[a, 0], K[b], weights)
                item = TranslationSolution(*(t[a, b] for t in solution))
                assert_solutions_close(item, single, dtype)

    def test_weights_none_equals_ones(self, device, dtype):
        problem = make_problem(4, (3,), dtype=dtype, device=device)
        default = solve_all(*problem[:3])
        ones = solve_all(*problem[:3], torch.ones_like(problem.weights))
        assert_solutions_close(default, ones, dtype)

    @pytest.mark.parametrize("low", [torch.float16, torch.bfloat16])
    def test_low_precision_computed_in_float32(self, low, device):
        problem = make_problem(5, (4,), device=device)
        prior = problem.translation * 0.9
        inputs = [t.to(low) for t in (*problem[:4], prior)]
        solution = solve_all(*inputs[:4], damping=1e-3, prior=inputs[4])
        reference = solve_all(
            *(t.float() for t in inputs[:4]), damping=1e-3, prior=inputs[4].float()
        )
        assert bool(solution.valid.all())
        assert torch.equal(solution.valid, reference.valid)
        for out, ref in zip(solution, reference, strict=True):
            if out.is_floating_point():
                assert out.dtype == low
                assert torch.equal(out, ref.to(low))
        # A half-precision pipeline still gets gradients in its own dtype.
        leaves = [t.detach().requires_grad_() for t in inputs[:4]]
        solve_all(*leaves).translation.sum().backward()
        for leaf in leaves:
            assert leaf.grad.dtype == low and bool(leaf.grad.isfinite().all())

    def test_mixed_dtypes_promote(self, device):
        problem = make_problem(6, (2,), device=device)
        mixed = solve_all(
            problem.points3d, problem.points2d.float(), problem.intrinsics.float(), problem.weights
        )
        assert mixed.translation.dtype == F64
        promoted = solve_all(
            problem.points3d,
            problem.points2d.float().double(),
            problem.intrinsics.float().double(),
            problem.weights,
        )
        assert_solutions_close(mixed, promoted, F64)

    @pytest.mark.parametrize("damping", [0.0, 0.01])
    def test_meta_device_forward_and_backward(self, damping):
        # Any .item(), boolean-mask indexing or data-dependent shape fails on meta.
        def meta(*shape):
            return torch.empty(*shape, device="meta").requires_grad_()

        inputs = (meta(4, 21, 3), meta(4, 21, 2), meta(3, 3), meta(4, 21), meta(4, 3))
        solution = solve_all(*inputs[:4], damping=damping, prior=inputs[4])
        assert solution.translation.device.type == "meta"
        assert solution.translation.shape == (4, 3) and solution.valid.shape == (4,)
        assert solution.covariance.shape == (4, 3, 3) and solution.residuals.shape == (4, 21)
        loss = sum(o.sum() for o in solution if o.is_floating_point())
        grads = torch.autograd.grad(loss, inputs, create_graph=True)
        assert [g.shape for g in grads] == [t.shape for t in inputs]
        second = torch.autograd.grad(sum(g.sum() for g in grads), inputs, materialize_grads=True)
        assert [g.shape for g in second] == [t.shape for t in inputs]

    # ------------------------------------------------------------ correctness
    @PROPERTY
    @given(data=st.data())
    def test_noise_free_recovery(self, data, device, dtype):
        problem = data.draw(problems(dtype, device))
        solution = solve_all(*problem[:4])
        assert bool(solution.valid.all())
        assert_translation_close(solution.translation, problem.translation, dtype)

    @PROPERTY
    @given(data=st.data())
    def test_matches_lstsq_of_the_papers_system(self, data, device, dtype):
        problem = data.draw(problems(dtype, device, noise_px=2.0, skew=True))
        solution = solve_all(*problem[:4])
        reference = lstsq_translation(*problem[:4])
        # A few centimetres of hand metres away under 2 px of noise can solve to a root
        # behind the camera (the paper's lstsq agrees): valid must be False exactly there.
        used_depths = torch.where(problem.weights != 0, problem.points3d[..., 2], 0.0).to(F64)
        nearest = reference[..., 2] + used_depths.amin(-1).clamp(max=0.0)
        clearly_in_front = nearest > 1e-3 * reference[..., 2].abs()
        clearly_behind = nearest < -1e-3 * reference[..., 2].abs()
        assert bool((solution.valid | ~clearly_in_front).all())
        assert not bool((solution.valid & clearly_behind).any())
        keep = solution.valid
        assert_translation_close(solution.translation[keep].to(F64), reference[keep], dtype)

    @PROPERTY
    @given(data=st.data(), damping=st.sampled_from([1e-4, 1e-2, 1.0, 100.0]))
    def test_damped_matches_lstsq_of_augmented_system(self, data, damping, device, dtype):
        problem = data.draw(problems(dtype, device, batch_shape=(2,), noise_px=2.0))
        offset = torch.tensor([0.05, -0.03, 0.2], dtype=dtype, device=device)
        prior = problem.translation + offset
        solution = solve_all(*problem[:4], damping=damping, prior=prior)
        reference = lstsq_translation(*problem[:4], damping=damping, prior=prior)
        assert bool(solution.valid.all())
        assert_translation_close(solution.translation.to(F64), reference, dtype)

    def test_damping_pulls_toward_prior(self, device, dtype):
        problem = make_problem(7, (3,), dtype=dtype, device=device)
        prior = problem.translation + torch.tensor([0.1, 0.1, 0.5], dtype=dtype, device=device)
        free = solve_all(*problem[:4]).translation
        # Without damping the prior is ignored wherever the problem is valid.
        assert torch.equal(free, solve_all(*problem[:4], prior=prior).translation)
        distances = [
            (solve_all(*problem[:4], damping=d, prior=prior).translation - prior).norm(dim=-1)
            for d in (0.0, 1e-3, 1e-1, 1e1, 1e6)
        ]
        for closer, farther in zip(distances[1:], distances[:-1], strict=True):
            assert bool((closer < farther).all())
        assert float(distances[-1].max()) < 1e-5 * float(prior.norm(dim=-1).min())

    @PROPERTY
    @given(data=st.data(), log_scale=st.floats(-4.0, 4.0), damping=DAMPINGS)
    def test_weight_scale_invariance(self, data, log_scale, damping, device, dtype):
        problem = data.draw(problems(dtype, device, noise_px=1.0, batch_shape=(2,)))
        prior = problem.translation * 1.1
        base = solve_all(*problem[:4], damping=damping, prior=prior)
        scaled = solve_all(
            *problem[:3], problem.weights * 10.0**log_scale, damping=damping, prior=prior
        )
        assert torch.equal(base.valid, scaled.valid)
        assert_translation_close(scaled.translation, base.translation, dtype)
        tol = rel_tol(dtype) * 100
        torch.testing.assert_close(scaled.covariance, base.covariance, rtol=tol, atol=0)
        torch.testing.assert_close(scaled.residuals, base.residuals, rtol=tol, atol=tol)

    def test_only_squared_weights_matter(self, device, dtype):
        problem = make_problem(8, (3,), dtype=dtype, device=device)
        signs = torch.where(torch.arange(21, device=device) % 2 == 0, 1.0, -1.0).to(dtype)
        a = solve_all(*problem[:4], damping=0.01)
        b = solve_all(*problem[:3], problem.weights * signs, damping=0.01)
        assert_solutions_close(b, a, dtype)

    @PROPERTY
    @given(data=st.data(), damping=DAMPINGS)
    def test_permutation_equivariance(self, data, damping, device, dtype):
        problem = data.draw(problems(dtype, device, noise_px=1.0))
        n = problem.points2d.shape[-2]
        perm = torch.as_tensor(data.draw(st.permutations(range(n))), device=device)
        prior = problem.translation * 1.1  # (a pull toward zeros may land behind the camera)
        base = solve_all(*problem[:4], damping=damping, prior=prior)
        permuted = solve_all(
            problem.points3d[perm],
            problem.points2d[perm],
            problem.intrinsics,
            problem.weights[perm],
            damping=damping,
            prior=prior,
        )
        assert bool(permuted.valid) == bool(base.valid)
        # (Two noisy points a few millimetres apart may legitimately solve behind the camera.)
        assume(bool(base.valid))
        assert_translation_close(permuted.translation, base.translation, dtype)
        tol = rel_tol(dtype) * 100
        torch.testing.assert_close(permuted.covariance, base.covariance, rtol=tol, atol=0)
        torch.testing.assert_close(permuted.residuals, base.residuals[perm], rtol=tol, atol=tol)

    @PROPERTY
    @given(
        data=st.data(),
        damping=DAMPINGS,
        log_px=st.floats(0.0, 12.0),
        log_m=st.floats(-2.0, 6.0),
    )
    def test_zero_weight_is_removal(self, data, damping, log_px, log_m, device, dtype):
        """A zero-weight point does not count, whatever (finite) garbage it holds."""
        problem = data.draw(problems(dtype, device, noise_px=1.0, zero_weights=False, min_points=3))
        n = problem.points2d.shape[-2]
        dropped = data.draw(st.lists(st.integers(0, n - 1), max_size=n - 3, unique=True))
        keep = torch.ones(n, dtype=torch.bool)
        keep[dropped] = False
        index = keep.nonzero().squeeze(-1).to(device)
        gen = torch.Generator().manual_seed(len(dropped))
        garbage2d = torch.randn(n, 2, generator=gen, dtype=F64) * 10.0**log_px
        garbage3d = torch.randn(n, 3, generator=gen, dtype=F64) * 10.0**log_m
        mask = keep.to(device).unsqueeze(-1)
        points2d = torch.where(mask, problem.points2d, garbage2d.to(device, dtype))
        points3d = torch.where(mask, problem.points3d, garbage3d.to(device, dtype))
        weights = torch.where(keep.to(device), problem.weights, 0.0)
        prior = problem.translation * 0.9

        padded = solve_all(
            points3d, points2d, problem.intrinsics, weights, damping=damping, prior=prior
        )
        removed = solve_all(
            problem.points3d[index],
            problem.points2d[index],
            problem.intrinsics,
            problem.weights[index],
            damping=damping,
            prior=prior,
        )
        assert bool(padded.valid) and bool(removed.valid)
        assert_translation_close(padded.translation, removed.translation, dtype)
        tol = rel_tol(dtype) * 100
        torch.testing.assert_close(padded.covariance, removed.covariance, rtol=tol, atol=0)
        torch.testing.assert_close(padded.residuals[index], removed.residuals, rtol=tol, atol=tol)

    @pytest.mark.parametrize("garbage", ["nan", "inf", "overflow"])
    def test_zero_weight_point_with_non_finite_values_is_dropped(self, garbage, device, dtype):
        """Documented: ``w_i = 0`` is exactly dropping point i (e.g. a missing keypoint)."""
        problem = make_problem(20, (), 8, dtype=dtype, device=device)
        value = {"nan": math.nan, "inf": math.inf, "overflow": torch.finfo(dtype).max / 4}
        points3d, points2d = problem.points3d.clone(), problem.points2d.clone()
        weights = problem.weights.clone()
        points2d[-1], points3d[-1], weights[-1] = value[garbage], value[garbage], 0.0
        inputs = [
            t.requires_grad_() for t in (points3d, points2d, problem.intrinsics.clone(), weights)
        ]
        solution = solve_all(*inputs)
        removed = solve_all(*(t[:-1] for t in problem[:2]), *problem[2:3], problem.weights[:-1])
        assert bool(solution.valid)
        assert_translation_close(solution.translation, removed.translation, dtype)
        tol = rel_tol(dtype) * 100
        torch.testing.assert_close(solution.covariance, removed.covariance, rtol=tol, atol=0)
        torch.testing.assert_close(solution.residuals[:-1], removed.residuals, rtol=tol, atol=tol)
        # The solve's gradients stay finite; only the garbage entries themselves may not be.
        # (The garbage point's own residual is not finite, so it is left out of the loss.)
        grads = torch.autograd.grad(solution.translation.sum() + solution.covariance.sum(), inputs)
        for g in (grads[0][:-1], grads[1][:-1], grads[2], grads[3]):
            assert bool(g.isfinite().all())

    @pytest.mark.parametrize("garbage", ["nan", "inf"])
    def test_zero_weight_non_finite_point_in_double_backward(self, garbage, device, dtype):
        """Second-order gradients (and the plain-autograd twin) also drop the point."""
        problem = make_problem(20, (), 8, dtype=dtype, device=device)
        value = {"nan": math.nan, "inf": math.inf}[garbage]
        points3d, points2d = problem.points3d.clone(), problem.points2d.clone()
        weights = problem.weights.clone()
        points2d[-1], points3d[-1], weights[-1] = value, value, 0.0
        inputs = [
            t.requires_grad_() for t in (points3d, points2d, problem.intrinsics.clone(), weights)
        ]
        translation = solve_translation(*inputs).translation
        grads = torch.autograd.grad(translation.sum(), inputs, create_graph=True)
        second = torch.autograd.grad(
            sum(g.sum() for g in grads), inputs, allow_unused=True, materialize_grads=True
        )
        naive = torch.autograd.grad(solve_translation_naive(*inputs).sum(), inputs)
        for g in (*grads, *second, *naive):
            assert bool(g.isfinite().all())
        for first, plain in zip(grads, naive, strict=True):
            tol = rel_tol(dtype) * 100
            torch.testing.assert_close(first, plain, rtol=tol, atol=tol)

    @PROPERTY
    @given(data=st.data(), damping=DAMPINGS)
    def test_batched_equals_per_item(self, data, damping, device, dtype):
        problem = data.draw(problems(dtype, device, batch_shape=(4,), noise_px=1.0))
        prior = problem.translation * 1.1
        batched = solve_all(*problem[:4], damping=damping, prior=prior)
        for i in range(4):
            single = solve_all(*(t[i] for t in problem[:4]), damping=damping, prior=prior[i])
            assert bool(single.valid) == bool(batched.valid[i])
            assert_translation_close(batched.translation[i], single.translation, dtype)
            tol = rel_tol(dtype) * 100
            torch.testing.assert_close(batched.covariance[i], single.covariance, rtol=tol, atol=0)
            torch.testing.assert_close(batched.residuals[i], single.residuals, rtol=tol, atol=tol)

    def test_all_zero_weights_are_invalid(self, device, dtype):
        problem = make_problem(9, (2,), dtype=dtype, device=device)
        prior = problem.translation * 0.5
        for damping in (0.0, 0.1):
            solution = solve_all(
                *problem[:3], torch.zeros_like(problem.weights), damping=damping, prior=prior
            )
            assert not bool(solution.valid.any())
            assert torch.equal(solution.translation, prior)
            assert torch.equal(solution.covariance, torch.zeros_like(solution.covariance))

    @settings(
        max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(data=st.data(), damping=DAMPINGS)
    def test_degenerate_is_invalid_with_finite_values_and_gradients(
        self, data, damping, device, dtype
    ):
        problem = data.draw(degenerate_translation_problems(dtype=dtype, device=device))
        all_zero = not bool(problem.weights.any())
        inputs = inputs_of(problem, requires_grad=True)
        solution = solve_all(*inputs[:4], damping=damping, prior=inputs[4])
        outputs = (solution.translation, solution.covariance, solution.residuals)
        for out in outputs:
            assert bool(out.isfinite().all())
        if damping > 0 and not all_zero:
            # The pull toward the prior makes the normal matrix invertible: one
            # weighted point, or points on one ray, give a unique damped solution.
            assert bool(solution.valid)
            reference = lstsq_translation(*problem[:4], damping=damping, prior=inputs[4].detach())
            assert_translation_close(solution.translation.detach().to(F64), reference, dtype)
        else:
            assert not bool(solution.valid)
            assert torch.equal(solution.translation, inputs[4])
            assert torch.equal(solution.covariance, torch.zeros_like(solution.covariance))
        gen = torch.Generator().manual_seed(0)
        loss = sum(
            (o * torch.randn(o.shape, generator=gen, dtype=F64).to(o)).sum() for o in outputs
        )
        grads = torch.autograd.grad(loss, inputs, create_graph=True)
        for g in grads:
            assert bool(g.isfinite().all())
        second = torch.autograd.grad(
            sum(g.sum() for g in grads), inputs, allow_unused=True, materialize_grads=True
        )
        for g in second:
            assert bool(g.isfinite().all())

    def test_one_point_with_damping_matches_augmented_lstsq(self, device):
        problem = make_problem(10, (), 5, device=device)
        weights = torch.zeros_like(problem.weights)
        weights[2] = 0.7
        prior = problem.translation + 0.1
        solution = solve_all(*problem[:3], weights, damping=0.5, prior=prior)
        reference = lstsq_translation(*problem[:3], weights, damping=0.5, prior=prior)
        assert bool(solution.valid)
        assert_translation_close(solution.translation, reference, F64)

    def test_condition_threshold(self, device, dtype):
        """Two points symmetric about the principal point: pivot = d²/4 exactly."""
        eps = torch.finfo(dtype).eps * CONDITION_TOLERANCE_EPS
        K = torch.tensor(
            [[800.0, 0.0, 320.0], [0.0, 800.0, 240.0], [0.0, 0.0, 1.0]], dtype=dtype, device=device
        )
        results = []
        for factor in (10.0, 0.1):
            d = math.sqrt(4 * factor * eps)  # separation in normalised coordinates
            u = torch.tensor([320.0 - 400.0 * d, 320.0 + 400.0 * d], dtype=dtype, device=device)
            points2d = torch.stack((u, torch.full_like(u, 240.0)), -1)
            # Points 0.6 d apart along x: exactly seen at depth 0.6 m.
            points3d = torch.zeros(2, 3, dtype=dtype, device=device)
            points3d[:, 0] = torch.tensor([-0.3 * d, 0.3 * d], dtype=dtype, device=device)
            results.append(solve_all(points3d, points2d, K).valid)
        assert bool(results[0]) and not bool(results[1])

    # ------------------------------------------------------------- covariance
    @PROPERTY
    @given(data=st.data(), damping=st.sampled_from([0.0, 0.1]))
    def test_covariance_matches_explicit_formula(self, data, damping, device, dtype):
        problem = data.draw(problems(dtype, device, noise_px=1.0, min_points=3))
        prior = problem.translation * 1.1  # (a pull toward zeros may land behind the camera)
        solution = solve_all(*problem[:4], damping=damping, prior=prior)
        cov = solution.covariance
        torch.testing.assert_close(cov, cov.mT, rtol=1e-12 if dtype == F64 else 1e-6, atol=0)
        eigenvalues = torch.linalg.eigvalsh(cov.to(F64))
        assert float(eigenvalues.min()) >= -1e-9 * float(eigenvalues.max())
        expected = explicit_covariance(*problem[:4], solution.translation, damping)
        scale = float(expected.abs().max())
        err = float((cov.to(F64) - expected).abs().max())
        assert err <= (1e-8 if dtype == F64 else 1e-3) * scale

    def test_covariance_scales_with_the_scene(self, device, dtype):
        problem = make_problem(11, (3,), dtype=dtype, device=device)
        base = solve_all(*problem[:4])
        # The same image of a scene twice as large and twice as far: t and r double.
        doubled = solve_all(2 * problem.points3d, problem.points2d, *problem[2:4])
        tol = 1e-10 if dtype == F64 else 1e-4
        torch.testing.assert_close(doubled.translation, 2 * base.translation, rtol=tol, atol=0)
        torch.testing.assert_close(doubled.covariance, 4 * base.covariance, rtol=tol * 10, atol=0)
        torch.testing.assert_close(doubled.residuals, base.residuals, rtol=tol * 10, atol=tol)

    def test_covariance_monte_carlo(self, device, dtype):
        """Empirical covariance over noise draws ≈ the predicted one (within 20 %)."""
        problem = make_problem(12, (), 21, noise_px=0.0, focal_range=(600.0, 1200.0), device=device)
        draws = 4000
        gen = torch.Generator().manual_seed(12)
        noise = torch.randn(draws, 21, 2, generator=gen, dtype=F64).to(device)
        points2d = (problem.points2d + noise).to(dtype)
        solution = solve_all(problem.points3d.to(dtype), points2d, problem.intrinsics.to(dtype))
        assert bool(solution.valid.all())
        translations = solution.translation.to(F64)
        empirical = torch.cov(translations.T)
        predicted = solution.covariance.to(F64).mean(0)
        whiten = torch.linalg.inv(torch.linalg.cholesky(predicted))
        ratios = torch.linalg.eigvalsh(whiten @ empirical @ whiten.T)
        assert float(ratios.min()) > 0.8 and float(ratios.max()) < 1.2, ratios

    # -------------------------------------------------------------- residuals
    @PROPERTY
    @given(data=st.data(), damping=DAMPINGS)
    def test_residuals_are_pixel_reprojection_errors(self, data, damping, device, dtype):
        problem = data.draw(problems(dtype, device, noise_px=3.0, skew=True))
        prior = problem.translation * 1.1
        solution = solve_all(*problem[:4], damping=damping, prior=prior)
        expected = reprojection_error(*(t.to(F64) for t in (*problem[:3], solution.translation)))
        # Points that a poor fit puts behind the camera have a documented, clamped residual,
        # and a problem that is not valid has zeros (a noisy draw can be one).
        in_front = (problem.points3d[..., 2] + solution.translation[..., None, 2]) > 1e-3
        checked = in_front & solution.valid[..., None]
        atol = 1e-7 if dtype == F64 else 5e-3
        torch.testing.assert_close(
            solution.residuals.to(F64)[checked], expected[checked], rtol=1e-6, atol=atol
        )
        assert bool((solution.residuals[~solution.valid] == 0).all())

    @pytest.mark.parametrize("weighted", [False, True])
    def test_points_at_or_behind_the_camera_give_finite_residuals(self, weighted, device, dtype):
        problem = make_problem(13, (), 8, dtype=dtype, device=device)
        weights = problem.weights.clone()
        weights[-2:] = 0.0
        tz = solve_all(*problem[:3], weights).translation[2].detach()
        points3d = problem.points3d.clone()
        points3d[-2, 2] = -tz  # exactly on the camera plane
        points3d[-1, 2] = -tz - 0.5  # behind the camera
        if weighted:
            weights[-1] = 1.0
        inputs = [
            t.detach().requires_grad_()
            for t in (points3d, problem.points2d, problem.intrinsics, weights)
        ]
        solution = solve_all(*inputs)
        # A weighted point at or behind the camera makes the answer untrustworthy.
        assert bool(solution.valid) is not weighted
        assert bool(solution.residuals.isfinite().all())
        assert bool(solution.covariance.isfinite().all())
        grads = torch.autograd.grad(solution.residuals.sum() + solution.translation.sum(), inputs)
        for g in grads:
            assert bool(g.isfinite().all())
        if weighted:
            assert torch.equal(solution.translation, torch.zeros_like(solution.translation))
            assert not bool(solution.residuals.any()) and not bool(solution.covariance.any())
            for g in grads:
                assert not bool(g.any())
        else:
            assert float(solution.residuals[-1].detach()) > 100.0  # large, as it should be

    # ------------------------------------------------------ float32 accuracy
    @settings(max_examples=30, deadline=None)
    @given(
        translation_problems(
            batch_shape=(256,),
            min_points=21,
            max_points=21,
            depth_range=(0.3, 2.0),
            size_range=(0.1, 0.1),
            focal_range=(300.0, 2000.0),
            noise_px=1.0,
        )
    )
    def test_float32_accuracy_bound(self, problem):
        """The docstring's claim: |t32 - t64| <= 2e-5 m + 1e-5 x depth (10 cm hand)."""
        exact = solve_all(*problem[:4])
        single = solve_all(*(t.float() for t in problem[:4]))
        assert bool(exact.valid.all()) and bool(single.valid.all())
        err = (single.translation.double() - exact.translation).norm(dim=-1)
        bound = 2e-5 + 1e-5 * exact.translation[..., 2]
        assert bool((err <= bound).all()), f"max err/bound {(err / bound).max():.3f}"

    # -------------------------------------------------------------- gradients
    @pytest.mark.parametrize("damping", [0.0, 0.1])
    def test_gradcheck_all_outputs(self, damping):
        problem = well_scaled_problem(14)
        inputs = inputs_of(problem)

        def solve(points3d, points2d, intrinsics, weights, prior):
            return solve_all(points3d, points2d, intrinsics, weights, damping=damping, prior=prior)

        assert check_gradients(solve, *inputs, atol=1e-7, rtol=1e-5)

    @settings(
        max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(data=st.data(), damping=DAMPINGS)
    def test_backward_matches_naive_twin(self, data, damping, device, dtype):
        problem = data.draw(problems(dtype, device, batch_shape=(2,), noise_px=2.0, skew=True))
        gen = torch.Generator().manual_seed(1)
        cotangent = torch.randn(2, 3, generator=gen, dtype=F64).to(device, dtype)
        tangents = [
            torch.randn(t.shape, generator=gen, dtype=F64).to(device, dtype)
            for t in inputs_of(problem)
        ]
        results = []
        for fn in (solve_translation, solve_translation_naive):
            inputs = inputs_of(problem, requires_grad=True)
            out = fn(*inputs[:4], damping=damping, prior=inputs[4])
            translation = out.translation if fn is solve_translation else out
            first = torch.autograd.grad((translation * cotangent).sum(), inputs, create_graph=True)
            hvp = torch.autograd.grad(
                sum((g * v).sum() for g, v in zip(first, tangents, strict=True)),
                inputs,
                allow_unused=True,
                materialize_grads=True,
            )
            results.append(([g.detach() for g in first], hvp))
        (first, hvp), (first_naive, hvp_naive) = results
        tol = 1e-8 if dtype == F64 else 1e-2
        grads_close(first, first_naive, tol)
        grads_close(hvp, hvp_naive, tol)

    @pytest.mark.parametrize("shared_k", [False, True])
    @pytest.mark.parametrize("damping", [0.0, 0.05])
    def test_first_order_gradients_of_a_batch_match_naive_twin(
        self, shared_k, damping, device, dtype
    ):
        """The paths' own backward (no ``create_graph``), on a batch of five problems with a
        different cotangent for each, against autograd through the naive twin."""
        problem = make_problem(23, (5,), dtype=dtype, device=device)
        if shared_k:
            problem = problem._replace(intrinsics=problem.intrinsics[0])
        gen = torch.Generator().manual_seed(2)
        cotangent = torch.randn(5, 3, generator=gen, dtype=F64).to(device, dtype)
        results = []
        for fn in (solve_translation, solve_translation_naive):
            inputs = inputs_of(problem, requires_grad=True)
            out = fn(*inputs[:4], damping=damping, prior=inputs[4])
            translation = out.translation if fn is solve_translation else out
            results.append(torch.autograd.grad((translation * cotangent).sum(), inputs))
        grads_close(results[0], results[1], 1e-8 if dtype == F64 else 1e-2)

    # ----------------------------------------------------------- transforms
    @pytest.mark.parametrize("damping", [0.0, 0.05])
    def test_vmap_equals_batched_call(self, monkeypatch, damping, device, dtype):
        # Transformed and compiled code takes the torch path: compare with it.
        monkeypatch.setattr(translation_module, "NUMPY_PATH_MAX_POINTS", 0)
        problem = make_problem(15, (5,), dtype=dtype, device=device)
        K = problem.intrinsics[0]
        prior = problem.translation * 1.1

        def solve(points3d, points2d, intrinsics, weights, prior):
            return solve_all(points3d, points2d, intrinsics, weights, damping=damping, prior=prior)

        mapped = torch.func.vmap(solve, in_dims=(0, 0, None, 0, 0))(
            problem.points3d, problem.points2d, K, problem.weights, prior
        )
        batched = solve(problem.points3d, problem.points2d, K, problem.weights, prior)
        for a, b in zip(mapped, batched, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12 if dtype == F64 else 1e-6, atol=0)

    def test_vmap_of_grad_gives_per_sample_gradients(self, monkeypatch, device, dtype):
        # Transformed and compiled code takes the torch path: compare with it.
        monkeypatch.setattr(translation_module, "NUMPY_PATH_MAX_POINTS", 0)
        problem = make_problem(16, (4,), dtype=dtype, device=device)

        def loss(points3d, points2d, intrinsics, weights):
            solution = solve_all(points3d, points2d, intrinsics, weights)
            return solution.translation.square().sum() + solution.residuals.sum()

        per_sample = torch.func.vmap(torch.func.grad(loss, argnums=(0, 1, 2, 3)))(*problem[:4])
        inputs = [t.detach().requires_grad_() for t in problem[:4]]
        batched = torch.autograd.grad(loss(*inputs), inputs)
        for a, b in zip(per_sample, batched, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10 if dtype == F64 else 1e-4, atol=1e-12)

    def test_jacrev_equals_autograd_jacobian(self, device):
        problem = make_problem(17, (), 6, device=device)
        inputs = inputs_of(problem)

        def translation(fn):
            def f(points3d, points2d, intrinsics, weights, prior):
                out = fn(points3d, points2d, intrinsics, weights, damping=0.02, prior=prior)
                return out.translation if isinstance(out, TranslationSolution) else out

            return f

        jac = torch.func.jacrev(translation(solve_translation), argnums=(0, 1, 2, 3, 4))(*inputs)
        autograd_jac = torch.autograd.functional.jacobian(translation(solve_translation), inputs)
        naive_jac = torch.autograd.functional.jacobian(translation(solve_translation_naive), inputs)
        for j, a, n in zip(jac, autograd_jac, naive_jac, strict=True):
            torch.testing.assert_close(j, a, rtol=1e-12, atol=1e-15)
            grads_close([j], [n], 1e-9)

    def test_compile_matches_eager(self, monkeypatch, device, dtype):
        # Transformed and compiled code takes the torch path: compare with it.
        monkeypatch.setattr(translation_module, "NUMPY_PATH_MAX_POINTS", 0)
        problem = make_problem(18, (3,), dtype=dtype, device=device)

        def both(points3d, points2d, intrinsics, weights, prior):
            plain = solve_all(points3d, points2d, intrinsics, weights)
            damped = solve_all(points3d, points2d, intrinsics, weights, damping=0.01, prior=prior)
            return (*plain, *damped)

        compiled = torch.compile(both, fullgraph=True, backend="aot_eager")
        results = []
        for fn in (both, compiled):
            inputs = inputs_of(problem, requires_grad=True)
            outputs = fn(*inputs)
            loss = sum(o.square().sum() for o in outputs if o.is_floating_point())
            results.append((outputs, torch.autograd.grad(loss, inputs)))
        tol = {"rtol": 1e-12, "atol": 0} if dtype == F64 else {"rtol": 1e-5, "atol": 1e-6}
        for eager, comp in zip(*(r[0] for r in results), strict=True):
            torch.testing.assert_close(comp, eager, **tol)
        for eager, comp in zip(*(r[1] for r in results), strict=True):
            torch.testing.assert_close(comp, eager, **tol)


#: ATen ops (views included) dispatched by one B=1, N=21 call, float32: the budget of
#: the torch path at a small batch (on a GPU), where each op costs about as much as the
#: arithmetic. (The counting dispatch mode sends the call to the torch path.) Times
#: are noisy, op counts are not: a change that adds ops must raise these on purpose.
OP_BUDGET = {"forward": 63, "forward+backward": 129}


class _OpCounter(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def _one_hand(dtype=torch.float32, seed=30):
    problem = make_problem(seed, (1,), 21, dtype=dtype)
    return [t.detach().clone() for t in problem[:4]]


class TestSolveTranslationHonestValid:
    def test_statistics_only_on_request(self):
        inputs = _one_hand()
        plain = solve_translation(*inputs)
        assert plain.covariance is None and plain.residuals is None
        full = solve_all(*inputs)
        assert torch.equal(plain.translation, full.translation)
        assert full.covariance.shape == (1, 3, 3) and full.residuals.shape == (1, 21)

    @pytest.mark.parametrize("mode", list(OP_BUDGET))
    def test_small_batch_op_budget(self, mode):
        inputs = _one_hand()
        if mode != "forward":
            inputs = [t.requires_grad_() for t in inputs]

        def run():
            solution = solve_translation(*inputs)
            if mode != "forward":
                torch.autograd.grad(solution.translation.sum(), inputs)

        run()
        with _OpCounter() as counter:
            run()
        assert counter.count <= OP_BUDGET[mode], f"{counter.count} ATen ops at B=1 ({mode})"

    def test_mirrored_input_is_invalid(self, device, dtype):
        """A hand mirrored through the camera centre fits best behind the camera."""
        problem = make_problem(31, (), 21, dtype=dtype, device=device)
        solution = solve_all(-problem.points3d, problem.points2d, *problem[2:4])
        assert bool(solve_all(*problem[:4]).valid)
        assert not bool(solution.valid)
        assert torch.equal(solution.translation, torch.zeros_like(solution.translation))

    @pytest.mark.parametrize("where", [0.0, 0.3])
    def test_collapsed_points_are_invalid(self, where, device, dtype):
        """All root-relative points on one point: no spread, no depth."""
        problem = make_problem(32, (), 21, dtype=dtype, device=device, noise_px=1.0)
        points3d = torch.full_like(problem.points3d, where)
        solution = solve_all(points3d, problem.points2d, *problem[2:4])
        assert not bool(solution.valid)
        assert not bool(solution.covariance.any()) and not bool(solution.residuals.any())

    @PROPERTY
    @given(
        data=st.data(),
        exponent=st.floats(-30.0, 30.0),
        damping=DAMPINGS,
    )
    def test_weight_scale_invariance_over_the_float_range(
        self, data, exponent, damping, device, dtype
    ):
        problem = data.draw(problems(dtype, device, noise_px=1.0, batch_shape=(2,)))
        prior = problem.translation * 1.1
        base = solve_all(*problem[:4], damping=damping, prior=prior)
        weights = (problem.weights.to(F64) * 10.0**exponent).to(dtype)
        scaled = solve_all(*problem[:3], weights, damping=damping, prior=prior)
        # Two points 1 px apart under 1 px of noise may honestly solve behind the camera:
        # the scale must change nothing, validity included, but needs a valid base.
        assume(bool(base.valid.any()))
        assert torch.equal(base.valid, scaled.valid)
        assert_translation_close(scaled.translation, base.translation, dtype)

    @settings(
        max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        data=st.data(),
        value=st.sampled_from([math.nan, math.inf, -math.inf]),
        target=st.sampled_from(["points2d", "points3d", "weights", "intrinsics", "prior"]),
        damping=DAMPINGS,
    )
    def test_non_finite_input_is_invalid_and_contained(
        self, data, value, target, damping, device, dtype
    ):
        """A NaN/Inf in what one problem uses: that problem only is invalid, finite, and
        its gradients are zeros; the other problems and a K they share are unaffected."""
        hand = {"depth_range": (0.3, 2.0), "size_range": (0.1, 0.3), "min_points": 8}
        hand["zero_weights"] = False  # the broken entry must be in a used point
        problem = data.draw(problems(dtype, device, noise_px=1.0, batch_shape=(3,), **hand))
        if target == "prior" and damping == 0.0:
            damping = 0.1  # the prior is used only with damping
        n = problem.points2d.shape[-2]
        point = data.draw(st.integers(0, n - 1))
        shared_k = target != "intrinsics"
        K = problem.intrinsics[0] if shared_k else problem.intrinsics
        clean = [problem.points3d, problem.points2d, K, problem.weights, problem.translation * 1.1]
        broken = [t.clone() for t in clean]
        index = {"points3d": 0, "points2d": 1, "intrinsics": 2, "weights": 3, "prior": 4}[target]
        entry = {
            "points2d": (1, point, data.draw(st.integers(0, 1))),
            "points3d": (1, point, data.draw(st.integers(0, 2))),
            "weights": (1, point),
            "intrinsics": (
                1,
                *data.draw(st.sampled_from([(0, 0), (0, 1), (0, 2), (1, 1), (1, 2)])),
            ),
            "prior": (1, data.draw(st.integers(0, 2))),
        }[target]
        broken[index][entry] = value
        gen = torch.Generator().manual_seed(3)
        cotangent = torch.randn(3, 3, generator=gen, dtype=F64).to(device, dtype)
        results = []
        for tensors in (clean, broken):
            inputs = [t.detach().clone().requires_grad_() for t in tensors]
            solution = solve_all(*inputs[:4], damping=damping, prior=inputs[4])
            loss = (solution.translation * cotangent).sum() + solution.covariance.sum()
            loss = loss + solution.residuals.sum()
            results.append((solution, torch.autograd.grad(loss, inputs)))
        (good, good_grads), (bad, bad_grads) = results
        keep = torch.tensor([0, 2], device=device)
        # A small hand near the camera with 1 px noise can solve to a root in front of
        # its nearest point: honestly invalid, and not what this test is about.
        assume(bool(good.valid.all()))
        assert bad.valid.tolist() == [True, False, True]
        # Finite outputs (the prior is returned as given where invalid).
        assert torch.equal(bad.translation[1], broken[4][1]) or target == "prior"
        for out in (bad.translation[keep], bad.covariance, bad.residuals):
            assert bool(out.isfinite().all())
        assert not bool(bad.covariance[1].any()) and not bool(bad.residuals[1].any())
        for a, b in zip(bad, good, strict=True):
            if a.is_floating_point():
                torch.testing.assert_close(a[keep], b[keep], rtol=0, atol=0)
        for name, g_bad, g_good in zip(
            ("points2d", "points3d", "K", "weights", "prior"), bad_grads, good_grads, strict=True
        ):
            if name == "K" and shared_k:
                # The shared K's gradient is that of the two valid problems.
                assert bool(g_bad.isfinite().all()), name
                continue
            if name != "prior":
                assert not bool(g_bad[1].any()), name
            torch.testing.assert_close(g_bad[keep], g_good[keep], rtol=0, atol=0)

    @pytest.mark.parametrize("fx", [0.0, math.inf])
    def test_bad_focal_in_one_problem_leaves_a_shared_k_alone(self, fx, device, dtype):
        problem = make_problem(33, (2,), 21, dtype=dtype, device=device)
        K = problem.intrinsics.clone()
        K[1, 0, 0] = fx
        shared = problem.intrinsics[0].clone().requires_grad_()
        inputs = [problem.points2d, problem.points3d, problem.weights]
        both = solve_all(inputs[1], inputs[0], K, inputs[2])
        assert both.valid.tolist() == [True, False]
        assert not bool(both.covariance[1].any())
        # A K shared by a valid and a masked problem gets the valid one's gradient only.
        masked_weights = inputs[2].clone()
        masked_weights[1] = math.nan
        solution = solve_translation(inputs[1], inputs[0], shared, masked_weights)
        (grad,) = torch.autograd.grad(solution.translation.sum(), shared)
        single = solve_translation(inputs[1][0], inputs[0][0], shared, inputs[2][0])
        (expected,) = torch.autograd.grad(single.translation.sum(), shared)
        torch.testing.assert_close(grad, expected)


class TestArgumentFastPath:
    """The cheap shape checks of ``solve_translation`` accept exactly what the full ones do."""

    @PROPERTY
    @given(data=st.data())
    def test_agrees_with_the_full_checks(self, data):
        from dgpgeom._core import check_single_view
        from dgpgeom.solvers.translation import _batch_shape

        def tensor(tail_options, dtypes=(torch.float32, torch.float64, torch.int64)):
            batch = tuple(data.draw(st.lists(st.sampled_from([1, 2, 3]), max_size=2)))
            tail = data.draw(st.sampled_from(tail_options))
            return torch.zeros(batch + tail, dtype=data.draw(st.sampled_from(dtypes)))

        n = data.draw(st.sampled_from([1, 2, 3]))
        points3d = tensor([(n, 3), (n, 2), (3,), (2, n, 3)])
        points2d = tensor([(n, 2), (n + 1, 2), (n, 3)])
        intrinsics = tensor([(3, 3), (2, 3), (3,)])
        weights = data.draw(st.none() | st.just(None).map(lambda _: tensor([(n,), (n + 1,), ()])))
        prior = data.draw(st.none() | st.just(None).map(lambda _: tensor([(3,), (2,), ()])))
        damping = data.draw(st.sampled_from([0.0, 1, 1e-3]))

        def outcome(check):
            try:
                return check()
            except (ShapeError, TypeError, ValueError) as error:
                return type(error)

        fast = outcome(
            lambda: _batch_shape(points3d, points2d, intrinsics, weights, prior, damping)
        )
        full = outcome(
            lambda: check_single_view(points3d, points2d, intrinsics, weights, prior=prior)
        )
        assert fast == full


class TestNumPyPath:
    """Small CPU batches are solved in NumPy; everything else, and every transform, in torch.

    The rest of this module runs every test on both paths (the ``solver_path`` fixture);
    these tests check which path a call takes and that the two agree.
    """

    @pytest.fixture
    def numpy_calls(self, monkeypatch):
        calls = []
        original = translation_module.numpy_twin.closed_form

        def spy(*args, **kwargs):
            calls.append(args[0].shape)
            return original(*args, **kwargs)

        monkeypatch.setattr(translation_module.numpy_twin, "closed_form", spy)
        return calls

    @pytest.fixture
    def scalar_calls(self, monkeypatch):
        calls = []
        original = translation_module.scalar_twin.closed_form

        def spy(*args, **kwargs):
            calls.append(len(args[1]) // 2)
            return original(*args, **kwargs)

        monkeypatch.setattr(translation_module.scalar_twin, "closed_form", spy)
        return calls

    def test_small_cpu_batches_take_the_numpy_path(self, numpy_calls, solver_path):
        inputs = [t.expand(2, *t.shape).requires_grad_() for t in _one_hand(torch.float64)]
        solution = solve_translation(*inputs)
        torch.autograd.grad(solution.translation.sum(), inputs)
        with torch.no_grad():
            solve_translation(*inputs)
        assert len(numpy_calls) == (0 if solver_path == "torch" else 2)

    @pytest.mark.parametrize("shape", [(), (1,), (1, 1)])
    def test_one_cpu_problem_takes_the_scalar_path(
        self, scalar_calls, numpy_calls, solver_path, shape
    ):
        inputs = [
            t[0].expand(*shape, *t.shape[1:]).requires_grad_() for t in _one_hand(torch.float64)
        ]
        solution = solve_translation(*inputs)
        assert solution.translation.shape == (*shape, 3) and solution.valid.shape == shape
        torch.autograd.grad(solution.translation.sum(), inputs)
        with torch.no_grad():
            solve_translation(*inputs)
        assert scalar_calls == ([21, 21] if solver_path == "scalar" else [])
        assert len(numpy_calls) == (2 if solver_path.startswith("numpy") else 0)

    @pytest.mark.parametrize("mode", ["forward", "forward+backward"])
    def test_one_problem_dispatches_only_conversions(self, mode, monkeypatch):
        """ATen ops of one hand on the scalar path, counted by the profiler (a dispatch
        mode would send the call to the torch path)."""
        monkeypatch.setattr(translation_module, "SCALAR_PATH_MAX_POINTS", SCALAR_PATH_MAX_POINTS)
        monkeypatch.setattr(translation_module, "NUMPY_PATH_MAX_POINTS", NUMPY_PATH_MAX_POINTS)
        points3d, points2d, intrinsics, weights = _one_hand()
        tracked = [t.requires_grad_(mode != "forward") for t in (points3d, points2d, weights)]
        cotangent = torch.ones(1, 3)

        def run():
            solution = solve_translation(points3d, points2d, intrinsics, weights)
            if mode != "forward":
                torch.autograd.grad(solution.translation, tracked, cotangent)

        run()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            run()
        ops = [event.name for event in profile.events() if event.name.startswith("aten::")]
        assert len(ops) <= SCALAR_OP_BUDGET[mode], ops
        arithmetic = {"aten::add", "aten::sub", "aten::mul", "aten::div", "aten::sum"}
        assert not arithmetic & set(ops), ops  # the arithmetic is all in Python floats

    def test_many_points_take_the_numpy_path(self, scalar_calls, numpy_calls, solver_path):
        count = SCALAR_PATH_MAX_POINTS + 1
        problem = make_problem(43, (), count)
        assert bool(solve_translation(*problem[:4]).valid)
        assert scalar_calls == [] and len(numpy_calls) == (0 if solver_path == "torch" else 1)

    @pytest.fixture
    def general_calls(self, monkeypatch):
        """Calls that went through the general checks (``_prepared``)."""
        calls = []
        original = translation_module._prepared

        def spy(*args, **kwargs):
            calls.append(args[1].shape)
            return original(*args, **kwargs)

        monkeypatch.setattr(translation_module, "_prepared", spy)
        return calls

    @pytest.mark.parametrize("batch", [(), (1,), (3,), (2, 2)])
    @pytest.mark.parametrize("extras", ["none", "weights", "weights+prior"])
    def test_plain_calls_skip_the_general_checks_and_change_nothing(
        self, general_calls, solver_path, monkeypatch, batch, extras
    ):
        """Plain CPU calls go straight to their twin: values, validity and gradients
        bitwise those of the general dispatch (on the torch path there is no shortcut)."""
        problem = make_problem(44, batch, 21, dtype=torch.float64)
        damping = 0.1 if extras == "weights+prior" else 0.0
        given = [
            problem.points3d,
            problem.points2d,
            problem.intrinsics[(0,) * len(batch)] if batch == (3,) else problem.intrinsics,
            problem.weights if extras != "none" else None,
            problem.translation * 1.1 if extras == "weights+prior" else None,
        ]

        def solve():
            inputs = [None if t is None else t.detach().clone().requires_grad_() for t in given]
            solution = solve_translation(*inputs[:4], prior=inputs[4], damping=damping)
            tracked = [t for t in inputs if t is not None]
            loss = (solution.translation * torch.arange(1.0, 4.0, dtype=F64)).sum()
            return solution, torch.autograd.grad(loss, tracked)

        plain, plain_grads = solve()
        assert general_calls == ([] if solver_path != "torch" else [(*batch, 21, 2)])
        monkeypatch.setattr(translation_module, "_cpu_twin_of_plain_call", lambda *a: None)
        general, general_grads = solve()
        assert torch.equal(plain.translation, general.translation)
        assert torch.equal(plain.valid, general.valid) and bool(plain.valid.all())
        for a, b in zip(plain_grads, general_grads, strict=True):
            assert torch.equal(a, b)

    @pytest.mark.parametrize(
        "case", ["mixed dtypes", "K batched alone", "float16", "bool damping", "statistics"]
    )
    def test_other_calls_take_the_general_checks(self, general_calls, case):
        points3d, points2d, intrinsics, weights = _one_hand()
        options = {}
        if case == "mixed dtypes":
            points2d = points2d.double()
        elif case == "K batched alone":
            points3d, points2d, weights = points3d[0], points2d[0], weights[0]
        elif case == "float16":
            points3d, points2d, intrinsics, weights = (
                t.half() for t in (points3d, points2d, intrinsics, weights)
            )
        elif case == "bool damping":
            options["damping"] = False
        else:
            options["return_residuals"] = True
        if case == "bool damping":
            with pytest.raises(ValueError, match="damping"):
                solve_translation(points3d, points2d, intrinsics, weights, **options)
        else:
            assert bool(solve_translation(points3d, points2d, intrinsics, weights, **options).valid)
        assert len(general_calls) == 1

    @pytest.fixture
    def two_threads(self):
        threads = torch.get_num_threads()
        torch.set_num_threads(2)
        yield
        torch.set_num_threads(threads)

    def test_large_batches_take_the_torch_path_when_torch_runs_threads(
        self, numpy_calls, two_threads, solver_path
    ):
        batch = NUMPY_PATH_MAX_POINTS // 21 + 1
        problem = make_problem(40, (batch,), 21)
        assert bool(solve_translation(*problem[:4]).valid.all())
        solve_translation(*(t[: batch - 1] for t in problem[:4]))
        assert numpy_calls == ([] if solver_path == "torch" else [(batch - 1, 21, 3)])

    def test_one_thread_has_its_own_limit(self, numpy_calls, solver_path, monkeypatch):
        monkeypatch.setattr(translation_module, "NUMPY_PATH_MAX_POINTS_ONE_THREAD", 105)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            batch = NUMPY_PATH_MAX_POINTS // 21 + 1
            problem = make_problem(40, (batch,), 21)
            assert bool(solve_translation(*problem[:4]).valid.all())  # torch path
            solve_translation(*(t[:5] for t in problem[:4]))
        finally:
            torch.set_num_threads(threads)
        assert numpy_calls == ([] if solver_path == "torch" else [(5, 21, 3)])

    def test_transforms_modes_and_other_devices_take_the_torch_path(self, numpy_calls):
        problem = make_problem(41, (3,), 21)
        torch.func.vmap(lambda *a: solve_translation(*a).translation)(*problem[:4])
        torch.func.grad(lambda p3: solve_translation(p3, *problem[1:4]).translation.sum())(
            problem.points3d
        )
        with _OpCounter() as counter:
            solve_translation(*problem[:4])
        assert counter.count > 0
        solve_translation(*(t.to("meta") for t in problem[:4]))
        assert numpy_calls == []

    def test_forward_mode_ad_takes_the_torch_path(self, numpy_calls):
        """Dual tensors carry their tangent through the solve (NumPy would drop it)."""
        problem = make_problem(42, (2,), 21)
        tangent = torch.randn_like(problem.points3d)
        with torch.autograd.forward_ad.dual_level():
            dual = torch.autograd.forward_ad.make_dual(problem.points3d, tangent)
            out = solve_translation(dual, *problem[1:4]).translation
            derivative = torch.autograd.forward_ad.unpack_dual(out).tangent
        _, expected = torch.func.jvp(
            lambda p3: solve_translation(p3, *problem[1:4]).translation,
            (problem.points3d,),
            (tangent,),
        )
        torch.testing.assert_close(derivative, expected)
        assert numpy_calls == []

    @PROPERTY
    @given(data=st.data())
    def test_paths_agree(self, data, monkeypatch):
        """Values, validity and gradients; float32 within the float32 accuracy bound."""
        dtype = data.draw(st.sampled_from([torch.float32, torch.float64]))
        degenerate = data.draw(st.booleans())
        if degenerate:
            problem = data.draw(degenerate_translation_problems(dtype=dtype))
        else:
            shape = data.draw(st.sampled_from([(), (3,), (2, 2)]))
            problem = data.draw(translation_problems(
                batch_shape=shape, max_points=30, depth_range=(0.3, 2.0), skew=True, dtype=dtype
            ))  # fmt: skip
        damping = data.draw(DAMPINGS)
        prior = problem.translation * 0.9 if data.draw(st.booleans()) else None
        weighted = degenerate or data.draw(st.booleans())  # (degenerate ones need weights)

        def solve():
            inputs = [t.detach().clone().requires_grad_() for t in problem[: 4 if weighted else 3]]
            solution = solve_translation(*inputs, damping=damping, prior=prior)
            loss = (solution.translation * torch.arange(1.0, 4.0, dtype=dtype)).sum()
            return solution, torch.autograd.grad(loss, inputs)

        monkeypatch.setattr(translation_module, "NUMPY_PATH_MAX_POINTS", NUMPY_PATH_MAX_POINTS)
        numpy_solution, numpy_grads = solve()
        monkeypatch.setattr(translation_module, "NUMPY_PATH_MAX_POINTS", 0)
        torch_solution, torch_grads = solve()
        assert torch.equal(numpy_solution.valid, torch_solution.valid) or dtype != F64
        both = numpy_solution.valid & torch_solution.valid
        depth = torch_solution.translation[..., 2:].abs()
        if dtype == F64:
            torch.testing.assert_close(numpy_solution.translation, torch_solution.translation,
                                       rtol=1e-9, atol=1e-12)  # fmt: skip
            for a, b in zip(numpy_grads, torch_grads, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)
        else:  # twice the documented float32 bound (each path is within it of float64)
            gap = (numpy_solution.translation - torch_solution.translation).abs()
            assert bool((gap <= 2 * (2e-5 + 1e-5 * depth))[both].all())
        for a in numpy_grads:
            assert bool(a.isfinite().all())

    @settings(
        max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        data=st.data(),
        dtype=st.sampled_from([torch.float32, F64]),
        damage=st.sampled_from(
            [
                "none",
                "nan",
                "inf",
                "dropped garbage",
                "fx zero",
                "mirrored",
                "collapsed",
                "weight scale",
            ]
        ),
        damping=DAMPINGS,
        with_prior=st.booleans(),
    )
    def test_one_problem_paths_agree_on_damaged_input(
        self, data, dtype, damage, damping, with_prior, monkeypatch
    ):
        """One problem, clean or damaged one way: the scalar, NumPy and torch paths give
        the same validity, the same answer and the same gradients."""
        problem = data.draw(problems(dtype, "cpu", noise_px=1.0, zero_weights=False))
        p3, p2, K, w = (t.clone() for t in problem[:4])
        n = p2.shape[-2]
        point = data.draw(st.integers(0, n - 1))
        if damage in ("nan", "inf"):
            value = math.nan if damage == "nan" else data.draw(st.sampled_from([1, -1])) * math.inf
            target = data.draw(st.sampled_from(["points3d", "points2d", "weights", "K"]))
            if target == "K":
                K[data.draw(st.sampled_from([(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]))] = (
                    value
                )
            else:
                tensor = {"points3d": p3, "points2d": p2, "weights": w}[target]
                tensor[(point, data.draw(st.integers(0, 1))) if tensor.dim() > 1 else point] = value
        elif damage == "dropped garbage":
            w[point] = 0.0
            p3[point, 0] = math.nan
            p2[point, 1] = math.inf
        elif damage == "fx zero":
            K[0, 0] = 0.0
        elif damage == "mirrored":
            p3 = -p3
        elif damage == "collapsed":
            p3 = torch.zeros_like(p3)
        elif damage == "weight scale":
            w = (w.to(F64) * 10.0 ** data.draw(st.sampled_from([-40, -25, 20, 35]))).to(dtype)
        prior = problem.translation * 1.1 if with_prior else None
        gen = torch.Generator().manual_seed(5)
        cotangent = torch.randn(3, generator=gen, dtype=F64).to(dtype)

        def solve(scalar, numpy):
            monkeypatch.setattr(translation_module, "SCALAR_PATH_MAX_POINTS", scalar)
            monkeypatch.setattr(translation_module, "NUMPY_PATH_MAX_POINTS", numpy)
            tensors = [p3, p2, K, w] + ([prior] if with_prior else [])
            inputs = [t.detach().clone().requires_grad_() for t in tensors]
            solution = solve_translation(
                *inputs[:4], damping=damping, prior=inputs[4] if with_prior else None
            )
            return solution, torch.autograd.grad((solution.translation * cotangent).sum(), inputs)

        scalar = solve(SCALAR_PATH_MAX_POINTS, NUMPY_PATH_MAX_POINTS)
        others = [solve(0, NUMPY_PATH_MAX_POINTS), solve(0, 0)]
        if damage == "none" or damage == "weight scale":
            assume(all(bool(o[0].valid) for o in (scalar, *others)))
        for solution, grads in others:
            assert bool(solution.valid) == bool(scalar[0].valid), damage
            if dtype == F64:
                torch.testing.assert_close(
                    scalar[0].translation, solution.translation, rtol=1e-9, atol=1e-12
                )
                for a, b in zip(scalar[1], grads, strict=True):
                    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)
            else:
                depth = float(solution.translation[2].abs())
                gap = (scalar[0].translation - solution.translation).abs().max()
                assert float(gap) <= 2 * (2e-5 + 1e-5 * depth)
        solution, grads = scalar
        # (A strong pull toward a prior in front of the camera may rescue a mirrored or
        # collapsed hand: only the undamped ones must be invalid.)
        broken = damage in ("nan", "inf", "fx zero")
        if broken or (damage in ("mirrored", "collapsed") and damping == 0.0):
            assert not bool(solution.valid)
            expected = prior if with_prior else torch.zeros(3, dtype=dtype)
            assert torch.equal(solution.translation, expected)
            for g in grads[:4]:
                assert not bool(g.any())
        # d t / d w scales as 1 / w: for weights near the dtype's smallest values (1e-40 in
        # float32) it is not representable, on any path; the other gradients must be finite.
        representable = bool((1.0 / w.abs().max()).isfinite()) if w.abs().max() > 0 else True
        for index, g in enumerate(grads):
            assert bool(g.isfinite().all()) or (index == 3 and not representable)

    @pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
    @pytest.mark.parametrize(
        "entry",
        [("intrinsics", (0, 0)), ("intrinsics", (0, 1)), ("intrinsics", (0, 2)),
         ("intrinsics", (1, 0)), ("intrinsics", (1, 1)), ("intrinsics", (1, 2)),
         ("points3d", (4, 0)), ("points3d", (4, 1)), ("points3d", (4, 2)),
         ("points2d", (4, 0)), ("points2d", (4, 1)), ("weights", (4,))],
    )  # fmt: skip
    def test_one_problem_with_a_non_finite_entry_is_invalid(self, entry, value):
        """Every entry a problem uses, on whichever path the fixture selects."""
        p3, p2, K, w = (t[0] for t in _one_hand(torch.float64))
        name, index = entry
        inputs = {"points3d": p3, "points2d": p2, "intrinsics": K, "weights": w}
        assert bool(solve_translation(*inputs.values()).valid)
        inputs[name][index] = value
        inputs = {k: t.requires_grad_() for k, t in inputs.items()}
        solution = solve_all(*inputs.values())
        assert not bool(solution.valid)
        assert torch.equal(solution.translation, torch.zeros(3, dtype=F64))
        assert not bool(solution.covariance.any()) and not bool(solution.residuals.any())
        grads = torch.autograd.grad(solution.translation.sum(), list(inputs.values()))
        assert not any(bool(g.any()) for g in grads)

    def test_no_numpy_warnings_on_non_finite_input(self):
        inputs = _one_hand(torch.float64)
        inputs[0][0, 3] = math.nan
        inputs[2][0, 0, 0] = 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            solution = solve_all(*inputs)
        assert not bool(solution.valid.any())

    def test_in_place_change_before_backward_raises(self):
        inputs = [t.requires_grad_() for t in _one_hand(torch.float64)]
        points2d = inputs[1].detach().clone().requires_grad_()
        shifted = points2d * 1.0
        solution = solve_translation(inputs[0], shifted, *inputs[2:])
        with torch.no_grad():
            shifted.add_(1.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            torch.autograd.grad(solution.translation.sum(), points2d)
