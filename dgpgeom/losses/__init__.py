r"""Training losses for camera-space hand (or any) meshes: projections, translation, mesh shape.

Every loss here is a plain function; the HandDGP paper's camera-space losses
(§3.4) are :func:`translation_loss`, :func:`keypoint_consistency_loss` and
:func:`vertex_projection_loss`, and MobRecon's mesh regularisers are
:func:`edge_length_loss` and :func:`normal_loss`.

The projection losses share one kernel, :func:`reprojection_loss`, in plain torch
differentiated by autograd. (A fused custom backward that saved only its inputs, 12-30
bytes per point less, ran at 0.6-1.0x autograd's speed, so it was removed.)

The package has three modules, ``dgpgeom.losses.reprojection``,
``dgpgeom.losses.translation`` and ``dgpgeom.losses.mesh``; every loss is also
importable from ``dgpgeom.losses``.

Shared conventions (see the Conventions page,
https://dgpgeom.readthedocs.io/en/latest/conventions/):

- ``intrinsics`` are ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``; a point projects to
  ``(u, v) = K[:2, :2] @ (x/z, y/z) + K[:2, 2]``. The last row of ``K`` is not read
  (it is taken to be ``[0, 0, 1]``) and receives a zero gradient.
- Depths are clamped to ``min_depth`` before the division, so points at or behind
  the camera give a large but finite loss; the gradient w.r.t. ``z`` is zero where
  the clamp is active (the loss cannot pull such a point back in front of the
  camera: add a depth term if your model can produce them).
- ``valid`` masks are boolean: a masked entry contributes exactly nothing to the
  loss and receives a zero gradient, even if its coordinates are NaN or Inf.
- ``reduction="mean"`` divides by the (weighted) number of valid entries, never by
  zero: a fully masked batch gives a loss of 0 with zero gradients.
"""

from dgpgeom.losses.mesh import edge_length_loss, normal_loss
from dgpgeom.losses.reprojection import (
    keypoint_consistency_loss,
    reprojection_loss,
    vertex_projection_loss,
)
from dgpgeom.losses.translation import translation_loss

__all__ = [
    "edge_length_loss",
    "keypoint_consistency_loss",
    "normal_loss",
    "reprojection_loss",
    "translation_loss",
    "vertex_projection_loss",
]
