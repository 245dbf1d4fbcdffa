"""Tests for reference_model/scripts/average_weights.py (the mean of checkpoints' weights)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from handdgp.loading import load_model

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "reference_model/scripts/average_weights.py"


def _checkpoint(path: Path, weight: float, counter: int, step: int, **extra) -> Path:
    model = {
        "layer.weight": torch.full((2, 3), weight),
        "norm.num_batches_tracked": torch.tensor(counter),
        **extra,
    }
    torch.save({"model": model, "config": {"name": f"step {step}"}, "step": step}, path)
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False, cwd=ROOT
    )


def test_floating_weights_are_averaged_and_the_rest_is_the_last_checkpoints(tmp_path):
    a = _checkpoint(tmp_path / "a.pt", 1.0, 10, 100)
    b = _checkpoint(tmp_path / "b.pt", 2.0, 20, 200)
    c = _checkpoint(tmp_path / "c.pt", 6.0, 30, 300)
    run = _run(str(a), str(b), str(c), "--out", str(tmp_path / "soup.pt"))
    assert run.returncode == 0, run.stderr
    soup = torch.load(tmp_path / "soup.pt", weights_only=True)
    assert torch.equal(soup["model"]["layer.weight"], torch.full((2, 3), 3.0))
    assert soup["model"]["norm.num_batches_tracked"].item() == 30
    assert (soup["config"], soup["step"]) == ({"name": "step 300"}, 300)


def test_the_shipped_checkpoint_averaged_with_itself_is_unchanged(tmp_path):
    run = _run("full", "full", "--out", str(tmp_path / "soup.pt"))
    assert run.returncode == 0, run.stderr
    shipped, soup = load_model("full").model, load_model(tmp_path / "soup.pt").model
    for (name, x), (_, y) in zip(
        shipped.state_dict().items(), soup.state_dict().items(), strict=True
    ):
        assert torch.equal(x, y), name  # (x + x) / 2 is exact in floating point


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"head.bias": torch.zeros(2)}, "'head.bias' is in only one"),
        ({"layer.weight": torch.zeros(3, 2)}, "layer.weight: expected shape (2, 3)"),
    ],
)
def test_checkpoints_of_different_networks_are_refused_by_name(tmp_path, extra, message):
    a = _checkpoint(tmp_path / "a.pt", 1.0, 10, 100)
    b = _checkpoint(tmp_path / "b.pt", 2.0, 20, 200, **extra)
    run = _run(str(a), str(b), "--out", str(tmp_path / "soup.pt"))
    assert run.returncode == 2
    assert f"{tmp_path / 'b.pt'}:" in run.stderr and message in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "soup.pt").exists()


def test_one_checkpoint_a_missing_file_or_a_non_checkpoint_is_refused(tmp_path):
    a = _checkpoint(tmp_path / "a.pt", 1.0, 10, 100)
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    for args, message in [
        ([str(a)], "expected at least two to average, got 1"),
        ([str(a), str(tmp_path / "missing.pt")], "no file"),
        ([str(a), str(tmp_path / "notes.pt")], "notes.pt: not a checkpoint"),
    ]:
        run = _run(*args, "--out", str(tmp_path / "soup.pt"))
        assert run.returncode == 2 and message in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
