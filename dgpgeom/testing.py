"""Hypothesis strategies and gradient checks for code built on dgpgeom.

Import this module in your own test suite. It needs ``hypothesis``, which
``dgpgeom`` itself does not import: ``pip install "dgpgeom[testing]"`` brings it::

    from hypothesis import given
    from dgpgeom.testing import translation_problems

    @given(translation_problems())
    def test_recovers_translation(problem):
        ...

Problems are drawn from a few scalar parameters (point count, depth, focal length,
object size, a seed) that hypothesis shrinks, and the tensors are generated from
them with a seeded ``torch.Generator``, which keeps drawing fast even for large N.

The naive autograd twins of the functions with a hand-written backward
(:func:`solve_translation_naive`, :func:`solve_translation_multiview_naive`) compute the same numbers through plain autograd, to
check the gradients of your own code against.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from dgpgeom.camera import project
from dgpgeom.solvers.multiview import solve_translation_multiview_naive
from dgpgeom.solvers.translation import solve_translation_naive

try:
    from hypothesis import strategies as st
except ModuleNotFoundError as error:  # a plain install: dgpgeom does not depend on it
    if error.name != "hypothesis":
        raise
    raise ImportError(
        "dgpgeom.testing needs hypothesis, which a plain install of dgpgeom does not "
        'bring: install it with `pip install "dgpgeom[testing]"` '
        "(or `pip install hypothesis`)",
        name=error.name,
    ) from error

__all__ = [
    "TranslationProblem",
    "check_gradients",
    "degenerate_translation_problems",
    "random_intrinsics",
    "solve_translation_multiview_naive",
    "solve_translation_naive",
    "translation_problems",
]


class TranslationProblem(NamedTuple):
    """A drawn problem: the inputs of :func:`~dgpgeom.solve_translation` and the truth.

    Attributes:
        points3d: `(*batch, N, 3)` metres, root-relative (point 0 is the root).
        points2d: `(*batch, N, 2)` pixels (with ``noise_px`` Gaussian noise).
        intrinsics: `(*batch, 3, 3)` pixels.
        weights: `(*batch, N)`, in (0, 1], with exact zeros if requested.
        translation: `(*batch, 3)` metres, the true translation.
        image_size: ``(height, width)`` pixels of the drawn camera.
    """

    points3d: Tensor
    points2d: Tensor
    intrinsics: Tensor
    weights: Tensor
    translation: Tensor
    image_size: tuple[int, int]


def random_intrinsics(
    batch_shape: Sequence[int],
    image_size: tuple[int, int],
    *,
    focal_range: tuple[float, float] = (300.0, 2000.0),
    skew: bool = False,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Random pinhole intrinsics with ``fx != fy`` and an off-centre principal point.

    Args:
        batch_shape: leading shape of the result.
        image_size: ``(height, width)`` pixels.
        focal_range: range of ``fx`` in pixels; ``fy = fx · U(0.9, 1.1)``.
        skew: draw a small skew (``|s| < 0.01 fx``) as well.
        generator: the random source.
        dtype: floating dtype of the result.

    Returns:
        `(*batch_shape, 3, 3)` intrinsics.

    Example:
        >>> import torch
        >>> K = random_intrinsics((2,), (480, 640), generator=torch.Generator().manual_seed(0))
        >>> K.shape, bool((K[:, 0, 0] != K[:, 1, 1]).all())
        (torch.Size([2, 3, 3]), True)
    """
    shape = tuple(batch_shape)

    def uniform(low: float, high: float) -> Tensor:
        return low + (high - low) * torch.rand(shape, generator=generator, dtype=dtype)

    height, width = image_size
    fx = uniform(*focal_range)
    fy = fx * uniform(0.9, 1.1)
    cx = (width - 1) / 2 + uniform(-0.1, 0.1) * width
    cy = (height - 1) / 2 + uniform(-0.1, 0.1) * height
    s = uniform(-0.01, 0.01) * fx if skew else torch.zeros_like(fx)
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    rows = [torch.stack(r, -1) for r in ((fx, s, cx), (zero, fy, cy), (zero, zero, one))]
    return torch.stack(rows, -2)


@st.composite
def translation_problems(
    draw: st.DrawFn,
    *,
    batch_shape: Sequence[int] = (),
    min_points: int = 2,
    max_points: int = 100,
    depth_range: tuple[float, float] = (0.1, 10.0),
    size_range: tuple[float, float] = (0.05, 0.3),
    focal_range: tuple[float, float] = (300.0, 2000.0),
    noise_px: float = 0.0,
    zero_weights: bool = True,
    skew: bool = False,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> TranslationProblem:
    """Well-posed translation problems: a random point cloud seen by a random camera.

    The root (point 0) projects inside the image at a depth drawn log-uniformly from
    ``depth_range``; the other points lie in a box of side ``size`` around it, kept
    at least a few centimetres in front of the camera. At least three points keep a
    non-zero weight (all points when ``N < 4``), so the problem is never degenerate.

    Never degenerate means a unique solution in exact arithmetic. In float32 a small
    object far away (under about 0.4° across, e.g. 5 cm at 8 m) falls below the
    conditioning threshold of :func:`~dgpgeom.solve_translation`, which then reports
    ``valid=False``: with the default ranges about 1 % of float32 problems do. For
    float32 tests, narrow the ranges (e.g. ``depth_range=(0.3, 2.0)``).

    Args:
        batch_shape: leading shape of every tensor.
        min_points, max_points: range of ``N`` (``min_points >= 3`` when
            ``zero_weights``).
        depth_range: metres, range of the root depth.
        size_range: metres, range of the object's size.
        focal_range: pixels, range of ``fx``.
        noise_px: standard deviation of Gaussian noise added to ``points2d``.
        zero_weights: set some weights exactly to zero.
        skew: draw intrinsics with skew.
        dtype, device: of the tensors.

    Returns:
        A strategy of :class:`TranslationProblem`.
    """
    num_points = draw(st.integers(min_points, max_points), label="N")
    depth = math.exp(draw(st.floats(*map(math.log, depth_range)), label="log depth"))
    size = draw(st.floats(*size_range), label="size")
    height = draw(st.integers(224, 640), label="height")
    width = draw(st.integers(224, 640), label="width")
    seed = draw(st.integers(0, 2**31 - 1), label="seed")
    gen = torch.Generator().manual_seed(seed)
    shape = tuple(batch_shape)

    intrinsics = random_intrinsics(
        shape, (height, width), focal_range=focal_range, skew=skew, generator=gen, dtype=dtype
    )
    root_px = torch.rand((*shape, 2), generator=gen, dtype=dtype) * torch.tensor(
        [width - 1, height - 1], dtype=dtype
    )
    fx, fy = intrinsics[..., 0, 0], intrinsics[..., 1, 1]
    cx, cy, s = intrinsics[..., 0, 2], intrinsics[..., 1, 2], intrinsics[..., 0, 1]
    y = (root_px[..., 1] - cy) / fy
    x = (root_px[..., 0] - cx - s * y) / fx
    translation = torch.stack((x, y, torch.ones_like(x)), -1) * depth

    points3d = (torch.rand((*shape, num_points, 3), generator=gen, dtype=dtype) - 0.5) * size
    points3d[..., 0, :] = 0.0
    # Keep every point in front of the camera (a hand near the lens stays visible).
    min_z = 0.5 * depth_range[0] - depth
    points3d[..., 2] = points3d[..., 2].clamp(min=min_z)
    points2d = project(points3d + translation.unsqueeze(-2), intrinsics).points2d
    if noise_px > 0:
        points2d = points2d + noise_px * torch.randn(points2d.shape, generator=gen, dtype=dtype)

    weights = 0.1 + 0.9 * torch.rand((*shape, num_points), generator=gen, dtype=dtype)
    if zero_weights and num_points > 3:
        dropped = torch.rand((*shape, num_points), generator=gen) < 0.3
        dropped[..., :3] = False
        weights = torch.where(dropped, torch.zeros_like(weights), weights)
    return TranslationProblem(
        points3d.to(device),
        points2d.to(device),
        intrinsics.to(device),
        weights.to(device),
        translation.to(device),
        (height, width),
    )


@st.composite
def degenerate_translation_problems(
    draw: st.DrawFn, *, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"
) -> TranslationProblem:
    """Problems without a unique translation; a solver must flag them ``valid=False``.

    Draws one of: all weights zero; a single point with non-zero weight; all points
    on one camera ray (every 2D point identical, 3D points along that ray).

    Returns:
        A strategy of :class:`TranslationProblem` (its ``translation`` is one of the
        many exact solutions).
    """
    kind = draw(st.sampled_from(["zero_weights", "one_point", "one_ray"]), label="kind")
    problem = draw(translation_problems(min_points=3, max_points=30, dtype=dtype))
    points3d, points2d, intrinsics, weights, translation, size = problem
    if kind == "zero_weights":
        weights = torch.zeros_like(weights)
    elif kind == "one_point":
        keep = draw(st.integers(0, weights.shape[-1] - 1), label="kept point")
        weights = torch.zeros_like(weights)
        weights[..., keep] = 1.0
    else:
        ray = translation / translation[..., 2:]
        depths = torch.linspace(-0.05, 0.05, points3d.shape[-2], dtype=dtype)
        points3d = depths.unsqueeze(-1) * ray.unsqueeze(-2)
        points2d = project(points3d + translation.unsqueeze(-2), intrinsics).points2d
    return TranslationProblem(
        points3d.to(device),
        points2d.to(device),
        intrinsics.to(device),
        weights.to(device),
        translation.to(device),
        size,
    )


def check_gradients(
    fn: Callable[..., object],
    *inputs: Tensor,
    gradgrad: bool = True,
    atol: float = 1e-6,
    rtol: float = 1e-4,
) -> bool:
    """Finite-difference check of first (and second) derivatives in float64.

    Floating inputs are cast to float64 and marked as requiring grad; the function
    may return a tensor, a tuple or a NamedTuple: its floating-point outputs are
    checked, others (such as a ``valid`` mask) ignored.

    Args:
        fn: the function under test.
        *inputs: its tensor arguments.
        gradgrad: also run :func:`torch.autograd.gradgradcheck`.
        atol, rtol: tolerances passed to the checks.

    Returns:
        True. A failing check raises ``torch.autograd.gradcheck.GradcheckError``.

    Example:
        >>> import torch
        >>> check_gradients(lambda x: (x.sin(), x > 0), torch.rand(3))
        True
    """
    prepared = tuple(
        x.detach().to(torch.float64).requires_grad_() if x.is_floating_point() else x
        for x in inputs
    )

    def floating_outputs(*args: Tensor) -> tuple[Tensor, ...]:
        out = fn(*args)
        outputs = (out,) if isinstance(out, Tensor) else tuple(out)  # type: ignore[arg-type]
        return tuple(o for o in outputs if isinstance(o, Tensor) and o.is_floating_point())

    torch.autograd.gradcheck(floating_outputs, prepared, atol=atol, rtol=rtol)
    if gradgrad:
        torch.autograd.gradgradcheck(floating_outputs, prepared, atol=atol, rtol=rtol)
    return True
