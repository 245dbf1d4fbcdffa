"""Render RGB, mask, depth and face ids of camera-space meshes for any pinhole camera.

The projection follows the project's conventions exactly: OpenCV camera axes
(x right, y down, z forward), pixel centres on integer coordinates, so a vertex
at camera point ``p`` lands at pixel ``K p / z`` and a pixel is covered when its
centre lies inside a projected triangle.

Two backends give the same images: ``"egl"`` rasterizes with OpenGL through
moderngl on a headless EGL context (Mesa's llvmpipe on a CPU-only machine),
``"torch"`` with the small pure-torch rasterizer of
:mod:`handdgp.data.rasterize`. ``"auto"`` takes EGL when a context can be made
and falls back to torch (with a warning) otherwise. Coverage of the two differs
only at pixel centres on or within OpenGL's sub-pixel snapping (1/256 px with
llvmpipe) of a triangle edge (OpenGL's top-left rule versus "edges included"):
the tests allow 0.2 % of the silhouette's pixels to differ, all on its boundary
(0.004 % measured on ellipsoids with an occluder at 128 and 224 px).

The EGL backend stores colour with 8 bits per channel (depth and face ids in
float32); the torch backend keeps full precision.

Shading is two-sided Lambertian with an ambient term, evaluated per vertex
(Gouraud) and interpolated perspective-correctly. Occluders (an object in the
hand, a second hand) are rendered by concatenating their meshes with the hand's
(:func:`concat_meshes`); ``face_index`` then tells which mesh is visible where.

This is a data-generation tool, not a differentiable renderer: outputs carry no
gradient and the call synchronises with the host.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from dgpgeom.validation import ShapeChecker, ShapeError, broadcast_batch_shapes, compute_dtype

from . import gl
from .rasterize import interpolate_attributes, rasterize_triangles

__all__ = [
    "Light",
    "RenderOutput",
    "concat_meshes",
    "egl_available",
    "intrinsics_to_gl_projection",
    "render_mesh",
    "vertex_normals",
]

_DEFAULT_COLOR = (0.75, 0.75, 0.75)
_BACKENDS = ("auto", "egl", "torch")
_TORCH_PIXELS = 1 << 20
_warned_fallback = False


class Light(NamedTuple):
    """A directional light plus ambient term, in the camera frame.

    Each field may be a Python number/sequence or a tensor that broadcasts
    against the batch (e.g. `(B, 3)` directions, `(B,)` intensities).

    Attributes:
        direction: `(..., 3)` direction the light travels (need not be unit);
            the default ``(0, 0, 1)`` shines from the camera into the scene.
        ambient: `(...)` ambient intensity.
        diffuse: `(...)` diffuse intensity; the shade of a vertex with normal
            ``n`` and colour ``c`` is ``c * (ambient + diffuse * |n . d|)``,
            clamped to [0, 1] (two-sided, so face winding does not matter).
    """

    direction: Sequence[float] | Tensor = (0.0, 0.0, 1.0)
    ambient: float | Tensor = 0.4
    diffuse: float | Tensor = 0.6


class RenderOutput(NamedTuple):
    """Images rendered by :func:`render_mesh`.

    Attributes:
        rgb: `(..., 3, H, W)` colour in [0, 1], composited over the background.
        mask: `(..., H, W)` bool, True where a face is visible.
        depth: `(..., H, W)` camera-space z of the visible surface, metres, 0 where empty.
        face_index: `(..., H, W)` int64 index of the visible face, -1 where empty.
    """

    rgb: Tensor
    mask: Tensor
    depth: Tensor
    face_index: Tensor


def egl_available() -> bool:
    """Whether the ``"egl"`` backend works in this process.

    Creates (and caches) this process's EGL context on first call; nothing is
    created at import time.

    Example:
        >>> isinstance(egl_available(), bool)
        True
    """
    return gl.available()


def intrinsics_to_gl_projection(
    intrinsics: Tensor, image_size: tuple[int, int], znear: float = 0.01, zfar: float = 100.0
) -> Tensor:
    """OpenGL projection matrix that reproduces the pinhole ``K`` on an ``H x W`` image.

    It maps an OpenCV camera point ``(x, y, z, 1)`` to clip coordinates with
    ``w = z`` such that the window position of pixel ``(u, v) = K p / z`` is
    ``(u + 0.5, v + 0.5)``: the pixel whose centre OpenGL samples at that
    window position is pixel ``(u, v)`` of our convention. NDC y grows *down*
    the image, so the framebuffer's first row (OpenGL's bottom row) is image
    row 0 and no flip is needed on read-back. Depth maps ``[znear, zfar]`` to
    ``[-1, 1]``.

    Args:
        intrinsics: `(..., 3, 3)` pinhole intrinsics, pixels.
        image_size: ``(H, W)`` pixels.
        znear: near clipping plane, metres.
        zfar: far clipping plane, metres.

    Returns:
        `(..., 4, 4)` projection matrix, column-vector convention.

    Example:
        >>> K = torch.tensor([[100.0, 0.0, 31.5], [0.0, 100.0, 31.5], [0.0, 0.0, 1.0]])
        >>> P = intrinsics_to_gl_projection(K, (64, 64))
        >>> clip = P @ torch.tensor([0.0, 0.0, 1.0, 1.0])
        >>> (clip[:2] / clip[3]).tolist()  # the principal point is the image centre
        [0.0, 0.0]
    """
    height, width = image_size
    fx, skew, cx = intrinsics[..., 0, 0], intrinsics[..., 0, 1], intrinsics[..., 0, 2]
    fy, cy = intrinsics[..., 1, 1], intrinsics[..., 1, 2]
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    a = (zfar + znear) / (zfar - znear) * one
    b = -2.0 * zfar * znear / (zfar - znear) * one
    rows = [
        [2 * fx / width, 2 * skew / width, 2 * (cx + 0.5) / width - 1, zero],
        [zero, 2 * fy / height, 2 * (cy + 0.5) / height - 1, zero],
        [zero, zero, a, b],
        [zero, zero, one, zero],
    ]
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted unit vertex normals (zero for vertices of no or degenerate faces).

    Args:
        vertices: `(..., V, 3)` positions.
        faces: `(F, 3)` integer vertex indices.

    Returns:
        `(..., V, 3)` normals, oriented by the faces' winding.

    Example:
        >>> v = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> vertex_normals(v, torch.tensor([[0, 1, 2]]))[0]
        tensor([0., 0., 1.])
    """
    faces = faces.long()
    tri = vertices[..., faces, :]  # (..., F, 3, 3)
    normal = torch.linalg.cross(tri[..., 1, :] - tri[..., 0, :], tri[..., 2, :] - tri[..., 0, :])
    acc = torch.zeros_like(vertices).index_add(
        -2, faces.T.reshape(-1), normal.repeat(*[1] * (normal.ndim - 2), 3, 1)
    )
    return torch.nn.functional.normalize(acc, dim=-1, eps=1e-12)


def concat_meshes(
    vertices: Sequence[Tensor], faces: Sequence[Tensor]
) -> tuple[Tensor, Tensor, Tensor]:
    """Join meshes into one, e.g. a hand and its occluders, for :func:`render_mesh`.

    Args:
        vertices: the meshes' `(..., V_i, 3)` vertices (same batch shape).
        faces: the meshes' `(F_i, 3)` integer faces.

    Returns:
        ``(vertices, faces, face_offsets)``: `(..., ΣV_i, 3)`, `(ΣF_i, 3)`, and
        `(M + 1,)` int64 first face index of each mesh (then ΣF_i), so that
        ``face_offsets[i] <= face_index < face_offsets[i + 1]`` marks mesh ``i``
        in a :class:`RenderOutput`.

    Example:
        >>> tri = torch.tensor([[0, 1, 2]])
        >>> v, f, offsets = concat_meshes([torch.zeros(3, 3), torch.ones(3, 3)], [tri, tri])
        >>> f.tolist(), offsets.tolist()
        ([[0, 1, 2], [3, 4, 5]], [0, 1, 2])
    """
    if len(vertices) != len(faces) or not vertices:
        raise ValueError(
            f"concat_meshes: expected as many faces as vertices tensors (at least one), "
            f"got {len(vertices)} and {len(faces)}"
        )
    sizes = torch.tensor([0] + [int(v.shape[-2]) for v in vertices[:-1]])
    starts = sizes.cumsum(0)
    joined = torch.cat([f.long() + int(s) for f, s in zip(faces, starts, strict=True)], 0)
    offsets = torch.tensor([0] + [int(f.shape[0]) for f in faces]).cumsum(0)
    return torch.cat(list(vertices), -2), joined, offsets


def _shade(
    vertices: Tensor,
    faces: Tensor,
    colors: Tensor,
    direction: Tensor,
    ambient: Tensor,
    diffuse: Tensor,
) -> Tensor:
    """Two-sided Lambertian vertex colours; `(B, V, 3)` inputs, `(B, 3)` / `(B,)` light."""
    normals = vertex_normals(vertices, faces)
    direction = torch.nn.functional.normalize(direction, dim=-1, eps=1e-12)
    lambert = (normals * direction.unsqueeze(-2)).sum(-1).abs()
    shade = ambient.unsqueeze(-1) + diffuse.unsqueeze(-1) * lambert
    return (colors * shade.unsqueeze(-1)).clamp(0.0, 1.0)


def _resolve_backend(backend: str) -> str:
    global _warned_fallback
    if backend not in _BACKENDS:
        raise ValueError(f"backend: expected one of {_BACKENDS}, got {backend!r}")
    if backend == "auto":
        reason = gl.unavailable_reason()
        if reason is None:
            return "egl"
        if not _warned_fallback:
            warnings.warn(
                f"render_mesh: EGL unavailable ({reason}); using the slower torch rasterizer. "
                "Install moderngl and the system packages libegl1, libgl1, libgl1-mesa-dri.",
                RuntimeWarning,
                stacklevel=3,
            )
            _warned_fallback = True
        return "torch"
    if backend == "egl":
        reason = gl.unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"render_mesh: backend='egl' unavailable: {reason}")
    return backend


def _render_torch(
    verts: Tensor,
    K: Tensor,
    faces: Tensor,
    shaded: Tensor,
    image_size: tuple[int, int],
    znear: float,
    zfar: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The torch backend on `(B, ...)` inputs, in chunks of about a million pixels."""
    height, width = image_size
    step = max(1, _TORCH_PIXELS // (height * width))
    parts = []
    for start in range(0, verts.shape[0], step):
        v, k = verts[start : start + step], K[start : start + step]
        z = v[..., 2]
        safe_z = torch.where(z == 0, torch.ones_like(z), z)
        points2d = (v @ k.transpose(-1, -2))[..., :2] / safe_z.unsqueeze(-1)
        frags = rasterize_triangles(points2d, z, faces, image_size, znear=znear, zfar=zfar)
        color = interpolate_attributes(frags, faces, shaded[start : start + step])
        parts.append((color, frags.depth, frags.mask, frags.face_index))
    return tuple(torch.cat(p, 0) for p in zip(*parts, strict=True))  # type: ignore[return-value]


def render_mesh(
    vertices_cam: Tensor,
    faces: Tensor,
    intrinsics: Tensor,
    image_size: tuple[int, int],
    *,
    vertex_colors: Tensor | None = None,
    light: Light | None = None,
    background: Tensor | None = None,
    backend: str = "auto",
    znear: float = 0.01,
    zfar: float = 100.0,
) -> RenderOutput:
    """Render shaded RGB, mask, depth and face ids of camera-space meshes.

    To render occluders with the hand, join the meshes with
    :func:`concat_meshes` (and their colours with ``torch.cat``): one z-buffer
    resolves who hides whom, and ``face_index`` says which mesh each pixel
    shows. All items of a batch share ``faces``.

    Faces with a vertex in front of ``znear`` are clipped by OpenGL but dropped
    whole by the torch backend; keep geometry beyond ``znear``.

    Args:
        vertices_cam: `(..., V, 3)` vertices in the OpenCV camera frame, metres.
        faces: `(F, 3)` integer vertex indices.
        intrinsics: `(..., 3, 3)` pinhole intrinsics of each image, pixels
            (pixel centres on integer coordinates; see the Conventions page).
        image_size: ``(H, W)`` pixels.
        vertex_colors: `(V, 3)` or `(..., V, 3)` albedo in [0, 1]; default light grey.
        light: the :class:`Light` (default ``Light()``); its fields may be batched tensors.
        background: `(..., 3, H, W)` image in [0, 1] to composite over; default black.
        backend: ``"auto"``, ``"egl"`` or ``"torch"``.
        znear: near clipping plane, metres.
        zfar: far clipping plane, metres.

    Returns:
        :class:`RenderOutput` with batch shape the broadcast of the inputs'
        batch shapes, floats in the inputs' dtype (float16/bfloat16 inputs are
        rendered in float32 and cast back), on the inputs' device.

    Raises:
        ShapeError: on a wrongly shaped or typed argument.
        ValueError: on a bad ``image_size``, ``backend`` or face index.
        RuntimeError: if ``backend="egl"`` and no EGL context can be made.

    Example:
        >>> vertices = torch.tensor([[-0.1, -0.1, 1.0], [0.1, -0.1, 1.0], [0.0, 0.1, 1.0]])
        >>> K = torch.tensor([[100.0, 0.0, 16.0], [0.0, 100.0, 16.0], [0.0, 0.0, 1.0]])
        >>> out = render_mesh(vertices, torch.tensor([[0, 1, 2]]), K, (32, 32), backend="torch")
        >>> out.rgb.shape, out.mask.shape, int(out.mask.sum())
        (torch.Size([3, 32, 32]), torch.Size([32, 32]), 221)
        >>> out.depth[16, 16].item(), out.face_index[16, 16].item(), out.face_index[0, 0].item()
        (1.0, 0, -1)
    """
    if (
        not isinstance(image_size, Sequence)
        or len(image_size) != 2
        or not all(isinstance(s, int) and s > 0 for s in image_size)
    ):
        raise ValueError(f"image_size: expected (H, W) positive ints, got {image_size!r}")
    height, width = image_size
    check = ShapeChecker()
    shapes = {
        "vertices_cam": check(vertices_cam, "vertices_cam", "... V 3"),
        "intrinsics": check(intrinsics, "intrinsics", "... 3 3"),
    }
    check(faces, "faces", "F 3", floating=False)
    if faces.is_floating_point() or faces.is_complex() or faces.dtype == torch.bool:
        raise ShapeError(f"faces: expected an integer dtype, got {faces.dtype}")
    if vertex_colors is not None:
        shapes["vertex_colors"] = check(vertex_colors, "vertex_colors", "... V 3")
    if background is not None:
        shapes["background"] = check(background, "background", f"... 3 {height} {width}")
    light = Light() if light is None else light
    if not isinstance(light, Light):
        raise TypeError(f"light: expected a Light, got {type(light).__name__}")
    floats = [vertices_cam, intrinsics] + [t for t in (vertex_colors, background) if t is not None]
    compute, out_dtype = compute_dtype(*floats)
    device = vertices_cam.device
    direction, ambient, diffuse = (torch.as_tensor(x, dtype=compute, device=device) for x in light)
    if direction.ndim == 0 or direction.shape[-1] != 3:
        raise ShapeError(f"light.direction: expected shape (..., 3), got {tuple(direction.shape)}")
    shapes["light.direction"] = tuple(direction.shape[:-1])
    shapes["light.ambient"] = tuple(ambient.shape)
    shapes["light.diffuse"] = tuple(diffuse.shape)
    batch_shape = broadcast_batch_shapes(**shapes)
    backend = _resolve_backend(backend)
    n_vertices = vertices_cam.shape[-2]
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= n_vertices):
        raise ValueError(f"faces: indices must lie in [0, {n_vertices}), got values outside")

    def flat(t: Tensor, *core: int) -> Tensor:
        return t.to(compute).expand(torch.Size([*batch_shape, *core])).reshape(-1, *core)

    with torch.no_grad():
        verts = flat(vertices_cam, n_vertices, 3)
        K = flat(intrinsics, 3, 3)
        if vertex_colors is None:
            vertex_colors = verts.new_tensor(_DEFAULT_COLOR)
        colors = flat(vertex_colors, n_vertices, 3)
        shaded = _shade(verts, faces, colors, flat(direction, 3), flat(ambient), flat(diffuse))
        if backend == "egl" and faces.numel():
            projection = intrinsics_to_gl_projection(K, image_size, znear, zfar)
            clip = torch.cat([verts, torch.ones_like(verts[..., :1])], -1)
            clip = clip @ projection.transpose(-1, -2)
            color8, depth, face_index = gl.draw(clip, shaded, faces, image_size)
            rgb = color8[..., :3].permute(0, 3, 1, 2).to(device)
            rgb = rgb.to(compute, memory_format=torch.contiguous_format).div_(255.0)
            depth, face_index = depth.to(device, compute), face_index.to(device)
            mask = face_index >= 0
        else:
            color, depth, mask, face_index = _render_torch(
                verts, K, faces, shaded, image_size, znear, zfar
            )
            rgb = color.permute(0, 3, 1, 2)
        if background is not None:
            rgb = torch.where(mask.unsqueeze(1), rgb, flat(background, 3, height, width))
        return RenderOutput(
            rgb=rgb.reshape(*batch_shape, 3, height, width).to(out_dtype),
            mask=mask.reshape(*batch_shape, height, width),
            depth=depth.reshape(*batch_shape, height, width).to(out_dtype),
            face_index=face_index.reshape(*batch_shape, height, width),
        )
