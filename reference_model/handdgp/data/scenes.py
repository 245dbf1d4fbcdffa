"""Random scenes for the synthetic data set: a posed hand, its camera and what hides it.

A scene is everything geometric about one sample, in the OpenCV camera frame
(x right, y down, z forward, metres; pixel centres on integer coordinates):

- **Hand.** Pose and shape come from the hand model's samplers
  (:func:`~handdgp.hand.sample_hand_pose`, grasp-like correlated curls, and
  :func:`~handdgp.hand.sample_hand_shape`). Hand sizes spread by
  ``hand_size_spread`` (standard deviation over mean of the summed bone length,
  default 7 %, about the spread of adult hand length across both sexes); the
  template's own population, which spans adolescents to the tallest adults, spreads
  by about 14 %, twice what people's hands do, and one image cannot tell a large far
  hand from a small near one. The template frame has the wrist at the
  origin, +y along the hand and +x out of its back; the global orientation ``R``
  (``pose[0]``) maps it into the camera frame, so ``R e_y`` is where the fingers
  point and ``R e_x`` where the back of the hand faces. Half of the hands
  (``upright_fraction``) point roughly up the image, as hands in photographs do:
  fingers within 60° of image-up, tilted between 30° towards and 45° away from the
  camera, palm facing any way about that direction. The others are uniform over
  SO(3).
- **Camera.** Image width and height are drawn independently and uniformly in
  ``image_size_range``; the principal point off the image centre by up to
  ``principal_point_jitter`` of the image size, per axis; the focal length
  log-uniformly in ``focal_range``, cut at the largest focal length at which the
  hand could fit in the image at the far end of ``depth_range`` (with 224-pixel
  images, long focal lengths only fit small or far hands); ``fy = fx (1 +
  U(-aspect_jitter, aspect_jitter))``.
- **Placement.** The root (wrist) depth is uniform in ``depth_range`` restricted to
  the depths at which the whole hand fits in the image, then the root's pixel is
  uniform over the positions that keep every hand vertex at least ``image_margin``
  pixels inside the image. For a fixed depth each vertex's pixel is affine in the
  root's normalised image coordinate, so the allowed root positions are an exact
  interval per axis (decided by the convex hull of the vertices); the allowed depths
  are bracketed on a 33-point grid and drawn by rejection within one grid step. A
  camera in which the hand fits at no depth is drawn again. A fraction
  ``cropped_fraction`` of the hands may instead overhang the image by up to 35 % of
  its size on each side (the root stays inside): partially visible hands, whose
  outside keypoints are marked not visible.
- **Forearm.** With probability ``forearm_probability`` a tapered tube 25-50 cm
  long (the forearm, and the upper arm straight on when long) continues the hand
  mesh's open wrist ring along ``-R e_y``. The hand mesh ends at the wrist joint, so
  the first 4 cm of the tube, the wrist cuff, count as hand: they are in the hand
  mask and are the wrist keypoint's own skin, and hands without a forearm keep the
  cuff, closed by a cap. The rest of the arm is not in the mask and hides keypoints
  like an occluder.
- **Occluder.** With probability ``occluder_probability`` a superellipsoid (sphere,
  box, cylinder and everything between), 1-4 cm half-extents, is placed 0.5-4 cm
  in front of a random finger keypoint along its line of sight, off by up to 1.5 cm.

Sample ``i`` draws from ``numpy.random.default_rng([seed, 0, i])`` (split into
independent streams for geometry and appearance), except for the hand's pose and
shape: the hand samplers are batched, so they draw 64 hands at a time, block
``b = i // 64`` from a generator seeded with ``(seed, 1, b)``. Either way every
sample is a pure function of ``(seed, i)`` and the configuration, whatever the
number of samples, chunks or workers.

Visibility of a keypoint (:func:`keypoint_visibility`): it projects inside the image
and nothing hides it. Keypoints are joint centres 0.5-2.5 cm under the skin (the
wrist and knuckles deepest), so neither a plain depth test against the rendered
depth nor the distance to the nearest vertex works: the skin right over a joint
would hide it. Instead each keypoint owns the skin of the bones that meet at it
(faces whose vertices are mostly skinned to its joint, its parent or its children;
the distal phalanx for a fingertip; the palm and the wrist cuff for the wrist). The
surface rendered at the keypoint's nearest pixel hides it unless that surface is its
own skin no more than ``max_skin_depth`` (3 cm) in front of it, or lies at most
``tolerance`` (2 mm) in front of it, or the pixel is empty. A fingertip vertex on the
silhouette can fall on an empty pixel: then the frontmost surface among the 8
neighbouring pixels is tested instead. Another finger, the occluder, or the keypoint's
own finger seen end-on from further than 3 cm, therefore hide it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from kornia.geometry.conversions import rotation_matrix_to_axis_angle

from handdgp.hand import HandModel, HandTemplate, sample_hand_pose, sample_hand_shape

__all__ = [
    "BLOCK_SIZE",
    "HandScene",
    "SceneConfig",
    "forearm_faces",
    "keypoint_skin",
    "keypoint_visibility",
    "occluder_topology",
    "sample_orientation",
    "sample_scenes",
    "scene_rng",
    "wrist_ring",
]

BLOCK_SIZE = 64
_OCCLUDER_GRID = (10, 16)  # latitude rings (without the poles) x longitude segments
# Ring positions along the forearm: the wrist ring, the end of the wrist cuff (metres),
# then fractions of the forearm's length.
_WRIST_CUFF = 0.04
_FOREARM_STATIONS = (0.0, _WRIST_CUFF, 0.35, 0.65, 1.0)
_ZNEAR = 0.05  # metres: geometry of interest stays beyond this depth
_HIDDEN = (0.0, 0.0, -1.0)  # where absent meshes are collapsed (behind the camera)


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn; see the module docstring for the distributions.

    Attributes:
        image_size_range: ``(min, max)`` pixels for width and height, each drawn
            independently (inclusive).
        focal_range: ``(min, max)`` focal length, pixels, drawn log-uniformly.
        aspect_jitter: ``fy / fx - 1`` is uniform in ``±aspect_jitter``.
        principal_point_jitter: principal point offset from the image centre,
            uniform in ``±`` this fraction of the image width / height.
        depth_range: ``(min, max)`` root (wrist) depth, metres.
        image_margin: pixels that fully visible hands keep from the image border.
        cropped_fraction: fraction of hands allowed to leave the image.
        upright_fraction: fraction of hands pointing roughly up the image.
        forearm_probability: probability of rendering a forearm.
        occluder_probability: probability of an occluding object.
        max_skin_depth: metres; see :func:`keypoint_visibility`.
        visibility_tolerance: metres; see :func:`keypoint_visibility`.
        hand_size_spread: the hands' size spread (standard deviation over mean),
            or ``None`` for the template's population (about 14 %).
    """

    image_size_range: tuple[int, int] = (224, 640)
    focal_range: tuple[float, float] = (300.0, 2000.0)
    aspect_jitter: float = 0.02
    principal_point_jitter: float = 0.1
    depth_range: tuple[float, float] = (0.3, 1.0)
    image_margin: float = 2.0
    cropped_fraction: float = 0.1
    upright_fraction: float = 0.5
    forearm_probability: float = 0.85
    occluder_probability: float = 0.3
    max_skin_depth: float = 0.03
    visibility_tolerance: float = 0.002
    hand_size_spread: float | None = 0.07

    def __post_init__(self) -> None:
        lo, hi = self.image_size_range
        if not (isinstance(lo, int) and isinstance(hi, int) and 16 <= lo <= hi):
            raise ValueError(
                f"image_size_range: expected integers 16 <= min <= max, got {self.image_size_range}"
            )
        for name in ("focal_range", "depth_range"):
            a, b = getattr(self, name)
            if not 0 < a <= b:
                raise ValueError(f"{name}: expected 0 < min <= max, got {(a, b)}")
        if self.depth_range[0] <= _ZNEAR:
            raise ValueError(f"depth_range: expected a minimum above {_ZNEAR} m")
        for name in (
            "cropped_fraction",
            "upright_fraction",
            "forearm_probability",
            "occluder_probability",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: expected a probability, got {getattr(self, name)}")
        if not 0.0 <= self.aspect_jitter < 0.5 or not 0.0 <= self.principal_point_jitter < 0.5:
            raise ValueError("aspect_jitter and principal_point_jitter: expected values in [0, 0.5)")
        spread = self.hand_size_spread
        if spread is not None and not (isinstance(spread, (int, float)) and 0 < spread < 1):
            raise ValueError(f"hand_size_spread: expected a number in (0, 1) or None, got {spread!r}")
        if min(self.visibility_tolerance, self.max_skin_depth, self.image_margin) < 0:
            raise ValueError(
                "visibility_tolerance, max_skin_depth and image_margin: expected non-negative values"
            )


class HandScene(NamedTuple):
    """The geometry of one sample, in the OpenCV camera frame (metres, pixels).

    Attributes:
        index: the sample's index in the data set.
        image_size: ``(H, W)`` pixels.
        intrinsics: `(3, 3)` float64 pinhole intrinsics.
        pose: `(J, 3)` float32 axis-angle per joint (``pose[0]``: the global
            orientation into the camera frame), for :class:`~handdgp.hand.HandModel`.
        shape: `(S,)` float32 shape coefficients.
        curl: the hand sampler's per-hand curl in [0, 1].
        root: `(3,)` float64 wrist position, metres.
        vertices: `(V, 3)` float64 hand mesh ``HandModel(pose, shape).vertices + root``.
        keypoints: `(21, 3)` float64 keypoints, FreiHAND order.
        forearm: `(Vf, 3)` float64 forearm mesh (only the wrist cuff if absent).
        has_forearm: whether the forearm beyond the wrist cuff is shown.
        occluder: `(Vo, 3)` float64 occluder mesh (collapsed if absent).
        has_occluder: whether there is an occluder.
        occluded_keypoint: the keypoint the occluder was placed in front of, or -1.
        cropped: whether the hand was allowed to leave the image.
        rng: the sample's appearance generator (skin, light, background, noise).
    """

    index: int
    image_size: tuple[int, int]
    intrinsics: np.ndarray
    pose: np.ndarray
    shape: np.ndarray
    curl: float
    root: np.ndarray
    vertices: np.ndarray
    keypoints: np.ndarray
    forearm: np.ndarray
    has_forearm: bool
    occluder: np.ndarray
    has_occluder: bool
    occluded_keypoint: int
    cropped: bool
    rng: np.random.Generator


def scene_rng(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The two independent generators of sample ``index``: geometry, appearance.

    Example:
        >>> a, _ = scene_rng(0, 5)
        >>> b, _ = scene_rng(0, 5)
        >>> float(a.random()) == float(b.random())
        True
    """
    geometry, appearance = np.random.SeedSequence([seed, 0, index]).spawn(2)
    return np.random.default_rng(geometry), np.random.default_rng(appearance)


def _block_generator(seed: int, block: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, 1, block]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state >> np.uint64(1)))


def _rotation_from_quaternion(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def sample_orientation(rng: np.random.Generator, upright_fraction: float = 0.5) -> np.ndarray:
    """A global hand orientation: template frame to OpenCV camera frame.

    With probability ``upright_fraction`` the fingers (template +y) point within 60°
    of image-up (camera -y), tilted between 30° towards and 45° away from the camera,
    with the back of the hand (template +x) at a uniform angle about the finger
    direction; otherwise the rotation is uniform over SO(3).

    Args:
        rng: the random source.
        upright_fraction: probability of an upright hand.

    Returns:
        `(3, 3)` float64 rotation matrix ``R`` (``R @ p_template = p_camera``).

    Example:
        >>> R = sample_orientation(np.random.default_rng(0), upright_fraction=1.0)
        >>> bool(np.allclose(R @ R.T, np.eye(3))), bool(R[1, 1] < -0.4)  # fingers point up
        (True, True)
    """
    if rng.random() >= upright_fraction:
        return _rotation_from_quaternion(rng.standard_normal(4))
    alpha = rng.uniform(-math.pi / 3, math.pi / 3)
    beta = rng.uniform(-math.pi / 6, math.pi / 4)
    gamma = rng.uniform(0.0, 2 * math.pi)
    d = np.array([math.sin(alpha) * math.cos(beta), -math.cos(alpha) * math.cos(beta), math.sin(beta)])
    e0 = np.cross(d, [0.0, 0.0, 1.0])
    e0 /= np.linalg.norm(e0)  # |d_z| <= sin 45°, so never parallel to the optical axis
    n = math.cos(gamma) * e0 + math.sin(gamma) * np.cross(d, e0)
    return np.stack([n, d, np.cross(n, d)], axis=1)


class _Camera(NamedTuple):
    height: int
    width: int
    fx: float
    fy: float
    cx: float
    cy: float


def _sample_camera(
    rng: np.random.Generator, config: SceneConfig, extent: np.ndarray, overhang: np.ndarray | None
) -> tuple[_Camera, np.ndarray] | None:
    """Image size, principal point, then a focal length at which the hand can fit.

    ``extent`` `(2,)` is the hand's x and y extent (metres) seen from the far end of
    the depth range; ``overhang`` `(2,)` the fraction of the image size a cropped hand
    may overhang it by (None: the hand keeps ``image_margin`` pixels inside). The
    focal length is log-uniform up to where that extent fills the image. Returns
    the camera and the allowed overhang in pixels (negative: an inset), or None.
    """
    lo, hi = config.image_size_range
    width, height = (int(s) for s in rng.integers(lo, hi + 1, size=2))
    jx, jy = rng.uniform(-config.principal_point_jitter, config.principal_point_jitter, 2)
    aspect = 1.0 + rng.uniform(-config.aspect_jitter, config.aspect_jitter)
    if overhang is None:
        margins = np.full(2, -config.image_margin)
    else:
        margins = overhang * (width, height)
    room = np.array([width - 1.0, height - 1.0]) + 2.0 * margins
    fits = room / np.maximum(extent, 1e-9) / np.array([1.0, aspect])
    f_lo, f_hi = config.focal_range
    f_hi = min(f_hi, float(fits.min()))
    if f_hi < f_lo:
        return None
    fx = float(np.exp(rng.uniform(np.log(f_lo), np.log(f_hi))))
    cx, cy = (width - 1) / 2 + jx * width, (height - 1) / 2 + jy * height
    return _Camera(height, width, fx, fx * aspect, cx, cy), margins


def _hull(points: np.ndarray) -> np.ndarray:
    """Indices of the 2D convex hull of `(N, 2)` points (the extremes of linear maps)."""
    import cv2

    return cv2.convexHull(points.astype(np.float32), returnPoints=False).ravel()


def _root_intervals(
    points: np.ndarray, depth: np.ndarray, focal: float, centre: float, lo: float, hi: float
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised root coordinates keeping every point's pixel in [lo, hi], per depth.

    With the root at ``z (x, 1)``, point ``p`` (root-relative) projects to
    ``focal (z x + p_x) / (z + p_z) + centre``: affine and increasing in ``x``.
    ``points`` `(N, 2)` holds ``(p_x, p_z)``; returns the interval ends `(G,)`. The
    bounds are linear in ``(p_x, p_z)``, so the convex hull of the points suffices.
    """
    den = depth[:, None] + points[None, :, 1]  # (G, N)
    lower = ((lo - centre) * den / focal - points[None, :, 0]) / depth[:, None]
    upper = ((hi - centre) * den / focal - points[None, :, 0]) / depth[:, None]
    bad = (den <= _ZNEAR).any(axis=1)
    low, high = lower.max(axis=1), upper.min(axis=1)
    return np.where(bad, np.inf, low), np.where(bad, -np.inf, high)


def _place_root(
    rng: np.random.Generator, points: np.ndarray, config: SceneConfig, cropped: bool
) -> tuple[_Camera, np.ndarray]:
    """Draw a camera and a root position that keeps ``points`` `(N, 3)` in the image."""
    zmin, zmax = config.depth_range
    grid = np.linspace(zmin, zmax, 33)
    xz, yz = points[:, [0, 2]], points[:, [1, 2]]
    xz, yz = xz[_hull(xz)], yz[_hull(yz)]
    # The extent seen from the far end, an upper bound on what still fits there.
    far = zmax / np.maximum(zmax + points[:, 2], _ZNEAR)
    extent = np.array([np.ptp(points[:, 0] * far), np.ptp(points[:, 1] * far)]) / zmax
    for _ in range(100):
        overhang = rng.uniform(0.0, 0.35, 2) if cropped else None
        drawn = _sample_camera(rng, config, extent, overhang)
        if drawn is None:
            continue
        cam, margins = drawn
        bounds_x = (-margins[0], cam.width - 1 + margins[0])
        bounds_y = (-margins[1], cam.height - 1 + margins[1])

        def intervals(z: np.ndarray, cam=cam, bx=bounds_x, by=bounds_y):
            ix = _root_intervals(xz, z, cam.fx, cam.cx, *bx)
            iy = _root_intervals(yz, z, cam.fy, cam.cy, *by)
            # The root itself stays in the image even for cropped hands.
            lx = np.maximum(ix[0], (0.0 - cam.cx) / cam.fx)
            hx = np.minimum(ix[1], (cam.width - 1 - cam.cx) / cam.fx)
            ly = np.maximum(iy[0], (0.0 - cam.cy) / cam.fy)
            hy = np.minimum(iy[1], (cam.height - 1 - cam.cy) / cam.fy)
            return lx, hx, ly, hy

        lx, hx, ly, hy = intervals(grid)
        feasible = (lx <= hx) & (ly <= hy)
        if not feasible.any():
            continue
        # Uniform over the feasible depths: from the grid point before the first
        # feasible one, rejecting the (at most one grid step of) infeasible depths.
        z_low = grid[max(int(np.argmax(feasible)) - 1, 0)]
        for _ in range(50):
            z = np.array([rng.uniform(z_low, zmax)])
            lx, hx, ly, hy = (v[0] for v in intervals(z))
            if lx <= hx and ly <= hy:
                x, y = rng.uniform(lx, hx), rng.uniform(ly, hy)
                return cam, z[0] * np.array([x, y, 1.0])
    raise RuntimeError(
        "could not place the hand in 100 cameras: with these image sizes and depths the "
        "focal lengths in SceneConfig.focal_range make it too large to fit"
    )


@functools.lru_cache(maxsize=4)
def _wrist_ring(faces_key: bytes, num_faces: int) -> np.ndarray:
    """The hand mesh's open boundary loop (the wrist), in order."""
    faces = np.frombuffer(faces_key, dtype=np.int64).reshape(num_faces, 3)
    edges = {(int(a), int(b)) for f in faces for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0]))}
    boundary = {a: b for a, b in edges if (b, a) not in edges}
    if not boundary:
        return np.zeros(0, dtype=np.int64)
    # The longest boundary loop is the wrist opening.
    loops, seen = [], set()
    for start in sorted(boundary):
        if start in seen:
            continue
        loop = [start]
        seen.add(start)
        while boundary[loop[-1]] != start and boundary[loop[-1]] not in seen:
            loop.append(boundary[loop[-1]])
            seen.add(loop[-1])
        loops.append(loop)
    return np.asarray(max(loops, key=len), dtype=np.int64)


def wrist_ring(template: HandTemplate) -> np.ndarray:
    """The vertices of the hand mesh's open wrist boundary, in order around it.

    Args:
        template: the hand template.

    Returns:
        `(R,)` int64 vertex indices (empty for a closed mesh).

    Example:
        >>> from handdgp.hand import load_template
        >>> wrist_ring(load_template()).shape
        (20,)
    """
    faces = template.faces.to(torch.int64).numpy()
    return _wrist_ring(faces.tobytes(), faces.shape[0])


@functools.lru_cache(maxsize=4)
def forearm_faces(ring_size: int) -> np.ndarray:
    """Faces of the forearm tube: rings of ``ring_size`` vertices, then a cap centre.

    The first ``2 * ring_size`` faces are the wrist cuff (the first 4 cm).

    Args:
        ring_size: vertices per ring (those of :func:`wrist_ring`).

    Returns:
        `(9 * ring_size, 3)` int64 faces over ``5 * ring_size + 1`` vertices.

    Example:
        >>> forearm_faces(20).shape
        (180, 3)
    """
    faces = []
    for k in range(len(_FOREARM_STATIONS) - 1):
        for j in range(ring_size):
            a, b = k * ring_size + j, k * ring_size + (j + 1) % ring_size
            c, d = a + ring_size, b + ring_size
            faces += [[a, c, b], [b, c, d]]
    last = (len(_FOREARM_STATIONS) - 1) * ring_size
    centre = len(_FOREARM_STATIONS) * ring_size
    faces += [[last + j, centre, last + (j + 1) % ring_size] for j in range(ring_size)]
    return np.asarray(faces, dtype=np.int64)


def _forearm(
    rng: np.random.Generator, ring: np.ndarray, direction: np.ndarray, full: bool
) -> np.ndarray:
    """Forearm vertices continuing the posed wrist ring `(R, 3)` along ``-direction``.

    Without ``full`` only the wrist cuff is kept: the later rings collapse onto the
    cuff's end, which the cap closes.
    """
    length = rng.uniform(0.25, 0.5)
    taper = rng.uniform(0.05, 0.3)
    centre = ring.mean(axis=0)
    stations = [0.0, _WRIST_CUFF / length, *_FOREARM_STATIONS[2:]]
    if not full:
        stations = [0.0] + [_WRIST_CUFF / length] * (len(stations) - 1)
    rings = [
        centre - s * length * direction + (ring - centre) * (1.0 + taper * min(1.0, 2 * s))
        for s in stations
    ]
    cap = centre - stations[-1] * length * direction
    return np.concatenate([*rings, cap[None]], axis=0)


@functools.lru_cache(maxsize=2)
def occluder_topology() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(latitude, longitude, faces)`` of the occluders' shared superellipsoid grid.

    Every occluder has this topology (a hidden one is collapsed behind the camera),
    so that all samples render the same mesh layout.

    Returns:
        `(Vo,)` latitude and `(Vo,)` longitude of each vertex, radians (the two poles,
        then 10 rings of 16), and the `(Fo, 3)` int64 faces of the closed grid.

    Example:
        >>> lat, lon, faces = occluder_topology()
        >>> lat.shape, faces.shape
        ((162,), (320, 3))
    """
    rings, segments = _OCCLUDER_GRID
    lat = np.linspace(-np.pi / 2, np.pi / 2, rings + 2)[1:-1]
    lon = np.linspace(-np.pi, np.pi, segments + 1)[:-1]
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    latitude = np.concatenate([[-np.pi / 2, np.pi / 2], la.ravel()])
    longitude = np.concatenate([[0.0, 0.0], lo.ravel()])
    faces = []
    for i in range(rings - 1):
        for j in range(segments):
            a = 2 + i * segments + j
            b = 2 + i * segments + (j + 1) % segments
            faces += [[a, b, a + segments], [b, b + segments, a + segments]]
    top = 2 + (rings - 1) * segments
    for j in range(segments):
        faces.append([0, 2 + (j + 1) % segments, 2 + j])
        faces.append([1, top + j, top + (j + 1) % segments])
    return latitude, longitude, np.asarray(faces, dtype=np.int64)


def _signed_power(x: np.ndarray, e: float) -> np.ndarray:
    return np.sign(x) * np.abs(x) ** e


def _occluder(
    rng: np.random.Generator, keypoints: np.ndarray
) -> tuple[np.ndarray, int] | None:
    """A superellipsoid in front of a random finger keypoint, or None if it cannot fit."""
    latitude, longitude, _ = occluder_topology()
    target = int(rng.integers(1, 21))
    radii = rng.uniform(0.01, 0.04, 3)
    e1, e2 = rng.choice([0.2, 0.5, 1.0], 2)
    cl, sl = np.cos(latitude), np.sin(latitude)
    local = np.stack(
        [
            radii[0] * _signed_power(cl, e1) * _signed_power(np.cos(longitude), e2),
            radii[1] * _signed_power(cl, e1) * _signed_power(np.sin(longitude), e2),
            radii[2] * _signed_power(sl, e1),
        ],
        axis=1,
    )
    rotation = _rotation_from_quaternion(rng.standard_normal(4))
    point = keypoints[target]
    ray = point / np.linalg.norm(point)
    gap = radii.max() + rng.uniform(0.005, 0.04)
    side = np.cross(ray, rng.standard_normal(3))
    side *= rng.uniform(0.0, 0.015) / max(np.linalg.norm(side), 1e-12)
    centre = point - gap * ray + side
    vertices = local @ rotation.T + centre
    if vertices[:, 2].min() < _ZNEAR:
        return None
    return vertices, target


def keypoint_skin(template: HandTemplate) -> np.ndarray:
    """Which hand faces are each keypoint's own skin (see the module docstring).

    A face belongs to the joint with the largest skinning weight summed over its
    three vertices; keypoint ``k`` at joint ``j`` owns the faces of ``j``, its parent
    and its children (a fingertip: those of the finger's last joint; the wrist: the
    root and its children).

    Args:
        template: the hand template.

    Returns:
        `(21, F)` bool.

    Example:
        >>> from handdgp.hand import load_template
        >>> own = keypoint_skin(load_template())
        >>> own.shape, bool(own[8].sum() < own[0].sum())
        ((21, 3196), True)
    """
    weights = template.skinning_weights.double().numpy()
    faces = template.faces.to(torch.int64).numpy()
    face_joint = weights[faces].sum(axis=1).argmax(axis=1)  # (F,)
    parents = template.parents.tolist()
    joints = template.keypoint_joints.tolist()
    own = np.zeros((len(joints), len(faces)), dtype=bool)
    for k, joint in enumerate(joints):
        if joint < 0:  # a fingertip: the distal phalanx, skinned to the previous keypoint's joint
            owners = {joints[k - 1]}
        else:
            owners = {joint, parents[joint], *(c for c, p in enumerate(parents) if p == joint)}
        own[k] = np.isin(face_joint, sorted(o for o in owners if o >= 0))
    return own


def sample_scenes(
    model: HandModel,
    template: HandTemplate,
    seed: int,
    block: int,
    config: SceneConfig,
) -> list[HandScene]:
    """The :data:`BLOCK_SIZE` scenes of samples ``block * 64`` to ``block * 64 + 63``.

    Args:
        model: the hand model built from ``template``.
        template: the hand template (pose and shape statistics, wrist ring).
        seed: the data set's seed.
        block: the block index.
        config: the scene distribution.

    Returns:
        The block's :class:`HandScene` s in index order.

    Example:
        >>> from handdgp.hand import load_template
        >>> template = load_template()
        >>> scenes = sample_scenes(HandModel(template), template, 0, 0, SceneConfig())
        >>> len(scenes), scenes[3].index, scenes[3].vertices.shape
        (64, 3, (1609, 3))
    """
    generator = _block_generator(seed, block)
    hands = sample_hand_pose(template, BLOCK_SIZE, generator, global_orientation=False)
    shapes = sample_hand_shape(template, BLOCK_SIZE, generator, size_spread=config.hand_size_spread)
    first = block * BLOCK_SIZE
    rngs = [scene_rng(seed, first + k) for k in range(BLOCK_SIZE)]
    rotations = np.stack([sample_orientation(g, config.upright_fraction) for g, _ in rngs])
    pose = hands.pose.clone()
    pose[:, 0] = rotation_matrix_to_axis_angle(torch.from_numpy(rotations).to(pose.dtype))
    with torch.no_grad():
        posed = model(pose, shapes)
    vertices = posed.vertices.double().numpy()
    keypoints = posed.keypoints.double().numpy()
    ring = wrist_ring(template)
    latitude, _, _ = occluder_topology()
    hidden_occluder = np.broadcast_to(np.asarray(_HIDDEN), (latitude.shape[0], 3))
    hidden_forearm = np.broadcast_to(np.asarray(_HIDDEN), (len(ring) * len(_FOREARM_STATIONS) + 1, 3))

    scenes = []
    for k, (rng, appearance) in enumerate(rngs):
        cropped = bool(rng.random() < config.cropped_fraction)
        cam, root = _place_root(rng, np.concatenate([vertices[k], keypoints[k]]), config, cropped)
        verts_cam, kps_cam = vertices[k] + root, keypoints[k] + root
        has_forearm = bool(rng.random() < config.forearm_probability)
        forearm = hidden_forearm
        if len(ring) > 2:
            forearm = _forearm(rng, verts_cam[ring], rotations[k][:, 1], has_forearm)
        occluder, target = hidden_occluder, -1
        if rng.random() < config.occluder_probability:
            placed = _occluder(rng, kps_cam)
            if placed is not None:
                occluder, target = placed
        # Rounded as stored on disk, so that the images match the stored cameras.
        K = np.round([[cam.fx, 0.0, cam.cx], [0.0, cam.fy, cam.cy], [0.0, 0.0, 1.0]], 6)
        scenes.append(
            HandScene(
                index=first + k,
                image_size=(cam.height, cam.width),
                intrinsics=K,
                pose=pose[k].numpy(),
                shape=shapes[k].numpy(),
                curl=float(hands.curl[k]),
                root=root,
                vertices=verts_cam,
                keypoints=kps_cam,
                forearm=np.array(forearm),
                has_forearm=has_forearm,
                occluder=np.array(occluder),
                has_occluder=target >= 0,
                occluded_keypoint=target,
                cropped=cropped,
                rng=appearance,
            )
        )
    return scenes


def keypoint_visibility(
    keypoints: np.ndarray,
    intrinsics: np.ndarray,
    depth: np.ndarray,
    face_index: np.ndarray,
    own_faces: np.ndarray,
    *,
    max_skin_depth: float = 0.03,
    tolerance: float = 0.002,
) -> np.ndarray:
    """Which keypoints are seen: inside the image and hidden by nothing else.

    The surface rendered at a keypoint's nearest pixel (or, if that pixel is empty,
    the frontmost surface among its 8 neighbours) hides it unless there is none, or
    it lies at most ``tolerance`` in front of the keypoint, or it is the keypoint's
    own skin (``own_faces``) at most ``max_skin_depth`` in front. See the module
    docstring for why.

    Args:
        keypoints: `(21, 3)` camera-frame keypoints, metres.
        intrinsics: `(3, 3)` pinhole intrinsics, pixels.
        depth: `(H, W)` rendered depth (camera z), metres, 0 where empty.
        face_index: `(H, W)` rendered face ids, -1 where empty.
        own_faces: `(21, F)` bool, the faces (of all meshes rendered) that are each
            keypoint's own skin.
        max_skin_depth: metres of own skin allowed in front of a keypoint.
        tolerance: metres of anything allowed in front of a keypoint.

    Returns:
        `(21,)` bool visibility.

    Example:
        >>> K = np.array([[100.0, 0, 4], [0, 100.0, 4], [0, 0, 1]])
        >>> kp = np.array([[0.0, 0.0, 1.0]] * 2 + [[1.0, 0.0, 1.0]] + [[0.0, 0.0, 1.0]] * 18)
        >>> depth, faces = np.full((9, 9), 0.98), np.zeros((9, 9), np.int64)
        >>> own = np.zeros((21, 1), bool)
        >>> own[0] = True  # face 0 is keypoint 0's skin, 2 cm in front of it
        >>> keypoint_visibility(kp, K, depth, faces, own)[:3].tolist()
        [True, False, False]
    """
    height, width = depth.shape
    z = keypoints[:, 2]
    safe_z = np.where(z > 0, z, 1.0)
    uv = (keypoints @ intrinsics.T)[:, :2] / safe_z[:, None]
    inside = (
        (z > 0)
        & (uv[:, 0] >= -0.5)
        & (uv[:, 0] < width - 0.5)
        & (uv[:, 1] >= -0.5)
        & (uv[:, 1] < height - 0.5)
    )
    col = np.clip(np.rint(np.where(inside, uv[:, 0], 0)), 0, width - 1).astype(np.int64)
    row = np.clip(np.rint(np.where(inside, uv[:, 1], 0)), 0, height - 1).astype(np.int64)
    # At an empty pixel (a fingertip on the silhouette), test the frontmost surface
    # of the 3 x 3 neighbourhood instead.
    offsets = np.array([(0, 0)] + [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx])
    rows = np.clip(row[:, None] + offsets[None, :, 0], 0, height - 1)
    cols = np.clip(col[:, None] + offsets[None, :, 1], 0, width - 1)
    faces, depths = face_index[rows, cols], depth[rows, cols]
    nearest = np.where(faces >= 0, depths, np.inf).argmin(axis=1)
    pick = np.where(faces[:, 0] >= 0, 0, nearest)
    face = faces[np.arange(len(z)), pick]
    surface = depths[np.arange(len(z)), pick]
    in_front = z - surface
    own = own_faces[np.arange(len(z)), np.clip(face, 0, own_faces.shape[1] - 1)] & (face >= 0)
    seen = (face < 0) | (in_front <= tolerance) | (own & (in_front <= max_skin_depth))
    return inside & seen
