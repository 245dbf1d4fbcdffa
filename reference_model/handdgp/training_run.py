"""``handdgp train``: resolve a config, build the model and data, train, evaluate."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from handdgp.config import ExperimentConfig, load_config
from handdgp.loading import (
    DatasetFactory,
    ModelFactory,
    default_dataset_factory,
    default_model_factory,
    held_out_config,
)
from handdgp.train import TrainingComponents, train

__all__ = ["resolve_config", "run_training"]


def resolve_config(config: str | Path, overrides: Mapping[str, Any] | None = None) -> ExperimentConfig:
    """A config file, or the name of a shipped experiment (``full``, ``A3``, ...)."""
    path = Path(config)
    if not path.exists() and path.suffix == "":
        shipped = resources.files("handdgp") / "configs" / f"{path.name}.toml"
        if shipped.is_file():
            path = Path(str(shipped))
    if not path.exists():
        raise FileNotFoundError(f"config: no file {config!s} and no shipped experiment of that name")
    return load_config(path, dict(overrides or {}))


def run_training(
    config: str | Path | ExperimentConfig,
    overrides: Mapping[str, Any] | None = None,
    *,
    run_dir: str | Path | None = None,
    model_factory: ModelFactory | None = None,
    dataset_factory: DatasetFactory | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train an experiment end to end, evaluating on its held-out set as it goes.

    Args:
        config: a TOML path, a shipped experiment name, or a config object.
        overrides: ``{"section.key": value}`` applied to a file config.
        run_dir: where to write (default ``runs/<name>``); resumes if it holds a checkpoint.
        model_factory, dataset_factory: see :mod:`handdgp.loading` (defaults: the
            packaged hand template and the synthetic-data crops).
        progress: show a progress bar.
        stop_after: stop after this many total steps (a multiple of
            ``train.checkpoint_every`` leaves a checkpoint there); the learning-rate
            schedule stays that of the whole run.

    Returns:
        :func:`handdgp.train.train`'s summary plus ``run_dir``.
    """
    from handdgp.evaluate import evaluate_model

    if not isinstance(config, ExperimentConfig):
        config = resolve_config(config, overrides)
    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / config.name
    torch.manual_seed(config.train.seed)
    model, faces = (model_factory or default_model_factory)(config)
    make_dataset = dataset_factory or default_dataset_factory
    # The factory augments when config.data.augment says so: never for the held-out set.
    held_out = held_out_config(config)
    train_set = make_dataset(Path(config.data.train), config)
    test_set = make_dataset(Path(config.data.test), held_out)

    def evaluate(model: torch.nn.Module, dataset: Any) -> dict[str, float]:
        return evaluate_model(model, dataset, max_samples=config.data.max_test_samples)

    components = TrainingComponents(model, faces, train_set, test_set)
    summary = train(
        config, run_dir, components, evaluate=evaluate, progress=progress, stop_after=stop_after
    )
    return {**summary, "run_dir": str(run_dir)}
