"""reference_model/scripts/ablation_table.py: mean and range over seeds, B4 from refine."""

import json
from pathlib import Path

from tests._scripts import load_script

SCRIPT = "reference_model/scripts/ablation_table.py"


def write_evaluation(
    folder: Path, records: list[tuple[str, str, float]], kp2d: float | None = None
) -> None:
    folder.mkdir(parents=True)
    results = [
        {
            "experiment": experiment,
            "positioning": positioning,
            "metrics": {"pa_mje_mm": cs / 10, "rs_mje_mm": cs / 2, "cs_mje_mm": cs,
                        "auc_cs": 0.1, "valid_fraction": 1.0},
        }
        for experiment, positioning, cs in records
    ]
    if kp2d is not None:
        for result in results:
            result["metrics"]["kp2d_crop_px"] = kp2d
    (folder / "results.json").write_text(json.dumps({"data": "x", "results": results}))


def test_2d_column_is_averaged_where_every_seed_has_it(tmp_path):
    table = load_script(SCRIPT)
    write_evaluation(tmp_path / "evaluation-seed1", [("full", "dgp", 100.0)], kp2d=6.0)
    write_evaluation(tmp_path / "evaluation-seed2", [("full", "dgp", 110.0)], kp2d=7.0)
    row = table.markdown(table.collect(tmp_path)).splitlines()[2]
    assert row.startswith("| full | 2 | 10.5 [10.0, 11.0] | 6.5 [6.0, 7.0] |")


def test_groups_seeds_and_names_refined_b2_as_b4(tmp_path):
    table = load_script(SCRIPT)
    write_evaluation(tmp_path / "evaluation-seed1", [("full", "dgp", 100.0), ("B2", "dgp", 150.0)])
    write_evaluation(tmp_path / "evaluation-seed2", [("full", "dgp", 110.0), ("B2", "dgp", 160.0)])
    write_evaluation(tmp_path / "evaluation-B4-seed1", [("B2", "refine", 500.0)])
    runs = table.collect(tmp_path)
    assert sorted(runs) == ["B2", "B4", "full"]
    assert [m["cs_mje_mm"] for m in runs["full"]] == [100.0, 110.0]
    lines = table.markdown(runs).splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| full", "| B2", "| B4"]
    assert "| full | 2 | 10.5 [10.0, 11.0] | n/a | 52.5 [50.0, 55.0] | 105.0 [100.0, 110.0] |" in lines[2]
    assert "| B4 | 1 |" in lines[4]
