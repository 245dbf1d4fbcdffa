"""Camera-space hand meshes from ordinary images, and files to look at them.

:func:`predict_image` takes an RGB image with its intrinsics (and optionally a hand
box), makes the network's input crop the way the model was trained (rectified to the
canonical camera, or a plain crop for a model trained without rectification), runs
the network and maps every output back to the *original* camera: camera-space
vertices and keypoints in metres, 2D keypoints in original pixels.

Writers: :func:`write_ply` (mesh), :func:`write_prediction_json` (keypoints and
translation), :func:`plot_overlay` (mesh and weighted keypoints on the image, as the
paper's Fig. 4) and :func:`plot_side_view` (where the hand sits in front of the
camera). :func:`write_outputs` writes all four.

Conventions (see the Conventions page, docs/conventions.md): OpenCV camera axes (x
right, y down, z forward), pixel centres on integer coordinates, (x, y) order,
intrinsics ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``, metres in 3D.
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

import dgpgeom
from dgpgeom._validate import ShapeError
from dgpgeom.rectify import (
    Rectification,
    points2d_to_original,
    points3d_to_original,
    rectify_camera,
    translation_to_original,
    warp_to_rectified,
)
from handdgp.cli import add_predict_arguments
from handdgp.config import DataConfig
from handdgp.net.model import POSITIONING, HandPrediction

__all__ = [
    "DEFAULT_FOCAL_FACTOR",
    "HAND_EDGES",
    "Prediction",
    "add_predict_arguments",
    "crop_box",
    "default_intrinsics",
    "plot_overlay",
    "plot_side_view",
    "predict_batch",
    "predict_command",
    "predict_image",
    "reposition",
    "run_model",
    "write_outputs",
    "write_ply",
    "write_prediction_json",
]

#: Without intrinsics the focal length is assumed to be this factor times the
#: image's longer side (a horizontal field of view of about 45° for a landscape
#: image, typical of phone and webcam main cameras).
DEFAULT_FOCAL_FACTOR = 1.2

#: Bones of the 21-keypoint hand in FreiHAND order (wrist; thumb, index, middle,
#: ring, little finger, each from the knuckle to the tip).
HAND_EDGES = tuple(
    (0 if joint == 0 else base + joint - 1, base + joint)
    for base in (1, 5, 9, 13, 17)
    for joint in range(4)
)

RECTIFY_MODES = ("perspective", "affine")


class Prediction(NamedTuple):
    """A hand prediction in the original camera (NumPy arrays, float64).

    Leading dimensions ``...`` are absent for :func:`predict_image` and `(B,)` for
    :func:`predict_batch`.

    Attributes:
        vertices_cam: `(..., V, 3)` metres, camera space of the original camera.
        keypoints_cam: `(..., 21, 3)` metres, camera space of the original camera.
        translation: `(..., 3)` metres, the root keypoint (wrist) in camera space.
        keypoints2d: `(..., 21, 2)` original pixels: the network's 2D keypoints
            mapped back from the crop (not the projection of ``keypoints_cam``).
        weights: `(..., 21)` the keypoint weights the positioning used.
        valid: `(...)` bool, False where the positioning was degenerate.
        intrinsics: `(..., 3, 3)` pixels, the intrinsics used (given or assumed).
        intrinsics_assumed: True when no intrinsics were given and
            :func:`default_intrinsics` was assumed: depth and camera-space
            position are then only as right as that guess.
        box: `(..., 4)` original pixels, ``(x0, y0, x1, y1)`` of the region the crop
            was centred on (for a model without rectification, the crop itself).
    """

    vertices_cam: np.ndarray
    keypoints_cam: np.ndarray
    translation: np.ndarray
    keypoints2d: np.ndarray
    weights: np.ndarray
    valid: np.ndarray
    intrinsics: np.ndarray
    intrinsics_assumed: bool
    box: np.ndarray


# --------------------------------------------------------------------------- positioning


def reposition(prediction: HandPrediction, intrinsics: Tensor, positioning: str) -> HandPrediction:
    """Re-solve the translation of a network prediction with another positioning.

    The root-relative outputs (2D keypoints, vertices, keypoints, weights) are kept;
    the translation, camera-space points and ``valid`` are replaced.

    Args:
        prediction: a :class:`~handdgp.net.HandPrediction` for crops with ``intrinsics``.
        intrinsics: `(B, 3, 3)` pixels, the crops' intrinsics.
        positioning: ``"dgp"`` (weighted DLT, :func:`dgpgeom.solve_translation`) or
            ``"refine"`` (DLT then robust Gauss-Newton on the reprojection error,
            ``dgpgeom.solvers.refine.refine_translation`` with a Huber kernel, as
            the network's own ``"refine"`` mode).

    Returns:
        The updated :class:`~handdgp.net.HandPrediction`.

    Raises:
        ValueError: on another ``positioning`` (``"root_regression"`` needs a
            trained root head, it cannot be applied afterwards).

    Example:
        >>> import torch
        >>> K = torch.tensor([[[100.0, 0.0, 16.0], [0.0, 100.0, 16.0], [0.0, 0.0, 1.0]]])
        >>> kp3d = torch.tensor([[[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.0, 0.05, 0.01]]])
        >>> t = torch.tensor([[0.01, 0.02, 0.5]])
        >>> cam = kp3d + t[:, None]
        >>> kp2d = cam[..., :2] / cam[..., 2:] * 100.0 + 16.0
        >>> ones, zeros = torch.ones(1, 3), torch.zeros(1, 3)
        >>> raw = HandPrediction(kp2d, kp3d, kp3d, ones, zeros, kp3d, kp3d, torch.tensor([False]))
        >>> fixed = reposition(raw, K, "dgp")
        >>> torch.allclose(fixed.translation, t, atol=1e-5), bool(fixed.valid)
        (True, True)
    """
    if positioning == "dgp":
        solution = dgpgeom.solve_translation(
            prediction.keypoints2d, prediction.keypoints3d, intrinsics, prediction.weights
        )
        translation, valid = solution.translation, solution.valid
    elif positioning == "refine":
        from dgpgeom.solvers.refine import refine_translation

        refined = refine_translation(
            prediction.keypoints2d,
            prediction.keypoints3d,
            intrinsics,
            prediction.weights,
            robust="huber",
        )
        translation, valid = refined.translation, refined.valid
    else:
        raise ValueError(
            f"positioning: expected 'dgp' or 'refine' to re-solve a prediction, got {positioning!r}"
        )
    offset = translation.unsqueeze(-2)
    return prediction._replace(
        translation=translation,
        vertices_cam=prediction.vertices + offset,
        keypoints_cam=prediction.keypoints3d + offset,
        valid=valid,
    )


def _check_positioning(positioning: str | None) -> None:
    if positioning is not None and positioning not in POSITIONING:
        raise ValueError(f"positioning: expected None or one of {POSITIONING}, got {positioning!r}")


def run_model(
    model: nn.Module, images: Tensor, intrinsics: Tensor, positioning: str | None = None
) -> HandPrediction:
    """Run the network, overriding its test-time positioning if asked.

    Args:
        model: a :class:`~handdgp.net.HandDGPNet` (or any module with the same call).
        images: `(B, 3, S, S)` crops in [0, 1].
        intrinsics: `(B, 3, 3)` pixels, the crops' intrinsics.
        positioning: None or the model's own positioning (outputs as they are),
            ``"dgp"`` or ``"refine"`` (re-solved with :func:`reposition`).
            ``"root_regression"`` only for a model trained with it.

    Returns:
        A :class:`~handdgp.net.HandPrediction`.

    Raises:
        ValueError: on an unknown positioning, or ``"root_regression"`` for a model
            without a root head.

    Example:
        >>> import torch
        >>> class Constant(torch.nn.Module):
        ...     def forward(self, images, intrinsics):
        ...         z = torch.zeros(images.shape[0], 21, 3)
        ...         return HandPrediction(z[..., :2], z, z, z[..., 0] + 1, z[:, 0], z, z, z[:, 0, 0] > 0)
        >>> run_model(Constant(), torch.zeros(2, 3, 8, 8), torch.eye(3).expand(2, 3, 3)).valid
        tensor([False, False])
    """
    _check_positioning(positioning)
    prediction = model(images, intrinsics)
    own = getattr(getattr(model, "config", None), "positioning", None)
    if positioning is None or positioning == own:
        return prediction
    if positioning == "root_regression":
        raise ValueError(
            "positioning='root_regression' needs a model trained with a root head "
            f"(this one was trained with {own!r})"
        )
    return reposition(prediction, intrinsics, positioning)


@contextmanager
def _inference(model: nn.Module):
    """Eval mode and no autograd for the duration; the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


# --------------------------------------------------------------------------- crops


def default_intrinsics(height: int, width: int) -> np.ndarray:
    """The intrinsics assumed when none are given.

    ``fx = fy =`` :data:`DEFAULT_FOCAL_FACTOR` ``· max(H, W)`` and the principal point
    at the image centre ``((W - 1) / 2, (H - 1) / 2)`` (integer pixel centres). The
    predicted depth scales with the focal length, so camera-space results made
    with assumed intrinsics are approximate; the shape and the 2D overlay are not
    affected much.

    Args:
        height: image height, pixels.
        width: image width, pixels.

    Returns:
        `(3, 3)` float64 intrinsics.

    Example:
        >>> default_intrinsics(480, 640)
        array([[768. ,   0. , 319.5],
               [  0. , 768. , 239.5],
               [  0. ,   0. ,   1. ]])
    """
    focal = DEFAULT_FOCAL_FACTOR * max(height, width)
    return np.array(
        [[focal, 0.0, (width - 1) / 2.0], [0.0, focal, (height - 1) / 2.0], [0.0, 0.0, 1.0]]
    )


def crop_box(
    box: Sequence[float] | np.ndarray | None,
    height: int,
    width: int,
    *,
    rectify: bool = True,
    box_scale: float = 1.3,
) -> np.ndarray:
    """The box the network's crop is made from, in original pixels (corners on pixel edges).

    - With rectification (the canonical focal length fixes the scale) only the box
      centre matters, and the box is returned as given; without a box, the whole
      image ``(-0.5, -0.5, W - 0.5, H - 0.5)``.
    - Without rectification (ablation A4) the crop is the square of side
      ``box_scale · max(box width, box height)`` around the box centre; without a
      box, the square of side ``max(H, W)`` around the image centre (the whole
      image, padded to a square).

    Args:
        box: ``(x0, y0, x1, y1)`` pixels, or None.
        height: image height, pixels.
        width: image width, pixels.
        rectify: whether the model was trained on rectified crops.
        box_scale: crop side over box side without rectification.

    Returns:
        `(4,)` float64 ``(x0, y0, x1, y1)``.

    Raises:
        ValueError: on a box that is not four finite numbers with ``x1 > x0`` and ``y1 > y0``.

    Example:
        >>> crop_box((100, 50, 200, 130), 480, 640, rectify=False, box_scale=1.5)
        array([ 75.,  15., 225., 165.])
        >>> crop_box(None, 480, 640).tolist()
        [-0.5, -0.5, 639.5, 479.5]
    """
    given = box is not None
    if box is None:
        b = np.array([-0.5, -0.5, width - 0.5, height - 0.5])
    else:
        b = np.asarray(box, dtype=np.float64).reshape(-1)
        if b.shape != (4,) or not np.all(np.isfinite(b)) or b[2] <= b[0] or b[3] <= b[1]:
            raise ValueError(
                f"box: expected (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {box!r}"
            )
    if rectify:
        return b
    centre = 0.5 * (b[:2] + b[2:])
    half = 0.5 * max(b[2] - b[0], b[3] - b[1]) * (box_scale if given else 1.0)
    return np.concatenate([centre - half, centre + half])


def _as_images(images: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    elif isinstance(images, np.ndarray):
        raise ShapeError(
            f"images: expected (B, H, W, 3) or a list of (H, W, 3), got {images.shape}"
        )
    out = []
    for i, image in enumerate(images):
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            shape = getattr(image, "shape", type(image).__name__)
            raise ShapeError(f"images[{i}]: expected an (H, W, 3) RGB array, got {shape}")
        if image.dtype != np.uint8:
            raise ShapeError(f"images[{i}]: expected dtype uint8, got {image.dtype}")
        out.append(image)
    if not out:
        raise ShapeError("images: expected at least one image")
    return out


def _as_intrinsics(intrinsics: Any, count: int) -> np.ndarray:
    k = np.asarray(
        intrinsics.detach().cpu() if isinstance(intrinsics, Tensor) else intrinsics,
        dtype=np.float64,
    )
    if k.shape == (3, 3):
        k = np.broadcast_to(k, (count, 3, 3))
    if k.shape != (count, 3, 3):
        raise ShapeError(f"intrinsics: expected (3, 3) or ({count}, 3, 3), got {k.shape}")
    if not np.all(np.isfinite(k)) or np.any(k[:, 0, 0] <= 0) or np.any(k[:, 1, 1] <= 0):
        raise ValueError("intrinsics: expected finite values with positive focal lengths")
    return k


class _Batch(NamedTuple):
    crops: Tensor
    rect: Rectification
    intrinsics: np.ndarray
    boxes: np.ndarray


def _make_crops(
    images: list[np.ndarray],
    intrinsics: np.ndarray,
    boxes: Sequence[Any] | None,
    size: int,
    data: DataConfig,
    mode: str,
    device: torch.device,
) -> _Batch:
    if boxes is None:
        boxes = [None] * len(images)
    if len(boxes) != len(images):
        raise ShapeError(f"boxes: expected {len(images)} boxes (or None), got {len(boxes)}")
    crop = np.stack(
        [
            crop_box(b, im.shape[0], im.shape[1], rectify=data.rectify, box_scale=data.box_scale)
            for b, im in zip(boxes, images, strict=True)
        ]
    )
    rect = rectify_camera(
        torch.from_numpy(intrinsics.copy()),
        torch.from_numpy(crop),
        size=size,
        focal=float(data.canonical_focal) if data.rectify else None,
        # Without rectification the crop is a scaled window with its own intrinsics.
        mode=mode if data.rectify else "affine",
    )
    warp = rect._replace(from_original=rect.from_original.to(device, torch.float32))
    tensors = [
        torch.from_numpy(im).to(device).permute(2, 0, 1).unsqueeze(0).float() / 255.0
        for im in images
    ]
    if all(t.shape == tensors[0].shape for t in tensors):
        crops = warp_to_rectified(torch.cat(tensors), warp)
    else:
        crops = torch.cat(
            [
                warp_to_rectified(t, warp._replace(from_original=warp.from_original[i : i + 1]))
                for i, t in enumerate(tensors)
            ]
        )
    return _Batch(crops, rect, intrinsics, crop)


def _predict(
    model: nn.Module,
    images: list[np.ndarray],
    intrinsics: np.ndarray,
    assumed: bool,
    boxes: Sequence[Any] | None,
    data: DataConfig | None,
    mode: str,
    positioning: str | None,
) -> Prediction:
    if mode not in RECTIFY_MODES:
        raise ValueError(f"mode: expected one of {RECTIFY_MODES}, got {mode!r}")
    _check_positioning(positioning)
    data = data or DataConfig()
    size = int(model.config.image_size)
    device = _model_device(model)
    batch = _make_crops(images, intrinsics, boxes, size, data, mode, device)
    k_crop = batch.rect.intrinsics.to(device, torch.float32)
    with _inference(model):
        out = run_model(model, batch.crops, k_crop, positioning)
    rect = batch.rect

    def back(t: Tensor) -> Tensor:
        return t.detach().to("cpu", torch.float64)

    vertices = points3d_to_original(back(out.vertices_cam), rect)
    keypoints = points3d_to_original(back(out.keypoints_cam), rect)
    translation = translation_to_original(back(out.translation), rect)
    keypoints2d = points2d_to_original(back(out.keypoints2d), rect)
    return Prediction(
        vertices_cam=vertices.numpy(),
        keypoints_cam=keypoints.numpy(),
        translation=translation.numpy(),
        keypoints2d=keypoints2d.numpy(),
        weights=back(out.weights).numpy(),
        valid=(out.valid.cpu() & rect.valid).numpy(),
        intrinsics=batch.intrinsics.copy(),
        intrinsics_assumed=assumed,
        box=batch.boxes,
    )


def _warn_assumed(intrinsics: np.ndarray, stacklevel: int) -> None:
    k = intrinsics[0]
    warnings.warn(
        "no intrinsics given: assuming fx = fy = "
        f"{DEFAULT_FOCAL_FACTOR} * max(H, W) = {k[0, 0]:.1f} px and the principal point "
        f"at the image centre ({k[0, 2]:.1f}, {k[1, 2]:.1f}); the predicted depth scales "
        "with the focal length, so camera-space positions are approximate",
        UserWarning,
        stacklevel=stacklevel,
    )


def predict_batch(
    model: nn.Module,
    images: np.ndarray | Sequence[np.ndarray],
    intrinsics: np.ndarray | Tensor | None = None,
    boxes: Sequence[Sequence[float] | None] | np.ndarray | None = None,
    *,
    data: DataConfig | None = None,
    mode: str = "perspective",
    positioning: str | None = None,
) -> Prediction:
    """Predict camera-space hands for a batch of images in one network pass.

    Each image is rectified (or cropped) as in :func:`predict_image`; the crops go
    through the network together, so this is the throughput path. Images may
    have different sizes.

    Args:
        model: a trained :class:`~handdgp.net.HandDGPNet` (its ``config.image_size``
            sets the crop size); run in eval mode without gradients.
        images: `(B, H, W, 3)` uint8 RGB, or a list of `(H_i, W_i, 3)` uint8 RGB.
        intrinsics: `(3, 3)` for all images or `(B, 3, 3)`, pixels; None assumes
            :func:`default_intrinsics` per image (with a warning).
        boxes: None, or one ``(x0, y0, x1, y1)`` box (or None) per image, pixels.
        data: the checkpoint's ``data`` section (``rectify``, ``canonical_focal``,
            ``box_scale``); default :class:`~handdgp.config.DataConfig`.
        mode: rectification ``"perspective"`` (default) or ``"affine"`` (the
            paper's); ignored when ``data.rectify`` is False.
        positioning: override of the model's positioning, see :func:`run_model`.

    Returns:
        A :class:`Prediction` with leading dimension `(B,)`.

    Raises:
        ShapeError: on images that are not uint8 `(H, W, 3)`, or wrongly shaped
            intrinsics or boxes.
        ValueError: on a bad box, mode or positioning.

    Example:
        >>> import numpy as np, torch
        >>> from handdgp.net import HandDGPNet, NetConfig
        >>> _ = torch.manual_seed(0)
        >>> spirals = [torch.arange(v).repeat_interleave(9).view(v, 9) for v in (12, 6)]
        >>> config = NetConfig(image_size=32, width=0.125, decoder_channels=(8,))
        >>> net = HandDGPNet(config, torch.rand(21, 12), spirals, [torch.eye(6).repeat(2, 1)])
        >>> K = np.array([[60.0, 0.0, 31.5], [0.0, 60.0, 23.5], [0.0, 0.0, 1.0]])
        >>> out = predict_batch(net, np.zeros((4, 48, 64, 3), np.uint8), K)
        >>> out.vertices_cam.shape, out.keypoints2d.shape, out.valid.shape
        ((4, 12, 3), (4, 21, 2), (4,))
    """
    image_list = _as_images(images)
    assumed = intrinsics is None
    if assumed:
        k = np.stack([default_intrinsics(im.shape[0], im.shape[1]) for im in image_list])
        _warn_assumed(k, stacklevel=3)
    else:
        k = _as_intrinsics(intrinsics, len(image_list))
    if isinstance(boxes, np.ndarray):
        boxes = list(boxes)
    return _predict(model, image_list, k, assumed, boxes, data, mode, positioning)


def predict_image(
    model: nn.Module,
    image: np.ndarray,
    intrinsics: np.ndarray | Tensor | None = None,
    box: Sequence[float] | np.ndarray | None = None,
    *,
    data: DataConfig | None = None,
    mode: str = "perspective",
    positioning: str | None = None,
) -> Prediction:
    """Predict the camera-space hand mesh in one RGB image.

    1. The crop: with ``data.rectify`` (the paper's pipeline), the image is
       rectified to the canonical camera (focal ``data.canonical_focal`` at the
       model's input size) centred on the box centre with
       :func:`dgpgeom.rectify.rectify_camera`; in ``"perspective"`` mode a
       virtual rotation first puts the box centre on the optical axis. Without
       rectification (ablation A4) the square crop of :func:`crop_box` is resized
       to the input size and keeps its own intrinsics.
    2. The network runs on the crop with the crop's intrinsics.
    3. Outputs go back to the original camera: 3D points and the translation with
       :func:`~dgpgeom.rectify.points3d_to_original` /
       :func:`~dgpgeom.rectify.translation_to_original` (the inverse rotation),
       2D keypoints with :func:`~dgpgeom.rectify.points2d_to_original`.

    Without a box the crop is centred on the image centre (the whole image without
    rectification). Without intrinsics :func:`default_intrinsics` is assumed, a
    ``UserWarning`` is issued and ``intrinsics_assumed`` is True in the result.

    Args:
        model: a trained :class:`~handdgp.net.HandDGPNet` (eval mode is used).
        image: `(H, W, 3)` uint8 RGB.
        intrinsics: `(3, 3)` pixels, or None.
        box: ``(x0, y0, x1, y1)`` pixels around the hand (corners on pixel edges), or None.
        data: the checkpoint's ``data`` section; default :class:`~handdgp.config.DataConfig`.
        mode: ``"perspective"`` (default) or ``"affine"`` rectification.
        positioning: override of the model's positioning, see :func:`run_model`.

    Returns:
        A :class:`Prediction` without batch dimension.

    Raises:
        ShapeError, ValueError: as :func:`predict_batch`.

    Example:
        >>> import numpy as np, torch
        >>> from handdgp.net import HandDGPNet, NetConfig
        >>> _ = torch.manual_seed(0)
        >>> spirals = [torch.arange(v).repeat_interleave(9).view(v, 9) for v in (12, 6)]
        >>> config = NetConfig(image_size=32, width=0.125, decoder_channels=(8,))
        >>> net = HandDGPNet(config, torch.rand(21, 12), spirals, [torch.eye(6).repeat(2, 1)])
        >>> K = np.array([[60.0, 0.0, 31.5], [0.0, 60.0, 23.5], [0.0, 0.0, 1.0]])
        >>> out = predict_image(net, np.zeros((48, 64, 3), np.uint8), K, (10, 10, 40, 40))
        >>> out.vertices_cam.shape, out.translation.shape, out.intrinsics_assumed
        ((12, 3), (3,), False)
    """
    image_list = _as_images([image])
    assumed = intrinsics is None
    if assumed:
        k = default_intrinsics(image.shape[0], image.shape[1])[None]
        _warn_assumed(k, stacklevel=2)
    else:
        k = _as_intrinsics(intrinsics, 1)
    out = _predict(model, image_list, k, assumed, [box], data, mode, positioning)
    return Prediction(*(v if isinstance(v, bool) else v[0] for v in out))


# --------------------------------------------------------------------------- writers


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
    z = points[:, 2]
    front = z > 1e-3
    uvw = points @ intrinsics.T
    return uvw[:, :2] / np.where(front, uvw[:, 2], 1.0)[:, None], front


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


# --------------------------------------------------------------------------- command line


def _read_rgb(path: Path) -> np.ndarray:
    """The image, checked (missing, undecodable or truncated: an error naming it)."""
    from handdgp.data.imageio import read_rgb

    return read_rgb(path)


def predict_command(args: argparse.Namespace, *, model_factory=None) -> int:
    """``handdgp predict``: predict one image and write the mesh, keypoints and figures.

    Prints where each file went, and a ``WARNING`` line when the intrinsics were
    assumed. Returns the exit status (0).
    """
    from handdgp.loading import load_model

    image = _read_rgb(args.image)
    loaded = load_model(args.checkpoint, model_factory=model_factory, device=args.device)
    intrinsics = None
    if args.intrinsics is not None:
        fx, fy, cx, cy = args.intrinsics
        intrinsics = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        prediction = predict_image(
            loaded.model,
            image,
            intrinsics,
            args.box,
            data=loaded.config.data,
            mode=args.mode,
            positioning=args.positioning,
        )
    if prediction.intrinsics_assumed:
        k = prediction.intrinsics
        print(
            f"WARNING: no --intrinsics given: assumed fx = fy = {k[0, 0]:.1f} px "
            f"({DEFAULT_FOCAL_FACTOR} x the longer image side) and the principal point at "
            f"({k[0, 2]:.1f}, {k[1, 2]:.1f}); the camera-space depth is approximate"
        )
    if not bool(prediction.valid):
        print("WARNING: the positioning was degenerate; the translation is not reliable")
    paths = write_outputs(args.out, args.image.stem, image, prediction, loaded.faces)
    t = prediction.translation
    print(f"wrist (camera space): x = {t[0]:+.4f} m, y = {t[1]:+.4f} m, z = {t[2]:.4f} m")
    for name, path in paths.items():
        print(f"wrote {name}: {path}")
    return 0
