"""Tests for reference_model/scripts/size_floor.py (the camera-space floor against the hands' size spread)."""

import json
import sys

import torch

from tests._scripts import load_script

SCRIPT = "reference_model/scripts/size_floor.py"


def scenes(sizes: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-space keypoints of one random hand shape at each size, 0.5 m away, and their K."""
    shape = torch.randn(21, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    shape = (shape - shape[:1]) * 0.03
    hands = torch.stack([shape * s for s in sizes]) + torch.tensor(
        [0.02, -0.01, 0.5], dtype=torch.float64
    )
    K = torch.tensor(
        [[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]], dtype=torch.float64
    )
    return hands, K.expand(len(sizes), 3, 3)


def test_hands_of_one_size_are_placed_exactly():
    script = load_script(SCRIPT)
    floor = script.one_size_floor(*scenes([1.0, 1.0, 1.0]))
    assert float(floor.max()) < 1e-6  # mm


def test_hands_of_different_sizes_are_not_and_less_so_when_sizes_spread_less():
    script = load_script(SCRIPT)
    wide = script.one_size_floor(*scenes([0.8, 1.0, 1.2])).mean()
    narrow = script.one_size_floor(*scenes([0.9, 1.0, 1.1])).mean()
    # A hand 20 % off the chosen size is placed about 20 % of 0.5 m off.
    assert 30 < float(wide) < 100
    assert 0.4 < float(narrow / wide) < 0.6


def test_table_rows_follow_the_factors(tmp_path, monkeypatch, capsys):
    script = load_script(SCRIPT)
    hands, K = scenes([0.8, 1.0, 1.2])
    (tmp_path / "training_xyz.json").write_text(json.dumps(hands.tolist()))
    (tmp_path / "training_K.json").write_text(json.dumps(K.tolist()))
    monkeypatch.setattr(
        sys, "argv", ["size_floor.py", "--data", str(tmp_path), "--factors", "1", "0"]
    )
    script.main()
    rows = [
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("| 1 ") or line.startswith("| 0 ")
    ]
    assert len(rows) == 2
    assert float(rows[1].split("|")[3]) < 1e-3 < float(rows[0].split("|")[3])  # a = 0: one size
