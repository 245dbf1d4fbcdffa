"""Tests for handdgp.data.freihand: the FreiHAND and synthetic readers, on tiny trees
written in the exact file formats under ``tmp_path``."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from handdgp.data import (
    FREIHAND_VERSIONS,
    FreiHANDDataset,
    SyntheticHandDataset,
    collate_hand_samples,
    project_points,
)

from ._files import (
    H,
    N,
    W,
    _assert_color,
    _write_json,
    write_freihand_evaluation,
    write_freihand_training,
)


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
