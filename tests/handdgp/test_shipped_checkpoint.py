"""The trained checkpoint shipped with the package, and how names resolve to it."""

import json
from importlib import resources

import pytest
import torch

from handdgp.config import ExperimentConfig
from handdgp.loading import (
    default_model_factory,
    load_model,
    resolve_checkpoint,
    shipped_checkpoints,
)

FOLDER = resources.files("handdgp") / "checkpoints"


def test_full_is_shipped_small_and_loads_without_running_code():
    assert "full" in shipped_checkpoints()
    path = resolve_checkpoint("full")
    assert path.stat().st_size < 25 * 2**20
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert set(state) == {"model", "config", "step"}
    assert ExperimentConfig.from_dict(state["config"]).name == "full"


def test_recipe_matches_the_checkpoint():
    recipe = json.loads((FOLDER / "full.json").read_text())
    loaded = load_model("full")
    assert recipe["experiment"] == loaded.config.name == "full"
    assert recipe["steps"] == recipe["stages"][-1]["steps"] == loaded.step
    assert recipe["total_steps"] == sum(stage["steps"] for stage in recipe["stages"])
    assert recipe["batch_size"] == loaded.config.train.batch_size
    train_data, test_data = recipe["data"]["train"], recipe["data"]["test"]
    assert train_data.startswith("handdgp make-data") and test_data.startswith("handdgp make-data")
    # The held-out set has its own seed and the default distribution (no narrowed flags).
    seeds = [command.split("--seed ")[1].split()[0] for command in (train_data, test_data)]
    assert seeds[0] != seeds[1]
    assert "--depth-range" not in train_data + test_data
    for stage in recipe["stages"]:
        commands = stage["train"] if isinstance(stage["train"], list) else [stage["train"]]
        assert all(command.startswith("handdgp train full") for command in commands)
    assert loaded.config.data.focal_from_box and loaded.config.net.decoder == "hand_model"
    assert not loaded.model.training
    torch.manual_seed(0)
    fresh, _ = default_model_factory(loaded.config)
    trained = dict(loaded.model.named_parameters())
    moved = [name for name, p in fresh.named_parameters() if (p - trained[name]).abs().max() > 1e-3]
    assert len(moved) > 0.9 * len(trained)  # trained weights, not an initialisation
    image = torch.rand(2, 3, loaded.config.net.image_size, loaded.config.net.image_size)
    k = torch.tensor([[160.0, 0.0, 63.5], [0.0, 160.0, 63.5], [0.0, 0.0, 1.0]]).expand(2, 3, 3)
    with torch.no_grad():
        out = loaded.model(image, k)
    assert out.vertices.shape == (2, 1609, 3)
    assert out.translation.isfinite().all()


def test_an_existing_path_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "full").write_bytes(b"")
    assert resolve_checkpoint("full").resolve() == (tmp_path / "full").resolve()


def test_unknown_name_lists_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match=r"no shipped checkpoint of that name \(shipped: .*full"):
        resolve_checkpoint("no-such-model")
