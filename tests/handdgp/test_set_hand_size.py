"""Tests for reference_model/scripts/set_hand_size.py (a checkpoint fixed to the training set's mean hand size)."""

import json

import pytest
import torch

from handdgp.config import ExperimentConfig
from handdgp.hand.skeleton import hand_size
from handdgp.train import load_checkpoint
from tests._scripts import load_script

SCRIPT = "reference_model/scripts/set_hand_size.py"


@pytest.fixture
def training_set(tmp_path):
    keypoints = torch.randn(5, 21, 3, generator=torch.Generator().manual_seed(0)) * 0.05
    (tmp_path / "training_xyz.json").write_text(json.dumps(keypoints.tolist()))
    return tmp_path, float(hand_size(keypoints.double()).mean())


def test_writes_the_training_sets_mean_size_and_keeps_the_weights(tmp_path, training_set, capsys):
    directory, expected = training_set
    weights = {"layer.weight": torch.arange(4.0)}
    config = ExperimentConfig(name="tiny").to_dict()
    torch.save({"model": weights, "config": config, "step": 3}, tmp_path / "in.pt")
    load_script(SCRIPT).main(
        [str(tmp_path / "in.pt"), "--train", str(directory), "--out", str(tmp_path / "out.pt")]
    )
    state = load_checkpoint(tmp_path / "out.pt")
    assert state["config"]["net"]["hand_size"] == pytest.approx(expected, abs=1e-4)
    assert (
        ExperimentConfig.from_dict(state["config"]).net.hand_size
        == state["config"]["net"]["hand_size"]
    )
    assert (
        torch.equal(state["model"]["layer.weight"], weights["layer.weight"]) and state["step"] == 3
    )
    assert "net.hand_size" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "in.pt")["config"]["net"]["hand_size"] is None
