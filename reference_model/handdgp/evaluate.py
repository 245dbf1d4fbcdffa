"""Held-out evaluation: the HandDGP Table-1 errors, FreiHAND's AUC and F-scores, PCK plots.

:func:`evaluate_model` scores a model on a data set of crops (items with
:data:`handdgp.objective.BATCH_KEYS`); :func:`evaluate_checkpoints` does it for
several checkpoints and writes a Table-1-style markdown table, a JSON file and one
figure with every checkpoint's camera-space PCK curve.

The errors, all over every held-out sample (invalid positionings included, with the
finite fallback translation the solver returns; their share is reported):

- ``rs_*``: root-relative, both prediction and ground truth re-centred on their
  wrist keypoint, no other alignment (:func:`handdgp.errors.hand_errors`).
- ``pa_*``: after a similarity Procrustes alignment of each set, as FreiHAND's
  aligned errors. This is what the paper's Table 1 calls RS-MJE / RS-MVE.
- ``cs_*``: camera space, no alignment (the paper's CS-MJE / CS-MVE).

All of them, the PCK and the F-scores are invariant to a rotation applied to both
prediction and ground truth, so they are computed in the crops' camera frame: the
rectified camera differs from the original one by a rotation only.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from dgpgeom.metrics import FreiHANDEvaluator, FreiHANDResult, plot_pck
from handdgp.errors import hand_errors
from handdgp.inference import (
    check_positioning,
    check_turns,
    inference_mode,
    model_device,
    run_model,
)
from handdgp.loading import (
    DatasetFactory,
    ModelFactory,
    default_dataset_factory,
    held_out_config,
    load_model,
)
from handdgp.net.turned_views import DEFAULT_TURNS

__all__ = [
    "TABLE_COLUMNS",
    "CheckpointReport",
    "Evaluation",
    "evaluate_checkpoints",
    "evaluate_command",
    "evaluate_dataset",
    "evaluate_model",
    "format_table",
    "plot_pck_curves",
]

#: Columns of the results table: (header, metric key, decimals).
TABLE_COLUMNS = (
    ("RS-MJE (root-relative) ↓", "rs_mje_mm", 1),
    ("RS-MVE (root-relative) ↓", "rs_mve_mm", 1),
    ("CS-MJE ↓", "cs_mje_mm", 1),
    ("CS-MVE ↓", "cs_mve_mm", 1),
    ("PA-MJE (Procrustes) ↓", "pa_mje_mm", 1),
    ("2D (crop px) ↓", "kp2d_crop_px", 2),
    ("AUC (CS) ↑", "auc_cs", 3),
    ("F@5mm ↑", "f_al_score_5", 3),
    ("F@15mm ↑", "f_al_score_15", 3),
)


class Evaluation(NamedTuple):
    """Result of :func:`evaluate_dataset`.

    Attributes:
        metrics: plain floats, see :func:`evaluate_model`.
        freihand: the full :class:`~dgpgeom.metrics.FreiHANDResult` (PCK curves,
            ``scores.txt`` numbers) of the camera-space predictions.
    """

    metrics: dict[str, float]
    freihand: FreiHANDResult


def evaluate_dataset(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    positioning: str | None = None,
    max_samples: int | None = None,
    num_workers: int = 0,
    progress: bool = False,
    turns: Sequence[float] | None = None,
) -> Evaluation:
    """Score a model on held-out crops; like :func:`evaluate_model`, with the PCK curves.

    Args, Returns and Raises: as :func:`evaluate_model`, but the result is an
    :class:`Evaluation` ``(metrics, freihand)``.

    Example:
        >>> import torch
        >>> from handdgp.net import HandPrediction
        >>> data = [{"image": torch.zeros(3, 8, 8), "intrinsics": torch.eye(3),
        ...          "keypoints3d": torch.rand(21, 3) + 1.0, "vertices": torch.rand(30, 3) + 1.0}]
        >>> class Shifted(torch.nn.Module):  # the ground truth, 1 cm off in x
        ...     def forward(self, images, intrinsics):
        ...         kp, v = data[0]["keypoints3d"][None], data[0]["vertices"][None]
        ...         t = kp[:, 0] + torch.tensor([0.01, 0.0, 0.0])
        ...         rel_kp, rel_v = kp - kp[:, :1], v - kp[:, :1]
        ...         return HandPrediction(kp[..., :2], rel_v, rel_kp, torch.ones(1, 21), t,
        ...                               rel_v + t[:, None], rel_kp + t[:, None], torch.tensor([True]))
        >>> result = evaluate_dataset(Shifted(), data)
        >>> [round(result.metrics[k], 3) for k in ("cs_mje_mm", "rs_mje_mm", "pa_mje_mm")]
        [10.0, 0.0, 0.0]
        >>> result.freihand.pck_curves["xyz"].shape
        (100,)
    """
    check_positioning(positioning)
    check_turns(turns)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    if max_samples is not None and (not isinstance(max_samples, int) or max_samples < 1):
        raise ValueError(f"max_samples: expected None or a positive int, got {max_samples!r}")
    if device is not None:
        model = model.to(device)
    device = model_device(model)
    if max_samples is not None and max_samples < len(dataset):
        dataset = Subset(dataset, range(max_samples))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    if progress:
        from tqdm import tqdm

        loader = tqdm(loader, desc="evaluate", unit="batch", dynamic_ncols=True)

    evaluator = FreiHANDEvaluator(mesh_alignment="auto")
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    valid = torch.zeros((), dtype=torch.float64, device=device)
    sum2d = torch.zeros((), dtype=torch.float64, device=device)
    count = count2d = 0
    with inference_mode(model):
        for batch in loader:
            images = batch["image"].to(device)
            intrinsics = batch["intrinsics"].to(device)
            gt_xyz = batch["keypoints3d"].to(device, torch.float64)
            gt_verts = batch["vertices"].to(device, torch.float64)
            prediction = run_model(model, images, intrinsics, positioning, turns)
            pred_xyz = prediction.keypoints_cam.to(torch.float64)
            pred_verts = prediction.vertices_cam.to(torch.float64)
            errors = hand_errors(pred_xyz, pred_verts, gt_xyz, gt_verts)
            sums += torch.stack(tuple(errors)) * images.shape[0]
            valid += prediction.valid.sum()
            evaluator.update(pred_xyz, pred_verts, gt_xyz, gt_verts)
            if "keypoints2d" in batch:
                gt2d = batch["keypoints2d"].to(device, torch.float64)
                offsets = prediction.keypoints2d.to(torch.float64) - gt2d
                sum2d += torch.linalg.vector_norm(offsets, dim=-1).mean(dim=-1).sum()
                count2d += images.shape[0]
            count += images.shape[0]
    if count == 0:
        raise ValueError("dataset: no samples to evaluate")
    result = evaluator.compute()
    rs_j, rs_v, cs_j, cs_v = (sums / count).tolist()
    s = result.scores
    metrics = {
        "rs_mje_mm": rs_j,
        "rs_mve_mm": rs_v,
        "pa_mje_mm": 10.0 * s["xyz_al_mean3d"],
        "pa_mve_mm": 10.0 * s["mesh_al_mean3d"],
        "cs_mje_mm": cs_j,
        "cs_mve_mm": cs_v,
        "auc_cs": s["xyz_auc3d"],
        "auc_cs_mesh": s["mesh_auc3d"],
        "auc_pa": s["xyz_al_auc3d"],
        "f_score_5": s["f_score_5"],
        "f_score_15": s["f_score_15"],
        "f_al_score_5": s["f_al_score_5"],
        "f_al_score_15": s["f_al_score_15"],
        "valid_fraction": float(valid) / count,
        "num_samples": float(count),
    }
    if count2d == count:
        metrics["kp2d_crop_px"] = sum2d / count
    return Evaluation({k: float(v) for k, v in metrics.items()}, result)


def evaluate_model(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    positioning: str | None = None,
    max_samples: int | None = None,
    num_workers: int = 0,
    progress: bool = False,
    turns: Sequence[float] | None = None,
) -> dict[str, float]:
    """Score a model on held-out crops: Table-1 errors, AUC, F-scores, valid positionings.

    The model runs in eval mode without gradients (its mode is restored after).
    Ground truth and predictions are compared in the crops' camera frame (see the
    module docstring for why that equals the original camera's numbers). The mesh
    is the template's, the same for prediction and ground truth, so the FreiHAND
    evaluator aligns the vertices with their own Procrustes fit (``"auto"``).

    Args:
        model: a :class:`~handdgp.net.HandDGPNet`, or any module with its call
            ``model(images, intrinsics) -> HandPrediction``.
        dataset: items with :data:`handdgp.objective.BATCH_KEYS` (``image``,
            ``intrinsics``, ``keypoints3d`` and ``vertices`` in camera space are used,
            and ``keypoints2d`` in crop pixels where present).
        batch_size: crops per forward pass.
        device: where to run; the model is moved there. None: the model's device.
        positioning: None (the model's own), ``"dgp"``, ``"refine"`` or
            ``"root_regression"``; see :func:`handdgp.inference.run_model`.
        max_samples: evaluate only the first ``max_samples`` items.
        num_workers: data-loader worker processes.
        progress: show a progress bar.
        turns: None (one view per crop) or view angles in degrees to average the
            prediction over (:func:`handdgp.inference.run_model`).

    Returns:
        Plain floats: ``rs_mje_mm``, ``rs_mve_mm`` (root-relative), ``pa_mje_mm``,
        ``pa_mve_mm`` (Procrustes-aligned), ``cs_mje_mm``, ``cs_mve_mm`` (camera
        space), all in millimetres; ``auc_cs`` (camera-space keypoint PCK over
        0–50 mm, FreiHAND's ``xyz_auc3d``), ``auc_cs_mesh``, ``auc_pa``;
        ``f_score_5``, ``f_score_15`` (camera space) and ``f_al_score_5``,
        ``f_al_score_15`` (aligned) on the vertices; ``valid_fraction`` of valid
        positionings; ``num_samples``; ``kp2d_crop_px``, the mean distance of the
        predicted 2D keypoints to the true ones in crop pixels, when the items have
        ``keypoints2d``.

    Raises:
        ValueError: on an unknown positioning, a bad ``batch_size`` or
            ``max_samples``, or an empty data set.

    Example:
        >>> import torch
        >>> from handdgp.net import HandPrediction
        >>> gt = {"image": torch.zeros(3, 8, 8), "intrinsics": torch.eye(3),
        ...       "keypoints3d": torch.rand(21, 3) + 1.0, "vertices": torch.rand(30, 3) + 1.0}
        >>> class Perfect(torch.nn.Module):
        ...     def forward(self, images, intrinsics):
        ...         kp, v = gt["keypoints3d"][None], gt["vertices"][None]
        ...         return HandPrediction(kp[..., :2], v - kp[:, :1], kp - kp[:, :1],
        ...                               torch.ones(1, 21), kp[:, 0], v, kp, torch.tensor([True]))
        >>> metrics = evaluate_model(Perfect(), [gt])
        >>> metrics["cs_mve_mm"], metrics["auc_cs"], metrics["valid_fraction"]
        (0.0, 1.0, 1.0)
    """
    return evaluate_dataset(
        model,
        dataset,
        batch_size=batch_size,
        device=device,
        positioning=positioning,
        max_samples=max_samples,
        num_workers=num_workers,
        progress=progress,
        turns=turns,
    ).metrics


# --------------------------------------------------------------------------- reports


def _cell(value: float, decimals: int) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.{decimals}f}"


def format_table(rows: Sequence[tuple[str, dict[str, float]]], *, caption: str = "") -> str:
    """A markdown table in the layout of the paper's Table 1, one row per method.

    Columns: :data:`TABLE_COLUMNS` (errors in mm; RS root-relative, PA
    Procrustes-aligned; the 2D keypoint error in crop pixels; AUC of the camera-space keypoint PCK over 0–50 mm;
    F-scores of the aligned vertices).

    Args:
        rows: ``(name, metrics)`` pairs, metrics as from :func:`evaluate_model`.
        caption: a line written above the table.

    Returns:
        The markdown text.

    Example:
        >>> metrics = {key: 1.0 for _, key, _ in TABLE_COLUMNS}
        >>> print(format_table([("Ours", metrics)]).splitlines()[2])
        | Ours | 1.0 | 1.0 | 1.0 | 1.0 | 1.0 | 1.00 | 1.000 | 1.000 | 1.000 |
    """
    header = "| Method | " + " | ".join(title for title, _, _ in TABLE_COLUMNS) + " |"
    rule = "|:--|" + "--:|" * len(TABLE_COLUMNS)
    lines = [caption, ""] if caption else []
    lines += [header, rule]
    for name, metrics in rows:
        cells = [_cell(metrics.get(key, math.nan), d) for _, key, d in TABLE_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_pck_curves(
    path: str | Path, curves: Sequence[tuple[str, FreiHANDResult]], *, key: str = "xyz"
) -> Path:
    """One figure with the 3D PCK curve of every evaluated model (matplotlib, Agg).

    Args:
        path: output image file.
        curves: ``(name, FreiHANDResult)`` pairs.
        key: which curve: ``"xyz"`` (camera-space keypoints, default), ``"mesh"``,
            ``"xyz_al"`` or ``"mesh_al"``.

    Returns:
        The path written.

    Example:
        >>> import tempfile, torch
        >>> from dgpgeom.metrics import FreiHANDEvaluator
        >>> evaluator = FreiHANDEvaluator()
        >>> xyz = torch.rand(2, 21, 3)
        >>> evaluator.update(xyz + 0.01, xyz, xyz, xyz)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     plot_pck_curves(f"{tmp}/pck.png", [("a", evaluator.compute())]).stat().st_size > 0
        True
    """
    titles = {
        "xyz": "camera-space keypoints",
        "mesh": "camera-space vertices",
        "xyz_al": "aligned keypoints",
        "mesh_al": "aligned vertices",
    }
    labelled = [
        (f"{name} (AUC {result.scores.get(f'{key}_auc3d', math.nan):.3f})",
         result.thresholds, result.pck_curves[key])
        for name, result in curves
    ]  # fmt: skip
    return plot_pck(path, labelled, title=f"3D PCK, {titles.get(key, key)}")


class CheckpointReport(NamedTuple):
    """Result of :func:`evaluate_checkpoints`.

    Attributes:
        rows: ``(name, metrics)`` per checkpoint, in the order given.
        markdown: the table, as written to ``paths["table"]``.
        paths: ``"table"`` (``results.md``), ``"json"`` (``results.json``) and
            ``"pck"`` (``pck_camera_space.png``) → path written.
    """

    rows: list[tuple[str, dict[str, float]]]
    markdown: str
    paths: dict[str, Path]


def _unique(name: str, step: int, taken: set[str]) -> str:
    if name in taken:
        name = f"{name} (step {step})"
    base, i = name, 2
    while name in taken:
        name, i = f"{base} #{i}", i + 1
    taken.add(name)
    return name


def evaluate_checkpoints(
    paths: Sequence[str | Path],
    data_dir: str | Path,
    *,
    out_dir: str | Path = "evaluation",
    positioning: str | None = None,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    max_samples: int | None = None,
    num_workers: int = 0,
    model_factory: ModelFactory | None = None,
    dataset_factory: DatasetFactory | None = None,
    progress: bool = False,
    turns: Sequence[float] | None = None,
) -> CheckpointReport:
    """Evaluate several checkpoints on one held-out set; write a table, JSON and PCK plot.

    Each checkpoint's model is rebuilt with :func:`handdgp.loading.load_model`, and
    its held-out crops are made by ``dataset_factory(data_dir, config)`` with the
    checkpoint's own configuration (rectified or not), never augmented
    (:func:`handdgp.loading.held_out_config`). Rows are named after the
    experiments (``config.name``, plus ``" + refine"`` etc. when ``positioning``
    overrides the model's own; a repeated name gets its step).

    Writes into ``out_dir``: ``results.md`` (the table of :func:`format_table`),
    ``results.json`` (every metric and the camera-space PCK curve per checkpoint)
    and ``pck_camera_space.png`` (:func:`plot_pck_curves`).

    Args:
        paths: checkpoint files.
        data_dir: directory of the held-out set.
        out_dir: output directory (created if needed).
        positioning: override every model's positioning (e.g. ``"refine"`` for B4).
        batch_size, device, max_samples, num_workers, progress, turns: as
            :func:`evaluate_model` (with ``turns``, every row's name gains
            ``" (N turned views)"``).
        model_factory: see :data:`handdgp.loading.ModelFactory`.
        dataset_factory: see :data:`handdgp.loading.DatasetFactory`.

    Returns:
        A :class:`CheckpointReport`.

    Raises:
        ValueError: if ``paths`` is empty, or as :func:`evaluate_model`.
    """
    if not paths:
        raise ValueError("paths: expected at least one checkpoint")
    check_positioning(positioning)
    check_turns(turns)
    dataset_factory = dataset_factory or default_dataset_factory
    data_dir = Path(data_dir)
    rows: list[tuple[str, dict[str, float]]] = []
    results: list[tuple[str, FreiHANDResult]] = []
    records: list[dict[str, Any]] = []
    taken: set[str] = set()
    for path in paths:
        loaded = load_model(path, model_factory=model_factory, device=device)
        dataset = dataset_factory(data_dir, held_out_config(loaded.config))
        evaluation = evaluate_dataset(
            loaded.model,
            dataset,
            batch_size=batch_size,
            positioning=positioning,
            max_samples=max_samples,
            num_workers=num_workers,
            progress=progress,
            turns=turns,
        )
        name = loaded.config.name
        if positioning is not None and positioning != loaded.config.net.positioning:
            name = f"{name} + {positioning}"  # e.g. B2's weights with refinement: B4
        if turns is not None:
            name = f"{name} ({len(turns)} turned views)"
        name = _unique(name, loaded.step, taken)
        rows.append((name, evaluation.metrics))
        results.append((name, evaluation.freihand))
        records.append(
            {
                "name": name,
                "experiment": loaded.config.name,
                "description": loaded.config.description,
                "checkpoint": str(path),
                "step": loaded.step,
                "positioning": positioning or loaded.config.net.positioning,
                "turns": None if turns is None else [float(a) for a in turns],
                "metrics": evaluation.metrics,
                "pck_camera_space": {
                    "thresholds_mm": (evaluation.freihand.thresholds * 1000.0).tolist(),
                    "keypoints": evaluation.freihand.pck_curves["xyz"].tolist(),
                    "vertices": evaluation.freihand.pck_curves["mesh"].tolist(),
                },
            }
        )

    samples = {int(m["num_samples"]) for _, m in rows}
    caption = (
        f"Held-out set `{data_dir}`, {'/'.join(str(s) for s in sorted(samples))} samples. "
        "Errors in mm: RS root-relative (both re-centred on the wrist), CS camera space, "
        "PA Procrustes-aligned (the paper's RS); 2D keypoint error in crop pixels. AUC of "
        "the camera-space keypoint PCK over 0-50 mm; F-scores of the Procrustes-aligned vertices."
    )
    if positioning is not None:
        caption += f" Positioning: `{positioning}` for every model."
    if turns is not None:
        angles = ", ".join(f"{a:g}" for a in turns)
        caption += f" Each prediction averaged over the crop turned by {angles} degrees."
    markdown = format_table(rows, caption=caption)
    invalid = [(name, m["valid_fraction"]) for name, m in rows if m["valid_fraction"] < 1.0]
    if invalid:
        markdown += (
            "\nValid positionings: "
            + ", ".join(f"{name} {100.0 * v:.1f}%" for name, v in invalid)
            + ".\n"
        )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {
        "table": out / "results.md",
        "json": out / "results.json",
        "pck": out / "pck_camera_space.png",
    }
    written["table"].write_text(markdown)
    written["json"].write_text(json.dumps({"data": str(data_dir), "results": records}, indent=1))
    plot_pck_curves(written["pck"], results)
    return CheckpointReport(rows, markdown, written)


# --------------------------------------------------------------------------- command line


def evaluate_command(
    args: argparse.Namespace,
    *,
    model_factory: ModelFactory | None = None,
    dataset_factory: DatasetFactory | None = None,
) -> int:
    """``handdgp evaluate``: print the results table and where the files went; exit status 0."""
    report = evaluate_checkpoints(
        args.checkpoints,
        args.data,
        out_dir=args.out,
        positioning=args.positioning,
        batch_size=args.batch_size,
        device=args.device,
        max_samples=args.max_samples,
        num_workers=args.num_workers,
        model_factory=model_factory,
        dataset_factory=dataset_factory,
        progress=True,
        turns=DEFAULT_TURNS if args.tta else None,
    )
    print(report.markdown)
    for name, path in report.paths.items():
        print(f"wrote {name}: {path}")
    return 0
