"""The prepared GPU training stage (`reference_model/scripts/gpu_stage.sh`), run on the CPU in miniature.

A GPU machine held for a few minutes leaves no time for retries: the script must work the
first time.
"""

import os
import subprocess
import sys

import torch

from tests._scripts import ROOT

SCRIPT = ROOT / "reference_model" / "scripts" / "gpu_stage.sh"


def test_gpu_stage_probes_the_step_rate_trains_from_the_shipped_weights_and_returns_them_in_parts(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    bin_dir = tmp_path / "bin"  # a stand-in nvidia-smi: the script samples the GPU's load
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text('#!/bin/sh\necho "7 %, 100 MiB"\n')
    (bin_dir / "nvidia-smi").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "OUT": str(out),
        "WORK": str(tmp_path / "work"),
        "DEVICE": "cpu",
        "PYTHON": sys.executable,
        "TEST_IMAGES": "8",
        "PROBE_STEPS": "2",
        "SCRIPT_SECONDS": "90",  # the schedule fills what is left after the probe
        "BATCH": "4",
        "EXTRA": "--set train.weight_decay=0.0001 --set train.seed=3",
        "LOADER_SECONDS": "0.5",
    }
    result = subprocess.run(
        ["bash", str(SCRIPT), "auto", "5", "32"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    parts = sorted(out.glob("model.pt.part-*"))
    assert len(parts) >= 2 and all(p.stat().st_size <= 15 * 2**20 for p in parts)
    joined = tmp_path / "model.pt"
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    state = torch.load(joined, map_location="cpu", weights_only=True)
    assert "probe:" in result.stdout and "schedule:" in result.stdout
    assert state["step"] >= 2  # the probe's 2 steps, then what the schedule fitted
    assert state["config"]["train"]["batch_size"] == 4
    assert state["config"]["train"]["weight_decay"] == 1e-4 and state["config"]["train"]["seed"] == 3
    assert state["config"]["train"]["init_from"].endswith("checkpoints/full.pt")
    assert (out / "metrics.jsonl").stat().st_size > 0
    assert "| OpenCV on one thread per worker |" in (out / "loader.md").read_text()
    assert "7 %, 100 MiB" in (out / "gpu-util.txt").read_text()
    assert len(list(out.iterdir())) <= 8  # the header's promise
