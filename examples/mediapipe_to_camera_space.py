"""From MediaPipe Hands to camera space: MediaPipe's landmarks + a known K -> dgpgeom.

MediaPipe Hands gives, per detected hand, 21 2D landmarks (normalised image
coordinates) and 21 "world" landmarks (metres, origin near the hand's centre). With
the camera intrinsics ``K``, :func:`dgpgeom.solve_translation` places the world
landmarks in the camera frame; a residual gate rejects fits where MediaPipe's 3D and
2D outputs disagree. The guide ``docs/how-to/mediapipe.md`` explains each step.

Needs ``mediapipe`` (the legacy ``mediapipe.solutions.hands`` API, whose hand models
ship inside the wheel of release 0.10.21) for the image modes; the geometric functions
need only dgpgeom. ``--synthetic`` also needs the reference model ``handdgp``.

Usage, from the repository root::

    # one image with known intrinsics (pixels)
    python examples/mediapipe_to_camera_space.py hand.jpg --fx 900 --fy 900 --cx 639.5 --cy 359.5

    # render N synthetic hands with known ground truth and print the measured table
    python examples/mediapipe_to_camera_space.py --synthetic 600 --seed 0
"""

from __future__ import annotations

import argparse
import io
import math
from collections.abc import Collection, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

import dgpgeom

# MediaPipe's 21 hand landmarks are in FreiHAND's keypoint order: 0 wrist, then four
# per finger from the palm outwards (thumb CMC, MCP, IP, tip; index, middle, ring and
# little: MCP, PIP, DIP, tip). No re-indexing is needed.
NUM_LANDMARKS = 21

# A fit is accepted when the median reprojection residual is at most this fraction of
# the hand's 2D size (the diagonal of the box around MediaPipe's 2D landmarks). The
# value is chosen from the distributions measured with --synthetic (see the guide).
MAX_RELATIVE_RESIDUAL = 0.05

# Parent of each keypoint in the 21-keypoint skeleton (the wrist is its own parent).
PARENTS = (0, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)


class CameraSpaceHand(NamedTuple):
    """A MediaPipe hand placed in the camera frame.

    Attributes:
        translation: `(3,)` metres: the wrist's position in the camera frame.
        keypoints_cam: `(21, 3)` metres, camera frame (x right, y down, z forward).
        accepted: whether the fit passed the solver's validity check and the gate.
        residuals: `(21,)` pixels: reprojection error of each keypoint.
    """

    translation: np.ndarray
    keypoints_cam: np.ndarray
    accepted: bool
    residuals: np.ndarray


def normalized_to_pixels(normalized: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """MediaPipe's normalised image coordinates to pixels (pixel centres on integers).

    MediaPipe normalises ``x`` by the image width and ``y`` by its height. Read as
    continuous coordinates with 0 at the left/top edge of the image, they give pixel
    ``u = x W - 0.5`` (and ``v = y H - 0.5``) in dgpgeom's convention, where the centre
    of the first pixel is 0. (The half pixel is far below MediaPipe's own error.)

    Args:
        normalized: `(..., 2)` MediaPipe ``(x, y)``.
        image_size: ``(H, W)`` pixels.

    Returns:
        `(..., 2)` pixels, (x, y).

    Example:
        >>> normalized_to_pixels(np.array([[0.5, 0.5]]), (480, 640)).tolist()
        [[319.5, 239.5]]
    """
    height, width = image_size
    return np.asarray(normalized, dtype=np.float64) * [width, height] - 0.5


def world_to_points3d(world: np.ndarray) -> np.ndarray:
    """MediaPipe's world landmarks to root-relative points in OpenCV camera axes.

    MediaPipe's world landmarks are metres with the origin near the hand's centre and
    axes that already agree with OpenCV's (x right, y down, z away from the camera;
    measured on renders with known ground truth, see the guide). Only the origin
    changes: keypoint 0, the wrist, becomes the root.

    Args:
        world: `(21, 3)` MediaPipe world landmarks, metres.

    Returns:
        `(21, 3)` metres, relative to the wrist.

    Example:
        >>> world = np.zeros((21, 3)); world[0] = [0.01, 0.02, 0.0]
        >>> world_to_points3d(world)[1].tolist()
        [-0.01, -0.02, 0.0]
    """
    world = np.asarray(world, dtype=np.float64)
    return world - world[:1]


def raw_landmarks(results: Any, hand: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """MediaPipe's numbers for one hand, unconverted.

    Args:
        results: the value returned by ``mediapipe.solutions.hands.Hands.process``.
        hand: which detected hand.

    Returns:
        ``(landmarks, world_landmarks)``, both `(21, 3)`: normalised ``(x, y, z)``
        (``z`` is a depth relative to the wrist, in units of about the image width) and
        metric ``(x, y, z)``; ``None`` if fewer than ``hand + 1`` hands were detected.
    """
    if not results.multi_hand_landmarks or len(results.multi_hand_landmarks) <= hand:
        return None
    image = results.multi_hand_landmarks[hand].landmark
    world = results.multi_hand_world_landmarks[hand].landmark
    return (
        np.array([[p.x, p.y, p.z] for p in image], dtype=np.float64),
        np.array([[p.x, p.y, p.z] for p in world], dtype=np.float64),
    )


def landmarks_to_arrays(
    results: Any, image_size: tuple[int, int], hand: int = 0
) -> tuple[np.ndarray, np.ndarray] | None:
    """The 2D and 3D landmarks of one hand of a MediaPipe Hands result, as arrays.

    Args:
        results: the value returned by ``mediapipe.solutions.hands.Hands.process``.
        image_size: ``(H, W)`` pixels of the processed image.
        hand: which detected hand.

    Returns:
        ``(points2d, points3d)``: `(21, 2)` pixels and `(21, 3)` metres, wrist-relative,
        OpenCV camera axes; ``None`` if fewer than ``hand + 1`` hands were detected.
    """
    raw = raw_landmarks(results, hand)
    if raw is None:
        return None
    landmarks, world = raw
    return normalized_to_pixels(landmarks[:, :2], image_size), world_to_points3d(world)


def hand_size_px(points2d: np.ndarray) -> float:
    """The diagonal of the box around the 2D landmarks, pixels."""
    extent = points2d.max(axis=0) - points2d.min(axis=0)
    return float(np.hypot(*extent))


def relative_residual(residuals: np.ndarray, points2d: np.ndarray) -> float:
    """The gate's statistic: median residual over the hand's 2D size (dimensionless)."""
    return float(np.median(residuals)) / max(hand_size_px(points2d), 1.0)


def camera_space_hand(
    points3d: np.ndarray,
    points2d: np.ndarray,
    intrinsics: np.ndarray,
    max_relative_residual: float = MAX_RELATIVE_RESIDUAL,
) -> CameraSpaceHand:
    """Place a root-relative 3D hand in the camera frame from its 2D keypoints.

    Args:
        points3d: `(21, 3)` metres, wrist-relative, OpenCV camera axes.
        points2d: `(21, 2)` pixels.
        intrinsics: `(3, 3)` pixels.
        max_relative_residual: the gate: accept when the median reprojection residual
            is at most this fraction of the hand's 2D size.

    Returns:
        :class:`CameraSpaceHand`; ``translation`` and ``keypoints_cam`` are in metres
        with the scale of ``points3d``.
    """
    solution = dgpgeom.solve_translation(
        torch.as_tensor(points3d, dtype=torch.float64),
        torch.as_tensor(points2d, dtype=torch.float64),
        torch.as_tensor(intrinsics, dtype=torch.float64),
        return_residuals=True,
    )
    translation = solution.translation.numpy()
    residuals = solution.residuals.numpy()
    accepted = bool(solution.valid) and (
        relative_residual(residuals, points2d) <= max_relative_residual
    )
    return CameraSpaceHand(translation, points3d + translation, accepted, residuals)


def project(points_cam: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Pinhole projection of `(..., 3)` camera-space points to `(..., 2)` pixels."""
    pixels = points_cam @ np.asarray(intrinsics).T
    return pixels[..., :2] / pixels[..., 2:]


def bone_length_sum(points3d: np.ndarray) -> float:
    """Sum of the 20 bone lengths of a 21-keypoint hand, metres: a pose-free size."""
    return float(np.linalg.norm(points3d[1:] - points3d[list(PARENTS[1:])], axis=-1).sum())


def create_detector() -> Any:
    """MediaPipe's legacy Hands solution, set up for single still images."""
    import mediapipe as mp  # optional dependency

    return mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=1, model_complexity=1)


def detect(detector: Any, image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Run MediaPipe on an `(H, W, 3)` uint8 RGB image; ``(points2d, points3d)`` or None."""
    results = detector.process(np.ascontiguousarray(image_rgb))
    return landmarks_to_arrays(results, image_rgb.shape[:2])


# --- synthetic renders with known ground truth -------------------------------------

VIEWS = ("palm", "back")
IMAGE_SIZE = (480, 640)  # (H, W) pixels
FOCAL_RANGE = (400.0, 1200.0)  # pixels
DEPTH_RANGE = (0.3, 0.8)  # metres, the wrist's z
SKIN_TONES = (  # RGB albedo in [0, 1], light to dark
    (0.95, 0.78, 0.66),
    (0.88, 0.67, 0.54),
    (0.76, 0.55, 0.40),
    (0.56, 0.38, 0.26),
    (0.38, 0.25, 0.17),
)


class SyntheticView(NamedTuple):
    """One rendered hand with its ground truth.

    Attributes:
        image: `(H, W, 3)` uint8 RGB.
        intrinsics: `(3, 3)` pixels.
        keypoints_cam: `(21, 3)` metres, camera frame; keypoint 0 (the wrist) is the root.
        view: ``"palm"`` (palm towards the camera) or ``"back"``.
    """

    image: np.ndarray
    intrinsics: np.ndarray
    keypoints_cam: np.ndarray
    view: str


def _rotation(axis: int, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    i, j = (axis + 1) % 3, (axis + 2) % 3
    rotation = np.eye(3)
    rotation[i, i], rotation[i, j], rotation[j, i], rotation[j, j] = c, -s, s, c
    return rotation


def _view_rotation(rest_keypoints: np.ndarray, side: str, view: str) -> np.ndarray:
    """Rotation taking the template to an upright hand whose palm or back faces the camera."""
    from handdgp.hand.skeleton import palm_axes

    distal, radial, dorsal = palm_axes(rest_keypoints, side)
    template = np.stack([distal, radial, dorsal], axis=1)
    # camera targets: fingers up the image (-y); for the palm view the back of the hand
    # points away from the camera (+z), for the back view towards it
    sign = 1.0 if view == "palm" else -1.0
    camera = np.stack([[0.0, -1.0, 0.0], [sign, 0.0, 0.0], [0.0, 0.0, sign]], axis=1)
    u, _, vt = np.linalg.svd(camera @ template.T)
    return u @ vt


def _background(rng: np.random.Generator, image_size: tuple[int, int]) -> np.ndarray:
    """`(3, H, W)` plain colour or smooth random texture, in [0, 1]."""
    import cv2

    height, width = image_size
    if rng.random() < 0.5:
        colour = rng.uniform(0.15, 0.85, size=(3, 1, 1))
        return np.broadcast_to(colour, (3, height, width)).copy()
    coarse = rng.uniform(0.1, 0.9, size=(6, 8, 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0.0, 0.03, size=(height, width, 3))
    return np.clip(smooth + fine, 0.0, 1.0).transpose(2, 0, 1)


def render_synthetic(count: int, seed: int = 0) -> Iterator[SyntheticView]:
    """Render ``count`` hands, alternating palm and back views, with ground truth.

    Poses and shapes come from :func:`handdgp.hand.sample_hand_pose` and
    :func:`~handdgp.hand.sample_hand_shape`; the palm (or back) faces the camera,
    turned by up to 45 degrees in the image plane and tilted by up to 30 degrees about
    the other two axes. Focal length 400-1200 px (fy within 2 % of fx), principal point
    within 10 px of the image centre, wrist 0.3-0.8 m away, whole hand inside the image.
    """
    from handdgp.data import Light, render_mesh
    from handdgp.hand import HandModel, load_template, sample_hand_pose, sample_hand_shape

    template = load_template(dtype=torch.float64)
    model = HandModel(template)
    rest = model(torch.zeros(model.num_joints, 3, dtype=torch.float64)).keypoints.numpy()
    base = {view: _view_rotation(rest, template.side, view) for view in VIEWS}
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    height, width = IMAGE_SIZE
    margin = 0.04 * min(height, width)
    produced = 0
    while produced < count:
        view = VIEWS[produced % 2]
        pose = sample_hand_pose(template, 1, generator, global_orientation=False).pose[0]
        shape = sample_hand_shape(template, 1, generator)[0]
        rotation = (
            _rotation(2, rng.uniform(-1, 1) * math.radians(45))
            @ _rotation(0, rng.uniform(-1, 1) * math.radians(30))
            @ _rotation(1, rng.uniform(-1, 1) * math.radians(30))
            @ base[view]
        )
        pose[0] = _axis_angle(rotation)
        hand = model(pose, shape)
        vertices, keypoints = hand.vertices.numpy(), hand.keypoints.numpy()
        for _ in range(50):  # camera and placement until the whole hand is in view
            fx = rng.uniform(*FOCAL_RANGE)
            K = np.array(
                [
                    [fx, 0.0, (width - 1) / 2 + rng.uniform(-10, 10)],
                    [0.0, fx * rng.uniform(0.98, 1.02), (height - 1) / 2 + rng.uniform(-10, 10)],
                    [0.0, 0.0, 1.0],
                ]
            )
            depth = rng.uniform(*DEPTH_RANGE)
            centre = vertices.mean(axis=0)
            target = np.array([rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height])
            ray = np.array([(target[0] - K[0, 2]) / K[0, 0], (target[1] - K[1, 2]) / K[1, 1], 1.0])
            translation = ray * (depth + centre[2]) - centre  # its z is `depth`
            pixels = project(vertices + translation, K)
            inside = (pixels.min(axis=0) > margin).all() and (
                pixels.max(axis=0) < np.array([width, height]) - 1 - margin
            ).all()
            if inside and (vertices[:, 2] + depth).min() > 0.1:
                break
        else:
            continue
        light = Light(
            direction=(rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), 1.0),
            ambient=rng.uniform(0.35, 0.5),
            diffuse=rng.uniform(0.5, 0.65),
        )
        skin = np.asarray(SKIN_TONES[rng.integers(len(SKIN_TONES))]) * rng.uniform(0.9, 1.1)
        render = render_mesh(
            torch.as_tensor(vertices + translation),
            template.faces,
            torch.as_tensor(K),
            IMAGE_SIZE,
            vertex_colors=torch.as_tensor(skin).expand(vertices.shape[0], 3),
            light=light,
            background=torch.as_tensor(_background(rng, IMAGE_SIZE)),
        )
        image = (render.rgb.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
        yield SyntheticView(image, K, keypoints + translation, view)
        produced += 1


def _axis_angle(rotation: np.ndarray) -> torch.Tensor:
    """`(3,)` float64 axis-angle of a rotation matrix (kornia's conversion)."""
    from kornia.geometry.conversions import rotation_matrix_to_axis_angle

    return rotation_matrix_to_axis_angle(torch.as_tensor(rotation)[None])[0]


class Detection(NamedTuple):
    """MediaPipe's output on one synthetic view, with the view's ground truth.

    Attributes:
        view: ``"palm"`` or ``"back"``.
        intrinsics: `(3, 3)` pixels.
        keypoints_cam: `(21, 3)` metres, the ground truth.
        points2d: `(21, 2)` pixels from MediaPipe, or None if it found no hand.
        points3d: `(21, 3)` metres, MediaPipe's world landmarks (wrist-relative), or None.
    """

    view: str
    intrinsics: np.ndarray
    keypoints_cam: np.ndarray
    points2d: np.ndarray | None
    points3d: np.ndarray | None


class Record(NamedTuple):
    """The measurements of one synthetic view (NaN where MediaPipe found no hand)."""

    view: str
    detected: bool
    accepted: bool
    relative_residual: float
    root_error_mm: float
    depth_ratio: float
    size_ratio: float
    root_error_true_scale_mm: float
    root_error_true_shape_mm: float


def measure(detection: Detection, max_relative_residual: float = MAX_RELATIVE_RESIDUAL) -> Record:
    """Compare the MediaPipe-based camera-space hand with the ground truth.

    Besides the pipeline itself, it solves twice more with the same 2D landmarks: with
    MediaPipe's 3D hand rescaled to the true hand size (sum of bone lengths), and with
    the true root-relative 3D hand, to separate MediaPipe's scale from its shape.
    """
    points2d, points3d, truth = detection.points2d, detection.points3d, detection.keypoints_cam
    if points2d is None or points3d is None:
        nan = float("nan")
        return Record(detection.view, False, False, nan, nan, nan, nan, nan, nan)
    K = detection.intrinsics
    hand = camera_space_hand(points3d, points2d, K, max_relative_residual)
    size_ratio = bone_length_sum(points3d) / bone_length_sum(truth)
    true_scale = camera_space_hand(points3d / size_ratio, points2d, K)
    true_shape = camera_space_hand(truth - truth[0], points2d, K)

    def error_mm(translation: np.ndarray) -> float:
        return float(np.linalg.norm(translation - truth[0]) * 1000.0)

    return Record(
        detection.view,
        True,
        hand.accepted,
        relative_residual(hand.residuals, points2d),
        error_mm(hand.translation),
        float(hand.translation[2] / truth[0, 2]),
        size_ratio,
        error_mm(true_scale.translation),
        error_mm(true_shape.translation),
    )


def _median(values: Sequence[float]) -> str:
    return f"{np.median(values):.0f}" if len(values) else "-"


def format_table(records: Sequence[Record]) -> str:
    """The measured table (Markdown) of a list of :class:`Record` s."""
    lines = [
        "| view | rendered | detected | accepted | root error (mm): detected "
        "| accepted | rejected | z / true z | MediaPipe size / true size "
        "| true-size error (mm) | true-shape error (mm) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in (*VIEWS, "all"):
        rows = [r for r in records if name in ("all", r.view)]
        found = [r for r in rows if r.detected]
        good = [r.root_error_mm for r in found if r.accepted]
        bad = [r.root_error_mm for r in found if not r.accepted]
        lines.append(
            f"| {name} | {len(rows)} | {len(found) / max(len(rows), 1):.0%} "
            f"| {len(good) / max(len(found), 1):.0%} "
            f"| {_median([r.root_error_mm for r in found])} | {_median(good)} | {_median(bad)} "
            f"| {np.median([r.depth_ratio for r in found]):.2f} "
            f"| {np.median([r.size_ratio for r in found]):.2f} "
            f"| {_median([r.root_error_true_scale_mm for r in found])} "
            f"| {_median([r.root_error_true_shape_mm for r in found])} |"
        )
    return "\n".join(lines)


def format_gate_sweep(
    records: Sequence[Record],
    thresholds: Sequence[float] = (0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15),
) -> str:
    """Accepted fraction and error of the accepted fits for several gate thresholds."""
    found = [r for r in records if r.detected]
    lines = [
        "| gate (median residual / hand size) | accepted: palm | back | all "
        "| root error of accepted (mm): median | 90th percentile |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for threshold in (*thresholds, math.inf):
        ok = [r for r in found if r.relative_residual <= threshold]
        shares = [
            sum(r.view == v for r in ok) / max(sum(r.view == v for r in found), 1) for v in VIEWS
        ]
        errors = [r.root_error_mm for r in ok]
        name = "none" if math.isinf(threshold) else f"{threshold:g}"
        lines.append(
            f"| {name} | {shares[0]:.0%} | {shares[1]:.0%} | {len(ok) / max(len(found), 1):.0%} "
            f"| {_median(errors)} | {np.quantile(errors, 0.9):.0f} |"
        )
    return "\n".join(lines)


def format_landmark_check(detections: Sequence[Detection]) -> str:
    """MediaPipe's 2D landmarks against the projected truth, per view.

    Columns: median 2D error (pixels and fraction of the hand's 2D size); the order
    check: for how many landmarks ``i`` the true keypoint with the smallest median
    distance (over the views) is keypoint ``i``; and the median offset of the wrist
    landmark towards the middle finger's MCP, as a fraction of the true wrist-to-MCP
    distance in the image.
    """
    lines = [
        "| view | 2D error (px) | 2D error / hand size | order check "
        "| wrist landmark offset towards the fingers |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in VIEWS:
        errors, relative, distances, offset = [], [], [], []
        for d in detections:
            if d.view != name or d.points2d is None:
                continue
            truth = project(d.keypoints_cam, d.intrinsics)
            size = hand_size_px(d.points2d)
            distance = np.linalg.norm(d.points2d[:, None] - truth[None], axis=-1)
            errors.append(np.median(np.diagonal(distance)))
            relative.append(errors[-1] / size)
            distances.append(distance / size)
            axis = truth[9] - truth[0]
            offset.append((d.points2d[0] - truth[0]) @ axis / (axis @ axis))
        nearest = np.median(distances, axis=0).argmin(axis=1)
        same = int((nearest == np.arange(NUM_LANDMARKS)).sum())
        lines.append(
            f"| {name} | {np.median(errors):.1f} | {np.median(relative):.3f} "
            f"| {same}/{NUM_LANDMARKS} | {np.median(offset):.2f} |"
        )
    return "\n".join(lines)


def _proper_procrustes_angle(source: np.ndarray, target: np.ndarray) -> float:
    """Angle (degrees) of the rotation that best aligns centred ``source`` to ``target``."""
    a, b = source - source.mean(axis=0), target - target.mean(axis=0)
    u, _, vt = np.linalg.svd(b.T @ a)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt
    return math.degrees(math.acos(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0)))


def format_axis_check(detections: Sequence[Detection]) -> str:
    """How well MediaPipe's world landmarks align with the truth under each axis flip.

    For each sign pattern ``S`` it reports the median angle of the best rotation from
    ``S @ world`` to the true root-relative keypoints: the convention whose median is
    smallest is the one the world landmarks use.
    """
    found = [d for d in detections if d.points3d is not None]
    lines = ["| world-landmark axes read as | median rotation to the truth (deg) |", "|---|---:|"]
    patterns = {
        "as is (x right, y down, z forward)": (1, 1, 1),
        "y and z flipped (OpenGL camera)": (1, -1, -1),
        "z flipped": (1, 1, -1),
        "x flipped": (-1, 1, 1),
    }
    for name, signs in patterns.items():
        angles = [_proper_procrustes_angle(d.points3d * signs, d.keypoints_cam) for d in found]
        lines.append(f"| {name} | {np.median(angles):.0f} |")
    return "\n".join(lines)


def run_synthetic(
    count: int, seed: int, keep: Collection[int] = ()
) -> tuple[list[Detection], dict[int, tuple[SyntheticView, Any]]]:
    """Render ``count`` views and run MediaPipe on each.

    Returns:
        The detections, and for the indices in ``keep`` the view (with its image) and
        MediaPipe's raw landmarks (see :func:`raw_landmarks`).
    """
    detector = create_detector()
    detections, kept = [], {}
    for index, view in enumerate(render_synthetic(count, seed)):
        results = detector.process(np.ascontiguousarray(view.image))
        found = landmarks_to_arrays(results, view.image.shape[:2])
        points2d, points3d = (None, None) if found is None else found
        detections.append(
            Detection(view.view, view.intrinsics, view.keypoints_cam, points2d, points3d)
        )
        if index in keep:
            kept[index] = (view, raw_landmarks(results))
    return detections, kept


def save_detections(path: str, detections: Sequence[Detection]) -> None:
    """Save detections to ``.npz`` (NaN landmarks where no hand was found)."""
    nan2, nan3 = np.full((NUM_LANDMARKS, 2), np.nan), np.full((NUM_LANDMARKS, 3), np.nan)
    np.savez_compressed(
        path,
        view=np.array([d.view for d in detections]),
        intrinsics=np.stack([d.intrinsics for d in detections]),
        keypoints_cam=np.stack([d.keypoints_cam for d in detections]),
        points2d=np.stack([nan2 if d.points2d is None else d.points2d for d in detections]),
        points3d=np.stack([nan3 if d.points3d is None else d.points3d for d in detections]),
    )


def load_detections(path: str) -> list[Detection]:
    """Read detections written by :func:`save_detections`."""
    data = np.load(path)
    detections = []
    for i, view in enumerate(data["view"]):
        p2, p3 = data["points2d"][i], data["points3d"][i]
        found = not np.isnan(p2).any()
        detections.append(
            Detection(
                str(view),
                data["intrinsics"][i],
                data["keypoints_cam"][i],
                p2 if found else None,
                p3 if found else None,
            )
        )
    return detections


def write_fixture(path: str, kept: dict[int, tuple[SyntheticView, Any]], command: str) -> None:
    """Save MediaPipe's raw output on some synthetic views, with K and the ground truth."""
    import json
    import re

    hands = []
    for index, (view, raw) in sorted(kept.items()):
        if raw is None:
            raise SystemExit(f"MediaPipe found no hand in view {index}: pick another")
        landmarks, world = raw
        hands.append(
            {
                "index": index,
                "view": view.view,
                "image_size": list(view.image.shape[:2]),
                "intrinsics": view.intrinsics.tolist(),
                "landmarks": landmarks.tolist(),
                "world_landmarks": world.tolist(),
                "keypoints_cam": view.keypoints_cam.tolist(),
            }
        )
    fixture = {
        "description": (
            "MediaPipe Hands 0.10.21 (legacy solutions API, static_image_mode=True, "
            "max_num_hands=1, model_complexity=1) on synthetic renders: normalised "
            "landmarks (x, y, z), world landmarks (metres), intrinsics (pixels) and the "
            "true camera-space keypoints (metres, OpenCV axes, FreiHAND order)"
        ),
        "command": command,
        "hands": hands,
    }
    text = json.dumps(fixture, indent=1)
    # one line per innermost list (a landmark, a row of K) keeps the file readable
    text = re.sub(r"\[\s+([^\[\]]+?)\s+\]", lambda m: "[" + " ".join(m[1].split()) + "]", text)
    with open(path, "w", encoding="utf-8") as file:
        file.write(text + "\n")


SKELETON_COLOURS = {"truth": "#2ca02c", "mediapipe": "#ff7f0e"}


def make_figure(
    path: str, detections: Sequence[Detection], kept: dict[int, tuple[SyntheticView, Any]]
) -> None:
    """Overlays of the kept views; depth ratio against the gate statistic for all views."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, axes = plt.subplots(
        1, len(kept) + 1, figsize=(4.2 * (len(kept) + 1), 4.4), layout="constrained"
    )
    for ax, (index, (view, _)) in zip(axes, sorted(kept.items()), strict=False):
        detection = detections[index]
        if detection.points2d is None or detection.points3d is None:
            raise SystemExit(f"MediaPipe found no hand in view {index}: pick another")
        hand = camera_space_hand(detection.points3d, detection.points2d, view.intrinsics)
        truth2d = project(view.keypoints_cam, view.intrinsics)
        placed2d = project(hand.keypoints_cam, view.intrinsics)
        box = np.concatenate([truth2d, placed2d, detection.points2d])
        low, high = box.min(axis=0), box.max(axis=0)
        half = 0.6 * (high - low).max()
        centre = (low + high) / 2
        ax.imshow(view.image)
        for points, key, label in (
            (truth2d, "truth", "truth"),
            (placed2d, "mediapipe", "MediaPipe 3D + dgpgeom, projected"),
        ):
            for child, parent in enumerate(PARENTS[1:], 1):
                ax.plot(
                    points[[parent, child], 0],
                    points[[parent, child], 1],
                    color=SKELETON_COLOURS[key],
                    lw=2,
                    label=label if child == 1 else None,
                )
        ax.scatter(
            *detection.points2d.T,
            s=10,
            c="white",
            edgecolors="black",
            lw=0.5,
            zorder=3,
            label="MediaPipe 2D",
        )
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] + half, centre[1] - half)
        ax.set_xticks([])
        ax.set_yticks([])
        error = np.linalg.norm(hand.translation - view.keypoints_cam[0]) * 1000
        verdict = "accepted" if hand.accepted else "rejected"
        ax.set_title(
            f"{view.view} view: wrist error {error:.0f} mm\n"
            f"median residual {relative_residual(hand.residuals, detection.points2d):.3f} "
            f"of hand size: {verdict}",
            fontsize=10,
        )
    axes[0].legend(loc="lower left", fontsize=7, framealpha=0.8)

    ax = axes[-1]
    records = [measure(d) for d in detections if d.points2d is not None]
    for name, colour in zip(VIEWS, ("tab:blue", "tab:red"), strict=True):
        chosen = [r for r in records if r.view == name]
        ax.scatter(
            [r.relative_residual for r in chosen],
            [r.depth_ratio for r in chosen],
            s=10,
            c=colour,
            alpha=0.6,
            lw=0,
            label=f"{name} view ({len(chosen)} detected)",
        )
    ax.axvline(MAX_RELATIVE_RESIDUAL, color="black", lw=1, ls="--")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.text(MAX_RELATIVE_RESIDUAL * 0.93, 1.75, "accept", ha="right", fontsize=8)
    ax.text(MAX_RELATIVE_RESIDUAL * 1.07, 1.75, "reject", ha="left", fontsize=8)
    ax.set_xscale("log")
    ax.set_ylim(0.0, 1.9)
    ax.set_xlabel("median residual / hand size (gate statistic)")
    ax.set_ylabel("estimated wrist depth / true depth")
    ax.set_title("all detected views", fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    # a 256-colour palette keeps the PNG about four times smaller (noisy backgrounds)
    image = Image.open(buffer).convert("RGB")
    image.quantize(256, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True
    )


def run_image(path: str, intrinsics: np.ndarray) -> None:
    import cv2

    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read image {path!r}")
    found = detect(create_detector(), bgr[..., ::-1])
    if found is None:
        raise SystemExit("MediaPipe found no hand")
    points2d, points3d = found
    hand = camera_space_hand(points3d, points2d, intrinsics)
    statistic = relative_residual(hand.residuals, points2d)
    verdict = "accepted" if hand.accepted else "REJECTED"
    print(f"wrist in camera space (m): {np.array2string(hand.translation, precision=4)}")
    print(
        f"median residual {np.median(hand.residuals):.1f} px = {statistic:.3f} of the hand's "
        f"2D size (gate {MAX_RELATIVE_RESIDUAL}): {verdict}"
    )
    print("keypoints in camera space (m):")
    print(np.array2string(hand.keypoints_cam, precision=4, suppress_small=True))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", help="an RGB image with one hand")
    for name in ("fx", "fy", "cx", "cy"):
        parser.add_argument(f"--{name}", type=float, help="intrinsics, pixels")
    parser.add_argument("--synthetic", type=int, metavar="N", help="measure on N renders")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", metavar="NPZ", help="with --synthetic: save all landmarks")
    parser.add_argument(
        "--examples",
        default="",
        metavar="I,J",
        help="with --synthetic: views for the outputs below",
    )
    parser.add_argument("--fixture", metavar="JSON", help="save the examples' raw landmarks")
    parser.add_argument("--figure", metavar="PNG", help="draw the examples and a depth plot")
    args = parser.parse_args(argv)
    if args.synthetic:
        keep = [int(i) for i in args.examples.split(",") if i]
        detections, kept = run_synthetic(args.synthetic, args.seed, keep)
        if args.save:
            save_detections(args.save, detections)
        if args.fixture:
            command = (
                f"python examples/mediapipe_to_camera_space.py --synthetic {args.synthetic} "
                f"--seed {args.seed} --examples {args.examples} --fixture {args.fixture}"
            )
            write_fixture(args.fixture, kept, command)
        if args.figure:
            make_figure(args.figure, detections, kept)
        records = [measure(d) for d in detections]
        for table in (
            format_table(records),
            format_gate_sweep(records),
            format_landmark_check(detections),
            format_axis_check(detections),
        ):
            print(table, end="\n\n")
        return
    if args.image is None or None in (args.fx, args.fy, args.cx, args.cy):
        parser.error("give an image and --fx --fy --cx --cy, or --synthetic N")
    K = np.array([[args.fx, 0.0, args.cx], [0.0, args.fy, args.cy], [0.0, 0.0, 1.0]])
    run_image(args.image, K)


if __name__ == "__main__":
    main()
