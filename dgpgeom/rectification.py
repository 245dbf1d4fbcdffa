"""Canonical-camera rectification of hand crops (HandDGP §3.3, generalised).

The paper resamples every image as if a camera with one fixed focal length had
taken it, so that the apparent size of an object carries its depth, and moves
the principal point to the centre of the crop. :func:`rectify` does this with a
single warp of the original image, and returns the canonical intrinsics and
the 3×3 pixel maps in both directions, so that predictions made in the
rectified crop can be mapped back to the original camera.

Two modes:

- ``"affine"`` (the paper's): scale by ``focal / f`` and shift. The camera
  rotation is unchanged, so a translation solved in the rectified frame with
  the canonical intrinsics *is* the translation in the original camera.
- ``"perspective"`` (beyond the paper): a virtual rotation ``R`` turns the
  camera so that the ray through the box centre becomes the optical axis, as
  if the camera had looked straight at the hand. Off-centre crops then carry
  no perspective distortion; 3D results come back with ``Rᵀ``
  (:func:`points3d_to_original`, :func:`translation_to_original`).

See the Conventions page (https://dgpgeom.readthedocs.io/en/latest/conventions/)
for pixel centres and boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from dgpgeom._core import cast_all, normalize_pixels
from dgpgeom.camera import invert_intrinsics
from dgpgeom.validation import (
    ShapeChecker,
    ShapeError,
    broadcast_batch_shapes,
    check_option,
    check_size,
    compute_dtype,
)

__all__ = [
    "Rectification",
    "RectifiedAnnotation",
    "annotation_to_rectified",
    "points2d_to_original",
    "points2d_to_rectified",
    "points3d_to_original",
    "points3d_to_rectified",
    "rectify",
    "rectify_camera",
    "translation_to_original",
    "warp_to_rectified",
]

_MODES = ("affine", "perspective")
_INTERPOLATIONS = ("bilinear", "nearest", "bicubic")
_PADDINGS = ("zeros", "border", "reflection")


class Rectification(NamedTuple):
    """Result of :func:`rectify` and :func:`rectify_camera`.

    Attributes:
        images: `(B, C, H', W')` rectified crops, or None from :func:`rectify_camera`.
        intrinsics: `(..., 3, 3)` canonical intrinsics of the rectified crops, pixels.
        from_original: `(..., 3, 3)` map from original to rectified pixels
            (homogeneous; affine in ``"affine"`` mode).
        to_original: `(..., 3, 3)` map from rectified to original pixels,
            the exact inverse of ``from_original``.
        rotation: `(..., 3, 3)` rotation from the original to the rectified
            camera frame, ``p_rect = R p``; the identity in ``"affine"`` mode.
        valid: `(...)` bool; False where the box has no area and ``focal`` is
            None (the scale is then meaningless, but finite).
        size: ``(H', W')`` of the rectified crops.
        mode: ``"affine"`` or ``"perspective"``, which selects the warp.
    """

    images: Tensor | None
    intrinsics: Tensor
    from_original: Tensor
    to_original: Tensor
    rotation: Tensor
    valid: Tensor
    size: tuple[int, int]
    mode: str


class RectifiedAnnotation(NamedTuple):
    """Result of :func:`annotation_to_rectified`.

    Attributes:
        points2d: `(..., N, 2)` keypoints in rectified pixels.
        points3d_cam: `(..., N, 3)` points in the rectified camera frame, metres.
        intrinsics: `(..., 3, 3)` canonical intrinsics.
    """

    points2d: Tensor
    points3d_cam: Tensor
    intrinsics: Tensor


def _matrix(*entries: Tensor) -> Tensor:
    return torch.stack(torch.broadcast_tensors(*entries), dim=-1).unflatten(-1, (3, 3))


def _rotation_to_axis(ray: Tensor) -> Tensor:
    """Smallest rotation taking the direction of ``ray`` `(..., 2)` = (x/z, y/z) to +z."""
    x, y = ray.unbind(-1)
    inv_norm = torch.rsqrt(1.0 + x * x + y * y)
    ax, ay, c = x * inv_norm, y * inv_norm, inv_norm
    # Rodrigues with axis a × e_z; c = cos(angle) > 0 since the ray has z = 1.
    k = 1.0 / (1.0 + c)
    axy = -ax * ay * k
    return _matrix(1.0 - ax * ax * k, axy, -ax, axy, 1.0 - ay * ay * k, -ay, ax, ay, c)


def rectify_camera(
    intrinsics: Tensor,
    boxes: Tensor | None = None,
    *,
    size: int | Sequence[int] = 224,
    focal: float | None = 1000.0,
    mode: str = "affine",
) -> Rectification:
    """Canonical intrinsics and pixel maps of a rectification, without touching images.

    See :func:`rectify` for the geometry and the Conventions page
    (https://dgpgeom.readthedocs.io/en/latest/conventions/).
    Use this to map annotations or predictions when the
    images are warped elsewhere, or with :func:`warp_to_rectified`.

    Args:
        intrinsics: `(..., 3, 3)` original intrinsics, pixels.
        boxes: `(..., 4)` boxes ``(x0, y0, x1, y1)`` in original pixels, or
            None to centre the crop on the principal point.
        size: output size, an int or ``(H', W')``.
        focal: canonical focal length, pixels; None scales each box to fill the crop.
        mode: ``"affine"`` or ``"perspective"``.

    Returns:
        :class:`Rectification` with ``images=None``.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch shapes that do not broadcast.
        ValueError: on a bad ``size``, ``focal`` or ``mode``.

    Example:
        >>> from dgpgeom.camera import intrinsics_from_params
        >>> K = intrinsics_from_params(500.0, 500.0, 319.5, 239.5)
        >>> rect = rectify_camera(K, torch.tensor([300.0, 200.0, 400.0, 300.0]), size=224)
        >>> rect.intrinsics
        tensor([[1000.0000,    0.0000,   50.5000],
                [   0.0000, 1000.0000,   90.5000],
                [   0.0000,    0.0000,    1.0000]])
        >>> points2d_to_rectified(torch.tensor([[350.0, 250.0]]), rect)
        tensor([[111.5000, 111.5000]])
    """
    check = ShapeChecker()
    shapes = {"intrinsics": check(intrinsics, "intrinsics", "... 3 3")}
    if boxes is not None:
        shapes["boxes"] = check(boxes, "boxes", "... 4")
    batch = broadcast_batch_shapes(**shapes)
    out_h, out_w = check_size(size, "size", integer=True, square=True)
    if focal is not None and (
        not isinstance(focal, (int, float)) or isinstance(focal, bool) or not focal > 0
    ):
        raise ValueError(f"focal: expected a positive number or None, got {focal!r}")
    if focal is None and boxes is None:
        raise ValueError("focal=None scales the box to fill the crop, so it needs boxes")
    check_option(mode, "mode", choices=_MODES)

    tensors = (intrinsics,) if boxes is None else (intrinsics, boxes)
    compute, out = compute_dtype(*tensors)
    k = cast_all(compute, intrinsics)[0]
    ccx, ccy = (out_w - 1) / 2.0, (out_h - 1) / 2.0
    fx, s, cx = k[..., 0, 0], k[..., 0, 1], k[..., 0, 2]
    fy, cy = k[..., 1, 1], k[..., 1, 2]
    if boxes is None:
        bx, by = cx, cy
        valid = torch.ones(batch, dtype=torch.bool, device=k.device)
    else:
        b = cast_all(compute, boxes)[0]
        bx, by = 0.5 * (b[..., 0] + b[..., 2]), 0.5 * (b[..., 1] + b[..., 3])
        width, height = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
        if focal is None:
            valid = (width > 0) & (height > 0)
            width = torch.where(valid, width, torch.ones_like(width))
            height = torch.where(valid, height, torch.ones_like(height))
        else:
            valid = torch.ones_like(width, dtype=torch.bool)
        valid = valid.expand(batch)
    if focal is None:
        focal_x, focal_y = fx * (out_w / width), fy * (out_h / height)
    else:
        focal_x, focal_y = torch.full_like(fx, focal), torch.full_like(fy, focal)

    zero = torch.zeros_like(focal_x)
    one = torch.ones_like(focal_x)
    if mode == "affine":
        # A = K_rect K⁻¹ with A·(box centre) = crop centre, entry-wise: writing
        # the shift as c - A·b keeps float32 exact where it matters, at the box.
        ax, ay = focal_x / fx, focal_y / fy
        axy = -ax * s / fy
        from_original = _matrix(
            ax, axy, ccx - ax * bx - axy * by, zero, ay, ccy - ay * by, zero, zero, one
        )
        ix, iy, ixy = fx / focal_x, fy / focal_y, s / focal_y
        to_original = _matrix(
            ix, ixy, bx - ix * ccx - ixy * ccy, zero, iy, by - iy * ccy, zero, zero, one
        )
        cx_rect = ccx + ax * (cx - bx) + axy * (cy - by)
        cy_rect = ccy + ay * (cy - by)
        k_rect = _matrix(focal_x, zero, cx_rect, zero, focal_y, cy_rect, zero, zero, one)
        rotation = _matrix(one, zero, zero, zero, one, zero, zero, zero, one)
    else:
        ray = normalize_pixels(torch.stack([bx, by], -1).unsqueeze(-2), k).squeeze(-2)
        cx_rect, cy_rect = torch.full_like(focal_x, ccx), torch.full_like(focal_y, ccy)
        k_rect = _matrix(focal_x, zero, cx_rect, zero, focal_y, cy_rect, zero, zero, one)
        rotation = _rotation_to_axis(ray)
        from_original = k_rect @ rotation @ invert_intrinsics(k)
        to_original = k @ rotation.mT @ invert_intrinsics(k_rect)
    shape = (*batch, 3, 3)
    return Rectification(
        images=None,
        intrinsics=k_rect.expand(shape).to(out),
        from_original=from_original.expand(shape).to(out),
        to_original=to_original.expand(shape).to(out),
        rotation=rotation.expand(shape).to(out),
        valid=valid,
        size=(out_h, out_w),
        mode=mode,
    )


def warp_to_rectified(
    images: Tensor,
    rect: Rectification,
    *,
    interpolation: str = "bilinear",
    padding: str = "zeros",
) -> Tensor:
    """Resample images into the rectified crops described by ``rect``.

    See the Conventions page (https://dgpgeom.readthedocs.io/en/latest/conventions/). Uses kornia's
    ``warp_affine`` (affine maps) or ``warp_perspective`` with
    ``align_corners=True``, whose pixel grid has integer pixel centres like
    ours, so the image warp agrees with :func:`points2d_to_rectified`.
    Differentiable w.r.t. the images and the maps. Also useful for masks or
    depth maps that go with the images (``interpolation="nearest"``).

    Args:
        images: `(B, C, H, W)` images.
        rect: a :class:`Rectification` with batch shape `(B,)`, `(1,)` or `()`.
        interpolation: ``"bilinear"``, ``"nearest"`` or ``"bicubic"``.
        padding: ``"zeros"``, ``"border"`` or ``"reflection"``, for samples outside the image.

    Returns:
        `(B, C, H', W')` rectified images, in the dtype of ``images``.

    Raises:
        ShapeError: on wrong shapes or dtypes.
        ValueError: on a bad ``interpolation`` or ``padding``.

    Example:
        >>> from dgpgeom.camera import intrinsics_from_params
        >>> K = intrinsics_from_params(100.0, 100.0, 7.5, 7.5)[None]
        >>> rect = rectify_camera(K, size=8, focal=50.0)
        >>> warp_to_rectified(torch.ones(1, 3, 16, 16), rect).shape
        torch.Size([1, 3, 8, 8])
    """
    from kornia.geometry.transform import warp_affine, warp_perspective

    check = ShapeChecker()
    check(images, "images", "B C H W")
    if not isinstance(rect, Rectification):
        raise ShapeError(f"rect: expected a Rectification, got {type(rect).__name__}")
    batch = check(rect.from_original, "rect.from_original", "... 3 3")
    if batch not in ((images.shape[0],), (1,), ()):
        raise ShapeError(
            f"rect.from_original: expected shape (B={images.shape[0]}, 3, 3), (1, 3, 3) or "
            f"(3, 3) to match images, got {tuple(rect.from_original.shape)}"
        )
    check_option(interpolation, "interpolation", choices=_INTERPOLATIONS)
    check_option(padding, "padding", choices=_PADDINGS)
    compute, _ = compute_dtype(images, rect.from_original)
    src, matrix = cast_all(compute, images, rect.from_original)
    matrix = matrix.expand(images.shape[0], 3, 3)
    if rect.mode == "affine":
        warped = warp_affine(
            src, matrix[:, :2, :], rect.size, interpolation, padding, align_corners=True
        )
    else:
        warped = warp_perspective(
            src, matrix, rect.size, interpolation, padding, align_corners=True
        )
    return warped.to(images.dtype)


def rectify(
    images: Tensor,
    intrinsics: Tensor,
    boxes: Tensor | None,
    *,
    size: int | Sequence[int] = 224,
    focal: float | None = 1000.0,
    mode: str = "affine",
    interpolation: str = "bilinear",
    padding: str = "zeros",
) -> Rectification:
    """Rectify image crops to a canonical camera (HandDGP §3.3), in one warp.

    See the Conventions page (https://dgpgeom.readthedocs.io/en/latest/conventions/).

    **Geometry.** The output crop of ``size`` ``(H', W')`` has its centre at
    ``((W' - 1) / 2, (H' - 1) / 2)`` (111.5 for 224, under integer pixel
    centres; the official HandDGP code used 112, half a pixel off), and the
    box centre ``((x0 + x1) / 2, (y0 + y1) / 2)`` lands there. With the
    normalised coordinates ``(x̃, ỹ) = K⁻¹ (box centre)``:

    - ``mode="affine"``: the image is scaled by ``focal / f`` (the canonical
      focal fixes the scale, so the apparent size of the hand still carries
      its depth, which is the point of the paper) and shifted. The rectified
      intrinsics are ``[[focal, 0, c - focal·x̃], [0, focal, c - focal·ỹ],
      [0, 0, 1]]`` with ``c`` the crop centre: the principal point is the crop
      centre exactly when the box is centred on the original principal point
      (``boxes=None`` does this, and the intrinsics are then the paper's
      ``Λ``). Skew is removed. With a fixed focal the box size does nothing.
    - ``mode="perspective"``: the camera is first turned by the smallest
      rotation ``R`` that puts the box centre on the optical axis, so the
      intrinsics are exactly ``[[focal, 0, c], [0, focal, c], [0, 0, 1]]``
      for every box, and the map is the homography ``K_rect R K⁻¹``.
    - ``focal=None``: the box sets the scale instead: ``focal_x = fx · W' /
      (x1 - x0)`` and ``focal_y = fy · H' / (y1 - y0)``, so the box fills the
      crop (the usual crop-and-resize of MobRecon-style pipelines, and of the
      paper's ablation A4 without rectification). In affine mode and with
      zero skew the returned intrinsics are then the crop's own,
      :func:`dgpgeom.camera.crop_intrinsics` ``(K, boxes, size)``; in
      perspective mode the box fills the crop up to perspective foreshortening.

    **Relation to the official pipeline.** The official code crops a 1.3×
    box to 224×224 and then warps the crop with ``T = K_canon K_crop⁻¹``.
    Composed, the crop cancels: the original is scaled by ``1000 / f`` and
    the *original principal point* is sent to (112, 112), whatever the box.
    That equals ``boxes=None`` here up to the half pixel; our box-centred crop
    equals it when the box is centred on the principal point, as with the
    centred FreiHAND evaluation crops. Here the original is sampled once: there
    is no second interpolation, and no zeros where the rectified view reaches
    past the first crop (which the two-step warp has when ``f > 1000 · 1.3 ·
    100 / 224 ≈ 580`` pixels for its 100-pixel boxes).

    Args:
        images: `(B, C, H, W)` images.
        intrinsics: `(B, 3, 3)` original intrinsics, pixels (or `(1, 3, 3)` for all).
        boxes: `(B, 4)` boxes ``(x0, y0, x1, y1)`` in original pixels (corners
            on pixel edges), or None to centre the crops on the principal point.
        size: output size, an int or ``(H', W')``.
        focal: canonical focal length, pixels; None scales each box to fill the crop.
        mode: ``"affine"`` (the paper's) or ``"perspective"``.
        interpolation: ``"bilinear"``, ``"nearest"`` or ``"bicubic"``.
        padding: ``"zeros"``, ``"border"`` or ``"reflection"``.

    Returns:
        :class:`Rectification` with batch shape `(B,)`: the rectified images,
        canonical intrinsics, both pixel maps, the rotation and a validity mask.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch sizes that differ.
        ValueError: on a bad ``size``, ``focal``, ``mode``, ``interpolation`` or ``padding``.

    References:
        E. Valassakis and G. Garcia-Hernando, *HandDGP: Camera-Space Hand Mesh
        Prediction with Differentiable Global Positioning*, ECCV 2024, §3.3.

    Example:
        >>> from dgpgeom.camera import intrinsics_from_params
        >>> K = intrinsics_from_params(500.0, 500.0, 31.5, 23.5)[None]
        >>> images = torch.zeros(1, 3, 48, 64)
        >>> rect = rectify(images, K, torch.tensor([[20.0, 10.0, 40.0, 30.0]]), size=32, focal=250.0)
        >>> rect.images.shape, rect.intrinsics[0, 0, 0].item()
        (torch.Size([1, 3, 32, 32]), 250.0)
        >>> points2d_to_original(torch.tensor([[[15.5, 15.5]]]), rect)
        tensor([[[30., 20.]]])
    """
    check = ShapeChecker()
    check(images, "images", "B C H W")
    check(intrinsics, "intrinsics", "_ 3 3")
    if boxes is not None:
        check(boxes, "boxes", "_ 4")
    rect = rectify_camera(intrinsics, boxes, size=size, focal=focal, mode=mode)
    if rect.intrinsics.shape[0] not in (images.shape[0], 1):
        raise ShapeError(
            f"intrinsics, boxes: batch size {rect.intrinsics.shape[0]} does not match "
            f"images batch size {images.shape[0]}"
        )
    batch = images.shape[0]
    rect = rect._replace(
        intrinsics=rect.intrinsics.expand(batch, 3, 3),
        from_original=rect.from_original.expand(batch, 3, 3),
        to_original=rect.to_original.expand(batch, 3, 3),
        rotation=rect.rotation.expand(batch, 3, 3),
        valid=rect.valid.expand(batch),
    )
    warped = warp_to_rectified(images, rect, interpolation=interpolation, padding=padding)
    return rect._replace(images=warped)


def _apply_homography(matrix: Tensor, points: Tensor) -> Tensor:
    compute, out = compute_dtype(matrix, points)
    m, p = cast_all(compute, matrix, points)
    xy = p @ m[..., :2, :2].mT + m[..., :2, 2].unsqueeze(-2)
    w = p @ m[..., 2:, :2].mT + m[..., 2:, 2:]
    # w > 0 for every point in front of both cameras; the clamp only keeps the
    # rest finite (a point 90° or more off the other camera's axis has no image).
    return (xy / w.clamp_min(torch.finfo(compute).eps)).to(out)


def _check_points(points: Tensor, name: str, pattern: str, rect: Rectification) -> None:
    if not isinstance(rect, Rectification):
        raise ShapeError(f"rect: expected a Rectification, got {type(rect).__name__}")
    check = ShapeChecker()
    broadcast_batch_shapes(
        **{name: check(points, name, pattern)},
        rect=check(rect.rotation, "rect.rotation", "... 3 3"),
    )


def points2d_to_rectified(points2d: Tensor, rect: Rectification) -> Tensor:
    """Map original pixels into the rectified crop.

    See the Conventions page (https://dgpgeom.readthedocs.io/en/latest/conventions/). Applies
    ``rect.from_original`` with a homogeneous divide.

    Args:
        points2d: `(..., N, 2)` original pixels; ``...`` broadcasts with the batch of ``rect``.
        rect: a :class:`Rectification`.

    Returns:
        `(..., N, 2)` rectified pixels.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch shapes that do not broadcast.

    Example:
        >>> from dgpgeom.camera import intrinsics_from_params
        >>> rect = rectify_camera(intrinsics_from_params(500.0, 500.0, 319.5, 239.5), size=224)
        >>> points2d_to_rectified(torch.tensor([[319.5, 239.5], [369.5, 239.5]]), rect)
        tensor([[111.5000, 111.5000],
                [211.5000, 111.5000]])
    """
    _check_points(points2d, "points2d", "... N 2", rect)
    return _apply_homography(rect.from_original, points2d)


def points2d_to_original(points2d: Tensor, rect: Rectification) -> Tensor:
    """Map rectified pixels (e.g. 2D predictions) back to original pixels.

    See the Conventions page (https://dgpgeom.readthedocs.io/en/latest/conventions/). Applies
    ``rect.to_original`` with a homogeneous divide.

    Args:
        points2d: `(..., N, 2)` rectified pixels; ``...`` broadcasts with the batch of ``rect``.
        rect: a :class:`Rectification`.

    Returns:
        `(..., N, 2)` original pixels.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch shapes that do not broadcast.

    Example:
        >>> from dgpgeom.camera import intrinsics_from_params
        >>> rect = rectify_camera(intrinsics_from_params(500.0, 500.0, 319.5, 239.5), size=224)
        >>> points2d_to_original(torch.tensor([[211.5, 111.5]]), rect)
        tensor([[369.5000, 239.5000]])
    """
    _check_points(points2d, "points2d", "... N 2", rect)
    return _apply_homography(rect.to_original, points2d)


def points3d_to_rectified(points3d: Tensor, rect: Rectification) -> Tensor:
    """Rotate points from the original into the rectified camera frame, ``R p``.

    See the Conventions page (https://dgpgeom.readthedocs.io/en/latest/conventions/).
    The identity in affine
    mode. Works for camera-space and root-relative points alike (a rotation
    has no translation part).

    Args:
        points3d: `(..., N, 3)` points in the original camera frame, metres.
        rect: a :class:`Rectification`.

    Returns:
        `(..., N, 3)` points in the rectified camera frame, metres.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch shapes that do not broadcast.

    Example:
        >>> from dgpgeom.camera import intrinsics_from_params
        >>> K = intrinsics_from_params(500.0, 500.0, 319.5, 239.5)
        >>> rect = rectify_camera(K, torch.tensor([469.5, 189.5, 569.5, 289.5]), mode="perspective")
        >>> p = points3d_to_rectified(torch.tensor([[0.4, 0.0, 1.0]]), rect)
        >>> p[..., :2].abs().max() < 1e-6
        tensor(True)
    """
    _check_points(points3d, "points3d", "... N 3", rect)
    compute, out = compute_dtype(points3d, rect.rotation)
    p, r = cast_all(compute, points3d, rect.rotation)
    return (p @ r.mT).to(out)


def points3d_to_original(points3d: Tensor, rect: Rectification) -> Tensor:
    """Rotate points from the rectified back into the original camera frame, ``Rᵀ p``.

    See the Conventions page (https://dgpgeom.readthedocs.io/en/latest/conventions/).
    The identity in affine
    mode. Use it for camera-space outputs (meshes, joints) solved or
    predicted in the rectified frame.

    Args:
        points3d: `(..., N, 3)` points in the rectified camera frame, metres.
        rect: a :class:`Rectification`.

    Returns:
        `(..., N, 3)` points in the original camera frame, metres.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch shapes that do not broadcast.

    Example:
        >>> from dgpgeom.camera import intrinsics_from_params
        >>> K = intrinsics_from_params(500.0, 500.0, 319.5, 239.5)
        >>> rect = rectify_camera(K, torch.tensor([469.5, 189.5, 569.5, 289.5]), mode="perspective")
        >>> p = torch.tensor([[0.3, 0.0, 1.0]])
        >>> torch.allclose(points3d_to_original(points3d_to_rectified(p, rect), rect), p)
        True
    """
    _check_points(points3d, "points3d", "... N 3", rect)
    compute, out = compute_dtype(points3d, rect.rotation)
    p, r = cast_all(compute, points3d, rect.rotation)
    return (p @ r).to(out)


def translation_to_original(translation: Tensor, rect: Rectification) -> Tensor:
    """Rotate a translation solved in the rectified frame back to the original camera, ``Rᵀ t``.

    See the Conventions page (https://dgpgeom.readthedocs.io/en/latest/conventions/).
    In affine mode the
    rectified-frame translation already is the original one and this returns
    it unchanged.

    Args:
        translation: `(..., 3)` translation in the rectified camera frame, metres.
        rect: a :class:`Rectification`.

    Returns:
        `(..., 3)` translation in the original camera frame, metres.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch shapes that do not broadcast.

    Example:
        >>> from dgpgeom.camera import intrinsics_from_params
        >>> rect = rectify_camera(intrinsics_from_params(500.0, 500.0, 319.5, 239.5))
        >>> translation_to_original(torch.tensor([0.1, 0.0, 0.6]), rect)
        tensor([0.1000, 0.0000, 0.6000])
    """
    _check_points(translation, "translation", "... 3", rect)
    compute, out = compute_dtype(translation, rect.rotation)
    t, r = cast_all(compute, translation, rect.rotation)
    return (t.unsqueeze(-2) @ r).squeeze(-2).to(out)


def annotation_to_rectified(
    points2d: Tensor, points3d_cam: Tensor, rect: Rectification
) -> RectifiedAnnotation:
    """Map a data set's annotation into the rectified frame, for training.

    See the Conventions page (https://dgpgeom.readthedocs.io/en/latest/conventions/).
    The 2D keypoints go
    through ``rect.from_original``, the camera-space points through the
    rotation, and the intrinsics become the canonical ones: the rectified
    points project with ``rect.intrinsics`` onto the rectified keypoints
    exactly when the original ones did with the original intrinsics.

    Args:
        points2d: `(..., N, 2)` keypoints, original pixels.
        points3d_cam: `(..., M, 3)` camera-space points (joints or vertices), metres.
        rect: a :class:`Rectification` of the annotated images.

    Returns:
        :class:`RectifiedAnnotation` ``(points2d, points3d_cam, intrinsics)``.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch shapes that do not broadcast.

    Example:
        >>> from dgpgeom.camera import intrinsics_from_params, project
        >>> K = intrinsics_from_params(500.0, 500.0, 319.5, 239.5)
        >>> rect = rectify_camera(K, torch.tensor([469.5, 189.5, 569.5, 289.5]), mode="perspective")
        >>> joints = torch.tensor([[0.3, 0.0, 1.0], [0.32, 0.02, 1.01]])
        >>> ann = annotation_to_rectified(project(joints, K).points2d, joints, rect)
        >>> torch.allclose(project(ann.points3d_cam, ann.intrinsics).points2d, ann.points2d, atol=1e-3)
        True
    """
    _check_points(points3d_cam, "points3d_cam", "... M 3", rect)  # errors name this function's arguments
    return RectifiedAnnotation(
        points2d_to_rectified(points2d, rect),
        points3d_to_rectified(points3d_cam, rect),
        rect.intrinsics,
    )
