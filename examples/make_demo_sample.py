"""Regenerate the demo's bundled sample (``examples/data/synthetic_hand.*``).

Copies one held-out image with its intrinsics, ground-truth camera-space keypoints
and hand box (the tight square box of the projected hand, as a detector would give
it; the model's crop scales it by its own ``data.box_scale``). The bundled sample is
the held-out image on which the shipped model's camera-space error is the median,
picked from the per-sample errors that ``handdgp baselines --out`` writes, among the
images MediaPipe Hands detects (``--detected-only``), so that ``handdgp predict`` on it
finds the hand without ``--box`` too:

    handdgp make-data --out data/synthetic/test --num 1024 --seed 9001
    handdgp baselines full --data data/synthetic/test --mediapipe --tta --out baselines.json
    python examples/make_demo_sample.py --data data/synthetic/test --median-of baselines.json \
        --detected-only --name "full + TTA"

(``full + TTA``: the model with five turned views, as the demo runs it.)
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from handdgp.data import SyntheticHandDataset
from handdgp.data.crops import hand_box

OUT = Path(__file__).resolve().parent / "data"
TEST_SET = "handdgp make-data --out data/synthetic/test --num 1024 --seed 9001"


def median_sample(errors_json: Path, name: str, detected_only: bool = False) -> int:
    """Index of the held-out sample on which ``name``'s camera-space MJE is the median.

    With ``detected_only``, the median over the samples MediaPipe detected (the JSON
    must come from ``handdgp baselines --mediapipe``).
    """
    per_sample = json.loads(errors_json.read_text())["per_sample"]
    if name not in per_sample:
        raise SystemExit(f"error: --name {name!r} not in {errors_json} (has: {', '.join(per_sample)})")
    errors = np.asarray(per_sample[name]["cs_mje_mm"])
    candidates = np.arange(len(errors))
    if detected_only:
        if "mediapipe" not in per_sample:
            raise SystemExit(f"error: --detected-only needs {errors_json} from `handdgp baselines --mediapipe`")
        candidates = candidates[np.asarray(per_sample["mediapipe"]["detected"], dtype=bool)]
    order = candidates[np.argsort(errors[candidates])]
    return int(order[len(order) // 2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="held-out set directory")
    choice = parser.add_mutually_exclusive_group(required=True)
    choice.add_argument("--index", type=int, help="sample to bundle")
    choice.add_argument("--median-of", type=Path, help="`handdgp baselines --out` JSON")
    parser.add_argument("--name", default="full", help="model in --median-of to use")
    parser.add_argument(
        "--detected-only", action="store_true", help="median over the images MediaPipe detects"
    )
    args = parser.parse_args()

    index = args.index if args.index is not None else median_sample(
        args.median_of, args.name, args.detected_only
    )
    sample = SyntheticHandDataset(args.data, load_masks=False)[index]
    intrinsics = sample.intrinsics.astype(np.float64)
    keypoints = sample.keypoints3d.astype(np.float64)
    points = np.concatenate([keypoints, sample.vertices.astype(np.float64)])
    projected = points @ intrinsics.T
    box = hand_box(projected[:, :2] / projected[:, 2:], 1.0)
    OUT.mkdir(exist_ok=True)
    shutil.copy(args.data / "training" / "rgb" / f"{index:08d}.jpg", OUT / "synthetic_hand.jpg")
    why = "a held-out sample"
    if args.median_of:
        why = "the held-out sample with the median camera-space error of the shipped model"
        why += " (five turned views)" if args.name.endswith("+ TTA") else ""
        why += " among those MediaPipe Hands detects" if args.detected_only else ""
    record = {
        "recipe": f"{TEST_SET}; sample {index}, {why}",
        "image": "synthetic_hand.jpg",
        "intrinsics": intrinsics.round(6).tolist(),
        "box": box.round(3).tolist(),
        "keypoints_cam": keypoints.round(6).tolist(),
    }
    lines = ",\n".join(f" {json.dumps(key)}: {json.dumps(value)}" for key, value in record.items())
    (OUT / "synthetic_hand.json").write_text("{\n" + lines + "\n}\n")
    print(f"sample {index}: wrote {OUT / 'synthetic_hand.jpg'} and {OUT / 'synthetic_hand.json'}")


if __name__ == "__main__":
    main()
