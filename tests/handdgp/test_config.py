"""Experiment configs: every shipped experiment loads and means what its name says."""

from importlib import resources

import pytest

from handdgp.config import ConfigError, ExperimentConfig, load_config

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


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("net.width", 1e6, r"net\.width = 1000000\.0, expected a number in \(0, 8\]"),
        ("net.width", float("nan"), "net.width = nan"),
        ("net.image_size", 10**9, r"net\.image_size = 1000000000, expected an integer in \[8, 2048\]"),
        ("net.image_size", 64.5, "expected an integer"),
        ("net.depth", [2, 2, 2], r"net\.depth = \(2, 2, 2\), expected 4 integers"),
        ("net.decoder_channels", [10**9], "net.decoder_channels"),
        ("net.positioning", "magic", "expected one of"),
        ("train.batch_size", 0, "train.batch_size = 0"),
        ("train.batch_size", True, "train.batch_size = True"),
        ("train.lr", "fast", "train.lr = 'fast'"),
        ("train.max_steps", -1, "train.max_steps"),
        ("data.augment", "yes", "expected true or false"),
        ("loss.vertex", -1.0, "loss.vertex = -1.0"),
        ("loss.camera_space_ramp", [0.5, 0.1], "start <= end"),
    ],
)
def test_values_are_range_checked(key, value, message):
    raw = ExperimentConfig().to_dict()
    section, name = key.split(".")
    raw[section][name] = value
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig.from_dict(raw)


def test_bad_structure_is_a_config_error():
    with pytest.raises(ConfigError, match="expected a table of sections"):
        ExperimentConfig.from_dict([1, 2])
    with pytest.raises(ConfigError, match=r"\[net\] is 3"):
        ExperimentConfig.from_dict({"net": 3})


def test_checkpoint_config_checked_before_the_model_is_built(tmp_path):
    import torch

    from handdgp.loading import load_model

    config = ExperimentConfig().to_dict()
    config["net"]["width"] = 1e6
    torch.save({"model": {}, "config": config, "step": 1}, tmp_path / "model.pt")

    def factory(cfg):
        pytest.fail("the model was built")

    with pytest.raises(ConfigError, match=r"net\.width"):
        load_model(tmp_path / "model.pt", model_factory=factory)
