"""Tests for handdgp.hand.hierarchy: decimation, up-sampling weights, spirals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from handdgp.hand import build_mesh_hierarchy, load_template, spiral_indices
from handdgp.hand.hierarchy import decimate, upsampling_weights


@pytest.fixture(scope="module")
def sphere():
    mesh = trimesh.creation.icosphere(subdivisions=3)  # 642 vertices, 1280 faces
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def _edges(faces):
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return set(map(tuple, np.concatenate([e, e[:, ::-1]]).tolist()))


class TestSpiralIndices:
    def test_fan(self):
        faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1]])
        s = spiral_indices(5, faces, length=5)
        assert s[0].tolist() == [0, 1, 2, 3, 4]
        assert s.shape == (5, 5)

    def test_starts_at_vertex_and_valid(self, sphere):
        v, f = sphere
        s = spiral_indices(len(v), f, length=9)
        assert s.shape == (642, 9) and s.dtype == np.int64
        assert (s[:, 0] == np.arange(642)).all()
        assert s.min() >= 0 and s.max() < 642
        assert all(len(set(row)) == 9 for row in s.tolist())

    def test_first_ring_in_winding_order(self, sphere):
        v, f = sphere
        s = spiral_indices(len(v), f, length=7)
        oriented = {tuple(face[i:] + face[:i]) for face in f.tolist() for i in range(3)}
        edges = _edges(f)
        for vertex, row in enumerate(s.tolist()):
            valence = sum(1 for e in edges if e[0] == vertex)
            ring = row[1 : 1 + valence]
            # consecutive ring vertices span a face (vertex, a, b) in the mesh's winding
            for a, b in zip(ring, ring[1:] + ring[:1], strict=True):
                assert (vertex, a, b) in oriented

    def test_second_ring_follows(self, sphere):
        v, f = sphere
        s = spiral_indices(len(v), f, length=19)
        edges = _edges(f)
        for row in s.tolist()[:50]:
            ring1 = set(row[1:7]) if len(row) > 7 else set()
            for w in row[7:]:  # beyond the one-ring: neighbours of earlier entries
                assert any((w, u) in edges for u in ring1 | set(row[7 : row.index(w)]))

    def test_padding_repeats(self):
        s = spiral_indices(3, np.array([[0, 1, 2]]), length=9)
        assert s[0].tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2]

    def test_boundary_vertex(self):
        # an open strip: the boundary fan starts where no face leads in
        faces = np.array([[0, 1, 2], [0, 2, 3]])
        assert spiral_indices(4, faces, length=4)[0].tolist() == [0, 1, 2, 3]

    def test_bad_length(self, sphere):
        with pytest.raises(ValueError, match="length"):
            spiral_indices(len(sphere[0]), sphere[1], length=0)


class TestDecimate:
    def test_subset_and_count(self, sphere):
        v, f = sphere
        kept, faces = decimate(v, f, 321)
        assert len(kept) == 321 and len(np.unique(kept)) == 321
        assert faces.min() >= 0 and faces.max() == 320
        assert len(np.unique(faces)) == 321  # every kept vertex is used

    def test_deterministic(self, sphere):
        a = decimate(*sphere, 100)
        b = decimate(*sphere, 100)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])

    def test_bad_count(self, sphere):
        with pytest.raises(ValueError, match="num_vertices"):
            decimate(*sphere, 642)


class TestUpsamplingWeights:
    def test_point_on_face(self):
        tri = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
        index, weight = upsampling_weights(np.array([[0.2, 0.3, 0.0], [0.0, 1.0, 0.0]]), tri, np.array([[0, 1, 2]]))
        np.testing.assert_allclose(weight, [[0.5, 0.2, 0.3], [0.0, 0.0, 1.0]], atol=1e-12)
        assert index.tolist() == [[0, 1, 2], [0, 1, 2]]

    def test_outside_projects_to_edge(self):
        tri = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
        _, weight = upsampling_weights(np.array([[0.5, -1.0, 0.3]]), tri, np.array([[0, 1, 2]]))
        np.testing.assert_allclose(weight, [[0.5, 0.5, 0.0]], atol=1e-12)

    def test_rows_sum_to_one(self, sphere):
        v, f = sphere
        kept, faces = decimate(v, f, 200)
        _, weight = upsampling_weights(v, v[kept], faces)
        assert (weight >= 0).all()
        np.testing.assert_allclose(weight.sum(1), 1.0, atol=1e-12)


class TestBuildMeshHierarchy:
    def test_sizes_and_maps(self, sphere):
        h = build_mesh_hierarchy(*sphere, num_levels=4)
        assert h.num_vertices == (642, 321, 161, 81)
        for level in range(3):
            coarse = torch.randn(h.num_vertices[level + 1], 2)
            torch.testing.assert_close(h.downsample(h.upsample(coarse, level), level), coarse)
            assert h.up_weight[level].dtype == torch.float32
            assert h.spirals[level].shape == (h.num_vertices[level], 9)

    def test_spiral_length_and_factor(self, sphere):
        h = build_mesh_hierarchy(*sphere, num_levels=2, factor=4.0, spiral_length=12)
        assert h.num_vertices == (642, 161) and h.spirals[1].shape == (161, 12)

    def test_single_level(self, sphere):
        h = build_mesh_hierarchy(*sphere, num_levels=1)
        assert h.num_vertices == (642,) and h.down_index == ()

    def test_bad_arguments(self, sphere):
        with pytest.raises(ValueError, match="num_levels"):
            build_mesh_hierarchy(*sphere, num_levels=0)
        with pytest.raises(ValueError, match="factor"):
            build_mesh_hierarchy(*sphere, factor=1.0)

    def test_committed_template_matches_builder(self):
        # the committed hierarchy is what the builder gives for the template mesh
        t = load_template()
        h = build_mesh_hierarchy(t.vertices, t.faces, num_levels=2)
        assert torch.equal(h.down_index[0], t.hierarchy.down_index[0])
        assert torch.equal(h.faces[1], t.hierarchy.faces[1])
        assert torch.equal(h.spirals[0], t.hierarchy.spirals[0])
        # the same attachment points (a point on a shared edge may name either face)
        coarse = h.downsample(t.vertices, 0)
        torch.testing.assert_close(h.upsample(coarse, 0), t.hierarchy.upsample(coarse, 0), atol=1e-6, rtol=0)
