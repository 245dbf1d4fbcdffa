"""Building a trained model and a held-out data set from a checkpoint.

Evaluation and prediction never construct networks or data sets themselves: they
call a *model factory* and a *data-set factory*, so tests (and other templates or
data sources) can inject their own. The defaults below are the only place that
knows which template and which data reader a checkpoint goes with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from handdgp.config import ExperimentConfig
from handdgp.train import load_checkpoint

__all__ = [
    "DatasetFactory",
    "LoadedModel",
    "ModelFactory",
    "default_dataset_factory",
    "default_model_factory",
    "held_out_config",
    "load_model",
    "resolve_checkpoint",
    "shipped_checkpoints",
]

#: Builds an untrained model for an experiment and returns it with the mesh faces
#: `(F, 3)` int64 of its template.
ModelFactory = Callable[[ExperimentConfig], tuple[nn.Module, Tensor]]

#: Builds the held-out data set stored in a directory for an experiment. Its items
#: are dicts with :data:`handdgp.objective.BATCH_KEYS` (crops made as the
#: experiment's ``data`` section says).
DatasetFactory = Callable[[Path, ExperimentConfig], Dataset]


class LoadedModel(NamedTuple):
    """Result of :func:`load_model`.

    Attributes:
        model: the network in eval mode, on the requested device.
        faces: `(F, 3)` int64 triangles of the template mesh.
        config: the experiment the checkpoint was trained with.
        step: optimisation steps done when the checkpoint was written.
    """

    model: nn.Module
    faces: Tensor
    config: ExperimentConfig
    step: int


def default_model_factory(config: ExperimentConfig) -> tuple[nn.Module, Tensor]:
    """The HandDGP network on the packaged hand template (``handdgp.hand``).

    The mesh decoder uses the first ``len(config.net.decoder_channels) + 1`` levels
    of the template's mesh hierarchy, finest first.

    Args:
        config: the experiment; only ``config.net`` is used.

    Returns:
        ``(model, faces)``: an untrained :class:`~handdgp.net.HandDGPNet` and the
        template's `(F, 3)` faces.

    Raises:
        RuntimeError: if the hand template is not installed.
    """
    try:
        from handdgp.hand import load_template
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise RuntimeError(
            "the hand template (handdgp.hand) is not available: pass model_factory="
        ) from error
    from handdgp.net import HandDGPNet

    template = load_template()
    hierarchy = template.hierarchy
    levels = len(config.net.decoder_channels) + 1
    if hierarchy is None or hierarchy.num_levels < levels:
        raise RuntimeError(
            f"the template's mesh hierarchy has fewer than the {levels} levels the decoder needs"
        )
    spirals = list(hierarchy.spirals[:levels])
    upsampling = [hierarchy.up_matrix(level) for level in range(levels - 1)]
    model = HandDGPNet(config.net, template.joint_regressor, spirals, upsampling, template)
    return model, template.faces


def default_dataset_factory(path: Path, config: ExperimentConfig) -> Dataset:
    """Rectified crops of the synthetic set stored under ``path`` (FreiHAND layout).

    A :class:`~handdgp.data.CropDataset` over :class:`~handdgp.data.SyntheticHandDataset`,
    set up from ``config.data`` (rectification, canonical focal, box scale, mode,
    augmentation) and ``config.net.image_size``, seeded by ``config.train.seed``.
    """
    from handdgp.data import CropDataset, SyntheticHandDataset

    samples = SyntheticHandDataset(path, load_masks=False)
    return CropDataset(
        samples,
        image_size=config.net.image_size,
        rectify=config.data.rectify,
        canonical_focal=None if config.data.focal_from_box else config.data.canonical_focal,
        box_scale=config.data.box_scale,
        mode=config.data.mode,
        augment=config.data.augment,
        seed=config.train.seed,
    )


def held_out_config(config: ExperimentConfig) -> ExperimentConfig:
    """The experiment as evaluation and prediction see it: no augmentation.

    Example:
        >>> held_out_config(ExperimentConfig()).data.augment
        False
    """
    return dataclasses.replace(config, data=dataclasses.replace(config.data, augment=False))


def shipped_checkpoints() -> list[str]:
    """Names of the checkpoints installed with the package (``handdgp/checkpoints/*.pt``).

    Example:
        >>> "full" in shipped_checkpoints()
        True
    """
    folder = resources.files("handdgp") / "checkpoints"
    return sorted(p.name[: -len(".pt")] for p in folder.iterdir() if p.name.endswith(".pt"))


def resolve_checkpoint(checkpoint: str | Path) -> Path:
    """A checkpoint file, or the name of a shipped one (see :func:`shipped_checkpoints`).

    An existing path wins over a shipped name.

    Raises:
        FileNotFoundError: if it is neither.

    Example:
        >>> resolve_checkpoint("full").name
        'full.pt'
    """
    path = Path(checkpoint)
    if path.exists():
        return path
    if path.suffix == "" and path.name in shipped_checkpoints():
        return Path(str(resources.files("handdgp") / "checkpoints" / f"{path.name}.pt"))
    raise FileNotFoundError(
        f"checkpoint: no file {str(checkpoint)!r} and no shipped checkpoint of that name "
        f"(shipped: {', '.join(shipped_checkpoints()) or 'none'})"
    )


def load_model(
    path: str | Path,
    *,
    model_factory: ModelFactory | None = None,
    device: str | torch.device = "cpu",
) -> LoadedModel:
    """Rebuild a trained model from a checkpoint (``{"model", "config", "step"}``).

    The checkpoint is read with ``weights_only=True`` (no code runs), the model is
    built by ``model_factory`` from the stored configuration, and its weights are
    loaded strictly.

    Args:
        path: a ``checkpoint.pt`` or ``model.pt`` written by :func:`handdgp.train.train`,
            or the name of a shipped checkpoint (``"full"``, see :func:`resolve_checkpoint`).
        model_factory: see :data:`ModelFactory`; default :func:`default_model_factory`.
        device: where the model goes.

    Returns:
        A :class:`LoadedModel` with the model in eval mode.

    Example:
        >>> import tempfile, torch
        >>> from torch import nn
        >>> config = ExperimentConfig(name="tiny")
        >>> factory = lambda cfg: (nn.Linear(2, 2), torch.zeros(0, 3, dtype=torch.long))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     state = {"model": factory(config)[0].state_dict(), "config": config.to_dict(), "step": 7}
        ...     torch.save(state, f"{tmp}/model.pt")
        ...     loaded = load_model(f"{tmp}/model.pt", model_factory=factory)
        >>> loaded.config.name, loaded.step, loaded.model.training
        ('tiny', 7, False)
    """
    state = load_checkpoint(resolve_checkpoint(path), map_location="cpu")
    config = ExperimentConfig.from_dict(state["config"])
    model, faces = (model_factory or default_model_factory)(config)
    model.load_state_dict(state["model"])
    model = model.to(device).eval()
    return LoadedModel(model, faces, config, int(state.get("step", 0)))
