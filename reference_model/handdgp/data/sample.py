"""The one sample type every data-set reader yields, and how to batch it.

Readers return raw, uncropped samples as NumPy arrays: images are decoded by
OpenCV into NumPy anyway, and the crop / rectification / augmentation stage
that turns a sample into network input works on them before converting to
tensors. Geometry follows the project's conventions: metres, OpenCV camera
axes (x right, y down, z forward), pixel centres on integer coordinates,
keypoints in FreiHAND order (0 wrist; 1-4 thumb; 5-8 index; 9-12 middle;
13-16 ring; 17-20 pinky, each from the knuckle to the tip).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from dgpgeom.camera import project

__all__ = ["HandSample", "collate_hand_samples", "project_points"]


@dataclass(frozen=True, eq=False)
class HandSample:
    """One annotated hand image.

    Attributes:
        image: `(H, W, 3)` uint8 RGB image.
        intrinsics: `(3, 3)` float32 pinhole intrinsics of ``image``, pixels.
        index: position of the sample in its data set.
        source: where it comes from, e.g. ``"freihand/training/gs"`` or
            ``"ho3d/evaluation/SM1/0000"``.
        mask: `(H, W)` bool hand mask, or None.
        keypoints3d: `(21, 3)` float32 camera-frame keypoints, metres, FreiHAND
            order, or None (e.g. HO3D evaluation).
        keypoints2d: `(21, 2)` float32 projection of ``keypoints3d`` by
            ``intrinsics``, pixels, or None.
        vertices: `(V, 3)` float32 camera-frame mesh vertices, metres, or None.
        visibility: `(21,)` bool per-keypoint visibility, or None when unknown.
        root: `(3,)` float32 camera-frame root joint (wrist), metres, or None.
        bbox: `(4,)` float32 hand box ``[x1, y1, x2, y2]`` in pixels, or None.
        scale: reference bone length ``|kp[9] - kp[10]|`` in metres, or None.
        params: model parameters as named float32 arrays (e.g. MANO ``pose``,
            ``shape``), or None; each reader documents its keys and frame.

    Example:
        >>> s = HandSample(np.zeros((4, 4, 3), np.uint8), np.eye(3, dtype=np.float32), 0, "demo")
        >>> s.keypoints3d is None, s.image.shape
        (True, (4, 4, 3))
    """

    image: np.ndarray
    intrinsics: np.ndarray
    index: int
    source: str
    mask: np.ndarray | None = None
    keypoints3d: np.ndarray | None = None
    keypoints2d: np.ndarray | None = None
    vertices: np.ndarray | None = None
    visibility: np.ndarray | None = None
    root: np.ndarray | None = None
    bbox: np.ndarray | None = None
    scale: float | None = None
    params: dict[str, np.ndarray] | None = None


def project_points(
    points3d: np.ndarray, intrinsics: np.ndarray, dtype: type = np.float32
) -> np.ndarray:
    """:func:`dgpgeom.camera.project` for NumPy arrays, computed in float64.

    The one projection of the data pipeline (readers, crops, contact sheets). Depths
    are clamped to 1 mm as in :func:`~dgpgeom.camera.project`.

    Args:
        points3d: `(..., N, 3)` camera-frame points, metres (z > 0).
        intrinsics: `(..., 3, 3)` pinhole intrinsics, pixels.
        dtype: the dtype of the result.

    Returns:
        `(..., N, 2)` pixel coordinates (pixel centres on integers), in ``dtype``.

    Example:
        >>> K = np.array([[100.0, 0, 50], [0, 100, 40], [0, 0, 1]])
        >>> project_points(np.array([[0.1, -0.2, 2.0]]), K)
        array([[55., 30.]], dtype=float32)
    """
    points = torch.from_numpy(np.asarray(points3d, np.float64))
    K = torch.from_numpy(np.asarray(intrinsics, np.float64))
    return project(points, K).points2d.numpy().astype(dtype, copy=False)


def collate_hand_samples(samples: Sequence[HandSample]) -> dict[str, Any]:
    """Batch samples for a ``DataLoader`` (``collate_fn=collate_hand_samples``).

    Array fields become stacked tensors (`(B, ...)`; images stay uint8
    `(B, H, W, 3)`), a field that is None in every sample stays None,
    ``index`` becomes an int64 tensor, ``scale`` a float32 tensor (or None),
    and ``source`` and ``params`` lists.

    Args:
        samples: the samples of one batch.

    Returns:
        A dict keyed by the :class:`HandSample` field names.

    Raises:
        ValueError: if a field is None in some samples only, or its arrays
            differ in shape (e.g. images of different sizes: crop first).

    Example:
        >>> s = HandSample(np.zeros((4, 4, 3), np.uint8), np.eye(3, dtype=np.float32), 0, "demo")
        >>> batch = collate_hand_samples([s, s])
        >>> batch["image"].shape, batch["mask"], batch["index"].tolist()
        (torch.Size([2, 4, 4, 3]), None, [0, 0])
    """
    if not samples:
        raise ValueError("collate_hand_samples: got no samples")
    batch: dict[str, Any] = {}
    for field in fields(HandSample):
        values = [getattr(s, field.name) for s in samples]
        if field.name in ("source", "params"):
            batch[field.name] = values
            continue
        if field.name == "index":
            batch["index"] = torch.tensor(values, dtype=torch.int64)
            continue
        present = [v is not None for v in values]
        if not any(present):
            batch[field.name] = None
            continue
        if not all(present):
            raise ValueError(
                f"collate_hand_samples: {field.name} is None in {present.count(False)} of "
                f"{len(values)} samples; batch samples from one data set"
            )
        if field.name == "scale":
            batch["scale"] = torch.tensor(values, dtype=torch.float32)
            continue
        shapes = {np.shape(v) for v in values}
        if len(shapes) > 1:
            raise ValueError(
                f"collate_hand_samples: {field.name} has different shapes {sorted(shapes)}"
            )
        batch[field.name] = torch.from_numpy(np.stack(values))
    return batch
