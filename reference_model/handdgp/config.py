"""Experiment configuration: one TOML file per experiment (see ``configs/``).

Every value read from a file or a checkpoint is checked against :data:`LIMITS`
(type and range) before anything is built, so a damaged or hostile config
(``net.width = 1e6``) is a :class:`ConfigError`, not an impossible allocation.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handdgp.net.model import DECODERS, POSITIONING, NetConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "LIMITS",
    "ConfigError",
    "DataConfig",
    "ExperimentConfig",
    "LossConfig",
    "TrainConfig",
    "load_config",
]


class ConfigError(ValueError):
    """A config value of the wrong type or out of range; names the key, expected and actual."""


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
    pose: float = 10.0
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
    holds a checkpoint resumes from it instead. ``ema_decay`` > 0 keeps an
    exponential moving average of the weights (and BatchNorm statistics), updated
    after every step with that decay; evaluations and ``model.pt`` then use the
    average, while ``checkpoint.pt`` holds both (0: no average).
    """

    seed: int = 0
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 300
    grad_clip: float = 10.0
    init_from: str = ""
    weight_decay: float = 0.0
    ema_decay: float = 0.0
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
        """Build and check a config (see :data:`LIMITS`); raises :class:`ConfigError`."""
        sections = {"data": DataConfig, "net": NetConfig, "loss": LossConfig, "train": TrainConfig}
        if not isinstance(raw, dict):
            raise ConfigError(f"config: expected a table of sections, got {type(raw).__name__}")
        unknown = set(raw) - set(sections) - {"name", "description"}
        if unknown:
            raise ConfigError(f"unknown config keys: {sorted(unknown)}")
        kwargs: dict[str, Any] = {k: raw[k] for k in ("name", "description") if k in raw}
        for key, section in sections.items():
            if not isinstance(raw.get(key, {}), dict):
                raise ConfigError(f"config: [{key}] is {raw[key]!r}, expected a table")
            values = dict(raw.get(key, {}))
            names = {f.name for f in dataclasses.fields(section)}
            bad = set(values) - names
            if bad:
                raise ConfigError(f"unknown keys in [{key}]: {sorted(bad)}")
            for f in dataclasses.fields(section):
                if f.name in values and isinstance(values[f.name], list):
                    values[f.name] = tuple(values[f.name])
            for name, value in values.items():
                _check_value(f"{key}.{name}", value)
            kwargs[key] = section(**values)
        for name in ("name", "description"):
            if name in kwargs and not isinstance(kwargs[name], str):
                raise ConfigError(f"config: {name} = {kwargs[name]!r}, expected a string")
        ramp = kwargs["loss"].camera_space_ramp if "loss" in kwargs else (0.0, 1.0)
        if ramp[0] > ramp[1]:
            raise ConfigError(f"config: loss.camera_space_ramp = {list(ramp)}, expected start <= end")
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


_WEIGHT = ("number", 0.0, 1e6)
#: What each config value may be: ``(kind, low, high)`` for numbers (inclusive; an
#: exclusive low is written as ``("positive", 0, high)``), ``("choice", options)``,
#: ``("bool",)``, ``("str",)``, ``("ints", count or None, low, high)`` for integer
#: lists, ``("pair", low, high)`` for an ordered number pair, or None for free-form.
LIMITS: dict[str, tuple | None] = {
    "data.train": ("str",),
    "data.test": ("str",),
    "data.rectify": ("bool",),
    "data.canonical_focal": ("positive", 0.0, 1e5),
    "data.focal_from_box": ("bool",),
    "data.box_scale": ("positive", 0.0, 10.0),
    "data.mode": ("choice", ("perspective", "affine")),
    "data.augment": ("bool",),
    "data.max_test_samples": ("int", 1, 10**8),
    "net.image_size": ("int", 8, 2048),
    "net.width": ("positive", 0.0, 8.0),
    "net.depth": ("ints", 4, 1, 64),
    "net.keypoint_head": ("choice", ("heatmap", "regression")),
    "net.keypoint_stride": ("choice", (4, 8)),
    "net.keypoint_context": ("bool",),
    "net.decoder_channels": ("ints", None, 1, 4096),
    "net.learned_weights": ("bool",),
    "net.positioning": ("choice", POSITIONING),
    "net.decoder": ("choice", DECODERS),
    "net.extra": None,
    **{
        f"loss.{name}": _WEIGHT
        for name in (
            "vertex", "keypoint3d", "pose", "keypoint2d", "heatmap", "edge", "normal",
            "translation", "consistency", "vertex2d",
        )
    },
    "loss.camera_space_ramp": ("pair", 0.0, 1.0),
    "train.seed": ("int", 0, 2**63 - 1),
    "train.epochs": ("int", 1, 10**6),
    "train.batch_size": ("int", 1, 65536),
    "train.lr": ("positive", 0.0, 10.0),
    "train.warmup_steps": ("int", 0, 10**9),
    "train.grad_clip": ("number", 0.0, 1e9),
    "train.init_from": ("str",),
    "train.weight_decay": ("number", 0.0, 10.0),
    "train.ema_decay": ("number", 0.0, 0.99999),
    "train.num_workers": ("int", 0, 256),
    "train.eval_every": ("int", 1, 10**9),
    "train.checkpoint_every": ("int", 1, 10**9),
    "train.max_steps": ("int", 1, 10**12),
    "train.amp": ("bool",),
    "train.device": ("str",),
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_value(key: str, value: Any) -> None:
    """Raise :class:`ConfigError` unless ``value`` is allowed for ``key`` (see :data:`LIMITS`).

    Example:
        >>> _check_value("net.width", 1e6)
        Traceback (most recent call last):
        ...
        handdgp.config.ConfigError: config: net.width = 1000000.0, expected a number in (0, 8]
    """
    limit = LIMITS[key]
    if limit is None or (key == "train.max_steps" and value is None):
        return
    kind, *bounds = limit
    if kind in ("number", "positive", "int"):
        low, high = bounds
        integral = kind != "int" or (isinstance(value, int) and not isinstance(value, bool))
        ok = _is_number(value) and integral and (isinstance(value, int) or math.isfinite(value))
        ok = ok and (value > low if kind == "positive" else value >= low) and value <= high
        what = "an integer" if kind == "int" else "a number"
        opening = "(" if kind == "positive" else "["
        expected = f"{what} in {opening}{low:g}, {high:g}]"
    elif kind == "choice":
        ok, expected = value in bounds[0], f"one of {list(bounds[0])}"
    elif kind == "bool":
        ok, expected = isinstance(value, bool), "true or false"
    elif kind == "str":
        ok, expected = isinstance(value, str), "a string"
    elif kind == "ints":
        count, low, high = bounds
        ok = isinstance(value, (list, tuple)) and len(value) >= 1
        ok = ok and (count is None or len(value) == count)
        ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in value)
        size = f"{count}" if count is not None else "a list of"
        expected = f"{size} integers in [{low}, {high}]"
    else:  # pair
        low, high = bounds
        ok = isinstance(value, (list, tuple)) and len(value) == 2
        ok = ok and all(_is_number(v) and math.isfinite(v) and low <= v <= high for v in value)
        expected = f"two numbers in [{low:g}, {high:g}]"
    if not ok:
        raise ConfigError(f"config: {key} = {value!r}, expected {expected}")
