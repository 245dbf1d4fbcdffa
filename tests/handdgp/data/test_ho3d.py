"""Tests for handdgp.data.ho3d, on a tiny tree with pickles as Python 2 wrote them."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from handdgp.data import (
    HO3D_TO_FREIHAND,
    HO3DDataset,
)

from ._files import (
    _HO3D_INDEX_OF,
    _assert_color_any,
    _color,
    _Evil,
    _write_rgb,
    write_ho3d,
)


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
