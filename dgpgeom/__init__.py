"""dgpgeom: differentiable global positioning for PyTorch.

Batched, differentiable weighted-DLT solvers that place a root-relative 3D
shape in camera space from its 2D keypoints and the camera intrinsics, with
analytic backward passes (Valassakis and Garcia-Hernando, *HandDGP*, ECCV 2024).
"""

from dgpgeom import camera, losses, metrics, nn, rectification, solvers, validation
from dgpgeom.metrics import FreiHANDEvaluator
from dgpgeom.nn import DifferentiableGlobalPositioning
from dgpgeom.rectification import Rectification, rectify
from dgpgeom.solvers import (
    MeshPlacement,
    MultiviewTranslationSolution,
    RefinedTranslation,
    TranslationSolution,
    position_mesh,
    refine_translation,
    regress_keypoints,
    solve_translation,
    solve_translation_multiview,
)
from dgpgeom.validation import ShapeError

__version__ = "0.1.0.dev0"

__all__ = [
    "DifferentiableGlobalPositioning",
    "FreiHANDEvaluator",
    "MeshPlacement",
    "MultiviewTranslationSolution",
    "Rectification",
    "RefinedTranslation",
    "ShapeError",
    "TranslationSolution",
    "__version__",
    "camera",
    "losses",
    "metrics",
    "nn",
    "position_mesh",
    "rectification",
    "rectify",
    "refine_translation",
    "regress_keypoints",
    "solve_translation",
    "solve_translation_multiview",
    "solvers",
    "validation",
]
