"""The reference model's error table: root-relative (RS) and camera-space (CS) errors.

One meaning of each column across ``handdgp`` (tables, JSON files, this module):

- **RS** (``rs_*``): root-relative, prediction and ground truth each re-centred on
  its wrist keypoint (index 0), no other alignment.
- **PA** (``pa_*``): after a similarity Procrustes alignment of each set (FreiHAND's
  aligned errors; what the HandDGP paper's Table 1 calls RS-MJE / RS-MVE). The
  evaluation takes them from :class:`dgpgeom.metrics.FreiHANDEvaluator`.
- **CS** (``cs_*``): camera space, no alignment.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from dgpgeom.metrics import point_error, root_relative_error
from dgpgeom.validation import ShapeChecker, broadcast_batch_shapes

__all__ = ["HandErrors", "hand_errors"]


class HandErrors(NamedTuple):
    """Mean errors of a batch, each a 0-dim tensor in millimetres.

    Attributes:
        rs_mje: root-relative keypoint error (both sets re-centred on keypoint 0).
        rs_mve: root-relative vertex error (vertices relative to keypoint 0).
        cs_mje: camera-space keypoint error.
        cs_mve: camera-space vertex error.
    """

    rs_mje: Tensor
    rs_mve: Tensor
    cs_mje: Tensor
    cs_mve: Tensor


def hand_errors(
    pred_xyz: Tensor, pred_verts: Tensor, gt_xyz: Tensor, gt_verts: Tensor
) -> HandErrors:
    """RS-MJE, RS-MVE, CS-MJE, CS-MVE in millimetres, averaged over the batch.

    Args:
        pred_xyz: `(..., J, 3)` metres, camera space; keypoint 0 is the root (wrist).
        pred_verts: `(..., V, 3)` metres, camera space.
        gt_xyz: `(..., J, 3)` metres.
        gt_verts: `(..., V, 3)` metres.

    Returns:
        A :class:`HandErrors` of 0-dim tensors, millimetres.

    Raises:
        ShapeError: on wrong shapes or dtypes, or batch dimensions that do not broadcast.

    Example:
        >>> import torch
        >>> gt_xyz = torch.tensor([[[0.0, 0.0, 0.5], [0.05, 0.0, 0.5], [0.0, 0.05, 0.52]]])
        >>> gt_verts = gt_xyz + 0.01
        >>> row = hand_errors(gt_xyz + 0.002, gt_verts + 0.002, gt_xyz, gt_verts)
        >>> [round(float(v), 3) for v in row]
        [0.0, 0.0, 3.464, 3.464]
    """
    check = ShapeChecker()
    broadcast_batch_shapes(
        pred_xyz=check(pred_xyz, "pred_xyz", "... J 3"),
        pred_verts=check(pred_verts, "pred_verts", "... V 3"),
        gt_xyz=check(gt_xyz, "gt_xyz", "... J 3"),
        gt_verts=check(gt_verts, "gt_verts", "... V 3"),
    )
    rs_j = root_relative_error(pred_xyz, gt_xyz)
    rs_v = root_relative_error(
        pred_verts, gt_verts, pred_root=pred_xyz[..., 0, :], gt_root=gt_xyz[..., 0, :]
    )
    cs_j = point_error(pred_xyz, gt_xyz)
    cs_v = point_error(pred_verts, gt_verts)
    return HandErrors(*(1000.0 * e.mean() for e in (rs_j, rs_v, cs_j, cs_v)))
