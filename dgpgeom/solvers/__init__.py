"""Camera-space translation solvers."""

from dgpgeom.solvers.multiview import MultiviewTranslationSolution, solve_translation_multiview
from dgpgeom.solvers.placement import MeshPlacement, position_mesh, regress_keypoints
from dgpgeom.solvers.refine import RefinedTranslation, refine_translation
from dgpgeom.solvers.translation import TranslationSolution, solve_translation

__all__ = [
    "MeshPlacement",
    "MultiviewTranslationSolution",
    "RefinedTranslation",
    "TranslationSolution",
    "position_mesh",
    "refine_translation",
    "regress_keypoints",
    "solve_translation",
    "solve_translation_multiview",
]
