"""Readers for FreiHAND v2 and for our synthetic sets, which share its layout.

FreiHAND v2 training (``FreiHAND_pub_v2/``)::

    training/rgb/%08d.jpg      N * 4 images: versions gs, hom, sample, auto;
                               the file of sample i in version v is i + N * v
    training/mask/%08d.jpg     N masks (one per sample, shared by the versions)
    training_K.json            N x 3 x 3 intrinsics
    training_xyz.json          N x 21 x 3 keypoints, metres, camera frame
    training_verts.json        N x 778 x 3 MANO vertices, metres
    training_scale.json        N reference bone lengths |xyz[9] - xyz[10]|
    training_mano.json         N x 1 x 61: pose 48, shape 10, uv_root 2, scale 1

FreiHAND v2 evaluation (``FreiHAND_pub_v2_eval/``): ``evaluation/rgb/%08d.jpg``
with ``evaluation_K.json``, ``evaluation_scale.json`` and, since their release,
the ground-truth ``evaluation_xyz.json`` and ``evaluation_verts.json``.

N is taken from the length of the intrinsics file, so small fixtures work.
FreiHAND keypoints are already in our order and in the OpenCV camera frame.

Everything read is checked: each annotation file must hold N entries of the
stated shape with finite values, intrinsics positive focal lengths, keypoints
positive depths, images and masks must decode completely. A damaged file
raises one :class:`~handdgp.data.imageio.DataError` naming the file, the first
bad sample and the problem.

Synthetic sets: the training layout with one version (files 0..N-1), plus
``training_visibility.json`` (N x 21 booleans) and ``training_params.json``
(the generator's pose/shape parameters: a list of N objects of named number
lists, an object of named per-sample lists, or a list of N number lists).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from .imageio import DataError, load_json, load_json_array, read_mask, read_rgb
from .sample import HandSample, project_points

__all__ = ["FREIHAND_VERSIONS", "FreiHANDDataset", "SyntheticHandDataset"]

FREIHAND_VERSIONS = ("gs", "hom", "sample", "auto")
_SPLITS = ("training", "evaluation")
# training_mano.json: per sample 1 x 61 = pose 48, shape 10, uv_root 2, scale 1.
_MANO_LAYOUT = (("pose", 48), ("shape", 10), ("uv_root", 2), ("scale", 1))


class _FreiHANDLayout(Dataset[HandSample]):
    """A data set in FreiHAND's file layout; subclasses choose versions and extras."""

    def __init__(
        self,
        root: str | Path,
        split: str,
        version_slots: Sequence[tuple[str, int]],
        source: str,
        *,
        load_vertices: bool,
        load_masks: bool,
        mask_threshold: int,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.mask_threshold = mask_threshold
        self._slots = list(version_slots)
        self._source = source
        ann = self.root / split
        k_file = Path(f"{ann}_K.json")
        if not k_file.is_file():
            raise FileNotFoundError(f"{k_file} not found: is {self.root} a FreiHAND-layout root?")
        self.intrinsics = _checked_array(k_file, load_json_array(k_file), None, (3, 3))
        self.num_samples = len(self.intrinsics)
        _check_intrinsics(k_file, self.intrinsics)
        self.keypoints3d = self._optional(f"{ann}_xyz.json", (21, 3))
        if self.keypoints3d is not None:
            _check_depth(Path(f"{ann}_xyz.json"), self.keypoints3d)
        self.vertices = self._optional(f"{ann}_verts.json", (-1, 3)) if load_vertices else None
        self.scale = self._optional(f"{ann}_scale.json", ())
        if self.scale is not None:
            _check_positive(Path(f"{ann}_scale.json"), self.scale, "reference bone length")
        mask_dir = self.root / split / "mask"
        self._masks = load_masks and mask_dir.is_dir()

    def _optional(self, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
        path = Path(name)
        if not path.is_file():
            return None
        return _checked_array(path, load_json_array(path), self.num_samples, shape)

    def __len__(self) -> int:
        return self.num_samples * len(self._slots)

    def _extras(self, sample_id: int) -> dict[str, Any]:
        return {}

    def __getitem__(self, index: int) -> HandSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        slot, sample_id = divmod(index, self.num_samples)
        version, position = self._slots[slot]
        file_id = sample_id + self.num_samples * position
        image = read_rgb(self.root / self.split / "rgb" / f"{file_id:08d}.jpg", index)
        mask = None
        if self._masks:
            mask_path = self.root / self.split / "mask" / f"{sample_id:08d}.jpg"
            mask = read_mask(mask_path, self.mask_threshold, index)
            if mask.shape != image.shape[:2]:
                raise DataError(
                    mask_path,
                    f"mask of {mask.shape[1]} x {mask.shape[0]} pixels, but the image "
                    f"is {image.shape[1]} x {image.shape[0]}",
                    index,
                )
        K = self.intrinsics[sample_id]
        keypoints3d = keypoints2d = root = None
        if self.keypoints3d is not None:
            keypoints3d = self.keypoints3d[sample_id]
            keypoints2d = project_points(keypoints3d, K)
            root = keypoints3d[0].copy()
        return HandSample(
            image=image,
            intrinsics=K,
            index=index,
            source=f"{self._source}/{version}" if version else self._source,
            mask=mask,
            keypoints3d=keypoints3d,
            keypoints2d=keypoints2d,
            vertices=None if self.vertices is None else self.vertices[sample_id],
            root=root,
            scale=None if self.scale is None else float(self.scale[sample_id]),
            **self._extras(sample_id),
        )


class FreiHANDDataset(_FreiHANDLayout):
    """FreiHAND v2, training or evaluation split, as :class:`HandSample` s.

    Sample ``i`` of the training split is annotation ``i % N`` in version
    ``versions[i // N]`` (N annotations), so ``len = N * len(versions)``. Masks
    exist for training only; ``params`` holds the MANO fit split as ``pose``
    (48, axis-angle, global rotation first), ``shape`` (10), ``uv_root`` (2)
    and ``scale`` (1) when ``training_mano.json`` is present.

    Args:
        root: directory holding ``<split>/rgb`` and the ``<split>_*.json`` files.
        split: ``"training"`` or ``"evaluation"``.
        versions: training image versions to include, a subset of
            ``("gs", "hom", "sample", "auto")`` (default all four); must be
            None for the evaluation split, which has one version.
        load_vertices: read ``<split>_verts.json`` (large: about 1 GB of JSON
            for training; skip it when only keypoints are needed).
        load_masks: read training masks.
        mask_threshold: a mask pixel is foreground when its first channel
            exceeds this value (the JPEG masks are noisy near edges).

    Example:
        >>> import json, tempfile, cv2
        >>> tmp = tempfile.TemporaryDirectory()
        >>> root = Path(tmp.name)
        >>> (root / "evaluation" / "rgb").mkdir(parents=True)
        >>> image = np.zeros((224, 224, 3), np.uint8)
        >>> cv2.imwrite(str(root / "evaluation" / "rgb" / "00000000.jpg"), image)
        True
        >>> K = [[[500.0, 0.0, 112.0], [0.0, 500.0, 112.0], [0.0, 0.0, 1.0]]]
        >>> _ = (root / "evaluation_K.json").write_text(json.dumps(K))
        >>> ds = FreiHANDDataset(root, "evaluation")
        >>> len(ds), ds[0].image.shape, ds[0].keypoints3d is None, ds[0].source
        (1, (224, 224, 3), True, 'freihand/evaluation')
        >>> tmp.cleanup()
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "training",
        *,
        versions: Sequence[str] | None = None,
        load_vertices: bool = True,
        load_masks: bool = True,
        mask_threshold: int = 240,
    ) -> None:
        if split not in _SPLITS:
            raise ValueError(f"split: expected one of {_SPLITS}, got {split!r}")
        if split == "evaluation":
            if versions is not None:
                raise ValueError("versions: the evaluation split has a single version")
            slots = [("", 0)]
        else:
            versions = FREIHAND_VERSIONS if versions is None else tuple(versions)
            unknown = [v for v in versions if v not in FREIHAND_VERSIONS]
            if unknown or not versions:
                raise ValueError(
                    f"versions: expected a non-empty subset of {FREIHAND_VERSIONS}, got {versions}"
                )
            slots = [(v, FREIHAND_VERSIONS.index(v)) for v in versions]
        super().__init__(
            root,
            split,
            slots,
            f"freihand/{split}",
            load_vertices=load_vertices,
            load_masks=load_masks and split == "training",
            mask_threshold=mask_threshold,
        )
        self.mano = self._optional(f"{self.root / split}_mano.json", (61,))

    def _extras(self, sample_id: int) -> dict[str, Any]:
        if self.mano is None:
            return {}
        params, start = {}, 0
        for name, size in _MANO_LAYOUT:
            params[name] = self.mano[sample_id, start : start + size]
            start += size
        return {"params": params}


class SyntheticHandDataset(_FreiHANDLayout):
    """Our synthetic renders, stored in FreiHAND's training layout (one version).

    On top of FreiHAND's files it reads ``training_visibility.json`` into
    ``visibility`` and ``training_params.json`` into ``params`` (named float32
    arrays, as written by the generator), when present.

    Args:
        root: directory holding ``training/rgb`` and the ``training_*.json`` files.
        load_vertices: read ``training_verts.json``.
        load_masks: read ``training/mask`` when it exists.
        mask_threshold: a mask pixel is foreground when its first channel
            exceeds this value.

    Example:
        >>> import json, tempfile, cv2
        >>> tmp = tempfile.TemporaryDirectory()
        >>> root = Path(tmp.name)
        >>> (root / "training" / "rgb").mkdir(parents=True)
        >>> cv2.imwrite(str(root / "training" / "rgb" / "00000000.jpg"), np.zeros((8, 8, 3), np.uint8))
        True
        >>> files = {
        ...     "K": [[[20.0, 0.0, 3.5], [0.0, 20.0, 3.5], [0.0, 0.0, 1.0]]],
        ...     "xyz": [[[0.0, 0.0, 0.5]] * 21],
        ...     "visibility": [[True] * 20 + [False]],
        ...     "params": [{"pose": [0.0] * 48, "shape": [0.0] * 10}],
        ... }
        >>> for name, value in files.items():
        ...     _ = (root / f"training_{name}.json").write_text(json.dumps(value))
        >>> sample = SyntheticHandDataset(root)[0]
        >>> sample.visibility[-2:], sample.params["shape"].shape, sample.keypoints2d[0]
        (array([ True, False]), (10,), array([3.5, 3.5], dtype=float32))
        >>> tmp.cleanup()
    """

    def __init__(
        self,
        root: str | Path,
        *,
        load_vertices: bool = True,
        load_masks: bool = True,
        mask_threshold: int = 240,
    ) -> None:
        super().__init__(
            root,
            "training",
            [("", 0)],
            "synthetic/training",
            load_vertices=load_vertices,
            load_masks=load_masks,
            mask_threshold=mask_threshold,
        )
        visibility = self._optional(f"{self.root}/training_visibility.json", (21,))
        self.visibility = None if visibility is None else visibility.astype(bool)
        params_file = self.root / "training_params.json"
        self.params = None
        if params_file.is_file():
            self.params = _per_sample_params(load_json(params_file), self.num_samples, params_file)

    def _extras(self, sample_id: int) -> dict[str, Any]:
        extras: dict[str, Any] = {}
        if self.visibility is not None:
            extras["visibility"] = self.visibility[sample_id]
        if self.params is not None:
            extras["params"] = {k: v[sample_id] for k, v in self.params.items()}
        return extras


def _per_sample_params(raw: Any, count: int, path: Path) -> dict[str, np.ndarray]:
    """Normalise a params file to ``{name: (N, ...) float32 array}``."""
    if isinstance(raw, dict):
        columns = raw
    elif isinstance(raw, list) and raw and all(isinstance(r, dict) for r in raw):
        columns = {k: [r[k] for r in raw] for k in raw[0]}
    elif isinstance(raw, list):
        columns = {"params": raw}
    else:
        raise ValueError(f"{path}: expected a list or an object, got {type(raw).__name__}")
    params = {}
    for name, values in columns.items():
        try:
            params[name] = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise DataError(path, f"{name}: expected lists of numbers ({error})") from error
        if params[name].ndim == 0 or len(params[name]) != count:
            size = len(params[name]) if params[name].ndim else "no"
            raise DataError(path, f"{name} has {size} entries, expected {count}")
        _check_finite(path, params[name], name)
    return params


def _checked_array(
    path: Path, array: np.ndarray, count: int | None, shape: tuple[int, ...]
) -> np.ndarray:
    """``array`` as `(count, *shape)` (-1 in ``shape``: any size), finite, or a DataError.

    Each entry may hold its values in any nesting with the right number of them
    (FreiHAND's ``training_mano.json`` stores `(1, 61)` per sample).
    """
    expected = "x".join("V" if d < 0 else str(d) for d in shape) or "a number"
    if array.ndim == 0:
        raise DataError(path, f"expected a list of {expected} entries, got a single number")
    if count is not None and len(array) != count:
        raise DataError(
            path, f"{len(array)} entries, but the intrinsics file has {count}"
        )
    try:
        array = array.reshape(len(array), *shape)
    except ValueError:
        raise DataError(
            path, f"expected {expected} values per sample, got shape {array.shape[1:]}"
        ) from None
    _check_finite(path, array)
    return array


def _check_finite(path: Path, array: np.ndarray, what: str = "") -> None:
    bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    if bad.any():
        index = int(np.argmax(bad))
        raise DataError(path, f"{what + ': ' if what else ''}non-finite value (NaN or Inf)", index)


def _check_positive(path: Path, values: np.ndarray, what: str) -> None:
    bad = ~(values.reshape(len(values), -1) > 0).all(axis=1)
    if bad.any():
        index = int(np.argmax(bad))
        raise DataError(path, f"{what} {values[index].tolist()}, expected > 0", index)


def _check_intrinsics(path: Path, K: np.ndarray) -> None:
    """Positive focal lengths and a ``[0, 0, 1]`` last row."""
    focal = np.stack([K[:, 0, 0], K[:, 1, 1]], axis=1)
    _check_positive(path, focal, "focal lengths (fx, fy) =")
    bad = ~(K[:, 2] == np.array([0.0, 0.0, 1.0], K.dtype)).all(axis=1)
    if bad.any():
        index = int(np.argmax(bad))
        raise DataError(path, f"last row {K[index, 2].tolist()}, expected [0, 0, 1]", index)


def _check_depth(path: Path, points: np.ndarray) -> None:
    """Keypoints in front of the camera (positive z), as projecting them needs."""
    bad = ~(points[..., 2] > 0).all(axis=1)
    if bad.any():
        index = int(np.argmax(bad))
        raise DataError(
            path, f"keypoint depth {points[index, :, 2].min():g} m, expected > 0", index
        )
