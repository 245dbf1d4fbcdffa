r"""Evaluation metrics for camera-space meshes, defined exactly as the FreiHAND evaluation.

The FreiHAND benchmark script (``eval.py`` with ``EvalUtil``) scores each sample's
21 keypoints and 778 vertices, in metres and camera space:

- **Unaligned** errors: Euclidean distance per point (HandDGP's CS-MJE / CS-MVE, in
  CMR and MobRecon "CS-MPJPE / CS-MPVPE"): :func:`point_error`.
- **Aligned** errors after a similarity Procrustes fit of the prediction to the
  ground truth: :func:`procrustes_align` / :func:`procrustes_error`.
- Per point over the data set: mean error, and the PCK curve over 100 thresholds in
  0–50 mm, whose trapezoid area (normalised) is averaged over points: :func:`pck_auc`.
- F-scores at 5 and 15 mm between the vertex sets: :func:`f_score`.

:class:`FreiHANDEvaluator` accumulates these over a data set and returns the
``scores.txt`` numbers.

The package has three modules: ``dgpgeom.metrics.errors`` (point errors and the
Procrustes alignment), ``dgpgeom.metrics.curves`` (PCK / AUC, F-scores, the PCK
plot) and ``dgpgeom.metrics.freihand`` (the evaluator and its writers); every
public name is also importable from ``dgpgeom.metrics``.

The per-batch functions take any number of leading batch dimensions, run on any
device and never synchronise with the host (:func:`procrustes_align` finds its
rotation with a fixed number of steps, not an SVD).

References:
    C. Zimmermann et al. *FreiHAND: A Dataset for Markerless Capture of Hand Pose and
    Shape from Single RGB Images.* ICCV 2019 (benchmark and evaluation script).
"""

from dgpgeom.metrics.curves import (
    NN_CHUNK_ELEMENTS,
    FScore,
    PCKResult,
    f_score,
    pck_auc,
    pck_from_fractions,
    pck_thresholds,
    plot_pck,
)
from dgpgeom.metrics.errors import (
    NORM_EPS,
    ProcrustesAlignment,
    point_error,
    procrustes_align,
    procrustes_error,
    root_relative_error,
)
from dgpgeom.metrics.freihand import SCORE_KEYS, FreiHANDEvaluator, FreiHANDResult

__all__ = [
    "NN_CHUNK_ELEMENTS",
    "NORM_EPS",
    "SCORE_KEYS",
    "FScore",
    "FreiHANDEvaluator",
    "FreiHANDResult",
    "PCKResult",
    "ProcrustesAlignment",
    "f_score",
    "pck_auc",
    "pck_from_fractions",
    "pck_thresholds",
    "plot_pck",
    "point_error",
    "procrustes_align",
    "procrustes_error",
    "root_relative_error",
]
