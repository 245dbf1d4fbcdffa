"""How the camera-space floor of one image depends on how much the hands' sizes spread.

    python reference_model/scripts/size_floor.py [--data DIR] [--factors 1 0.75 0.5 0.25]

One image cannot tell a hand's size from its distance (a hand 10 % larger and 10 %
farther looks the same), so a model that reads everything else perfectly still
misplaces a hand of unusual size. This script needs no model: from the held-out set's
true keypoints it makes, for each factor ``a``, the same scenes with every hand's size
pulled toward the set's mean size (``size' = mean + a (size - mean)``, the root kept
where it is, the 2D keypoints projected again), and places each hand with the DLT
from its true 2D keypoints and its true shape scaled to one size for all (the size
with the lowest mean error). It prints the hands' size spread (std / mean of the
summed bone length) and that floor's CS-MJE (mean and median, mm) for each factor:
``a = 1`` is the set as rendered, the floor ``error_budget.py`` reports.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from error_budget import cs_error  # a sibling script

import dgpgeom
from handdgp.hand.skeleton import hand_size


def load_truth(directory: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """`(B, 21, 3)` camera-space keypoints (metres) and `(B, 3, 3)` intrinsics of a data set."""
    keypoints = json.loads((directory / "training_xyz.json").read_text())
    intrinsics = json.loads((directory / "training_K.json").read_text())
    return torch.tensor(keypoints, dtype=torch.float64), torch.tensor(
        intrinsics, dtype=torch.float64
    )


def one_size_floor(camera: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """`(B,)` CS-MJE (mm) of the DLT from true 2D and the true shape at the best single size."""
    relative = camera - camera[:, :1]
    points2d = dgpgeom.camera.project(camera, intrinsics).points2d
    size = hand_size(relative)
    ones = torch.ones(camera.shape[:2], dtype=camera.dtype)
    candidates = size.mean() * torch.linspace(0.8, 1.1, 31, dtype=camera.dtype)
    errors = torch.stack([
        cs_error(relative * (c / size)[:, None, None], points2d, intrinsics, ones, camera)
        for c in candidates
    ])  # fmt: skip
    return errors[errors.mean(-1).argmin()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/synthetic/test"))
    parser.add_argument("--factors", type=float, nargs="+", default=[1.0, 0.75, 0.5, 0.25])
    args = parser.parse_args()
    camera, intrinsics = load_truth(args.data)
    relative = camera - camera[:, :1]
    size = hand_size(relative)
    print(f"{len(camera)} hands of {args.data}")
    print("| size factor a | size std / mean | floor CS-MJE mean (mm) | median (mm) |")
    print("| --: | --: | --: | --: |")
    for factor in args.factors:
        target = size.mean() + factor * (size - size.mean())
        scaled = relative * (target / size)[:, None, None] + camera[:, :1]
        floor = one_size_floor(scaled, intrinsics)
        spread = target.std() / target.mean()
        print(f"| {factor:g} | {spread:.3f} | {floor.mean():.1f} | {floor.median():.1f} |")


if __name__ == "__main__":
    main()
