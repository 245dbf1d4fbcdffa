"""Camera-space and 2D error of a checkpoint with each set of test-time turned views.

    python reference_model/scripts/choose_turns.py CHECKPOINT --data VALIDATION_SET \
        [--num 1024] [--sets "0;0,30,-30;0,30,-30,60,-60"]

On the first ``--num`` crops of a data set (made exactly as in training, no
augmentation), runs :func:`handdgp.net.turned_views.predict_turned` with each set of
angles (degrees, comma-separated; sets separated by ``;``) and prints, per set, the
camera-space keypoint error (CS-MJE, mean and median, mm), the Procrustes-aligned one
(PA-MJE, mm) and the 2D keypoint error in original pixels. Choose the views on a
validation set (a seed no training or held-out set uses), not on the held-out set.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from kornia.geometry.linalg import transform_points

from dgpgeom.metrics import procrustes_error
from handdgp.loading import default_dataset_factory, held_out_config, load_model
from handdgp.net.turned_views import predict_turned

DEFAULT_SETS = "0;0,15,-15;0,30,-30;0,45,-45;0,30,-30,60,-60;0,30,-30,60,-60,90,-90;0,15,-15,30,-30,45,-45,60,-60"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--num", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--sets", default=DEFAULT_SETS, help="angle sets: '0;0,30,-30;...'")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sets = [[float(a) for a in chunk.split(",")] for chunk in args.sets.split(";")]
    loaded = load_model(args.checkpoint)
    model = loaded.model.eval()
    crops = default_dataset_factory(args.data, held_out_config(loaded.config))
    items = [crops[i] for i in range(min(args.num, len(crops)))]

    def stacked(key: str) -> torch.Tensor:
        return torch.stack([item[key] for item in items])

    images, intrinsics = stacked("image"), stacked("intrinsics")
    truth3d, truth2d = stacked("keypoints3d").double(), stacked("keypoints2d").double()
    to_original = stacked("to_original").double()
    print(f"{args.checkpoint} on {len(items)} crops of {args.data}")
    print("| views (degrees) | passes | CS-MJE mean (mm) | CS-MJE median (mm) | PA-MJE (mm) | 2D (px) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for angles in sets:
        start = time.perf_counter()
        with torch.no_grad():
            parts = [
                predict_turned(model, images[i : i + args.batch], intrinsics[i : i + args.batch], angles)
                for i in range(0, len(items), args.batch)
            ]
        cam = torch.cat([p.keypoints_cam for p in parts]).double()
        relative = torch.cat([p.keypoints3d for p in parts]).double()
        points2d = torch.cat([p.keypoints2d for p in parts]).double()
        cs = 1000 * (cam - truth3d).norm(dim=-1).mean(-1)
        pa = 1000 * procrustes_error(relative, truth3d - truth3d[:, :1]).mean(-1)
        error2d = (
            transform_points(to_original, points2d) - transform_points(to_original, truth2d)
        ).norm(dim=-1).mean(-1)
        label = ", ".join(f"{a:g}" for a in angles)
        print(f"| {label} | {len(angles)} | {cs.mean():.1f} | {cs.median():.1f} | {pa.mean():.2f} "
              f"| {error2d.mean():.2f} |  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
