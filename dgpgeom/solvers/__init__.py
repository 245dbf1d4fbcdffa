"""Camera-space translation solvers."""

from dgpgeom.solvers.translation import TranslationSolution, solve_translation

__all__ = ["TranslationSolution", "solve_translation"]
