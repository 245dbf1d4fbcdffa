"""Tests for examples/make_demo_sample.py: which held-out sample the demo bundles."""

import json

import pytest

from tests._scripts import load_script

SCRIPT = "examples/make_demo_sample.py"


def write_errors(path, errors, detected=None):
    per_sample = {"full": {"cs_mje_mm": errors}}
    if detected is not None:
        per_sample["mediapipe"] = {"detected": detected}
    path.write_text(json.dumps({"rows": {}, "per_sample": per_sample}))
    return path


def test_median_sample_over_all_and_over_the_detected(tmp_path):
    script = load_script(SCRIPT)
    errors = [50.0, 10.0, 90.0, 30.0, 70.0]
    detected = [False, True, True, False, True]  # errors 10, 90, 70: median 70 at index 4
    path = write_errors(tmp_path / "baselines.json", errors, detected)
    assert script.median_sample(path, "full") == 0  # errors sorted 10 30 50 70 90
    assert script.median_sample(path, "full", detected_only=True) == 4


def test_detected_only_needs_mediapipe_rows(tmp_path):
    script = load_script(SCRIPT)
    path = write_errors(tmp_path / "baselines.json", [1.0, 2.0, 3.0])
    with pytest.raises(SystemExit, match="--mediapipe"):
        script.median_sample(path, "full", detected_only=True)
