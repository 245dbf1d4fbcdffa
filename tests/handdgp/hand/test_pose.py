"""Tests for handdgp.hand.pose: anatomical limits, pose and shape sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dgpgeom import ShapeError
from handdgp.hand import (
    HandModel,
    angles_to_pose,
    joint_limits,
    load_template,
    sample_hand_pose,
    sample_hand_shape,
)
from handdgp.hand.pose import JOINT_LIMITS_DEG, size_direction
from handdgp.hand.skeleton import hand_size, palm_axes


@pytest.fixture(scope="module")
def template():
    return load_template(dtype=torch.float64)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


class TestJointLimits:
    def test_smoke(self, template):
        lim = joint_limits(template)
        assert lim.lower.shape == lim.upper.shape == (20, 3)
        assert bool((lim.lower <= lim.upper).all())

    def test_values(self, template):
        lim = joint_limits(template)
        deg = torch.rad2deg
        kj = template.keypoint_joints
        for finger in range(1, 5):
            mcp, pip, dip = (int(kj[1 + 4 * finger + s]) for s in range(3))
            assert deg(lim.lower[mcp, 0]).round() == -20 and deg(lim.upper[mcp, 0]).round() == 90
            assert deg(lim.lower[pip, 0]).round() == 0 and deg(lim.upper[pip, 0]).round() == 110
            assert deg(lim.lower[dip, 0]).round() == 0 and deg(lim.upper[dip, 0]).round() == 90
            assert float(deg(lim.upper[mcp, 1])) <= 20 and float(deg(lim.upper[pip, 2])) <= 5
        # the root (global orientation) has no limits
        assert float(lim.lower[0].abs().sum() + lim.upper[0].abs().sum()) == 0
        # metacarpals: only the ring and little ones cup the palm
        extras = [j for j in range(20) if j not in kj.tolist()]
        assert len(extras) == 4
        assert sorted(round(float(deg(lim.upper[j, 0]))) for j in extras) == [0, 0, 10, 15]

    def test_every_keypoint_joint_has_limits(self):
        assert len(JOINT_LIMITS_DEG) == 15


class TestAnglesToPose:
    def test_rest_angles_give_zero_pose(self, template):
        angles = torch.zeros(20, 3, dtype=torch.float64)
        angles[:, 0] = template.joint_rest_flexion
        torch.testing.assert_close(angles_to_pose(template, angles), torch.zeros(20, 3, dtype=torch.float64), atol=1e-12, rtol=0)

    def test_flexion_towards_palm(self, template):
        # positive flexion of any finger joint moves its fingertip out of the palm's front side
        model = HandModel(template)
        rest = model(torch.zeros(20, 3, dtype=torch.float64)).keypoints
        _, _, dorsal = palm_axes(rest.numpy(), "right")
        dorsal = torch.from_numpy(dorsal)
        for finger in range(1, 5):
            for segment in range(3):
                j = int(template.keypoint_joints[1 + 4 * finger + segment])
                angles = torch.zeros(20, 3, dtype=torch.float64)
                angles[:, 0] = template.joint_rest_flexion
                angles[j, 0] = math.radians(60)
                tip = model(angles_to_pose(template, angles)).keypoints[4 + 4 * finger]
                moved = tip - rest[4 + 4 * finger]
                assert float(moved @ dorsal) < -0.005, (finger, segment)

    def test_thumb_flexes_towards_little_finger(self, template):
        model = HandModel(template)
        rest = model(torch.zeros(20, 3, dtype=torch.float64)).keypoints
        _, radial, _ = palm_axes(rest.numpy(), "right")
        angles = torch.zeros(20, 3, dtype=torch.float64)
        angles[:, 0] = template.joint_rest_flexion
        for k in (1, 2, 3):
            angles[int(template.keypoint_joints[k]), 0] = math.radians(40)
        tip = model(angles_to_pose(template, angles)).keypoints[4]
        assert float((tip - rest[4]) @ torch.from_numpy(radial)) < -0.01

    def test_pure_twist_keeps_bone_axis(self, template):
        j = int(template.keypoint_joints[6])  # index PIP
        angles = torch.zeros(20, 3, dtype=torch.float64)
        angles[:, 0] = template.joint_rest_flexion
        angles[j, 2] = 0.3
        from kornia.geometry.conversions import axis_angle_to_rotation_matrix

        rot = axis_angle_to_rotation_matrix(angles_to_pose(template, angles)[j])
        bone = template.joint_frames[j][:, 1]
        torch.testing.assert_close(rot @ bone, bone, atol=1e-7, rtol=0)  # float32-stored frames

    def test_bad_input(self, template):
        with pytest.raises(ShapeError, match="angles"):
            angles_to_pose(template, torch.zeros(16, 3))


class TestSampleHandPose:
    def test_smoke(self, template):
        s = sample_hand_pose(template, 5, _gen(0))
        assert s.pose.shape == s.angles.shape == (5, 20, 3) and s.curl.shape == (5,)
        assert s.pose.dtype == torch.float64

    def test_batch_shape_tuple_and_dtype(self, template):
        s = sample_hand_pose(template, (2, 3), _gen(0), dtype=torch.float32)
        assert s.pose.shape == (2, 3, 20, 3) and s.pose.dtype == torch.float32

    def test_deterministic(self, template):
        a = sample_hand_pose(template, 8, _gen(42))
        b = sample_hand_pose(template, 8, _gen(42))
        c = sample_hand_pose(template, 8, _gen(43))
        assert torch.equal(a.pose, b.pose) and torch.equal(a.angles, b.angles)
        assert not torch.equal(a.pose, c.pose)

    def test_default_generator(self, template):
        torch.manual_seed(0)
        a = sample_hand_pose(template, 2).pose
        torch.manual_seed(0)
        assert torch.equal(a, sample_hand_pose(template, 2).pose)

    def test_respects_limits(self, template):
        s = sample_hand_pose(template, 2000, _gen(1))
        lim = joint_limits(template)
        assert bool((s.angles >= lim.lower - 1e-12).all() and (s.angles <= lim.upper + 1e-12).all())
        # and uses most of each range
        span = s.angles.amax(0) - s.angles.amin(0)
        width = lim.upper - lim.lower
        used = width > 0
        assert bool((span[used] > 0.8 * width[used]).all())

    def test_pose_matches_angles(self, template):
        s = sample_hand_pose(template, 16, _gen(2))
        expected = angles_to_pose(template, s.angles)
        torch.testing.assert_close(s.pose[:, 1:], expected[:, 1:], atol=1e-10, rtol=0)

    def test_without_global_orientation(self, template):
        s = sample_hand_pose(template, 16, _gen(3), global_orientation=False)
        assert float(s.pose[:, 0].abs().max()) == 0.0

    def test_global_orientation_uniform(self, template):
        from kornia.geometry.conversions import axis_angle_to_rotation_matrix

        s = sample_hand_pose(template, 4000, _gen(4))
        rot = axis_angle_to_rotation_matrix(s.pose[:, 0])
        # the mean rotation matrix of a uniform SO(3) sample is 0
        assert float(rot.mean(0).abs().max()) < 0.05
        # and the rotation angle follows (1 - cos t) / pi on [0, pi]: mean pi/2 + 2/pi
        angle = s.pose[:, 0].norm(dim=-1)
        assert abs(float(angle.mean()) - (math.pi / 2 + 2 / math.pi)) < 0.05

    def test_curl_correlates_flexions(self, template):
        s = sample_hand_pose(template, 3000, _gen(5), global_orientation=False)
        kj = template.keypoint_joints
        fingers = [int(kj[k]) for k in (5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19)]
        mean_flex = s.angles[:, fingers, 0].mean(1)
        corr = np.corrcoef(s.curl.numpy(), mean_flex.numpy())[0, 1]
        assert corr > 0.5

    @settings(max_examples=25, deadline=None)
    @given(st.integers(0, 2**31 - 1), st.integers(1, 4))
    def test_property_limits(self, template, seed, n):
        s = sample_hand_pose(template, n, _gen(seed))
        lim = joint_limits(template)
        assert bool((s.angles >= lim.lower - 1e-12).all() and (s.angles <= lim.upper + 1e-12).all())
        assert bool(((s.curl >= 0) & (s.curl <= 1)).all())


class TestSampleHandShape:
    def test_smoke(self, template):
        beta = sample_hand_shape(template, (2, 3), _gen(0))
        assert beta.shape == (2, 3, 10) and beta.dtype == torch.float64

    def test_deterministic(self, template):
        assert torch.equal(sample_hand_shape(template, 4, _gen(7)), sample_hand_shape(template, 4, _gen(7)))

    def test_statistics(self, template):
        beta = sample_hand_shape(template, 20000, _gen(8))
        torch.testing.assert_close(beta.mean(0), template.shape_mean, atol=0.05, rtol=0)
        assert bool(((beta.std(0) > 0.9) & (beta.std(0) < 1.0)).all())  # clipped at 2.5 sigma

    def test_clipping(self, template):
        beta = sample_hand_shape(template, 5000, _gen(9), max_sigma=1.0)
        z = (beta - template.shape_mean) / template.shape_std
        assert float(z.abs().max()) <= 1.0 + 1e-12

    def test_bad_sigma(self, template):
        with pytest.raises(ValueError, match="max_sigma"):
            sample_hand_shape(template, 2, _gen(0), max_sigma=0.0)

    def test_shapes_change_hand_size(self, template):
        model = HandModel(template)
        beta = sample_hand_shape(template, 200, _gen(10))
        out = model(torch.zeros(200, 20, 3, dtype=torch.float64), beta)
        length = (out.keypoints[:, 12] - out.keypoints[:, 0]).norm(dim=-1)  # wrist to middle tip
        assert 0.12 < float(length.min()) and float(length.max()) < 0.27
        assert float(length.std()) > 0.005

    @pytest.mark.parametrize("spread", [0.035, 0.07, 0.2])
    def test_size_spread(self, template, spread):
        model = HandModel(template)
        beta = sample_hand_shape(template, 4000, _gen(11), size_spread=spread)
        size = hand_size(model(torch.zeros(4000, 20, 3, dtype=torch.float64), beta).keypoints)
        assert abs(float(size.std() / size.mean()) / spread - 1) < 0.08

    def test_size_spread_keeps_the_rest_of_the_shape(self, template):
        natural = sample_hand_shape(template, 500, _gen(12))
        narrowed = sample_hand_shape(template, 500, _gen(12), size_spread=0.05)
        direction, spread = size_direction(template)
        change = (narrowed - natural) / template.shape_std
        along = change @ direction
        torch.testing.assert_close(change, along[:, None] * direction, atol=1e-12, rtol=0)
        z = (natural - template.shape_mean) / template.shape_std
        torch.testing.assert_close(along, (0.05 / spread - 1) * (z @ direction))
        assert 0.1 < spread < 0.2  # the committed template's population: about 14 %

    @pytest.mark.parametrize("spread", [0.0, -0.1, math.nan, math.inf])
    def test_bad_size_spread(self, template, spread):
        with pytest.raises(ValueError, match="size_spread"):
            sample_hand_shape(template, 2, _gen(0), size_spread=spread)

    def test_size_direction_is_computed_once_per_template(self, template, monkeypatch):
        from handdgp.hand import pose

        calls = []
        original = pose.size_direction
        monkeypatch.setattr(pose, "size_direction", lambda t: calls.append(t) or original(t))
        pose._SIZE_DIRECTIONS.clear()
        first = sample_hand_shape(template, 3, _gen(13), size_spread=0.07)
        again = sample_hand_shape(template, 3, _gen(13), size_spread=0.07)
        assert torch.equal(first, again) and len(calls) == 1
        sample_hand_shape(load_template(dtype=torch.float64), 3, _gen(13), size_spread=0.07)
        assert len(calls) == 2  # another template object: computed for it


def test_an_empty_batch_shape_draws_one_unbatched_hand():
    template = load_template()
    pose = sample_hand_pose(template, (), torch.Generator().manual_seed(0))
    batched = sample_hand_pose(template, (1,), torch.Generator().manual_seed(0))
    assert pose.pose.shape == (template.num_joints, 3)
    assert torch.equal(pose.pose, batched.pose[0])
