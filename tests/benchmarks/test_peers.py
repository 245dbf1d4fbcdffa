"""The benchmark's problems are realistic and its torch peers solve dgpgeom's problem."""

import torch

from tests.benchmarks._load import peers


def _args(problem):
    return problem.points3d, problem.points2d, problem.intrinsics, problem.weights


class TestMakeProblems:
    def test_shapes_dtype_and_ranges(self):
        p = peers.make_problems(512, dtype=torch.float32, seed=1)
        assert p.points2d.shape == (512, 21, 2) and p.points3d.shape == (512, 21, 3)
        assert p.intrinsics.shape == (512, 3, 3) and p.weights.shape == (512, 21)
        assert all(t.dtype == torch.float32 for t in p)
        assert torch.all(p.points3d[:, 0] == 0)  # root-relative
        assert torch.all((p.weights > 0.1) & (p.weights <= 1.0))
        depth = p.translation[:, 2]
        assert torch.all((depth >= 0.3) & (depth <= 2.0))
        focal = p.intrinsics[:, 0, 0]
        assert torch.all((focal >= 300) & (focal <= 2000))
        spread = (p.points3d.amax(1) - p.points3d.amin(1)).norm(dim=-1)
        assert 0.08 < spread.median() < 0.14  # hand-sized, about 10 cm

    def test_noise_free_points_project_exactly(self):
        p = peers.make_problems(16, noise_px=0.0, seed=2)
        cam = p.points3d + p.translation[:, None]
        proj = cam @ p.intrinsics.transpose(-1, -2)
        assert torch.allclose(proj[..., :2] / proj[..., 2:], p.points2d, atol=1e-9)

    def test_seeded(self):
        a, b = peers.make_problems(4, seed=5), peers.make_problems(4, seed=5)
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


class TestGradientsAgree:
    """Forward+backward timings compare like with like: the same gradients."""

    def test_lstsq_solve_and_dgpgeom_gradients(self):
        p = peers.make_problems(6, seed=4)
        g = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        grads = {}
        for name in ("dgpgeom", "lstsq", "solve"):
            p3, p2, k, w = (t.clone().requires_grad_(i != 2) for i, t in enumerate(_args(p)))
            t = peers.PEERS[name].fn(p3, p2, k, w)
            grads[name] = torch.autograd.grad(t, (p3, p2, w), g)
        for name in ("lstsq", "solve"):
            for ours, theirs in zip(grads["dgpgeom"], grads[name], strict=True):
                torch.testing.assert_close(ours, theirs, rtol=1e-7, atol=1e-9)


class TestDgpgeomVariants:
    """The refine and multi-view peers solve the same problem as the others."""

    def test_multiview_with_one_camera_equals_the_single_view_solve(self):
        args = _args(peers.make_problems(5, seed=7))
        single = peers.PEERS["dgpgeom"].fn(*args)
        torch.testing.assert_close(peers.PEERS["dgpgeom_multiview"].fn(*args), single, rtol=1e-10, atol=1e-12)

    def test_refine_recovers_noise_free_translations(self):
        problems = peers.make_problems(5, seed=8, noise_px=0.0)
        estimate = peers.PEERS["dgpgeom_refine"].fn(*_args(problems))
        torch.testing.assert_close(estimate, problems.translation, rtol=0, atol=1e-9)
