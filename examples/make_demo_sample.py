"""Regenerate the demo's bundled sample (``examples/data/synthetic_hand.*``).

Renders a small synthetic set (the shipped model's depth range) with a seed used by neither the training set (seed 0)
nor the test set (seed 1), and copies one sample's image with its intrinsics,
ground-truth keypoints and hand box (the box a detector would give: the tight box of
the projected hand, squared and scaled by 1.3, as the evaluation crops use).

    python examples/make_demo_sample.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from handdgp.data import SyntheticHandDataset
from handdgp.data.crops import hand_box

SEED, NUM, INDEX = 7, 16, 1
OUT = Path(__file__).resolve().parent / "data"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            "make-data",
            "--out",
            tmp,
            "--num",
            str(NUM),
            "--seed",
            str(SEED),
            "--depth-range",  # the shipped model's training range
            "0.4",
            "0.8",
            "--no-progress",
        ]
        subprocess.run([sys.executable, "-m", "handdgp.cli", *command], check=True)
        sample = SyntheticHandDataset(tmp, load_masks=False)[INDEX]
        intrinsics = sample.intrinsics.astype(np.float64)
        keypoints = sample.keypoints3d.astype(np.float64)
        vertices = sample.vertices.astype(np.float64)
        points = np.concatenate([keypoints, vertices])
        projected = points @ intrinsics.T
        box = hand_box(projected[:, :2] / projected[:, 2:], 1.3)
        OUT.mkdir(exist_ok=True)
        shutil.copy(Path(tmp) / "training" / "rgb" / f"{INDEX:08d}.jpg", OUT / "synthetic_hand.jpg")
    record = {
        "recipe": f"handdgp make-data --out DIR --num {NUM} --seed {SEED} --depth-range 0.4 0.8; "
        f"sample {INDEX}",
        "image": "synthetic_hand.jpg",
        "intrinsics": intrinsics.round(6).tolist(),
        "box": box.round(3).tolist(),
        "keypoints_cam": keypoints.round(6).tolist(),
    }
    lines = ",\n".join(f" {json.dumps(key)}: {json.dumps(value)}" for key, value in record.items())
    (OUT / "synthetic_hand.json").write_text("{\n" + lines + "\n}\n")
    print(f"wrote {OUT / 'synthetic_hand.jpg'} and {OUT / 'synthetic_hand.json'}")


if __name__ == "__main__":
    main()
