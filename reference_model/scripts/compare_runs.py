"""Compare the per-step training losses of two runs that saw the same batches.

    python reference_model/scripts/compare_runs.py RUN_A RUN_B [--steps 250]

Training is deterministic in its data: two runs with the same seed, data and
schedule see the same batch at every step, so their ``metrics.jsonl`` can be compared
step by step (for instance float32 against bf16 autocast from the same warm start).
For every loss term both runs logged, prints its mean over the first ``--steps``
steps, over the first fifth of them and over the last two fifths, in each run, and
B's mean over A's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def read_steps(run_dir: Path, steps: int) -> list[dict[str, float]]:
    """The first ``steps`` per-step records of ``run_dir/metrics.jsonl`` (evaluations skipped)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise SystemExit(f"error: {path}: no metrics.jsonl (is {run_dir} a run directory?)")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    records = [r for r in records if "loss" in r][:steps]
    if len(records) < steps:
        raise SystemExit(f"error: {path}: {len(records)} training steps logged, --steps asks for {steps}")
    return records


def compare(a: list[dict[str, float]], b: list[dict[str, float]]) -> list[tuple[str, str, float, float]]:
    """``(term, window, mean in A, mean in B)`` for every term both logged, over three windows.

    Raises:
        ValueError: if the two runs' records are not for the same steps.
    """
    if [r["step"] for r in a] != [r["step"] for r in b]:
        raise ValueError("the runs logged different steps: they did not start from the same step")
    steps = len(a)
    windows = {
        f"1-{steps}": (0, steps),
        f"1-{steps // 5}": (0, steps // 5),
        f"{steps - 2 * steps // 5 + 1}-{steps}": (steps - 2 * steps // 5, steps),
    }
    terms = [k for k in a[0] if k not in ("step", "lr") and k in b[0]]
    rows = []
    for term in terms:
        for window, (lo, hi) in windows.items():
            mean_a = sum(r[term] for r in a[lo:hi]) / (hi - lo)
            mean_b = sum(r[term] for r in b[lo:hi]) / (hi - lo)
            rows.append((term, window, mean_a, mean_b))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--steps", type=int, default=250, help="first N steps (default 250)")
    args = parser.parse_args(argv)
    if args.steps < 5:
        raise SystemExit(f"error: --steps: expected at least 5, got {args.steps}")
    try:
        rows = compare(read_steps(args.run_a, args.steps), read_steps(args.run_b, args.steps))
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"| term | steps | {args.run_a} | {args.run_b} | B / A |")
    print("| --- | --- | ---: | ---: | ---: |")
    for term, window, mean_a, mean_b in rows:
        ratio = f"{mean_b / mean_a:.3f}" if mean_a else "n/a"
        print(f"| {term} | {window} | {mean_a:.4f} | {mean_b:.4f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
