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
