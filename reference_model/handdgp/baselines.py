"""The rows every model must beat, scored per sample beside a model.

``handdgp baselines`` scores, on one held-out set of the synthetic (FreiHAND) layout:

- **constant hand**: the training set's mean root-relative keypoints and mesh in the
  hand's own frame (each training hand posed with its global orientation removed),
  the same prediction for every image. Only shape columns: it is scored after a
  similarity Procrustes alignment, which also supplies the orientation it lacks.
- **MediaPipe + DLT**: MediaPipe Hands (its bundled palm detector and hand
  landmarker) on the original image; its world landmarks are placed in the camera
  frame with :func:`dgpgeom.solve_translation` and the true intrinsics. Samples it
  does not detect are counted apart (detection rate), and every model is also scored
  on exactly the detected samples.
- **a model** (a checkpoint): its crops are made exactly as in training, without
  augmentation; its 2D keypoints are mapped back to original pixels.

Columns, all per sample then averaged (medians where named): PA-MJE / PA-MVE
(similarity Procrustes per sample, FreiHAND's aligned errors), CS-MJE (camera space,
no alignment; mean and median), and two 2D keypoint errors in original pixels: of
the 2D keypoints the method detects (the model's 2D head, MediaPipe's image
landmarks), and of its placed camera-space keypoints projected into the image (the
hand it outputs, which the overlay of ``predict`` draws).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

import dgpgeom
from dgpgeom.camera import project
from dgpgeom.metrics import procrustes_error
from handdgp.inference import run_model
from handdgp.net.turned_views import DEFAULT_TURNS

__all__ = [
    "BASELINE_COLUMNS",
    "constant_hand",
    "constant_hand_errors",
    "format_rows",
    "mediapipe_errors",
    "model_errors",
    "summarise",
]

#: (header, key, decimals) of the comparison table.
BASELINE_COLUMNS = (
    ("samples", "num_samples", 0),
    ("PA-MJE (mm)", "pa_mje_mm", 1),
    ("PA-MVE (mm)", "pa_mve_mm", 1),
    ("CS-MJE mean (mm)", "cs_mje_mm", 1),
    ("CS-MJE median (mm)", "cs_mje_median_mm", 1),
    ("2D (px)", "kp2d_px", 1),
    ("2D of the placed hand (px)", "hand2d_px", 1),
)


def _aligned_error(pred: Tensor, gt: Tensor) -> Tensor:
    """`(B, N, 3)` each -> `(B,)` mean Euclidean error after similarity Procrustes, m."""
    return procrustes_error(pred.double(), gt.double()).mean(-1)


def constant_hand(samples: Any, *, limit: int | None = 4096) -> tuple[Tensor, Tensor]:
    """The training set's mean hand in its own frame.

    Args:
        samples: a data set of :class:`~handdgp.data.HandSample` with ``params``
            ``pose`` `(J, 3)` and ``shape`` `(S,)` (the synthetic sets have them).
        limit: use at most this many samples (the first ones).

    Returns:
        ``(keypoints, vertices)``: `(21, 3)` and `(V, 3)` metres, relative to the
        wrist, with every hand's global orientation (``pose[0]``) removed first.
    """
    from handdgp.hand import HandModel

    count = len(samples) if limit is None else min(limit, len(samples))
    poses = torch.stack(
        [torch.as_tensor(np.asarray(samples[i].params["pose"]), dtype=torch.float64) for i in range(count)]
    ).reshape(count, -1, 3)
    shapes = torch.stack(
        [torch.as_tensor(np.asarray(samples[i].params["shape"]), dtype=torch.float64) for i in range(count)]
    )
    poses[:, 0] = 0.0
    hand = HandModel().double()(poses, shapes)
    root = hand.keypoints[:, :1]
    return (hand.keypoints - root).mean(0), (hand.vertices - root).mean(0)


def constant_hand_errors(
    keypoints: Tensor, vertices: Tensor, samples: Any, indices: Sequence[int]
) -> dict[str, np.ndarray]:
    """Per-sample PA-MJE and PA-MVE (mm) of one constant hand on ``samples[indices]``."""
    gt_kp = torch.stack([torch.as_tensor(samples[i].keypoints3d, dtype=torch.float64) for i in indices])
    gt_v = torch.stack([torch.as_tensor(samples[i].vertices, dtype=torch.float64) for i in indices])
    n = len(indices)
    return {
        "pa_mje_mm": 1000 * _aligned_error(keypoints.expand(n, -1, -1), gt_kp).numpy(),
        "pa_mve_mm": 1000 * _aligned_error(vertices.expand(n, -1, -1), gt_v).numpy(),
    }


def model_errors(
    model: torch.nn.Module,
    crops: Any,
    *,
    batch_size: int = 32,
    turns: Sequence[float] | None = None,
) -> dict[str, np.ndarray]:
    """Per-sample errors of a model on crops made as in training (no augmentation).

    Args:
        model: a :class:`~handdgp.net.HandDGPNet` (called ``model(images, intrinsics)``).
        crops: a :class:`~handdgp.data.CropDataset` with ``augment=False``.
        batch_size: crops per forward pass.
        turns: None (one view) or view angles in degrees to average each prediction
            over (:func:`handdgp.inference.run_model`).

    Returns:
        ``pa_mje_mm``, ``pa_mve_mm``, ``cs_mje_mm``, ``kp2d_px`` and ``hand2d_px``
        (original pixels), each `(len(crops),)`.
    """
    loader = torch.utils.data.DataLoader(crops, batch_size=batch_size, shuffle=False)
    keys = ("pa_mje_mm", "pa_mve_mm", "cs_mje_mm", "kp2d_px", "hand2d_px")
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in loader:
            pred = run_model(model, batch["image"], batch["intrinsics"], turns=turns)
            gt_kp = batch["keypoints3d"].double()
            gt_v = batch["vertices"].double()
            out["pa_mje_mm"].append(1000 * _aligned_error(pred.keypoints3d, gt_kp - gt_kp[:, :1]).numpy())
            out["pa_mve_mm"].append(1000 * _aligned_error(pred.vertices, gt_v - gt_kp[:, :1]).numpy())
            cs = (pred.keypoints_cam.double() - gt_kp).norm(dim=-1).mean(-1)
            out["cs_mje_mm"].append(1000 * cs.numpy())
            to_original = batch["to_original"].double()
            pred2d = _apply_homography(to_original, pred.keypoints2d.double())
            gt2d = _apply_homography(to_original, batch["keypoints2d"].double())
            out["kp2d_px"].append((pred2d - gt2d).norm(dim=-1).mean(-1).numpy())
            placed = project(pred.keypoints_cam.double(), batch["intrinsics"].double()).points2d
            hand2d = _apply_homography(to_original, placed)
            out["hand2d_px"].append((hand2d - gt2d).norm(dim=-1).mean(-1).numpy())
    model.train(was_training)
    return {k: np.concatenate(v) for k, v in out.items()}


def _apply_homography(matrix: Tensor, points: Tensor) -> Tensor:
    """`(B, 3, 3)` and `(B, N, 2)` -> `(B, N, 2)`."""
    uvw = points @ matrix[:, :2, :2].transpose(-1, -2) + matrix[:, None, :2, 2]
    w = points @ matrix[:, 2:, :2].transpose(-1, -2) + matrix[:, None, 2:, 2]
    return uvw / w


def mediapipe_errors(
    samples: Any, indices: Sequence[int], *, progress: Callable[[int], None] | None = None
) -> dict[str, np.ndarray]:
    """Per-sample errors of MediaPipe Hands + DLT on the original images.

    Needs ``mediapipe`` (release 0.10.21 bundles its hand models; see the MediaPipe
    how-to). One hand per image, static-image mode, model complexity 1.

    Returns:
        ``detected`` (bool), and ``pa_mje_mm``, ``cs_mje_mm``, ``kp2d_px``,
        ``hand2d_px`` (NaN where not detected), each `(len(indices),)`.
    """
    import mediapipe as mp  # optional dependency

    detected = np.zeros(len(indices), bool)
    keys = ("pa_mje_mm", "cs_mje_mm", "kp2d_px", "hand2d_px")
    errors = {k: np.full(len(indices), np.nan) for k in keys}
    with mp.solutions.hands.Hands(
        static_image_mode=True, max_num_hands=1, model_complexity=1
    ) as hands:
        for n, i in enumerate(indices):
            sample = samples[i]
            result = hands.process(np.ascontiguousarray(sample.image))
            if progress is not None:
                progress(n)
            if not result.multi_hand_landmarks:
                continue
            height, width = sample.image.shape[:2]
            image = np.array([[p.x, p.y] for p in result.multi_hand_landmarks[0].landmark])
            world = np.array([[p.x, p.y, p.z] for p in result.multi_hand_world_landmarks[0].landmark])
            points2d = torch.as_tensor(image * [width, height] - 0.5)
            points3d = torch.as_tensor(world - world[:1])
            K = torch.as_tensor(np.asarray(sample.intrinsics, np.float64))
            solution = dgpgeom.solve_translation(points3d, points2d, K)
            placed = points3d + solution.translation
            gt = torch.as_tensor(np.asarray(sample.keypoints3d, np.float64))
            uvw = gt @ K.T
            gt2d = uvw[:, :2] / uvw[:, 2:]
            detected[n] = True
            errors["pa_mje_mm"][n] = 1000 * float(_aligned_error(points3d[None], (gt - gt[:1])[None])[0])
            errors["cs_mje_mm"][n] = 1000 * float((placed - gt).norm(dim=-1).mean())
            errors["kp2d_px"][n] = float((points2d - gt2d).norm(dim=-1).mean())
            hand2d = project(placed, K).points2d
            errors["hand2d_px"][n] = float((hand2d - gt2d).norm(dim=-1).mean())
    return {"detected": detected, **errors}


def summarise(errors: dict[str, np.ndarray], mask: np.ndarray | None = None) -> dict[str, float]:
    """Means (and the CS-MJE median) of per-sample errors, over ``mask`` if given."""
    rows = {k: np.asarray(v, np.float64) for k, v in errors.items() if k != "detected"}
    n = len(next(iter(rows.values())))
    mask = np.ones(n, bool) if mask is None else np.asarray(mask, bool)
    summary: dict[str, float] = {"num_samples": float(mask.sum())}
    for key, values in rows.items():
        summary[key] = float(np.mean(values[mask]))
    if "cs_mje_mm" in rows:
        summary["cs_mje_median_mm"] = float(np.median(rows["cs_mje_mm"][mask]))
    return summary


def format_rows(rows: dict[str, dict[str, float]]) -> str:
    """A markdown table: one row per name, :data:`BASELINE_COLUMNS` (— where absent)."""
    header = "| row | " + " | ".join(h for h, _, _ in BASELINE_COLUMNS) + " |"
    lines = [header, "|" + " --- |" * (len(BASELINE_COLUMNS) + 1)]
    for name, values in rows.items():
        cells = [
            f"{values[key]:.{digits}f}" if key in values and np.isfinite(values[key]) else "—"
            for _, key, digits in BASELINE_COLUMNS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def baselines_command(args: Any) -> int:
    """``handdgp baselines``: the comparison table on one held-out set."""
    from handdgp.data import SyntheticHandDataset
    from handdgp.loading import default_dataset_factory, held_out_config, load_model

    test = SyntheticHandDataset(Path(args.data), load_masks=False)
    count = len(test) if args.max_samples is None else min(args.max_samples, len(test))
    indices = list(range(count))
    rows: dict[str, dict[str, float]] = {}
    per_sample: dict[str, dict[str, list]] = {}
    if args.train is not None:
        train = SyntheticHandDataset(Path(args.train), load_masks=False)
        kp, verts = constant_hand(train, limit=args.train_samples)
        errors = constant_hand_errors(kp, verts, test, indices)
        rows["constant hand (training mean)"] = summarise(errors)
        per_sample["constant"] = {k: v.tolist() for k, v in errors.items()}
    detected = None
    if args.mediapipe:
        mp_errors = mediapipe_errors(test, indices)
        detected = mp_errors["detected"]
        rows["MediaPipe + DLT (detected)"] = summarise(mp_errors, detected)
        per_sample["mediapipe"] = {k: v.tolist() for k, v in mp_errors.items()}
    for checkpoint in args.checkpoints:
        loaded = load_model(checkpoint)
        crops = default_dataset_factory(Path(args.data), held_out_config(loaded.config))
        crops = torch.utils.data.Subset(crops, indices)
        errors = model_errors(loaded.model, crops, batch_size=args.batch_size)
        name = loaded.config.name
        if name in per_sample:  # two checkpoints of one experiment: name them by file
            name = f"{name} [{checkpoint}]"
        rows[f"{name} (all)"] = summarise(errors)
        if detected is not None:
            rows[f"{name} (MediaPipe-detected)"] = summarise(errors, detected)
        per_sample[name] = {k: v.tolist() for k, v in errors.items()}
        if args.tta:
            errors = model_errors(loaded.model, crops, batch_size=args.batch_size, turns=DEFAULT_TURNS)
            rows[f"{name} + TTA (all)"] = summarise(errors)
            if detected is not None:
                rows[f"{name} + TTA (MediaPipe-detected)"] = summarise(errors, detected)
            per_sample[f"{name} + TTA"] = {k: v.tolist() for k, v in errors.items()}
    table = format_rows(rows)
    if detected is not None:
        table += f"\n\nMediaPipe detected {detected.mean():.1%} of {count} samples."
    print(table)
    if args.out is not None:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"rows": rows, "per_sample": per_sample}, indent=1))
        print(f"wrote {out}")
    return 0
