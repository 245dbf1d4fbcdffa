"""Tiny data-set trees in the exact file formats (JSON, JPEG, PNG, Python-2 pickles),
shared by the reader tests."""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import cv2
import numpy as np

H, W = 24, 32


N = 3  # annotations per fixture


def _color(file_id: int) -> tuple[int, int, int]:
    """A distinct, JPEG-stable RGB colour per image file."""
    return (20 + 17 * file_id, 200 - 13 * file_id, 60 + 5 * file_id)


def _write_rgb(path: Path, rgb: tuple[int, int, int], size=(H, W)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.empty((*size, 3), np.uint8)
    image[:] = rgb
    params = [cv2.IMWRITE_JPEG_QUALITY, 100] if path.suffix == ".jpg" else []
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value.tolist() if isinstance(value, np.ndarray) else value))


def _annotations(rng: np.random.Generator, count: int):
    K = np.tile(np.array([[120.0, 0.0, 15.5], [0.0, 125.0, 11.5], [0.0, 0.0, 1.0]]), (count, 1, 1))
    K[:, 0, 0] += np.arange(count)  # distinct per sample
    xyz = rng.normal(0, 0.03, (count, 21, 3)) + np.array([0.0, 0.0, 0.6])
    verts = rng.normal(0, 0.03, (count, 778, 3)) + np.array([0.0, 0.0, 0.6])
    scale = np.linalg.norm(xyz[:, 9] - xyz[:, 10], axis=-1)
    return K, xyz, verts, scale


def _write_masks(folder: Path, count: int) -> None:
    """Masks with three bands: 0 (background), 230 (JPEG-grey, below 240), 255."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        mask = np.zeros((H, W), np.uint8)
        mask[:, W // 3 : 2 * W // 3] = 230
        mask[:, 2 * W // 3 :] = 255
        mask[: i + 1] = 255  # per-sample difference: top rows
        cv2.imwrite(str(folder / f"{i:08d}.jpg"), mask, [cv2.IMWRITE_JPEG_QUALITY, 100])


def write_freihand_training(root: Path, count: int = N, *, versions: int = 4) -> dict:
    rng = np.random.default_rng(0)
    K, xyz, verts, scale = _annotations(rng, count)
    mano = rng.normal(size=(count, 1, 61))
    for file_id in range(count * versions):
        _write_rgb(root / "training" / "rgb" / f"{file_id:08d}.jpg", _color(file_id))
    _write_masks(root / "training" / "mask", count)
    _write_json(root / "training_K.json", K)
    _write_json(root / "training_xyz.json", xyz)
    _write_json(root / "training_verts.json", verts)
    _write_json(root / "training_scale.json", scale)
    _write_json(root / "training_mano.json", mano)
    return {"K": K, "xyz": xyz, "verts": verts, "scale": scale, "mano": mano}


def write_freihand_evaluation(root: Path, count: int = N, *, with_gt: bool) -> dict:
    rng = np.random.default_rng(1)
    K, xyz, verts, scale = _annotations(rng, count)
    for i in range(count):
        _write_rgb(root / "evaluation" / "rgb" / f"{i:08d}.jpg", _color(i))
    _write_json(root / "evaluation_K.json", K)
    _write_json(root / "evaluation_scale.json", scale)
    if with_gt:
        _write_json(root / "evaluation_xyz.json", xyz)
        _write_json(root / "evaluation_verts.json", verts)
    return {"K": K, "xyz": xyz, "verts": verts, "scale": scale}


def _assert_color(image: np.ndarray, file_id: int) -> None:
    assert image.dtype == np.uint8 and image.shape == (H, W, 3)
    np.testing.assert_allclose(image.reshape(-1, 3).mean(0), _color(file_id), atol=3)


class _Py2Pickler(pickle._Pickler):
    """Writes what Python 2 wrote at protocol 2: byte strings with the STRING
    opcodes (Python 2 ``str``) and NumPy's globals under ``numpy.core``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str

    def save_global(self, obj, name=None):
        name = name or obj.__qualname__
        module = pickle.whichmodule(obj, name).replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)


def _py2_pickle(meta: dict) -> bytes:
    import io

    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump({k.encode(): v for k, v in meta.items()})
    return buffer.getvalue()


# FreiHAND names of each joint, and the HO3D index the issue lists for it.
_HO3D_INDEX_OF = {
    "wrist": 0, "thumb1": 13, "thumb2": 14, "thumb3": 15, "thumb_tip": 16,
    "index1": 1, "index2": 2, "index3": 3, "index_tip": 17,
    "middle1": 4, "middle2": 5, "middle3": 6, "middle_tip": 18,
    "ring1": 10, "ring2": 11, "ring3": 12, "ring_tip": 19,
    "pinky1": 7, "pinky2": 8, "pinky3": 9, "pinky_tip": 20,
}  # fmt: skip


def write_ho3d(root: Path) -> dict:
    """Train: ABF10/0000 (py3 pickle), ABF10/0001 (py2 pickle), MC1/0003; eval: SM1/0000."""
    rng = np.random.default_rng(3)
    K = np.array([[614.0, 0.0, 312.2], [0.0, 615.1, 241.7], [0.0, 0.0, 1.0]])
    frames = {"train": ["ABF10/0000", "ABF10/0001", "MC1/0003"], "evaluation": ["SM1/0000"]}
    truth = {}
    for split, names in frames.items():
        (root / f"{split}.txt").write_text("\n".join(names) + "\n")
        for n, name in enumerate(names):
            seq, frame = name.split("/")
            _write_rgb(root / split / seq / "rgb" / f"{frame}.png", _color(n), size=(30, 40))
            keypoints_cv = rng.normal(0, 0.04, (21, 3)) + np.array([0.05, -0.02, 0.55])
            ho3d_cv = np.empty_like(keypoints_cv)
            ho3d_cv[list(_HO3D_INDEX_OF.values())] = keypoints_cv  # FreiHAND -> HO3D order
            joints_gl = ho3d_cv * np.array([1.0, -1.0, -1.0])
            meta = {
                "camMat": K,
                "handPose": rng.normal(size=48),
                "handBeta": rng.normal(size=10),
                "handTrans": joints_gl[0],
                "objRot": None,
                "objName": "003_cracker_box",
            }
            if split == "train":
                meta["handJoints3D"] = joints_gl
            else:
                meta["handJoints3D"] = joints_gl[0]  # the root only
                meta["handBoundingBox"] = np.array([100.0, 120.0, 260.0, 300.0])
            path = root / split / seq / "meta" / f"{frame}.pkl"
            path.parent.mkdir(parents=True, exist_ok=True)
            data = pickle.dumps(meta, protocol=2) if n == 0 and split == "train" else None
            path.write_bytes(data if data is not None else _py2_pickle(meta))
            truth[(split, name)] = {"keypoints_cv": keypoints_cv, "meta": meta, "n": n}
    return truth


def _assert_color_any(image, file_id, size):
    assert image.dtype == np.uint8 and image.shape == (*size, 3)
    np.testing.assert_allclose(image.reshape(-1, 3).mean(0), _color(file_id), atol=1)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo owned",))
