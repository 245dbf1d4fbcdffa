"""Tests for handdgp.hand.model: pure-torch linear blend skinning."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from kornia.geometry.conversions import axis_angle_to_rotation_matrix

from dgpgeom import ShapeError
from handdgp.hand import HandModel, load_template, sample_hand_pose, sample_hand_shape


@pytest.fixture(scope="module")
def template():
    return load_template(dtype=torch.float64)


@pytest.fixture(scope="module")
def model(template):
    return HandModel(template)


def _random_pose(n, seed=0, scale=0.4, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, 20, 3, generator=g, dtype=dtype)


class TestHandModel:
    def test_smoke(self, model):
        out = model(_random_pose(2))
        assert out.vertices.shape == (2, 1609, 3)
        assert out.joints.shape == (2, 20, 3)
        assert out.keypoints.shape == (2, 21, 3)
        assert out.joint_rotations.shape == (2, 20, 3, 3)
        assert all(bool(torch.isfinite(t).all()) for t in out)

    def test_default_template(self):
        assert HandModel().vertices.shape == (1609, 3)

    def test_identity_pose_is_rest_mesh(self, model, template):
        out = model(torch.zeros(20, 3, dtype=torch.float64))
        torch.testing.assert_close(out.vertices, template.vertices, atol=1e-12, rtol=0)
        torch.testing.assert_close(out.joints, template.rest_joints, atol=1e-12, rtol=0)
        eye = torch.eye(3, dtype=torch.float64).expand(20, 3, 3)
        torch.testing.assert_close(out.joint_rotations, eye, atol=1e-12, rtol=0)

    def test_zero_shape_equals_template_shape(self, model):
        pose = _random_pose(3)
        a = model(pose)
        b = model(pose, torch.zeros(3, 10, dtype=torch.float64))
        torch.testing.assert_close(a.vertices, b.vertices, atol=1e-12, rtol=0)

    def test_root_rotation_is_rigid(self, model):
        # turning the root turns the whole posed hand rigidly about the root joint
        pose = _random_pose(4, seed=1)
        beta = sample_hand_shape(model_template := load_template(dtype=torch.float64), 4,
                                 torch.Generator().manual_seed(0))
        del model_template
        base = model(pose, beta)
        root = torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64).expand(4, 3)
        rotated_pose = pose.clone()
        r_extra = axis_angle_to_rotation_matrix(root)
        r_old = axis_angle_to_rotation_matrix(pose[:, 0])
        from kornia.geometry.conversions import rotation_matrix_to_axis_angle

        rotated_pose[:, 0] = rotation_matrix_to_axis_angle(r_extra @ r_old)
        out = model(rotated_pose, beta)
        centre = base.joints[:, :1]
        expected = (base.vertices - centre) @ r_extra.transpose(-1, -2) + centre
        torch.testing.assert_close(out.vertices, expected, atol=1e-10, rtol=0)
        expected_kp = (base.keypoints - centre) @ r_extra.transpose(-1, -2) + centre
        torch.testing.assert_close(out.keypoints, expected_kp, atol=1e-10, rtol=0)

    def test_bone_lengths_preserved(self, model):
        # finger joints rotate about their centres: segment lengths do not change
        rest = model(torch.zeros(1, 20, 3, dtype=torch.float64)).joints
        posed = model(_random_pose(5, seed=2)).joints
        parents = model.parents
        for j in range(1, 20):
            l0 = (rest[:, j] - rest[:, parents[j]]).norm(dim=-1)
            l1 = (posed[:, j] - posed[:, parents[j]]).norm(dim=-1)
            torch.testing.assert_close(l1, l0.expand_as(l1), atol=1e-12, rtol=0)

    def test_single_joint_moves_only_its_subtree(self, model, template):
        # flexing the index DIP leaves vertices bound only to other joints in place
        j = int(template.keypoint_joints[7])  # index DIP
        pose = torch.zeros(20, 3, dtype=torch.float64)
        pose[j] = torch.tensor([0.8, 0.0, 0.0], dtype=torch.float64)
        out = model(pose)
        untouched = template.skinning_weights[:, j] == 0
        torch.testing.assert_close(out.vertices[untouched], template.vertices[untouched], atol=1e-12, rtol=0)
        assert float((out.vertices - template.vertices).norm(dim=-1).max()) > 5e-3

    def test_keypoints(self, model, template):
        out = model(_random_pose(3, seed=3))
        kj = template.keypoint_joints
        for k in range(21):
            if int(kj[k]) >= 0:
                torch.testing.assert_close(out.keypoints[:, k], out.joints[:, int(kj[k])], atol=0, rtol=0)
        tips = out.vertices[:, template.tip_vertices]
        torch.testing.assert_close(out.keypoints[:, [4, 8, 12, 16, 20]], tips, atol=0, rtol=0)

    def test_rotations_orthonormal(self, model):
        rot = model(_random_pose(2, seed=4, scale=2.0)).joint_rotations
        eye = torch.eye(3, dtype=torch.float64).expand_as(rot)
        torch.testing.assert_close(rot @ rot.transpose(-1, -2), eye, atol=1e-12, rtol=0)

    def test_broadcasting(self, model):
        pose = _random_pose(2).reshape(2, 1, 20, 3)
        beta = torch.randn(3, 10, dtype=torch.float64)
        out = model(pose, beta)
        assert out.vertices.shape == (2, 3, 1609, 3)
        single = model(pose[1, 0], beta[2])
        torch.testing.assert_close(out.vertices[1, 2], single.vertices, atol=1e-12, rtol=0)

    def test_batched_equals_per_item(self, model):
        pose = _random_pose(4, seed=5)
        beta = torch.randn(4, 10, dtype=torch.float64)
        out = model(pose, beta)
        for i in range(4):
            torch.testing.assert_close(model(pose[i], beta[i]).vertices, out.vertices[i], atol=1e-12, rtol=0)

    def test_no_batch(self, model):
        assert model(torch.zeros(20, 3)).vertices.shape == (1609, 3)

    def test_float32_matches_float64(self, model):
        pose = _random_pose(2, seed=6)
        beta = torch.randn(2, 10, dtype=torch.float64)
        ref = model(pose, beta).vertices
        out = model(pose.float(), beta.float()).vertices
        assert out.dtype == torch.float32
        torch.testing.assert_close(out.double(), ref, atol=1e-6, rtol=0)  # 1 micrometre

    def test_half_computed_in_float32(self, model):
        out = model(_random_pose(1, dtype=torch.float16))
        assert out.vertices.dtype == torch.float16 and bool(torch.isfinite(out.vertices).all())

    def test_bad_pose_shape(self, model):
        with pytest.raises(ShapeError, match=r"pose: expected shape \(\.\.\., 20, 3\)"):
            model(torch.zeros(2, 16, 3))

    def test_bad_shape_shape(self, model):
        with pytest.raises(ShapeError, match=r"shape: expected shape"):
            model(torch.zeros(2, 20, 3), torch.zeros(2, 9))

    def test_bad_dtype(self, model):
        with pytest.raises(ShapeError, match="floating-point"):
            model(torch.zeros(20, 3, dtype=torch.int64))

    def test_not_a_tensor(self, model):
        with pytest.raises(TypeError, match=r"torch\.Tensor"):
            model([[0.0, 0.0, 0.0]] * 20)

    def test_batch_mismatch(self, model):
        with pytest.raises(ShapeError, match="do not broadcast"):
            model(torch.zeros(2, 20, 3), torch.zeros(3, 10))

    def test_bad_parents(self, template):
        import dataclasses

        bad = dataclasses.replace(template, parents=torch.tensor([-1, 2, *range(1, 19)]))
        with pytest.raises(ValueError, match="parents"):
            HandModel(bad)

    def test_device_and_dtype_fixtures(self, template, device, dtype):
        model = HandModel(template).to(device)
        out = model(_random_pose(2, dtype=dtype).to(device))
        assert out.vertices.device.type == device.type and out.vertices.dtype == dtype

    def test_device_mismatch(self, model):
        with pytest.raises(ShapeError, match="model's device"):
            model(torch.zeros(20, 3, device="meta"))
        with pytest.raises(ShapeError, match="model's device"):
            model.regress_keypoints(torch.zeros(1609, 3, device="meta"))

    def test_state_dict_holds_no_template(self, model):
        # the template is configuration, not state: checkpoints stay small
        assert len(model.state_dict()) == 0

    def test_meta_device(self, template):
        model = HandModel(template).to("meta")
        out = model(torch.zeros(8, 20, 3, device="meta"), torch.zeros(8, 10, device="meta"))
        assert out.vertices.shape == (8, 1609, 3) and out.vertices.device.type == "meta"

    def test_gradcheck(self, model):
        projection = torch.randn(1609 * 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

        def f(pose, beta):
            out = model(pose, beta)
            return out.vertices.reshape(-1) @ projection, out.keypoints[:, :3].sum(0)

        pose = _random_pose(1, seed=7)[0].requires_grad_()
        beta = torch.randn(10, dtype=torch.float64).requires_grad_()
        assert torch.autograd.gradcheck(f, (pose, beta), atol=1e-6)

    def test_gradient_at_zero_pose_finite(self, model):
        pose = torch.zeros(20, 3, dtype=torch.float64, requires_grad=True)
        model(pose).vertices.sum().backward()
        assert bool(torch.isfinite(pose.grad).all()) and float(pose.grad.abs().sum()) > 0

    def test_compile(self, model):
        compiled = torch.compile(model, backend="eager", fullgraph=True)
        pose = _random_pose(2, seed=8)
        torch.testing.assert_close(compiled(pose).vertices, model(pose).vertices, atol=0, rtol=0)

    def test_vmap(self, model):
        pose = _random_pose(3, seed=9)
        out = torch.func.vmap(lambda p: model(p).keypoints)(pose)
        torch.testing.assert_close(out, model(pose).keypoints, atol=1e-12, rtol=0)

    @settings(max_examples=25, deadline=None)
    @given(st.integers(0, 2**31 - 1))
    def test_property_sampled_hands_stay_hand_sized(self, model, seed):
        template = load_template(dtype=torch.float64)
        g = torch.Generator().manual_seed(seed)
        out = model(sample_hand_pose(template, 2, g).pose, sample_hand_shape(template, 2, g))
        # every vertex within 30 cm of the wrist, the wrist fixed at the origin
        assert float(out.vertices.norm(dim=-1).max()) < 0.3
        torch.testing.assert_close(out.keypoints[:, 0], torch.zeros(2, 3, dtype=torch.float64), atol=1e-12, rtol=0)


class TestRegressKeypoints:
    def test_smoke(self, model):
        assert model.regress_keypoints(torch.zeros(2, 1609, 3)).shape == (2, 21, 3)
        assert model.regress_keypoints(torch.zeros(1609, 3, dtype=torch.float16)).dtype == torch.float16

    def test_bad_input(self, model):
        with pytest.raises(ShapeError, match="vertices"):
            model.regress_keypoints(torch.zeros(2, 778, 3))

    def test_translation_equivariant(self, model):
        v = model(_random_pose(2)).vertices
        shift = torch.tensor([0.1, -0.2, 0.5], dtype=torch.float64)
        torch.testing.assert_close(
            model.regress_keypoints(v + shift), model.regress_keypoints(v) + shift, atol=1e-12, rtol=0
        )

    def test_held_out_error(self, template, model):
        # posed hands the regressor was not fitted on (different seed): stated bounds
        g = torch.Generator().manual_seed(12345)
        pose = sample_hand_pose(template, 300, g).pose
        out = model(pose, sample_hand_shape(template, 300, g))
        err = (model.regress_keypoints(out.vertices) - out.keypoints).norm(dim=-1) * 1000  # mm
        assert float(err.mean()) < 1.0
        assert float(err.max()) < 7.0
        assert float(err[:, [4, 8, 12, 16, 20]].max()) < 1e-9  # tips are exact
