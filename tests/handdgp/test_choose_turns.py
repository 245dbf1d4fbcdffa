"""Tests for reference_model/scripts/choose_turns.py (test-time turned views on a data set)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "reference_model/scripts/choose_turns.py"


def test_prints_one_row_per_set_of_views(synthetic_set):
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "full", "--data", str(synthetic_set), "--num", "3",
         "--sets", "0;0,30,-30"],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("| 0")]
    assert [row.split("|")[1].strip() for row in rows] == ["0", "0, 30, -30"]
    assert [row.split("|")[2].strip() for row in rows] == ["1", "3"]
    first, second = ([float(cell) for cell in row.split("|")[3:7]] for row in rows)
    assert all(0 < value < 1000 for value in first + second)
    assert first != second  # the turned views change the answer
