"""A small pure-torch triangle rasterizer.

It is the dependency-free fallback of :func:`handdgp.data.render.render_mesh`
and the oracle its OpenGL path is tested against. Coverage is sampled at pixel
centres, which sit on integer coordinates: pixel ``(x, y)`` is covered when the
point ``(x, y)`` lies inside the projected triangle (edges included). The
nearest fragment wins (ties go to the lower face index).

Work is proportional to the summed area of the triangles' bounding boxes:
faces are grouped by the power-of-two size of their box, and each group tests
only the pixels inside its boxes. This is a data-generation tool, not a
differentiable renderer: it host-synchronises, and its outputs carry no
gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["Fragments", "interpolate_attributes", "rasterize_triangles"]

_EMPTY = torch.iinfo(torch.int64).max
_LOW32 = 0xFFFFFFFF
# Pixel-face candidates evaluated at once; bounds the memory of one step.
_CHUNK = 1 << 21


class Fragments(NamedTuple):
    """The visible surface at every pixel centre.

    Attributes:
        face_index: `(B, H, W)` int64 index of the visible face, -1 where empty.
        barycentrics: `(B, H, W, 3)` perspective-correct barycentric weights of
            the visible face's three vertices (0 where empty).
        depth: `(B, H, W)` camera-space z in metres, 0 where empty.
        mask: `(B, H, W)` bool, True where a face is visible.
    """

    face_index: Tensor
    barycentrics: Tensor
    depth: Tensor
    mask: Tensor


def _edge(a: Tensor, b: Tensor, p: Tensor) -> Tensor:
    """Twice the signed area of the triangle (a, b, p); `(..., 2)` inputs."""
    return (b[..., 0] - a[..., 0]) * (p[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (
        p[..., 0] - a[..., 0]
    )


def _barycentrics(tri: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
    """Screen-space barycentrics of points ``p`` `(..., 2)` in triangles `(..., 3, 2)`."""
    v0, v1, v2 = tri.unbind(-2)
    area = _edge(v0, v1, v2)
    safe = torch.where(area == 0, torch.ones_like(area), area)
    lam = torch.stack([_edge(v1, v2, p), _edge(v2, v0, p), _edge(v0, v1, p)], -1)
    return lam / safe.unsqueeze(-1), area


def rasterize_triangles(
    points2d: Tensor,
    depth: Tensor,
    faces: Tensor,
    image_size: tuple[int, int],
    *,
    znear: float = 0.01,
    zfar: float = 100.0,
) -> Fragments:
    """Rasterize projected triangles with a z-buffer, sampling at pixel centres.

    Faces with a vertex at ``z <= znear`` are dropped whole (OpenGL would clip
    them at the near plane instead); fragments farther than ``zfar`` are
    discarded. Depth and barycentrics are interpolated perspective-correctly.

    Args:
        points2d: `(B, V, 2)` projected vertices, pixels, pixel centres on
            integer coordinates.
        depth: `(B, V)` camera-space z of the vertices, metres.
        faces: `(F, 3)` integer vertex indices.
        image_size: ``(H, W)`` in pixels.
        znear: near plane, metres.
        zfar: far plane, metres.

    Returns:
        The :class:`Fragments` of the visible surface.

    Example:
        >>> points2d = torch.tensor([[[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]]])
        >>> frag = rasterize_triangles(points2d, torch.ones(1, 3), torch.tensor([[0, 1, 2]]), (3, 5))
        >>> frag.mask[0].int()
        tensor([[1, 1, 1, 1, 1],
                [1, 1, 1, 1, 0],
                [1, 1, 1, 0, 0]], dtype=torch.int32)
    """
    height, width = image_size
    batch, _ = depth.shape
    n_faces = faces.shape[0]
    device, dtype = points2d.device, points2d.dtype
    faces = faces.long()
    if n_faces == 0:
        shape = (batch, height, width)
        return Fragments(
            face_index=torch.full(shape, -1, dtype=torch.int64, device=device),
            barycentrics=points2d.new_zeros(*shape, 3),
            depth=points2d.new_zeros(shape),
            mask=torch.zeros(shape, dtype=torch.bool, device=device),
        )

    tri = points2d[:, faces]  # (B, F, 3, 2)
    tri_z = depth[:, faces]  # (B, F, 3)
    lo = tri.amin(2).ceil()
    hi = torch.minimum(tri.amax(2).floor(), tri.new_tensor([width - 1, height - 1]))
    lo = lo.clamp(min=0)
    extent = (hi - lo + 1).amax(-1)
    _, area = _barycentrics(tri, tri[..., 0, :])
    usable = (
        (tri_z > znear).all(-1)
        & torch.isfinite(tri).all(-1).all(-1)
        & (hi >= lo).all(-1)
        & (area != 0)
    )

    keys = torch.full((batch * height * width,), _EMPTY, dtype=torch.int64, device=device)
    size = 1
    while True:
        in_bucket = usable & (extent <= size) & (extent > size // 2)
        b_idx, f_idx = in_bucket.nonzero(as_tuple=True)
        offsets = torch.stack(
            torch.meshgrid(
                torch.arange(size, device=device, dtype=dtype),
                torch.arange(size, device=device, dtype=dtype),
                indexing="xy",
            ),
            -1,
        ).reshape(-1, 2)
        step = max(1, _CHUNK // (size * size))
        for start in range(0, b_idx.numel(), step):
            b, f = b_idx[start : start + step], f_idx[start : start + step]
            pix = lo[b, f].unsqueeze(1) + offsets  # (n, S*S, 2)
            lam, _ = _barycentrics(tri[b, f].unsqueeze(1), pix)
            inv_z = (lam / tri_z[b, f].unsqueeze(1)).sum(-1)
            z = 1.0 / inv_z
            keep = (
                (pix <= hi[b, f].unsqueeze(1)).all(-1)
                & (lam >= 0).all(-1)
                & (z >= znear)
                & (z <= zfar)
            )
            z32 = z.float().clamp(min=0).view(torch.int32).long()
            key = (z32 << 32) | f.unsqueeze(1)
            flat = (b.unsqueeze(1) * height + pix[..., 1].long()) * width + pix[..., 0].long()
            keys.scatter_reduce_(0, flat[keep], key[keep], reduce="amin")
        if size >= max(height, width):
            break
        size *= 2

    mask = keys != _EMPTY
    face = torch.where(mask, keys & _LOW32, torch.zeros_like(keys))
    item = torch.arange(batch, device=device).repeat_interleave(height * width)
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype),
        torch.arange(width, device=device, dtype=dtype),
        indexing="ij",
    )
    pixels = torch.stack([xs, ys], -1).reshape(1, -1, 2).expand(batch, -1, -1).reshape(-1, 2)
    flat_face = item * n_faces + face
    lam, _ = _barycentrics(tri.reshape(-1, 3, 2)[flat_face], pixels)
    weighted = lam / tri_z.reshape(-1, 3)[flat_face]
    inv_z = weighted.sum(-1, keepdim=True)
    inv_z = torch.where(mask.unsqueeze(-1), inv_z, torch.ones_like(inv_z))
    bary = torch.where(mask.unsqueeze(-1), weighted / inv_z, torch.zeros_like(weighted))
    z = torch.where(mask, 1.0 / inv_z.squeeze(-1), torch.zeros_like(inv_z.squeeze(-1)))
    return Fragments(
        face_index=torch.where(mask, face, torch.full_like(face, -1)).view(batch, height, width),
        barycentrics=bary.view(batch, height, width, 3),
        depth=z.view(batch, height, width),
        mask=mask.view(batch, height, width),
    )


def interpolate_attributes(fragments: Fragments, faces: Tensor, attributes: Tensor) -> Tensor:
    """Interpolate per-vertex attributes at every pixel of ``fragments``.

    Args:
        fragments: output of :func:`rasterize_triangles`.
        faces: `(F, 3)` the faces that were rasterized.
        attributes: `(B, V, C)` per-vertex values.

    Returns:
        `(B, H, W, C)` interpolated values, 0 where no face is visible.

    Example:
        >>> points2d = torch.tensor([[[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]]])
        >>> faces = torch.tensor([[0, 1, 2]])
        >>> frag = rasterize_triangles(points2d, torch.ones(1, 3), faces, (1, 3))
        >>> interpolate_attributes(frag, faces, torch.tensor([[[0.0], [4.0], [0.0]]]))[0, 0, :, 0]
        tensor([0., 1., 2.])
    """
    batch, height, width = fragments.face_index.shape
    if faces.shape[0] == 0:
        return attributes.new_zeros(batch, height, width, attributes.shape[-1])
    n_vertices = attributes.shape[1]
    face = fragments.face_index.clamp(min=0).reshape(batch, -1)  # (B, HW)
    item = torch.arange(batch, device=face.device).view(batch, 1, 1)
    vert = faces.long()[face] + item * n_vertices  # (B, HW, 3)
    values = attributes.reshape(batch * n_vertices, -1)[vert]  # (B, HW, 3, C)
    out = (fragments.barycentrics.reshape(batch, -1, 3, 1) * values).sum(2)
    return out.reshape(batch, height, width, -1)
