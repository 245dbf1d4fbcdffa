"""Regenerate the learned-keypoint-weights figure of the Concepts page.

Runs the reference model's shipped ``full`` checkpoint on the held-out synthetic set
and writes ``keypoint_weights.png`` (six network inputs with their keypoints coloured
by learned weight, the distribution of weights for visible and occluded keypoints,
and the mean weight against the 2D keypoint error) and ``keypoint_weights.json`` (the
numbers quoted on the page). Run from the repository root::

    handdgp make-data --out data/synthetic/test --num 1024 --seed 9001
    python docs/figures/make_weights_figure.py --data data/synthetic/test

Deterministic: the same checkpoint and data give the same figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import torch

from handdgp.loading import default_dataset_factory, load_model
from handdgp.outputs import HAND_EDGES

HERE = Path(__file__).resolve().parent
SHOWN = 6  # example crops in the figure
MIN_OCCLUDED = 3  # the examples are the first held-out crops with this many occluded keypoints


def predict_all(checkpoint: str, data: Path, batch_size: int = 32) -> dict[str, np.ndarray]:
    """Crops, weights, predicted and true 2D keypoints and visibility for the whole set."""
    loaded = load_model(checkpoint)
    config = dataclasses.replace(
        loaded.config, data=dataclasses.replace(loaded.config.data, augment=False)
    )
    dataset = default_dataset_factory(data, config)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
    out: dict[str, list[np.ndarray]] = {
        k: [] for k in ("image", "weights", "pred2d", "true2d", "visible")
    }
    with torch.no_grad():
        for batch in loader:
            prediction = loaded.model(batch["image"], batch["intrinsics"])
            out["image"].append(batch["image"].permute(0, 2, 3, 1).numpy())
            out["weights"].append(prediction.weights.numpy())
            out["pred2d"].append(prediction.keypoints2d.numpy())
            out["true2d"].append(batch["keypoints2d"].numpy())
            out["visible"].append(batch["visibility"].numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def statistics(result: dict[str, np.ndarray]) -> dict[str, float]:
    weights, visible = result["weights"], result["visible"]
    error = np.linalg.norm(result["pred2d"] - result["true2d"], axis=-1)
    order = lambda x: np.argsort(np.argsort(x.ravel()))  # noqa: E731 - ranks
    spearman = float(np.corrcoef(order(weights), order(error))[0, 1])
    _, decile_means = error_deciles(error, weights)
    return {
        "samples": int(weights.shape[0]),
        "mean_weight_visible": float(weights[visible].mean()),
        "mean_weight_occluded": float(weights[~visible].mean()),
        "occluded_fraction": float((~visible).mean()),
        "spearman_weight_vs_2d_error": spearman,
        "median_2d_error_px_visible": float(np.median(error[visible])),
        "median_2d_error_px_occluded": float(np.median(error[~visible])),
        "fraction_above_0.5": float((weights > 0.5).mean()),
        "mean_weight_per_keypoint": [round(float(w), 3) for w in weights.mean(0)],
        "mean_weight_per_2d_error_decile": [round(float(w), 3) for w in decile_means],
    }


def error_deciles(error: np.ndarray, weights: np.ndarray) -> tuple[list[float], list[float]]:
    """Median 2D error and mean weight of each tenth of the keypoints, best-placed first."""
    edges = np.quantile(error, np.linspace(0.0, 1.0, 11))
    which = np.clip(np.searchsorted(edges, error, side="right") - 1, 0, 9)
    centres = [float(np.median(error[which == b])) for b in range(10)]
    means = [float(weights[which == b].mean()) for b in range(10)]
    return centres, means


def draw(result: dict[str, np.ndarray], stats: dict[str, float], out: Path) -> None:
    weights, visible = result["weights"], result["visible"]
    error = np.linalg.norm(result["pred2d"] - result["true2d"], axis=-1)
    shown = np.flatnonzero((~visible).sum(1) >= MIN_OCCLUDED)[:SHOWN]
    fig = plt.figure(figsize=(14, 5.0))
    grid = fig.add_gridspec(  # the fifth column is a spacer after the colour bar
        2, 7, width_ratios=(1, 1, 1, 0.07, 0.55, 1.4, 1.4), wspace=0.3, hspace=0.1
    )
    norm = plt.Normalize(0.0, 1.0)
    for slot, index in enumerate(shown):
        ax = fig.add_subplot(grid[slot // 3, slot % 3])
        ax.imshow(result["image"][index])
        points = result["pred2d"][index]
        both = np.concatenate([points, result["true2d"][index]])
        centre = 0.5 * (both.min(0) + both.max(0))
        half = 0.65 * float((both.max(0) - both.min(0)).max()) + 4.0  # zoom on the hand
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] + half, centre[1] - half)
        for a, b in HAND_EDGES:
            ax.plot(*points[[a, b]].T, color="white", lw=0.8, alpha=0.6)
        dots = ax.scatter(
            *points.T,
            c=weights[index],
            cmap="viridis",
            norm=norm,
            s=26,
            edgecolors="black",
            linewidths=0.4,
            zorder=3,
        )
        hidden = ~visible[index]
        ax.scatter(
            *points[hidden].T, s=80, facecolors="none", edgecolors="red", linewidths=1.0, zorder=4
        )
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(dots, cax=fig.add_subplot(grid[:, 3]), label="learned weight (red ring: occluded)")

    ax = fig.add_subplot(grid[:, 5])
    bins = np.linspace(0.0, 1.0, 26)
    ax.hist(weights[visible], bins, density=True, alpha=0.6, label="visible")
    ax.hist(weights[~visible], bins, density=True, alpha=0.6, color="red", label="occluded")
    ax.set_xlabel("learned weight")
    ax.set_ylabel("density")
    ax.set_title(
        f"mean {stats['mean_weight_visible']:.2f} visible, {stats['mean_weight_occluded']:.2f} occluded",
        fontsize=9,
    )
    ax.legend(fontsize=8)

    ax = fig.add_subplot(grid[:, 6])
    centres, means = error_deciles(error, weights)
    ax.plot(centres, means, "o-")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("2D keypoint error, crop px (decile medians)")
    ax.set_ylabel("mean learned weight")
    ax.yaxis.tick_right()  # keeps the label clear of the histogram beside it
    ax.yaxis.set_label_position("right")
    ax.set_title(f"Spearman ρ = {stats['spearman_weight_vs_2d_error']:.2f}", fontsize=9)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="full")
    parser.add_argument("--data", type=Path, default=Path("data/synthetic/test"))
    parser.add_argument("--out", type=Path, default=HERE / "keypoint_weights.png")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"no data set at {args.data}: see this script's docstring to make it")
    result = predict_all(args.checkpoint, args.data)
    stats = statistics(result)
    draw(result, stats, args.out)
    args.out.with_suffix(".json").write_text(json.dumps(stats, indent=1) + "\n")
    print(json.dumps(stats, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
