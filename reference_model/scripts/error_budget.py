"""Where a checkpoint's camera-space and 2D errors come from: its 2D keypoints, its 3D shape, the hand's size, the crop's resolution.

    python reference_model/scripts/error_budget.py CHECKPOINT [--data DIR] [--num 512]

On the first ``--num`` held-out crops (made exactly as in training, no augmentation)
solves the root with the weighted DLT from each mix of predicted and true inputs
and prints how well the predicted hand size follows the true one, and the
camera-space keypoint error (CS-MJE, mm, mean and median) of each:

- the model as it is (predicted 2D, predicted 3D, learned weights);
- true 2D keypoints with the predicted 3D shape, and the reverse;
- the predicted 3D shape rescaled to the true hand's size (what a perfect size
  estimate would give with the predicted 2D);
- true 2D and the true shape with every hand at one size (the size with the lowest
  mean error): the error left to a model that reads everything from the image but
  the hand's size, which one image cannot tell (a hand 10 % larger and 10 % farther
  looks the same). A model that cannot see size cannot go far below this row.

Then the 2D error: in crop pixels and in original pixels, and the magnification
between them (original over crop spread of the true keypoints): a crop pixel is
``magnification`` original pixels, so a hand close to a long-focus camera turns a
small crop error into a large one. It prints the crop error every keypoint would
need for a given mean error in original pixels, and the share of the original-pixel
error that the most magnified tenth of the images carries.

Hand size is the summed length of the 20 bones. The crop's camera frame is a
rotation of the original camera's, so distances (and CS-MJE) are the same in both.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from keypoint_spread import spread  # a sibling script
from kornia.geometry.linalg import transform_points

import dgpgeom
from handdgp.hand.skeleton import hand_size
from handdgp.loading import default_dataset_factory, held_out_config, load_model


def cs_error(relative: torch.Tensor, keypoints2d, intrinsics, weights, truth) -> torch.Tensor:
    """`(B,)` mean camera-space keypoint error (mm) of the DLT placement of ``relative``."""
    translation = dgpgeom.solve_translation(relative, keypoints2d, intrinsics, weights).translation
    return 1000 * (relative + translation[:, None] - truth).norm(dim=-1).mean(-1)


def magnification(to_original: torch.Tensor, crop_keypoints2d: torch.Tensor) -> torch.Tensor:
    """`(B, 3, 3)` crop-to-original homographies, `(B, N, 2)` crop pixels -> `(B,)` original px per crop px.

    The ratio of the keypoints' spread (mean distance to their centre) in the original
    image to their spread in the crop.
    """
    original = transform_points(to_original, crop_keypoints2d)
    return spread(original) / spread(crop_keypoints2d)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data", type=Path, default=Path("data/synthetic/test"))
    parser.add_argument("--num", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = load_model(args.checkpoint)
    crops = default_dataset_factory(args.data, held_out_config(loaded.config))
    count = min(args.num, len(crops))
    keys = ("keypoints2d", "keypoints3d", "intrinsics", "to_original")
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, count, args.batch):
        batch = [crops[i] for i in range(start, min(start + args.batch, count))]
        images = torch.stack([b["image"] for b in batch])
        K = torch.stack([b["intrinsics"] for b in batch])
        with torch.no_grad():
            pred = loaded.model(images, K)
        for key in keys:
            parts.setdefault(key, []).append(torch.stack([b[key] for b in batch]))
        for name in ("keypoints2d", "keypoints3d", "weights"):
            parts.setdefault(f"pred_{name}", []).append(getattr(pred, name))
    data = {key: torch.cat(values) for key, values in parts.items()}
    truth, K = data["keypoints3d"], data["intrinsics"]
    true_rel = truth - truth[:, :1]
    size = hand_size(true_rel)
    mean_size = size.mean()
    pred_rel, pred_2d, weights = data["pred_keypoints3d"], data["pred_keypoints2d"], data["pred_weights"]
    mixes = {
        "model (predicted 2D, predicted 3D, learned weights)": (pred_rel, pred_2d, weights),
        "true 2D, predicted 3D, learned weights": (pred_rel, data["keypoints2d"], weights),
        "predicted 2D, true 3D, learned weights": (true_rel, pred_2d, weights),
        "predicted 2D, predicted 3D rescaled to the true size, learned weights": (
            pred_rel * (size / hand_size(pred_rel))[:, None, None], pred_2d, weights
        ),
        "predicted 2D, predicted 3D rescaled to the set's mean size, learned weights": (
            pred_rel * (mean_size / hand_size(pred_rel))[:, None, None], pred_2d, weights
        ),
    }
    # The size ambiguity: true 2D and true shape, every hand at one size, the size
    # (from 0.8 to 1.1 times the set's mean) with the lowest mean error.
    ones = torch.ones_like(weights)
    candidates = mean_size * torch.linspace(0.8, 1.1, 31)
    means = torch.stack([
        cs_error(true_rel * (c / size)[:, None, None], data["keypoints2d"], K, ones, truth).mean()
        for c in candidates
    ])
    best = candidates[means.argmin()]
    mixes[f"true 2D, true 3D at one size for all ({1000 * best:.0f} mm, the best), unit weights"] = (
        true_rel * (best / size)[:, None, None], data["keypoints2d"], ones
    )
    print(f"{args.checkpoint} on {count} held-out crops of {args.data}")
    print(f"hand size (summed bone length): mean {1000 * mean_size:.0f} mm, "
          f"std / mean {size.std() / mean_size:.3f}")
    ratio = hand_size(pred_rel) / size
    print(f"predicted / true hand size: median {ratio.median():.3f}, relative spread "
          f"(std of the ratio) {ratio.std():.3f}; the set's mean size / true size: "
          f"{(mean_size / size).std():.3f}; correlation of predicted and true size "
          f"{torch.corrcoef(torch.stack((hand_size(pred_rel), size)))[0, 1]:.2f}")
    print("| DLT inputs | CS-MJE mean (mm) | CS-MJE median (mm) |")
    print("| --- | --- | --- |")
    for name, (relative, keypoints2d, w) in mixes.items():
        error = cs_error(relative, keypoints2d, K, w, truth)
        print(f"| {name} | {error.mean():.1f} | {error.median():.1f} |")
    print_2d_budget(
        data["pred_keypoints2d"], data["keypoints2d"], data["to_original"], loaded.config.net.image_size
    )


def print_2d_budget(
    pred_2d: torch.Tensor, true_2d: torch.Tensor, to_original: torch.Tensor, crop_size: int
) -> None:
    """The 2D error in crop and original pixels and what the crop's magnification does to it."""
    to_original = to_original.double()
    crop_error = (pred_2d - true_2d).norm(dim=-1).mean(-1).double()
    original_error = (
        transform_points(to_original, pred_2d.double()) - transform_points(to_original, true_2d.double())
    ).norm(dim=-1).mean(-1)
    scale = magnification(to_original, true_2d.double())
    top = scale >= scale.quantile(0.9)
    print()
    print(f"2D keypoint error: {crop_error.mean():.2f} crop px mean ({crop_error.median():.2f} median), "
          f"{original_error.mean():.2f} original px mean ({original_error.median():.2f} median)")
    print(f"magnification (original px per crop px): mean {scale.mean():.2f}, median "
          f"{scale.median():.2f}, 90th percentile {scale.quantile(0.9):.2f}, max {scale.max():.2f}")
    print(f"the most magnified tenth of the images carries {original_error[top].sum() / original_error.sum():.0%} "
          f"of the original-pixel error (their crop error {crop_error[top].mean():.2f} px mean)")
    for target in (8.0, 4.0):
        print(f"a mean of {target:.0f} original px needs every crop keypoint within "
              f"{target / scale.mean():.2f} crop px "
              f"({100 * target / scale.mean() / crop_size:.1f} % of the {crop_size} px crop)")


if __name__ == "__main__":
    main()
