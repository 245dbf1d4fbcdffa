"""Regenerate the figures of the documentation.

Run from the repository root (needs matplotlib)::

    python docs/figures/make_figures.py

Every figure is computed from the pinhole model alone: no data set, no network.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

HERE = Path(__file__).resolve().parent

HAND_LENGTH = 0.18  # metres, wrist to middle fingertip of an adult hand
HAND_RANGE = (0.16, 0.20)  # metres, the spread of adult hand lengths drawn as a band
FOCALS = (400.0, 800.0, 1600.0)  # pixels, focal lengths of unrectified network inputs
CANONICAL_FOCAL = 1000.0  # pixels, the canonical camera (HandDGP uses 1000)
EXAMPLE_SIZE = 120.0  # pixels, the apparent size marked on both panels


def depth(focal: float, length: float, size: np.ndarray | float) -> np.ndarray | float:
    """Depth (metres) at which a hand of ``length`` metres spans ``size`` pixels."""
    return focal * length / size


def rectification_figure(path: Path) -> None:
    """Depth against apparent hand size, with and without a canonical focal length."""
    size = np.linspace(40.0, 300.0, 200)
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6), sharey=True, layout="constrained")
    colours = plt.get_cmap("viridis")(np.linspace(0.1, 0.8, len(FOCALS)))

    left, right = axes
    for focal, colour in zip(FOCALS, colours, strict=True):
        left.fill_between(
            size,
            depth(focal, HAND_RANGE[0], size),
            depth(focal, HAND_RANGE[1], size),
            color=colour,
            alpha=0.2,
            linewidth=0,
        )
        left.plot(size, depth(focal, HAND_LENGTH, size), color=colour, label=f"f = {focal:.0f} px")
    right.fill_between(
        size,
        depth(CANONICAL_FOCAL, HAND_RANGE[0], size),
        depth(CANONICAL_FOCAL, HAND_RANGE[1], size),
        color="tab:red",
        alpha=0.2,
        linewidth=0,
    )
    right.plot(
        size,
        depth(CANONICAL_FOCAL, HAND_LENGTH, size),
        color="tab:red",
        label=f"every image: f = {CANONICAL_FOCAL:.0f} px",
    )

    near = depth(min(FOCALS), HAND_LENGTH, EXAMPLE_SIZE)
    far = depth(max(FOCALS), HAND_LENGTH, EXAMPLE_SIZE)
    left.annotate(
        "",
        xy=(EXAMPLE_SIZE, far),
        xytext=(EXAMPLE_SIZE, near),
        arrowprops={"arrowstyle": "<->", "color": "black"},
    )
    left.text(EXAMPLE_SIZE + 6, (near + far) / 2, f"{near:.1f}–{far:.1f} m", va="center")
    canonical = depth(CANONICAL_FOCAL, HAND_LENGTH, EXAMPLE_SIZE)
    right.plot([EXAMPLE_SIZE], [canonical], "o", color="black")
    right.text(EXAMPLE_SIZE + 6, canonical + 0.1, f"{canonical:.1f} m", va="bottom")

    left.set_title("Without rectification: the focal length varies")
    right.set_title("Rectified to a canonical camera")
    for ax in axes:
        ax.set_xlabel("apparent hand size in the network input (px)")
        ax.set_xlim(size[0], size[-1])
        ax.set_ylim(0.0, 4.0)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", frameon=False)
    left.set_ylabel("depth of the hand (m)")
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    print(
        f"{path.name}: a {HAND_LENGTH} m hand spanning {EXAMPLE_SIZE:.0f} px is at "
        f"{near:.2f}-{far:.2f} m for f = {min(FOCALS):.0f}-{max(FOCALS):.0f} px, "
        f"{canonical:.2f} m at f = {CANONICAL_FOCAL:.0f} px "
        f"({depth(CANONICAL_FOCAL, HAND_RANGE[0], EXAMPLE_SIZE):.2f}-"
        f"{depth(CANONICAL_FOCAL, HAND_RANGE[1], EXAMPLE_SIZE):.2f} m "
        f"for hands of {HAND_RANGE[0]}-{HAND_RANGE[1]} m)"
    )


if __name__ == "__main__":
    rectification_figure(HERE / "rectification.png")
