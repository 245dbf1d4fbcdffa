"""Experiment configuration: one TOML file per experiment (see ``configs/``)."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handdgp.net.model import NetConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["DataConfig", "ExperimentConfig", "LossConfig", "TrainConfig", "load_config"]


@dataclass
class DataConfig:
    """Where the data is and how crops are made.

    Attributes:
        train, test: data-set directories (FreiHAND layout), relative to the
            config's working directory.
        rectify: rectify to a canonical camera (the paper); False is ablation A4
            (a tight crop around the box with the crop's own intrinsics).
        canonical_focal: pixels, focal length of the canonical camera at
            ``image_size`` (see the reference model README for the choice); used
            only with ``focal_from_box = false``.
        focal_from_box: take the crop's scale from the hand's box (the box fills
            the crop; the focal length varies per image and goes to the solver)
            instead of a fixed canonical focal. Hands then fill the crop at any
            depth, which a fixed focal cannot give over 0.3-1.0 m.
        box_scale: crop side / box side for the A4 crop (MobRecon uses 1.3).
        mode: rectification mode, ``"perspective"`` (a virtual rotation puts the hand
            on the optical axis) or ``"affine"`` (the paper's scale and shift).
        augment: colour, scale and in-plane rotation augmentation when training.
        max_test_samples: cap on the held-out samples used by periodic evaluation.
    """

    train: str = "data/synthetic/train"
    test: str = "data/synthetic/test"
    rectify: bool = True
    canonical_focal: float = 160.0
    focal_from_box: bool = True
    box_scale: float = 1.3
    mode: str = "perspective"
    augment: bool = True
    max_test_samples: int = 256


@dataclass
class LossConfig:
    """Loss weights. Relative terms always apply; camera-space terms only when > 0.

    ``camera_space_ramp``: fractions of the run between which the camera-space
    terms are ramped in (see :meth:`camera_space_scale`).

    ``pose`` weighs the squared error of the decoder's joint rotation matrices
    against the data's (when the data has them): a direct target for each joint,
    whatever the error of the global orientation.

    Units: vertices in 0.2 m units (MobRecon), 2D in crop-size units, translation
    in metres, the normal loss is dimensionless, the heat-map loss in nats.
    """

    vertex: float = 1.0
    keypoint3d: float = 1.0
    pose: float = 1.0
    keypoint2d: float = 1.0
    heatmap: float = 0.5
    edge: float = 1.0
    normal: float = 0.1
    translation: float = 1.0
    consistency: float = 0.1
    vertex2d: float = 0.1
    camera_space_ramp: tuple[float, float] = (0.4, 0.7)

    def camera_space_scale(self, progress: float) -> float:
        """Factor on the camera-space terms at ``progress`` (0 to 1) of the run.

        Zero before ``camera_space_ramp[0]``, one after ``camera_space_ramp[1]``,
        linear between. Camera-space losses from a random network are thousands
        of times the relative ones, and their first gradients inflate Adam's
        second-moment estimates so that the relative terms then barely learn
        (measured in the 64-sample overfit run).

        Example:
            >>> LossConfig(camera_space_ramp=(0.0, 0.5)).camera_space_scale(0.25)
            0.5
        """
        start, end = self.camera_space_ramp
        if progress >= end:
            return 1.0
        if progress <= start:
            return 0.0
        return (progress - start) / (end - start)

    @property
    def camera_space(self) -> bool:
        return self.translation > 0 or self.consistency > 0 or self.vertex2d > 0


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping.

    The learning rate rises linearly over ``warmup_steps`` and then follows a
    cosine from ``lr`` to zero at the last step. ``grad_clip`` bounds the global
    gradient norm (0: no clipping). ``init_from`` names a checkpoint whose model
    weights start a new run (a training *stage*); a run directory that already
    holds a checkpoint resumes from it instead.
    """

    seed: int = 0
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 300
    grad_clip: float = 10.0
    init_from: str = ""
    weight_decay: float = 0.0
    num_workers: int = 0
    eval_every: int = 500
    checkpoint_every: int = 200
    max_steps: int | None = None
    amp: bool = False
    device: str = "cpu"


@dataclass
class ExperimentConfig:
    """A whole experiment: ``name`` plus the four sections."""

    name: str = "full"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    net: NetConfig = field(default_factory=NetConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ExperimentConfig:
        sections = {"data": DataConfig, "net": NetConfig, "loss": LossConfig, "train": TrainConfig}
        unknown = set(raw) - set(sections) - {"name", "description"}
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        kwargs: dict[str, Any] = {k: raw[k] for k in ("name", "description") if k in raw}
        for key, section in sections.items():
            values = dict(raw.get(key, {}))
            names = {f.name for f in dataclasses.fields(section)}
            bad = set(values) - names
            if bad:
                raise ValueError(f"unknown keys in [{key}]: {sorted(bad)}")
            for f in dataclasses.fields(section):
                if f.name in values and isinstance(values[f.name], list):
                    values[f.name] = tuple(values[f.name])
            kwargs[key] = section(**values)
        return cls(**kwargs)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Read a TOML experiment file; ``overrides`` maps ``"section.key"`` to a value."""
    with open(path, "rb") as handle:
        raw = tomllib.load(handle)
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.rpartition(".")
        target = raw.setdefault(section, {}) if section else raw
        target[key] = value
    return ExperimentConfig.from_dict(raw)
