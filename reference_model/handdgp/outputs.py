"""Files to look at a prediction: mesh (PLY), keypoints (JSON), overlay and side view.

:func:`write_ply` (mesh), :func:`write_prediction_json` (keypoints and translation),
:func:`plot_overlay` (mesh and weighted keypoints on the image, as the paper's Fig. 4)
and :func:`plot_side_view` (where the hand sits in front of the camera).
:func:`write_outputs` writes all four.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dgpgeom import ShapeError
from dgpgeom.camera import project
from handdgp.hand.skeleton import HAND_EDGES
from handdgp.inference import Prediction

__all__ = [
    "HAND_EDGES",
    "plot_overlay",
    "plot_side_view",
    "write_outputs",
    "write_ply",
    "write_prediction_json",
]


def _single(prediction: Prediction) -> None:
    if prediction.vertices_cam.ndim != 2:
        raise ShapeError(
            "prediction: expected one hand (vertices_cam (V, 3)), got vertices_cam of shape "
            f"{prediction.vertices_cam.shape}; index a batch first"
        )


def write_ply(path: str | Path, vertices: np.ndarray, faces: np.ndarray | Tensor) -> Path:
    """Write a triangle mesh as an ASCII PLY file (readable by MeshLab, Blender, Open3D).

    Args:
        path: output file.
        vertices: `(V, 3)` metres.
        faces: `(F, 3)` vertex indices.

    Returns:
        The path written.

    Raises:
        ShapeError: on wrong shapes or face indices out of range.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = write_ply(f"{tmp}/tri.ply", np.eye(3), np.array([[0, 1, 2]]))
        ...     print(path.read_text().splitlines()[-1])
        3 0 1 2
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces.cpu() if isinstance(faces, Tensor) else faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ShapeError(f"vertices: expected (V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ShapeError(f"faces: expected (F, 3), got {f.shape}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ShapeError(f"faces: indices must lie in [0, {len(v)}), got [{f.min()}, {f.max()}]")
    lines = [
        "ply",
        "format ascii 1.0",
        "comment HandDGP camera-space hand mesh, metres, OpenCV camera axes",
        f"element vertex {len(v)}",
        "property float x",
        "property float y",
        "property float z",
        f"element face {len(f)}",
        "property list uchar int vertex_indices",
        "end_header",
    ]
    lines += [f"{x:.6f} {y:.6f} {z:.6f}" for x, y, z in v]
    lines += [f"3 {a} {b} {c}" for a, b, c in f]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_prediction_json(path: str | Path, prediction: Prediction) -> Path:
    """Write keypoints, translation, weights and the camera of one prediction as JSON.

    Keys: ``keypoints_cam`` (21 × 3, metres), ``translation`` (3, metres),
    ``keypoints2d`` (21 × 2, original pixels), ``weights`` (21), ``valid``,
    ``intrinsics`` (3 × 3), ``intrinsics_assumed``, ``box`` and ``units``.

    Args:
        path: output file.
        prediction: one :class:`Prediction` (no batch dimension).

    Returns:
        The path written.

    Example:
        >>> import tempfile
        >>> p = Prediction(np.zeros((5, 3)), np.zeros((21, 3)), np.array([0.0, 0.0, 0.5]),
        ...                np.zeros((21, 2)), np.ones(21), np.array(True), np.eye(3), False,
        ...                np.array([0.0, 0.0, 10.0, 10.0]))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     data = json.loads(write_prediction_json(f"{tmp}/p.json", p).read_text())
        >>> data["translation"], data["valid"]
        ([0.0, 0.0, 0.5], True)
    """
    _single(prediction)
    data = {
        "keypoints_cam": prediction.keypoints_cam.tolist(),
        "translation": prediction.translation.tolist(),
        "keypoints2d": prediction.keypoints2d.tolist(),
        "weights": prediction.weights.tolist(),
        "valid": bool(prediction.valid),
        "intrinsics": prediction.intrinsics.tolist(),
        "intrinsics_assumed": bool(prediction.intrinsics_assumed),
        "box": prediction.box.tolist(),
        "units": {
            "keypoints_cam": "metres, original camera frame (x right, y down, z forward)",
            "translation": "metres, the wrist keypoint in the original camera frame",
            "keypoints2d": "pixels of the original image (integer pixel centres)",
        },
    }
    path = Path(path)
    path.write_text(json.dumps(data, indent=1))
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _project(points: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    projection = project(torch.from_numpy(points), torch.from_numpy(intrinsics))
    return projection.points2d.numpy(), projection.in_front.numpy()


def _draw_keypoints(
    ax, points: np.ndarray, weights: np.ndarray, size: float = 36.0, bones: str = "0.85"
):
    for a, b in HAND_EDGES:
        ax.plot(points[[a, b], 0], points[[a, b], 1], color=bones, lw=1.2, zorder=3)
    return ax.scatter(
        points[:, 0],
        points[:, 1],
        c=weights,
        cmap="plasma",
        vmin=0.0,
        vmax=max(1.0, float(np.max(weights))),
        s=size,
        edgecolors="black",
        linewidths=0.6,
        zorder=4,
    )


def plot_overlay(
    path: str | Path,
    image: np.ndarray,
    prediction: Prediction,
    faces: np.ndarray | Tensor,
    *,
    alpha: float = 0.35,
) -> Path:
    """Draw the projected mesh and the weighted 2D keypoints over the image.

    The camera-space mesh is projected with the prediction's intrinsics and drawn
    as semi-transparent triangles, far ones first. The network's 2D keypoints are
    dots coloured by their weight (brighter = higher weight, as the paper's Fig. 4),
    joined by the hand's bones, with a colour bar.

    Args:
        path: output image file (PNG).
        image: `(H, W, 3)` uint8 RGB, the original image.
        prediction: one :class:`Prediction` for it.
        faces: `(F, 3)` vertex indices of the mesh.
        alpha: opacity of the mesh triangles.

    Returns:
        The path written.

    Example:
        >>> import tempfile
        >>> p = Prediction(np.array([[0.0, 0.0, 0.5], [0.05, 0.0, 0.5], [0.0, 0.05, 0.5]]),
        ...                np.zeros((21, 3)) + [0.0, 0.0, 0.5], np.array([0.0, 0.0, 0.5]),
        ...                np.full((21, 2), 20.0), np.linspace(0, 1, 21), np.array(True),
        ...                np.array([[100.0, 0, 19.5], [0, 100.0, 19.5], [0, 0, 1]]), False,
        ...                np.array([-0.5, -0.5, 39.5, 39.5]))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = plot_overlay(f"{tmp}/o.png", np.zeros((40, 40, 3), np.uint8), p, [[0, 1, 2]])
        ...     path.stat().st_size > 1000
        True
    """
    from matplotlib.collections import PolyCollection

    _single(prediction)
    plt = _pyplot()
    f = np.asarray(faces.cpu() if isinstance(faces, Tensor) else faces, dtype=np.int64)
    height, width = image.shape[:2]
    uv, front = _project(prediction.vertices_cam, prediction.intrinsics)
    keep = front[f].all(axis=1)
    tris = f[keep]
    order = np.argsort(-prediction.vertices_cam[tris, 2].mean(axis=1))
    scale = 7.0 / max(height, width)
    fig, ax = plt.subplots(figsize=(width * scale + 1.4, height * scale + 0.6))
    ax.imshow(image, extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="nearest")
    ax.add_collection(
        PolyCollection(
            uv[tris[order]],
            facecolors=(0.55, 0.8, 1.0, alpha),
            edgecolors=(0.2, 0.45, 0.8, min(1.0, 2 * alpha)),
            linewidths=0.2,
            zorder=2,
        )
    )
    dots = _draw_keypoints(ax, prediction.keypoints2d, prediction.weights)
    fig.colorbar(dots, ax=ax, fraction=0.046, pad=0.03, label="keypoint weight")
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_axis_off()
    title = "mesh and 2D keypoints (brighter = higher weight)"
    if prediction.intrinsics_assumed:
        title += "\nintrinsics ASSUMED"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_side_view(
    path: str | Path, prediction: Prediction, image_size: tuple[int, int] | None = None
) -> Path:
    """Show where the hand sits in front of the camera: top and side views.

    Left, from above (x right, z forward); right, from the side (z forward, y
    down). The camera is at the origin with its field of view (the image's
    frustum) drawn out to beyond the hand; the vertices are grey points, the
    keypoints coloured by weight and joined by the bones, and the wrist's
    position is written out in metres.

    Args:
        path: output image file (PNG).
        prediction: one :class:`Prediction`.
        image_size: ``(H, W)`` of the image, for the frustum; None assumes the
            principal point is at the image centre.

    Returns:
        The path written.

    Example:
        >>> import tempfile
        >>> kp = np.random.default_rng(0).normal(size=(21, 3)) * 0.03 + [0.05, 0.0, 0.5]
        >>> p = Prediction(kp, kp, kp[0], np.zeros((21, 2)), np.ones(21), np.array(True),
        ...                np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]]), False,
        ...                np.array([0.0, 0.0, 640.0, 480.0]))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     plot_side_view(f"{tmp}/s.png", p).stat().st_size > 1000
        True
    """
    _single(prediction)
    plt = _pyplot()
    k = prediction.intrinsics
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    height, width = image_size if image_size is not None else (2 * cy + 1, 2 * cx + 1)
    # Rays through the image's outer pixel edges.
    x_rays = np.array([(-0.5 - cx) / fx, (width - 0.5 - cx) / fx])
    y_rays = np.array([(-0.5 - cy) / fy, (height - 0.5 - cy) / fy])
    vertices, keypoints = prediction.vertices_cam, prediction.keypoints_cam
    depth = max(0.2, 1.25 * float(np.max(np.concatenate([vertices[:, 2], keypoints[:, 2]]))))
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    views = (
        (0, 2, "x (m), right", "z (m), forward", "top view", x_rays),
        (2, 1, "z (m), forward", "y (m), down", "side view", y_rays),
    )
    dots = None
    for ax, (a, b, xlabel, ylabel, title, rays) in zip(axes, views, strict=True):
        for ray in rays:
            end = (ray * depth, depth) if a != 2 else (depth, ray * depth)
            ax.plot([0.0, end[0]], [0.0, end[1]], color="0.5", lw=1.0, ls="--")
        ax.plot([0.0], [0.0], marker="s", ms=9, color="black")
        ax.annotate("camera", (0.0, 0.0), textcoords="offset points", xytext=(6, -12), fontsize=8)
        ax.scatter(vertices[:, a], vertices[:, b], s=2, color="0.55", alpha=0.5, lw=0)
        dots = _draw_keypoints(
            ax, keypoints[:, [a, b]], prediction.weights, size=18.0, bones="0.35"
        )
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(True, alpha=0.3)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
    axes[1].invert_yaxis()  # y points down in the camera frame
    t = prediction.translation
    fig.colorbar(dots, ax=list(axes), fraction=0.025, pad=0.02, label="keypoint weight")
    summary = f"wrist at x = {t[0]:+.3f} m, y = {t[1]:+.3f} m, z = {t[2]:.3f} m"
    if not bool(prediction.valid):
        summary += " (positioning INVALID)"
    if prediction.intrinsics_assumed:
        summary += " (intrinsics ASSUMED: depth approximate)"
    fig.suptitle(summary, fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_outputs(
    out_dir: str | Path,
    stem: str,
    image: np.ndarray,
    prediction: Prediction,
    faces: np.ndarray | Tensor,
) -> dict[str, Path]:
    """Write the mesh (``.ply``), the keypoints (``.json``), the overlay and the side view.

    Args:
        out_dir: directory (created if needed).
        stem: file-name stem, e.g. the image's.
        image: `(H, W, 3)` uint8 RGB.
        prediction: one :class:`Prediction` for ``image``.
        faces: `(F, 3)` mesh faces.

    Returns:
        ``{"mesh", "keypoints", "overlay", "side_view"}`` → path written.

    Example:
        >>> import tempfile
        >>> kp = np.random.default_rng(0).normal(size=(21, 3)) * 0.03 + [0.0, 0.0, 0.5]
        >>> p = Prediction(kp, kp, kp[0], np.full((21, 2), 20.0), np.ones(21), np.array(True),
        ...                np.array([[50.0, 0, 19.5], [0, 50.0, 19.5], [0, 0, 1]]), False,
        ...                np.array([-0.5, -0.5, 39.5, 39.5]))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     paths = write_outputs(tmp, "hand", np.zeros((40, 40, 3), np.uint8), p, [[0, 1, 2]])
        ...     sorted(path.name for path in paths.values())
        ['hand_keypoints.json', 'hand_mesh.ply', 'hand_overlay.png', 'hand_side_view.png']
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "mesh": write_ply(out / f"{stem}_mesh.ply", prediction.vertices_cam, faces),
        "keypoints": write_prediction_json(out / f"{stem}_keypoints.json", prediction),
        "overlay": plot_overlay(out / f"{stem}_overlay.png", image, prediction, faces),
        "side_view": plot_side_view(out / f"{stem}_side_view.png", prediction, image.shape[:2]),
    }
