"""Tests for handdgp.data.render (and its backends handdgp.data.gl / .rasterize).

The EGL tests need moderngl and the system EGL/Mesa libraries, which
``scripts/install-system-deps.sh`` installs. They are skipped only where EGL is
genuinely missing on a developer machine; under CI (``CI`` set) a missing EGL
fails them instead.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dgpgeom.validation import ShapeError
from handdgp.data import gl, render
from handdgp.data.rasterize import interpolate_attributes, rasterize_triangles
from handdgp.data.render import (
    Light,
    RenderOutput,
    concat_meshes,
    egl_available,
    intrinsics_to_gl_projection,
    render_mesh,
    vertex_normals,
)

REPO = Path(__file__).resolve().parents[3]


def _require_egl() -> None:
    if egl_available():
        return
    reason = f"EGL unavailable: {gl.unavailable_reason()}"
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI must provide it: scripts/install-system-deps.sh)")
    pytest.skip(reason)


@pytest.fixture(params=["torch", "egl"])
def backend(request) -> str:
    if request.param == "egl":
        _require_egl()
    return request.param


def ellipsoid(rings: int = 12, radii=(0.06, 0.09, 0.03), centre=(0.0, 0.0, 0.5)):
    """A closed UV-ellipsoid: `(rings * 2 * rings, 3)` vertices and its faces."""
    theta = torch.linspace(0.1, math.pi - 0.1, rings, dtype=torch.float64)
    phi = torch.linspace(0, 2 * math.pi, 2 * rings + 1, dtype=torch.float64)[:-1]
    t, p = torch.meshgrid(theta, phi, indexing="ij")
    v = torch.stack([t.sin() * p.cos(), t.sin() * p.sin(), t.cos()], -1).reshape(-1, 3)
    cols = 2 * rings
    faces = []
    for i in range(rings - 1):
        for j in range(cols):
            a, b = i * cols + j, i * cols + (j + 1) % cols
            faces += [[a, b, a + cols], [b, b + cols, a + cols]]
    return v * torch.tensor(radii, dtype=torch.float64) + torch.tensor(centre), torch.tensor(faces)


def quad(z: float = 0.5, half: float = 1.0):
    """Two triangles spanning [-half, half]^2 at depth z, facing the camera."""
    v = torch.tensor(
        [[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]],
        dtype=torch.float64,
    )
    return v, torch.tensor([[0, 1, 2], [0, 2, 3]])


def camera(fx=150.0, fy=160.0, cx=60.3, cy=50.7, skew=0.0, dtype=torch.float64):
    return torch.tensor([[fx, skew, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=dtype)


def project(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    uvw = points @ K.transpose(-1, -2)
    return uvw[..., :2] / uvw[..., 2:]


class TestIntrinsicsToGlProjection:
    def test_pixel_convention(self):
        K = camera(skew=0.7)
        height, width = 96, 128
        points = torch.randn(50, 3, dtype=torch.float64) * 0.1 + torch.tensor([0.0, 0.0, 0.7])
        clip = torch.cat([points, torch.ones(50, 1, dtype=torch.float64)], -1)
        clip = clip @ intrinsics_to_gl_projection(K, (height, width)).T
        ndc = clip[:, :3] / clip[:, 3:]
        window = torch.stack([(ndc[:, 0] + 1) / 2 * width, (ndc[:, 1] + 1) / 2 * height], -1)
        # OpenGL samples pixel i at window coordinate i + 0.5; NDC y grows down the image.
        torch.testing.assert_close(window - 0.5, project(points, K), rtol=0, atol=1e-9)
        torch.testing.assert_close(clip[:, 3], points[:, 2])

    def test_depth_range(self):
        P = intrinsics_to_gl_projection(camera(), (10, 10), znear=0.1, zfar=10.0)
        for z, expected in ((0.1, -1.0), (10.0, 1.0)):
            clip = P @ torch.tensor([0.0, 0.0, z, 1.0], dtype=torch.float64)
            assert clip[2] / clip[3] == pytest.approx(expected)

    def test_batched(self):
        K = camera().expand(2, 5, 3, 3)
        assert intrinsics_to_gl_projection(K, (8, 9)).shape == (2, 5, 4, 4)


class TestRenderMesh:
    def test_smoke(self, backend):
        v, f = ellipsoid()
        out = render_mesh(v.expand(2, -1, -1), f, camera(), (96, 128), backend=backend)
        assert isinstance(out, RenderOutput)
        assert out.rgb.shape == (2, 3, 96, 128) and out.rgb.dtype == torch.float64
        assert out.mask.shape == (2, 96, 128) and out.mask.dtype == torch.bool
        assert out.depth.shape == (2, 96, 128) and out.face_index.dtype == torch.int64
        assert 500 < int(out.mask[0].sum()) < 96 * 128
        assert (out.depth[~out.mask] == 0).all() and (out.face_index[~out.mask] == -1).all()
        assert (out.rgb[:, :, ~out.mask[0]] == 0).all()
        assert (out.depth[out.mask] > 0.4).all() and (out.depth[out.mask] < 0.6).all()
        assert 0 <= out.rgb.min() and out.rgb.max() <= 1

    def test_bad_input(self):
        v, f = ellipsoid()
        K = camera()
        with pytest.raises(ShapeError, match="vertices_cam"):
            render_mesh(v[:, :2], f, K, (8, 8))
        with pytest.raises(ShapeError, match="faces"):
            render_mesh(v, f.double(), K, (8, 8))
        with pytest.raises(ShapeError, match="faces"):
            render_mesh(v, f[:, :2], K, (8, 8))
        with pytest.raises(ValueError, match="faces"):
            render_mesh(v, f + 1, K, (8, 8))
        with pytest.raises(ShapeError, match="intrinsics"):
            render_mesh(v, f, K[:2], (8, 8))
        with pytest.raises(ShapeError, match="vertex_colors"):
            render_mesh(v, f, K, (8, 8), vertex_colors=torch.ones(3, 3))
        with pytest.raises(ShapeError, match="background"):
            render_mesh(v, f, K, (8, 8), background=torch.zeros(3, 8, 9))
        with pytest.raises(ShapeError, match="batch dimensions"):
            render_mesh(v.expand(2, -1, -1), f, K.expand(3, 3, 3), (8, 8))
        with pytest.raises(ValueError, match="image_size"):
            render_mesh(v, f, K, (8, 0))
        with pytest.raises(ValueError, match="image_size"):
            render_mesh(v, f, K, 8)
        with pytest.raises(ValueError, match="backend"):
            render_mesh(v, f, K, (8, 8), backend="vulkan")
        with pytest.raises(TypeError, match="light"):
            render_mesh(v, f, K, (8, 8), light=(0.0, 0.0, 1.0))
        with pytest.raises(ShapeError, match=r"light\.direction"):
            render_mesh(v, f, K, (8, 8), light=Light(direction=(0.0, 1.0)))

    @pytest.mark.parametrize(
        ("v_batch", "k_batch", "expected"),
        [((), (), ()), ((3,), (), (3,)), ((), (4,), (4,)), ((2, 1), (3,), (2, 3))],
    )
    def test_broadcasting(self, v_batch, k_batch, expected):
        v, f = ellipsoid(rings=6)
        K = camera().expand(*k_batch, 3, 3)
        out = render_mesh(v.expand(*v_batch, -1, -1), f, K, (20, 24), backend="torch")
        assert out.rgb.shape == (*expected, 3, 20, 24) and out.mask.shape == (*expected, 20, 24)
        single = render_mesh(v, f, camera(), (20, 24), backend="torch")
        torch.testing.assert_close(out.depth.reshape(-1, 20, 24)[-1], single.depth)

    @staticmethod
    def _triangles(K, size, radius, jitter, count, seed):
        """Random triangles of the given pixel radius around points projecting near
        pixel centres (``jitter`` = 0: exactly on one), slightly tilted in depth."""
        gen = torch.Generator().manual_seed(seed)
        height, width = size
        for _ in range(count):
            r = torch.rand(8, generator=gen, dtype=torch.float64)
            centre = torch.stack(
                [(r[0] * (width - 40)).round() + 20, (r[1] * (height - 40)).round() + 20]
            )
            centre = centre + (r[6:8] - 0.5) * 2 * jitter
            angles = r[3] * 2 * math.pi + torch.tensor([0.0, 2.1, 4.2], dtype=torch.float64)
            px = centre + radius * torch.stack([angles.cos(), angles.sin()], -1)
            depth = (0.4 + r[2]) * (1 + 0.05 * (angles * 1.7).sin() * r[5])
            rays = torch.linalg.solve(K, torch.cat([px, torch.ones(3, 1)], -1).T).T
            yield rays * depth[:, None], centre

    @pytest.mark.parametrize(
        ("size", "K"),
        [((96, 128), camera()), ((75, 61), camera(fx=90.0, fy=70.0, cx=33.2, cy=40.9, skew=3.0))],
    )
    def test_tiny_triangle_lands_on_k_projection(self, backend, size, K):
        """A 0.3 px triangle around a point projecting to within 0.05 px of a pixel
        centre lights exactly that pixel: rendered centroid = K-projection to < 0.1 px.
        A half-pixel offset would light no pixel, a y flip another one."""
        for tri, centre in self._triangles(K, size, radius=0.3, jitter=0.05, count=8, seed=0):
            out = render_mesh(tri, torch.tensor([[0, 1, 2]]), K, size, backend=backend)
            ys, xs = torch.nonzero(out.mask, as_tuple=True)
            assert xs.numel() == 1
            rendered = torch.stack([xs, ys]).double().squeeze(1)
            assert torch.equal(rendered, centre.round())
            assert torch.linalg.norm(rendered - project(tri, K).mean(0)) < 0.1

    def test_centroid_unbiased(self, backend):
        """Over many ~14 px triangles, rendered mask centroids have no systematic offset
        from the K-projected centroids (|mean error| < 0.05 px per axis)."""
        K, size = camera(skew=1.0), (96, 128)
        errors = []
        for tri, _ in self._triangles(K, size, radius=14.0, jitter=0.5, count=24, seed=1):
            out = render_mesh(tri, torch.tensor([[0, 1, 2]]), K, size, backend=backend)
            ys, xs = torch.nonzero(out.mask, as_tuple=True)
            rendered = torch.stack([xs.double().mean(), ys.double().mean()])
            errors.append(rendered - project(tri, K).mean(0))
        errors = torch.stack(errors)
        assert errors.mean(0).abs().max() < 0.05
        assert errors.norm(dim=-1).max() < 0.5

    @pytest.mark.parametrize("tilted", [False, True])
    def test_depth_of_plane(self, backend, tilted):
        """Depth equals the plane's z along each pixel's ray (perspective-correct)."""
        v, f = quad(z=0.8, half=0.5)
        if tilted:  # rotate about the y axis around the quad centre: z varies with x
            c, s = math.cos(0.5), math.sin(0.5)
            R = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)
            v = (v - torch.tensor([0.0, 0.0, 0.8])) @ R.T + torch.tensor([0.0, 0.0, 0.8])
        K = camera()
        out = render_mesh(v, f, K, (96, 128), backend=backend)
        assert out.mask.all()
        normal = torch.linalg.cross(v[1] - v[0], v[2] - v[0])
        ys, xs = torch.meshgrid(torch.arange(96.0), torch.arange(128.0), indexing="ij")
        pix = torch.stack([xs, ys, torch.ones_like(xs)], -1).double()
        rays = torch.linalg.solve(K, pix.reshape(-1, 3).T).T  # z component 1
        expected = (normal @ v[0]) / (rays @ normal)
        tol = 1e-12 if backend == "torch" else 2e-6
        torch.testing.assert_close(out.depth.reshape(-1), expected, rtol=tol, atol=0)

    def test_shading(self, backend):
        """A plane facing the camera under the head light: colour * (ambient + diffuse)."""
        v, f = quad(z=0.8, half=0.1)
        colors = torch.tensor([0.8, 0.5, 0.3], dtype=torch.float64).expand(4, 3)
        bg = torch.rand(3, 64, 64, dtype=torch.float64)
        light = Light(direction=(0.0, 0.0, 2.0), ambient=0.3, diffuse=0.5)
        out = render_mesh(
            v,
            f,
            camera(cx=31.5, cy=31.5),
            (64, 64),
            vertex_colors=colors,
            light=light,
            background=bg,
            backend=backend,
        )
        assert 0 < int(out.mask.sum()) < 64 * 64
        tol = 1e-12 if backend == "torch" else 0.5 / 255 + 1e-6
        expected = colors[0] * 0.8
        torch.testing.assert_close(
            out.rgb[:, out.mask], expected[:, None].expand(3, int(out.mask.sum())), rtol=0, atol=tol
        )
        torch.testing.assert_close(out.rgb[:, ~out.mask], bg[:, ~out.mask])
        # a light along the plane grazes it: ambient only
        side = render_mesh(
            v,
            f,
            camera(cx=31.5, cy=31.5),
            (64, 64),
            vertex_colors=colors,
            light=Light(direction=torch.tensor([[1.0, 0.0, 0.0]]), ambient=0.3, diffuse=0.5),
            backend=backend,
        )
        torch.testing.assert_close(
            side.rgb[0][:, side.mask[0]].mean(1), colors[0] * 0.3, rtol=0, atol=tol
        )

    def test_occluder(self, backend):
        near, near_f = quad(z=0.4, half=0.05)
        far, far_f = quad(z=0.9, half=1.0)
        verts, faces, offsets = concat_meshes([far, near], [far_f, near_f])
        out = render_mesh(verts, faces, camera(cx=31.5, cy=31.5), (64, 64), backend=backend)
        assert out.mask.all()
        occluded = out.face_index >= offsets[1]
        assert 50 < int(occluded.sum()) < 64 * 64 // 2
        torch.testing.assert_close(out.depth[occluded], torch.full_like(out.depth[occluded], 0.4))
        torch.testing.assert_close(out.depth[~occluded], torch.full_like(out.depth[~occluded], 0.9))

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
    def test_dtypes(self, backend, dtype):
        v, f = ellipsoid(rings=6)
        K = camera(cx=15.5, cy=15.5, dtype=dtype)
        out = render_mesh(v.to(dtype), f, K, (32, 32), backend=backend)
        assert out.rgb.dtype == dtype and out.depth.dtype == dtype
        assert out.mask.any()

    def test_empty_and_behind_camera(self, backend):
        v, f = ellipsoid()
        out = render_mesh(
            v * torch.tensor([1.0, 1.0, -1.0]), f, camera(), (32, 32), backend=backend
        )
        assert not out.mask.any() and (out.depth == 0).all()
        none = render_mesh(v.expand(2, -1, -1), f[:0], camera(), (32, 32), backend=backend)
        assert none.mask.shape == (2, 32, 32) and not none.mask.any()
        assert (none.face_index == -1).all()

    def test_large_batch_tiles(self, backend):
        """Many items of one call (several framebuffer tiles/chunks) equal rendering one by one."""
        v, f = ellipsoid(rings=6)
        shifts = torch.linspace(-0.1, 0.1, 37, dtype=torch.float64)
        verts = v + torch.stack([shifts, -shifts, 0.1 * shifts], -1)[:, None]
        out = render_mesh(verts, f, camera(), (40, 48), backend=backend)
        for i in (0, 17, 36):
            one = render_mesh(verts[i], f, camera(), (40, 48), backend=backend)
            assert torch.equal(out.mask[i], one.mask)
            torch.testing.assert_close(out.depth[i], one.depth)


class TestFramebufferCache:
    def test_bounded_and_reused(self):
        _require_egl()
        v, f = ellipsoid(rings=4)
        state = gl._state()
        K = camera(fx=60.0, fy=60.0, cx=10.0, cy=10.0)
        sizes = [(20 + 2 * i, 21 + 2 * i) for i in range(gl._MAX_FRAMEBUFFERS + 4)]
        first = render_mesh(v, f, K, sizes[0], backend="egl")
        for size in sizes:
            render_mesh(v, f, K, size, backend="egl")
            assert len(state.framebuffers) <= gl._MAX_FRAMEBUFFERS
        assert (sizes[0][1], sizes[0][0]) not in state.framebuffers  # evicted ...
        again = render_mesh(v, f, K, sizes[0], backend="egl")  # ... and recreated
        assert torch.equal(first.mask, again.mask) and first.mask.any()
        fbo = state.framebuffers[(sizes[-1][1], sizes[-1][0])]
        render_mesh(v, f, K, sizes[-1], backend="egl")
        assert state.framebuffers[(sizes[-1][1], sizes[-1][0])] is fbo  # a cached one is reused


class TestBackendsAgree:
    def test_egl_matches_torch(self):
        """Masks of the two backends agree up to edge ties: at most 0.2 % of the
        silhouette pixels differ, and only pixels on a mask boundary; depth and colour
        agree wherever both show the same face (10 µm: float32 interpolation in
        OpenGL; colour to 8-bit rounding)."""
        _require_egl()
        gen = torch.Generator().manual_seed(1)
        v, f = ellipsoid(rings=16)
        B = 6
        verts = v + 0.003 * torch.randn(B, *v.shape, generator=gen, dtype=torch.float64)
        verts = verts + torch.randn(B, 1, 3, generator=gen, dtype=torch.float64) * torch.tensor(
            [0.03, 0.03, 0.05]
        )
        occluder, occ_f = ellipsoid(rings=8, radii=(0.02, 0.02, 0.02), centre=(0.01, 0.0, 0.44))
        verts, faces, _ = concat_meshes([verts, occluder.expand(B, -1, -1)], [f, occ_f])
        K = camera(skew=0.5)
        colors = torch.rand(verts.shape[-2], 3, generator=gen, dtype=torch.float64)
        a = render_mesh(verts, faces, K, (96, 128), vertex_colors=colors, backend="egl")
        b = render_mesh(verts, faces, K, (96, 128), vertex_colors=colors, backend="torch")
        differ = a.mask != b.mask
        assert int(differ.sum()) <= 0.002 * int(b.mask.sum())
        boundary = _boundary(a.mask) | _boundary(b.mask)
        assert not (differ & ~boundary).any()
        same = a.mask & b.mask & (a.face_index == b.face_index)
        assert same.sum() > 0.99 * (a.mask & b.mask).sum()
        torch.testing.assert_close(a.depth[same], b.depth[same], rtol=0, atol=1e-5)
        rgb_a, rgb_b = a.rgb.permute(0, 2, 3, 1)[same], b.rgb.permute(0, 2, 3, 1)[same]
        torch.testing.assert_close(rgb_a, rgb_b, rtol=0, atol=1 / 255)


def _boundary(mask: torch.Tensor) -> torch.Tensor:
    """Pixels whose 4-neighbourhood is not uniform."""
    m = mask.float().unsqueeze(1)
    up = torch.nn.functional.max_pool2d(m, 3, 1, 1)
    down = -torch.nn.functional.max_pool2d(-m, 3, 1, 1)
    return (up != down).squeeze(1)


class TestContexts:
    def test_no_context_at_import(self):
        code = (
            "import sys\n"
            "import handdgp.data, handdgp.data.render, handdgp.data.gl as gl\n"
            "assert not gl._STATES, gl._STATES\n"
            "assert 'moderngl' not in sys.modules\n"
            "print('ok')\n"
        )
        env = {**os.environ, "PYTHONPATH": f"{REPO / 'reference_model'}{os.pathsep}{REPO}"}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "ok"

    def test_forked_child_renders(self):
        _require_egl()
        v, f = ellipsoid(rings=6)
        parent = render_mesh(v, f, camera(), (32, 40), backend="egl")  # parent has a context
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_child_render, args=(queue, v, f))
        child.start()
        child.join(timeout=60)
        if child.is_alive():
            child.kill()
            pytest.fail("forked child hung while rendering")
        assert child.exitcode == 0
        pid, mask = queue.get(timeout=5)
        assert pid != os.getpid()
        assert torch.equal(torch.from_numpy(mask), parent.mask)

    def test_refuses_fork_after_threaded_llvmpipe(self, monkeypatch):
        class Fake:
            threaded_llvmpipe = True

        monkeypatch.setattr(gl, "_STATES", {(os.getpid() + 1, 0): Fake()})
        with pytest.raises(RuntimeError, match="LP_NUM_THREADS"):
            gl._create_state()

    def test_auto_falls_back_to_torch(self, monkeypatch):
        monkeypatch.setattr(gl, "unavailable_reason", lambda: "no EGL here")
        monkeypatch.setattr(render, "_warned_fallback", False)
        v, f = ellipsoid(rings=6)
        with pytest.warns(RuntimeWarning, match="no EGL here"):
            out = render_mesh(v, f, camera(cx=7.5, cy=7.5), (16, 16))
        assert out.mask.any()
        with pytest.raises(RuntimeError, match="no EGL here"):
            render_mesh(v, f, camera(), (16, 16), backend="egl")


def _child_render(queue, v, f):
    out = render_mesh(v, f, camera(), (32, 40), backend="egl")
    queue.put((os.getpid(), out.mask.numpy()))


class TestRasterizeTriangles:
    def test_interpolates_perspective_correct(self):
        """Attributes linear in 3D (here x) are reproduced exactly at every pixel."""
        v, f = quad(z=0.8, half=0.5)
        v = v + torch.tensor([0.0, 0.0, 0.3]) * v[:, :1]  # tilted in depth
        K = camera()
        frags = rasterize_triangles(project(v, K)[None], v[None, :, 2], f, (96, 128))
        x = interpolate_attributes(frags, f, v[None, :, :1])[0, ..., 0]
        _, xs = torch.meshgrid(torch.arange(96.0), torch.arange(128.0), indexing="ij")
        ray_x = (xs.double() - K[0, 2]) / K[0, 0]
        torch.testing.assert_close(x[frags.mask[0]], (ray_x * frags.depth[0])[frags.mask[0]])

    def test_nearest_wins(self):
        points2d = torch.tensor([[[0.0, 0.0], [9.0, 0.0], [0.0, 9.0]] * 2], dtype=torch.float64)
        depth = torch.tensor([[2.0, 2.0, 2.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
        frags = rasterize_triangles(points2d, depth, torch.tensor([[0, 1, 2], [3, 4, 5]]), (4, 4))
        assert frags.mask.sum() == 16 and (frags.face_index[frags.mask] == 1).all()
        torch.testing.assert_close(frags.depth[frags.mask], torch.ones(16, dtype=torch.float64))


class TestVertexNormals:
    def test_sphere_normals_point_outwards(self):
        v, f = ellipsoid(radii=(1.0, 1.0, 1.0), centre=(0.0, 0.0, 0.0))
        n = vertex_normals(v, f)
        assert (torch.linalg.norm(n, dim=-1) - 1).abs().max() < 1e-12
        cosine = (n * v / torch.linalg.norm(v, dim=-1, keepdim=True)).sum(-1).abs()
        assert cosine.min() > 0.97

    def test_batched(self):
        v, f = ellipsoid(rings=5)
        vb = torch.stack([v, 2 * v])
        torch.testing.assert_close(vertex_normals(vb, f)[1], vertex_normals(v, f))


class TestConcatMeshes:
    def test_offsets(self):
        a, fa = quad()
        b, fb = ellipsoid(rings=4)
        v, f, offsets = concat_meshes([a, b], [fa, fb])
        assert v.shape == (4 + b.shape[0], 3)
        assert offsets.tolist() == [0, 2, 2 + fb.shape[0]]
        assert torch.equal(f[2:], fb + 4)

    def test_bad_input(self):
        with pytest.raises(ValueError, match="concat_meshes"):
            concat_meshes([torch.zeros(3, 3)], [])
