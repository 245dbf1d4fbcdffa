"""dgpgeom: differentiable global positioning for PyTorch.

Batched, differentiable weighted-DLT solvers that place a root-relative 3D
shape in camera space from its 2D keypoints and the camera intrinsics, with
analytic backward passes (Valassakis et al., *HandDGP*, ECCV 2024).
"""

from dgpgeom._validate import ShapeError

__version__ = "0.1.0.dev0"

__all__ = ["ShapeError", "__version__"]
