"""The baseline rows: constant hand, per-sample model errors, the table."""

import json

import numpy as np
import pytest
import torch

from handdgp.baselines import (
    constant_hand,
    constant_hand_errors,
    format_rows,
    model_errors,
    summarise,
)
from handdgp.cli import main
from handdgp.data import SyntheticHandDataset

from .toy import IndexedCrops, OracleNet


class TestConstantHand:
    def test_mean_hand_is_root_relative_and_beats_a_random_hand(self, synthetic_set):
        samples = SyntheticHandDataset(synthetic_set, load_masks=False)
        keypoints, vertices = constant_hand(samples, limit=40)
        assert keypoints.shape == (21, 3) and vertices.shape[-1] == 3
        assert torch.allclose(keypoints[0], torch.zeros(3, dtype=keypoints.dtype))
        held_out = list(range(40, len(samples)))
        errors = constant_hand_errors(keypoints, vertices, samples, held_out)
        assert errors["pa_mje_mm"].shape == (len(held_out),)
        # The mean hand is a better constant than one particular training hand.
        other = torch.as_tensor(samples[0].keypoints3d, dtype=torch.float64)
        single = constant_hand_errors(other - other[:1], vertices, samples, held_out)
        assert errors["pa_mje_mm"].mean() < single["pa_mje_mm"].mean()
        assert 3.0 < errors["pa_mje_mm"].mean() < 40.0


class TestModelErrors:
    def test_a_perfect_model_scores_zero_and_an_offset_one_its_offset(self):
        crops = IndexedCrops(size=6)
        exact = model_errors(OracleNet(crops), crops, batch_size=4)
        for key in ("pa_mje_mm", "pa_mve_mm", "cs_mje_mm", "kp2d_px", "hand2d_px"):
            assert exact[key].shape == (6,)
            assert np.allclose(exact[key], 0.0, atol=1e-3)
        shifted = model_errors(OracleNet(crops, offset=(0.0, 0.02, 0.0)), crops)
        assert np.allclose(shifted["cs_mje_mm"], 20.0, atol=1e-3)
        assert np.allclose(shifted["pa_mje_mm"], 0.0, atol=1e-3)
        # The 2D head is still exact; the placed hand, 2 cm off, projects off it.
        assert np.allclose(shifted["kp2d_px"], 0.0, atol=1e-3)
        assert (shifted["hand2d_px"] > 1.0).all()


class TestSummary:
    def test_mask_mean_median_and_table(self):
        errors = {"cs_mje_mm": np.array([1.0, 2.0, 9.0]), "pa_mje_mm": np.array([3.0, 4.0, 5.0])}
        summary = summarise(errors, np.array([True, True, False]))
        assert summary == {
            "num_samples": 2.0,
            "cs_mje_mm": 1.5,
            "pa_mje_mm": 3.5,
            "cs_mje_median_mm": 1.5,
        }
        table = format_rows({"row": summary})
        assert table.splitlines()[2].startswith("| row | 2 | 3.5 | — | 1.5 | 1.5 | — | — |")


def test_command_prints_the_constant_hand_row(synthetic_set, capsys, tmp_path):
    out = tmp_path / "rows.json"
    code = main(
        ["baselines", "--data", str(synthetic_set), "--train", str(synthetic_set),
         "--train-samples", "20", "--max-samples", "10", "--out", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| constant hand (training mean) | 10 |" in printed
    assert out.is_file()


@pytest.mark.parametrize("flag", ["--data"])
def test_command_requires_the_data(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["baselines"])
    assert exit_info.value.code == 2
    assert flag in capsys.readouterr().err


def test_two_checkpoints_of_one_experiment_get_two_rows(synthetic_set, capsys, tmp_path):
    from handdgp.loading import resolve_checkpoint

    out = tmp_path / "rows.json"
    shipped = str(resolve_checkpoint("full"))
    code = main(["baselines", "full", shipped, "--data", str(synthetic_set), "--max-samples", "4",
                 "--out", str(out)])
    assert code == 0
    rows = json.loads(out.read_text())
    assert set(rows["per_sample"]) == {"full", f"full [{shipped}]"}
    first, second = rows["per_sample"].values()
    assert first["cs_mje_mm"] == second["cs_mje_mm"]  # the same weights, scored the same
    assert len(first["cs_mje_mm"]) == 4


def test_tta_adds_a_turned_views_row(synthetic_set, tmp_path):
    out = tmp_path / "rows.json"
    code = main(["baselines", "full", "--data", str(synthetic_set), "--max-samples", "3", "--tta",
                 "--out", str(out)])
    assert code == 0
    rows = json.loads(out.read_text())
    assert set(rows["rows"]) == {"full (all)", "full + TTA (all)"}
    plain, turned = rows["per_sample"]["full"], rows["per_sample"]["full + TTA"]
    assert len(turned["cs_mje_mm"]) == 3 and turned["cs_mje_mm"] != plain["cs_mje_mm"]
