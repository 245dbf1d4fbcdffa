"""`handdgp train`: config resolution, overrides, and a toy end-to-end run."""

import pytest
import torch

from handdgp.cli import build_parser
from handdgp.training_run import resolve_config, run_training

from .toy import IndexedCrops, toy_hierarchy, toy_net


def test_shipped_names_and_overrides_resolve():
    config = resolve_config("A4", {"train.epochs": 2})
    assert config.name == "A4" and not config.data.rectify and config.train.epochs == 2
    with pytest.raises(FileNotFoundError, match="no shipped experiment"):
        resolve_config("Z9")


def test_cli_parses_train_arguments():
    args = build_parser().parse_args(["train", "full", "--set", "train.lr=0.01", "--no-progress"])
    assert args.overrides == [("train.lr", 0.01)] and args.no_progress


def test_toy_run_trains_evaluates_and_never_augments_the_held_out_set(tmp_path):
    seen = {}

    def model_factory(config):
        torch.manual_seed(0)
        return toy_net(), toy_hierarchy()[3]

    def dataset_factory(path, config):
        seen[path.name] = config.data.augment
        return IndexedCrops(size=8)

    config = resolve_config(
        "full",
        {
            "net.image_size": 32,
            "net.width": 0.125,
            "net.decoder_channels": [16, 8],
            "train.batch_size": 4,
            "train.epochs": 1,
            "train.eval_every": 2,
            "data.train": "train",
            "data.test": "test",
        },
    )
    summary = run_training(
        config,
        run_dir=tmp_path / "run",
        model_factory=model_factory,
        dataset_factory=dataset_factory,
        progress=False,
    )
    assert summary["steps"] == 2 and seen == {"train": True, "test": False}
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert '"eval"' in metrics and "cs_mje_mm" in metrics
    assert (tmp_path / "run" / "model.pt").exists()



def test_stop_after_ends_a_stage_at_a_checkpoint_and_a_rerun_goes_on(tmp_path, capsys):
    from handdgp import training_run

    def model_factory(config):
        torch.manual_seed(0)
        return toy_net(), toy_hierarchy()[3]

    def dataset_factory(path, config):
        return IndexedCrops(size=16)

    overrides = {
        "net.image_size": 32,
        "net.width": 0.125,
        "net.decoder_channels": [16, 8],
        "train.batch_size": 4,
        "train.epochs": 2,
        "train.checkpoint_every": 2,
        "train.eval_every": 100,
    }
    kwargs = dict(model_factory=model_factory, dataset_factory=dataset_factory, progress=False)
    args = build_parser().parse_args(["train", "full", "--stop-after", "4"])
    assert args.stop_after == 4
    first = training_run.run_training("full", overrides, run_dir=tmp_path, stop_after=4, **kwargs)
    assert first["steps"] == 4 and first["total_steps"] == 8
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 4
    assert not (tmp_path / "model.pt").exists()
    second = training_run.run_training("full", overrides, run_dir=tmp_path, **kwargs)
    assert second["steps"] == 8 and (tmp_path / "model.pt").exists()
