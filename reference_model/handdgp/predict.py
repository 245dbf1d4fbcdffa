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
from dgpgeom.rectification import (
    points2d_to_original,
    points3d_to_original,
    translation_to_original,
)
from handdgp.config import DataConfig
from handdgp.data.crops import crop_image, network_crop, square_box
from handdgp.inference import (
    Prediction,
    check_positioning,
    check_turns,
    inference_mode,
    model_device,
    run_model,
)
from handdgp.net.turned_views import DEFAULT_TURNS
from handdgp.outputs import plot_overlay, plot_side_view, write_ply, write_prediction_json

__all__ = [
    "DEFAULT_FOCAL_FACTOR",
    "crop_box",
    "default_intrinsics",
    "predict_batch",
    "predict_command",
    "predict_image",
    "read_image",
    "reduction_factor",
    "to_reduced",
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
    turns: Sequence[float] | None = None,
) -> Prediction:
    check_positioning(positioning)
    check_turns(turns)
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
            model, crops.to(device), rect.intrinsics.to(device, torch.float32), positioning, turns
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
    turns: Sequence[float] | None = None,
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
        turns: None (one view) or view angles in degrees to average over, see
            :func:`run_model` (e.g. :data:`~handdgp.net.turned_views.DEFAULT_TURNS`).

    Returns:
        A :class:`Prediction` with leading dimension `(B,)`.

    Raises:
        ShapeError: on images that are not uint8 `(H, W, 3)`, or wrongly shaped
            intrinsics or boxes.
        ValueError: on a bad box, positioning or ``turns``.

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
        _warn_assumed(k, stacklevel=3)  # the caller of predict_batch
    else:
        k = _as_intrinsics(intrinsics, len(image_list))
    if isinstance(boxes, np.ndarray):
        boxes = list(boxes)
    return _predict(model, image_list, k, assumed, boxes, data, positioning, turns)


def predict_image(
    model: nn.Module,
    image: np.ndarray,
    intrinsics: np.ndarray | Tensor | None = None,
    box: Sequence[float] | np.ndarray | None = None,
    *,
    data: DataConfig | None = None,
    positioning: str | None = None,
    turns: Sequence[float] | None = None,
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
       :func:`~dgpgeom.rectification.points3d_to_original` /
       :func:`~dgpgeom.rectification.translation_to_original` (the inverse rotation),
       2D keypoints with :func:`~dgpgeom.rectification.points2d_to_original`.

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
        turns: None (one view) or view angles in degrees to average over, see
            :func:`run_model` (e.g. :data:`~handdgp.net.turned_views.DEFAULT_TURNS`).

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
        _warn_assumed(k, stacklevel=3)  # the caller of predict_image
    else:
        k = _as_intrinsics(intrinsics, 1)
    out = _predict(model, image_list, k, assumed, [box], data, positioning, turns)
    return Prediction(*(v if isinstance(v, bool) else v[0] for v in out))


#: Images are decoded at 1/2, 1/4 or 1/8 of their size (a JPEG's DCT scaling, so a
#: large photo is never decoded whole) while the hand box keeps at least
#: ``_BOX_PIXELS`` pixels on its longer side (the crop is a few hundred pixels at
#: most) or, without a box, the image keeps ``_IMAGE_PIXELS`` (for the hand finder).
_BOX_PIXELS = 512
_IMAGE_PIXELS = 1536


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(height, width)`` from a JPEG's start-of-frame header, or None if not a JPEG."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:
            i += 2
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[i + 5 : i + 7], "big"), int.from_bytes(
                data[i + 7 : i + 9], "big"
            )
        else:
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def reduction_factor(height: int, width: int, box: Sequence[float] | None = None) -> int:
    """How much an image can be shrunk on read: 1, 2, 4 or 8.

    The largest factor that keeps the box's longer side (or, without a box, the
    image's) at ``_BOX_PIXELS`` (``_IMAGE_PIXELS``) pixels or more.

    Example:
        >>> reduction_factor(4704, 9184), reduction_factor(480, 640)
        (4, 1)
        >>> reduction_factor(4704, 9184, (4000, 2000, 4800, 2900))
        1
    """
    if box is None:
        side, needed = max(height, width), _IMAGE_PIXELS
    else:
        side, needed = max(box[2] - box[0], box[3] - box[1]), _BOX_PIXELS
    return next((f for f in (8, 4, 2) if side / f >= needed), 1)


def read_image(
    path: Path, box: Sequence[float] | None = None
) -> tuple[np.ndarray, int, tuple[int, int]]:
    """Read an RGB image, shrunk by :func:`reduction_factor` on read.

    Pixel ``i`` of the result covers original pixels ``[f i, f i + f)``: its centre is
    original pixel ``f i + (f - 1) / 2`` (see :func:`to_reduced`).

    Returns:
        ``(image, f, (H, W))``: `(h, w, 3)` uint8 RGB, the factor, the original size.

    Raises:
        FileNotFoundError: ``image: no file ...`` when the file is missing.
        ValueError: ``image: ...`` when it is not an image OpenCV decodes, or is truncated.
    """
    import cv2

    from handdgp.data.imageio import read_rgb

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image: no file {str(path)!r}")
    try:
        with path.open("rb") as file:
            size = _jpeg_size(file.read(1 << 20))
        factor = 1 if size is None else reduction_factor(*size, box)
        image = read_rgb(path, reduce=factor)
    except ValueError as error:
        raise ValueError(f"image: {error}") from error
    if size is None:  # not a JPEG: decoded whole, shrunk by averaging f x f blocks
        size = image.shape[:2]
        factor = reduction_factor(*size, box)
        if factor > 1:
            image = cv2.resize(
                image, (size[1] // factor, size[0] // factor), interpolation=cv2.INTER_AREA
            )
    elif (
        (-(-size[1] // factor), -(-size[0] // factor))
        == image.shape[:2]
        != (-(-size[0] // factor), -(-size[1] // factor))
    ):
        size = size[::-1]  # turned by its EXIF orientation
    return image, factor, (int(size[0]), int(size[1]))


def to_reduced(factor: int) -> np.ndarray:
    """`(3, 3)` map from original pixels to those of an image shrunk by ``factor``.

    ``x_reduced = (x - (f - 1) / 2) / f``; box corners on pixel edges map alike.

    Example:
        >>> to_reduced(4) @ [1.5, 5.5, 1.0]
        array([0., 1., 1.])
    """
    shift = -(factor - 1) / (2 * factor)
    return np.array([[1 / factor, 0.0, shift], [0.0, 1 / factor, shift], [0.0, 0.0, 1.0]])


def _pixels(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, np.float64)
    return pts * matrix[0, 0] + matrix[0, 2]


def _box_pixels(box: np.ndarray | Sequence[float], matrix: np.ndarray) -> np.ndarray:
    return _pixels(np.asarray(box, np.float64).reshape(2, 2), matrix).reshape(4)


def check_device(name: str) -> torch.device:
    """The ``--device`` value as a device this PyTorch can use.

    Raises:
        ValueError: ``--device ...`` for an unknown device or one not available.

    Example:
        >>> check_device("cpu")
        device(type='cpu')
    """
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"--device {name}: not a device name (e.g. cpu, cuda, cuda:1)") from error
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"--device {name}: this PyTorch has no CUDA device; use --device cpu")
        if device.index is not None and device.index >= count:
            raise ValueError(f"--device {name}: only {count} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name}: MPS is not available here; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device {name}: expected cpu, cuda or mps")
    return device


def _default_hand_finder():
    from handdgp.detect import detector_available, find_hand_box

    return find_hand_box if detector_available() else None


def _hand_box(args: argparse.Namespace, image: np.ndarray, hand_finder) -> np.ndarray | None:
    """The hand box in ``image``'s pixels: ``--box`` (mapped), the finder's, or None."""
    if hand_finder is None:
        print(
            "WARNING: no --box given and no hand detector installed (pip install "
            "'handdgp[detect]'): the whole image is used as the hand box"
        )
        return None
    box = hand_finder(image)
    if box is None:
        print(
            f"WARNING: no hand found in {args.image}: the whole image is used as the hand "
            "box; give --box X0,Y0,X1,Y1"
        )
    return box


_FIND = object()  # the default hand finder: handdgp.detect's where installed


def predict_command(args: argparse.Namespace, *, model_factory=None, hand_finder=_FIND) -> int:
    """``handdgp predict``: predict one image and write the mesh, keypoints and figures.

    A large image is shrunk on read (:func:`read_image`); the intrinsics and the box
    are mapped to the shrunk image and every 2D output back to the original's
    pixels. Without ``--box`` the hand is found by ``hand_finder`` (an image -> box or
    None function; default :func:`handdgp.detect.find_hand_box` where MediaPipe is
    installed, None for none), else the whole image is used, with a ``WARNING`` line,
    as when the intrinsics are assumed.

    Returns:
        The exit status (0).

    Raises:
        ValueError, OSError: a user's mistake, naming the option (printed by the CLI
            as one ``error:`` line).
    """
    from handdgp.loading import load_model

    device = check_device(args.device)
    image, factor, (height, width) = read_image(args.image, args.box)
    if args.box is not None:
        x0, y0, x1, y1 = args.box
        if x1 <= -0.5 or y1 <= -0.5 or x0 >= width - 0.5 or y0 >= height - 0.5:
            raise ValueError(
                f"--box {x0:g},{y0:g},{x1:g},{y1:g}: wholly outside the {width}x{height} image"
            )
    try:
        loaded = load_model(args.checkpoint, model_factory=model_factory, device=device)
    except RuntimeError as error:  # weights that do not fit the model built from its config
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"--checkpoint {args.checkpoint}: cannot be loaded ({first})") from error
    reduce = to_reduced(factor)
    if args.intrinsics is not None:
        fx, fy, cx, cy = args.intrinsics
        k_original = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    else:
        k_original = default_intrinsics(height, width)
    if args.box is not None:
        box = _box_pixels(args.box, reduce)
    else:
        box = _hand_box(
            args, image, _default_hand_finder() if hand_finder is _FIND else hand_finder
        )
        if box is not None:
            b = _box_pixels(box, np.linalg.inv(reduce))
            print(f"hand found: box {b[0]:.0f},{b[1]:.0f},{b[2]:.0f},{b[3]:.0f}")
    seen = predict_image(
        loaded.model,
        image,
        reduce @ k_original,
        box,
        data=loaded.config.data,
        positioning=args.positioning,
        turns=DEFAULT_TURNS if args.tta else None,
    )._replace(intrinsics_assumed=args.intrinsics is None)
    back = np.linalg.inv(reduce)
    prediction = seen._replace(
        keypoints2d=_pixels(seen.keypoints2d, back),
        box=_box_pixels(seen.box, back),
        intrinsics=k_original,
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
    out, stem = Path(args.out), args.image.stem
    out.mkdir(parents=True, exist_ok=True)
    paths = {  # the files in the original's pixels; the figures on the image as read
        "mesh": write_ply(out / f"{stem}_mesh.ply", prediction.vertices_cam, loaded.faces),
        "keypoints": write_prediction_json(out / f"{stem}_keypoints.json", prediction),
        "overlay": plot_overlay(out / f"{stem}_overlay.png", image, seen, loaded.faces),
        "side_view": plot_side_view(out / f"{stem}_side_view.png", seen, image.shape[:2]),
    }
    t = prediction.translation
    print(f"wrist (camera space): x = {t[0]:+.4f} m, y = {t[1]:+.4f} m, z = {t[2]:.4f} m")
    for name, path in paths.items():
        print(f"wrote {name}: {path}")
    return 0
