"""reference_model/scripts/compare_runs.py: per-step losses of two runs, window by window."""

import json
from pathlib import Path

import pytest

from tests._scripts import load_script

SCRIPT = "reference_model/scripts/compare_runs.py"


def write_run(folder: Path, losses: list[float], first_step: int = 1) -> Path:
    folder.mkdir()
    lines = [
        json.dumps({"step": first_step + i, "lr": 1e-3, "loss": loss, "heatmap": 2 * loss})
        for i, loss in enumerate(losses)
    ]
    lines.insert(3, json.dumps({"step": first_step + 2, "eval": {"pa_mje_mm": 12.0}}))
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_means_over_windows_and_ratio(tmp_path, capsys):
    script = load_script(SCRIPT)
    a = write_run(tmp_path / "a", [1.0] * 10)
    b = write_run(tmp_path / "b", [1.0] * 6 + [2.0] * 4)
    assert script.main([str(a), str(b), "--steps", "10"]) == 0
    rows = {line.split(" | ")[0][2:] + " " + line.split(" | ")[1]: line
            for line in capsys.readouterr().out.splitlines()[2:]}
    assert rows["loss 1-10"].endswith("| 1.0000 | 1.4000 | 1.400 |")
    assert rows["loss 1-2"].endswith("| 1.0000 | 1.0000 | 1.000 |")
    assert rows["loss 7-10"].endswith("| 1.0000 | 2.0000 | 2.000 |")
    assert rows["heatmap 7-10"].endswith("| 2.0000 | 4.0000 | 2.000 |")


def test_runs_from_different_steps_are_refused(tmp_path):
    script = load_script(SCRIPT)
    a = write_run(tmp_path / "a", [1.0] * 10)
    b = write_run(tmp_path / "b", [1.0] * 10, first_step=5)
    with pytest.raises(SystemExit, match="different steps"):
        script.main([str(a), str(b), "--steps", "10"])


def test_too_few_steps_logged_is_refused(tmp_path):
    script = load_script(SCRIPT)
    a = write_run(tmp_path / "a", [1.0] * 10)
    with pytest.raises(SystemExit, match="10 training steps logged, --steps asks for 20"):
        script.main([str(a), str(a), "--steps", "20"])
