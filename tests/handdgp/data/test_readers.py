"""Tests for the data-set readers: handdgp.data.{freihand, ho3d, sample, safe_pickle, imageio}.

Every test writes a tiny tree in the data set's exact file formats (JSON,
JPEG, PNG, pickles as Python 2 wrote them) under ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from handdgp.data import (
    FREIHAND_VERSIONS,
    HO3D_TO_FREIHAND,
    FreiHANDDataset,
    HandSample,
    HO3DDataset,
    SyntheticHandDataset,
    collate_hand_samples,
    load_pickle,
    opengl_to_opencv,
    project_points,
)

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


class TestFreiHANDTraining:
    def test_len_and_version_mapping(self, tmp_path):
        write_freihand_training(tmp_path)
        ds = FreiHANDDataset(tmp_path)
        assert len(ds) == 4 * N and ds.num_samples == N
        for i in range(4 * N):
            sample = ds[i]
            _assert_color(sample.image, i)  # file id = id + N * version
            assert sample.index == i
            assert sample.source == f"freihand/training/{FREIHAND_VERSIONS[i // N]}"

    def test_version_subset(self, tmp_path):
        write_freihand_training(tmp_path)
        ds = FreiHANDDataset(tmp_path, versions=("auto", "hom"))
        assert len(ds) == 2 * N
        _assert_color(ds[0].image, 0 + 3 * N)
        _assert_color(ds[N + 2].image, 2 + 1 * N)
        assert ds[N].source == "freihand/training/hom"

    def test_annotations(self, tmp_path):
        gt = write_freihand_training(tmp_path)
        ds = FreiHANDDataset(tmp_path)
        for i in (1, N + 1, 3 * N + 1):  # the same annotation in three versions
            s = ds[i]
            assert s.intrinsics.shape == (3, 3) and s.intrinsics.dtype == np.float32
            np.testing.assert_allclose(s.intrinsics, gt["K"][1], rtol=1e-6)
            np.testing.assert_allclose(s.keypoints3d, gt["xyz"][1], rtol=1e-6)
            np.testing.assert_allclose(s.vertices, gt["verts"][1], rtol=1e-6)
            np.testing.assert_allclose(s.root, gt["xyz"][1][0], rtol=1e-6)
            uvw = gt["xyz"][1] @ gt["K"][1].T
            np.testing.assert_allclose(s.keypoints2d, uvw[:, :2] / uvw[:, 2:], atol=1e-4)
            assert s.scale == pytest.approx(gt["scale"][1], rel=1e-6)
            mano = gt["mano"][1, 0]
            np.testing.assert_allclose(s.params["pose"], mano[:48], rtol=1e-6)
            np.testing.assert_allclose(s.params["shape"], mano[48:58], rtol=1e-6)
            np.testing.assert_allclose(s.params["uv_root"], mano[58:60], rtol=1e-6)
            np.testing.assert_allclose(s.params["scale"], mano[60:], rtol=1e-6)
            assert s.visibility is None and s.bbox is None

    def test_mask_threshold(self, tmp_path):
        write_freihand_training(tmp_path)
        ds = FreiHANDDataset(tmp_path)
        for i in (0, 2, N + 2):
            mask = ds[i].mask
            assert mask.dtype == bool and mask.shape == (H, W)
            rows = slice(N + 2, H - 2)  # below the per-sample top band, off JPEG edges
            assert not mask[rows, 2 : W // 3 - 2].any()
            assert not mask[rows, W // 3 + 2 : 2 * W // 3 - 2].any()  # 230 <= 240
            assert mask[rows, 2 * W // 3 + 2 : W - 2].all()
            assert mask[: i % N + 1, 2 : W - 2].all()  # the mask of annotation i % N
        raw = FreiHANDDataset(tmp_path, mask_threshold=200)[0].mask
        assert raw[N + 2 : H - 2, W // 3 + 2 : 2 * W // 3 - 2].all()

    def test_optional_loads(self, tmp_path):
        write_freihand_training(tmp_path)
        ds = FreiHANDDataset(tmp_path, load_vertices=False, load_masks=False)
        s = ds[0]
        assert s.vertices is None and s.mask is None and s.keypoints3d is not None

    def test_bad_input(self, tmp_path):
        write_freihand_training(tmp_path)
        with pytest.raises(ValueError, match="split"):
            FreiHANDDataset(tmp_path, "validation")
        with pytest.raises(ValueError, match="versions"):
            FreiHANDDataset(tmp_path, versions=("gs", "rainbow"))
        with pytest.raises(ValueError, match="versions"):
            FreiHANDDataset(tmp_path, versions=())
        with pytest.raises(FileNotFoundError, match=r"evaluation_K\.json"):
            FreiHANDDataset(tmp_path, "evaluation")
        ds = FreiHANDDataset(tmp_path)
        with pytest.raises(IndexError):
            ds[4 * N]
        assert ds[-1].index == 4 * N - 1
        _write_json(tmp_path / "training_xyz.json", np.zeros((N + 1, 21, 3)))
        with pytest.raises(ValueError, match=r"training_xyz\.json"):
            FreiHANDDataset(tmp_path)
        _write_json(tmp_path / "training_xyz.json", np.full((N, 21, 3), 0.6))
        os.remove(tmp_path / "training" / "rgb" / f"{N:08d}.jpg")
        with pytest.raises(FileNotFoundError, match=f"{N:08d}.jpg"):
            FreiHANDDataset(tmp_path)[N]

    def test_dataloader(self, tmp_path):
        write_freihand_training(tmp_path)
        loader = torch.utils.data.DataLoader(
            FreiHANDDataset(tmp_path), batch_size=5, collate_fn=collate_hand_samples
        )
        batch = next(iter(loader))
        assert batch["image"].shape == (5, H, W, 3) and batch["image"].dtype == torch.uint8
        assert batch["keypoints3d"].shape == (5, 21, 3) and batch["mask"].shape == (5, H, W)
        assert batch["index"].tolist() == [0, 1, 2, 3, 4] and len(batch["source"]) == 5
        assert batch["visibility"] is None and batch["scale"].shape == (5,)


class TestFreiHANDEvaluation:
    def test_with_ground_truth(self, tmp_path):
        gt = write_freihand_evaluation(tmp_path, with_gt=True)
        ds = FreiHANDDataset(tmp_path, "evaluation")
        assert len(ds) == N
        s = ds[2]
        _assert_color(s.image, 2)
        assert s.source == "freihand/evaluation" and s.mask is None and s.params is None
        np.testing.assert_allclose(s.keypoints3d, gt["xyz"][2], rtol=1e-6)
        np.testing.assert_allclose(s.vertices, gt["verts"][2], rtol=1e-6)
        np.testing.assert_allclose(
            s.keypoints2d, project_points(gt["xyz"][2], gt["K"][2]), atol=1e-4
        )
        assert s.scale == pytest.approx(gt["scale"][2], rel=1e-6)

    def test_without_ground_truth(self, tmp_path):
        write_freihand_evaluation(tmp_path, with_gt=False)
        s = FreiHANDDataset(tmp_path, "evaluation")[0]
        assert s.keypoints3d is None and s.keypoints2d is None and s.vertices is None
        assert s.root is None and s.scale is not None

    def test_versions_rejected(self, tmp_path):
        write_freihand_evaluation(tmp_path, with_gt=False)
        with pytest.raises(ValueError, match="versions"):
            FreiHANDDataset(tmp_path, "evaluation", versions=("gs",))


class TestSyntheticHandDataset:
    @pytest.mark.parametrize("params_format", ["rows", "columns", "lists"])
    def test_extras(self, tmp_path, params_format):
        gt = write_freihand_training(tmp_path, versions=1)
        rng = np.random.default_rng(2)
        visibility = rng.random((N, 21)) > 0.3
        _write_json(tmp_path / "training_visibility.json", visibility)
        pose, shape = rng.normal(size=(N, 48)), rng.normal(size=(N, 10))
        if params_format == "rows":
            params = [
                {"pose": p.tolist(), "shape": s.tolist()} for p, s in zip(pose, shape, strict=True)
            ]
        elif params_format == "columns":
            params = {"pose": pose.tolist(), "shape": shape.tolist()}
        else:
            params = np.concatenate([pose, shape], -1).tolist()
        _write_json(tmp_path / "training_params.json", params)
        ds = SyntheticHandDataset(tmp_path)
        assert len(ds) == N  # one version, no x4
        s = ds[1]
        _assert_color(s.image, 1)
        assert s.source == "synthetic/training"
        assert s.visibility.dtype == bool and s.visibility.shape == (21,)
        np.testing.assert_array_equal(s.visibility, visibility[1])
        if params_format == "lists":
            np.testing.assert_allclose(s.params["params"][:48], pose[1], rtol=1e-6)
        else:
            np.testing.assert_allclose(s.params["pose"], pose[1], rtol=1e-6)
            np.testing.assert_allclose(s.params["shape"], shape[1], rtol=1e-6)
        np.testing.assert_allclose(s.keypoints3d, gt["xyz"][1], rtol=1e-6)
        assert s.mask is not None

    def test_without_extras_or_masks(self, tmp_path):
        write_freihand_training(tmp_path, versions=1)
        for item in (tmp_path / "training" / "mask").iterdir():
            item.unlink()
        (tmp_path / "training" / "mask").rmdir()
        s = SyntheticHandDataset(tmp_path)[0]
        assert s.mask is None and s.visibility is None and s.params is None

    def test_bad_params(self, tmp_path):
        write_freihand_training(tmp_path, versions=1)
        _write_json(tmp_path / "training_params.json", {"pose": [[0.0]] * (N - 1)})
        with pytest.raises(ValueError, match="pose"):
            SyntheticHandDataset(tmp_path)
        _write_json(tmp_path / "training_params.json", 3)
        with pytest.raises(ValueError, match=r"training_params\.json"):
            SyntheticHandDataset(tmp_path)


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


class TestHO3DDataset:
    def test_train_flip_and_reorder(self, tmp_path):
        truth = write_ho3d(tmp_path)
        ds = HO3DDataset(tmp_path, "train")
        assert len(ds) == 3
        for i, name in enumerate(["ABF10/0000", "ABF10/0001", "MC1/0003"]):
            s = ds[i]
            t = truth[("train", name)]
            assert s.source == f"ho3d/train/{name}"
            _assert_color_any(s.image, t["n"], (30, 40))
            np.testing.assert_allclose(s.keypoints3d, t["keypoints_cv"], rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(s.root, t["keypoints_cv"][0], rtol=1e-6)
            assert (s.keypoints3d[:, 2] > 0).all()  # in front of an OpenCV camera
            # HO3D's own projection: flip to OpenCV, then K
            ho3d_gl = np.asarray(t["meta"]["handJoints3D"])
            uvw = (ho3d_gl * [1, -1, -1]) @ t["meta"]["camMat"].T
            np.testing.assert_allclose(
                s.keypoints2d, (uvw[:, :2] / uvw[:, 2:])[list(HO3D_TO_FREIHAND)], atol=1e-3
            )
            np.testing.assert_allclose(s.params["pose"], t["meta"]["handPose"], rtol=1e-6)
            assert s.params["shape"].shape == (10,) and s.params["trans"].shape == (3,)
            assert s.bbox is None and s.mask is None and s.vertices is None

    def test_reorder_table(self):
        assert HO3D_TO_FREIHAND == tuple(_HO3D_INDEX_OF.values())
        assert sorted(HO3D_TO_FREIHAND) == list(range(21))

    def test_evaluation_root_only(self, tmp_path):
        truth = write_ho3d(tmp_path)
        s = HO3DDataset(tmp_path, "evaluation")[0]
        t = truth[("evaluation", "SM1/0000")]
        assert s.keypoints3d is None and s.keypoints2d is None
        np.testing.assert_allclose(s.root, t["keypoints_cv"][0], rtol=1e-6)
        np.testing.assert_array_equal(s.bbox, [100.0, 120.0, 260.0, 300.0])
        assert s.source == "ho3d/evaluation/SM1/0000"

    def test_jpg_images(self, tmp_path):
        write_ho3d(tmp_path)
        (tmp_path / "train" / "MC1" / "rgb" / "0003.png").unlink()
        _write_rgb(tmp_path / "train" / "MC1" / "rgb" / "0003.jpg", _color(7), size=(30, 40))
        _assert_color_any(HO3DDataset(tmp_path, image_ext=".jpg")[2].image, 7, (30, 40))

    def test_bad_input(self, tmp_path):
        write_ho3d(tmp_path)
        with pytest.raises(ValueError, match="split"):
            HO3DDataset(tmp_path, "test")
        with pytest.raises(FileNotFoundError, match=r"train\.txt"):
            HO3DDataset(tmp_path / "missing")
        with pytest.raises(IndexError):
            HO3DDataset(tmp_path)[3]
        (tmp_path / "train.txt").write_text("ABF10-0000\n")
        with pytest.raises(ValueError, match="SEQ/id"):
            HO3DDataset(tmp_path)

    def test_malicious_meta_refused(self, tmp_path):
        write_ho3d(tmp_path)
        evil = pickle.dumps(_Evil(), protocol=2)
        (tmp_path / "train" / "MC1" / "meta" / "0003.pkl").write_bytes(evil)
        with pytest.raises(pickle.UnpicklingError, match=r"(posix|os)\.system"):
            HO3DDataset(tmp_path)[2]


def _assert_color_any(image, file_id, size):
    assert image.dtype == np.uint8 and image.shape == (*size, 3)
    np.testing.assert_allclose(image.reshape(-1, 3).mean(0), _color(file_id), atol=1)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo owned",))


class TestLoadPickle:
    @pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
    def test_round_trip(self, protocol):
        meta = {
            "a": np.arange(6, dtype=np.float32).reshape(2, 3),
            "b": np.float64(2.5),
            "c": None,
            "d": [1, (2, 3), "x"],
            "e": np.array([True, False]),
        }
        out = load_pickle(pickle.dumps(meta, protocol=protocol))
        np.testing.assert_array_equal(out["a"], meta["a"])
        assert out["a"].dtype == np.float32 and out["b"] == 2.5 and out["c"] is None
        assert out["d"] == [1, (2, 3), "x"] and out["e"].dtype == bool

    def test_python2_pickle(self, tmp_path):
        meta = {"camMat": np.eye(3) * 2, "handJoints3D": np.ones((21, 3)), "n": np.int64(4)}
        data = _py2_pickle(meta)
        assert b"numpy.core.multiarray" in data and pickle.SHORT_BINSTRING in data
        path = tmp_path / "m.pkl"
        path.write_bytes(data)
        out = load_pickle(path)
        assert set(out) == {"camMat", "handJoints3D", "n"}
        np.testing.assert_array_equal(out["camMat"], np.eye(3) * 2)
        assert out["handJoints3D"].shape == (21, 3) and out["n"] == 4

    @pytest.mark.parametrize(
        "payload", [_Evil(), print, torch.nn.Linear, np.load], ids=["system", "print", "cls", "np"]
    )
    def test_refuses_other_globals(self, payload):
        with pytest.raises(pickle.UnpicklingError, match="refusing"):
            load_pickle(pickle.dumps(payload, protocol=2))


class TestHandSampleAndCollate:
    def _sample(self, **kw):
        base = {
            "image": np.zeros((4, 5, 3), np.uint8),
            "intrinsics": np.eye(3, dtype=np.float32),
            "index": 0,
            "source": "x",
        }
        return HandSample(**{**base, **kw})

    def test_collate(self):
        kp = np.ones((21, 3), np.float32)
        batch = collate_hand_samples(
            [self._sample(keypoints3d=kp, scale=0.01, params={"p": np.zeros(2)})] * 3
        )
        assert batch["keypoints3d"].shape == (3, 21, 3) and batch["mask"] is None
        assert batch["scale"].dtype == torch.float32 and len(batch["params"]) == 3

    def test_collate_errors(self):
        kp = np.ones((21, 3), np.float32)
        with pytest.raises(ValueError, match="keypoints3d"):
            collate_hand_samples([self._sample(keypoints3d=kp), self._sample()])
        with pytest.raises(ValueError, match="image"):
            collate_hand_samples(
                [self._sample(), self._sample(image=np.zeros((5, 5, 3), np.uint8))]
            )
        with pytest.raises(ValueError, match="no samples"):
            collate_hand_samples([])

    def test_project_points(self):
        K = np.array([[100.0, 2.0, 50.0], [0.0, 110.0, 40.0], [0.0, 0.0, 1.0]])
        p = np.array([[0.1, -0.2, 2.0], [0.0, 0.0, 1.0]])
        expected = np.array([[100 * 0.05 + 2 * -0.1 + 50, 110 * -0.1 + 40], [50, 40]])
        np.testing.assert_allclose(project_points(p, K), expected, rtol=1e-6)

    def test_opengl_to_opencv(self):
        np.testing.assert_array_equal(
            opengl_to_opencv(np.array([[1.0, 2.0, -3.0]])), [[1.0, -2.0, 3.0]]
        )
