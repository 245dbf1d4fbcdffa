"""The demo behind `make demo` runs and recovers the translation."""

import pathlib
import runpy


def test_demo_runs_and_reports_small_errors(capsys):
    demo = pathlib.Path(__file__).resolve().parents[1] / "examples" / "demo.py"
    runpy.run_path(str(demo), run_name="__main__")
    out = capsys.readouterr().out
    assert "all valid: True" in out
    errors_mm = [float(line.split()[6]) for line in out.splitlines() if line.count("+") + line.count("-") >= 6]
    assert len(errors_mm) == 4
    assert max(errors_mm) < 50.0
