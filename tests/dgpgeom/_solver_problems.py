"""Fixed problems and independent reference computations shared by the solver tests.

Property tests draw their problems from :mod:`dgpgeom.testing`; the tests that need
one fixed, reproducible problem (gradcheck, compile, Monte Carlo) build it here with
:func:`dgpgeom.testing.random_intrinsics` and a seeded generator. Every reference
computation in this module is written from the paper's equations, without the
library's own helpers, so that it can disagree with them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import pytest
import torch
from torch import Tensor

from dgpgeom import ShapeError
from dgpgeom.testing import TranslationProblem, random_intrinsics

F64 = torch.float64


def project(points_cam: Tensor, intrinsics: Tensor) -> Tensor:
    """Pinhole projection `(..., N, 3)` metres -> `(..., N, 2)` pixels."""
    uvw = (intrinsics.unsqueeze(-3) @ points_cam.unsqueeze(-1)).squeeze(-1)
    return uvw[..., :2] / uvw[..., 2:]


def make_problem(
    seed: int,
    batch_shape: Sequence[int] = (),
    num_points: int = 21,
    *,
    depth_range: tuple[float, float] = (0.3, 2.0),
    size: float = 0.1,
    noise_px: float = 1.0,
    focal_range: tuple[float, float] = (300.0, 2000.0),
    image_size: tuple[int, int] = (480, 640),
    min_weight: float = 0.1,
    dtype: torch.dtype = F64,
    device: torch.device | str = "cpu",
) -> TranslationProblem:
    """A reproducible problem: a `size`-metre cloud whose root projects inside the image.

    The defaults are a hand (21 keypoints, 10 cm) 0.3-2 m away seen with 1 px noise.
    Weights are drawn in ``[min_weight, 1]``, never zero.
    """
    gen = torch.Generator().manual_seed(seed)
    shape = tuple(batch_shape)
    height, width = image_size
    intrinsics = random_intrinsics(
        shape, image_size, focal_range=focal_range, skew=True, generator=gen, dtype=F64
    )
    low, high = map(math.log, depth_range)
    depth = torch.exp(low + (high - low) * torch.rand(shape, generator=gen, dtype=F64))
    root_px = torch.rand((*shape, 2), generator=gen, dtype=F64) * torch.tensor(
        [width - 1, height - 1], dtype=F64
    )
    homogeneous = torch.cat((root_px, torch.ones_like(root_px[..., :1])), -1)
    ray = torch.linalg.solve(intrinsics, homogeneous.unsqueeze(-1)).squeeze(-1)
    translation = ray * depth.unsqueeze(-1)
    points3d = (torch.rand((*shape, num_points, 3), generator=gen, dtype=F64) - 0.5) * size
    points3d[..., 0, :] = 0.0
    points2d = project(points3d + translation.unsqueeze(-2), intrinsics)
    points2d = points2d + noise_px * torch.randn(points2d.shape, generator=gen, dtype=F64)
    weights = min_weight + (1.0 - min_weight) * torch.rand(
        (*shape, num_points), generator=gen, dtype=F64
    )
    return TranslationProblem(
        *(t.to(device=device, dtype=dtype) for t in (points3d, points2d, intrinsics, weights)),
        translation.to(device=device, dtype=dtype),
        image_size,
    )


def well_scaled_problem(
    seed: int, batch_shape: Sequence[int] = (), num_points: int = 4
) -> TranslationProblem:
    """A float64 problem with every quantity of order one, for finite-difference checks.

    Central differences with a fixed step are only accurate when the third
    derivatives are moderate. At a realistic scale (pixels of order 1000, metres of
    order 0.1) the second derivatives of the pixel residuals reach 1e6 and a fixed
    step of 1e-6 is far too coarse for ``gradgradcheck``; the derivative formulas do
    not depend on the scale, so the checks run on this rescaled camera instead.
    """
    return make_problem(
        seed,
        batch_shape,
        num_points,
        depth_range=(2.5, 3.5),
        size=2.0,
        noise_px=0.1,
        focal_range=(1.5, 3.0),
        image_size=(2, 2),
        min_weight=0.5,
    )


def explicit_system(
    points3d: Tensor, points2d: Tensor, intrinsics: Tensor, weights: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """The paper's ``A`` `(2N, 3)`, ``B`` `(2N,)` (Eq. 5) and ``W`` `(2N, 2N)` (Eq. 7).

    Unbatched. ``K^-1`` is applied with a general solve (Eq. 4), independently of the
    library's closed form.
    """
    num_points = points2d.shape[-2]
    homogeneous = torch.cat((points2d, torch.ones_like(points2d[..., :1])), -1)
    normalized = torch.linalg.solve(intrinsics, homogeneous.T).T  # (N, 3)
    u, v = normalized[:, 0], normalized[:, 1]
    x, y, z = points3d.unbind(-1)
    A = torch.zeros(2 * num_points, 3, dtype=points2d.dtype, device=points2d.device)
    A[0::2, 0] = -1.0
    A[0::2, 2] = u
    A[1::2, 1] = -1.0
    A[1::2, 2] = v
    B = torch.empty(2 * num_points, dtype=points2d.dtype, device=points2d.device)
    B[0::2] = x - z * u
    B[1::2] = y - z * v
    W = torch.diag(weights.repeat_interleave(2))
    return A, B, W


def reprojection_error(
    points3d: Tensor, points2d: Tensor, intrinsics: Tensor, translation: Tensor
) -> Tensor:
    """``‖project(K, points3d + t) - points2d‖`` `(..., N)` pixels."""
    projected = project(points3d + translation.unsqueeze(-2), intrinsics)
    return (projected - points2d).norm(dim=-1)


#: Options validated by dgpgeom.validation.check_option (ValueError, not ShapeError).
OPTION_NAMES = ("damping", "iterations", "robust", "scale", "min_depth", "delta", "kind")


def expected_error(pattern: str) -> type[Exception]:
    """The exception class a bad-input message pattern belongs to.

    A non-tensor is a ``TypeError``, a bad option a plain ``ValueError``, anything
    else about a tensor a ``ShapeError``.
    """
    if "expected a torch.Tensor" in pattern:
        return TypeError
    name = pattern.lstrip("^").split(":")[0]
    return ValueError if name in OPTION_NAMES else ShapeError


@contextlib.contextmanager
def raises_for(pattern: str) -> Iterator[pytest.ExceptionInfo]:
    """``pytest.raises`` of exactly :func:`expected_error` ``(pattern)``, matching it."""
    error = expected_error(pattern)
    with pytest.raises(error, match=pattern) as info:
        yield info
    assert type(info.value) is error, f"expected {error.__name__}, got {info.value!r}"
