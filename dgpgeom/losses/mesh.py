"""MobRecon's mesh regularisers: edge length and normal consistency.

Conventions: see :mod:`dgpgeom.losses`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dgpgeom._core import REDUCTIONS, Reduction, check_mask, reduce_loss, safe_sqrt
from dgpgeom.validation import (
    ShapeChecker,
    ShapeError,
    broadcast_batch_shapes,
    check_option,
    compute_dtype,
)

__all__ = ["edge_length_loss", "normal_loss"]


def _check_faces(check: ShapeChecker, faces: Tensor) -> None:
    check(faces, "faces", "F 3", floating=False)
    if faces.dtype not in (torch.int64, torch.int32):
        raise ShapeError(f"faces: expected dtype torch.int64 or torch.int32, got {faces.dtype}")


def _gather_faces(
    vertices: Tensor, vertices_gt: Tensor, faces: Tensor, valid: Tensor | None
) -> tuple[Tensor, Tensor, Tensor | None, torch.dtype, int]:
    """Corner positions `(..., F, 3, 3)` (face, corner, xyz) of prediction and ground truth."""
    check = ShapeChecker()
    batches = {
        "vertices": check(vertices, "vertices", "... V 3"),
        "vertices_gt": check(vertices_gt, "vertices_gt", "... V 3"),
    }
    _check_faces(check, faces)
    if valid is not None:
        batches["valid"] = check_mask(check, valid, "...")
    batch = tuple(broadcast_batch_shapes(**batches))
    dtype, out_dtype = compute_dtype(vertices, vertices_gt)
    num_faces = faces.shape[0]
    index = faces.reshape(-1).long()

    def corners(v: Tensor) -> Tensor:
        v = v.to(dtype)
        if valid is not None:
            # Masked meshes become zeros before any arithmetic, so that their (possibly
            # NaN) values get exactly zero gradient.
            v = torch.where(valid[..., None, None], v, torch.zeros_like(v))
        return v.index_select(-2, index).unflatten(-2, (num_faces, 3))

    pred, gt = corners(vertices), corners(vertices_gt)
    pred = pred.expand(*batch, num_faces, 3, 3)
    gt = gt.expand(*batch, num_faces, 3, 3)
    if valid is not None:
        valid = valid.expand(batch)
    return pred, gt, valid, out_dtype, num_faces


def _masked_mesh_reduction(per_edge: Tensor, valid: Tensor | None, reduction: str) -> Tensor:
    """Reduce `(..., F, 3)` per-edge terms; ``valid`` `(...)` masks whole meshes."""
    if valid is not None:
        per_edge = torch.where(valid[..., None, None], per_edge, torch.zeros_like(per_edge))
        count = valid.sum().to(per_edge.dtype) * (per_edge.shape[-2] * 3)
    else:
        count = float(per_edge.numel())
    return reduce_loss(per_edge, count, reduction)


def edge_length_loss(
    vertices: Tensor,
    vertices_gt: Tensor,
    faces: Tensor,
    valid: Tensor | None = None,
    *,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""MobRecon's edge-length loss: L1 between predicted and ground-truth edge lengths.

    For every face :math:`(a, b, c)` and each of its three edges, in the order
    :math:`(a,b), (a,c), (b,c)`, the term is
    :math:`\big|\,\lVert \hat v_a - \hat v_b\rVert - \lVert v_a - v_b\rVert\,\big|`.
    ``"mean"`` averages over every face edge of every valid mesh (an edge shared by two
    faces counts twice, as in MobRecon). The term is translation- and
    rotation-invariant, so root-relative or camera-space vertices give the same loss.
    Zero-length edges have a zero (not NaN) gradient.

    Args:
        vertices: `(..., V, 3)` metres, predicted.
        vertices_gt: `(..., V, 3)` metres, ground truth.
        faces: `(F, 3)` int64 (or int32) vertex indices in ``[0, V)``; not range-checked.
        valid: `(...)` bool or ``None``: meshes to include.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (`(..., F, 3)` per face edge,
            zeros for masked meshes).

    Returns:
        A scalar (or `(..., F, 3)`), metres.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch dimensions that do not broadcast.
        ValueError: on an unknown ``reduction``.

    Example:
        >>> gt = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> faces = torch.tensor([[0, 1, 2]])
        >>> edge_length_loss(2.0 * gt, gt, faces)  # (1 + 1 + sqrt(2)) / 3
        tensor(1.1381)

    References:
        X. Chen et al. *MobRecon: Mobile-Friendly Hand Mesh Reconstruction from
        Monocular Image.* CVPR 2022 (mesh losses, after Moon and Lee, I2L-MeshNet).
    """
    check_option(reduction, "reduction", choices=REDUCTIONS)
    pred, gt, valid, out_dtype, _ = _gather_faces(vertices, vertices_gt, faces, valid)

    def lengths(c: Tensor) -> Tensor:
        a, b, c = c.unbind(-2)
        edges = torch.stack((a - b, a - c, b - c), dim=-2)  # (..., F, 3, 3)
        return safe_sqrt(edges.square().sum(-1))  # (..., F, 3)

    per_edge = (lengths(pred) - lengths(gt)).abs()
    return _masked_mesh_reduction(per_edge, valid, reduction).to(out_dtype)


def normal_loss(
    vertices: Tensor,
    vertices_gt: Tensor,
    faces: Tensor,
    valid: Tensor | None = None,
    *,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""MobRecon's normal loss: predicted edges should be perpendicular to the true face normals.

    For every face :math:`(a, b, c)`, with :math:`\mathrm{n}(x) = x / \max(\lVert x\rVert,
    10^{-12})` (:func:`torch.nn.functional.normalize`), the ground-truth unit normal is
    :math:`n = \mathrm{n}(\mathrm{n}(v_b - v_a) \times \mathrm{n}(v_c - v_a))` and the
    three terms are :math:`|\langle \mathrm{n}(\hat v_b - \hat v_a), n\rangle|`,
    :math:`|\langle \mathrm{n}(\hat v_c - \hat v_a), n\rangle|`,
    :math:`|\langle \mathrm{n}(\hat v_c - \hat v_b), n\rangle|`: the absolute cosine
    between each predicted edge and the true normal. ``"mean"`` averages over the three
    terms of every face of every valid mesh. Only the prediction receives gradients
    through the edge directions (the ground truth is usually a constant).

    Args:
        vertices: `(..., V, 3)` metres, predicted.
        vertices_gt: `(..., V, 3)` metres, ground truth.
        faces: `(F, 3)` int64 (or int32) vertex indices, counter-clockwise or not (the
            absolute value makes the orientation irrelevant).
        valid: `(...)` bool or ``None``: meshes to include.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (`(..., F, 3)`).

    Returns:
        A scalar (or `(..., F, 3)`), dimensionless, in ``[0, 1]`` per term.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch dimensions that do not broadcast.
        ValueError: on an unknown ``reduction``.

    Example:
        >>> gt = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> faces = torch.tensor([[0, 1, 2]])
        >>> normal_loss(gt, gt, faces)
        tensor(0.)
        >>> tilted = gt + torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
        >>> normal_loss(tilted, gt, faces)  # (cos 45° + 0 + 1/sqrt(3)) / 3
        tensor(0.4282)

    References:
        X. Chen et al. *MobRecon*, CVPR 2022; G. Moon and K. M. Lee. *I2L-MeshNet*,
        ECCV 2020 (normal and edge-length losses).
    """
    check_option(reduction, "reduction", choices=REDUCTIONS)
    pred, gt, valid, out_dtype, _ = _gather_faces(vertices, vertices_gt, faces, valid)
    normalize = torch.nn.functional.normalize
    a, b, c = pred.unbind(-2)
    edges = normalize(torch.stack((b - a, c - a, c - b), dim=-2), dim=-1)
    ab = normalize(gt[..., 1, :] - gt[..., 0, :], dim=-1)
    ac = normalize(gt[..., 2, :] - gt[..., 0, :], dim=-1)
    normal = normalize(torch.linalg.cross(ab, ac), dim=-1)  # (..., F, 3)
    per_edge = (edges * normal.unsqueeze(-2)).sum(-1).abs()
    return _masked_mesh_reduction(per_edge, valid, reduction).to(out_dtype)
