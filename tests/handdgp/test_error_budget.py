"""Tests for reference_model/scripts/error_budget.py (where the camera-space error comes from)."""

import torch

from tests._scripts import load_script

SCRIPT = "reference_model/scripts/error_budget.py"


def straight_hand(bone: float) -> torch.Tensor:
    """`(1, 21, 3)`: five straight fingers of four ``bone``-long bones from the wrist."""
    points = torch.zeros(1, 21, 3)
    for finger in range(5):
        for joint in range(4):
            points[0, 1 + 4 * finger + joint] = torch.tensor([finger * 0.01, (joint + 1) * bone, 0.0])
    return points


def test_hand_size_is_the_summed_bone_length():
    script = load_script(SCRIPT)
    # Each finger's first bone runs from the wrist (origin) to (x, bone); the others are `bone`.
    hand = straight_hand(0.02)
    first = torch.tensor([(f * 0.01) ** 2 + 0.02**2 for f in range(5)]).sqrt().sum()
    assert torch.allclose(script.hand_size(hand), first + 15 * 0.02)
    assert torch.allclose(script.hand_size(2 * hand), 2 * script.hand_size(hand))


def test_true_inputs_give_zero_error_and_a_scaled_shape_does_not():
    script = load_script(SCRIPT)
    relative = straight_hand(0.03)
    truth = relative + torch.tensor([0.05, -0.02, 0.6])
    K = torch.tensor([[[500.0, 0.0, 64.0], [0.0, 500.0, 64.0], [0.0, 0.0, 1.0]]])
    uv = truth @ K[0].T
    uv = uv[..., :2] / uv[..., 2:]
    ones = torch.ones(1, 21)
    assert script.cs_error(relative, uv, K, ones, truth).item() < 1e-3  # mm
    # A hand 10 % too large is placed 10 % too far: about 10 % of 0.6 m.
    assert 50 < script.cs_error(1.1 * relative, uv, K, ones, truth).item() < 70


def test_magnification_is_the_crop_to_original_scale():
    script = load_script(SCRIPT)
    crop = torch.rand(2, 21, 2) * 128
    scale_then_shift = torch.tensor([[3.0, 0.0, 40.0], [0.0, 3.0, -7.0], [0.0, 0.0, 1.0]])
    shift = torch.tensor([[1.0, 0.0, 500.0], [0.0, 1.0, 20.0], [0.0, 0.0, 1.0]])
    to_original = torch.stack((scale_then_shift, shift))
    assert torch.allclose(script.magnification(to_original, crop), torch.tensor([3.0, 1.0]))


def test_2d_budget_reports_the_original_pixel_error(capsys):
    script = load_script(SCRIPT)
    true_2d = torch.rand(4, 21, 2) * 128
    pred_2d = true_2d + torch.tensor([1.0, 0.0])  # every keypoint 1 crop px off
    to_original = torch.diag(torch.tensor([2.0, 2.0, 1.0])).expand(4, 3, 3)
    script.print_2d_budget(pred_2d, true_2d, to_original, 128)
    out = capsys.readouterr().out
    assert "1.00 crop px mean" in out and "2.00 original px mean" in out
    assert "within 4.00 crop px" in out  # 8 original px at a magnification of 2
