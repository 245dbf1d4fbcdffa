"""Hand crops for the network: box, canonical-camera rectification, augmentation.

The network sees a square crop of ``image_size`` pixels around the hand. With
``rectify=True`` (the paper's §3.3, and our default) the crop is taken by a
*canonical camera* of fixed focal length ``canonical_focal`` (pixels at
``image_size``), built with :func:`dgpgeom.rectification.rectify_camera`: the apparent size
of the hand then carries its depth, whatever the original camera. In
``"perspective"`` mode (default) the canonical camera is also turned to look straight
at the box centre, so off-centre hands carry no perspective distortion and the
canonical principal point is the crop centre; ``"affine"`` is the paper's scale and
shift, without rotation. With ``rectify=False`` (ablation A4) the box fills the crop
and the crop keeps its own intrinsics (``focal=None``).

**Box.** The tight box of the projected keypoints and vertices, made square about
its centre and scaled by ``box_scale``. At inference the box comes from a detector
or the user (:func:`crop_rectification` takes any box). With a fixed canonical
focal, only the box *centre* matters; its size matters for ``rectify=False``.

**Augmentation** (``augment=True``, for training) is a pure function of ``(seed,
epoch, index)``: :class:`CropDataset` accepts ``(index, epoch)`` pairs as keys.

- An in-plane rotation about the optical axis (with probability 0.6, uniform in
  ±90°, MobRecon's recipe) is a rotation ``R_z`` of the virtual camera, composed
  into the rectification rotation ``R = R_z R_0``: the image warp, the intrinsics and
  the 3D targets are all derived from the same ``R``, so they agree exactly.
- The box centre moves by up to ±10 % of the box side.
- Where the box sets the scale (``rectify=False``, or ``canonical_focal=None``), the
  box side is scaled by ``1 ± 0.15``. With a fixed canonical focal the scale is fixed
  on purpose (apparent size is the depth cue), so there is no scale augmentation.
- Colour: brightness, contrast and saturation ``1 ± 0.3``, and a hue rotation of up
  to ±0.1 turn, about the grey axis.

**Antialiasing.** When the crop shrinks the image by more than 2×, the image is first
reduced by an integer factor with area averaging (OpenCV ``INTER_AREA``) and the
warp is composed with that reduction, so the crop is not aliased.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from dgpgeom.camera import invert_intrinsics
from dgpgeom.rectification import Rectification, rectify_camera, warp_to_rectified

from .sample import HandSample, project_points

__all__ = [
    "CropDataset",
    "CropFit",
    "crop_fit_statistics",
    "crop_image",
    "crop_rectification",
    "hand_box",
    "network_crop",
    "square_box",
]

_MODES = ("perspective", "affine")


def hand_box(points2d: np.ndarray, box_scale: float = 1.3) -> np.ndarray:
    """Square box around points: their tight box, squared about its centre, scaled.

    Box corners lie on pixel edges (see the Conventions page): the tight box of
    points at pixel centres ``x`` spans ``[min x - 0.5, max x + 0.5]``.

    Args:
        points2d: `(N, 2)` pixels.
        box_scale: side of the result / longer side of the tight box.

    Returns:
        `(4,)` float64 box ``(x0, y0, x1, y1)``, pixels.

    Example:
        >>> hand_box(np.array([[10.0, 20.0], [30.0, 24.0]]), 1.0)
        array([ 9.5, 11.5, 30.5, 32.5])
    """
    points = np.asarray(points2d, np.float64).reshape(-1, 2)
    return square_box(
        np.concatenate([points.min(axis=0) - 0.5, points.max(axis=0) + 0.5]), box_scale
    )


def square_box(box: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """A box made square about its centre (side: its longer side) and scaled.

    Args:
        box: `(4,)` ``(x0, y0, x1, y1)``, pixels.
        scale: side of the result / longer side of ``box``.

    Returns:
        `(4,)` float64 box, pixels.

    Example:
        >>> square_box(np.array([0.0, 0.0, 20.0, 10.0]), 1.5)
        array([ -5., -10.,  25.,  20.])
    """
    b = np.asarray(box, np.float64).reshape(4)
    centre, side = (b[:2] + b[2:]) / 2, float(max(b[2] - b[0], b[3] - b[1])) * scale
    return np.concatenate([centre - side / 2, centre + side / 2])


def network_crop(
    intrinsics: np.ndarray | Tensor,
    box: np.ndarray | Tensor,
    *,
    image_size: int,
    rectify: bool,
    canonical_focal: float | None,
    mode: str,
    rotation: float = 0.0,
) -> Rectification:
    """The crop a network sees, for training, evaluation and prediction alike.

    With ``rectify`` the canonical camera (``mode`` ``"perspective"`` or ``"affine"``)
    at ``canonical_focal``, or at the box's own scale when it is None; without it
    (ablation A4) a plain affine crop of the box with its own intrinsics.

    Args:
        intrinsics: `(3, 3)` original intrinsics, pixels.
        box: `(4,)` crop box ``(x0, y0, x1, y1)``, original pixels.
        image_size: crop side, pixels.
        rectify: rectify to the canonical camera.
        canonical_focal: pixels at ``image_size``, or None for the box's scale.
        mode: ``"perspective"`` or ``"affine"`` (used with ``rectify``).
        rotation: in-plane rotation, radians (augmentation).

    Returns:
        See :func:`crop_rectification`.
    """
    return crop_rectification(
        intrinsics,
        box,
        image_size=image_size,
        focal=canonical_focal if rectify else None,
        mode=mode if rectify else "affine",
        rotation=rotation,
    )


def _rotation_z(angle: float) -> Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def crop_rectification(
    intrinsics: np.ndarray | Tensor,
    box: np.ndarray | Tensor,
    *,
    image_size: int = 128,
    focal: float | None = 160.0,
    mode: str = "perspective",
    rotation: float = 0.0,
) -> Rectification:
    """The crop's camera and pixel maps: a rectification plus an in-plane rotation.

    Starts from :func:`dgpgeom.rectification.rectify_camera` (rotation ``R_0``, canonical
    focal or the box's own when ``focal`` is None) and turns the virtual camera by
    ``rotation`` about its optical axis: ``R = R_z R_0``. In perspective mode the
    canonical intrinsics ``K_c`` are unchanged; in affine mode the principal point
    moves so that the box centre stays at the crop centre (the map stays affine).
    Then ``from_original = K_c R K⁻¹`` and ``to_original = K Rᵀ K_c⁻¹``, and a
    camera-frame point ``p`` is ``R p`` in the crop's frame. Computed in float64.

    Args:
        intrinsics: `(3, 3)` original intrinsics, pixels.
        box: `(4,)` box ``(x0, y0, x1, y1)``, original pixels.
        image_size: crop side, pixels.
        focal: canonical focal length, pixels, or None for the box's own scale.
        mode: ``"perspective"`` or ``"affine"``.
        rotation: in-plane rotation about the optical axis, radians; with a
            positive angle, content right of the crop centre moves down (clockwise
            on screen, since y points down).

    Returns:
        A float64 :class:`~dgpgeom.rectification.Rectification` without images.

    Example:
        >>> K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
        >>> rect = crop_rectification(K, np.array([400.0, 100.0, 500.0, 200.0]), rotation=0.3)
        >>> rect.intrinsics[0, 2].item(), bool(torch.allclose(rect.rotation @ rect.rotation.T,
        ...                                                    torch.eye(3, dtype=torch.float64)))
        (63.5, True)
    """
    if mode not in _MODES:
        raise ValueError(f"mode: expected one of {_MODES}, got {mode!r}")
    K = torch.as_tensor(np.array(intrinsics, np.float64))
    b = torch.as_tensor(np.asarray(box, np.float64))
    base = rectify_camera(K, b, size=image_size, focal=focal, mode=mode)
    R = _rotation_z(rotation) @ base.rotation
    k_crop = base.intrinsics.clone()
    if mode == "affine":
        centre = torch.stack([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, torch.ones((), dtype=b.dtype)])
        ray = R @ (invert_intrinsics(K) @ centre)  # z stays 1: R is about the optical axis
        middle = (image_size - 1) / 2.0
        k_crop[0, 2] = middle - k_crop[0, 0] * ray[0] / ray[2]
        k_crop[1, 2] = middle - k_crop[1, 1] * ray[1] / ray[2]
    return Rectification(
        images=None,
        intrinsics=k_crop,
        from_original=k_crop @ R @ invert_intrinsics(K),
        to_original=K @ R.T @ invert_intrinsics(k_crop),
        rotation=R,
        valid=base.valid,
        size=base.size,
        mode=mode,
    )


def crop_image(image: np.ndarray, rect: Rectification, *, antialias: bool = True) -> Tensor:
    """Resample an image into a crop, area-averaging first when it shrinks a lot.

    Args:
        image: `(H, W, 3)` uint8 RGB.
        rect: the crop's :class:`~dgpgeom.rectification.Rectification` (e.g. from
            :func:`crop_rectification`).
        antialias: reduce the image by an integer factor with ``INTER_AREA`` first
            when the crop's scale at its centre is below 1/2.

    Returns:
        `(3, S, S)` float32 image in [0, 1] (zeros outside the original).

    Example:
        >>> K = np.array([[100.0, 0, 31.5], [0, 100.0, 31.5], [0, 0, 1]])
        >>> rect = crop_rectification(K, np.array([0.0, 0.0, 32.0, 32.0]), image_size=16, focal=None)
        >>> crop_image(np.full((64, 64, 3), 255, np.uint8), rect).shape
        torch.Size([3, 16, 16])
    """
    import cv2

    from_original = rect.from_original.to(torch.float64)
    height, width = image.shape[:2]
    if antialias:
        # Linear scale of the map at the crop centre: sqrt |det| of its Jacobian there.
        centre = torch.tensor(
            [(rect.size[1] - 1) / 2.0, (rect.size[0] - 1) / 2.0, 1.0], dtype=torch.float64
        )
        p = rect.to_original.to(torch.float64) @ centre
        p = p / p[2]
        w = from_original[2] @ p
        q = (from_original[:2] @ p) / w
        jac = (from_original[:2, :2] - torch.outer(q, from_original[2, :2])) / w
        scale = math.sqrt(abs(float(torch.linalg.det(jac))))
        factor = int(1.0 / scale) if scale > 0 else 1
        if factor >= 2:
            small = (max(1, round(width / factor)), max(1, round(height / factor)))
            image = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
            sx, sy = small[0] / width, small[1] / height
            # Original pixel x -> reduced pixel (x + 0.5) sx - 0.5 (pixel centres on integers).
            up = torch.tensor(
                [[1 / sx, 0.0, 0.5 / sx - 0.5], [0.0, 1 / sy, 0.5 / sy - 0.5], [0.0, 0.0, 1.0]],
                dtype=torch.float64,
            )
            from_original = from_original @ up
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
    warp = rect._replace(from_original=from_original.float()[None])
    return warp_to_rectified(tensor, warp)[0].clamp(0.0, 1.0)


def _color_jitter(image: Tensor, rng: np.random.Generator, strength: float = 0.3) -> Tensor:
    """Brightness, contrast, saturation and hue (a rotation about the grey axis)."""
    brightness, contrast, saturation = rng.uniform(1 - strength, 1 + strength, 3)
    hue = rng.uniform(-0.1, 0.1) * 2 * math.pi
    grey_axis = torch.full((3,), 1 / math.sqrt(3), dtype=torch.float64)
    cross = torch.tensor(
        [
            [0.0, -grey_axis[2], grey_axis[1]],
            [grey_axis[2], 0.0, -grey_axis[0]],
            [-grey_axis[1], grey_axis[0], 0.0],
        ],
        dtype=torch.float64,
    )
    outer = torch.outer(grey_axis, grey_axis)
    rotate = (
        math.cos(hue) * torch.eye(3, dtype=torch.float64)
        + math.sin(hue) * cross
        + (1 - math.cos(hue)) * outer
    )
    # Saturation scales the chroma (the part off the grey axis), hue rotates it.
    mix = outer + saturation * (rotate - outer)
    out = torch.einsum("ij,jhw->ihw", (brightness * mix).float(), image)
    mean = out.mean()
    out = (out - mean) * float(contrast) + mean
    return out.clamp(0.0, 1.0)


def _as_key(key: Any) -> tuple[int, int]:
    if isinstance(key, (tuple, list)):
        if len(key) != 2:
            raise TypeError(f"key: expected an index or an (index, epoch) pair, got {key!r}")
        index, epoch = key
    else:
        index, epoch = key, 0
    if isinstance(index, Tensor):
        index = int(index)
    if isinstance(epoch, Tensor):
        epoch = int(epoch)
    if not isinstance(index, numbers.Integral) or not isinstance(epoch, numbers.Integral):
        raise TypeError(f"key: expected integers, got {key!r}")
    return int(index), int(epoch)


def _pose_targets(pose: np.ndarray, shape: np.ndarray, rotation: np.ndarray) -> dict[str, Tensor]:
    """Hand-model targets in the crop's frame: local joint rotations (the global one
    turned by the crop's rotation ``R``) and shape coefficients."""
    from kornia.geometry.conversions import axis_angle_to_rotation_matrix

    local = axis_angle_to_rotation_matrix(torch.from_numpy(pose.reshape(-1, 3).astype(np.float64)))
    local[0] = torch.from_numpy(rotation) @ local[0]
    return {"joint_rotations": local.float(), "shape": torch.from_numpy(shape.astype(np.float32))}


class CropDataset(Dataset[dict[str, Any]]):
    """Network inputs and camera-frame targets from a data set of :class:`HandSample` s.

    See the module docstring for the box, the rectification and the augmentation.
    Each item is a dict of tensors (the training contract):

    - ``image`` `(3, S, S)` float32 in [0, 1];
    - ``intrinsics`` `(3, 3)` float32, the crop's (canonical) intrinsics, pixels;
    - ``keypoints2d`` `(21, 2)` float32 crop pixels, the projection of ``keypoints3d``;
    - ``keypoints3d`` `(21, 3)` float32 metres in the crop's camera frame;
    - ``vertices`` `(V, 3)` float32 metres in the crop's camera frame;
    - ``visibility`` `(21,)` bool: the sample's visibility (all True if unknown) and
      inside the crop; for inspection (the contact sheet draws it), not read by training
      (:data:`handdgp.objective.BATCH_KEYS`);
    - ``rotation`` `(3, 3)` float32, crop frame ← original camera frame
      (``p_crop = R p``; identity in affine mode without augmentation);
    - ``to_original`` `(3, 3)` float32, crop pixels → original pixels (homogeneous);
    - ``original_intrinsics`` `(3, 3)` float32;
    - ``index`` int;
    - ``joint_rotations`` `(J, 3, 3)` and ``shape`` `(S,)` float32, only for samples
      whose ``params`` hold the hand model's ``pose`` and ``shape`` (the synthetic
      sets): the local joint rotations, the global one in the crop's frame.

    Args:
        samples_dataset: a data set of :class:`HandSample` with ``keypoints3d`` and
            ``vertices`` (e.g. :class:`~handdgp.data.SyntheticHandDataset`).
        image_size: crop side ``S``, pixels.
        rectify: rectify to the canonical camera (False: ablation A4).
        canonical_focal: the canonical focal length at ``image_size``, pixels, or
            None to take the scale from the box (the box fills the crop, and the
            focal length follows from it; the rotation still rectifies).
        box_scale: crop box side / tight box side. It sets the crop's scale only
            with ``rectify=False``; with rectification the focal length does, and
            the box only places the crop (and scales the centre-shift augmentation).
        mode: ``"perspective"`` or ``"affine"``.
        augment: training augmentation.
        seed: augmentation seed.

    Example:
        >>> K = np.array([[200.0, 0, 63.5], [0, 200.0, 63.5], [0, 0, 1]], np.float32)
        >>> kp = np.random.default_rng(0).normal(0, 0.03, (21, 3)) + [0.0, 0.0, 0.5]
        >>> s = HandSample(np.zeros((128, 128, 3), np.uint8), K, 0, "demo",
        ...                keypoints3d=kp.astype(np.float32), vertices=kp.astype(np.float32))
        >>> item = CropDataset([s], image_size=64, canonical_focal=80.0, augment=True)[0, 3]
        >>> item["image"].shape, item["keypoints2d"].shape, item["intrinsics"][0, 0].item()
        (torch.Size([3, 64, 64]), torch.Size([21, 2]), 80.0)
    """

    def __init__(
        self,
        samples_dataset: Any,
        *,
        image_size: int = 128,
        rectify: bool = True,
        canonical_focal: float | None = 160.0,
        box_scale: float = 1.3,
        mode: str = "perspective",
        augment: bool = False,
        seed: int = 0,
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"mode: expected one of {_MODES}, got {mode!r}")
        if not isinstance(image_size, int) or image_size < 2:
            raise ValueError(f"image_size: expected an integer >= 2, got {image_size!r}")
        if canonical_focal is not None and not canonical_focal > 0:
            raise ValueError(
                f"canonical_focal: expected None or a positive number, got {canonical_focal!r}"
            )
        if not box_scale > 0:
            raise ValueError(f"box_scale: expected a positive number, got {box_scale!r}")
        self.samples = samples_dataset
        self.image_size = image_size
        self.rectify = rectify
        self.canonical_focal = None if canonical_focal is None else float(canonical_focal)
        self.box_scale = float(box_scale)
        self.mode = mode
        self.augment = augment
        self.seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def focal(self) -> float | None:
        """The crop's focal length, pixels, or None where the box sets the scale."""
        return self.canonical_focal if self.rectify else None

    def __getitem__(self, key: Any) -> dict[str, Any]:
        index, epoch = _as_key(key)
        sample: HandSample = self.samples[index]
        if sample.keypoints3d is None or sample.vertices is None:
            raise ValueError(
                f"sample {index} ({sample.source}) has no 3D keypoints or vertices; "
                "CropDataset needs both"
            )
        K = np.asarray(sample.intrinsics, np.float64)
        keypoints3d = np.asarray(sample.keypoints3d, np.float64)
        vertices = np.asarray(sample.vertices, np.float64)
        box = hand_box(
            project_points(np.concatenate([keypoints3d, vertices]), K, dtype=np.float64),
            self.box_scale,
        )
        rotation = 0.0
        rng = None
        if self.augment:
            rng = np.random.default_rng([self.seed, epoch, index])
            if rng.random() < 0.6:
                rotation = rng.uniform(-math.pi / 2, math.pi / 2)
            side = box[2] - box[0]
            shift = rng.uniform(-0.1, 0.1, 2) * side
            if self.focal is None:
                side *= rng.uniform(0.85, 1.15)
            centre = (box[:2] + box[2:]) / 2 + shift
            box = np.concatenate([centre - side / 2, centre + side / 2])
        rect = network_crop(
            K,
            box,
            image_size=self.image_size,
            rectify=self.rectify,
            canonical_focal=self.canonical_focal,
            mode=self.mode,
            rotation=rotation,
        )
        image = crop_image(sample.image, rect)
        if rng is not None:
            image = _color_jitter(image, rng)
        R = rect.rotation.numpy()
        k_crop = rect.intrinsics.numpy()
        kp_crop = keypoints3d @ R.T
        keypoints2d = project_points(kp_crop, k_crop, dtype=np.float64)
        size = self.image_size
        inside = (
            (kp_crop[:, 2] > 0)
            & (keypoints2d >= -0.5).all(axis=1)
            & (keypoints2d < size - 0.5).all(axis=1)
        )
        visibility = np.ones(21, bool) if sample.visibility is None else sample.visibility
        extra = {}
        params = sample.params or {}
        if "pose" in params and "shape" in params:
            extra = _pose_targets(np.asarray(params["pose"]), np.asarray(params["shape"]), R)
        return {
            **extra,
            "image": image.contiguous(),
            "intrinsics": torch.from_numpy(k_crop.astype(np.float32)),
            "keypoints2d": torch.from_numpy(keypoints2d.astype(np.float32)),
            "keypoints3d": torch.from_numpy(kp_crop.astype(np.float32)),
            "vertices": torch.from_numpy((vertices @ R.T).astype(np.float32)),
            "visibility": torch.from_numpy(np.asarray(visibility, bool) & inside),
            "rotation": torch.from_numpy(R.astype(np.float32)),
            "to_original": torch.from_numpy(rect.to_original.numpy().astype(np.float32)),
            "original_intrinsics": torch.from_numpy(K.astype(np.float32)),
            "index": index,
        }


class CropFit(NamedTuple):
    """How hands fit a canonical crop (see :func:`crop_fit_statistics`).

    Attributes:
        keypoints_inside: fraction of samples with all 21 keypoints inside the crop.
        vertices_inside: fraction of samples with all vertices inside the crop.
        median_size: median over samples of the keypoints' extent in the crop
            (the longer side of their bounding box), pixels.
        p10_size: its 10th percentile, pixels.
    """

    keypoints_inside: float
    vertices_inside: float
    median_size: float
    p10_size: float


def crop_fit_statistics(
    samples_dataset: Any,
    focals: list[float | None],
    *,
    image_size: int = 128,
    mode: str = "perspective",
    box_scale: float = 1.3,
    indices: list[int] | None = None,
) -> dict[float, CropFit]:
    """How hands fit the canonical crop, for candidate canonical focal lengths.

    Geometry only (no images are warped): for each sample, the crop of
    :class:`CropDataset` (without augmentation) is computed for each focal length.

    Args:
        samples_dataset: samples with ``keypoints3d`` and ``vertices``.
        focals: candidate canonical focal lengths, pixels at ``image_size``; None for
            the box-scaled crop (``canonical_focal=None``: the box fills the crop).
        image_size: crop side, pixels.
        mode: ``"perspective"`` or ``"affine"``.
        box_scale: as in :class:`CropDataset` (only the box centre matters here).
        indices: samples to use (default all).

    Returns:
        ``{focal: CropFit}`` (key None for the box-scaled crop).

    Example:
        >>> K = np.array([[200.0, 0, 63.5], [0, 200.0, 63.5], [0, 0, 1]], np.float32)
        >>> kp = np.random.default_rng(0).normal(0, 0.03, (21, 3)) + [0.0, 0.0, 0.5]
        >>> s = HandSample(np.zeros((8, 8, 3), np.uint8), K, 0, "demo",
        ...                keypoints3d=kp.astype(np.float32), vertices=kp.astype(np.float32))
        >>> fit = crop_fit_statistics([s], [50.0, 5000.0])
        >>> fit[50.0].keypoints_inside, fit[5000.0].vertices_inside
        (1.0, 0.0)
    """
    indices = list(range(len(samples_dataset))) if indices is None else indices
    keys = [None if f is None else float(f) for f in focals]
    inside = {f: np.zeros((len(indices), 2), bool) for f in keys}
    sizes = {f: np.zeros(len(indices)) for f in keys}
    for n, i in enumerate(indices):
        sample = samples_dataset[i]
        K = np.asarray(sample.intrinsics, np.float64)
        kp = np.asarray(sample.keypoints3d, np.float64)
        verts = np.asarray(sample.vertices, np.float64)
        box = hand_box(project_points(np.concatenate([kp, verts]), K, dtype=np.float64), box_scale)
        for focal in inside:
            rect = crop_rectification(K, box, image_size=image_size, focal=focal, mode=mode)
            R, k_crop = rect.rotation.numpy(), rect.intrinsics.numpy()
            for slot, points in enumerate((kp, verts)):
                uv = project_points(points @ R.T, k_crop, dtype=np.float64)
                inside[focal][n, slot] = ((uv >= -0.5) & (uv < image_size - 0.5)).all()
                if slot == 0:
                    sizes[focal][n] = (uv.max(axis=0) - uv.min(axis=0)).max()
    return {
        f: CropFit(
            float(inside[f][:, 0].mean()),
            float(inside[f][:, 1].mean()),
            float(np.median(sizes[f])),
            float(np.quantile(sizes[f], 0.1)),
        )
        for f in inside
    }
