"""The FreiHAND benchmark over a data set: :class:`FreiHANDEvaluator` and its result.

:class:`FreiHANDEvaluator` accumulates the scores of the official evaluation script
(``eval.py`` with ``EvalUtil``) batch by batch; :class:`FreiHANDResult` holds them and
writes ``scores.txt``, ``pck_data.json`` and a PCK plot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from dgpgeom.metrics.curves import (
    NN_CHUNK_ELEMENTS,
    f_score,
    pck_from_fractions,
    pck_thresholds,
    plot_pck,
)
from dgpgeom.metrics.errors import NORM_EPS, Reflection, point_error, procrustes_align
from dgpgeom.validation import ShapeChecker, ShapeError, check_option

__all__ = ["SCORE_KEYS", "FreiHANDEvaluator", "FreiHANDResult"]

MeshAlignment = Literal["auto", "own", "keypoints", "keypoints_official"]


class _Keypoint(NamedTuple):
    rotation: Tensor
    unnormalised_scale: Tensor  # s · ‖gt_c‖, without the division by ‖pred_c‖
    mean_gt: Tensor
    mean_pred: Tensor


def _align_by_keypoints_official(points: Tensor, alignment: _Keypoint) -> Tensor:
    """FreiHAND's ``align_by_trafo``, reproduced with its quirks (see the evaluator)."""
    centred = points - points.mean(-2, keepdim=True)
    rotated = centred @ alignment.rotation.mT * alignment.unnormalised_scale[..., None, None]
    return rotated + (alignment.mean_gt - alignment.mean_pred + points.mean(-2)).unsqueeze(-2)


#: Keys of the official ``scores.txt``, in the order the official script writes them.
SCORE_KEYS = (
    "xyz_mean3d",
    "xyz_auc3d",
    "xyz_al_mean3d",
    "xyz_al_auc3d",
    "mesh_mean3d",
    "mesh_auc3d",
    "mesh_al_mean3d",
    "mesh_al_auc3d",
)


@dataclass
class FreiHANDResult:
    """The scores of :meth:`FreiHANDEvaluator.compute`.

    Attributes:
        scores: the official ``scores.txt`` entries: ``*_mean3d`` in centimetres,
            ``*_auc3d`` and ``f_*score_*`` in ``[0, 1]``. The mesh entries are NaN when
            the predicted meshes have another vertex count than the ground truth (the
            official script writes -100 and -1 there).
        pck_curves: ``"xyz"``, ``"xyz_al"``, ``"mesh"``, ``"mesh_al"`` → `(T,)` PCK curves.
        thresholds: `(T,)` metres.
        num_samples: number of samples accumulated.
        point_auc: ``"xyz"``, ``"xyz_al"``, ``"mesh"``, ``"mesh_al"`` → the AUC of each
            keypoint `(J,)` or vertex `(V,)` (the ``*_auc3d`` scores are their means);
            the mesh entries are absent when the mesh scores are NaN.
    """

    scores: dict[str, float]
    pck_curves: dict[str, np.ndarray]
    thresholds: np.ndarray
    num_samples: int
    point_auc: dict[str, np.ndarray] = field(default_factory=dict)

    def format_scores(self) -> str:
        """The text of ``scores.txt``: ``key: value`` lines, ``%f`` formatted, official order."""
        return "".join(f"{key}: {value:f}\n" for key, value in self.scores.items())

    def write_scores(self, path: str | Path) -> Path:
        """Write ``scores.txt`` (the official format) and return its path."""
        path = Path(path)
        path.write_text(self.format_scores())
        return path

    def write_pck_data(self, path: str | Path) -> Path:
        """Write ``pck_data.json`` as the official script: ``{name: [thresholds_cm, pck]}``."""
        import json

        path = Path(path)
        cm = (self.thresholds * 100.0).tolist()
        data = {name: [cm, curve.tolist()] for name, curve in self.pck_curves.items()}
        path.write_text(json.dumps(data))
        return path

    def plot_pck(self, path: str | Path) -> Path:
        """Plot the four PCK curves to an image file (:func:`~dgpgeom.metrics.plot_pck`)."""
        names = {"xyz": "keypoints", "xyz_al": "keypoints, aligned"}
        names |= {"mesh": "vertices", "mesh_al": "vertices, aligned"}
        curves = [
            (f"{names[name]} (AUC {self.scores.get(f'{name}_auc3d', math.nan):.3f})",
             self.thresholds, curve)
            for name, curve in self.pck_curves.items()
        ]  # fmt: skip
        return plot_pck(path, curves)


class _Accumulator:
    """Per-point error sums and PCK counts over samples (bounded memory, no host sync)."""

    def __init__(self) -> None:
        self.sum: Tensor | None = None
        self.below: Tensor | None = None

    def add(self, errors: Tensor, thresholds: Tensor) -> None:
        s = errors.sum(0)
        b = (errors.unsqueeze(-1) <= thresholds).sum(0)
        self.sum = s if self.sum is None else self.sum + s
        self.below = b if self.below is None else self.below + b


class FreiHANDEvaluator:
    """Accumulates the FreiHAND benchmark scores over a data set.

    Reproduces the official evaluation (``eval.py`` / ``EvalUtil``): per point, the mean
    Euclidean error and the PCK over ``numpy.linspace(0, 0.05, 100)`` metres (``<=``),
    the AUC per point (normalised trapezoid) averaged over points; the similarity
    Procrustes alignment of :func:`procrustes_align`; F-scores at 5 and 15 mm on the
    vertices, raw and aligned (:func:`f_score`), averaged over samples.

    Mesh alignment (``mesh_alignment``):

    - ``"own"``: the predicted vertices get their own Procrustes fit to the ground-truth
      vertices, as the official script does for 778-vertex (MANO) meshes. Needs the same
      vertex count as the ground truth.
    - ``"keypoints"``: the similarity found from the keypoints is applied to the
      vertices (:meth:`ProcrustesAlignment.transform`), for meshes with another topology.
    - ``"keypoints_official"``: what the official ``align_by_trafo`` does for non-MANO
      meshes, quirks included: the vertices are rotated about their own centroid, scaled
      by ``s·‖gt_c‖`` without the division by ``‖pred_c‖`` and shifted by the difference
      of the keypoint means. Only for reproducing official numbers.
    - ``"auto"`` (default): ``"own"`` when the predicted and ground-truth vertex counts
      are equal, else ``"keypoints"``.

    When the counts differ, per-vertex errors are undefined and the ``mesh_*`` scores are
    NaN; the F-scores are still computed. A sample whose prediction holds NaN or Inf
    counts as infinitely wrong: its points miss at every PCK threshold, its F-scores
    are 0 and the mean errors (``*_mean3d``) become ``inf`` (it is never aligned).
    :meth:`update` keeps only per-point sums and PCK counts on the device (memory
    independent of the data set size) and never synchronises with the host;
    :meth:`compute` moves the totals to the CPU. Median errors are not kept (the
    official ``scores.txt`` does not report them).

    Args:
        f_thresholds: metres, the F-score thresholds (default 5 and 15 mm).
        thresholds: `(T,)` metres, PCK thresholds (default :func:`pck_thresholds`).
        reflection: Procrustes variant, ``"allow"`` (official) or ``"forbid"``.
        mesh_alignment: see above.
        dtype: computation dtype (float64 by default, as the official NumPy script).
        chunk_elements: memory budget of the nearest-neighbour search, see :func:`f_score`.

    Example:
        >>> gt_xyz = torch.rand(4, 21, 3) * 0.1 + torch.tensor([0.0, 0.0, 0.6])
        >>> gt_verts = torch.rand(4, 50, 3) * 0.1 + torch.tensor([0.0, 0.0, 0.6])
        >>> evaluator = FreiHANDEvaluator()
        >>> evaluator.update(gt_xyz, gt_verts, gt_xyz, gt_verts)
        >>> result = evaluator.compute()
        >>> result.scores["xyz_mean3d"], result.scores["xyz_auc3d"], result.scores["f_score_5"]
        (0.0, 1.0, 1.0)
        >>> print(result.format_scores().splitlines()[0])
        xyz_mean3d: 0.000000
    """

    def __init__(
        self,
        f_thresholds: Sequence[float] = (0.005, 0.015),
        thresholds: Tensor | None = None,
        *,
        reflection: Reflection = "allow",
        mesh_alignment: MeshAlignment = "auto",
        dtype: torch.dtype = torch.float64,
        chunk_elements: int = NN_CHUNK_ELEMENTS,
    ) -> None:
        check_option(reflection, "reflection", choices=("allow", "forbid"))
        if mesh_alignment not in ("auto", "own", "keypoints", "keypoints_official"):
            raise ValueError(
                "mesh_alignment: expected 'auto', 'own', 'keypoints' or "
                f"'keypoints_official', got {mesh_alignment!r}"
            )
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(
                f"dtype: expected a floating-point torch.dtype (e.g. torch.float64), got {dtype!r}"
            )
        self.f_thresholds = tuple(float(t) for t in f_thresholds)
        if not self.f_thresholds:
            raise ValueError("f_thresholds: expected at least one threshold")
        self.thresholds = (
            pck_thresholds(dtype=dtype) if thresholds is None else thresholds.to(dtype).cpu()
        )
        ShapeChecker()(self.thresholds, "thresholds", "T")
        self.reflection = reflection
        self.mesh_alignment = mesh_alignment
        self.dtype = dtype
        self.chunk_elements = chunk_elements
        self._device_thresholds: dict[torch.device, Tensor] = {}
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated."""
        self.num_samples = 0
        self._acc = {name: _Accumulator() for name in ("xyz", "xyz_al", "mesh", "mesh_al")}
        self._f: Tensor | None = None
        self._f_al: Tensor | None = None
        self._mesh_defined = True

    def _thresholds_on(self, device: torch.device) -> Tensor:
        # Cached per device: a host-to-device copy at every update would synchronise.
        if device not in self._device_thresholds:
            self._device_thresholds[device] = self.thresholds.to(device)
        return self._device_thresholds[device]

    def _align_mesh(
        self, pred_xyz: Tensor, pred_verts: Tensor, gt_xyz: Tensor, gt_verts: Tensor
    ) -> Tensor:
        mode = self.mesh_alignment
        if mode == "auto":
            mode = "own" if pred_verts.shape[-2] == gt_verts.shape[-2] else "keypoints"
        if mode == "own":
            return procrustes_align(pred_verts, gt_verts, reflection=self.reflection).aligned
        alignment = procrustes_align(pred_xyz, gt_xyz, reflection=self.reflection)
        if mode == "keypoints":
            return alignment.transform(pred_verts)
        centred_p = pred_xyz - pred_xyz.mean(-2, keepdim=True)
        norm_p = torch.linalg.vector_norm(centred_p, dim=(-2, -1)) + NORM_EPS
        official = _Keypoint(
            alignment.rotation,
            alignment.scale * norm_p,
            gt_xyz.mean(-2),
            pred_xyz.mean(-2),
        )
        return _align_by_keypoints_official(pred_verts, official)

    @torch.no_grad()
    def update(
        self, pred_xyz: Tensor, pred_verts: Tensor, gt_xyz: Tensor, gt_verts: Tensor
    ) -> None:
        """Add a batch of predictions and ground truths.

        Args:
            pred_xyz: `(B, J, 3)` metres, camera space (J = 21 for FreiHAND).
            pred_verts: `(B, V, 3)` metres, camera space.
            gt_xyz: `(B, J, 3)` metres.
            gt_verts: `(B, G, 3)` metres (G = 778 for FreiHAND).

        Raises:
            ShapeError: on wrong shapes or dtypes, tensors on different devices,
                ``mesh_alignment="own"`` with ``V != G``, or a point count that differs
                from the earlier batches.
        """
        check = ShapeChecker()
        check(pred_xyz, "pred_xyz", "B J 3")
        check(pred_verts, "pred_verts", "B V 3")
        check(gt_xyz, "gt_xyz", "B J 3")
        check(gt_verts, "gt_verts", "B G 3")
        v, g = check.sizes["V"], check.sizes["G"]
        if self.mesh_alignment == "own" and v != g:
            raise ShapeError(
                f"pred_verts: mesh_alignment='own' needs as many vertices as gt_verts "
                f"({g}), got {v}"
            )
        acc = self._acc["xyz"]
        if acc.sum is not None and acc.sum.shape[0] != check.sizes["J"]:
            raise ShapeError(
                f"pred_xyz: expected {acc.sum.shape[0]} keypoints as in earlier batches, "
                f"got {check.sizes['J']}"
            )
        mesh = self._acc["mesh"]
        if mesh.sum is not None and mesh.sum.shape[0] != v:
            raise ShapeError(
                f"pred_verts: expected {mesh.sum.shape[0]} vertices as in earlier batches, got {v}"
            )
        if self.num_samples > 0 and self._mesh_defined != (v == g):
            raise ShapeError("pred_verts: the vertex count changed relative to gt_verts")

        pred_xyz, pred_verts, gt_xyz, gt_verts = (
            t.detach().to(self.dtype) for t in (pred_xyz, pred_verts, gt_xyz, gt_verts)
        )
        thresholds = self._thresholds_on(pred_xyz.device)
        # Non-finite predictions are replaced by a harmless stand-in (the ground truth,
        # or zeros for another topology) before alignment, then scored as misses.
        finite = torch.isfinite(pred_xyz).all(-1).all(-1) & torch.isfinite(pred_verts).all(-1).all(
            -1
        )
        row = finite[:, None, None]
        pred_xyz = torch.where(row, pred_xyz, gt_xyz)
        pred_verts = torch.where(
            row, pred_verts, gt_verts if v == g else torch.zeros_like(pred_verts)
        )
        xyz_al = procrustes_align(pred_xyz, gt_xyz, reflection=self.reflection).aligned
        verts_al = self._align_mesh(pred_xyz, pred_verts, gt_xyz, gt_verts)

        def errors(pred: Tensor, gt: Tensor) -> Tensor:
            return torch.where(finite[:, None], point_error(pred, gt), math.inf)

        self._acc["xyz"].add(errors(pred_xyz, gt_xyz), thresholds)
        self._acc["xyz_al"].add(errors(xyz_al, gt_xyz), thresholds)
        self._mesh_defined = v == g
        if self._mesh_defined:
            self._acc["mesh"].add(errors(pred_verts, gt_verts), thresholds)
            self._acc["mesh_al"].add(errors(verts_al, gt_verts), thresholds)

        def f_sum(pred: Tensor) -> Tensor:
            f = f_score(pred, gt_verts, self.f_thresholds, chunk_elements=self.chunk_elements).f
            return torch.where(finite[:, None], f, 0.0).sum(0)

        f_raw, f_al = f_sum(pred_verts), f_sum(verts_al)
        self._f = f_raw if self._f is None else self._f + f_raw
        self._f_al = f_al if self._f_al is None else self._f_al + f_al
        self.num_samples += pred_xyz.shape[0]

    def compute(self) -> FreiHANDResult:
        """The scores over everything accumulated (moves the totals to the CPU).

        Raises:
            RuntimeError: if nothing was accumulated.
        """
        if self.num_samples == 0:
            raise RuntimeError("FreiHANDEvaluator.compute(): no samples were added")
        n = self.num_samples
        thresholds = self.thresholds.cpu()
        scores: dict[str, float] = {}
        curves: dict[str, np.ndarray] = {}
        point_auc: dict[str, np.ndarray] = {}
        for name in ("xyz", "xyz_al", "mesh", "mesh_al"):
            acc = self._acc[name]
            prefix = name
            if acc.sum is None:
                scores[f"{prefix}_mean3d"] = math.nan
                scores[f"{prefix}_auc3d"] = math.nan
                curves[name] = np.full(thresholds.shape[0], np.nan)
                continue
            mean = acc.sum.cpu() / n  # per point
            fractions = acc.below.cpu().to(thresholds.dtype) / n  # type: ignore[union-attr]
            pck = pck_from_fractions(fractions, thresholds)
            scores[f"{prefix}_mean3d"] = float(mean.mean()) * 100.0
            scores[f"{prefix}_auc3d"] = float(pck.auc)
            curves[name] = pck.curve.numpy()
            point_auc[name] = pck.point_auc.numpy()
        scores = {key: scores[key] for key in SCORE_KEYS}
        f_raw = (self._f.cpu() / n).tolist()  # type: ignore[union-attr]
        f_al = (self._f_al.cpu() / n).tolist()  # type: ignore[union-attr]
        for t, f, fa in zip(self.f_thresholds, f_raw, f_al, strict=True):
            scores[f"f_score_{round(t * 1000)}"] = f
            scores[f"f_al_score_{round(t * 1000)}"] = fa
        return FreiHANDResult(scores, curves, thresholds.numpy(), n, point_auc)
