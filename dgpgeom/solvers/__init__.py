"""Camera-space translation solvers."""

from dgpgeom.solvers.placement import MeshPlacement, position_mesh, regress_keypoints
from dgpgeom.solvers.translation import TranslationSolution, solve_translation

__all__ = [
    "MeshPlacement",
    "TranslationSolution",
    "position_mesh",
    "regress_keypoints",
    "solve_translation",
]
