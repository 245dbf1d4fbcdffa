"""Mean and spread over seeds of the ablation runs written by ``ablations.sh``.

    python reference_model/scripts/ablation_table.py runs/ablations > table.md

Reads every ``evaluation*/results.json`` under the directory, groups the rows by
experiment (B2's weights evaluated with ``refine`` are B4), and prints one
Markdown row per experiment: the mean over seeds and, in brackets, the lowest and
highest seed ("n/a" where a seed's evaluation lacks the metric).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

COLUMNS = (
    ("pa_mje_mm", "PA-MJE (mm)"),
    ("kp2d_crop_px", "2D (crop px)"),
    ("rs_mje_mm", "RS-MJE (mm)"),
    ("cs_mje_mm", "CS-MJE (mm)"),
    ("auc_cs", "AUC CS 0-50 mm"),
    ("valid_fraction", "valid"),
)
ORDER = ("full", "A3", "A4", "B2", "B4", "B5")


def collect(root: Path) -> dict[str, list[dict[str, float]]]:
    """``{experiment: [metrics of each seed]}`` from the evaluation files under ``root``."""
    runs: dict[str, list[dict[str, float]]] = {}
    for path in sorted(root.glob("evaluation*/results.json")):
        for record in json.loads(path.read_text())["results"]:
            name = "B4" if record["positioning"] == "refine" else record["experiment"]
            runs.setdefault(name, []).append(record["metrics"])
    return runs


def markdown(runs: dict[str, list[dict[str, float]]]) -> str:
    """The table: mean [min, max] over seeds per experiment."""
    lines = [
        "| experiment | seeds | " + " | ".join(title for _, title in COLUMNS) + " |",
        "| --- | --- |" + " --- |" * len(COLUMNS),
    ]
    names = [n for n in ORDER if n in runs] + sorted(set(runs) - set(ORDER))
    for name in names:
        cells = []
        for key, _ in COLUMNS:
            values = [m[key] for m in runs[name] if key in m]
            if len(values) < len(runs[name]):  # evaluations from before the metric existed
                cells.append("n/a")
                continue
            digits = 3 if key in ("auc_cs", "valid_fraction") else 1
            cells.append(
                f"{statistics.mean(values):.{digits}f} "
                f"[{min(values):.{digits}f}, {max(values):.{digits}f}]"
            )
        lines.append(f"| {name} | {len(runs[name])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(collect(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/ablations"))), end="")
