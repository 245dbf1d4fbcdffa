"""Camera-space hand meshes from ordinary images.

:func:`predict_image` takes an RGB image with its intrinsics (and optionally a hand
box), makes the network's input crop exactly as training made it
(:func:`handdgp.data.crops.network_crop` and :func:`~handdgp.data.crops.crop_image`,
from the checkpoint's ``data`` section), runs the network and maps every output back
to the *original* camera: camera-space vertices and keypoints in metres, 2D keypoints
in original pixels. :mod:`handdgp.outputs` writes the files to look at them.

Conventions (see the Conventions page): OpenCV camera axes (x right, y down, z
forward), pixel centres on integer coordinates, (x, y) order, intrinsics
``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``, metres in 3D.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dgpgeom import ShapeError
from dgpgeom.rectify import (
    points2d_to_original,
    points3d_to_original,
    translation_to_original,
)
from handdgp.config import DataConfig
from handdgp.data.crops import crop_image, network_crop, square_box
from handdgp.inference import (
    Prediction,
    check_positioning,
    inference_mode,
    model_device,
    run_model,
)
from handdgp.outputs import write_outputs

__all__ = [
    "DEFAULT_FOCAL_FACTOR",
    "crop_box",
    "default_intrinsics",
    "predict_batch",
    "predict_command",
    "predict_image",
]

#: Without intrinsics the focal length is assumed to be this factor times the
#: image's longer side (a horizontal field of view of about 45° for a landscape
#: image, typical of phone and webcam main cameras).
DEFAULT_FOCAL_FACTOR = 1.2


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
    box: Sequence[float] | np.ndarray | None, height: int, width: int, *, box_scale: float = 1.3
) -> np.ndarray:
    """The crop box for a hand box, as training makes it from the hand's tight box.

    A given box (tight around the hand) is made square about its centre and scaled
    by ``box_scale``, as :func:`handdgp.data.crops.hand_box` does in training;
    without a box, the square of side ``max(H, W)`` around the image centre (the
    whole image, padded to a square).

    Args:
        box: ``(x0, y0, x1, y1)`` pixels (corners on pixel edges), or None.
        height: image height, pixels.
        width: image width, pixels.
        box_scale: crop side over the box's longer side (the checkpoint's ``data.box_scale``).

    Returns:
        `(4,)` float64 ``(x0, y0, x1, y1)``.

    Raises:
        ValueError: on a box that is not four finite numbers with ``x1 > x0`` and ``y1 > y0``.

    Example:
        >>> crop_box((100, 50, 200, 130), 480, 640, box_scale=1.5)
        array([ 75.,  15., 225., 165.])
        >>> crop_box(None, 480, 640).tolist()
        [-0.5, -80.5, 639.5, 559.5]
    """
    if box is None:
        return square_box(np.array([-0.5, -0.5, width - 0.5, height - 0.5]))
    b = np.asarray(box, dtype=np.float64).reshape(-1)
    if b.shape != (4,) or not np.all(np.isfinite(b)) or b[2] <= b[0] or b[3] <= b[1]:
        raise ValueError(f"box: expected (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {box!r}")
    return square_box(b, box_scale)


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


def _predict(
    model: nn.Module,
    images: list[np.ndarray],
    intrinsics: np.ndarray,
    assumed: bool,
    boxes: Sequence[Any] | None,
    data: DataConfig | None,
    positioning: str | None,
) -> Prediction:
    check_positioning(positioning)
    data = data or DataConfig()
    size = int(model.config.image_size)
    device = model_device(model)
    if boxes is None:
        boxes = [None] * len(images)
    if len(boxes) != len(images):
        raise ShapeError(f"boxes: expected {len(images)} boxes (or None), got {len(boxes)}")
    focal = None if data.focal_from_box else data.canonical_focal
    crop_boxes = np.stack(
        [
            crop_box(b, im.shape[0], im.shape[1], box_scale=data.box_scale)
            for b, im in zip(boxes, images, strict=True)
        ]
    )
    rects = [
        network_crop(
            k, b, image_size=size, rectify=data.rectify, canonical_focal=focal, mode=data.mode
        )
        for k, b in zip(intrinsics, crop_boxes, strict=True)
    ]
    crops = torch.stack([crop_image(im, r) for im, r in zip(images, rects, strict=True)])
    rect = rects[0]._replace(
        **{
            key: torch.stack([getattr(r, key) for r in rects])
            for key in ("intrinsics", "from_original", "to_original", "rotation", "valid")
        }
    )
    with inference_mode(model):
        out = run_model(
            model, crops.to(device), rect.intrinsics.to(device, torch.float32), positioning
        )

    def back(t: Tensor) -> Tensor:
        return t.detach().to("cpu", torch.float64)

    return Prediction(
        vertices_cam=points3d_to_original(back(out.vertices_cam), rect).numpy(),
        keypoints_cam=points3d_to_original(back(out.keypoints_cam), rect).numpy(),
        translation=translation_to_original(back(out.translation), rect).numpy(),
        keypoints2d=points2d_to_original(back(out.keypoints2d), rect).numpy(),
        weights=back(out.weights).numpy(),
        valid=(out.valid.cpu() & rect.valid).numpy(),
        intrinsics=intrinsics.copy(),
        intrinsics_assumed=assumed,
        box=crop_boxes,
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
        data: the checkpoint's ``data`` section (``rectify``, ``focal_from_box``,
            ``canonical_focal``, ``box_scale``, ``mode``): the crops are made as in
            training; default :class:`~handdgp.config.DataConfig`.
        positioning: override of the model's positioning, see :func:`run_model`.

    Returns:
        A :class:`Prediction` with leading dimension `(B,)`.

    Raises:
        ShapeError: on images that are not uint8 `(H, W, 3)`, or wrongly shaped
            intrinsics or boxes.
        ValueError: on a bad box or positioning.

    Example:
        >>> import numpy as np, torch
        >>> from handdgp.net import HandDGPNet, NetConfig
        >>> _ = torch.manual_seed(0)
        >>> spirals = [torch.arange(v).repeat_interleave(9).view(v, 9) for v in (12, 6)]
        >>> config = NetConfig(image_size=32, width=0.125, decoder_channels=(8,), decoder="spiral")
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
    return _predict(model, image_list, k, assumed, boxes, data, positioning)


def predict_image(
    model: nn.Module,
    image: np.ndarray,
    intrinsics: np.ndarray | Tensor | None = None,
    box: Sequence[float] | np.ndarray | None = None,
    *,
    data: DataConfig | None = None,
    positioning: str | None = None,
) -> Prediction:
    """Predict the camera-space hand mesh in one RGB image.

    1. The crop, exactly as in training: the box of :func:`crop_box` goes to
       :func:`handdgp.data.crops.network_crop` with the checkpoint's ``data``
       section (rectified to the canonical camera, at the box's scale or a fixed
       canonical focal; in ``"perspective"`` mode a virtual rotation first puts
       the box centre on the optical axis; a plain crop for ablation A4), and
       :func:`handdgp.data.crops.crop_image` resamples it (area-averaged first
       when it shrinks the image a lot).
    2. The network runs on the crop with the crop's intrinsics.
    3. Outputs go back to the original camera: 3D points and the translation with
       :func:`~dgpgeom.rectify.points3d_to_original` /
       :func:`~dgpgeom.rectify.translation_to_original` (the inverse rotation),
       2D keypoints with :func:`~dgpgeom.rectify.points2d_to_original`.

    Without a box the crop is the whole image, padded to a square. Without intrinsics :func:`default_intrinsics` is assumed, a
    ``UserWarning`` is issued and ``intrinsics_assumed`` is True in the result.

    Args:
        model: a trained :class:`~handdgp.net.HandDGPNet` (eval mode is used).
        image: `(H, W, 3)` uint8 RGB.
        intrinsics: `(3, 3)` pixels, or None.
        box: ``(x0, y0, x1, y1)`` pixels around the hand (corners on pixel edges), or None.
        data: the checkpoint's ``data`` section (the crop is made as in training);
            default :class:`~handdgp.config.DataConfig`.
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
        >>> config = NetConfig(image_size=32, width=0.125, decoder_channels=(8,), decoder="spiral")
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
    out = _predict(model, image_list, k, assumed, [box], data, positioning)
    return Prediction(*(v if isinstance(v, bool) else v[0] for v in out))


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
