"""Tests for handdgp.hand.mano: the safe MANO loader, on fixtures in MANO's pickle layout.

The fixtures are written at test time with stand-in classes registered as
``chumpy.ch.Ch`` and ``scipy.sparse._csc.csc_matrix`` in ``sys.modules``, so the pickle
references exactly the globals of the official files; the stand-ins are removed
before loading.
"""

from __future__ import annotations

import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from handdgp.hand import HandModel, UnsafePickleError, load_mano, sample_hand_pose
from handdgp.hand.mano import (
    MANO_TIP_VERTICES,
    MANO_TIP_VERTICES_MOBRECON,
    SparseMatrix,
    read_mano_pickle,
)

MANO_PARENTS = [0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]  # of joints 1..15


class _FakeCh:
    """Pickles like chumpy.ch.Ch: its __dict__ minus the weak caches."""

    def __init__(self, x):
        self.x = x
        self._dirty_vars = {"x"}
        self._itr = None
        self._depends_on_deps = {}
        self._make_dense = False
        self._make_sparse = False

    def __getstate__(self):
        return dict(self.__dict__)


class _FakeCsc:
    """Pickles like scipy.sparse.csc_matrix: its __dict__ of arrays."""

    def __init__(self, dense):
        rows, cols = np.nonzero(dense.T)  # column-major order
        self._shape = dense.shape
        self.maxprint = 50
        self.format = "csc"
        self.data = dense.T[rows, cols]
        self.indices = cols.astype(np.int32)
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=dense.shape[1]))]).astype(np.int32)


def _icosphere(subdivisions=2):
    t = (1 + 5**0.5) / 2
    v = [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t],
         [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]]  # fmt: skip
    f = [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
         [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
         [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]]  # fmt: skip
    v = [np.array(p, float) / np.linalg.norm(p) for p in v]
    for _ in range(subdivisions):
        cache, faces = {}, []

        def mid(a, b, v=v, cache=cache):
            key = (min(a, b), max(a, b))
            if key not in cache:
                p = v[a] + v[b]
                v.append(p / np.linalg.norm(p))
                cache[key] = len(v) - 1
            return cache[key]

        for a, b, c in f:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            faces += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
        f = faces
    return np.array(v), np.array(f)


def _fake_mano(sphere_only=False):
    """A MANO-layout dict: a stretched sphere mesh and a plausible 16-joint skeleton.

    778 vertices as MANO (642 on the sphere's faces, 136 more that no face uses), or
    only the 642 sphere vertices (a clean manifold, for the hierarchy).
    """
    rng = np.random.default_rng(0)
    sphere, faces = _icosphere(3)  # 642 vertices
    if not sphere_only:
        sphere = np.concatenate([sphere, sphere[:136] * 0.99])
    num_vertices = len(sphere)
    vertices = sphere * [0.04, 0.09, 0.015] + [0, 0.09, 0]
    # flat right hand skeleton, FreiHAND order, fingers along +y, thumb at +x, palm +z
    keypoints = np.zeros((21, 3))
    for finger in range(5):
        for s in range(4):
            keypoints[1 + 4 * finger + s] = [0.03 * (1.5 - finger), 0.07 + 0.025 * s, 0.0]
    keypoints[1:5] += [0.02, -0.05, 0.0]
    mano_of_keypoint = [0, 13, 14, 15, -1, 1, 2, 3, -1, 4, 5, 6, -1, 10, 11, 12, -1, 7, 8, 9, -1]
    regressor = np.zeros((16, num_vertices))
    for k, j in enumerate(mano_of_keypoint):
        if j >= 0:  # each joint is the mean of three vertices moved around it
            ids = rng.choice(np.arange(10, 640), size=3, replace=False)
            regressor[j, ids] = 1 / 3
            vertices[ids] = keypoints[k] + rng.normal(scale=0.003, size=(3, 3))
            vertices[ids] -= vertices[ids].mean(0) - keypoints[k]
    tips = MANO_TIP_VERTICES if not sphere_only else (100, 200, 300, 400, 500)
    for i, k in enumerate((4, 8, 12, 16, 20)):
        vertices[tips[i]] = keypoints[k]
    weights = rng.random((num_vertices, 16)) ** 4
    weights /= weights.sum(1, keepdims=True)
    kintree = np.array([[4294967295, *MANO_PARENTS], list(range(16))], dtype=np.int64)
    return {
        "v_template": vertices,
        "f": faces.astype(np.uint32),
        "weights": weights,
        "kintree_table": kintree,
        "J": regressor @ vertices,
        "J_regressor": _FakeCsc(regressor),
        "shapedirs": _FakeCh(rng.normal(scale=1e-3, size=(num_vertices, 3, 10))),
        "posedirs": rng.normal(scale=1e-3, size=(num_vertices, 3, 135)),
        "hands_components": np.linalg.qr(rng.normal(size=(45, 45)))[0],
        "hands_mean": rng.normal(scale=0.1, size=45),
        "hands_coeffs": rng.normal(size=(10, 12)),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }, regressor


@pytest.fixture
def stand_ins(monkeypatch):
    """Register the stand-ins under the official module names while pickling."""
    chumpy = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")
    csc = types.ModuleType("scipy.sparse._csc")
    _FakeCh.__module__, _FakeCh.__qualname__, _FakeCh.__name__ = "chumpy.ch", "Ch", "Ch"
    _FakeCsc.__module__, _FakeCsc.__qualname__, _FakeCsc.__name__ = "scipy.sparse._csc", "csc_matrix", "csc_matrix"
    ch.Ch, csc.csc_matrix, chumpy.ch = _FakeCh, _FakeCsc, ch
    monkeypatch.setitem(sys.modules, "chumpy", chumpy)
    monkeypatch.setitem(sys.modules, "chumpy.ch", ch)
    monkeypatch.setitem(sys.modules, "scipy.sparse._csc", csc)
    yield
    # monkeypatch restores sys.modules after the test


def _write(tmp_path, name, obj, protocol):
    path = tmp_path / name
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


@pytest.fixture(params=[0, 2, 4], ids=lambda p: f"protocol{p}")
def mano_file(request, tmp_path, stand_ins, monkeypatch):
    data, regressor = _fake_mano()
    path = _write(tmp_path, "MANO_RIGHT.pkl", data, request.param)
    monkeypatch.undo()  # the stand-ins are gone before loading
    return path, data, regressor


def _mano_forward(data, regressor, pose, beta):
    """Reference MANO skinning in numpy, written from the model's definition."""
    v = data["v_template"] + data["shapedirs"].x @ beta
    joints = regressor @ v
    rot = Rotation.from_rotvec(pose).as_matrix()
    v = v + data["posedirs"] @ (rot[1:] - np.eye(3)).reshape(-1)
    parents = [-1, *MANO_PARENTS]
    g = np.zeros((16, 4, 4))
    for j in range(16):
        local = np.eye(4)
        local[:3, :3] = rot[j]
        local[:3, 3] = joints[j] - (joints[parents[j]] if j else 0)
        g[j] = local if j == 0 else g[parents[j]] @ local
    a = g.copy()
    a[:, :3, 3] -= np.einsum("jab,jb->ja", g[:, :3, :3], joints)
    blend = np.einsum("vj,jab->vab", data["weights"], a)
    return np.einsum("vab,vb->va", blend[:, :3, :3], v) + blend[:, :3, 3], g[:, :3, 3]


class TestReadManoPickle:
    def test_converts_chumpy_and_sparse(self, mano_file):
        path, data, regressor = mano_file
        raw = read_mano_pickle(path)
        assert isinstance(raw["shapedirs"], np.ndarray) and raw["shapedirs"].shape == (778, 3, 10)
        np.testing.assert_array_equal(raw["shapedirs"], data["shapedirs"].x)
        assert isinstance(raw["J_regressor"], SparseMatrix) and raw["J_regressor"].format == "csc"
        np.testing.assert_array_equal(raw["J_regressor"].to_dense(), regressor)
        np.testing.assert_array_equal(raw["f"], data["f"])
        assert raw["bs_style"] == "lbs"

    def test_python2_module_names(self, tmp_path, stand_ins, monkeypatch):
        # the official files were written by Python 2 with numpy.core and scipy.sparse.csc
        data, regressor = _fake_mano()
        blob = pickle.dumps(data, protocol=0)
        monkeypatch.undo()
        blob = blob.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
        blob = blob.replace(b"cscipy.sparse._csc\n", b"cscipy.sparse.csc\n")
        assert b"cscipy.sparse.csc\ncsc_matrix" in blob and b"cnumpy.core.multiarray\n_reconstruct" in blob
        path = tmp_path / "MANO_RIGHT.pkl"
        path.write_bytes(blob)
        np.testing.assert_array_equal(read_mano_pickle(path)["J_regressor"].to_dense(), regressor)

    def test_stand_ins_are_removed(self, mano_file):
        assert "chumpy.ch" not in sys.modules
        import scipy.sparse._csc

        assert scipy.sparse._csc.csc_matrix is not _FakeCsc

    def test_real_scipy_sparse(self, tmp_path):
        import scipy.sparse

        dense = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]])
        for fmt in ("csc", "csr"):
            path = tmp_path / f"{fmt}.pkl"
            with open(path, "wb") as f:
                pickle.dump({"m": getattr(scipy.sparse, f"{fmt}_matrix")(dense)}, f, protocol=2)
            m = read_mano_pickle(path)["m"]
            assert m.format == fmt
            np.testing.assert_array_equal(m.to_dense(), dense)

    def test_refuses_os_system(self, tmp_path):
        marker = tmp_path / "pwned"

        class Evil:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        path = tmp_path / "evil.pkl"
        path.write_bytes(pickle.dumps({"v_template": Evil()}, protocol=2))
        with pytest.raises(UnsafePickleError, match=r"refusing to load the global (posix|os|nt)\.system"):
            read_mano_pickle(path)
        assert not marker.exists()
        with pytest.raises(UnsafePickleError):
            load_mano(path, side="right")
        assert not marker.exists()

    def test_refuses_eval(self, tmp_path):
        path = tmp_path / "evil.pkl"
        path.write_bytes(b"c__builtin__\neval\n(S'1+1'\ntR.")
        with pytest.raises(UnsafePickleError, match=r"__builtin__\.eval"):
            read_mano_pickle(path)

    def test_refuses_other_chumpy_classes(self, tmp_path):
        path = tmp_path / "evil.pkl"
        path.write_bytes(b"cchumpy.reordering\nSelect\n)\x81.")
        with pytest.raises(UnsafePickleError, match=r"chumpy\.reordering\.Select"):
            read_mano_pickle(path)

    def test_refuses_reconstructor_of_other_classes(self, tmp_path):
        path = tmp_path / "evil.pkl"
        path.write_bytes(b"ccopy_reg\n_reconstructor\n(c__builtin__\nset\nc__builtin__\nobject\nNtR.")
        with pytest.raises(UnsafePickleError, match="_reconstructor"):
            read_mano_pickle(path)

    def test_refuses_bad_chumpy_state(self, tmp_path):
        path = tmp_path / "evil.pkl"
        path.write_bytes(b"cchumpy.ch\nCh\n)\x81(dS'y'\nI1\nsb.")
        with pytest.raises(UnsafePickleError, match="'x'"):
            read_mano_pickle(path)

    def test_refuses_persistent_id(self, tmp_path):
        path = tmp_path / "evil.pkl"
        path.write_bytes(b"Pabc\n.")
        with pytest.raises(UnsafePickleError, match="persistent"):
            read_mano_pickle(path)

    def test_not_a_dict(self, tmp_path):
        path = tmp_path / "list.pkl"
        path.write_bytes(pickle.dumps([1, 2], protocol=2))
        with pytest.raises(ValueError, match="expected a MANO dict"):
            read_mano_pickle(path)


class TestLoadMano:
    def test_template_interface(self, mano_file):
        path, _, _ = mano_file
        t = load_mano(path)
        assert t.name == "mano-right" and t.side == "right"
        assert t.vertices.shape == (778, 3) and t.faces.shape == (1280, 3)
        assert t.num_joints == 16 and t.num_shape == 10
        assert t.skinning_weights.shape == (778, 16)
        assert t.parents.tolist() == [-1, *MANO_PARENTS]
        assert t.posedirs.shape == (778, 3, 135)
        assert t.hands_components.shape == (45, 45) and t.hands_mean.shape == (45,)
        assert t.joint_regressor.shape == (21, 778)
        assert t.tip_vertices.tolist() == list(MANO_TIP_VERTICES)
        torch.testing.assert_close(t.shape_std, torch.ones(10))
        assert "MANO" in t.attribution
        assert bool(torch.isfinite(t.joint_frames).all() and torch.isfinite(t.joint_rest_flexion).all())

    def test_keypoints_in_freihand_order(self, mano_file):
        path, data, regressor = mano_file
        t = load_mano(path, dtype=torch.float64)
        joints = regressor @ data["v_template"]
        expected = np.zeros((21, 3))
        order = [0, 13, 14, 15, None, 1, 2, 3, None, 4, 5, 6, None, 10, 11, 12, None, 7, 8, 9, None]
        tips = iter(MANO_TIP_VERTICES)
        for k, j in enumerate(order):
            expected[k] = data["v_template"][next(tips)] if j is None else joints[j]
        model = HandModel(t)
        out = model(torch.zeros(16, 3, dtype=torch.float64))
        np.testing.assert_allclose(out.keypoints.numpy(), expected, atol=1e-12)
        # and the regressor gives the same keypoints from the rest mesh
        np.testing.assert_allclose(model.regress_keypoints(out.vertices).numpy(), expected, atol=1e-12)

    def test_posing_matches_reference_mano(self, mano_file):
        path, data, regressor = mano_file
        t = load_mano(path, dtype=torch.float64)
        rng = np.random.default_rng(1)
        pose, beta = rng.normal(scale=0.4, size=(16, 3)), rng.normal(size=10)
        expected_v, expected_j = _mano_forward(data, regressor, pose, beta)
        out = HandModel(t)(torch.from_numpy(pose), torch.from_numpy(beta))
        np.testing.assert_allclose(out.vertices.numpy(), expected_v, atol=1e-12)
        np.testing.assert_allclose(out.joints.numpy(), expected_j, atol=1e-12)

    def test_sampler_works_on_mano(self, mano_file):
        path, _, _ = mano_file
        t = load_mano(path, dtype=torch.float64)
        s = sample_hand_pose(t, 8, torch.Generator().manual_seed(0))
        assert s.pose.shape == (8, 16, 3)
        out = HandModel(t)(s.pose)
        assert bool(torch.isfinite(out.vertices).all())

    def test_mobrecon_tips(self, mano_file):
        path, _, _ = mano_file
        t = load_mano(path, tip_vertices=MANO_TIP_VERTICES_MOBRECON)
        assert t.tip_vertices.tolist() == [744, 333, 444, 555, 672]
        assert float(t.joint_regressor[8, 333]) == 1.0

    def test_side_from_name_and_errors(self, tmp_path, stand_ins, monkeypatch):
        data, _ = _fake_mano()
        for name in ("MANO_LEFT.pkl", "hand.pkl"):
            _write(tmp_path, name, data, 2)
        monkeypatch.undo()
        assert load_mano(tmp_path / "MANO_LEFT.pkl").side == "left"
        with pytest.raises(ValueError, match="side"):
            load_mano(tmp_path / "hand.pkl")
        assert load_mano(tmp_path / "hand.pkl", side="left").name == "mano-left"
        with pytest.raises(ValueError, match="side"):
            load_mano(tmp_path / "hand.pkl", side="up")
        with pytest.raises(ValueError, match="tip_vertices"):
            load_mano(tmp_path / "hand.pkl", side="left", tip_vertices=(1, 2, 3, 4, 999))

    def test_missing_keys(self, tmp_path):
        path = tmp_path / "MANO_RIGHT.pkl"
        path.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3))}, protocol=2))
        with pytest.raises(ValueError, match="missing"):
            load_mano(path)

    def test_hierarchy(self, tmp_path, stand_ins, monkeypatch):
        data, _ = _fake_mano(sphere_only=True)
        path = _write(tmp_path, "MANO_RIGHT.pkl", data, 2)
        monkeypatch.undo()
        t = load_mano(path, tip_vertices=(100, 200, 300, 400, 500), hierarchy=True)
        assert t.hierarchy.num_vertices == (642, 321, 161, 81, 41)
