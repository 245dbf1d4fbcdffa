"""Tests for dgpgeom.solvers.multiview."""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dgpgeom import solve_translation
from dgpgeom.solvers import MultiviewTranslationSolution, solve_translation_multiview
from dgpgeom.testing import check_gradients, random_intrinsics, solve_translation_multiview_naive
from tests.benchmarks._load import peers
from tests.dgpgeom._solver_problems import raises_for

F64 = torch.float64
PROPERTY = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

#: solve_translation_multiview with every output computed.
solve_all = functools.partial(
    solve_translation_multiview, return_covariance=True, return_residuals=True
)


class Rig(NamedTuple):
    points3d: torch.Tensor  # (*batch, N, 3)
    points2d: torch.Tensor  # (*batch, C, N, 2)
    intrinsics: torch.Tensor  # (*batch, C, 3, 3)
    rotations: torch.Tensor  # (*batch, C, 3, 3)
    camera_translations: torch.Tensor  # (*batch, C, 3)
    weights: torch.Tensor  # (*batch, C, N)
    translation: torch.Tensor  # (*batch, 3)
    depth: torch.Tensor  # (*batch, C, N) of every point in every camera

    def inputs(self, *, requires_grad: bool = False) -> tuple[torch.Tensor, ...]:
        tensors = self[:6]
        return tuple(t.detach().clone().requires_grad_(requires_grad) for t in tensors)

    def to(self, dtype: torch.dtype, device: torch.device | str = "cpu") -> Rig:
        return Rig(*(t.to(dtype=dtype, device=device) for t in self))


def make_rig(
    batch: tuple[int, ...],
    cameras: int,
    points: int,
    *,
    seed: int = 0,
    depth: tuple[float, float] = (0.5, 2.0),
    size: tuple[float, float] = (0.1, 0.2),
    spread: float = math.pi,
    offcentre: float = 0.2,
    noise: float = 0.0,
) -> Rig:
    """An object near the world origin seen by cameras around it, in float64.

    Cameras sit at a log-uniform distance ``depth`` from the object, in directions
    within ``spread`` radians of the world -z axis, each looking at a point up to
    ``offcentre`` x distance away from the object (so it is not centred), with a
    random roll. ``spread=0`` puts all cameras on one ray (a single view).
    """
    gen = torch.Generator().manual_seed(seed)

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand((*batch, *shape), generator=gen, dtype=F64)

    translation = (uniform(3) - 0.5) * 0.2
    side = size[0] + (size[1] - size[0]) * uniform(1, 1)
    points3d = (uniform(points, 3) - 0.5) * side
    points3d[..., 0, :] = 0.0
    distance = torch.exp(math.log(depth[0]) + math.log(depth[1] / depth[0]) * uniform(1))
    theta = torch.acos(1.0 - (1.0 - math.cos(spread)) * uniform(cameras))
    phi = 2.0 * math.pi * uniform(cameras)
    directions = torch.stack(
        (theta.sin() * phi.cos(), theta.sin() * phi.sin(), -theta.cos()), dim=-1
    )
    centres = translation.unsqueeze(-2) + distance.unsqueeze(-1) * directions
    targets = translation.unsqueeze(-2) + (uniform(cameras, 3) - 0.5) * (
        2.0 * offcentre * distance.unsqueeze(-1)
    )
    rotations, camera_translations = peers.look_at(
        centres, targets, 2.0 * math.pi * uniform(cameras)
    )
    intrinsics = random_intrinsics((*batch, cameras), (480, 640), generator=gen, dtype=F64)
    camera = (points3d + translation.unsqueeze(-2)).unsqueeze(-3) @ rotations.mT
    camera = camera + camera_translations.unsqueeze(-2)
    uvw = camera @ intrinsics.mT
    points2d = uvw[..., :2] / uvw[..., 2:]
    if noise > 0:
        points2d = points2d + noise * torch.randn(points2d.shape, generator=gen, dtype=F64)
    weights = 0.1 + 0.9 * uniform(cameras, points)
    return Rig(
        points3d,
        points2d,
        intrinsics,
        rotations,
        camera_translations,
        weights,
        translation,
        camera[..., 2],
    )


def stacked_lstsq(rig: Rig, damping: float = 0.0, prior: torch.Tensor | None = None):
    """float64 ``lstsq`` of the explicitly stacked weighted DLT system, per item.

    Rows ``w (x̃ r₃ - r₁)``, ``w (ỹ r₃ - r₂)`` for every camera and point; with
    damping, the rows ``sqrt(λ Σw²) I`` (right-hand side ``sqrt(λ Σw²) prior``).
    """
    p3, p2, K, R, tc, w = (t.to(F64) for t in rig[:6])
    batch = p3.shape[:-2]
    y = (p2[..., 1] - K[..., 1, 2, None]) / K[..., 1, 1, None]
    x = (p2[..., 0] - K[..., 0, 2, None] - K[..., 0, 1, None] * y) / K[..., 0, 0, None]
    r1, r2, r3 = (R[..., k, None, :] for k in range(3))  # (..., C, 1, 3)
    a = x.unsqueeze(-1) * r3 - r1  # (..., C, N, 3)
    b = y.unsqueeze(-1) * r3 - r2
    # residual a·(P + t) + x t_cz - t_cx  =>  rhs = -(a·P + x t_cz - t_cx)
    rhs_a = -((a * p3.unsqueeze(-3)).sum(-1) + x * tc[..., 2, None] - tc[..., 0, None])
    rhs_b = -((b * p3.unsqueeze(-3)).sum(-1) + y * tc[..., 2, None] - tc[..., 1, None])
    lhs = torch.cat(
        ((w.unsqueeze(-1) * a).flatten(-3, -2), (w.unsqueeze(-1) * b).flatten(-3, -2)), -2
    )
    rhs = torch.cat(((w * rhs_a).flatten(-2), (w * rhs_b).flatten(-2)), -1)
    if damping > 0:
        prior = torch.zeros(*batch, 3, dtype=F64) if prior is None else prior.to(F64)
        root = (damping * w.square().sum((-2, -1))).sqrt()[..., None, None]
        lhs = torch.cat((lhs, root * torch.eye(3, dtype=F64).expand(*batch, 3, 3)), -2)
        rhs = torch.cat((rhs, root[..., 0] * prior), -1)
    flat_lhs, flat_rhs = lhs.reshape(-1, *lhs.shape[-2:]), rhs.reshape(-1, rhs.shape[-1])
    solutions = [
        torch.linalg.lstsq(m, v.unsqueeze(-1)).solution.squeeze(-1)
        for m, v in zip(flat_lhs, flat_rhs, strict=True)
    ]
    return torch.stack(solutions).reshape(*batch, 3)


def assert_close_rel(actual, expected, rtol, atol=0.0):
    err = (actual - expected).norm(dim=-1)
    bound = atol + rtol * expected.norm(dim=-1)
    assert bool((err <= bound).all()), f"max excess {(err - bound).max():.3g}"


@st.composite
def rigs(draw, *, min_cameras=1, max_cameras=4, noise=1.0):
    """Well-posed multi-view problems drawn from a few shrinkable scalars."""
    cameras = draw(st.integers(min_cameras, max_cameras), label="C")
    points = draw(st.integers(3, 12), label="N")
    spread = draw(st.sampled_from([0.3, 1.5, math.pi]), label="spread")
    seed = draw(st.integers(0, 2**31 - 1), label="seed")
    return make_rig((), cameras, points, seed=seed, spread=spread, noise=noise)


class TestSolveTranslationMultiview:
    # ------------------------------------------------------------------ smoke
    def test_smoke(self, device, dtype):
        rig = make_rig((2,), 3, 8, seed=1).to(dtype, device)
        solution = solve_all(*rig.inputs())
        assert isinstance(solution, MultiviewTranslationSolution)
        assert MultiviewTranslationSolution._fields == (
            "translation",
            "valid",
            "residuals",
            "covariance",
        )
        assert solution.translation.shape == (2, 3) and solution.translation.dtype == dtype
        assert solution.valid.shape == (2,) and solution.valid.dtype == torch.bool
        assert solution.covariance.shape == (2, 3, 3) and solution.residuals.shape == (2, 3, 8)
        assert solution.translation.device == device
        assert bool(solution.valid.all())
        assert_close_rel(solution.translation, rig.translation, 1e-5 if dtype != F64 else 1e-12)
        assert float(solution.residuals.max()) < (1e-6 if dtype == F64 else 1e-2)

    # -------------------------------------------------------------- bad input
    @staticmethod
    def _arguments():
        return {
            "points2d": torch.rand(4, 2, 5, 2),
            "points3d": torch.rand(4, 5, 3),
            "intrinsics": torch.eye(3).expand(2, 3, 3),
            "rotations": torch.eye(3).expand(2, 3, 3),
            "camera_translations": torch.rand(2, 3),
            "weights": torch.rand(4, 2, 5),
            "prior": torch.rand(4, 3),
            "damping": 0.1,
        }

    @pytest.mark.parametrize(
        ("changes", "pattern"),
        [
            ({"points2d": torch.rand(5, 2)}, r"^points2d: expected shape"),
            (
                {"points2d": torch.rand(4, 2, 5, 3)},
                r"^points2d: expected shape .*got \(4, 2, 5, 3\)",
            ),
            ({"points2d": torch.rand(4, 2, 6, 2)}, r"^points2d: .*N=5.*N was set to 5 by points3d"),
            ({"points3d": torch.rand(4, 5, 2)}, r"^points3d: expected shape"),
            (
                {"intrinsics": torch.eye(3).expand(3, 3, 3)},
                r"^intrinsics: .*C=2.*set to 2 by points2d",
            ),
            ({"intrinsics": torch.rand(2, 3, 4)}, r"^intrinsics: expected shape"),
            ({"rotations": torch.eye(3)}, r"^rotations: expected shape"),
            ({"rotations": torch.eye(3).expand(3, 3, 3)}, r"^rotations: .*C=2"),
            ({"camera_translations": torch.rand(3, 3)}, r"^camera_translations: .*C=2"),
            ({"camera_translations": torch.rand(2, 2)}, r"^camera_translations: expected shape"),
            ({"weights": torch.rand(4, 5)}, r"^weights: expected shape"),
            ({"weights": torch.rand(4, 2, 6)}, r"^weights: .*N=5"),
            ({"prior": torch.rand(4, 2)}, r"^prior: expected shape"),
            (
                {
                    "points2d": torch.rand(1, 1, 2),
                    "points3d": torch.rand(1, 3),
                    "intrinsics": torch.eye(3).expand(1, 3, 3),
                    "rotations": torch.eye(3).expand(1, 3, 3),
                    "camera_translations": torch.rand(1, 3),
                    "weights": None,
                    "prior": None,
                },
                r"^points2d: expected at least 2 observations.*C=1, N=1",
            ),
            (
                {"points3d": torch.rand(3, 5, 3)},
                r"do not broadcast: points3d \(3,\), points2d \(4,\)",
            ),
            ({"prior": torch.rand(2, 3)}, r"do not broadcast: .*prior \(2,\)"),
            ({"points2d": torch.zeros(4, 2, 5, 2, dtype=torch.int64)}, r"^points2d: .*floating"),
            (
                {"rotations": torch.eye(3, dtype=torch.int32).expand(2, 3, 3)},
                r"^rotations: .*floating",
            ),
            ({"weights": torch.ones(4, 2, 5, dtype=torch.bool)}, r"^weights: .*floating"),
            (
                {"camera_translations": torch.rand(2, 3, device="meta")},
                r"^camera_translations: .*device",
            ),
            ({"rotations": [[1.0, 0.0, 0.0]] * 3}, r"^rotations: expected a torch.Tensor"),
            ({"damping": -1.0}, r"^damping: "),
            ({"damping": float("nan")}, r"^damping: "),
            ({"damping": torch.tensor(0.1)}, r"^damping: "),
        ],
    )
    def test_bad_input(self, changes, pattern):
        arguments = {**self._arguments(), **changes}
        with raises_for(pattern):
            solve_translation_multiview(**arguments)
        with raises_for(pattern):
            solve_translation_multiview_naive(**arguments)

    # ---------------------------------------------------- shapes/broadcasting
    def test_broadcasting_and_batched_equals_per_item(self, device, dtype):
        rig = make_rig((3,), 2, 6, seed=2, noise=0.5).to(dtype, device)
        p3, p2, K, R, tc, w = rig.inputs()
        # One calibrated rig for the whole (2, 3) batch, one shape for all items.
        shared = solve_all(p3[0], p2.expand(2, 3, 2, 6, 2), K[0], R[0], tc[0], w[0])
        assert shared.translation.shape == (2, 3, 3) and shared.residuals.shape == (2, 3, 2, 6)
        for i in range(3):
            item = solve_all(p3[0], p2[i], K[0], R[0], tc[0], w[0])
            torch.testing.assert_close(shared.translation[1, i], item.translation)
            torch.testing.assert_close(shared.covariance[0, i], item.covariance)
        batched = solve_all(p3, p2, K, R, tc, w)
        for i in range(3):
            item = solve_all(p3[i], p2[i], K[i], R[i], tc[i], w[i])
            torch.testing.assert_close(batched.translation[i], item.translation)
            torch.testing.assert_close(batched.residuals[i], item.residuals)

    def test_half_precision_computed_in_float32(self):
        rig = make_rig((4,), 3, 8, seed=3)
        half = solve_all(*(t.to(torch.bfloat16) for t in rig.inputs()))
        assert half.translation.dtype == torch.bfloat16 and half.covariance.dtype == torch.bfloat16
        single = solve_all(*(t.to(torch.bfloat16).float() for t in rig.inputs()))
        torch.testing.assert_close(half.translation, single.translation.to(torch.bfloat16))

    # ------------------------------------------------------------ correctness
    @pytest.mark.parametrize("cameras", [2, 3, 4])
    def test_noise_free_recovery(self, cameras, device):
        rig = make_rig((64,), cameras, 10, seed=cameras).to(F64, device)
        solution = solve_all(*rig.inputs())
        assert bool(solution.valid.all())
        assert_close_rel(solution.translation, rig.translation, 0.0, atol=1e-12)
        assert float(solution.residuals.max()) < 1e-8

    @pytest.mark.parametrize("damping", [0.0, 1e-3, 0.5])
    @pytest.mark.parametrize("spread", [0.05, math.pi])
    def test_matches_stacked_lstsq(self, damping, spread):
        rig = make_rig((48,), 3, 9, seed=4, noise=2.0, spread=spread)
        prior = rig.translation + 0.05
        solution = solve_all(*rig.inputs(), damping=damping, prior=prior)
        expected = stacked_lstsq(rig, damping, prior)
        assert bool(solution.valid.all())
        assert_close_rel(solution.translation, expected, 1e-10)

    def test_covariance_is_sigma2_inverse_normal_matrix(self):
        rig = make_rig((), 3, 7, seed=5, noise=1.0)
        solution = solve_all(*rig.inputs(), damping=0.01)
        p3, p2, K, R, tc, w = rig.inputs()
        y = (p2[..., 1] - K[..., 1, 2, None]) / K[..., 1, 1, None]
        x = (p2[..., 0] - K[..., 0, 2, None] - K[..., 0, 1, None] * y) / K[..., 0, 0, None]
        a = x.unsqueeze(-1) * R[:, None, 2] - R[:, None, 0]
        b = y.unsqueeze(-1) * R[:, None, 2] - R[:, None, 1]
        rows = torch.cat((a, b), 0).reshape(-1, 3)
        w2 = torch.cat((w, w), 0).reshape(-1).square()
        normal = rows.T @ (w2[:, None] * rows) + 0.01 * w.square().sum() * torch.eye(3, dtype=F64)
        camera = (p3 + solution.translation) @ R.mT + tc[:, None]
        r = torch.stack(
            (x * camera[..., 2] - camera[..., 0], y * camera[..., 2] - camera[..., 1]), -1
        )
        sigma2 = (w.square() * r.square().sum(-1)).sum() / (2 * w.numel() - 3)
        torch.testing.assert_close(solution.covariance, sigma2 * torch.linalg.inv(normal))
        pixels = camera @ K.mT
        error = (pixels[..., :2] / pixels[..., 2:] - p2).norm(dim=-1)
        torch.testing.assert_close(solution.residuals, error)

    @pytest.mark.parametrize("damping", [0.0, 0.01])
    def test_single_identity_camera_is_single_view(self, damping, device):
        rig = make_rig((256,), 1, 12, seed=6, noise=1.0, spread=0.0, depth=(0.3, 10.0)).to(
            F64, device
        )
        p3, p2, K, _, _, w = rig.inputs()
        # The object in the camera's orientation, seen by a camera at the world origin.
        p3 = p3 @ rig.rotations[..., 0, :, :].mT
        eye = torch.eye(3, dtype=F64, device=device).expand(256, 1, 3, 3)
        zero = torch.zeros(256, 1, 3, dtype=F64, device=device)
        # A prior in front of the camera (a pull behind it makes the single view invalid).
        prior = torch.rand(256, 3, dtype=F64, device=device)
        prior[:, 2] += 0.5
        multi = solve_all(p3, p2, K, eye, zero, w, damping=damping, prior=prior)
        single = solve_translation(
            p3,
            p2[:, 0],
            K[:, 0],
            w[:, 0],
            damping=damping,
            prior=prior,
            return_covariance=True,
            return_residuals=True,
        )
        assert torch.equal(multi.valid, single.valid) and bool(single.valid.all())
        assert_close_rel(multi.translation, single.translation, 1e-12)
        torch.testing.assert_close(multi.covariance, single.covariance, rtol=1e-9, atol=1e-15)
        torch.testing.assert_close(multi.residuals[:, 0], single.residuals, rtol=1e-9, atol=1e-9)

    def test_residuals_read_all_of_k_as_the_single_view_solver(self):
        # A K with a non-zero (1, 0) entry: both solvers map the normalised error
        # through the same upper 2x2 block.
        g = torch.Generator().manual_seed(5)
        p3 = torch.randn(4, 6, 3, generator=g, dtype=F64) * 0.05
        K = torch.tensor([[500.0, 3.0, 320.0], [7.0, 480.0, 240.0], [0.0, 0.0, 1.0]], dtype=F64)
        t = torch.tensor([0.05, -0.02, 0.6], dtype=F64)
        cam = p3 + t
        p2 = (cam[..., :2] / cam[..., 2:]) @ K[:2, :2].mT + K[:2, 2]
        p2 = p2 + torch.randn(p2.shape, generator=g, dtype=F64)
        eye, zero = torch.eye(3, dtype=F64).expand(4, 1, 3, 3), torch.zeros(4, 1, 3, dtype=F64)
        multi = solve_all(p3, p2[:, None], K.expand(4, 1, 3, 3), eye, zero)
        single = solve_translation(p3, p2, K, return_residuals=True)
        torch.testing.assert_close(multi.residuals[:, 0], single.residuals, rtol=1e-9, atol=1e-9)

    def test_single_moved_camera_is_single_view_in_its_frame(self):
        # One camera anywhere: the camera-frame root R t + t_c is the single-view answer.
        rig = make_rig((64,), 1, 10, seed=7, noise=1.0, spread=0.0)
        p3, p2, K, R, tc, w = rig.inputs()
        multi = solve_translation_multiview(p3, p2, K, R, tc, w)
        single = solve_translation(p3 @ R[:, 0].mT, p2[:, 0], K[:, 0], w[:, 0])
        camera_root = (R[:, 0] @ multi.translation.unsqueeze(-1)).squeeze(-1) + tc[:, 0]
        assert_close_rel(camera_root, single.translation, 1e-10)

    def test_float32_matches_float64(self):
        """float32 bounds, against float64 on the same (float32-representable) inputs.

        One camera, 0.3-2 m: within the single-view solver's documented bound
        2e-5 m + 1e-5 x depth. Four cameras around the object, 0.3-10 m: 1e-5 m.
        """
        for cameras, depth, spread, atol, per_metre in [
            (1, (0.3, 2.0), 0.0, 2e-5, 1e-5),
            (4, (0.3, 10.0), math.pi, 1e-5, 0.0),
        ]:
            rig = make_rig((512,), cameras, 21, seed=8, noise=1.0, depth=depth, spread=spread)
            rig = rig.to(torch.float32)
            single = solve_translation_multiview(*rig.inputs())
            double = solve_translation_multiview(*rig.to(F64).inputs())
            assert bool(double.valid.all()) and bool(single.valid.all())
            err = (single.translation.double() - double.translation).norm(dim=-1)
            bound = atol + per_metre * rig.depth.double().mean((-2, -1))
            assert bool((err <= bound).all()), f"C={cameras}: max excess {(err - bound).max():.3g}"

    def test_float32_far_off_axis(self):
        """The Newton step keeps float32 at the single-view level far off the axis.

        One camera, object 56° off its axis, 2 m away, 10 cm: without the step the
        largest error was 5.2e-3 m, with it 4.2e-5 m (single-view solver 5.4e-5 m).
        """
        gen = torch.Generator().manual_seed(7)
        scale = 1.0 + 0.1 * torch.rand(512, 1, generator=gen, dtype=F64)
        translation = torch.tensor([3.0, 0.0, 2.0], dtype=F64) * scale
        points3d = (torch.rand(512, 21, 3, generator=gen, dtype=F64) - 0.5) * 0.1
        K = torch.tensor([[300.0, 0.0, 320.0], [0.0, 300.0, 240.0], [0.0, 0.0, 1.0]], dtype=F64)
        uvw = (points3d + translation.unsqueeze(-2)) @ K.T
        points2d = (uvw[..., :2] / uvw[..., 2:]).float()
        weights = (0.2 + 0.8 * torch.rand(512, 21, generator=gen, dtype=F64)).float()
        inputs = (
            points3d.float(),
            points2d.unsqueeze(1),
            K.float().expand(512, 1, 3, 3),
            torch.eye(3).expand(512, 1, 3, 3),
            torch.zeros(512, 1, 3),
            weights.unsqueeze(1),
        )
        single = solve_translation_multiview(*inputs).translation.double()
        double = solve_translation_multiview(*(t.double() for t in inputs)).translation
        assert float((single - double).norm(dim=-1).max()) < 1e-4

    # ---------------------------------------------------------------- gradients
    @pytest.mark.parametrize("damping", [0.0, 0.1])
    def test_gradcheck(self, damping):
        rig = make_rig((), 2, 4, seed=9, noise=1.0)
        prior = rig.translation + 0.02

        def translation(*inputs):
            return solve_translation_multiview(*inputs[:6], damping=damping, prior=inputs[6])[0]

        assert check_gradients(translation, *rig.inputs(), prior)

    def test_gradcheck_covariance_and_residuals(self):
        rig = make_rig((), 2, 4, seed=10, noise=1.0)

        def covariance(*inputs):
            return solve_all(*inputs).covariance

        def residuals(*inputs):
            return solve_all(*inputs).residuals

        assert check_gradients(covariance, *rig.inputs())
        assert check_gradients(residuals, *rig.inputs(), gradgrad=False)

    @pytest.mark.parametrize("damping", [0.0, 0.05])
    def test_custom_backward_matches_naive(self, damping):
        rig = make_rig((5,), 3, 6, seed=11, noise=1.0)
        prior = rig.translation * 1.1
        gen = torch.Generator().manual_seed(0)
        grad_out = torch.randn(5, 3, generator=gen, dtype=F64)
        results = []
        for solve in (
            lambda *a: solve_translation_multiview(*a[:6], damping=damping, prior=a[6])[0],
            lambda *a: solve_translation_multiview_naive(*a[:6], damping=damping, prior=a[6]),
        ):
            inputs = (*rig.inputs(requires_grad=True), prior.clone().requires_grad_())
            out = solve(*inputs)
            first = torch.autograd.grad(out, inputs, grad_out, create_graph=True)
            gen2 = torch.Generator().manual_seed(1)
            probes = [torch.randn(g.shape, generator=gen2, dtype=F64) for g in first]
            inner = sum(
                (f * p).sum() for f, p in zip(first, probes, strict=True) if f.requires_grad
            )
            second = torch.autograd.grad(inner, inputs, allow_unused=True, materialize_grads=True)
            results.append((out, first, second))
        (out_a, first_a, second_a), (out_b, first_b, second_b) = results
        torch.testing.assert_close(out_a, out_b, rtol=1e-12, atol=1e-14)
        for a, b in zip(first_a + second_a, first_b + second_b, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9 * float(b.detach().abs().max()))

    def test_vmap_and_jacrev(self):
        rig = make_rig((3,), 2, 5, seed=12, noise=1.0)

        def translation(*inputs):
            return solve_translation_multiview(*inputs).translation

        batched = torch.func.vmap(translation)(*rig.inputs())
        torch.testing.assert_close(batched, translation(*rig.inputs()))
        jac = torch.func.vmap(torch.func.jacrev(translation, argnums=(0, 1, 3, 4, 5)))(
            *rig.inputs()
        )
        naive = torch.func.vmap(
            torch.func.jacrev(solve_translation_multiview_naive, argnums=(0, 1, 3, 4, 5))
        )(*rig.inputs())
        assert jac[1].shape == (3, 3, 2, 5, 2) and jac[2].shape == (3, 3, 2, 3, 3)
        for a, b in zip(jac, naive, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)

    def test_compile_fullgraph(self):
        rig = make_rig((4,), 3, 6, seed=13, noise=1.0)

        def loss(*inputs):
            solution = solve_all(*inputs, damping=1e-3)
            return solution.translation.square().sum() + solution.residuals.sum()

        compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
        eager_inputs, compiled_inputs = (
            rig.inputs(requires_grad=True),
            rig.inputs(requires_grad=True),
        )
        eager, out = loss(*eager_inputs), compiled(*compiled_inputs)
        torch.testing.assert_close(out, eager)
        for a, b in zip(
            torch.autograd.grad(out, compiled_inputs),
            torch.autograd.grad(eager, eager_inputs),
            strict=True,
        ):
            torch.testing.assert_close(a, b)

    def test_meta_device(self):
        rig = make_rig((2, 3), 4, 5, seed=14).to(torch.float32, "meta")
        inputs = rig.inputs(requires_grad=True)
        solution = solve_all(*inputs, damping=0.1, prior=rig.translation)
        assert solution.translation.device.type == "meta"
        assert solution.residuals.shape == (2, 3, 4, 5) and solution.valid.shape == (2, 3)
        (solution.translation.sum() + solution.covariance.sum()).backward()
        assert inputs[3].grad is not None and inputs[3].grad.shape == (2, 3, 4, 3, 3)

    # --------------------------------------------------------------- properties
    @PROPERTY
    @given(rig=rigs(), scale=st.floats(1e-3, 1e3), damping=st.sampled_from([0.0, 0.01]))
    def test_weight_scale_invariance(self, rig, scale, damping):
        p3, p2, K, R, tc, w = rig.inputs()
        a = solve_all(p3, p2, K, R, tc, w, damping=damping)
        b = solve_all(p3, p2, K, R, tc, w * scale, damping=damping)
        assert bool(a.valid) and bool(b.valid)
        assert_close_rel(b.translation, a.translation, 1e-9)
        torch.testing.assert_close(b.covariance, a.covariance, rtol=1e-7, atol=1e-18)

    @PROPERTY
    @given(rig=rigs(), data=st.data())
    def test_permutation_equivariance(self, rig, data):
        p3, p2, K, R, tc, w = rig.inputs()
        C, N = w.shape
        points = torch.tensor(data.draw(st.permutations(range(N)), label="points"))
        cameras = torch.tensor(data.draw(st.permutations(range(C)), label="cameras"))
        a = solve_all(p3, p2, K, R, tc, w)
        b = solve_all(
            p3[points],
            p2[cameras][:, points],
            K[cameras],
            R[cameras],
            tc[cameras],
            w[cameras][:, points],
        )
        assert_close_rel(b.translation, a.translation, 1e-10)
        torch.testing.assert_close(b.residuals, a.residuals[cameras][:, points])

    @PROPERTY
    @given(rig=rigs(min_cameras=2), data=st.data())
    def test_zero_weight_is_removal(self, rig, data):
        p3, p2, K, R, tc, w = rig.inputs()
        C, N = w.shape
        point = data.draw(st.integers(0, N - 1), label="point")
        camera = data.draw(st.integers(0, C - 1), label="camera")
        keep_p = torch.arange(N) != point
        keep_c = torch.arange(C) != camera
        # A point dropped in every camera == the point removed.
        dropped = w.clone()
        dropped[:, point] = 0.0
        a = solve_all(p3, p2, K, R, tc, dropped)
        b = solve_all(p3[keep_p], p2[:, keep_p], K, R, tc, w[:, keep_p])
        assert_close_rel(a.translation, b.translation, 1e-10)
        torch.testing.assert_close(a.covariance, b.covariance, rtol=1e-7, atol=1e-18)
        # A camera with zero weights == the camera removed.
        dropped = w.clone()
        dropped[camera] = 0.0
        a = solve_all(p3, p2, K, R, tc, dropped)
        b = solve_all(p3, p2[keep_c], K[keep_c], R[keep_c], tc[keep_c], w[keep_c])
        assert torch.equal(a.valid, b.valid)
        if bool(b.valid):
            assert_close_rel(a.translation, b.translation, 1e-10)

    @PROPERTY
    @given(rig=rigs(noise=0.0))
    def test_rigid_world_change(self, rig):
        # Moving the world frame (x' = Q x + s) moves the answer with it.
        p3, p2, K, R, tc, w = rig.inputs()
        gen = torch.Generator().manual_seed(0)
        Q = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=F64)).Q
        Q = Q * torch.linalg.det(Q)  # a rotation
        shift = torch.randn(3, generator=gen, dtype=F64)
        a = solve_translation_multiview(p3, p2, K, R, tc, w)
        # x_cam = R Qᵀ (x' - s) + t_c: rotations R Qᵀ, translations t_c - R Qᵀ s.
        R2 = R @ Q.T
        b = solve_translation_multiview(p3 @ Q.T, p2, K, R2, tc - (R2 @ shift), w)
        assert_close_rel(b.translation, a.translation @ Q.T + shift, 1e-9, atol=1e-12)

    # -------------------------------------------------------------- degenerate
    def _degenerate_rigs(self):
        rig = make_rig((), 2, 6, seed=15, noise=1.0)
        p3, p2, K, R, tc, w = rig.inputs()
        cases = {"zero_weights": (p3, p2, K, R, tc, torch.zeros_like(w))}
        one = torch.zeros_like(w)
        one[1, 3] = 0.7
        cases["one_observation"] = (p3, p2, K, R, tc, one)
        # Two identical cameras, every point on one ray through them.
        ray = rig.translation @ R[0].T + tc[0]
        ray = ray / ray.norm()
        depths = torch.linspace(-0.05, 0.05, 6, dtype=F64)
        line = depths.unsqueeze(-1) * (R[0].T @ ray)
        same_R, same_t, same_K = R[:1].expand(2, 3, 3), tc[:1].expand(2, 3), K[:1].expand(2, 3, 3)
        camera = (line + rig.translation) @ R[0].T + tc[0]
        pixels = camera @ K[0].T
        on_ray = (pixels[:, :2] / pixels[:, 2:]).expand(2, 6, 2)
        cases["one_ray"] = (line, on_ray, same_K, same_R, same_t, w)
        return cases

    @pytest.mark.parametrize("kind", ["zero_weights", "one_observation", "one_ray"])
    @pytest.mark.parametrize("dtype_", [torch.float32, F64])
    def test_degenerate_flagged_with_finite_values_and_gradients(self, kind, dtype_):
        inputs = tuple(t.to(dtype_).requires_grad_() for t in self._degenerate_rigs()[kind])
        prior = torch.tensor([0.1, -0.2, 0.7], dtype=dtype_, requires_grad=True)
        solution = solve_all(*inputs, prior=prior)
        assert not bool(solution.valid)
        torch.testing.assert_close(solution.translation, prior.detach())
        assert bool(torch.isfinite(solution.covariance).all())
        assert bool((solution.covariance == 0).all())
        assert bool(torch.isfinite(solution.residuals).all())
        loss = solution.translation.sum() + solution.covariance.sum() + solution.residuals.sum()
        grads = torch.autograd.grad(loss, (*inputs, prior), retain_graph=True)
        assert all(bool(torch.isfinite(g).all()) for g in grads)
        (to_prior,) = torch.autograd.grad(solution.translation.sum(), prior)
        torch.testing.assert_close(to_prior, torch.ones(3, dtype=dtype_))


# ---------------------------------------------------------------------------
# The validity rules of the single-view solver, in several views.

#: Turning a camera half a turn about its own y axis puts the object behind it with
#: exactly the same DLT equations (x' = x, y' = -y): only cheirality tells them apart.
HALF_TURN = torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=F64))


def observe(points3d, translation, intrinsics, rotations, camera_translations):
    """Pixels `(..., C, N, 2)` of ``points3d + translation``, through the DLT (a point
    behind a camera is divided by its negative depth)."""
    camera = (points3d + translation.unsqueeze(-2)).unsqueeze(-3) @ rotations.mT
    uvw = (camera + camera_translations.unsqueeze(-2)) @ intrinsics.mT
    return uvw[..., :2] / uvw[..., 2:]


def turned(rig: Rig, cameras) -> Rig:
    """``rig`` with the given cameras turned around (the object behind them)."""
    rotations, camera_translations = rig.rotations.clone(), rig.camera_translations.clone()
    rotations[..., cameras, :, :] = HALF_TURN @ rotations[..., cameras, :, :]
    camera_translations[..., cameras, :] = camera_translations[..., cameras, :] @ HALF_TURN
    points2d = observe(
        rig.points3d, rig.translation, rig.intrinsics, rotations, camera_translations
    )
    depth = rig.depth.clone()
    depth[..., cameras, :] = -depth[..., cameras, :]
    return rig._replace(
        points2d=points2d, rotations=rotations, camera_translations=camera_translations,
        depth=depth,
    )  # fmt: skip


def shared_camera_batch(seed: int, cameras: int, points: int, batch: int = 3):
    """``batch`` noisy problems seen by one set of cameras: ``(points3d, points2d,
    intrinsics, rotations, camera_translations, weights, prior)``, the cameras
    without a batch dimension."""
    base = make_rig((), cameras, points, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    translation = base.translation + 0.05 * (torch.rand(batch, 3, generator=gen, dtype=F64) - 0.5)
    points3d = base.points3d * (0.8 + 0.4 * torch.rand(batch, 1, 1, generator=gen, dtype=F64))
    K, R, tc = base.intrinsics, base.rotations, base.camera_translations
    points2d = observe(points3d, translation, K, R, tc)
    points2d = points2d + torch.randn(points2d.shape, generator=gen, dtype=F64)
    weights = 0.1 + 0.9 * torch.rand(batch, cameras, points, generator=gen, dtype=F64)
    return [points3d, points2d, K, R, tc, weights, translation * 1.1]


NAMES = ("points3d", "points2d", "intrinsics", "rotations", "camera_translations", "weights")


class TestSolveTranslationMultiviewHonestValid:
    # ------------------------------------------------------------ statistics
    def test_statistics_only_on_request(self):
        rig = make_rig((2,), 3, 8, seed=40, noise=1.0)
        plain = solve_translation_multiview(*rig.inputs())
        assert plain.covariance is None and plain.residuals is None
        only_cov = solve_translation_multiview(*rig.inputs(), return_covariance=True)
        assert only_cov.residuals is None and only_cov.covariance.shape == (2, 3, 3)
        only_res = solve_translation_multiview(*rig.inputs(), return_residuals=True)
        assert only_res.covariance is None and only_res.residuals.shape == (2, 3, 8)
        full = solve_all(*rig.inputs())
        assert torch.equal(plain.translation, full.translation)
        assert torch.equal(plain.valid, full.valid)
        torch.testing.assert_close(only_cov.covariance, full.covariance, rtol=0, atol=0)
        torch.testing.assert_close(only_res.residuals, full.residuals, rtol=0, atol=0)

    # ------------------------------------------------------------ cheirality
    @PROPERTY
    @given(rig=rigs(max_cameras=4, noise=0.0), data=st.data())
    def test_object_behind_a_camera_that_weighs_it_is_invalid(self, rig, data):
        """Half-turned cameras see the same DLT equations with the object behind them:
        invalid while they carry weight, valid again once their weights are zero."""
        C = rig.weights.shape[-2]
        behind = data.draw(st.lists(st.integers(0, C - 1), min_size=1, unique=True))
        flipped = turned(rig, behind)
        assert bool((flipped.depth[behind] < 0).all())
        for r in (rig, flipped):  # the same least-squares answer either way
            stacked = stacked_lstsq(r)
            assert_close_rel(stacked, rig.translation, 0.0, atol=1e-9)
        assert bool(solve_all(*rig.inputs()).valid)
        solution = solve_all(*flipped.inputs())
        assert not bool(solution.valid)
        assert torch.equal(solution.translation, torch.zeros(3, dtype=F64))
        assert not bool(solution.covariance.any()) and not bool(solution.residuals.any())
        dropped = flipped.weights.clone()
        dropped[behind] = 0.0
        if len(behind) < C:  # some camera in front is left
            p3, p2, K, R, tc, _ = flipped.inputs()
            kept = solve_translation_multiview(p3, p2, K, R, tc, dropped)
            front = [c for c in range(C) if c not in behind]
            alone = solve_translation_multiview(
                p3, p2[front], K[front], R[front], tc[front], dropped[front]
            )
            assert torch.equal(kept.valid, alone.valid)
            if C - len(behind) >= 2:
                assert bool(kept.valid)
                assert_close_rel(kept.translation, rig.translation, 0.0, atol=1e-9)

    def test_mirrored_shape_is_invalid(self):
        """One camera: a shape mirrored through the camera centre fits best behind it."""
        rig = make_rig((8,), 1, 21, seed=41, noise=1.0, spread=0.0)
        p3, p2, K, R, _, w = rig.inputs()
        mirrored = -(p3 @ R[:, 0].mT)  # in the camera's orientation, through its centre
        eye, zero = torch.eye(3, dtype=F64).expand(8, 1, 3, 3), torch.zeros(8, 1, 3, dtype=F64)
        assert bool(solve_translation_multiview(-mirrored, p2, K, eye, zero, w).valid.all())
        solution = solve_translation_multiview(mirrored, p2, K, eye, zero, w)
        single = solve_translation(mirrored, p2[:, 0], K[:, 0], w[:, 0])
        assert not bool(solution.valid.any()) and not bool(single.valid.any())

    @pytest.mark.parametrize("weighted", [False, True])
    def test_point_behind_a_camera_that_weighs_it(self, weighted):
        rig = make_rig((), 3, 8, seed=42, noise=0.0)
        p3, p2, K, R, tc, w = rig.inputs()
        # Move the last point 0.5 m behind camera 0 (along its axis) and observe it
        # there through the DLT; only camera 0 weighs it, if at all.
        axis = R[0, 2]
        p3[-1] = p3[-1] - (rig.depth[0, -1] + 0.5) * axis
        p2 = observe(p3, rig.translation, K, R, tc)
        w[1:, -1] = 0.0
        if not weighted:
            w[0, -1] = 0.0
        inputs = [t.requires_grad_() for t in (p3, p2, K, R, tc, w)]
        solution = solve_all(*inputs)
        assert bool(solution.valid) is not weighted
        assert bool(solution.residuals.isfinite().all())
        grads = torch.autograd.grad(solution.translation.sum() + solution.residuals.sum(), inputs)
        assert all(bool(g.isfinite().all()) for g in grads)
        if weighted:
            assert not bool(solution.residuals.any()) and not any(bool(g.any()) for g in grads)
        else:
            assert_close_rel(solution.translation, rig.translation, 0.0, atol=1e-9)
            assert float(solution.residuals[0, -1].detach()) > 100.0  # large, as it should be

    # ------------------------------------------------------- collapsed points
    @pytest.mark.parametrize("where", [0.0, 0.3])
    @pytest.mark.parametrize("cameras", [1, 3])
    @pytest.mark.parametrize("damping", [0.0, 0.01])
    def test_collapsed_points_are_invalid(self, where, cameras, damping):
        """All root-relative points on one point: no shape, however many views."""
        rig = make_rig((), cameras, 21, seed=43, noise=1.0)
        p3, p2, K, R, tc, w = rig.inputs()
        solution = solve_all(torch.full_like(p3, where), p2, K, R, tc, w, damping=damping)
        assert not bool(solution.valid)
        assert not bool(solution.covariance.any()) and not bool(solution.residuals.any())

    def test_small_shape_and_one_triangulated_point_stay_valid(self):
        rig = make_rig((), 3, 21, seed=44)
        p3, p2, K, R, tc, w = rig.inputs()
        small = p3 * 1e-3  # tiny, not collapsed: observed where it is
        pixels = observe(small, rig.translation, K, R, tc)
        solution = solve_translation_multiview(small, pixels, K, R, tc, w)
        assert bool(solution.valid)
        assert_close_rel(solution.translation, rig.translation, 0.0, atol=1e-9)
        # One point (the root) seen by two cameras: triangulation, not a collapse.
        one = torch.zeros_like(w)
        one[:2, 0] = 1.0
        solution = solve_translation_multiview(p3, p2, K, R, tc, one)
        assert bool(solution.valid)
        assert_close_rel(solution.translation, rig.translation, 0.0, atol=1e-9)

    # --------------------------------------------------------- non-finite input
    @settings(
        max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        data=st.data(),
        value=st.sampled_from([math.nan, math.inf, -math.inf]),
        target=st.sampled_from([*NAMES, "prior"]),
        damping=st.sampled_from([0.0, 0.01]),
        cameras=st.integers(1, 3),
        seed=st.integers(0, 2**31 - 1),
    )
    def test_non_finite_input_is_invalid_and_contained(
        self, data, value, target, damping, cameras, seed
    ):
        """A NaN/Inf in what one problem uses: that problem only is invalid, finite, and
        its gradients are zeros; other problems, and cameras they share, are unaffected."""
        clean = shared_camera_batch(seed, cameras, 6)
        if target == "prior" and damping == 0.0:
            damping = 0.1  # the prior is used only with damping
        index = [*NAMES, "prior"].index(target)
        shared = {2, 3, 4} - {index}  # the cameras the three problems share
        if index in (2, 3, 4):
            clean[index] = clean[index].expand(3, *clean[index].shape).clone()
        c = data.draw(st.integers(0, cameras - 1))
        i = data.draw(st.integers(0, 5))
        k2, k3 = data.draw(st.integers(0, 1)), data.draw(st.integers(0, 2))
        entry = {
            "points3d": (1, i, k3),
            "points2d": (1, c, i, k2),
            "intrinsics": (1, c, k2, k3),  # the upper two rows
            "rotations": (1, c, data.draw(st.integers(0, 2)), k3),
            "camera_translations": (1, c, k3),
            "weights": (1, c, i),
            "prior": (1, k3),
        }[target]
        broken = [t.clone() for t in clean]
        broken[index][entry] = value
        cotangent = torch.randn(3, 3, generator=torch.Generator().manual_seed(3), dtype=F64)

        def run(tensors, cotangent=cotangent):
            inputs = [t.detach().clone().requires_grad_() for t in tensors]
            solution = solve_all(*inputs[:6], damping=damping, prior=inputs[6])
            loss = (solution.translation * cotangent).sum() + solution.covariance.sum()
            loss = loss + solution.residuals.sum()
            return solution, torch.autograd.grad(loss, inputs)

        (good, good_grads), (bad, bad_grads) = run(clean), run(broken)
        keep = torch.tensor([0, 2])
        assert bool(good.valid.all())
        assert bad.valid.tolist() == [True, False, True]
        assert torch.equal(bad.translation[1], broken[6][1]) or target == "prior"
        for out in (bad.translation[keep], bad.covariance, bad.residuals):
            assert bool(out.isfinite().all())
        assert not bool(bad.covariance[1].any()) and not bool(bad.residuals[1].any())
        for a, b in zip(bad, good, strict=True):
            if a.is_floating_point():
                torch.testing.assert_close(a[keep], b[keep], rtol=0, atol=0)
        # Two problems alone give a shared camera the gradient the broken batch gives it.
        alone = [t if n in shared else t[keep] for n, t in enumerate(clean)]
        _, alone_grads = run(alone, cotangent[keep])
        for n, (g_bad, g_good) in enumerate(zip(bad_grads, good_grads, strict=True)):
            if n in shared:
                assert bool(g_bad.isfinite().all()), NAMES[n]
                scale = float(alone_grads[n].abs().max())
                torch.testing.assert_close(g_bad, alone_grads[n], rtol=1e-9, atol=1e-12 * scale)
                continue
            if n != 6:
                assert not bool(g_bad[1].any()), [*NAMES, "prior"][n]
            torch.testing.assert_close(g_bad[keep], g_good[keep], rtol=0, atol=0)

    # ------------------------------------------------------ zero weight: gone
    @PROPERTY
    @given(
        rig=rigs(min_cameras=2),
        data=st.data(),
        kind=st.sampled_from(["observation", "point", "view"]),
        garbage=st.sampled_from([math.nan, math.inf, -math.inf, 1e30, 1e300]),
        damping=st.sampled_from([0.0, 0.01]),
    )
    def test_zero_weight_drops_whatever_it_holds(self, rig, data, kind, garbage, damping):
        """``w = 0`` drops an observation, a point (in every camera) or a whole view,
        with its pixels, 3D point, intrinsics and pose: answer and gradients unchanged."""
        p3, p2, K, R, tc, w = rig.inputs()
        C, N = w.shape
        c = data.draw(st.integers(0, C - 1), label="camera")
        i = data.draw(st.integers(0, N - 1), label="point")
        weights = w.clone()
        if kind == "observation":
            weights[c, i] = 0.0
        elif kind == "point":
            weights[:, i] = 0.0
        else:
            weights[c] = 0.0
        dirty = [t.clone() for t in (p3, p2, K, R, tc)]
        if kind == "observation":
            dirty[1][c, i] = garbage
        elif kind == "point":
            dirty[0][i], dirty[1][:, i] = garbage, garbage
        else:
            for t in dirty[1:]:
                t[c] = garbage
        prior = rig.translation * 1.1
        cotangent = torch.tensor([0.3, -1.0, 0.7], dtype=F64)

        def run(tensors):
            inputs = [t.detach().clone().requires_grad_() for t in (*tensors, weights, prior)]
            solution = solve_translation_multiview(
                *inputs[:6], damping=damping, prior=inputs[6], return_covariance=True
            )
            loss = (solution.translation * cotangent).sum() + solution.covariance.sum()
            return solution, torch.autograd.grad(loss, inputs)

        (clean, clean_grads), (messy, messy_grads) = run((p3, p2, K, R, tc)), run(dirty)
        assert torch.equal(messy.valid, clean.valid)
        assert torch.equal(messy.translation, clean.translation)
        assert torch.equal(messy.covariance, clean.covariance)
        for a, b in zip(messy_grads, clean_grads, strict=True):
            assert torch.equal(a, b)
        # ... and the zero-weight entries themselves get zero gradients.
        if kind == "view":
            for g in messy_grads[1:5]:
                assert not bool(g[c].any())

    # --------------------------------------------- weights over the float range
    @PROPERTY
    @given(
        rig=rigs(),
        exponent=st.floats(-30.0, 30.0),
        damping=st.sampled_from([0.0, 0.01]),
        dtype_=st.sampled_from([torch.float32, F64]),
    )
    def test_weight_scale_invariance_over_the_float_range(self, rig, exponent, damping, dtype_):
        rig = rig.to(dtype_)
        p3, p2, K, R, tc, w = rig.inputs()
        prior = rig.translation * 1.1
        base = solve_all(p3, p2, K, R, tc, w, damping=damping, prior=prior)
        scaled_w = (w.double() * 10.0**exponent).to(dtype_)
        assert bool((scaled_w > 0).all())  # no weight underflows to zero
        scaled = solve_all(p3, p2, K, R, tc, scaled_w, damping=damping, prior=prior)
        assert bool(base.valid) and bool(scaled.valid)
        rtol = 1e-12 if dtype_ == F64 else 2e-5
        assert_close_rel(scaled.translation.double(), base.translation.double(), rtol)
        torch.testing.assert_close(scaled.covariance, base.covariance, rtol=100 * rtol, atol=0)

    @pytest.mark.parametrize("factor", [1e20, 1e-25])
    def test_float32_extreme_weights_match_float64(self, factor):
        """float32 weights near the ends of its range: the float64 answer, to the bound
        of :meth:`TestSolveTranslationMultiview.test_float32_matches_float64`."""
        rig = make_rig((256,), 4, 21, seed=45, noise=1.0, depth=(0.3, 10.0))
        rig = rig._replace(weights=rig.weights * factor).to(torch.float32)
        single = solve_translation_multiview(*rig.inputs())
        double = solve_translation_multiview(*rig.to(F64).inputs())
        assert bool(single.valid.all()) and bool(double.valid.all())
        err = (single.translation.double() - double.translation).norm(dim=-1)
        assert float(err.max()) < 1e-5

    # ---------------------------------------------------------------- gradients
    @pytest.mark.parametrize("damping", [0.0, 0.1])
    def test_gradcheck_with_dropped_entries_and_an_invalid_problem(self, damping):
        """float64 gradcheck of all outputs, gradgradcheck of translation and covariance,
        with zero-weight entries holding finite garbage and, in the same batch, a
        problem behind a camera."""
        rig = make_rig((2,), 2, 4, seed=46, noise=1.0)
        rig = rig._replace(**{k: v.clone() for k, v in rig._asdict().items()})
        behind = turned(make_rig((), 2, 4, seed=46, noise=1.0), [0])
        for name in ("points2d", "rotations", "camera_translations"):
            getattr(rig, name)[1] = getattr(behind, name)
        rig.weights[0, 0, 1] = 0.0  # an observation
        rig.points2d[0, 0, 1] = 1e3
        rig.weights[0, :, 3] = 0.0  # a point
        rig.points3d[0, 3] = 0.3  # (in front: a perturbed weight must not flip valid)
        prior = rig.translation + 0.02

        def outputs(*inputs):
            solution = solve_all(*inputs[:6], damping=damping, prior=inputs[6])
            assert solution.valid.tolist() == [True, False]
            return solution.translation, solution.covariance

        def residuals(*inputs):
            return solve_all(*inputs[:6], damping=damping, prior=inputs[6]).residuals

        assert check_gradients(outputs, *rig.inputs(), prior, gradgrad=False)
        assert check_gradients(residuals, *rig.inputs(), prior, gradgrad=False)
        # Second derivatives, the weights held fixed: the second derivative with respect
        # to a weight that is exactly zero would read the values that weight drops, which
        # the zero-weight rule makes irrelevant (they are replaced by zeros).
        p3, p2, K, R, tc, w = rig.inputs()

        def fixed_weights(*inputs):
            return outputs(*inputs[:5], w, inputs[5])

        assert check_gradients(fixed_weights, p3, p2, K, R, tc, prior)
