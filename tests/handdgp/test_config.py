"""Experiment configs: every shipped experiment loads and means what its name says."""

from importlib import resources

import pytest

from handdgp.config import ExperimentConfig, load_config

CONFIGS = resources.files("handdgp") / "configs"


def shipped(name):
    return load_config(CONFIGS / f"{name}.toml")


@pytest.mark.parametrize("name", ["full", "A3", "A4", "B2", "B4", "B5"])
def test_shipped_configs_load_and_round_trip(name):
    config = shipped(name)
    assert config.name == name and config.description
    assert ExperimentConfig.from_dict(config.to_dict()) == config


def test_ablations_differ_from_full_in_exactly_their_factor():
    full, a3, a4 = shipped("full"), shipped("A3"), shipped("A4")
    assert full.data.rectify and full.net.learned_weights and full.loss.camera_space
    assert not a3.net.learned_weights and a3.data == full.data
    assert not a4.data.rectify and a4.net == full.net
    b2, b4, b5 = shipped("B2"), shipped("B4"), shipped("B5")
    assert not b2.loss.camera_space and b2.net.positioning == "dgp"
    assert not b4.loss.camera_space and b4.net.positioning == "refine"
    assert b5.net.positioning == "root_regression" and b5.loss.translation > 0


def test_overrides_and_unknown_keys(tmp_path):
    config = load_config(CONFIGS / "full.toml", {"train.epochs": 3, "net.width": 0.25})
    assert config.train.epochs == 3 and config.net.width == 0.25
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[train]\nepoch = 3\n')
    with pytest.raises(ValueError, match=r"unknown keys in \[train\]: \['epoch'\]"):
        load_config(bad)
