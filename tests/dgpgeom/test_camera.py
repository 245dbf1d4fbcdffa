"""Tests for dgpgeom.camera."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import gradcheck, gradgradcheck
from torch.utils._python_dispatch import TorchDispatchMode

from dgpgeom import ShapeError
from dgpgeom.camera import (
    Projection,
    crop_intrinsics,
    crop_transform,
    intrinsics_from_params,
    intrinsics_to_pinhole,
    invert_intrinsics,
    normalize_points,
    pinhole_to_intrinsics,
    project,
    resize_intrinsics,
    unproject,
)

F64 = torch.float64
PROPERTY = settings(max_examples=40, deadline=None)


def random_intrinsics(*batch, dtype=F64, device="cpu", skew=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    fx = 300 + 700 * torch.rand(batch, generator=g, dtype=F64)
    fy = fx * (0.9 + 0.2 * torch.rand(batch, generator=g, dtype=F64))
    cx = 200 + 200 * torch.rand(batch, generator=g, dtype=F64)
    cy = 150 + 150 * torch.rand(batch, generator=g, dtype=F64)
    s = 5 * torch.randn(batch, generator=g, dtype=F64) if skew else torch.zeros(batch, dtype=F64)
    return intrinsics_from_params(fx, fy, cx, cy, s).to(device=device, dtype=dtype)


def random_points3d(*shape, dtype=F64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = 0.3 * torch.randn(*shape, 2, generator=g, dtype=F64)
    z = 0.3 + 1.5 * torch.rand(*shape, 1, generator=g, dtype=F64)
    return torch.cat([xy, z], -1).to(device=device, dtype=dtype)


def tolerance(dtype):
    return {"atol": 1e-9, "rtol": 1e-9} if dtype == F64 else {"atol": 1e-3, "rtol": 1e-5}


class _CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func.__name__.split(".")[0])
        return func(*args, **(kwargs or {}))


# --------------------------------------------------------------------------- #
class TestIntrinsicsFromParams:
    def test_smoke_numbers(self):
        K = intrinsics_from_params(500.0, 510.0, 319.5, 239.5, skew=2.0)
        assert K.shape == (3, 3)
        assert K.dtype == torch.get_default_dtype()
        expected = torch.tensor([[500.0, 2.0, 319.5], [0.0, 510.0, 239.5], [0.0, 0.0, 1.0]])
        assert torch.equal(K, expected)

    def test_tensor_params(self, device, dtype):
        fx = torch.tensor([400.0, 600.0], device=device, dtype=dtype)
        K = intrinsics_from_params(fx, fx + 1, 10.0, 20.0)
        assert K.shape == (2, 3, 3) and K.dtype == dtype and K.device == device
        assert torch.equal(K[:, 0, 0], fx)
        assert torch.equal(K[:, 1, 1], fx + 1)
        assert torch.equal(K[:, 2], torch.tensor([0.0, 0.0, 1.0], dtype=dtype).expand(2, 3))
        assert torch.all(K[:, 0, 1] == 0) and torch.all(K[:, 1, 0] == 0)

    def test_broadcasting(self, dtype):
        fx = torch.ones(4, 1, dtype=dtype)
        cx = torch.zeros(3, dtype=dtype)
        assert intrinsics_from_params(fx, 1.0, cx, 0.0).shape == (4, 3, 3, 3)

    def test_bad_input(self):
        with pytest.raises(ShapeError, match="fx: expected a floating-point dtype"):
            intrinsics_from_params(torch.tensor([1, 2]), 1.0, 0.0, 0.0)
        with pytest.raises(ShapeError, match=r"cy: expected a torch\.Tensor or a number"):
            intrinsics_from_params(1.0, 1.0, 0.0, "0")
        with pytest.raises(ShapeError, match="batch dimensions do not broadcast"):
            intrinsics_from_params(torch.ones(2), torch.ones(3), 0.0, 0.0)

    def test_gradcheck(self):
        params = [torch.rand(2, dtype=F64, requires_grad=True) + 1 for _ in range(5)]
        assert gradcheck(intrinsics_from_params, params)

    def test_meta(self):
        fx = torch.empty(5, device="meta")
        assert intrinsics_from_params(fx, fx, fx, fx).shape == (5, 3, 3)


# --------------------------------------------------------------------------- #
class TestInvertIntrinsics:
    def test_correctness(self, device, dtype):
        K = random_intrinsics(6, dtype=dtype, device=device)
        Kinv = invert_intrinsics(K)
        assert Kinv.shape == (6, 3, 3) and Kinv.dtype == dtype
        eye = torch.eye(3, dtype=dtype, device=device).expand(6, 3, 3)
        assert torch.allclose(Kinv @ K, eye, atol=1e-12 if dtype == F64 else 1e-5)
        # K K⁻¹ cancels terms of size cx ~ 400 in its last column: float32 keeps ~4e-5 of it
        assert torch.allclose(K @ Kinv, eye, atol=1e-12 if dtype == F64 else 1e-4)
        ref = torch.linalg.inv(K.double())
        assert torch.allclose(Kinv.double(), ref, atol=1e-12 if dtype == F64 else 1e-6)

    def test_bad_input(self):
        with pytest.raises(ShapeError, match=r"intrinsics: expected shape \(\.\.\., 3, 3\)"):
            invert_intrinsics(torch.eye(4))
        with pytest.raises(ShapeError, match="floating-point"):
            invert_intrinsics(torch.eye(3, dtype=torch.int64))

    def test_half(self):
        K = random_intrinsics(3)
        out = invert_intrinsics(K.to(torch.bfloat16))
        assert out.dtype == torch.bfloat16
        assert torch.allclose(out.double(), invert_intrinsics(K), rtol=1e-2, atol=1e-5)

    def test_gradcheck(self):
        K = random_intrinsics(2).requires_grad_(True)
        assert gradcheck(invert_intrinsics, (K,))
        assert gradgradcheck(invert_intrinsics, (K,))

    def test_compile_vmap_meta(self):
        K = random_intrinsics(4)
        compiled = torch.compile(invert_intrinsics, fullgraph=True, backend="eager")
        assert torch.equal(compiled(K), invert_intrinsics(K))
        assert torch.equal(torch.func.vmap(invert_intrinsics)(K), invert_intrinsics(K))
        assert invert_intrinsics(torch.empty(2, 7, 3, 3, device="meta")).shape == (2, 7, 3, 3)


# --------------------------------------------------------------------------- #
class TestNormalizePoints:
    def test_correctness(self, device, dtype):
        K = random_intrinsics(5, dtype=dtype, device=device)
        uv = (500 * torch.rand(5, 21, 2, dtype=F64)).to(device=device, dtype=dtype)
        out = normalize_points(uv, K)
        assert out.shape == (5, 21, 2) and out.dtype == dtype
        homog = torch.cat([uv.double(), torch.ones(5, 21, 1, dtype=F64, device=device)], -1)
        ref = (homog @ torch.linalg.inv(K.double()).mT)[..., :2]
        assert torch.allclose(out.double(), ref, atol=1e-12 if dtype == F64 else 1e-6)

    def test_broadcasting(self, dtype):
        K = random_intrinsics(dtype=dtype)  # one K for the whole batch
        uv = torch.rand(4, 3, 21, 2, dtype=dtype) * 400
        out = normalize_points(uv, K)
        assert out.shape == (4, 3, 21, 2)
        assert torch.equal(out[2, 1], normalize_points(uv[2, 1], K))
        Kb = random_intrinsics(4, 1, dtype=dtype)
        assert normalize_points(uv[0, 0], Kb).shape == (4, 1, 21, 2)
        assert normalize_points(uv, Kb).shape == (4, 3, 21, 2)

    def test_bad_input(self):
        K = random_intrinsics()
        with pytest.raises(
            ShapeError, match=r"points2d: expected shape \(\.\.\., N, 2\), got \(5, 3\)"
        ):
            normalize_points(torch.zeros(5, 3, dtype=F64), K)
        with pytest.raises(ShapeError, match="intrinsics: expected shape"):
            normalize_points(torch.zeros(5, 2, dtype=F64), K[:2])
        with pytest.raises(ShapeError, match="batch dimensions do not broadcast"):
            normalize_points(torch.zeros(3, 5, 2, dtype=F64), random_intrinsics(4))
        with pytest.raises(TypeError, match=r"points2d: expected a torch\.Tensor"):
            normalize_points([[1.0, 2.0]], K)

    def test_cheap_and_inverse_free(self):
        """The solver's hot path: a handful of element-wise ops, no matrix inverse."""
        K = random_intrinsics()
        uv = torch.rand(21, 2, dtype=F64)
        with _CountOps() as counter:
            normalize_points(uv, K)
        compute = [
            op for op in counter.ops if op not in ("slice", "select", "unsqueeze", "promote_types")
        ]
        assert sorted(compute) == ["cat", "div", "div", "mul", "sub", "sub"], counter.ops
        assert not any("inv" in op or "linalg" in op or "solve" in op for op in counter.ops)

    def test_float16_vs_float64(self):
        K = random_intrinsics(3)
        uv = torch.rand(3, 21, 2, dtype=F64) * 500
        out = normalize_points(uv.half(), K.half())
        assert out.dtype == torch.float16
        # inputs rounded to float16 (relative 5e-4 on ~500 px) dominate the error
        assert torch.allclose(out.double(), normalize_points(uv, K), atol=5e-3)

    def test_gradcheck(self):
        K = random_intrinsics(2).requires_grad_(True)
        uv = (torch.rand(2, 4, 2, dtype=F64) * 500).requires_grad_(True)
        assert gradcheck(normalize_points, (uv, K))
        assert gradgradcheck(normalize_points, (uv, K))

    def test_compile_fullgraph(self):
        K = random_intrinsics(4)
        uv = torch.rand(4, 21, 2, dtype=F64) * 500
        compiled = torch.compile(normalize_points, fullgraph=True, backend="aot_eager")
        assert torch.allclose(compiled(uv, K), normalize_points(uv, K), atol=1e-12)

    def test_vmap(self):
        K = random_intrinsics(4)
        uv = torch.rand(4, 21, 2, dtype=F64) * 500
        assert torch.allclose(torch.func.vmap(normalize_points)(uv, K), normalize_points(uv, K))
        shared = torch.func.vmap(normalize_points, in_dims=(0, None))(uv, K[0])
        assert torch.allclose(shared, normalize_points(uv, K[0]))

    def test_meta(self):
        out = normalize_points(
            torch.empty(8, 21, 2, device="meta"), torch.empty(3, 3, device="meta")
        )
        assert out.shape == (8, 21, 2) and out.device.type == "meta"


# --------------------------------------------------------------------------- #
class TestProject:
    def test_correctness(self, device, dtype):
        K = random_intrinsics(3, dtype=dtype, device=device)
        points = random_points3d(3, 21, dtype=dtype, device=device)
        proj = project(points, K)
        assert isinstance(proj, Projection)
        assert proj.points2d.shape == (3, 21, 2) and proj.points2d.dtype == dtype
        assert proj.in_front.dtype == torch.bool and proj.in_front.all()
        homog = points.double() @ K.double().mT
        ref = homog[..., :2] / homog[..., 2:]
        assert torch.allclose(proj.points2d.double(), ref, atol=1e-9 if dtype == F64 else 1e-3)

    def test_behind_camera_is_finite_and_masked(self):
        K = random_intrinsics()
        points = torch.tensor(
            [[0.1, 0.2, 1.0], [0.1, 0.2, 0.0], [0.1, 0.2, -1.0], [0.0, 0.0, 1e-4]],
            dtype=F64,
            requires_grad=True,
        )
        proj = project(points, K, min_depth=1e-3)
        assert proj.in_front.tolist() == [True, False, False, False]
        assert torch.isfinite(proj.points2d).all()
        proj.points2d.sum().backward()
        assert torch.isfinite(points.grad).all()
        # behind points are projected as if at min_depth; their z gradient is zero
        assert torch.all(points.grad[1:, 2] == 0)
        assert torch.allclose(
            proj.points2d[2],
            project(points[2:3].detach() * torch.tensor([1, 1, -1e-3], dtype=F64), K).points2d[0],
        )

    def test_broadcasting(self):
        K = random_intrinsics(4, 1)
        points = random_points3d(5, 21)
        proj = project(points, K)
        assert proj.points2d.shape == (4, 5, 21, 2) and proj.in_front.shape == (4, 5, 21)

    def test_bad_input(self):
        K = random_intrinsics()
        with pytest.raises(ShapeError, match="points3d_cam: expected shape"):
            project(torch.zeros(4, 2, dtype=F64), K)
        with pytest.raises(ShapeError, match="intrinsics: expected shape"):
            project(torch.zeros(4, 3, dtype=F64), torch.eye(4, dtype=F64))
        with pytest.raises(ValueError, match="min_depth"):
            project(torch.zeros(4, 3, dtype=F64), K, min_depth=0.0)

    def test_gradcheck(self):
        K = random_intrinsics(2).requires_grad_(True)
        points = random_points3d(2, 4).requires_grad_(True)

        def fn(p, k):
            return project(p, k).points2d

        assert gradcheck(fn, (points, K))
        assert gradgradcheck(fn, (points, K))

    def test_compile_vmap_meta(self):
        K = random_intrinsics(4)
        points = random_points3d(4, 21)
        compiled = torch.compile(project, fullgraph=True, backend="eager")
        out = compiled(points, K)
        assert torch.allclose(out.points2d, project(points, K).points2d)
        vm = torch.func.vmap(lambda p, k: project(p, k).points2d)(points, K)
        assert torch.allclose(vm, project(points, K).points2d)
        meta = project(torch.empty(4, 21, 3, device="meta"), torch.empty(3, 3, device="meta"))
        assert meta.points2d.shape == (4, 21, 2) and meta.in_front.shape == (4, 21)

    @PROPERTY
    @given(seed=st.integers(0, 2**31 - 1), skew=st.booleans())
    def test_unproject_project_round_trip(self, seed, skew):
        K = random_intrinsics(3, skew=skew, seed=seed)
        points = random_points3d(3, 10, seed=seed + 1)
        proj = project(points, K)
        back = unproject(proj.points2d, points[..., 2], K)
        assert torch.allclose(back, points, atol=1e-10)
        again = project(back, K).points2d
        assert torch.allclose(again, proj.points2d, atol=1e-8)


# --------------------------------------------------------------------------- #
class TestUnproject:
    def test_correctness(self, device, dtype):
        K = intrinsics_from_params(500.0, 400.0, 320.0, 240.0, 2.0).to(device, dtype)
        uv = torch.tensor([[320.0, 240.0], [820.0, 640.0]], device=device, dtype=dtype)
        depth = torch.tensor([2.0, 0.5], device=device, dtype=dtype)
        out = unproject(uv, depth, K)
        # pixel 2: ỹ = 400/400 = 1, x̃ = (500 - 2·1)/500
        expected = torch.tensor([[0.0, 0.0, 2.0], [0.5 * 498 / 500, 0.5, 0.5]], dtype=dtype)
        assert torch.allclose(out.cpu(), expected, **tolerance(dtype))

    def test_broadcasting(self):
        K = random_intrinsics(2, 1)
        uv = torch.rand(3, 21, 2, dtype=F64)
        depth = torch.rand(21, dtype=F64)
        assert unproject(uv, depth, K).shape == (2, 3, 21, 3)

    def test_bad_input(self):
        K = random_intrinsics()
        with pytest.raises(ShapeError, match=r"depth: expected shape \(\.\.\., N=21\)"):
            unproject(torch.zeros(21, 2, dtype=F64), torch.zeros(20, dtype=F64), K)
        with pytest.raises(ShapeError, match="points2d"):
            unproject(torch.zeros(21, 3, dtype=F64), torch.zeros(21, dtype=F64), K)

    def test_gradcheck(self):
        K = random_intrinsics(2).requires_grad_(True)
        uv = (torch.rand(2, 4, 2, dtype=F64) * 500).requires_grad_(True)
        z = (torch.rand(2, 4, dtype=F64) + 0.5).requires_grad_(True)
        assert gradcheck(unproject, (uv, z, K))

    def test_compile_meta(self):
        K = random_intrinsics(4)
        uv = torch.rand(4, 21, 2, dtype=F64) * 500
        z = torch.rand(4, 21, dtype=F64) + 0.5
        compiled = torch.compile(unproject, fullgraph=True, backend="eager")
        assert torch.allclose(compiled(uv, z, K), unproject(uv, z, K))
        meta = unproject(
            torch.empty(4, 21, 2, device="meta"),
            torch.empty(4, 21, device="meta"),
            torch.empty(3, 3, device="meta"),
        )
        assert meta.shape == (4, 21, 3)


# --------------------------------------------------------------------------- #
def apply_affine(A, uv):
    return uv @ A[..., :2, :2].mT + A[..., :2, 2].unsqueeze(-2)


boxes_strategy = st.tuples(
    st.floats(-50, 300), st.floats(-50, 200), st.floats(20, 300), st.floats(20, 300)
).map(lambda t: torch.tensor([t[0], t[1], t[0] + t[2], t[1] + t[3]], dtype=F64))
sizes_strategy = st.tuples(st.integers(1, 512), st.integers(1, 512))


class TestCropTransform:
    def test_formula(self, dtype):
        box = torch.tensor([9.5, 19.5, 29.5, 59.5], dtype=dtype)
        A = crop_transform(box, size=(20, 10))
        uv = torch.tensor([[9.5, 19.5], [29.5, 59.5], [10.0, 20.0]], dtype=dtype)
        # box edges go to crop edges (-0.5 and size - 0.5)
        expected = torch.tensor([[-0.5, -0.5], [9.5, 19.5], [-0.25, -0.25]], dtype=dtype)
        assert torch.allclose(apply_affine(A, uv), expected, **tolerance(dtype))
        plain = crop_transform(box)
        # pixels 10..29 become 0..19 in a plain crop
        assert torch.allclose(apply_affine(plain, uv[2:]), torch.tensor([[0.0, 0.0]], dtype=dtype))

    def test_bad_input(self):
        with pytest.raises(ShapeError, match="boxes"):
            crop_transform(torch.zeros(3, dtype=F64))
        with pytest.raises(ValueError, match="size"):
            crop_transform(torch.zeros(4, dtype=F64), size=(0, 3))
        with pytest.raises(ValueError, match="size"):
            crop_transform(torch.zeros(4, dtype=F64), size=224)

    def test_shapes_meta(self):
        assert crop_transform(torch.rand(5, 2, 4, dtype=F64), (3, 3)).shape == (5, 2, 3, 3)
        assert crop_transform(torch.empty(5, 4, device="meta"), (3, 3)).shape == (5, 3, 3)


class TestCropIntrinsics:
    def test_formula(self, device, dtype):
        K = intrinsics_from_params(500.0, 400.0, 319.5, 239.5, 3.0).to(device, dtype)
        box = torch.tensor([219.5, 139.5, 419.5, 389.5], device=device, dtype=dtype)
        out = crop_intrinsics(K, box, size=(125, 100))
        sx, sy = 0.5, 0.5
        expected = torch.tensor(
            [
                [sx * 500, sx * 3, sx * (319.5 - 219.5) - 0.5],
                [0.0, sy * 400, sy * (239.5 - 139.5) - 0.5],
                [0.0, 0.0, 1.0],
            ],
            dtype=dtype,
        )
        assert torch.allclose(out.cpu(), expected, **tolerance(dtype))
        plain = crop_intrinsics(K, box)
        assert torch.allclose(plain[:2, 2].cpu(), torch.tensor([99.5, 99.5], dtype=dtype))
        assert torch.equal(plain[:2, :2], K[:2, :2])

    def test_equals_transform_times_k(self, dtype):
        K = random_intrinsics(4, dtype=dtype)
        boxes = torch.tensor([10.0, 20.0, 110.0, 180.0], dtype=dtype).expand(4, 4)
        A = crop_transform(boxes, (64, 48))
        assert torch.allclose(crop_intrinsics(K, boxes, (64, 48)), A @ K, **tolerance(dtype))

    def test_broadcasting(self):
        K = random_intrinsics()
        boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 25.0, 25.0]], dtype=F64)
        assert crop_intrinsics(K, boxes, (8, 8)).shape == (2, 3, 3)
        assert crop_intrinsics(random_intrinsics(3, 1), boxes).shape == (3, 2, 3, 3)

    def test_bad_input(self):
        K = random_intrinsics()
        with pytest.raises(ShapeError, match=r"boxes: expected shape \(\.\.\., 4\)"):
            crop_intrinsics(K, torch.zeros(2, 3, dtype=F64))
        with pytest.raises(ShapeError, match="batch dimensions do not broadcast"):
            crop_intrinsics(random_intrinsics(3), torch.zeros(2, 4, dtype=F64))
        with pytest.raises(ValueError, match="size"):
            crop_intrinsics(K, torch.zeros(4, dtype=F64), size=(1, 2, 3))

    def test_gradcheck(self):
        K = random_intrinsics(2).requires_grad_(True)
        boxes = torch.tensor([[10.0, 20.0, 110.0, 180.0]], dtype=F64).repeat(2, 1)
        boxes.requires_grad_(True)
        assert gradcheck(lambda k, b: crop_intrinsics(k, b, (64, 48)), (K, boxes))

    def test_compile_meta(self):
        K = random_intrinsics(3)
        boxes = torch.tensor([10.0, 20.0, 110.0, 180.0], dtype=F64)
        compiled = torch.compile(crop_intrinsics, fullgraph=True, backend="eager")
        assert torch.allclose(compiled(K, boxes, (64, 48)), crop_intrinsics(K, boxes, (64, 48)))
        meta = crop_intrinsics(torch.empty(3, 3, 3, device="meta"), torch.empty(4, device="meta"))
        assert meta.shape == (3, 3, 3)

    @PROPERTY
    @given(box=boxes_strategy, size=sizes_strategy, seed=st.integers(0, 2**31 - 1))
    def test_crop_then_resize_equals_crop_resize(self, box, size, seed):
        """Plain crop, then resize from the box size, is one crop-and-resize."""
        K = random_intrinsics(seed=seed)
        box_hw = (float(box[3] - box[1]), float(box[2] - box[0]))
        two_steps = resize_intrinsics(crop_intrinsics(K, box), box_hw, size)
        assert torch.allclose(two_steps, crop_intrinsics(K, box, size), atol=1e-9)
        # and the same for the pixel maps
        uv = torch.rand(7, 2, dtype=F64) * 400
        resize_map = crop_transform(
            torch.tensor([-0.5, -0.5, box_hw[1] - 0.5, box_hw[0] - 0.5], dtype=F64), size
        )
        composed = apply_affine(resize_map, apply_affine(crop_transform(box), uv))
        assert torch.allclose(composed, apply_affine(crop_transform(box, size), uv), atol=1e-9)

    @PROPERTY
    @given(box=boxes_strategy, size=sizes_strategy, seed=st.integers(0, 2**31 - 1))
    def test_cropped_k_projects_to_mapped_pixels(self, box, size, seed):
        K = random_intrinsics(seed=seed)
        points = random_points3d(21, seed=seed + 1)
        K_crop = crop_intrinsics(K, box, size)
        mapped = apply_affine(crop_transform(box, size), project(points, K).points2d)
        assert torch.allclose(project(points, K_crop).points2d, mapped, atol=1e-8)


# --------------------------------------------------------------------------- #
class TestResizeIntrinsics:
    def test_half_pixel_term(self, dtype):
        K = intrinsics_from_params(500.0, 500.0, 319.5, 239.5, 1.0).to(dtype=dtype)
        out = resize_intrinsics(K, (480, 640), (240, 320))
        # u' = (u + 0.5)·W'/W - 0.5: the centre of a 640-wide image, 319.5, goes to 159.5
        expected = torch.tensor(
            [[250.0, 0.5, 159.5], [0.0, 250.0, 119.5], [0.0, 0.0, 1.0]], dtype=dtype
        )
        assert torch.allclose(out, expected, **tolerance(dtype))
        up = resize_intrinsics(K, (480, 640), (960, 1280))
        assert up[0, 2] == (319.5 + 0.5) * 2 - 0.5

    def test_matches_image_resize(self):
        """A dot resized with half-pixel sampling lands where the map says."""
        H, W, H2, W2 = 24, 32, 60, 48
        u0, v0 = 13.3, 9.8
        ys, xs = torch.meshgrid(
            torch.arange(H, dtype=F64), torch.arange(W, dtype=F64), indexing="ij"
        )
        image = torch.exp(-((xs - u0) ** 2 + (ys - v0) ** 2) / (2 * 2.0**2))[None, None]
        out = torch.nn.functional.interpolate(
            image, (H2, W2), mode="bilinear", align_corners=False
        )[0, 0]
        ys2, xs2 = torch.meshgrid(
            torch.arange(H2, dtype=F64), torch.arange(W2, dtype=F64), indexing="ij"
        )
        centroid = torch.stack([(out * xs2).sum(), (out * ys2).sum()]) / out.sum()
        K = intrinsics_from_params(100.0, 100.0, u0, v0).to(F64)
        K2 = resize_intrinsics(K, (H, W), (H2, W2))
        assert torch.allclose(centroid, K2[:2, 2], atol=0.02)
        # the naive u' = u·W'/W is off by (W'/W - 1)/2 = 0.25 px in x: far outside the tolerance
        assert (centroid[0] - u0 * W2 / W).abs() > 0.2

    def test_equals_crop_of_whole_image(self):
        K = random_intrinsics(3)
        box = torch.tensor([-0.5, -0.5, 639.5, 479.5], dtype=F64)
        assert torch.allclose(
            resize_intrinsics(K, (480, 640), (100, 200)), crop_intrinsics(K, box, (100, 200))
        )

    def test_bad_input(self):
        K = random_intrinsics()
        with pytest.raises(ValueError, match="new_size"):
            resize_intrinsics(K, (480, 640), (0, 10))
        with pytest.raises(ValueError, match="size"):
            resize_intrinsics(K, 480, (10, 10))
        with pytest.raises(ShapeError, match="intrinsics"):
            resize_intrinsics(torch.eye(2, dtype=F64), (4, 4), (2, 2))

    def test_gradcheck_compile_meta(self):
        K = random_intrinsics(2).requires_grad_(True)
        assert gradcheck(lambda k: resize_intrinsics(k, (480, 640), (224, 224)), (K,))
        compiled = torch.compile(resize_intrinsics, fullgraph=True, backend="eager")
        assert torch.allclose(
            compiled(K.detach(), (480, 640), (224, 224)),
            resize_intrinsics(K.detach(), (480, 640), (224, 224)),
        )
        assert resize_intrinsics(torch.empty(3, 3, device="meta"), (4, 4), (2, 2)).is_meta


# --------------------------------------------------------------------------- #
class TestPinhole:
    def test_round_trip(self, dtype):
        K = random_intrinsics(3, dtype=dtype)
        camera = intrinsics_to_pinhole(K, (480, 640))
        assert camera.intrinsics.shape == (3, 4, 4)
        assert torch.equal(camera.height, torch.full((3,), 480.0, dtype=dtype))
        assert torch.equal(camera.width, torch.full((3,), 640.0, dtype=dtype))
        assert torch.equal(pinhole_to_intrinsics(camera), K)
        assert torch.equal(
            camera.intrinsics[:, 3], torch.tensor([0, 0, 0, 1], dtype=dtype).expand(3, 4)
        )

    def test_kornia_projects_like_us(self):
        K = random_intrinsics(2, skew=False)
        camera = intrinsics_to_pinhole(K, torch.tensor([[480, 640], [240, 320]]))
        assert torch.equal(camera.height, torch.tensor([480.0, 240.0], dtype=F64))
        points = random_points3d(2, 21)
        theirs = camera.project(points)
        assert torch.allclose(theirs, project(points, K).points2d, atol=1e-9)

    def test_extrinsics(self):
        K = random_intrinsics(2)
        ext = torch.eye(4, dtype=F64).repeat(2, 1, 1)
        ext[:, :3, 3] = torch.tensor([0.1, 0.0, 0.5], dtype=F64)
        camera = intrinsics_to_pinhole(K, (10, 10), ext)
        assert torch.equal(camera.extrinsics, ext)

    def test_bad_input(self):
        K = random_intrinsics(2)
        with pytest.raises(ShapeError, match="intrinsics: expected shape"):
            intrinsics_to_pinhole(K[0], (4, 4))
        with pytest.raises(ShapeError, match="extrinsics"):
            intrinsics_to_pinhole(K, (4, 4), torch.eye(4, dtype=F64))
        with pytest.raises(ShapeError, match="image_size"):
            intrinsics_to_pinhole(K, torch.ones(3, 2))
        with pytest.raises(ValueError, match="image_size"):
            intrinsics_to_pinhole(K, (4,))
        with pytest.raises(ShapeError, match="PinholeCamera"):
            pinhole_to_intrinsics(K)

    def test_gradient_flows(self):
        K = random_intrinsics(2).requires_grad_(True)
        pinhole_to_intrinsics(intrinsics_to_pinhole(K, (4, 4))).sum().backward()
        assert torch.equal(K.grad, torch.ones_like(K))


class TestProjectMinDepthMisuse:
    @pytest.mark.parametrize("min_depth", ["0.1", True, 0.0, -1.0, None])
    def test_refused(self, min_depth):
        with pytest.raises(ValueError, match="min_depth: expected a positive Python number"):
            project(torch.rand(4, 3), torch.eye(3), min_depth=min_depth)
