"""Problem generator and peer implementations for the translation benchmark.

Every peer answers the same question: given pixels ``points2d`` ``(B, N, 2)``,
root-relative ``points3d`` ``(B, N, 3)`` in metres, ``intrinsics`` ``(B, 3, 3)``
and ``weights`` ``(B, N)``, return the camera-space translation ``(B, 3)`` that
places ``points3d`` in front of the camera. They differ in what they solve:

- ``lstsq`` and ``solve`` solve exactly dgpgeom's problem (the weighted DLT
  system of HandDGP's Eq. 7), through an explicit ``A``, ``B`` pair;
- ``kornia`` (``solve_pnp_dlt``) and the two OpenCV peers estimate the full
  6-DoF pose (rotation too) and ignore or reinterpret the weights;
- ``slsqp`` fits only the translation, but to the unweighted reprojection
  error in pixels (MobRecon / CMR test-time registration), iteratively.

opencv and scipy are optional (the ``bench`` extra); they are imported only
when their peer runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from kornia.geometry import solve_pnp_dlt

from dgpgeom import refine_translation, solve_translation, solve_translation_multiview
from dgpgeom.solvers import translation as translation_module

__all__ = [
    "PEERS",
    "Peer",
    "Problem",
    "lstsq_translation",
    "make_problems",
    "memcpy_floor",
    "normal_equations_translation",
]

# A right hand in FreiHAND joint order (0 wrist; 1-4 thumb; 5-8 index; 9-12 middle;
# 13-16 ring; 17-20 pinky), in centimetres, x across the palm, y along the fingers.
_HAND_CM = (
    (0.0, 0.0, 0.0),
    (2.5, 1.5, -0.5), (4.0, 3.5, -1.0), (5.0, 5.0, -1.2), (5.8, 6.3, -1.3),
    (2.2, 8.5, 0.0), (2.4, 12.2, 0.0), (2.5, 14.5, 0.0), (2.6, 16.5, 0.0),
    (0.3, 9.0, 0.0), (0.3, 13.0, 0.0), (0.3, 15.6, 0.0), (0.3, 17.6, 0.0),
    (-1.6, 8.5, 0.0), (-1.8, 12.0, 0.0), (-1.9, 14.4, 0.0), (-2.0, 16.2, 0.0),
    (-3.3, 7.5, 0.0), (-3.7, 10.3, 0.0), (-3.9, 12.0, 0.0), (-4.0, 13.6, 0.0),
)  # fmt: skip


class Problem(NamedTuple):
    """A batch of translation problems and their ground truth."""

    points3d: torch.Tensor  # (B, N, 3) metres, root-relative, camera orientation
    points2d: torch.Tensor  # (B, N, 2) pixels
    intrinsics: torch.Tensor  # (B, 3, 3)
    weights: torch.Tensor  # (B, N) in (0.1, 1]
    translation: torch.Tensor  # (B, 3) metres, the true root position

    def head(self, count: int) -> Problem:
        """The first ``count`` problems of the batch."""
        return Problem(*(t[:count] for t in self))

    @property
    def batch(self) -> int:
        return self.points2d.shape[0]


def _random_rotations(batch: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform rotations ``(B, 3, 3)`` from normalised Gaussian quaternions."""
    q = torch.randn(batch, 4, generator=generator, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        (
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ),
        dim=-1,
    ).reshape(batch, 3, 3)  # fmt: skip


def look_at(centres: torch.Tensor, targets: torch.Tensor, roll: torch.Tensor):
    """World-to-camera ``(R (..., 3, 3), t_c (..., 3))`` of cameras at ``centres``
    looking at ``targets`` (both `(..., 3)` metres), rolled by ``roll`` `(...)` radians
    about their optical axes. Shared by the multi-view benchmark and its tests.
    """
    z = targets - centres
    z = z / z.norm(dim=-1, keepdim=True)
    up = torch.tensor([0.3, -1.0, 0.2], dtype=z.dtype).expand_as(z)
    x = torch.linalg.cross(up, z, dim=-1)
    x = x / x.norm(dim=-1, keepdim=True)
    y = torch.linalg.cross(z, x, dim=-1)
    c, s = roll.cos().unsqueeze(-1), roll.sin().unsqueeze(-1)
    rotations = torch.stack((c * x - s * y, s * x + c * y, z), dim=-2)
    return rotations, -(rotations @ centres.unsqueeze(-1)).squeeze(-1)


def make_problems(
    batch: int,
    *,
    num_points: int = 21,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    noise_px: float = 1.0,
) -> Problem:
    """Realistic hand-root problems: a jittered, randomly rotated hand template.

    Keypoints span about 10-12 cm (template scaled by 0.5-0.65 plus 5 mm joint
    jitter), the root is 0.3-2 m deep at a random off-centre pixel (15-85 % of a
    480-1920 px wide image), focal lengths are 300-2000 px, pixel noise is
    Gaussian with ``noise_px`` standard deviation, and weights lie in (0.1, 1].
    Everything is drawn in float64 and cast to ``dtype`` at the end.
    """
    if num_points > len(_HAND_CM):
        raise ValueError(f"num_points must be at most {len(_HAND_CM)}, got {num_points}")
    gen = torch.Generator().manual_seed(seed)
    f64 = torch.float64

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=gen, dtype=f64)

    template = torch.tensor(_HAND_CM[:num_points], dtype=f64) / 100.0
    scale = uniform(0.5, 0.65, batch, 1, 1)
    shape = template * scale + 0.005 * torch.randn(batch, num_points, 3, generator=gen, dtype=f64)
    shape[:, 0] = 0.0  # root-relative: the wrist is the origin
    points3d = shape @ _random_rotations(batch, gen).transpose(-1, -2)

    width = uniform(480.0, 1920.0, batch)
    height = 0.75 * width
    focal = uniform(300.0, 2000.0, batch)
    fx = focal
    fy = focal * uniform(0.98, 1.02, batch)
    cx = width / 2 + 5.0 * torch.randn(batch, generator=gen, dtype=f64)
    cy = height / 2 + 5.0 * torch.randn(batch, generator=gen, dtype=f64)
    zeros, ones = torch.zeros_like(fx), torch.ones_like(fx)
    intrinsics = torch.stack((fx, zeros, cx, zeros, fy, cy, zeros, zeros, ones), dim=-1).reshape(
        batch, 3, 3
    )

    depth = uniform(0.3, 2.0, batch)
    u_root = width * uniform(0.15, 0.85, batch)
    v_root = height * uniform(0.15, 0.85, batch)
    translation = torch.stack(
        (depth * (u_root - cx) / fx, depth * (v_root - cy) / fy, depth), dim=-1
    )

    cam = points3d + translation[:, None, :]
    x = cam[..., 0] / cam[..., 2]
    y = cam[..., 1] / cam[..., 2]
    points2d = torch.stack((fx[:, None] * x + cx[:, None], fy[:, None] * y + cy[:, None]), dim=-1)
    points2d = points2d + noise_px * torch.randn(points2d.shape, generator=gen, dtype=f64)
    weights = 1.0 - 0.9 * torch.rand(batch, num_points, generator=gen, dtype=f64)

    return Problem(
        points3d.to(dtype),
        points2d.to(dtype),
        intrinsics.to(dtype),
        weights.to(dtype),
        translation.to(dtype),
    )


# ---------------------------------------------------------------------------
# Batched torch peers. Each takes (points3d, points2d, intrinsics, weights) and
# returns the translation (B, 3); all are differentiable.


def _normalised(
    points2d: torch.Tensor, intrinsics: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x̃, ỹ`` of ``K⁻¹ (u, v, 1)`` with the closed-form inverse of an upper-triangular K."""
    fx = intrinsics[:, 0, 0, None]
    s = intrinsics[:, 0, 1, None]
    cx = intrinsics[:, 0, 2, None]
    fy = intrinsics[:, 1, 1, None]
    cy = intrinsics[:, 1, 2, None]
    y = (points2d[..., 1] - cy) / fy
    x = (points2d[..., 0] - cx - s * y) / fx
    return x, y


def _weighted_system(
    points3d: torch.Tensor, points2d: torch.Tensor, intrinsics: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's explicit ``W A`` ``(B, 2N, 3)`` and ``W B`` ``(B, 2N, 1)``, rows interleaved (x, y)."""
    x, y = _normalised(points2d, intrinsics)
    minus_one = torch.full_like(x, -1.0)
    zero = torch.zeros_like(x)
    rows_x = torch.stack((minus_one, zero, x), dim=-1)  # (B, N, 3)
    rows_y = torch.stack((zero, minus_one, y), dim=-1)
    a = torch.stack((rows_x, rows_y), dim=2).flatten(1, 2)  # (B, 2N, 3)
    b = torch.stack(
        (points3d[..., 0] - points3d[..., 2] * x, points3d[..., 1] - points3d[..., 2] * y), dim=2
    ).flatten(1, 2)  # (B, 2N)
    w = weights.repeat_interleave(2, dim=1)  # (B, 2N)
    return a * w[..., None], (b * w)[..., None]


def lstsq_translation(points3d, points2d, intrinsics, weights):
    """HandDGP's reference solve: explicit weighted ``A``, ``B`` and ``torch.linalg.lstsq``."""
    a, b = _weighted_system(points3d, points2d, intrinsics, weights)
    return torch.linalg.lstsq(a, b).solution[..., 0]


def normal_equations_translation(points3d, points2d, intrinsics, weights):
    """``Aᵀ W² A t = Aᵀ W² B`` built from the explicit ``A``, solved with ``torch.linalg.solve``."""
    a, b = _weighted_system(points3d, points2d, intrinsics, weights)
    at = a.transpose(-1, -2)
    return torch.linalg.solve(at @ a, at @ b)[..., 0]


def kornia_translation(points3d, points2d, intrinsics, weights):
    """kornia's 6-DoF DLT PnP; the translation column of the world-to-camera ``[R | t]``."""
    return solve_pnp_dlt(points3d, points2d, intrinsics, weights=weights)[..., 3]


def centred_prototype_translation(points3d, points2d, intrinsics, weights):
    """The centred closed form in plain autograd (about 45 ops, no validity checks).

    The formulation ``solve_translation`` implements, written the shortest way: the
    bar ``dgpgeom`` must clear at every batch size.
    """
    x, y = _normalised(points2d, intrinsics)
    w2 = weights.square()
    omega = w2 / w2.sum(-1, keepdim=True)
    X, Y, Z = points3d.unbind(-1)
    bx = X - Z * x
    by = Y - Z * y
    mean_x = (omega * x).sum(-1, keepdim=True)
    mean_y = (omega * y).sum(-1, keepdim=True)
    dx = x - mean_x
    dy = y - mean_y
    tz = (omega * (dx * bx + dy * by)).sum(-1) / (omega * (dx * dx + dy * dy)).sum(-1)
    tx = mean_x[..., 0] * tz - (omega * bx).sum(-1)
    ty = mean_y[..., 0] * tz - (omega * by).sum(-1)
    return torch.stack((tx, ty, tz), -1)


def dgpgeom_translation(points3d, points2d, intrinsics, weights):
    """dgpgeom's closed-form weighted DLT translation."""
    return solve_translation(points3d, points2d, intrinsics, weights).translation


def _solve_with_limit(limit_name: str, points3d, points2d, intrinsics, weights):
    """The solver's translation with one of its CPU-path limits set to 0 for this call."""
    limit = getattr(translation_module, limit_name)
    setattr(translation_module, limit_name, 0)
    try:
        return solve_translation(points3d, points2d, intrinsics, weights).translation
    finally:
        setattr(translation_module, limit_name, limit)


def dgpgeom_torch_translation(points3d, points2d, intrinsics, weights):
    """dgpgeom's solver on its torch path (the one GPUs take), whatever the batch size."""
    return _solve_with_limit("NUMPY_PATH_MAX_POINTS", points3d, points2d, intrinsics, weights)


def dgpgeom_numpy_translation(points3d, points2d, intrinsics, weights):
    """dgpgeom's solver with its scalar path for one CPU problem turned off (NumPy instead)."""
    return _solve_with_limit("SCALAR_PATH_MAX_POINTS", points3d, points2d, intrinsics, weights)


def dgpgeom_refine_translation(points3d, points2d, intrinsics, weights):
    """dgpgeom's DLT followed by 5 robust (Huber, 2 px) Gauss-Newton steps on the pixel error."""
    return refine_translation(points3d, points2d, intrinsics, weights, robust="huber").translation


def dgpgeom_multiview_translation(points3d, points2d, intrinsics, weights):
    """dgpgeom's multi-view solver with one camera at the origin (the cost of one view)."""
    eye = torch.eye(3, dtype=points2d.dtype, device=points2d.device)
    rotations = eye.expand(*points2d.shape[:-2], 1, 3, 3)
    offsets = points2d.new_zeros((*points2d.shape[:-2], 1, 3))
    return solve_translation_multiview(
        points3d,
        points2d.unsqueeze(-3),
        intrinsics.unsqueeze(-3),
        rotations,
        offsets,
        weights.unsqueeze(-2),
    ).translation


def memcpy_floor(points3d, points2d, intrinsics, weights):
    """The floor: copy every input once (what any solver must at least read)."""
    return (points2d.clone(), points3d.clone(), intrinsics.clone(), weights.clone())


# ---------------------------------------------------------------------------
# Per-problem CPU peers: a Python loop over the batch, NumPy in and out.


def _opencv_translation(flag_name: str):
    def run(points3d, points2d, intrinsics, weights):
        import cv2

        flag = getattr(cv2, flag_name)
        img = points2d.detach().numpy()
        obj = points3d.detach().numpy()
        cam = intrinsics.detach().numpy()
        out = np.empty((img.shape[0], 3), dtype=np.float64)
        for i in range(img.shape[0]):
            _, _, tvec = cv2.solvePnP(obj[i], img[i], cam[i], None, flags=flag)
            out[i] = tvec[:, 0]
        return torch.from_numpy(out).to(points2d.dtype)

    return run


def _slsqp_fit(uv: np.ndarray, joints: np.ndarray, cam: np.ndarray, z_min: float) -> np.ndarray:
    """MobRecon-style registration: SLSQP on mean squared pixel reprojection error."""
    from scipy.optimize import minimize

    fx, s, cx, fy, cy = cam[0, 0], cam[0, 1], cam[0, 2], cam[1, 1], cam[1, 2]

    def objective(t: np.ndarray) -> float:
        p = joints + t
        x = p[:, 0] / p[:, 2]
        y = p[:, 1] / p[:, 2]
        du = fx * x + s * y + cx - uv[:, 0]
        dv = fy * y + cy - uv[:, 1]
        return float(np.mean(np.concatenate((du * du, dv * dv))))

    result = minimize(
        objective,
        np.array([0.0, 0.0, 0.6]),
        method="SLSQP",
        bounds=((None, None), (None, None), (z_min, 2.0)),
    )
    return result.x


def slsqp_translation(points3d, points2d, intrinsics, weights, *, z_min: float = 0.05):
    """Per-problem SciPy SLSQP fit of the translation (weights unused, as in MobRecon)."""
    img = points2d.detach().to(torch.float64).numpy()
    obj = points3d.detach().to(torch.float64).numpy()
    cam = intrinsics.detach().to(torch.float64).numpy()
    out = np.empty((img.shape[0], 3), dtype=np.float64)
    for i in range(img.shape[0]):
        out[i] = _slsqp_fit(img[i], obj[i], cam[i], z_min)
    return torch.from_numpy(out).to(points2d.dtype)


# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """One implementation under test.

    ``kind`` is ``"batched"`` (one call solves the batch), ``"per_problem"`` (a Python
    loop; timed on a sample and extrapolated) or ``"floor"`` (the memcpy floor).
    """

    name: str
    label: str
    kind: str
    differentiable: bool
    fn: Callable
    note: str = ""


PEERS: dict[str, Peer] = {
    p.name: p
    for p in (
        Peer("dgpgeom", "dgpgeom (eager)", "batched", True, dgpgeom_translation),
        Peer(
            "dgpgeom_torch",
            "dgpgeom, torch path",
            "batched",
            True,
            dgpgeom_torch_translation,
            "the solver with its NumPy and scalar paths for CPU calls turned off: the path GPUs take",
        ),
        Peer(
            "dgpgeom_numpy",
            "dgpgeom, NumPy path",
            "batched",
            True,
            dgpgeom_numpy_translation,
            "the solver with its scalar path for one CPU problem turned off: NumPy at B=1 too",
        ),
        Peer(
            "dgpgeom_refine",
            "dgpgeom refine (Huber, 5 steps)",
            "batched",
            True,
            dgpgeom_refine_translation,
            "the DLT, then 5 IRLS Gauss-Newton steps on the true pixel error (Huber, 2 px)",
        ),
        Peer(
            "dgpgeom_multiview",
            "dgpgeom multiview (1 camera)",
            "batched",
            True,
            dgpgeom_multiview_translation,
            "the multi-view solver with one identity camera: the cost per view",
        ),
        Peer(
            "prototype",
            "centred closed form (plain autograd)",
            "batched",
            True,
            centred_prototype_translation,
            "the same centred closed form in plain autograd, no validity checks: the bar",
        ),
        Peer(
            "lstsq",
            "lstsq (paper's A, B)",
            "batched",
            True,
            lstsq_translation,
            "explicit weighted A (B,2N,3), B (B,2N,1), torch.linalg.lstsq: the HandDGP reference solve",
        ),
        Peer(
            "solve",
            "normal eq. + linalg.solve",
            "batched",
            True,
            normal_equations_translation,
            "AᵀW²A t = AᵀW²B from the explicit A, torch.linalg.solve",
        ),
        Peer(
            "kornia",
            "kornia solve_pnp_dlt",
            "batched",
            True,
            kornia_translation,
            "full 6-DoF PnP (rotation too) by DLT + SVD; needs N ≥ 6",
        ),
        Peer(
            "cv2_epnp",
            "cv2.solvePnP EPnP",
            "per_problem",
            False,
            _opencv_translation("SOLVEPNP_EPNP"),
            "full 6-DoF pose, no weights, Python loop over problems",
        ),
        Peer(
            "cv2_iterative",
            "cv2.solvePnP ITERATIVE",
            "per_problem",
            False,
            _opencv_translation("SOLVEPNP_ITERATIVE"),
            "full 6-DoF pose (DLT init + Levenberg-Marquardt), no weights, Python loop",
        ),
        Peer(
            "slsqp",
            "SciPy SLSQP (MobRecon)",
            "per_problem",
            False,
            slsqp_translation,
            "translation only, unweighted mean squared reprojection error, t0=(0,0,0.6), "
            "z ∈ [0.05, 2], numerical gradients, single fit (no outlier loop)",
        ),
        Peer(
            "memcpy",
            "memcpy floor",
            "floor",
            False,
            memcpy_floor,
            "clone of points3d, points2d, intrinsics, weights",
        ),
    )
}


def translation_error(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    """Largest Euclidean distance between two ``(B, 3)`` translations, in metres."""
    return float((estimate.double() - reference.double()).norm(dim=-1).max())


def per_problem_bytes(num_points: int, dtype: torch.dtype) -> int:
    """Bytes of one problem's inputs (points3d, points2d, weights, intrinsics)."""
    return (num_points * (2 + 3 + 1) + 9) * (torch.finfo(dtype).bits // 8)
