"""The whole reference-model pipeline through ``handdgp.cli.main``, at toy size, on real
generated data: make-data → train (killed, then resumed) → evaluate → predict.

A killed and resumed run must end with the same weights as an uninterrupted one; the
ablations that change the data path (A4, no rectification) or the positioning head
(B5, root regression) must run through the same commands.
"""

from __future__ import annotations

import json

import pytest
import torch

from handdgp.cli import main
from handdgp.evaluate import TABLE_COLUMNS
from handdgp.train import CHECKPOINT, FINAL_MODEL, load_checkpoint, read_metrics

STEPS = 6  # batch 8 over 48 samples: one epoch
KILL_AT = 5  # after the checkpoint of step 4: step 5 is lost and redone
IMAGE_SIZES = ["--image-size-range", "64", "96", "--focal-range", "60", "150"]


def toy_overrides(root, **extra):
    """``--set`` arguments of a toy network (32-pixel crops, width 0.125) on ``root``."""
    values = {
        "data.train": str(root / "train"),
        "data.test": str(root / "test"),
        "data.max_test_samples": 8,
        "net.image_size": 32,
        "net.width": 0.125,
        "net.depth": [1, 1, 1, 1],
        "train.batch_size": 8,
        "train.epochs": 1,
        "train.checkpoint_every": 2,
        "train.eval_every": 1000,
        **extra,
    }
    args = []
    for key, value in values.items():
        args += ["--set", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    return [*args, "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """48 training and 16 held-out samples, 64-96 px images, made by the CLI."""
    root = tmp_path_factory.mktemp("pipeline")
    for name, num, seed in (("train", 48, 0), ("test", 16, 1)):
        args = ["make-data", "--out", str(root / name), "--num", str(num), "--seed", str(seed)]
        assert main([*args, "--workers", "1", "--no-progress", *IMAGE_SIZES]) == 0
    return root


@pytest.fixture(scope="module")
def full_run(data):
    """An uninterrupted toy run of the ``full`` experiment."""
    run = data / "runs" / "uninterrupted"
    assert main(["train", "full", "--run-dir", str(run), *toy_overrides(data)]) == 0
    return run


def test_make_data_writes_the_freihand_layout(data):
    for name, num in (("train", 48), ("test", 16)):
        assert len(json.loads((data / name / "training_K.json").read_text())) == num
        assert len(list((data / name / "training" / "rgb").glob("*.jpg"))) == num


def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(data, full_run, capsys):
    run = data / "runs" / "killed"
    # Stopping after step 5 leaves the state a kill there would: the checkpoint of step 4.
    killed = ["train", "full", "--run-dir", str(run), "--stop-after", str(KILL_AT)]
    assert main([*killed, *toy_overrides(data)]) == 0
    assert f"{KILL_AT}/{STEPS} steps" in capsys.readouterr().out
    assert not (run / FINAL_MODEL).exists()
    assert load_checkpoint(run / CHECKPOINT)["step"] == 4

    assert main(["train", "full", "--run-dir", str(run), *toy_overrides(data)]) == 0
    assert f"{STEPS}/{STEPS} steps" in capsys.readouterr().out

    resumed = load_checkpoint(run / FINAL_MODEL)
    reference = load_checkpoint(full_run / FINAL_MODEL)
    assert resumed["step"] == reference["step"] == STEPS
    assert resumed["model"].keys() == reference["model"].keys()
    for name, value in reference["model"].items():
        torch.testing.assert_close(resumed["model"][name], value, rtol=0, atol=0, msg=name)
    # the lost step 5 was redone once: the log holds every step exactly once
    steps = [record["step"] for record in read_metrics(run)[0]]
    assert steps == list(range(1, STEPS + 1))
    assert (run / "loss_curves.png").stat().st_size > 1000


def test_evaluate_prints_the_table(data, full_run, capsys):
    out = data / "evaluation"
    args = ["evaluate", str(full_run / FINAL_MODEL), "--data", str(data / "test")]
    assert main([*args, "--out", str(out), "--batch-size", "8"]) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("| Method"))
    assert header == "| Method | " + " | ".join(title for title, _, _ in TABLE_COLUMNS) + " |"
    row = next(line for line in printed.splitlines() if line.startswith("| full"))
    assert len(row.split("|")) == len(header.split("|"))
    assert "16 samples" in printed
    results = json.loads((out / "results.json").read_text())["results"]
    assert [r["step"] for r in results] == [STEPS]
    assert (out / "pck_camera_space.png").stat().st_size > 1000


def test_predict_writes_mesh_keypoints_and_figures(data, full_run, capsys):
    k = json.loads((data / "test" / "training_K.json").read_text())[0]
    intrinsics = f"{k[0][0]},{k[1][1]},{k[0][2]},{k[1][2]}"
    image = data / "test" / "training" / "rgb" / "00000000.jpg"
    out = data / "predictions"
    args = ["predict", str(image), "--checkpoint", str(full_run / FINAL_MODEL)]
    assert main([*args, "--intrinsics", intrinsics, "--out", str(out)]) == 0
    assert "ASSUMED" not in capsys.readouterr().out
    files = {p.name: p.stat().st_size for p in out.iterdir()}
    assert sorted(files) == [
        "00000000_keypoints.json",
        "00000000_mesh.ply",
        "00000000_overlay.png",
        "00000000_side_view.png",
    ]
    assert all(size > 0 for size in files.values())
    keypoints = json.loads((out / "00000000_keypoints.json").read_text())
    assert json.dumps(keypoints).count("NaN") == 0
    ply = (out / "00000000_mesh.ply").read_bytes()
    assert ply.startswith(b"ply") and b"element vertex 1609" in ply


@pytest.mark.parametrize(
    ("experiment", "check"),
    [
        ("A4", lambda config: not config["data"]["rectify"]),
        ("B5", lambda config: config["net"]["positioning"] == "root_regression"),
    ],
)
def test_ablations_run_through_the_same_path(data, experiment, check, capsys):
    run = data / "runs" / experiment
    overrides = toy_overrides(data, **{"train.max_steps": 2})
    assert main(["train", experiment, "--run-dir", str(run), *overrides]) == 0
    assert "2/2 steps" in capsys.readouterr().out
    state = load_checkpoint(run / FINAL_MODEL)
    assert state["config"]["name"] == experiment and check(state["config"])
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    args = ["evaluate", str(run / FINAL_MODEL), "--data", str(data / "test")]
    assert main([*args, "--out", str(data / f"evaluation-{experiment}")]) == 0
    assert f"| {experiment} |" in capsys.readouterr().out
