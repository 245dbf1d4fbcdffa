"""Tests for handdgp.data.scenes: cameras, placement, forearm, occluders, visibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from handdgp.data.scenes import (
    BLOCK_SIZE,
    SceneConfig,
    forearm_faces,
    keypoint_skin,
    keypoint_visibility,
    occluder_topology,
    sample_orientation,
    sample_scenes,
    scene_rng,
    wrist_ring,
)
from handdgp.hand import HandModel, load_template


@pytest.fixture(scope="module")
def template():
    return load_template()


@pytest.fixture(scope="module")
def model(template):
    return HandModel(template)


@pytest.fixture(scope="module")
def block(model, template):
    return sample_scenes(model, template, 3, 1, SceneConfig())


def _project(points, K):
    uvw = points @ K.T
    return uvw[:, :2] / uvw[:, 2:]


class TestSceneConfig:
    def test_defaults(self):
        c = SceneConfig()
        assert c.depth_range == (0.3, 1.0) and c.focal_range == (300.0, 2000.0)
        assert c.image_size_range == (224, 640) and c.occluder_probability == 0.3
        assert c.hand_size_spread == 0.07

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"image_size_range": (300, 200)},
            {"image_size_range": (8, 16)},
            {"focal_range": (0.0, 10.0)},
            {"depth_range": (0.01, 1.0)},
            {"depth_range": (1.0, 0.5)},
            {"occluder_probability": 1.5},
            {"cropped_fraction": -0.1},
            {"aspect_jitter": 0.7},
            {"visibility_tolerance": -1.0},
            {"hand_size_spread": 0.0},
            {"hand_size_spread": 1.5},
            {"hand_size_spread": "wide"},
        ],
    )
    def test_bad_input(self, kwargs):
        with pytest.raises(ValueError):
            SceneConfig(**kwargs)


class TestSceneRng:
    def test_pure_function_of_seed_and_index(self):
        a = [g.random(3) for g in scene_rng(5, 11)]
        b = [g.random(3) for g in scene_rng(5, 11)]
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert not np.array_equal(a[0], a[1])  # geometry and appearance streams differ
        assert not np.array_equal(a[0], scene_rng(5, 12)[0].random(3))
        assert not np.array_equal(a[0], scene_rng(6, 11)[0].random(3))


class TestSampleOrientation:
    @settings(max_examples=40, deadline=None)
    @given(st.integers(0, 2**31 - 1), st.sampled_from([0.0, 0.5, 1.0]))
    def test_rotation(self, seed, upright):
        R = sample_orientation(np.random.default_rng(seed), upright)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)

    def test_upright_fingers_point_up(self):
        rng = np.random.default_rng(0)
        for _ in range(200):
            d = sample_orientation(rng, 1.0)[:, 1]  # where template +y (the fingers) goes
            assert d[2] <= math.sin(math.pi / 4) + 1e-12 and d[2] >= -math.sin(math.pi / 6) - 1e-12
            in_plane = math.degrees(math.atan2(d[0], -d[1]))
            assert abs(in_plane) <= 60 + 1e-9

    def test_uniform_covers_sphere(self):
        rng = np.random.default_rng(1)
        d = np.stack([sample_orientation(rng, 0.0)[:, 1] for _ in range(2000)])
        np.testing.assert_allclose(d.mean(axis=0), 0.0, atol=0.06)
        assert (d[:, 1] > 0.5).mean() > 0.2  # fingers pointing down the image too


class TestSampleScenes:
    def test_smoke(self, block, template):
        assert len(block) == BLOCK_SIZE
        assert [s.index for s in block] == list(range(BLOCK_SIZE, 2 * BLOCK_SIZE))
        s = block[0]
        assert s.vertices.shape == (template.num_vertices, 3) and s.keypoints.shape == (21, 3)
        assert s.pose.shape == (template.num_joints, 3) and s.shape.shape == (template.num_shape,)
        assert s.intrinsics.dtype == np.float64 and s.forearm.shape[1] == 3

    def test_deterministic(self, model, template, block):
        again = sample_scenes(model, template, 3, 1, SceneConfig())
        for a, b in zip(block, again, strict=True):
            np.testing.assert_array_equal(a.vertices, b.vertices)
            np.testing.assert_array_equal(a.intrinsics, b.intrinsics)
            np.testing.assert_array_equal(a.occluder, b.occluder)
            assert a.rng.random() == b.rng.random()
        other = sample_scenes(model, template, 4, 1, SceneConfig())
        assert not np.allclose(block[0].vertices, other[0].vertices)

    def test_camera_ranges(self, block):
        config = SceneConfig()
        for s in block:
            K, (h, w) = s.intrinsics, s.image_size
            assert 224 <= h <= 640 and 224 <= w <= 640
            assert 300 - 1e-6 <= K[0, 0] <= 2000 + 1e-6
            assert abs(K[1, 1] / K[0, 0] - 1) <= config.aspect_jitter + 1e-9
            assert abs(K[0, 2] - (w - 1) / 2) <= 0.1 * w + 1e-6
            assert abs(K[1, 2] - (h - 1) / 2) <= 0.1 * h + 1e-6
            assert K[0, 1] == 0 and np.array_equal(K[2], [0, 0, 1])
            np.testing.assert_array_equal(K, np.round(K, 6))  # as stored

    def test_placement(self, block):
        for s in block:
            assert 0.3 <= s.root[2] <= 1.0
            np.testing.assert_allclose(s.keypoints[0], s.root, atol=1e-6)
            h, w = s.image_size
            uv = _project(s.vertices, s.intrinsics)
            root = _project(s.root[None], s.intrinsics)[0]
            assert -0.5 <= root[0] <= w - 0.5 and -0.5 <= root[1] <= h - 0.5
            if not s.cropped:  # the whole hand, 2 px from the border
                assert uv.min() >= 2.0 - 1e-6
                assert uv[:, 0].max() <= w - 3.0 + 1e-6 and uv[:, 1].max() <= h - 3.0 + 1e-6

    def test_cropped_fraction(self, model, template):
        config = SceneConfig(cropped_fraction=1.0)
        scenes = sample_scenes(model, template, 0, 0, config)
        assert all(s.cropped for s in scenes)
        outside = 0
        for s in scenes:
            uv = _project(s.vertices, s.intrinsics)
            h, w = s.image_size
            outside += bool((uv < 0).any() or (uv[:, 0] > w - 1).any() or (uv[:, 1] > h - 1).any())
            assert (uv[:, 0] >= -0.35 * w - 1e-6).all() and (uv[:, 0] <= 1.35 * w).all()
        assert outside > 0  # some hands do leave the image
        assert not any(s.cropped for s in sample_scenes(model, template, 0, 0, SceneConfig(cropped_fraction=0.0)))

    def test_pose_reproduces_vertices(self, block, model):
        for s in block[:4]:
            out = model(torch.from_numpy(s.pose)[None], torch.from_numpy(s.shape)[None])
            np.testing.assert_allclose(out.vertices[0].double().numpy() + s.root, s.vertices, atol=1e-6)

    def test_forearm_continues_the_wrist(self, block, template):
        ring = wrist_ring(template)
        assert len(ring) == 20
        for s in block[:8]:
            np.testing.assert_allclose(s.forearm[: len(ring)], s.vertices[ring], atol=1e-12)
            direction = s.forearm[-1] - s.forearm[: len(ring)].mean(axis=0)
            fingers = s.keypoints[9] - s.keypoints[0]  # middle knuckle: along the hand
            assert direction @ fingers < 0  # the arm goes the other way
            length = np.linalg.norm(direction)
            assert (0.25 - 1e-9 <= length <= 0.5 + 1e-9) if s.has_forearm else length == pytest.approx(0.04)

    def test_occluders(self, model, template):
        scenes = sample_scenes(model, template, 0, 2, SceneConfig(occluder_probability=1.0))
        placed = [s for s in scenes if s.has_occluder]
        assert len(placed) > 48  # a few may not fit in front of the camera
        for s in placed:
            target = s.keypoints[s.occluded_keypoint]
            centre = s.occluder.mean(axis=0)
            assert np.linalg.norm(centre) < np.linalg.norm(target)  # in front
            ray = target / np.linalg.norm(target)
            off_axis = np.linalg.norm(centre - (centre @ ray) * ray)
            assert off_axis < 0.016
            assert s.occluder[:, 2].min() > 0.05
        none = sample_scenes(model, template, 0, 2, SceneConfig(occluder_probability=0.0))
        assert not any(s.has_occluder for s in none)
        assert all((s.occluder[:, 2] < 0).all() for s in none)  # collapsed behind the camera


class TestTopologies:
    def test_forearm_faces(self):
        faces = forearm_faces(20)
        assert faces.shape == (4 * 2 * 20 + 20, 3)
        assert faces.min() == 0 and faces.max() == 5 * 20

    def test_occluder_topology_is_closed(self):
        lat, lon, faces = occluder_topology()
        assert lat.shape == lon.shape and faces.max() == len(lat) - 1
        edges = {}
        for f in faces:
            for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])):
                edges[(a, b)] = edges.get((a, b), 0) + 1
        assert all((b, a) in edges for a, b in edges)  # every edge has its twin

    def test_keypoint_skin(self, template):
        own = keypoint_skin(template)
        assert own.shape == (21, template.faces.shape[0]) and own.dtype == bool
        assert own.any(axis=1).all()  # every keypoint owns some skin
        assert not (own[4] & own[20]).any()  # thumb and little fingertips share none
        assert (own[0].sum() > own[8].sum()) and own[0].mean() < 0.5


def _scene_buffers(height=9, width=9, depth=0.98):
    return np.full((height, width), depth), np.zeros((height, width), np.int64)


class TestKeypointVisibility:
    K = np.array([[100.0, 0, 4.0], [0, 100.0, 4.0], [0, 0, 1]])

    def _kp(self, point=(0.0, 0.0, 1.0)):
        return np.tile(np.asarray(point, float), (21, 1))

    def test_outside_image(self):
        depth, faces = _scene_buffers()
        faces[:] = -1
        kp = self._kp()
        kp[1] = [0.046, 0.0, 1.0]  # u = 8.6: outside a 9-pixel image
        kp[2] = [0.0, 0.0, -1.0]  # behind the camera
        vis = keypoint_visibility(kp, self.K, depth, faces, np.zeros((21, 1), bool))
        assert vis[0] and not vis[1] and not vis[2]

    def test_own_skin_does_not_hide(self):
        depth, faces = _scene_buffers(depth=0.975)  # 2.5 cm in front
        own = np.zeros((21, 2), bool)
        own[:, 0] = True
        vis = keypoint_visibility(self._kp(), self.K, depth, faces, own)
        assert vis.all()
        far = keypoint_visibility(self._kp(), self.K, depth - 0.01, faces, own)  # 3.5 cm
        assert not far.any()

    def test_other_surface_hides(self):
        depth, faces = _scene_buffers(depth=0.99)
        faces[:] = 1  # not owned: another finger or the occluder
        own = np.zeros((21, 2), bool)
        own[:, 0] = True
        assert not keypoint_visibility(self._kp(), self.K, depth, faces, own).any()
        # ... unless within the tolerance, or behind the keypoint
        assert keypoint_visibility(self._kp(), self.K, depth + 0.009, faces, own).all()
        assert keypoint_visibility(self._kp(), self.K, depth + 0.1, faces, own).all()

    def test_empty_pixel_uses_neighbours(self):
        depth, faces = _scene_buffers(depth=0.9)
        faces[:] = 1
        faces[4, 4] = -1  # the keypoint's own pixel is empty
        depth[4, 4] = 0.0
        own = np.zeros((21, 2), bool)
        assert not keypoint_visibility(self._kp(), self.K, depth, faces, own).any()
        faces[:] = -1
        assert keypoint_visibility(self._kp(), self.K, depth, faces, own).all()
