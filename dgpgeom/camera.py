"""Pinhole intrinsics: build, invert, project, unproject, crop and resize.

Every function here follows one convention (see the Conventions page,
https://dgpgeom.readthedocs.io/en/latest/conventions/):

- OpenCV camera axes: x right, y down, z forward; column vectors.
- Pixel centres lie on integer coordinates, in (x, y) order: pixel ``(0, 0)``
  covers ``[-0.5, 0.5]²`` and a ``W × H`` image spans ``[-0.5, W - 0.5] ×
  [-0.5, H - 0.5]``.
- Intrinsics are ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``; only these five
  entries are read. They are never inverted with a general matrix inverse.
- Boxes are ``(x0, y0, x1, y1)`` in the same continuous pixel coordinates: the
  corners are pixel *edges*, so the whole image is ``(-0.5, -0.5, W - 0.5,
  H - 0.5)``. A box from a tool that calls the whole image ``(0, 0, W, H)``
  must be shifted by ``-0.5`` first.

All functions take any number of leading batch dimensions, broadcast the batch
dimensions of their arguments, are differentiable, and compute float16 and
bfloat16 in float32 (returning the input dtype).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor

from dgpgeom._core import cast_all, normalize_pixels
from dgpgeom.validation import (
    ShapeChecker,
    ShapeError,
    broadcast_batch_shapes,
    check_option,
    check_size,
    compute_dtype,
)

if TYPE_CHECKING:
    from kornia.geometry.camera import PinholeCamera

__all__ = [
    "Projection",
    "crop_intrinsics",
    "crop_transform",
    "intrinsics_from_params",
    "intrinsics_to_pinhole",
    "invert_intrinsics",
    "normalize_points",
    "pinhole_to_intrinsics",
    "project",
    "resize_intrinsics",
    "unproject",
]


class Projection(NamedTuple):
    """Result of :func:`project`.

    Attributes:
        points2d: `(..., N, 2)` pixels.
        in_front: `(..., N)` bool, ``z > min_depth``: the point is in front of
            the camera and its projection was not clamped.
    """

    points2d: Tensor
    in_front: Tensor


def intrinsics_from_params(
    fx: Tensor | float,
    fy: Tensor | float,
    cx: Tensor | float,
    cy: Tensor | float,
    skew: Tensor | float = 0.0,
) -> Tensor:
    """Build intrinsics matrices from focal lengths, principal point and skew.

    See the Conventions page (https://dgpgeom.readthedocs.io/en/latest/conventions/).

    Args:
        fx: `(...)` focal length along x, pixels.
        fy: `(...)` focal length along y, pixels.
        cx: `(...)` principal point x, pixels (integer pixel centres).
        cy: `(...)` principal point y, pixels.
        skew: `(...)` skew ``s``, pixels; 0 for square pixels.

    Each argument is a tensor or a Python number; the batch shapes of the
    tensors broadcast. If all are numbers the result has the default dtype.

    Returns:
        `(..., 3, 3)` intrinsics ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``.

    Raises:
        ShapeError: if a tensor is not floating point, the tensors are on
            different devices or their shapes do not broadcast.

    Example:
        >>> intrinsics_from_params(500.0, 510.0, 319.5, 239.5)
        tensor([[500.0000,   0.0000, 319.5000],
                [  0.0000, 510.0000, 239.5000],
                [  0.0000,   0.0000,   1.0000]])
        >>> intrinsics_from_params(torch.tensor([400.0, 600.0]), 500.0, 0.0, 0.0).shape
        torch.Size([2, 3, 3])
    """
    check = ShapeChecker()
    params = {"fx": fx, "fy": fy, "cx": cx, "cy": cy, "skew": skew}
    tensors, shapes = {}, {}
    for name, value in params.items():
        if isinstance(value, Tensor):
            shapes[name] = check(value, name, "...")
            tensors[name] = value
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ShapeError(
                f"{name}: expected a torch.Tensor or a number, got {type(value).__name__}"
            )
    batch = broadcast_batch_shapes(**shapes) if shapes else torch.Size()
    if tensors:
        _, dtype = compute_dtype(*tensors.values())
        device = check.device
    else:
        dtype, device = torch.get_default_dtype(), None
    fx_, fy_, cx_, cy_, s_ = (
        torch.as_tensor(v, dtype=dtype, device=device).expand(batch) for v in params.values()
    )
    zero = torch.zeros_like(fx_)
    one = torch.ones_like(fx_)
    return torch.stack([fx_, s_, cx_, zero, fy_, cy_, zero, zero, one], dim=-1).unflatten(
        -1, (3, 3)
    )


def invert_intrinsics(intrinsics: Tensor) -> Tensor:
    """Invert intrinsics matrices in closed form.

    See the Conventions page (https://dgpgeom.readthedocs.io/en/latest/conventions/).
    Reads only ``fx, s, cx,
    fy, cy``; the exact inverse of ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``
    is ``[[1/fx, -s/(fx fy), (s cy - cx fy)/(fx fy)], [0, 1/fy, -cy/fy],
    [0, 0, 1]]``. ``fx`` and ``fy`` must be non-zero.

    Args:
        intrinsics: `(..., 3, 3)` intrinsics, pixels.

    Returns:
        `(..., 3, 3)` inverse intrinsics.

    Raises:
        ShapeError: if ``intrinsics`` is not a floating-point `(..., 3, 3)` tensor.

    Example:
        >>> K = intrinsics_from_params(500.0, 400.0, 100.0, 80.0, skew=2.0)
        >>> torch.allclose(invert_intrinsics(K) @ K, torch.eye(3))
        True
    """
    ShapeChecker()(intrinsics, "intrinsics", "... 3 3")
    compute, out = compute_dtype(intrinsics)
    (k,) = cast_all(compute, intrinsics)
    fx, s, cx = k[..., 0, 0], k[..., 0, 1], k[..., 0, 2]
    fy, cy = k[..., 1, 1], k[..., 1, 2]
    ifx = 1.0 / fx
    ify = 1.0 / fy
    a = -s * ifx * ify
    b = -(cx * ifx + a * cy)
    c = -cy * ify
    zero = torch.zeros_like(fx)
    one = torch.ones_like(fx)
    inv = torch.stack([ifx, a, b, zero, ify, c, zero, zero, one], dim=-1).unflatten(-1, (3, 3))
    return inv.to(out)


def normalize_points(points2d: Tensor, intrinsics: Tensor) -> Tensor:
    """Map pixels to normalised image coordinates, ``K⁻¹ [u, v, 1]ᵀ`` without forming ``K⁻¹``.

    See the Conventions page (https://dgpgeom.readthedocs.io/en/latest/conventions/).
    Computes ``ỹ = (v - cy) /
    fy`` and ``x̃ = (u - cx - s ỹ) / fx``: six arithmetic operations, no matrix
    inverse, no host synchronisation, so it runs under
    ``torch.compile(fullgraph=True)``, ``torch.func.vmap`` and on ``meta``
    tensors. One matrix can serve a whole batch: the batch dimensions of
    ``points2d`` and ``intrinsics`` broadcast.

    Args:
        points2d: `(..., N, 2)` pixels.
        intrinsics: `(..., 3, 3)` intrinsics, pixels.

    Returns:
        `(..., N, 2)` normalised coordinates ``(x/z, y/z)`` of the rays through the pixels.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch shapes that do not broadcast.

    Example:
        >>> K = intrinsics_from_params(500.0, 500.0, 320.0, 240.0)
        >>> normalize_points(torch.tensor([[320.0, 240.0], [820.0, 490.0]]), K)
        tensor([[0.0000, 0.0000],
                [1.0000, 0.5000]])
    """
    check = ShapeChecker()
    broadcast_batch_shapes(
        points2d=check(points2d, "points2d", "... N 2"),
        intrinsics=check(intrinsics, "intrinsics", "... 3 3"),
    )
    compute, out = compute_dtype(points2d, intrinsics)
    p, k = cast_all(compute, points2d, intrinsics)
    return normalize_pixels(p, k).to(out)


def project(points3d_cam: Tensor, intrinsics: Tensor, *, min_depth: float = 1e-3) -> Projection:
    """Project camera-space points to pixels.

    See the Conventions page (https://dgpgeom.readthedocs.io/en/latest/conventions/).

    Points at or behind the plane ``z = min_depth`` have no meaningful image.
    Rather than dividing by a zero or negative depth, their depth is clamped to
    ``min_depth``: the result stays finite, its gradient w.r.t. ``z`` is zero,
    and ``in_front`` is False for them so that losses can mask them out. The
    mask is returned always (in a NamedTuple, rather than behind a flag that
    changes the return type) because ignoring it is the classic way such
    points corrupt a loss; ``project(...).points2d`` reads the pixels alone.
    (In float16 the clamped projections of such points can exceed the float16
    range; mask them before reducing.)

    Args:
        points3d_cam: `(..., N, 3)` camera-space points, metres.
        intrinsics: `(..., 3, 3)` intrinsics, pixels.
        min_depth: smallest depth used for the division, metres; must be positive.

    Returns:
        :class:`Projection` with ``points2d`` `(..., N, 2)` pixels and
        ``in_front`` `(..., N)` bool.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch shapes that do not broadcast.
        ValueError: if ``min_depth`` is not positive.

    Example:
        >>> K = intrinsics_from_params(500.0, 500.0, 320.0, 240.0)
        >>> points = torch.tensor([[0.1, -0.05, 0.5], [0.0, 0.0, -1.0]])
        >>> proj = project(points, K)
        >>> proj.points2d[0], proj.in_front
        (tensor([420., 190.]), tensor([ True, False]))
    """
    check = ShapeChecker()
    broadcast_batch_shapes(
        points3d_cam=check(points3d_cam, "points3d_cam", "... N 3"),
        intrinsics=check(intrinsics, "intrinsics", "... 3 3"),
    )
    check_option(min_depth, "min_depth", minimum=0.0, strict=True)
    compute, out = compute_dtype(points3d_cam, intrinsics)
    p, k = cast_all(compute, points3d_cam, intrinsics)
    z = p[..., 2:]
    xy = p[..., :2] / z.clamp_min(min_depth)
    uv = xy @ k[..., :2, :2].mT + k[..., :2, 2].unsqueeze(-2)
    return Projection(uv.to(out), (z[..., 0] > min_depth).expand(uv.shape[:-1]))


def unproject(points2d: Tensor, depth: Tensor, intrinsics: Tensor) -> Tensor:
    """Lift pixels with known depth to camera-space points.

    See the Conventions page (https://dgpgeom.readthedocs.io/en/latest/conventions/).
    ``depth`` is the z
    coordinate (not the distance along the ray): the result is ``depth · K⁻¹
    [u, v, 1]ᵀ``.

    Args:
        points2d: `(..., N, 2)` pixels.
        depth: `(..., N)` z-depth, metres.
        intrinsics: `(..., 3, 3)` intrinsics, pixels.

    Returns:
        `(..., N, 3)` camera-space points, metres.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch shapes that do not broadcast.

    Example:
        >>> K = intrinsics_from_params(500.0, 500.0, 320.0, 240.0)
        >>> unproject(torch.tensor([[420.0, 190.0]]), torch.tensor([0.5]), K)
        tensor([[ 0.1000, -0.0500,  0.5000]])
    """
    check = ShapeChecker()
    broadcast_batch_shapes(
        points2d=check(points2d, "points2d", "... N 2"),
        depth=check(depth, "depth", "... N"),
        intrinsics=check(intrinsics, "intrinsics", "... 3 3"),
    )
    compute, out = compute_dtype(points2d, depth, intrinsics)
    p, z, k = cast_all(compute, points2d, depth, intrinsics)
    z = z.unsqueeze(-1)
    xy = normalize_pixels(p, k) * z
    return torch.cat([xy, z.expand(*xy.shape[:-1], 1)], dim=-1).to(out)


def crop_transform(boxes: Tensor, size: Sequence[int] | None = None) -> Tensor:
    """Pixel map from an image to its crop (optionally resized), as a 3×3 matrix.

    See the Conventions page (https://dgpgeom.readthedocs.io/en/latest/conventions/).
    The box ``(x0, y0, x1,
    y1)`` has its corners on pixel edges, so the crop of size ``(H', W')``
    covers it exactly: ``u' = (u - x0) · W' / (x1 - x0) - 0.5`` and ``v' =
    (v - y0) · H' / (y1 - y0) - 0.5``. Without ``size`` there is no resize:
    ``u' = u - x0 - 0.5``, ``v' = v - y0 - 0.5``. Resizing a whole ``H × W``
    image is the box ``(-0.5, -0.5, W - 0.5, H - 0.5)``. Boxes must have
    positive width and height when ``size`` is given.

    Args:
        boxes: `(..., 4)` boxes ``(x0, y0, x1, y1)``, pixels.
        size: output ``(H', W')`` of a crop-and-resize, or None for a plain crop.

    Returns:
        `(..., 3, 3)` affine matrix ``A`` with ``[u', v', 1]ᵀ = A [u, v, 1]ᵀ``.

    Raises:
        ShapeError: if ``boxes`` is not a floating-point `(..., 4)` tensor.
        ValueError: if ``size`` is not two positive numbers.

    Example:
        >>> crop_transform(torch.tensor([9.5, 19.5, 29.5, 59.5]), size=(20, 10))
        tensor([[  0.5000,   0.0000,  -5.2500],
                [  0.0000,   0.5000, -10.2500],
                [  0.0000,   0.0000,   1.0000]])
    """
    ShapeChecker()(boxes, "boxes", "... 4")
    scale_x, scale_y, shift_x, shift_y = _crop_coefficients(boxes, size)
    zero = torch.zeros_like(scale_x)
    one = torch.ones_like(scale_x)
    rows = [scale_x, zero, shift_x, zero, scale_y, shift_y, zero, zero, one]
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


def _crop_coefficients(
    boxes: Tensor, size: Sequence[int] | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(sx, sy, tx, ty)`` of the crop map ``u' = sx·u + tx``, ``v' = sy·v + ty``."""
    compute, out = compute_dtype(boxes)
    (b,) = cast_all(compute, boxes)
    x0, y0, x1, y1 = b.unbind(-1)
    if size is None:
        one = torch.ones_like(x0)
        sx, sy = one, one
    else:
        h, w = check_size(size, "size")
        sx = w / (x1 - x0)
        sy = h / (y1 - y0)
    tx = -sx * x0 - 0.5
    ty = -sy * y0 - 0.5
    return sx.to(out), sy.to(out), tx.to(out), ty.to(out)


def crop_intrinsics(intrinsics: Tensor, boxes: Tensor, size: Sequence[int] | None = None) -> Tensor:
    """Intrinsics of a crop, optionally resized to ``size``.

    See the Conventions page (https://dgpgeom.readthedocs.io/en/latest/conventions/).
    The result is ``A · K``
    with ``A = crop_transform(boxes, size)``, computed entry-wise: with ``sx =
    W' / (x1 - x0)`` and ``sy = H' / (y1 - y0)`` (both 1 without ``size``),
    ``fx' = sx·fx``, ``s' = sx·s``, ``cx' = sx·(cx - x0) - 0.5``, ``fy' =
    sy·fy``, ``cy' = sy·(cy - y0) - 0.5``. The box corners are pixel edges, so
    a crop of the pixels 10..19 is the box edge ``x0 = 9.5``.

    Args:
        intrinsics: `(..., 3, 3)` intrinsics of the original image, pixels.
        boxes: `(..., 4)` boxes ``(x0, y0, x1, y1)`` in original pixels.
        size: output ``(H', W')`` of a crop-and-resize, or None for a plain crop.

    Returns:
        `(..., 3, 3)` intrinsics of the crop.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch shapes that do not broadcast.
        ValueError: if ``size`` is not two positive numbers.

    Example:
        >>> K = intrinsics_from_params(500.0, 500.0, 319.5, 239.5)
        >>> crop_intrinsics(K, torch.tensor([219.5, 139.5, 419.5, 339.5]), size=(100, 100))
        tensor([[250.0000,   0.0000,  49.5000],
                [  0.0000, 250.0000,  49.5000],
                [  0.0000,   0.0000,   1.0000]])
    """
    check = ShapeChecker()
    broadcast_batch_shapes(
        intrinsics=check(intrinsics, "intrinsics", "... 3 3"),
        boxes=check(boxes, "boxes", "... 4"),
    )
    compute, out = compute_dtype(intrinsics, boxes)
    k, b = cast_all(compute, intrinsics, boxes)
    sx, sy, tx, ty = _crop_coefficients(b, size)
    return _scale_shift_intrinsics(k, sx, sy, tx, ty).to(out)


def _scale_shift_intrinsics(k: Tensor, sx: Tensor, sy: Tensor, tx: Tensor, ty: Tensor) -> Tensor:
    """``A · K`` for ``A = [[sx, 0, tx], [0, sy, ty], [0, 0, 1]]``, entry-wise."""
    fx, s, cx = k[..., 0, 0], k[..., 0, 1], k[..., 0, 2]
    fy, cy = k[..., 1, 1], k[..., 1, 2]
    fx, s, cx, fy, cy, sx, sy, tx, ty = torch.broadcast_tensors(fx, s, cx, fy, cy, sx, sy, tx, ty)
    zero = torch.zeros_like(fx)
    one = torch.ones_like(fx)
    rows = [sx * fx, sx * s, sx * cx + tx, zero, sy * fy, sy * cy + ty, zero, zero, one]
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


def resize_intrinsics(intrinsics: Tensor, size: Sequence[int], new_size: Sequence[int]) -> Tensor:
    """Intrinsics of an image resized from ``size`` to ``new_size``.

    See the Conventions page (https://dgpgeom.readthedocs.io/en/latest/conventions/).
    With pixel centres on
    integers the image spans ``[-0.5, W - 0.5]``, so a resize maps ``u' = (u +
    0.5)·W'/W - 0.5`` (and likewise for ``v``), not ``u' = u·W'/W``: ``fx' =
    fx·W'/W``, ``s' = s·W'/W``, ``cx' = (cx + 0.5)·W'/W - 0.5``. (kornia's
    ``PinholeCamera.scale`` omits the half-pixel term.)

    Args:
        intrinsics: `(..., 3, 3)` intrinsics, pixels.
        size: original ``(H, W)``, pixels.
        new_size: resized ``(H', W')``, pixels.

    Returns:
        `(..., 3, 3)` intrinsics of the resized image.

    Raises:
        ShapeError: if ``intrinsics`` is not a floating-point `(..., 3, 3)` tensor.
        ValueError: if a size is not two positive numbers.

    Example:
        >>> K = intrinsics_from_params(500.0, 500.0, 319.5, 239.5)
        >>> resize_intrinsics(K, (480, 640), (240, 320))
        tensor([[250.0000,   0.0000, 159.5000],
                [  0.0000, 250.0000, 119.5000],
                [  0.0000,   0.0000,   1.0000]])
    """
    ShapeChecker()(intrinsics, "intrinsics", "... 3 3")
    h, w = check_size(size, "size")
    h2, w2 = check_size(new_size, "new_size")
    compute, out = compute_dtype(intrinsics)
    (k,) = cast_all(compute, intrinsics)
    sx = k.new_tensor(w2 / w)
    sy = k.new_tensor(h2 / h)
    return _scale_shift_intrinsics(k, sx, sy, 0.5 * sx - 0.5, 0.5 * sy - 0.5).to(out)


def intrinsics_to_pinhole(
    intrinsics: Tensor,
    image_size: Sequence[int] | Tensor,
    extrinsics: Tensor | None = None,
) -> PinholeCamera:
    """Wrap intrinsics in a ``kornia.geometry.camera.PinholeCamera``.

    See the Conventions page (https://dgpgeom.readthedocs.io/en/latest/conventions/).
    kornia's cameras use the
    same integer-pixel-centre convention and store `(B, 4, 4)` matrices plus
    the image height and width.

    Args:
        intrinsics: `(B, 3, 3)` intrinsics, pixels.
        image_size: ``(H, W)`` for every camera, or a `(B, 2)` tensor of ``(H, W)``.
        extrinsics: `(B, 4, 4)` world-to-camera transforms; identity if None.

    Returns:
        ``kornia.geometry.camera.PinholeCamera`` with `(B, 4, 4)` intrinsics.

    Raises:
        ShapeError: on wrong shapes or dtypes.
        ValueError: if ``image_size`` is not two positive numbers.

    Example:
        >>> K = intrinsics_from_params(500.0, 500.0, 319.5, 239.5)[None]
        >>> camera = intrinsics_to_pinhole(K, (480, 640))
        >>> camera.intrinsics.shape, camera.height
        (torch.Size([1, 4, 4]), tensor([480.]))
    """
    from kornia.geometry.camera import PinholeCamera

    check = ShapeChecker()
    check(intrinsics, "intrinsics", "B 3 3")
    batch = intrinsics.shape[0]
    if extrinsics is not None:
        check(extrinsics, "extrinsics", "B 4 4")
        extrinsics = extrinsics.to(intrinsics.dtype)
    else:
        extrinsics = torch.eye(4, dtype=intrinsics.dtype, device=intrinsics.device).expand(
            batch, 4, 4
        )
    if isinstance(image_size, Tensor):
        check(image_size, "image_size", "B 2", floating=False)
        hw = image_size.to(intrinsics.dtype)
    else:
        hw = intrinsics.new_tensor(check_size(image_size, "image_size")).expand(batch, 2)
    corner = torch.zeros(4, 4, dtype=intrinsics.dtype, device=intrinsics.device)
    corner[3, 3] = 1.0
    k4 = torch.nn.functional.pad(intrinsics, (0, 1, 0, 1)) + corner
    return PinholeCamera(k4, extrinsics, hw[:, 0], hw[:, 1])


def pinhole_to_intrinsics(camera: PinholeCamera) -> Tensor:
    """Read the `(B, 3, 3)` intrinsics of a ``kornia.geometry.camera.PinholeCamera``.

    See the Conventions page (https://dgpgeom.readthedocs.io/en/latest/conventions/).
    The extrinsics and image
    size are not part of the result; read ``camera.extrinsics``,
    ``camera.height`` and ``camera.width`` for those.

    Args:
        camera: a ``kornia.geometry.camera.PinholeCamera`` with `(B, 4, 4)` intrinsics.

    Returns:
        `(B, 3, 3)` intrinsics, pixels.

    Raises:
        ShapeError: if ``camera`` is not a PinholeCamera.

    Example:
        >>> K = intrinsics_from_params(500.0, 500.0, 319.5, 239.5)[None]
        >>> torch.equal(pinhole_to_intrinsics(intrinsics_to_pinhole(K, (480, 640))), K)
        True
    """
    from kornia.geometry.camera import PinholeCamera

    if not isinstance(camera, PinholeCamera):
        raise ShapeError(f"camera: expected a kornia PinholeCamera, got {type(camera).__name__}")
    return camera.intrinsics[..., :3, :3]
