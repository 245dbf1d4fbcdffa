"""Tests for dgpgeom.rectification."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import gradcheck

from dgpgeom import ShapeError
from dgpgeom.camera import (
    crop_intrinsics,
    crop_transform,
    intrinsics_from_params,
    normalize_points,
    project,
)
from dgpgeom.rectification import (
    Rectification,
    RectifiedAnnotation,
    annotation_to_rectified,
    points2d_to_original,
    points2d_to_rectified,
    points3d_to_original,
    points3d_to_rectified,
    rectify,
    rectify_camera,
    translation_to_original,
    warp_to_rectified,
)

F64 = torch.float64
MODES = ["affine", "perspective"]
PROPERTY = settings(max_examples=30, deadline=None)


def random_intrinsics(*batch, skew=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    fx = 300 + 700 * torch.rand(batch, generator=g, dtype=F64)
    fy = fx * (0.9 + 0.2 * torch.rand(batch, generator=g, dtype=F64))
    cx = 200 + 200 * torch.rand(batch, generator=g, dtype=F64)
    cy = 150 + 150 * torch.rand(batch, generator=g, dtype=F64)
    s = 5 * torch.randn(batch, generator=g, dtype=F64) if skew else torch.zeros(batch, dtype=F64)
    return intrinsics_from_params(fx, fy, cx, cy, s)


def random_boxes(*batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = 400 * torch.rand(*batch, 1, generator=g, dtype=F64) - 20
    y0 = 300 * torch.rand(*batch, 1, generator=g, dtype=F64) - 20
    wh = 40 + 200 * torch.rand(*batch, 2, generator=g, dtype=F64)
    return torch.cat([x0, y0, x0 + wh[..., :1], y0 + wh[..., 1:]], -1)


def random_scene(batch, seed, n=21):
    """A hand-sized root-relative shape, a translation in front of the camera, its image."""
    g = torch.Generator().manual_seed(seed)
    K = random_intrinsics(batch, seed=seed)
    shape3d = 0.05 * torch.randn(batch, n, 3, generator=g, dtype=F64)
    z = 0.3 + 0.9 * torch.rand(batch, 1, generator=g, dtype=F64)
    xy = (torch.rand(batch, 2, generator=g, dtype=F64) - 0.5) * z  # up to ±27° off axis
    translation = torch.cat([xy, z], -1)
    points2d = project(shape3d + translation[:, None], K).points2d
    lo, hi = points2d.amin(-2), points2d.amax(-2)
    boxes = torch.cat([lo - 10, hi + 10], -1)
    weights = 0.2 + torch.rand(batch, n, generator=g, dtype=F64)
    return K, shape3d, translation, points2d, boxes, weights


def solve_translation_reference(points2d, points3d, weights, intrinsics):
    """Float64 weighted DLT (HandDGP Eq. 7) with lstsq, as the test's reference solver.

    For each point, (X + tx) - x̃ (Z + tz) = 0 and (Y + ty) - ỹ (Z + tz) = 0, with
    x̃, ỹ = K⁻¹ u; rows are scaled by the weights. dgpgeom.solve_translation can
    replace this once it exists.
    """
    homog = torch.cat([points2d, torch.ones_like(points2d[..., :1])], -1)
    n = (homog @ torch.linalg.inv(intrinsics).mT)[..., :2]
    n = n / (homog @ torch.linalg.inv(intrinsics).mT)[..., 2:]
    x, y = n.unbind(-1)
    X, Y, Z = points3d.unbind(-1)
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_x = torch.stack([one, zero, -x], -1)
    rows_y = torch.stack([zero, one, -y], -1)
    A = torch.cat([rows_x, rows_y], -2) * torch.cat([weights, weights], -1)[..., None]
    b = torch.cat([x * Z - X, y * Z - Y], -1) * torch.cat([weights, weights], -1)
    return torch.linalg.lstsq(A, b[..., None]).solution[..., 0]


def gaussian_image(height, width, centre, sigma, transform=None):
    """Gaussian dot at ``centre``; with ``transform``, the dot is drawn in the mapped frame."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=F64), torch.arange(width, dtype=F64), indexing="ij"
    )
    grid = torch.stack([xs, ys], -1).reshape(-1, 2)
    if transform is not None:
        grid = transform(grid)
    d2 = ((grid - centre) ** 2).sum(-1)
    return torch.exp(-d2 / (2 * sigma**2)).reshape(1, 1, height, width)


def centroid(image):
    h, w = image.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=F64), torch.arange(w, dtype=F64), indexing="ij")
    total = image.sum()
    return torch.stack([(image * xs).sum() / total, (image * ys).sum() / total])


# --------------------------------------------------------------------------- #
class TestRectifyCamera:
    @pytest.mark.parametrize("mode", MODES)
    def test_smoke(self, mode, device, dtype):
        K = random_intrinsics(3).to(device, dtype)
        boxes = random_boxes(3).to(device, dtype)
        rect = rectify_camera(K, boxes, size=224, focal=1000.0, mode=mode)
        assert isinstance(rect, Rectification) and rect.images is None
        for field in (rect.intrinsics, rect.from_original, rect.to_original, rect.rotation):
            assert field.shape == (3, 3, 3) and field.dtype == dtype and field.device == device
        assert rect.valid.shape == (3,) and rect.valid.all()
        assert rect.size == (224, 224) and rect.mode == mode

    def test_canonical_intrinsics(self):
        K = random_intrinsics(4)
        canonical = intrinsics_from_params(1000.0, 1000.0, 111.5, 111.5).to(F64).expand(4, 3, 3)
        # the paper's Λ: no box (crop on the principal point), or perspective mode for any box
        assert torch.allclose(rectify_camera(K).intrinsics, canonical, atol=1e-10)
        persp = rectify_camera(K, random_boxes(4), mode="perspective").intrinsics
        assert torch.allclose(persp, canonical, atol=1e-10)
        centred = torch.cat([K[:, :2, 2] - 30, K[:, :2, 2] + 50], -1)  # centre at c + 10
        affine = rectify_camera(K, centred).intrinsics
        assert torch.allclose(affine[:, :2, :2], canonical[:, :2, :2], atol=1e-10)
        # otherwise the principal point moves by -focal·(normalised box centre)
        ray = normalize_points(K[:, :2, 2].unsqueeze(-2) + 10, K).squeeze(-2)
        assert torch.allclose(affine[:, :2, 2], 111.5 - 1000 * ray, atol=1e-9)

    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize("focal", [800.0, None])
    def test_box_centre_goes_to_crop_centre(self, mode, focal):
        K = random_intrinsics(5)
        boxes = random_boxes(5)
        rect = rectify_camera(K, boxes, size=(96, 128), focal=focal, mode=mode)
        centres = (0.5 * (boxes[:, :2] + boxes[:, 2:]))[:, None]
        expected = torch.tensor([[[63.5, 47.5]]], dtype=F64).expand(5, 1, 2)
        assert torch.allclose(points2d_to_rectified(centres, rect), expected, atol=1e-9)

    def test_affine_scale_is_focal_over_f(self):
        K = random_intrinsics(3, skew=False)
        rect = rectify_camera(K, random_boxes(3), focal=700.0)
        assert torch.allclose(rect.from_original[:, 0, 0], 700.0 / K[:, 0, 0])
        assert torch.allclose(rect.from_original[:, 1, 1], 700.0 / K[:, 1, 1])
        assert torch.all(rect.from_original[:, 2] == torch.tensor([0.0, 0.0, 1.0], dtype=F64))
        # the box size does nothing in affine mode with a fixed focal
        boxes = random_boxes(3)
        grown = torch.cat([boxes[:, :2] - 40, boxes[:, 2:] + 40], -1)
        assert torch.allclose(
            rectify_camera(K, boxes, focal=700.0).from_original,
            rectify_camera(K, grown, focal=700.0).from_original,
        )

    @pytest.mark.parametrize("mode", MODES)
    def test_maps_are_inverse(self, mode):
        rect = rectify_camera(random_intrinsics(4), random_boxes(4), mode=mode)
        product = rect.from_original @ rect.to_original
        product = product / product[:, 2:, 2:]
        assert torch.allclose(product, torch.eye(3, dtype=F64).expand(4, 3, 3), atol=1e-10)

    def test_rotation(self):
        K = random_intrinsics(4)
        boxes = random_boxes(4)
        rect = rectify_camera(K, boxes, mode="perspective")
        R = rect.rotation
        eye = torch.eye(3, dtype=F64).expand(4, 3, 3)
        assert torch.allclose(R @ R.mT, eye, atol=1e-12)
        assert torch.allclose(torch.linalg.det(R), torch.ones(4, dtype=F64))
        centre = torch.cat([0.5 * (boxes[:, :2] + boxes[:, 2:]), torch.ones(4, 1, dtype=F64)], -1)
        ray = (torch.linalg.inv(K) @ centre[..., None])[..., 0]
        turned = (R @ ray[..., None])[..., 0]
        assert torch.allclose(turned[:, :2], torch.zeros(4, 2, dtype=F64), atol=1e-12)
        assert torch.all(turned[:, 2] > 0)
        assert torch.equal(rectify_camera(K, boxes, mode="affine").rotation, eye)

    def test_focal_none_is_crop_and_resize(self):
        K = random_intrinsics(3, skew=False)
        boxes = random_boxes(3)
        rect = rectify_camera(K, boxes, size=(64, 48), focal=None)
        assert torch.allclose(rect.intrinsics, crop_intrinsics(K, boxes, (64, 48)), atol=1e-9)
        assert torch.allclose(rect.from_original, crop_transform(boxes, (64, 48)), atol=1e-9)

    def test_official_pipeline_composition(self):
        """Crop (1.3 box) then T = K_canon K_crop⁻¹, as in the official code, composes to
        our boxes=None map, up to the half pixel of the crop centre (112 vs 111.5)."""
        K = random_intrinsics(3, skew=False)
        box_centre = K[:, :2, 2] + torch.tensor([7.0, -4.0], dtype=F64)  # any box
        side = 1.3 * 100.0
        s = 224.0 / side
        img2bbox = torch.zeros(3, 3, 3, dtype=F64)
        img2bbox[:, 0, 0] = img2bbox[:, 1, 1] = s
        img2bbox[:, :2, 2] = 112.0 - s * box_centre
        img2bbox[:, 2, 2] = 1.0
        K_crop = img2bbox @ K
        K_canon = intrinsics_from_params(1000.0, 1000.0, 112.0, 112.0).to(F64)
        official = K_canon @ torch.linalg.inv(K_crop) @ img2bbox
        ours = rectify_camera(K, None, size=224, focal=1000.0).from_original
        shift = torch.eye(3, dtype=F64)
        shift[:2, 2] = 0.5
        assert torch.allclose(official, shift @ ours, atol=1e-9)
        # and a box centred on the principal point gives the same map as boxes=None
        centred = torch.cat([K[:, :2, 2] - 50, K[:, :2, 2] + 50], -1)
        assert torch.allclose(rectify_camera(K, centred).from_original, ours, atol=1e-9)

    def test_valid_mask(self):
        K = random_intrinsics(3)
        boxes = torch.tensor(
            [[10.0, 10.0, 50.0, 50.0], [10.0, 10.0, 10.0, 50.0], [10.0, 60.0, 50.0, 50.0]],
            dtype=F64,
        )
        rect = rectify_camera(K, boxes, focal=None)
        assert rect.valid.tolist() == [True, False, False]
        for field in (rect.intrinsics, rect.from_original, rect.to_original):
            assert torch.isfinite(field).all()
        assert rectify_camera(K, boxes, focal=500.0).valid.all()

    def test_bad_input(self):
        K = random_intrinsics(2)
        boxes = random_boxes(2)
        with pytest.raises(ValueError, match="mode"):
            rectify_camera(K, boxes, mode="homography")
        for size in (0, (224,), (224, 0), True, 22.4):
            with pytest.raises(ValueError, match="size"):
                rectify_camera(K, boxes, size=size)
        for focal in (-1.0, 0.0, "1000"):
            with pytest.raises(ValueError, match="focal"):
                rectify_camera(K, boxes, focal=focal)
        with pytest.raises(ValueError, match="needs boxes"):
            rectify_camera(K, None, focal=None)
        with pytest.raises(ShapeError, match="boxes: expected shape"):
            rectify_camera(K, boxes[:, :3])
        with pytest.raises(ShapeError, match="intrinsics: expected shape"):
            rectify_camera(K[:, :2], boxes)
        with pytest.raises(ShapeError, match="do not broadcast"):
            rectify_camera(random_intrinsics(3), boxes)

    def test_broadcasting(self):
        K = random_intrinsics()  # one camera for every box
        rect = rectify_camera(K, random_boxes(4, 5), mode="perspective")
        assert rect.from_original.shape == (4, 5, 3, 3) and rect.valid.shape == (4, 5)
        assert rectify_camera(random_intrinsics(2, 1), random_boxes(3)).intrinsics.shape == (
            2,
            3,
            3,
            3,
        )

    def test_half(self):
        K = random_intrinsics(2)
        boxes = random_boxes(2)
        rect16 = rectify_camera(K.half(), boxes.half(), mode="perspective")
        assert rect16.from_original.dtype == torch.float16
        ref = rectify_camera(K.half().double(), boxes.half().double(), mode="perspective")
        assert torch.allclose(rect16.intrinsics.double(), ref.intrinsics, rtol=1e-3)

    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize("focal", [900.0, None])
    def test_gradcheck(self, mode, focal):
        K = random_intrinsics(2).requires_grad_(True)
        boxes = random_boxes(2).requires_grad_(True)

        def fn(k, b):
            rect = rectify_camera(k, b, size=32, focal=focal, mode=mode)
            return rect.from_original, rect.to_original, rect.intrinsics

        assert gradcheck(fn, (K, boxes))

    @pytest.mark.parametrize("mode", MODES)
    def test_compile_vmap_meta(self, mode):
        K = random_intrinsics(4)
        boxes = random_boxes(4)
        ref = rectify_camera(K, boxes, mode=mode)
        compiled = torch.compile(rectify_camera, fullgraph=True, backend="eager")
        assert torch.allclose(compiled(K, boxes, mode=mode).from_original, ref.from_original)
        vm = torch.func.vmap(lambda k, b: rectify_camera(k, b, mode=mode).from_original)(K, boxes)
        assert torch.allclose(vm, ref.from_original)
        meta = rectify_camera(
            torch.empty(4, 3, 3, device="meta"), torch.empty(4, 4, device="meta"), mode=mode
        )
        assert meta.from_original.shape == (4, 3, 3) and meta.valid.shape == (4,)

    @PROPERTY
    @given(seed=st.integers(0, 2**31 - 1), focal=st.sampled_from([500.0, 1000.0, None]))
    def test_translation_invariant_affine(self, seed, focal):
        """Affine mode: the rectified 2D points with the canonical K give the same
        translation as the original points with the original K, noise and weights included."""
        K, shape3d, translation, points2d, boxes, weights = random_scene(3, seed)
        g = torch.Generator().manual_seed(seed)
        noisy = points2d + 2.0 * torch.randn(points2d.shape, generator=g, dtype=F64)
        rect = rectify_camera(K, boxes, focal=focal)
        t_orig = solve_translation_reference(noisy, shape3d, weights, K)
        t_rect = solve_translation_reference(
            points2d_to_rectified(noisy, rect), shape3d, weights, rect.intrinsics
        )
        assert torch.allclose(translation_to_original(t_rect, rect), t_orig, atol=1e-9)
        assert torch.allclose(t_rect, t_orig, atol=1e-9)
        clean = solve_translation_reference(points2d, shape3d, weights, K)
        assert torch.allclose(clean, translation, atol=1e-9)

    @PROPERTY
    @given(seed=st.integers(0, 2**31 - 1), focal=st.sampled_from([500.0, 1000.0, None]))
    def test_translation_recovered_perspective(self, seed, focal):
        """Perspective mode: solving in the rotated frame (rotated shape, rectified points,
        canonical K) and rotating back gives the original translation (noise-free: the
        algebraic DLT residual is not rotation invariant, so noisy solves differ slightly)."""
        K, shape3d, translation, points2d, boxes, weights = random_scene(3, seed)
        rect = rectify_camera(K, boxes, focal=focal, mode="perspective")
        ann = annotation_to_rectified(points2d, shape3d + translation[:, None], rect)
        t_rect = solve_translation_reference(
            ann.points2d, points3d_to_rectified(shape3d, rect), weights, ann.intrinsics
        )
        t_orig = solve_translation_reference(points2d, shape3d, weights, K)
        assert torch.allclose(translation_to_original(t_rect, rect), t_orig, atol=1e-9)
        assert torch.allclose(
            t_rect,
            ann.points3d_cam.mean(-2) - points3d_to_rectified(shape3d, rect).mean(-2),
            atol=1e-9,
        )

    @PROPERTY
    @given(
        seed=st.integers(0, 2**31 - 1),
        mode=st.sampled_from(MODES),
        focal=st.sampled_from([300.0, 1000.0, None]),
    )
    def test_round_trips(self, seed, mode, focal):
        K = random_intrinsics(2, seed=seed)
        rect = rectify_camera(
            K, random_boxes(2, seed=seed + 1), size=(100, 80), focal=focal, mode=mode
        )
        g = torch.Generator().manual_seed(seed)
        points2d = torch.rand(2, 9, 2, generator=g, dtype=F64) * torch.tensor(
            [640.0, 480.0], dtype=F64
        )
        back = points2d_to_original(points2d_to_rectified(points2d, rect), rect)
        assert torch.allclose(back, points2d, atol=1e-8)
        rect_points = torch.rand(2, 9, 2, generator=g, dtype=F64) * 100
        again = points2d_to_rectified(points2d_to_original(rect_points, rect), rect)
        assert torch.allclose(again, rect_points, atol=1e-8)
        points3d = torch.randn(2, 9, 3, generator=g, dtype=F64)
        assert torch.allclose(
            points3d_to_original(points3d_to_rectified(points3d, rect), rect), points3d, atol=1e-12
        )


# --------------------------------------------------------------------------- #
class TestRectify:
    @pytest.mark.parametrize("focal", [220.0, 90.0, None])
    def test_dot_lands_where_map_says_affine(self, focal):
        """Image warp and point map agree: a Gaussian dot's centroid after the warp."""
        K = intrinsics_from_params(150.0, 140.0, 80.3, 58.7, 1.5).to(F64)[None]
        dot = torch.tensor([101.3, 40.6], dtype=F64)
        image = gaussian_image(120, 160, dot, sigma=2.5)
        boxes = torch.tensor([[85.0, 25.0, 125.0, 60.0]], dtype=F64)
        rect = rectify(image, K, boxes, size=(48, 64), focal=focal)
        expected = points2d_to_rectified(dot[None, None], rect)[0, 0]
        found = centroid(rect.images[0, 0])
        assert (found - expected).abs().max() < 0.05
        # a half-pixel convention slip (e.g. align_corners) would be caught
        assert (found - expected - 0.5).abs().min() > 0.4

    @pytest.mark.parametrize("focal", [220.0, None])
    def test_dot_lands_where_map_says_perspective(self, focal):
        """A dot drawn so that it is round in the rectified frame lands on its centre."""
        K = intrinsics_from_params(150.0, 140.0, 80.3, 58.7, 1.5).to(F64)[None]
        boxes = torch.tensor([[95.0, 10.0, 135.0, 45.0]], dtype=F64)
        rect = rectify_camera(K, boxes, size=(48, 64), focal=focal, mode="perspective")
        target = torch.tensor([35.2, 20.7], dtype=F64)  # where the dot should land

        def to_rect(uv):
            return points2d_to_rectified(uv[None], rect)[0]

        image = gaussian_image(120, 160, target, sigma=2.0, transform=to_rect)
        out = rectify(image, K, boxes, size=(48, 64), focal=focal, mode="perspective")
        found = centroid(out.images[0, 0])
        assert (found - target).abs().max() < 0.05
        assert (found - target - 0.5).abs().min() > 0.4
        assert torch.allclose(out.from_original, rect.from_original)

    @pytest.mark.parametrize("mode", MODES)
    def test_gradcheck_image(self, mode):
        K = intrinsics_from_params(20.0, 22.0, 3.1, 2.4, 0.5).to(F64)[None]
        boxes = torch.tensor([[0.5, 0.0, 5.5, 4.5]], dtype=F64)
        image = torch.rand(1, 2, 6, 7, dtype=F64, requires_grad=True)

        def fn(img):
            return rectify(img, K, boxes, size=(4, 5), focal=15.0, mode=mode).images

        assert gradcheck(fn, (image,))

    def test_output_and_batch(self, device, dtype):
        K = random_intrinsics(1).to(device, dtype)  # one camera for the batch
        boxes = random_boxes(3).to(device, dtype)
        images = torch.rand(3, 2, 480, 640, device=device, dtype=dtype)
        rect = rectify(images, K, boxes, size=32, focal=300.0, mode="perspective")
        assert rect.images.shape == (3, 2, 32, 32) and rect.images.dtype == dtype
        assert rect.intrinsics.shape == (3, 3, 3) and rect.valid.shape == (3,)
        one = rectify(images[1:2], K, boxes[1:2], size=32, focal=300.0, mode="perspective")
        assert torch.allclose(rect.images[1:2], one.images)

    def test_constant_image_inside(self):
        K = random_intrinsics(1)
        images = torch.ones(1, 1, 480, 640, dtype=F64)
        rect = rectify(
            images, K, torch.tensor([[300.0, 200.0, 340.0, 240.0]], dtype=F64), size=16, focal=400.0
        )
        assert torch.allclose(rect.images, torch.ones_like(rect.images))

    def test_interpolation_and_padding(self):
        K = intrinsics_from_params(50.0, 50.0, 7.5, 7.5).to(F64)[None]
        images = 1.0 + torch.arange(256, dtype=F64).reshape(1, 1, 16, 16)
        # scale 0.6: the 16-pixel image fills 9.6 of the 24 output pixels, the rest is padding
        kwargs = {"size": 24, "focal": 30.0}
        nearest = rectify(images, K, None, interpolation="nearest", **kwargs).images
        assert torch.all(torch.isin(nearest, torch.cat([images.flatten(), images.new_zeros(1)])))
        bilinear = rectify(images, K, None, **kwargs).images
        bicubic = rectify(images, K, None, interpolation="bicubic", **kwargs).images
        assert not torch.allclose(bilinear, nearest) and not torch.allclose(bilinear, bicubic)
        zeros = rectify(images, K, None, padding="zeros", **kwargs).images
        border = rectify(images, K, None, padding="border", **kwargs).images
        reflection = rectify(images, K, None, padding="reflection", **kwargs).images
        assert zeros[0, 0, 0, 0] == 0 and border[0, 0, 0, 0] == images[0, 0, 0, 0]
        assert border[0, 0, -1, -1] == images[0, 0, -1, -1]
        assert torch.allclose(zeros[..., 8:16, 8:16], border[..., 8:16, 8:16])
        assert torch.all(reflection > 0) and not torch.allclose(reflection, border)

    def test_bad_input(self):
        K = random_intrinsics(2)
        boxes = random_boxes(2)
        images = torch.rand(2, 3, 32, 32, dtype=F64)
        with pytest.raises(ValueError, match="interpolation"):
            rectify(images, K, boxes, interpolation="area")
        with pytest.raises(ValueError, match="padding"):
            rectify(images, K, boxes, padding="fill")
        with pytest.raises(ShapeError, match="images: expected shape"):
            rectify(images[0], K, boxes)
        with pytest.raises(ShapeError, match="batch size 2 does not match images batch size 3"):
            rectify(torch.rand(3, 3, 32, 32, dtype=F64), K, boxes)
        with pytest.raises(ShapeError, match="intrinsics: expected shape"):
            rectify(images, K[0], boxes[0])
        with pytest.raises(ShapeError, match="images: expected a floating-point"):
            rectify(images.to(torch.uint8), K, boxes)

    def test_half_image(self):
        K = random_intrinsics(1)
        boxes = random_boxes(1)
        images = torch.rand(1, 3, 480, 640, dtype=F64)
        ref = rectify(images, K, boxes, size=32, focal=500.0).images
        half = rectify(images.half(), K, boxes, size=32, focal=500.0).images
        assert half.dtype == torch.float16
        assert torch.allclose(half.double(), ref, atol=2e-3)

    def test_meta(self):
        for mode in MODES:
            rect = rectify(
                torch.empty(2, 3, 64, 64, device="meta"),
                torch.empty(2, 3, 3, device="meta"),
                torch.empty(2, 4, device="meta"),
                size=32,
                mode=mode,
            )
            assert rect.images.shape == (2, 3, 32, 32) and rect.images.is_meta



def test_module_is_importable_under_its_own_name():
    import importlib

    import dgpgeom
    import dgpgeom.rectification as module

    assert module is importlib.import_module("dgpgeom.rectification")
    assert module.__name__ == "dgpgeom.rectification" and dgpgeom.rectification is module
    assert dgpgeom.rectify is module.rectify and callable(dgpgeom.rectify)

class TestWarpToRectified:
    def test_matches_rectify_and_masks(self):
        K = random_intrinsics(2)
        boxes = random_boxes(2)
        images = torch.rand(2, 3, 480, 640, dtype=F64)
        full = rectify(images, K, boxes, size=40, focal=600.0, mode="perspective")
        rect = rectify_camera(K, boxes, size=40, focal=600.0, mode="perspective")
        assert torch.equal(warp_to_rectified(images, rect), full.images)
        shared = rectify_camera(K[0], boxes[0], size=40, focal=600.0, mode="perspective")
        assert torch.allclose(warp_to_rectified(images[:1], shared), full.images[:1])
        masks = (images[:, :1] > 0.5).to(F64)
        warped = warp_to_rectified(masks, rect, interpolation="nearest")
        assert torch.all((warped == 0) | (warped == 1))

    def test_bad_input(self):
        rect = rectify_camera(random_intrinsics(2), random_boxes(2))
        with pytest.raises(ShapeError, match="rect: expected a Rectification"):
            warp_to_rectified(torch.rand(2, 1, 8, 8, dtype=F64), tuple(rect))
        with pytest.raises(ShapeError, match=r"rect\.from_original"):
            warp_to_rectified(torch.rand(3, 1, 8, 8, dtype=F64), rect)


# --------------------------------------------------------------------------- #
class TestPoints2d:
    def test_broadcasting_and_shapes(self):
        rect = rectify_camera(random_intrinsics(4), random_boxes(4), mode="perspective")
        points = torch.rand(4, 21, 2, dtype=F64) * 400
        assert points2d_to_rectified(points, rect).shape == (4, 21, 2)
        assert points2d_to_original(points, rect).shape == (4, 21, 2)
        assert points2d_to_rectified(torch.rand(3, 1, 21, 2, dtype=F64), rect).shape == (
            3,
            4,
            21,
            2,
        )
        single = points2d_to_rectified(points[2], rect_at(rect, 2))
        assert torch.allclose(points2d_to_rectified(points, rect)[2], single)

    def test_bad_input(self):
        rect = rectify_camera(random_intrinsics(4), random_boxes(4))
        with pytest.raises(ShapeError, match="points2d: expected shape"):
            points2d_to_original(torch.rand(4, 21, 3, dtype=F64), rect)
        with pytest.raises(ShapeError, match="do not broadcast"):
            points2d_to_original(torch.rand(3, 21, 2, dtype=F64), rect)
        with pytest.raises(ShapeError, match="rect: expected a Rectification"):
            points2d_to_rectified(torch.rand(4, 21, 2, dtype=F64), rect.from_original)

    def test_far_off_axis_is_finite(self):
        K = random_intrinsics(1)
        rect = rectify_camera(K, random_boxes(1), mode="perspective")
        # a point whose ray is behind the rectified camera has no image but stays finite
        far = torch.tensor([[[1e7, 0.0]]], dtype=F64, requires_grad=True)
        out = points2d_to_rectified(far, rect)
        out.sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(far.grad).all()

    def test_gradcheck_compile(self):
        K = random_intrinsics(2).requires_grad_(True)
        points = (torch.rand(2, 5, 2, dtype=F64) * 400).requires_grad_(True)

        def fn(p, k):
            rect = rectify_camera(k, None, mode="perspective")
            return points2d_to_original(points2d_to_rectified(p, rect) * 1.1, rect)

        assert gradcheck(fn, (points, K))
        rect = rectify_camera(K.detach(), random_boxes(2), mode="perspective")
        compiled = torch.compile(points2d_to_original, fullgraph=True, backend="eager")
        assert torch.allclose(
            compiled(points.detach(), rect), points2d_to_original(points.detach(), rect)
        )


def rect_at(rect, i):
    return rect._replace(
        intrinsics=rect.intrinsics[i],
        from_original=rect.from_original[i],
        to_original=rect.to_original[i],
        rotation=rect.rotation[i],
        valid=rect.valid[i],
    )


class TestPoints3dAndTranslation:
    def test_rotation_direction(self):
        K = random_intrinsics(3)
        boxes = random_boxes(3)
        rect = rectify_camera(K, boxes, mode="perspective")
        points = torch.randn(3, 7, 3, dtype=F64)
        assert torch.allclose(points3d_to_rectified(points, rect), points @ rect.rotation.mT)
        assert torch.allclose(points3d_to_original(points, rect), points @ rect.rotation)
        t = torch.randn(3, 3, dtype=F64)
        assert torch.allclose(
            translation_to_original(t, rect), points3d_to_original(t[:, None], rect)[:, 0]
        )

    def test_identity_in_affine_mode(self):
        rect = rectify_camera(random_intrinsics(3), random_boxes(3))
        points = torch.randn(3, 7, 3, dtype=F64)
        assert torch.equal(points3d_to_original(points, rect), points)
        assert torch.equal(translation_to_original(points[:, 0], rect), points[:, 0])

    def test_bad_input(self):
        rect = rectify_camera(random_intrinsics(3), random_boxes(3))
        with pytest.raises(ShapeError, match="points3d: expected shape"):
            points3d_to_original(torch.randn(3, 7, 2, dtype=F64), rect)
        with pytest.raises(ShapeError, match="translation: expected shape"):
            translation_to_original(torch.randn(3, 2, dtype=F64), rect)
        with pytest.raises(ShapeError, match="do not broadcast"):
            translation_to_original(torch.randn(2, 3, dtype=F64), rect)

    def test_meta(self):
        rect = rectify_camera(
            torch.empty(2, 3, 3, device="meta"),
            torch.empty(2, 4, device="meta"),
            mode="perspective",
        )
        assert points3d_to_original(torch.empty(2, 5, 3, device="meta"), rect).shape == (2, 5, 3)
        assert translation_to_original(torch.empty(2, 3, device="meta"), rect).shape == (2, 3)


class TestAnnotationToRectified:
    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize("focal", [1000.0, None])
    def test_consistent_projection(self, mode, focal, dtype):
        K, shape3d, translation, points2d, boxes, _ = random_scene(4, seed=3)
        rect = rectify_camera(K.to(dtype), boxes.to(dtype), focal=focal, mode=mode)
        cam = (shape3d + translation[:, None]).to(dtype)
        ann = annotation_to_rectified(points2d.to(dtype), cam, rect)
        assert isinstance(ann, RectifiedAnnotation)
        assert ann.points2d.shape == (4, 21, 2) and ann.points3d_cam.shape == (4, 21, 3)
        assert torch.equal(ann.intrinsics, rect.intrinsics)
        reprojected = project(ann.points3d_cam, ann.intrinsics).points2d
        # float32: ~1e-4 relative on 1000-pixel focal lengths
        assert torch.allclose(reprojected, ann.points2d, atol=1e-8 if dtype == F64 else 2e-3)
        if focal is None:  # the box fills the crop, and the boxes enclose the keypoints
            assert ann.points2d.min() > -0.5 and ann.points2d.max() < 223.5

    def test_bad_input(self):
        rect = rectify_camera(random_intrinsics(2), random_boxes(2))
        with pytest.raises(ShapeError, match="points3d"):
            annotation_to_rectified(
                torch.rand(2, 21, 2, dtype=F64), torch.rand(2, 21, 2, dtype=F64), rect
            )
        with pytest.raises(ShapeError, match="points2d"):
            annotation_to_rectified(
                torch.rand(2, 21, 3, dtype=F64), torch.rand(2, 21, 3, dtype=F64), rect
            )


class TestAnnotationToRectifiedNames:
    def test_errors_name_its_own_arguments(self):
        K = torch.tensor([[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]])
        rect = rectify_camera(K, torch.tensor([469.5, 189.5, 569.5, 289.5]), mode="perspective")
        with pytest.raises(ShapeError, match="points3d_cam") as error:
            annotation_to_rectified(torch.rand(2, 2), torch.rand(2, 2), rect)
        assert "points3d:" not in str(error.value)
