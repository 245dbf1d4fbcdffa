"""Tests for dgpgeom.testing: the strategies and helpers users build their tests on."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.autograd.gradcheck import GradcheckError

from dgpgeom import solve_translation
from dgpgeom.testing import (
    TranslationProblem,
    check_gradients,
    degenerate_translation_problems,
    random_intrinsics,
    translation_problems,
)
from tests.dgpgeom._solver_problems import explicit_system, project

F64 = torch.float64
PROPERTY = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def collect(strategy, count=8):
    """The examples a derandomised run of ``strategy`` draws, in order."""
    seen = []

    @settings(max_examples=count, derandomize=True, database=None, deadline=None)
    @given(strategy)
    def run(example):
        seen.append(example)

    run()
    return seen


def kind_of(problem):
    """Which of the documented degenerate kinds a drawn problem is."""
    nonzero = int((problem.weights != 0).sum())
    return {0: "zero_weights", 1: "one_point"}.get(nonzero, "one_ray")


class TestWithoutHypothesis:
    def test_import_says_how_to_install_it(self, monkeypatch):
        # A plain install has no hypothesis: None in sys.modules makes its import fail.
        monkeypatch.setitem(sys.modules, "hypothesis", None)
        monkeypatch.delitem(sys.modules, "dgpgeom.testing")
        with pytest.raises(ImportError, match=r'pip install "dgpgeom\[testing\]"') as info:
            importlib.import_module("dgpgeom.testing")
        assert info.value.name == "hypothesis"

    def test_the_testing_extra_brings_hypothesis(self):
        tomllib = pytest.importorskip("tomllib", reason="tomllib is new in Python 3.11")
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
        assert any(r.startswith("hypothesis") for r in extras["testing"]), extras

class TestRandomIntrinsics:
    @pytest.mark.parametrize("batch_shape", [(), (5,), (2, 3)])
    def test_structure(self, batch_shape, dtype):
        gen = torch.Generator().manual_seed(0)
        K = random_intrinsics(batch_shape, (480, 640), generator=gen, dtype=dtype)
        assert K.shape == (*batch_shape, 3, 3) and K.dtype == dtype
        zero, one = torch.zeros((), dtype=dtype), torch.ones((), dtype=dtype)
        assert bool((K[..., 1, 0] == zero).all() and (K[..., 2, :2] == zero).all())
        assert bool((K[..., 2, 2] == one).all())
        assert bool((K[..., 0, 1] == zero).all())  # no skew unless asked

    def test_documented_ranges(self):
        gen = torch.Generator().manual_seed(1)
        K = random_intrinsics((2000,), (480, 640), focal_range=(400.0, 900.0), generator=gen)
        fx, fy, cx, cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]
        assert bool(((fx >= 400.0) & (fx <= 900.0)).all())
        ratio = fy / fx
        assert bool(((ratio >= 0.9) & (ratio <= 1.1)).all()) and bool((fx != fy).all())
        assert bool(((cx - 319.5).abs() <= 64.0).all() and ((cy - 239.5).abs() <= 48.0).all())
        # The ranges are used, not just respected.
        assert float(fx.min()) < 450.0 and float(fx.max()) > 850.0

    def test_skew(self):
        gen = torch.Generator().manual_seed(2)
        K = random_intrinsics((500,), (480, 640), skew=True, generator=gen)
        skew = K[:, 0, 1]
        assert bool((skew.abs() < 0.01 * K[:, 0, 0]).all()) and bool((skew != 0).all())

    def test_deterministic_given_a_generator(self):
        def draw(seed):
            return random_intrinsics(
                (4,), (224, 224), generator=torch.Generator().manual_seed(seed)
            )

        assert torch.equal(draw(3), draw(3))
        assert not torch.equal(draw(3), draw(4))


class TestTranslationProblems:
    @PROPERTY
    @given(data=st.data(), batch_shape=st.sampled_from([(), (3,), (2, 2)]))
    def test_shapes_dtypes_and_documented_structure(self, data, batch_shape, device, dtype):
        problem = data.draw(
            translation_problems(
                batch_shape=batch_shape, min_points=4, max_points=30, dtype=dtype, device=device
            )
        )
        assert isinstance(problem, TranslationProblem)
        n = problem.points2d.shape[-2]
        assert 4 <= n <= 30
        assert problem.points2d.shape == (*batch_shape, n, 2)
        assert problem.points3d.shape == (*batch_shape, n, 3)
        assert problem.intrinsics.shape == (*batch_shape, 3, 3)
        assert problem.weights.shape == (*batch_shape, n)
        assert problem.translation.shape == (*batch_shape, 3)
        for t in problem[:5]:
            assert t.dtype == dtype and t.device == device
        height, width = problem.image_size
        assert 224 <= height <= 640 and 224 <= width <= 640
        # Weights in (0, 1] or exactly zero, with at least three non-zero ones.
        w = problem.weights
        assert bool(((w == 0) | ((w >= 0.1) & (w <= 1))).all())
        assert bool(((w != 0).sum(-1) >= 3).all())
        # Point 0 is the root; the root projects inside the image at a depth in range.
        assert bool((problem.points3d[..., 0, :] == 0).all())
        depth = problem.translation[..., 2]
        assert bool(((depth >= 0.1 * 0.999) & (depth <= 10.0 * 1.001)).all())
        root = project(problem.translation.unsqueeze(-2).to(F64), problem.intrinsics.to(F64))
        assert bool(
            (
                (root >= -1e-3) & (root <= torch.tensor([width - 1, height - 1]).to(root) + 1e-3)
            ).all()
        )
        # Every point well in front of the camera.
        camera_z = problem.points3d[..., 2] + depth.unsqueeze(-1)
        assert bool((camera_z >= 0.05 * 0.999).all())

    @PROPERTY
    @given(translation_problems(batch_shape=(2,), skew=True))
    def test_noise_free_points_are_exact_projections(self, problem):
        expected = project(problem.points3d + problem.translation.unsqueeze(-2), problem.intrinsics)
        torch.testing.assert_close(problem.points2d, expected, rtol=1e-12, atol=1e-9)
        assert bool((problem.intrinsics[..., 0, 1] != 0).all())

    @PROPERTY
    @given(translation_problems(batch_shape=(4,)))
    def test_well_posed(self, problem):
        """Documented: never degenerate. The solver agrees and recovers the truth (float64)."""
        solution = solve_translation(*problem[:4])
        assert bool(solution.valid.all())
        err = (solution.translation - problem.translation).norm(dim=-1)
        assert bool((err <= 1e-9 * problem.translation.norm(dim=-1)).all())

    def test_noise_has_the_requested_spread(self):
        stds = []
        for problem in collect(
            translation_problems(batch_shape=(32,), min_points=50, noise_px=2.0), 4
        ):
            clean = project(
                problem.points3d + problem.translation.unsqueeze(-2), problem.intrinsics
            )
            stds.append((problem.points2d - clean).std())
        assert all(1.9 < float(s) < 2.1 for s in stds), stds

    def test_zero_weights_can_be_disabled(self):
        for problem in collect(
            translation_problems(batch_shape=(8,), min_points=20, zero_weights=False)
        ):
            assert bool((problem.weights > 0).all())

    def test_zero_weights_are_drawn_by_default(self):
        problems = collect(translation_problems(batch_shape=(8,), min_points=20), 4)
        assert all(bool((p.weights == 0).any()) for p in problems)

    def test_deterministic_and_independent_of_the_global_seed(self):
        strategy = translation_problems(batch_shape=(2,), noise_px=1.0)
        torch.manual_seed(0)
        first = collect(strategy)
        torch.manual_seed(12345)
        torch.rand(100)
        second = collect(strategy)
        assert len(first) == len(second) == 8
        for a, b in zip(first, second, strict=True):
            assert a.image_size == b.image_size
            for x, y in zip(a[:5], b[:5], strict=True):
                assert torch.equal(x, y)
        # And it draws different problems, not one problem eight times.
        assert (
            len({p.points2d.shape[-2] for p in first} | {float(p.translation[0, 2]) for p in first})
            > 2
        )


class TestDegenerateTranslationProblems:
    @PROPERTY
    @given(data=st.data())
    def test_documented_kinds_have_no_unique_solution(self, data, device, dtype):
        problem = data.draw(degenerate_translation_problems(dtype=dtype, device=device))
        n = problem.points2d.shape[-2]
        assert problem.points2d.shape == (n, 2) and problem.points3d.shape == (n, 3)
        for t in problem[:5]:
            assert t.dtype == dtype and t.device == device
        A, B, W = explicit_system(*(t.to(F64) for t in problem[:4]))
        singular = torch.linalg.svdvals(W @ A)
        # Rank-deficient weighted system (up to the rounding of the drawn dtype) ...
        assert float(singular[-1]) <= 1e-5 * max(float(singular[0]), 1e-300)
        # ... of which the stored translation is an exact solution.
        residual = W @ (A @ problem.translation.to(F64) - B)
        assert float(residual.abs().max()) <= 1e-5 * float(problem.translation.norm())
        kind = kind_of(problem)
        if kind == "one_ray":
            spread = (problem.points2d - problem.points2d[0]).abs().max()
            assert float(spread) <= (1e-8 if dtype == F64 else 1e-3)
        assert not bool(solve_translation(*problem[:4]).valid)

    def test_draws_every_kind(self):
        kinds = {kind_of(p) for p in collect(degenerate_translation_problems(), 30)}
        assert kinds == {"zero_weights", "one_point", "one_ray"}


class TestCheckGradients:
    def test_passes_a_correct_function_of_several_outputs(self):
        def fn(x, y):
            return (x.sin() * y, x > 0, (x * y).sum())

        assert check_gradients(fn, torch.rand(3), torch.rand(3)) is True

    def test_inputs_are_cast_to_float64_and_integers_passed_through(self):
        seen = []

        def fn(x, index):
            seen.append((x.dtype, x.requires_grad, index.dtype))
            return x[index].exp()

        assert check_gradients(fn, torch.rand(4), torch.tensor([0, 2]), gradgrad=False)
        assert seen[0] == (F64, True, torch.int64)

    def test_detects_a_wrong_first_derivative_in_any_output(self):
        class Wrong(torch.autograd.Function):
            @staticmethod
            def forward(x):
                return x.square()

            @staticmethod
            def setup_context(ctx, inputs, output):
                ctx.save_for_backward(inputs[0])

            @staticmethod
            def backward(ctx, grad):
                (x,) = ctx.saved_tensors
                return 2.1 * x * grad

        with pytest.raises(GradcheckError):
            check_gradients(Wrong.apply, torch.rand(3), gradgrad=False)
        # A NamedTuple whose wrong output is not the first one.
        with pytest.raises(GradcheckError):
            check_gradients(
                lambda x: TranslationProblem(x.exp(), Wrong.apply(x), x, x, x, (1, 1)),
                torch.rand(3),
                gradgrad=False,
            )

    def test_detects_a_wrong_second_derivative_only_with_gradgrad(self):
        class WrongSecond(torch.autograd.Function):
            """Right gradient, but its backward is not differentiable correctly."""

            @staticmethod
            def forward(x):
                return x.pow(3)

            @staticmethod
            def setup_context(ctx, inputs, output):
                ctx.save_for_backward(inputs[0])

            @staticmethod
            def backward(ctx, grad):
                (x,) = ctx.saved_tensors
                return 3 * x.detach().square() * grad  # detached: d/dx lost

        x = torch.rand(3) + 0.5
        assert check_gradients(WrongSecond.apply, x, gradgrad=False)
        with pytest.raises(GradcheckError):
            check_gradients(WrongSecond.apply, x)
