"""How a checkpoint's 2D keypoints miss, and what that does to the depth.

    python reference_model/scripts/keypoint_spread.py CHECKPOINT [--data DIR] [--num 256]

On the first ``--num`` held-out crops (made exactly as in training, no augmentation)
prints, in crop pixels: the 2D keypoint error (mean and median, visible and occluded
keypoints); the spread of the predicted keypoints about their centre over the true
spread (below 1: shrunk toward the middle); the error of a soft-argmax restricted to
the heat-map cells within ``--radius`` of each peak; and the root depth over the true
one (median) for the DLT and for DLT + reprojection refinement.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from handdgp.loading import default_dataset_factory, held_out_config, load_model
from handdgp.net.heads import soft_argmax
from handdgp.net.positioning import place_hand


def local_soft_argmax(log_prob: torch.Tensor, centres: torch.Tensor, radius: int) -> torch.Tensor:
    """Soft-argmax of `(B, N, h, w)` heat maps over the cells within ``radius`` of the peak."""
    size = log_prob.shape[-1]
    peak = log_prob.flatten(2).argmax(-1)
    cells = torch.arange(size)
    near_y = (cells - (peak // size)[..., None]).abs() <= radius
    near_x = (cells - (peak % size)[..., None]).abs() <= radius
    prob = log_prob.exp() * (near_y[..., :, None] & near_x[..., None, :])
    return soft_argmax(prob / prob.sum((-2, -1), keepdim=True), centres)


def spread(points: torch.Tensor) -> torch.Tensor:
    """`(B, N, 2)` -> `(B,)` mean distance of the points to their centre."""
    return (points - points.mean(1, keepdim=True)).norm(dim=-1).mean(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data", type=Path, default=Path("data/synthetic/test"))
    parser.add_argument("--num", type=int, default=256)
    parser.add_argument("--radius", type=int, default=2, help="cells, local soft-argmax")
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = load_model(args.checkpoint)
    crops = default_dataset_factory(args.data, held_out_config(loaded.config))
    batch = [crops[i] for i in range(min(args.num, len(crops)))]
    stack = {key: torch.stack([b[key] for b in batch]) for key in batch[0] if key != "index"}
    model = loaded.model
    with torch.no_grad():
        pred = model(stack["image"], stack["intrinsics"])
        refined, _ = place_hand(
            pred.keypoints3d, pred.keypoints2d, stack["intrinsics"], pred.weights, "refine", None
        )
        local = local_soft_argmax(pred.heatmaps, model.keypoint_head.centres, args.radius)
    truth = stack["keypoints2d"]
    error = (pred.keypoints2d - truth).norm(dim=-1)
    visible = stack["visibility"].bool()
    local_error = (local - truth).norm(dim=-1)
    depth = stack["keypoints3d"][:, 0, 2]
    print(f"{args.checkpoint} on {len(batch)} held-out crops of {args.data} (crop pixels)")
    print(f"2D error: mean {error.mean():.2f}, median {error.median():.2f}; visible mean "
          f"{error[visible].mean():.2f}, occluded mean {error[~visible].mean():.2f}")
    print(f"spread of the predicted keypoints / true spread (median): "
          f"{(spread(pred.keypoints2d) / spread(truth)).median():.3f}")
    print(f"local soft-argmax (radius {args.radius} cells): mean {local_error.mean():.2f}, "
          f"median {local_error.median():.2f}")
    print(f"root depth / true depth (median): DLT {(pred.translation[:, 2] / depth).median():.3f}, "
          f"DLT + refinement {(refined[:, 2] / depth).median():.3f}")


if __name__ == "__main__":
    main()
