"""The hand-model decoder: 6D rotations, skinning from rotations, the mean hand at start."""

import pytest
import torch
from kornia.geometry.conversions import axis_angle_to_rotation_matrix

from handdgp.hand import HandModel, load_template
from handdgp.net.decoder import HandModelDecoder, rotation_6d_to_matrix
from handdgp.net.positioning import place_hand


@pytest.fixture(scope="module")
def template():
    return load_template()


class TestRotation6d:
    def test_any_input_gives_a_rotation_and_a_rotation_round_trips(self):
        torch.manual_seed(0)
        rot = rotation_6d_to_matrix(torch.randn(50, 6, dtype=torch.float64))
        eye = torch.eye(3, dtype=torch.float64).expand(50, 3, 3)
        torch.testing.assert_close(rot @ rot.transpose(-1, -2), eye)
        torch.testing.assert_close(torch.linalg.det(rot), torch.ones(50, dtype=torch.float64))
        # The 6D form of a rotation is its first two columns.
        d6 = torch.cat((rot[..., :, 0], rot[..., :, 1]), dim=-1)
        torch.testing.assert_close(rotation_6d_to_matrix(d6), rot)


class TestFromRotations:
    def test_equals_axis_angle_forward_with_shape(self, template):
        model = HandModel(template).double()
        torch.manual_seed(1)
        pose = 0.3 * torch.randn(4, model.num_joints, 3, dtype=torch.float64)
        shape = torch.randn(4, model.num_shape, dtype=torch.float64)
        a = model(pose, shape)
        b = model.from_rotations(axis_angle_to_rotation_matrix(pose), shape)
        torch.testing.assert_close(a.vertices, b.vertices)
        torch.testing.assert_close(a.keypoints, b.keypoints)

    def test_bad_shape_names_the_argument(self, template):
        model = HandModel(template)
        with pytest.raises(ValueError, match="rotations"):
            model.from_rotations(torch.zeros(2, model.num_joints, 3))


class TestHandModelDecoder:
    def make(self, template):
        torch.manual_seed(0)
        model = HandModel(template)
        return HandModelDecoder(model, template.shape_mean, template.shape_std, 16, 32, 21, 64)

    def test_starts_at_the_mean_rest_hand_and_learns(self, template):
        decoder = self.make(template)
        fine, coarse = torch.randn(2, 16, 8, 8), torch.randn(2, 32, 2, 2)
        keypoints2d = torch.rand(2, 21, 2) * 64
        vertices, keypoints, rotations = decoder(fine, coarse, keypoints2d)
        assert rotations.shape == (2, template.rest_joints.shape[0], 3, 3)
        rest = HandModel(template)(torch.zeros(1, template.rest_joints.shape[0], 3), template.shape_mean[None])
        root = rest.keypoints[:, :1]
        torch.testing.assert_close(vertices, (rest.vertices - root).expand(2, -1, -1), atol=1e-6, rtol=0)
        torch.testing.assert_close(keypoints[:, 0], torch.zeros(2, 3))
        target = vertices.detach() + 0.01
        loss = (vertices - target).abs().mean()
        loss.backward()
        assert decoder.mlp[-1].weight.grad.abs().sum() > 0


class TestPlaceHand:
    def test_root_regression_unprojects_the_root_and_unknown_is_refused(self):
        K = torch.tensor([[[100.0, 0.0, 16.0], [0.0, 100.0, 16.0], [0.0, 0.0, 1.0]]])
        kp2d = torch.tensor([[[26.0, 6.0]]]).expand(1, 3, 2)
        kp3d = torch.zeros(1, 3, 3)
        t, valid = place_hand(kp3d, kp2d, K, torch.ones(1, 3), "root_regression", torch.tensor([0.5]))
        torch.testing.assert_close(t, torch.tensor([[0.05, -0.05, 0.5]]))
        assert bool(valid)
        with pytest.raises(ValueError, match="root_depth"):
            place_hand(kp3d, kp2d, K, torch.ones(1, 3), "root_regression")
        with pytest.raises(ValueError, match="positioning"):
            place_hand(kp3d, kp2d, K, torch.ones(1, 3), "pnp")


def test_crops_carry_the_hand_model_targets(synthetic_set):
    from handdgp.config import ExperimentConfig
    from handdgp.loading import default_dataset_factory

    config = ExperimentConfig()
    config.net.image_size = 64
    item = default_dataset_factory(synthetic_set, config)[(3, 1)]
    hand = HandModel().double().from_rotations(
        item["joint_rotations"][None].double(), item["shape"][None].double()
    )
    predicted = hand.vertices[0] - hand.keypoints[0, :1]
    truth = item["vertices"].double() - item["keypoints3d"][:1].double()
    torch.testing.assert_close(predicted, truth, atol=1e-5, rtol=0)
