"""Import the benchmark scripts, which live outside the packages."""

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import bench_translation  # noqa: E402
import peers  # noqa: E402

__all__ = ["bench_translation", "peers"]
