"""Demo: a camera-space hand mesh from one image with the shipped HandDGP model.

Runs the reference model's ``full`` checkpoint (rectification + differentiable global
positioning + learned keypoint weights, trained on synthetic renders) on a bundled
synthetic image whose intrinsics and ground truth are known, prints the camera-space
error against that ground truth, and writes the mesh (``.ply``), the keypoints
(``.json``), the overlay and the side view. The prediction is averaged over the crop
turned by 0, ±30 and ±60 degrees (``--tta``). The same prediction from the command line:

    handdgp predict examples/data/synthetic_hand.jpg --checkpoint full \\
        --intrinsics FX,FY,CX,CY --box=X0,Y0,X1,Y1 --tta --out demo_output

The sample is from the held-out set, not the training set: one at the median
camera-space error of the shipped checkpoint, so what it shows is typical (its recipe
is in the ``.json``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import cv2
import numpy as np
import torch

from dgpgeom.metrics import point_error, procrustes_error, root_relative_error
from handdgp.loading import load_model, resolve_checkpoint
from handdgp.net.turned_views import DEFAULT_TURNS
from handdgp.outputs import write_outputs
from handdgp.predict import predict_image

SAMPLE = Path(__file__).resolve().parent / "data" / "synthetic_hand.json"


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="full", help="checkpoint file or shipped name")
    parser.add_argument("--sample", type=Path, default=SAMPLE, help="sample .json")
    parser.add_argument("--out", type=Path, default=Path("demo_output"))
    args = parser.parse_args(argv)

    sample = json.loads(args.sample.read_text())
    image_path = args.sample.parent / sample["image"]
    image = np.ascontiguousarray(cv2.imread(str(image_path), cv2.IMREAD_COLOR)[..., ::-1])
    intrinsics = np.asarray(sample["intrinsics"], dtype=np.float64)
    truth = np.asarray(sample["keypoints_cam"], dtype=np.float64)

    loaded = load_model(args.checkpoint)
    prediction = predict_image(
        loaded.model, image, intrinsics, sample["box"], data=loaded.config.data, turns=DEFAULT_TURNS
    )
    written = write_outputs(args.out, image_path.stem, image, prediction, loaded.faces)

    pred_t, true_t = torch.from_numpy(prediction.keypoints_cam), torch.from_numpy(truth)
    errors = {
        "wrist_mm": float(np.linalg.norm(prediction.translation - truth[0]) * 1000),
        "cs_mje_mm": float(point_error(pred_t, true_t).mean() * 1000),
        "rs_mje_mm": float(root_relative_error(pred_t, true_t).mean() * 1000),
        "pa_mje_mm": float(procrustes_error(pred_t, true_t).mean() * 1000),
    }

    # A shipped checkpoint's recipe counts the steps of all its stages; the checkpoint
    # itself only those of its last one.
    recipe = resolve_checkpoint(args.checkpoint).with_suffix(".json")
    steps = json.loads(recipe.read_text())["total_steps"] if recipe.exists() else loaded.step
    height, width = image.shape[:2]
    fx, fy, cx, cy = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]
    print(
        f"HandDGP '{loaded.config.name}' ({steps:,} training steps, {len(DEFAULT_TURNS)} turned "
        f"views) on {image_path.name}: "
        f"{width}x{height} px, fx {fx:.1f} px, fy {fy:.1f} px, principal point ({cx:.1f}, {cy:.1f})"
    )
    print(f"{'':22}{'x (m)':>9}{'y (m)':>9}{'z (m)':>9}")
    print(f"{'wrist, predicted':22}" + "".join(f"{v:+9.4f}" for v in prediction.translation))
    print(f"{'wrist, ground truth':22}" + "".join(f"{v:+9.4f}" for v in truth[0]))
    print(f"\nwrist position error:                     {errors['wrist_mm']:7.1f} mm")
    print(f"camera-space keypoint error (CS-MJE):     {errors['cs_mje_mm']:7.1f} mm")
    print(f"root-relative keypoint error (RS-MJE):    {errors['rs_mje_mm']:7.1f} mm")
    print(f"Procrustes-aligned keypoint error (PA):   {errors['pa_mje_mm']:7.1f} mm")
    print(f"positioning valid: {bool(prediction.valid)}\n")
    for name, path in written.items():
        print(f"wrote {name:10} {path}")
    box = ",".join(f"{v:g}" for v in sample["box"])
    print(
        f"\nsame from the command line: handdgp predict {os.path.relpath(image_path)} "
        f"--checkpoint {args.checkpoint} --intrinsics {fx:g},{fy:g},{cx:g},{cy:g} "
        f"--box={box} --tta --out {args.out}"
    )
    return errors


if __name__ == "__main__":
    main()
