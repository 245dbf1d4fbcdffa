"""Regenerate the figures of the documentation.

Run from the repository root (needs matplotlib)::

    python docs/figures/make_figures.py

Every figure is computed from the pinhole model and dgpgeom alone, with no data
set, no network and no randomness: running the script again gives the same images.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # this checkout's dgpgeom

from dgpgeom.camera import intrinsics_from_params, invert_intrinsics, project  # noqa: E402
from dgpgeom.rectification import (  # noqa: E402
    points2d_to_original,
    points2d_to_rectified,
    rectify,
    rectify_camera,
)

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


# --- rectification modes: a rendered scene seen by two cameras ---------------------

# Two cameras at the same place, looking the same way: a wide angle and a narrow one.
CAMERAS = (
    ("camera A: f = 300 px, 640×480", (300.0, 319.5, 239.5), (480, 640)),
    ("camera B: f = 900 px, 1280×960", (900.0, 639.5, 479.5), (960, 1280)),
)
SCENE_DIRECTION = (0.5, 0.3, 1.0)  # the scene lies this far off the optical axis ...
SCENE_DEPTH = 0.9  # ... at this depth (metres)
SPHERE_SPACING = 0.06  # metres, a 3×3 grid of spheres
SPHERE_RADIUS = 0.022
BOARD_OFFSET = 0.08  # metres behind the spheres, a checkerboard facing the scene centre
BOARD_SQUARE = 0.04
BOARD_HALF_SIZE = 0.2
CROP_SIZE = 224


def _scene_frame() -> tuple[torch.Tensor, torch.Tensor]:
    """Centre of the scene and the rotation that turns the camera toward it.

    The rotation is the one perspective rectification uses, so in the perspective
    crops the grid of spheres and the checkerboard are seen straight on.
    """
    centre = SCENE_DEPTH * torch.tensor(SCENE_DIRECTION, dtype=torch.float64)
    focal, cx, cy = CAMERAS[0][1]
    K = intrinsics_from_params(focal, focal, cx, cy).double()
    uv = project(centre[None], K).points2d
    box = torch.cat((uv[0] - 1.0, uv[0] + 1.0))
    rect = rectify_camera(K, box, size=CROP_SIZE, mode="perspective")
    return centre, rect.rotation


def _render(
    K: torch.Tensor, size: tuple[int, int], supersample: int
) -> tuple[np.ndarray, torch.Tensor]:
    """Ray-cast the scene: `(H, W, 3)` RGB in [0, 1], and the `(9, 3)` sphere centres."""
    centre, rotation = _scene_frame()
    axes = rotation.T  # columns: the scene's x, y and normal axes in the camera frame
    offsets = torch.arange(-1, 2, dtype=torch.float64) * SPHERE_SPACING
    grid = torch.stack(torch.meshgrid(offsets, offsets, indexing="xy"), -1).reshape(-1, 2)
    spheres = centre + grid @ axes[:, :2].T  # (9, 3)
    colours = torch.tensor(plt.get_cmap("tab10")(np.arange(9))[:, :3], dtype=torch.float64)
    light = -centre + torch.tensor([-0.3, -0.5, 0.0], dtype=torch.float64)
    light = light / light.norm()
    board_origin = centre + BOARD_OFFSET * axes[:, 2]
    normal = axes[:, 2]

    height, width = size
    sub = (torch.arange(supersample, dtype=torch.float64) + 0.5) / supersample - 0.5
    image = torch.zeros(height, width, 3, dtype=torch.float64)
    k_inv = invert_intrinsics(K)
    for row in range(0, height, 64):  # in bands of rows, to bound memory
        rows = torch.arange(row, min(row + 64, height), dtype=torch.float64)
        v = (rows[:, None] + sub[None]).reshape(-1)
        u = (torch.arange(width, dtype=torch.float64)[:, None] + sub[None]).reshape(-1)
        vv, uu = torch.meshgrid(v, u, indexing="ij")
        pixels = torch.stack((uu, vv, torch.ones_like(uu)), -1)
        rays = pixels @ k_inv.T  # z = 1: t below is the depth of the hit
        colour = torch.full((*rays.shape[:-1], 3), 0.12, dtype=torch.float64)
        depth = torch.full(rays.shape[:-1], torch.inf, dtype=torch.float64)

        t_board = (board_origin @ normal) / (rays @ normal)
        hit = rays * t_board[..., None] - board_origin
        a, b = hit @ axes[:, 0], hit @ axes[:, 1]
        on_board = (a.abs() < BOARD_HALF_SIZE) & (b.abs() < BOARD_HALF_SIZE) & (t_board > 0)
        checker = (torch.floor(a / BOARD_SQUARE) + torch.floor(b / BOARD_SQUARE)) % 2
        shade = torch.where(checker == 0, 0.85, 0.55)[..., None].expand(colour.shape)
        colour = torch.where(on_board[..., None], shade, colour)
        depth = torch.where(on_board, t_board, depth)

        rr = (rays * rays).sum(-1)
        for sphere, tint in zip(spheres, colours, strict=True):
            half_b = rays @ sphere
            disc = half_b**2 - rr * (sphere @ sphere - SPHERE_RADIUS**2)
            t = (half_b - disc.clamp_min(0.0).sqrt()) / rr
            front = (disc > 0) & (t > 0) & (t < depth)
            surface = (rays * t[..., None] - sphere) / SPHERE_RADIUS
            lambert = (surface @ light).clamp_min(0.0)
            shaded = tint * (0.3 + 0.7 * lambert[..., None])
            colour = torch.where(front[..., None], shaded, colour)
            depth = torch.where(front, t, depth)

        block = colour.reshape(len(rows), supersample, width, supersample, 3).mean((1, 3))
        image[row : row + len(rows)] = block
    return image.numpy(), spheres


def _outline(ax, rect, colour: str, style: str, label: str) -> None:
    """Draw, in original pixels, the edge of the rectified crop of ``rect``."""
    edge = torch.linspace(-0.5, CROP_SIZE - 0.5, 50, dtype=torch.float64)
    low = torch.full_like(edge, -0.5)
    high = torch.full_like(edge, CROP_SIZE - 0.5)
    border = torch.cat(
        (
            torch.stack((edge, low), -1),
            torch.stack((high, edge), -1),
            torch.stack((edge.flip(0), high), -1),
            torch.stack((low, edge.flip(0)), -1),
        )
    )
    points = points2d_to_original(border[None], rect)[0].numpy()
    ax.plot(points[:, 0], points[:, 1], style, color=colour, linewidth=1.2, label=label)


def rectification_modes_figure(path: Path) -> None:
    """The same off-centre scene from two cameras, rectified in both modes."""
    fig, axes = plt.subplots(
        2, 3, figsize=(11.0, 6.6), layout="constrained", width_ratios=(1.45, 1.0, 1.0)
    )
    crops = {}
    for (title, (focal, cx, cy), size), row in zip(CAMERAS, axes, strict=True):
        K = intrinsics_from_params(focal, focal, cx, cy).double()
        image, spheres = _render(K, size, supersample=3 if size[1] < 1000 else 2)
        images = torch.from_numpy(image).permute(2, 0, 1)[None]
        centre_uv = project(spheres.mean(0, keepdim=True), K).points2d
        box = torch.cat((centre_uv[0] - 40.0, centre_uv[0] + 40.0))[None]
        row[0].imshow(image)
        row[0].set_title(title)
        for column, (mode, colour, style) in enumerate(
            (("affine", "tab:red", "-"), ("perspective", "tab:cyan", "--")), start=1
        ):
            rect = rectify(images, K[None], box, size=CROP_SIZE, focal=1000.0, mode=mode)
            crop = rect.images[0].permute(1, 2, 0).clamp(0.0, 1.0).numpy()
            crops[(title, mode)] = crop
            _outline(row[0], rect, colour, style, f"{mode} crop")
            marks = points2d_to_rectified(project(spheres, K).points2d[None], rect)[0]
            row[column].imshow(crop)
            row[column].plot(marks[:, 0], marks[:, 1], "+", color="white", markersize=6)
            row[column].set_title(f"{mode}, f = 1000 px, {CROP_SIZE}×{CROP_SIZE}")
        row[0].set_xlim(-0.5, size[1] - 0.5)
        row[0].set_ylim(size[0] - 0.5, -0.5)
        row[0].legend(loc="upper left", frameon=True, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)
    a, b = (title for title, _, _ in CAMERAS)
    for mode in ("affine", "perspective"):
        difference = np.abs(crops[(a, mode)] - crops[(b, mode)]).mean()
        print(f"{path.name}: {mode} crops of the two cameras differ by {difference:.3f} on average")


if __name__ == "__main__":
    rectification_figure(HERE / "rectification.png")
    rectification_modes_figure(HERE / "rectification_modes.png")
