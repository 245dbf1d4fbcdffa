"""Regenerate the figures of the tutorial (docs/tutorial.md).

Run from the repository root, with dgpgeom and handdgp installed (or on the path)::

    OMP_NUM_THREADS=1 python docs/figures/make_tutorial_figures.py

It runs the tutorial's steps through the ``handdgp`` command line at a larger size
than the page's own (CI-run) code: 1024 training and 64 held-out samples of 128-192
pixel images, 64-pixel crops, a network of width 0.25, 6 epochs of 64 steps (about
5 CPU minutes on one thread; 11 minutes of wall-clock time on a busy machine), then copies the contact sheet, the loss curves, the
prediction overlay and the side view to ``docs/figures/tutorial/`` and writes the
evaluation table to ``results.md`` there. Data, training and evaluation are seeded,
so the numbers repeat on the same machine and library versions.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "reference_model")]  # this checkout's packages

from handdgp.cli import main  # noqa: E402

OUT = HERE / "tutorial"
SCENE = ["--image-size-range", "128", "192", "--focal-range", "150", "400",
         "--depth-range", "0.3", "0.7"]  # fmt: skip
OVERRIDES = {
    "net.image_size": 64,
    "net.width": 0.25,
    "train.batch_size": 16,
    "train.epochs": 6,
    "train.eval_every": 64,
    "train.checkpoint_every": 64,
    "data.max_test_samples": 64,
}


def run(argv: list[str]) -> None:
    print("$ handdgp " + " ".join(argv), flush=True)
    start = time.perf_counter()
    status = main(argv)
    if status != 0:
        raise SystemExit(status)
    print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)


def main_script() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="handdgp-tutorial-"))
    train_dir, test_dir, run_dir = work / "train", work / "test", work / "run"
    for out, num, seed in ((train_dir, 1024, 0), (test_dir, 64, 1)):
        run(["make-data", "--out", str(out), "--num", str(num), "--seed", str(seed),
             "--workers", "1", "--no-progress", *SCENE])  # fmt: skip
    run(["show-data", str(train_dir), "--out", str(OUT / "contact_sheet.png"), "--num", "8",
         "--crops", "--tile", "192", "--image-size", "64", "--canonical-focal", "80"])  # fmt: skip

    overrides = {**OVERRIDES, "data.train": str(train_dir), "data.test": str(test_dir)}
    sets = [arg for key, value in overrides.items()
            for arg in ("--set", f"{key}={value if isinstance(value, str) else json.dumps(value)}")]  # fmt: skip
    run(["train", "full", "--run-dir", str(run_dir), *sets, "--no-progress"])
    shutil.copy(run_dir / "loss_curves.png", OUT / "loss_curves.png")

    run(["evaluate", str(run_dir / "model.pt"), "--data", str(test_dir), "--out", str(work / "eval")])
    table = (work / "eval" / "results.md").read_text()
    (OUT / "results.md").write_text(table.replace(str(test_dir), "test"))

    k = json.loads((test_dir / "training_K.json").read_text())[0]
    run(["predict", str(test_dir / "training" / "rgb" / "00000000.jpg"),
         "--checkpoint", str(run_dir / "model.pt"), "--out", str(work / "pred"),
         "--intrinsics", f"{k[0][0]},{k[1][1]},{k[0][2]},{k[1][2]}"])  # fmt: skip
    shutil.copy(work / "pred" / "00000000_overlay.png", OUT / "overlay.png")
    shutil.copy(work / "pred" / "00000000_side_view.png", OUT / "side_view.png")
    shutil.rmtree(work)
    print(f"wrote the figures to {OUT}")


if __name__ == "__main__":
    main_script()
