"""Speed of dgpgeom's translation solver against its peers, as ratios.

Run from the repository root:

    THP_MEM_ALLOC_ENABLE=1 python benchmarks/bench_translation.py [--threads 1] [--quick]

For every dtype, batch size B and mode (forward, forward+backward) the peers are
timed round-robin (one sample of each peer, then the next round, with the start
peer rotated every round) and each peer's time is the median of its samples, so
ratios come from one interleaved run on the same data. Per-problem CPU peers
(OpenCV, SciPy) are timed on a sample of the batch and extrapolated. The result
is printed as markdown tables and written as JSON (and the same markdown) under
``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers as P
from _machine import cpu_model

DEFAULT_SIZES = (1, 64, 4096, 262144, 1048576)
QUICK_SIZES = (1, 64, 4096)
MODES = ("forward", "forward+backward")
# Peak temporaries of each batched peer per problem, in units of 2N elements of its
# dtype, (forward, forward+backward): the peak resident memory measured at B=65536,
# rounded up with a margin. They decide which sizes are skipped as too large; torch's
# lstsq backward and kornia's SVD need well over 100 (about 22 GB at B=1M, float32).
# A peer missing here is never skipped for memory.
TEMP_COLUMNS = {
    "dgpgeom": (8, 16),
    "dgpgeom_compiled": (8, 16),
    "dgpgeom_torch": (8, 16),
    "dgpgeom_numpy": (8, 16),
    "lstsq": (12, 160),
    "solve": (8, 32),
    "kornia": (110, 160),
    "dgpgeom_refine": (32, 140),  # autograd through 5 Gauss-Newton steps: 37 GB at B=1M, float64
    "dgpgeom_multiview": (12, 32),
    "prototype": (16, 48),
}


# ---------------------------------------------------------------------------
# Environment


def _thp_system_setting() -> str:
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip()
    except OSError:
        return "unknown"
    return text[text.find("[") + 1 : text.find("]")] if "[" in text else text


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except ImportError:
        return "not installed"


def environment(threads: int) -> dict:
    return {
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "kornia": _version("kornia"),
        "opencv": _version("cv2"),
        "scipy": _version("scipy"),
        "numpy": _version("numpy"),
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "requested_threads": threads,
        "torch_interop_threads": torch.get_num_interop_threads(),
        "THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE", "unset"),
        "transparent_hugepage": _thp_system_setting(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
    }


# ---------------------------------------------------------------------------
# Timing


@dataclass
class Cell:
    """One peer at one (dtype, batch, mode): the measurement or why there is none."""

    peer: str
    dtype: str
    batch: int
    mode: str
    status: str  # "measured" | "extrapolated" | "n/a"
    seconds_per_call: float | None = None
    seconds_per_problem: float | None = None
    samples_per_call: list[float] = field(default_factory=list)
    problems_timed: int | None = None  # per-problem peers: the sample they ran on
    calls_per_sample: int | None = None
    note: str = ""


def _inputs(problem: P.Problem, requires_grad: bool) -> tuple[torch.Tensor, ...]:
    """The solver inputs; gradient leaves share storage with the problem (no copy)."""
    p3, p2, k, w = (problem.points3d, problem.points2d, problem.intrinsics, problem.weights)
    if requires_grad:
        p3, p2, w = (t.detach().requires_grad_(True) for t in (p3, p2, w))
    return p3, p2, k, w


def _runner(fn: Callable, args: tuple[torch.Tensor, ...], mode: str) -> Callable[[], object]:
    """A no-argument closure doing one forward (or forward+backward) of ``fn`` on ``args``."""
    if mode == "forward":

        def forward():
            return fn(*args)

        return forward

    p3, p2, _, w = args
    g = torch.randn(p2.shape[0], 3, dtype=p2.dtype, generator=torch.Generator().manual_seed(1))

    def forward_backward():
        t = fn(*args)
        return torch.autograd.grad(t, (p3, p2, w), g)

    return forward_backward


def _floor_runner(args: tuple[torch.Tensor, ...], mode: str) -> Callable[[], object]:
    if mode == "forward":
        return lambda: P.memcpy_floor(*args)
    # forward+backward must at least read the inputs and write three input-sized gradients
    return lambda: (P.memcpy_floor(*args), args[0].clone(), args[1].clone(), args[3].clone())


def _time_once(run: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) / calls


class _Entry:
    """A peer scheduled in one cell: its closure, inner-loop count and samples."""

    def __init__(self, name: str, run: Callable[[], object], problems: int, repeats: int):
        self.name = name
        self.run = run
        self.problems = problems
        self.repeats = repeats
        self.calls = 1
        self.samples: list[float] = []


def _measure_interleaved(entries: list[_Entry], min_sample_seconds: float, budget: float) -> None:
    """Warm up, calibrate inner-loop counts, then sample round-robin with rotation."""
    for e in entries:
        once = _time_once(e.run, 1)  # warm-up (lazy imports, allocator, first-call caches)
        if once < 1.0:  # slow calls are warm after one; re-time only the fast ones
            once = _time_once(e.run, 1)
        e.calls = max(1, math.ceil(min_sample_seconds / max(once, 1e-9)))
        # slow cells get fewer samples than asked, but never fewer than 3
        e.repeats = min(e.repeats, max(3, int(budget // max(once * e.calls, 1e-9))))
    rounds = max((e.repeats for e in entries), default=0)
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            order = entries[r % len(entries) :] + entries[: r % len(entries)]
            for e in order:
                if len(e.samples) < e.repeats:
                    e.samples.append(_time_once(e.run, e.calls))
    finally:
        gc.enable()


# ---------------------------------------------------------------------------
# ATen op counts


class _OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self.views = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[str(func)] += 1
        self.views += bool(getattr(func, "is_view", False))
        return func(*args, **(kwargs or {}))


def count_ops(fn: Callable, dtype: torch.dtype) -> dict:
    """ATen ops dispatched by one call of ``fn`` at B=1: forward and forward+backward."""
    problem = P.make_problems(1, dtype=dtype, seed=3)
    out = {}
    for mode in MODES:
        run = _runner(fn, _inputs(problem, mode != "forward"), mode)
        run()  # let lazy imports and caches settle first
        with _OpCounter() as counter:
            run()
        out[mode] = {
            "total": sum(counter.counts.values()),
            "views": counter.views,
            "ops": dict(counter.counts.most_common()),
        }
    return out


def float32_accuracy(names: list[str], batch: int, seed: int) -> dict:
    """Each peer's float32 answer against its own float64 answer on the same problems (metres)."""
    problem = P.make_problems(batch, dtype=torch.float64, seed=seed)
    args64 = (problem.points3d, problem.points2d, problem.intrinsics, problem.weights)
    args32 = tuple(t.float() for t in args64)
    out = {}
    for name in names:
        error = (P.PEERS[name].fn(*args32).double() - P.PEERS[name].fn(*args64)).norm(dim=-1)
        out[name] = {"median_m": float(error.median()), "max_m": float(error.max()), "batch": batch}
    return out


# ---------------------------------------------------------------------------
# The run


def _temp_bytes(name: str, batch: int, num_points: int, dtype: torch.dtype, mode: str) -> int:
    """Estimated peak temporaries of one call of a batched peer, in bytes."""
    item = torch.finfo(dtype).bits // 8
    columns = TEMP_COLUMNS.get(name, (0, 0))[0 if mode == "forward" else 1]
    return columns * 2 * num_points * item * batch


def _available_bytes() -> float:
    """MemAvailable of the machine (other processes count), or infinity if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return math.inf


class _Run:
    """Schedules and times every cell; keeps what later cells and the report need."""

    def __init__(self, args: argparse.Namespace, log: Callable[[str], None]):
        self.args = args
        self.log = log
        self.cells: list[Cell] = []
        self.compile_seconds: list[dict] = []
        # (peer, dtype, mode) -> (batch, seconds per problem) of its largest measured batch
        self.seen: dict[tuple[str, str, str], tuple[int, float]] = {}

    def _skip_reason(self, name: str, dtype: torch.dtype, batch: int, mode: str) -> str:
        seen = self.seen.get((name, str(dtype).removeprefix("torch."), mode))
        if seen is not None and seen[1] * batch > self.args.max_call_seconds:
            return f"one call would take ~{seen[1] * batch:.2g} s"
        need = _temp_bytes(name, batch, self.args.num_points, dtype, mode)
        if need > min(self.args.max_memory_gb * 2**30, 0.6 * _available_bytes()):
            return f"would need ~{need / 2**30:.2g} GiB"
        return ""

    def _compiled_entry(self, inputs, dtype_name: str, batch: int, mode: str) -> _Entry:
        torch._dynamo.reset()
        compiled = torch.compile(P.dgpgeom_translation, fullgraph=True, dynamic=False)
        run = _runner(compiled, inputs, mode)
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
        self.compile_seconds.append(
            {"dtype": dtype_name, "batch": batch, "mode": mode, "first_call_seconds": seconds}
        )
        self.log(f"  torch.compile {dtype_name} B={batch} {mode}: first call {seconds:.1f} s")
        return _Entry("dgpgeom_compiled", run, batch, self.args.repeats)

    def cell(self, problem: P.Problem, sample: P.Problem, mode: str) -> None:
        """Time every peer on one (dtype, batch, mode), interleaved."""
        dtype = problem.points2d.dtype
        dtype_name = str(dtype).removeprefix("torch.")
        batch = problem.batch
        inputs = _inputs(problem, requires_grad=mode != "forward")
        entries: list[_Entry] = []
        for name in self.args.peers:
            peer = P.PEERS.get(name)
            if (
                mode != "forward"
                and peer is not None
                and not peer.differentiable
                and peer.kind != "floor"
            ):
                self.cells.append(
                    Cell(name, dtype_name, batch, mode, "n/a", note="not differentiable")
                )
            elif peer is None:  # the compiled twin of dgpgeom
                entries.append(self._compiled_entry(inputs, dtype_name, batch, mode))
            elif peer.kind == "per_problem":
                run = _runner(peer.fn, _inputs(sample, requires_grad=False), mode)
                entries.append(_Entry(name, run, sample.batch, self.args.repeats))
            elif peer.kind == "floor":
                entries.append(_Entry(name, _floor_runner(inputs, mode), batch, self.args.repeats))
            elif name != "dgpgeom" and (reason := self._skip_reason(name, dtype, batch, mode)):
                self.cells.append(self._extrapolated(name, dtype_name, batch, mode, reason))
            else:
                entries.append(
                    _Entry(name, _runner(peer.fn, inputs, mode), batch, self.args.repeats)
                )

        self.log(f"{dtype_name} B={batch} {mode}: timing {', '.join(e.name for e in entries)}")
        _measure_interleaved(entries, self.args.min_sample_seconds, self.args.budget_seconds)
        for e in entries:
            per_problem = statistics.median(e.samples) / e.problems
            sampled = e.problems != batch
            self.cells.append(
                Cell(
                    e.name, dtype_name, batch, mode,
                    "extrapolated" if sampled else "measured",
                    seconds_per_call=per_problem * batch,
                    seconds_per_problem=per_problem,
                    samples_per_call=e.samples,
                    problems_timed=e.problems,
                    calls_per_sample=e.calls,
                    note=f"timed on {e.problems} problems" if sampled else "",
                )
            )  # fmt: skip
            if not sampled:
                self.seen[(e.name, dtype_name, mode)] = (batch, per_problem)
            self.log(
                f"    {e.name:<17} {_fmt(per_problem):>9} per problem, {len(e.samples)} samples"
            )

    def _extrapolated(self, name: str, dtype_name: str, batch: int, mode: str, reason: str) -> Cell:
        seen = self.seen.get((name, dtype_name, mode))
        if seen is None:
            return Cell(name, dtype_name, batch, mode, "n/a", note=reason)
        return Cell(
            name, dtype_name, batch, mode, "extrapolated",
            seconds_per_call=seen[1] * batch,
            seconds_per_problem=seen[1],
            note=f"{reason}; per-problem time of B={seen[0]}",
        )  # fmt: skip


def run_benchmark(
    args: argparse.Namespace, log: Callable[[str], None], checkpoint: Path | None = None
) -> dict:
    run = _Run(args, log)
    for dtype_name in args.dtypes:
        for batch in args.sizes:
            problem = P.make_problems(
                batch, num_points=args.num_points, dtype=getattr(torch, dtype_name), seed=args.seed
            )
            sample = problem.head(min(batch, args.sample))
            for mode in MODES:
                run.cell(problem, sample, mode)
                gc.collect()
                if checkpoint is not None:  # a crash late in a long run keeps what was measured
                    cells = [asdict(c) for c in run.cells]
                    checkpoint.write_text(json.dumps({"cells": cells}, indent=1) + "\n")
            del problem, sample
            gc.collect()
    ops = {
        name: count_ops(P.PEERS[name].fn, torch.float32) for name in ("dgpgeom", "lstsq", "solve")
    }
    batched = [n for n in args.peers if n in P.PEERS and P.PEERS[n].kind == "batched"]
    return {
        "cells": [asdict(c) for c in run.cells],
        "compile": run.compile_seconds,
        "aten_ops_b1": ops,
        "float32_vs_float64": float32_accuracy(batched, min(4096, max(args.sizes)), args.seed + 1),
    }


# ---------------------------------------------------------------------------
# Targets and report


def _cell(cells: list[dict], peer: str, dtype: str, batch: int, mode: str) -> dict | None:
    for c in cells:
        if (c["peer"], c["dtype"], c["batch"], c["mode"]) == (peer, dtype, batch, mode):
            return c if c["seconds_per_problem"] is not None else None
    return None


def check_targets(result: dict, sizes: list[int], dtypes: list[str]) -> list[dict]:
    cells = result["cells"]
    targets = []

    def add(name: str, ok: bool | None, detail: str) -> None:
        targets.append({"target": name, "met": ok, "detail": detail})

    name = "forward+backward >= 50x faster than lstsq at B=4096 (float32)"
    ours = _cell(cells, "dgpgeom", "float32", 4096, "forward+backward")
    ref = _cell(cells, "lstsq", "float32", 4096, "forward+backward")
    if ours and ref:
        ratio = ref["seconds_per_problem"] / ours["seconds_per_problem"]
        detail = f"eager {ratio:.1f}x"
        compiled = _cell(cells, "dgpgeom_compiled", "float32", 4096, "forward+backward")
        if compiled:
            detail += f"; torch.compile {ref['seconds_per_problem'] / compiled['seconds_per_problem']:.1f}x"
        add(name, ratio >= 50, detail)
    else:
        add(name, None, "not measured in this run")

    largest = max(sizes)
    for dtype in dtypes:
        name = f">= 1000x faster per problem than cv2 and SLSQP at B={largest} ({dtype}, forward)"
        ours = _cell(cells, "dgpgeom", dtype, largest, "forward")
        ratios = {}
        for peer in ("cv2_epnp", "cv2_iterative", "slsqp"):
            other = _cell(cells, peer, dtype, largest, "forward")
            if ours and other:
                ratios[peer] = other["seconds_per_problem"] / ours["seconds_per_problem"]
        if ours and ratios:
            detail = "eager: " + ", ".join(f"{k} {v:,.0f}x" for k, v in ratios.items())
            compiled = _cell(cells, "dgpgeom_compiled", dtype, largest, "forward")
            if compiled:
                scale = ours["seconds_per_problem"] / compiled["seconds_per_problem"]
                detail += "; torch.compile: " + ", ".join(
                    f"{k} {v * scale:,.0f}x" for k, v in ratios.items()
                )
            add(name, all(v >= 1000 for v in ratios.values()), detail)
        else:
            add(name, None, "not measured in this run")

    for dtype in dtypes:
        name = f"B=1 forward no slower than cv2.solvePnP EPnP ({dtype})"
        ours = _cell(cells, "dgpgeom", dtype, 1, "forward")
        other = _cell(cells, "cv2_epnp", dtype, 1, "forward")
        if ours and other:
            detail = f"eager {_fmt(ours['seconds_per_call'])} vs {_fmt(other['seconds_per_call'])}"
            compiled = _cell(cells, "dgpgeom_compiled", dtype, 1, "forward")
            if compiled:
                detail += f"; torch.compile {_fmt(compiled['seconds_per_call'])}"
            add(name, ours["seconds_per_call"] <= other["seconds_per_call"], detail)
        else:
            add(name, None, "not measured in this run")

    for dtype in dtypes:
        name = f"eager forward within 8x of the memcpy floor at B=1048576 ({dtype})"
        ours = _cell(cells, "dgpgeom", dtype, 1048576, "forward")
        floor = _cell(cells, "memcpy", dtype, 1048576, "forward")
        if ours and floor:
            ratio = ours["seconds_per_problem"] / floor["seconds_per_problem"]
            detail = f"{ratio:.1f}x the floor"
            compiled = _cell(cells, "dgpgeom_compiled", dtype, 1048576, "forward")
            if compiled:
                detail += f"; torch.compile {compiled['seconds_per_problem'] / floor['seconds_per_problem']:.1f}x"
            add(name, ratio <= 8, detail)
        else:
            add(name, None, "not measured in this run")

    # The small-batch budget (absolute times on this machine, eager, float32).
    for mode, budget in (("forward", 50e-6), ("forward+backward", 200e-6)):
        name = f"B=1 {mode} <= {budget * 1e6:.0f} µs eager (float32)"
        ours = _cell(cells, "dgpgeom", "float32", 1, mode)
        if ours:
            add(name, ours["seconds_per_call"] <= budget, f"{_fmt(ours['seconds_per_call'])}")
        else:
            add(name, None, "not measured in this run")
    for batch, mode, factor in ((1, "forward", 3), (64, "forward+backward", 3)):
        name = f"B={batch} {mode} >= {factor}x faster than lstsq (float32)"
        ours = _cell(cells, "dgpgeom", "float32", batch, mode)
        ref = _cell(cells, "lstsq", "float32", batch, mode)
        if ours and ref:
            ratio = ref["seconds_per_problem"] / ours["seconds_per_problem"]
            add(name, ratio >= factor, f"{ratio:.2f}x")
        else:
            add(name, None, "not measured in this run")
    for dtype in dtypes:
        name = f"never slower than the plain-autograd centred prototype ({dtype})"
        ratios = []
        for batch in sizes:
            for mode in MODES:
                ours = _cell(cells, "dgpgeom", dtype, batch, mode)
                proto = _cell(cells, "prototype", dtype, batch, mode)
                if ours and proto:
                    ratio = proto["seconds_per_problem"] / ours["seconds_per_problem"]
                    ratios.append((ratio, f"B={batch} {mode} {ratio:.2f}x"))
        if ratios:
            add(name, min(r for r, _ in ratios) >= 1.0, "; ".join(d for _, d in ratios))
        else:
            add(name, None, "not measured in this run")
    return targets


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            value = seconds / scale
            return f"{value:.3g} {unit}" if value < 1000 else f"{value:,.0f} {unit}"
    raise AssertionError("unreachable")


def _fmt_ratio(ratio: float) -> str:
    if ratio >= 100:
        return f"{ratio:,.0f}×"
    if ratio >= 10:
        return f"{ratio:.1f}×"
    if ratio >= 0.1:
        return f"{ratio:.2f}×"
    return f"{ratio:.2g}×"


LABELS = {**{n: p.label for n, p in P.PEERS.items()}, "dgpgeom_compiled": "dgpgeom (torch.compile)"}


def markdown(result: dict, peer_names: list[str], sizes: list[int], dtypes: list[str]) -> str:
    env = result["environment"]
    cells = result["cells"]
    lines = [
        f"Measured {env['date_utc']} on {env['cpu']} ({env['logical_cpus']} logical CPUs), "
        f"torch {env['torch']}, torch threads = {env['torch_threads']}, "
        f"THP_MEM_ALLOC_ENABLE={env['THP_MEM_ALLOC_ENABLE']} "
        f"(system transparent_hugepage: {env['transparent_hugepage']}), N = {result['args']['num_points']}.",
        "",
        "Each cell: median time per problem, and in brackets that time divided by "
        "dgpgeom (eager)'s in the same cell group (> 1× means dgpgeom is faster).",
        "",
    ]
    footnotes: dict[str, int] = {}

    def mark(note: str) -> str:
        if note not in footnotes:
            footnotes[note] = len(footnotes) + 1
        return f"[{footnotes[note]}]"

    for dtype in dtypes:
        for mode in MODES:
            lines += [f"### {dtype}, {mode}", ""]
            lines.append("| peer | " + " | ".join(f"B={b:,}" for b in sizes) + " |")
            lines.append("|---|" + "---:|" * len(sizes))
            for name in peer_names:
                row = [LABELS[name]]
                for b in sizes:
                    c = next(
                        (
                            x
                            for x in cells
                            if (x["peer"], x["dtype"], x["batch"], x["mode"])
                            == (name, dtype, b, mode)
                        ),
                        None,
                    )
                    if c is None or c["seconds_per_problem"] is None:
                        row.append("n/a")
                        continue
                    ours = _cell(cells, "dgpgeom", dtype, b, mode)
                    text = _fmt(c["seconds_per_problem"])
                    if ours and name != "dgpgeom":
                        text += f" ({_fmt_ratio(c['seconds_per_problem'] / ours['seconds_per_problem'])})"
                    if c["status"] == "extrapolated":
                        text = (
                            "~"
                            + text
                            + " "
                            + mark(c["note"] if "per-problem" in c["note"] else "sample")
                        )
                    row.append(text)
                lines.append("| " + " | ".join(row) + " |")
            lines.append("")

    notes = []
    for note, i in footnotes.items():
        if note == "sample":
            notes.append(
                f"[{i}] per-problem Python loop timed on min(B, {result['args']['sample']}) problems "
                "and extrapolated linearly to B."
            )
        else:
            notes.append(f"[{i}] not run: {note}, extrapolated linearly.")
    lines += ["Notes:", ""]
    lines += [f"- {n}" for n in notes]
    for name in peer_names:
        peer = P.PEERS.get(name)
        if peer is not None and peer.note:
            lines.append(f"- {peer.label}: {peer.note}.")
    lines.append(
        "- n/a: not differentiable (no backward), or not run and nothing smaller to extrapolate from."
    )
    if result["compile"]:
        lines.append(
            "- dgpgeom (torch.compile): `fullgraph=True, dynamic=False`, compiled per shape and "
            "warmed up before timing; compile time is excluded and listed below."
        )
        lines += ["", "### torch.compile first-call time (tracing + codegen, cold cache)", ""]
        lines += ["| dtype | B | mode | first call |", "|---|---:|---|---:|"]
        for c in result["compile"]:
            lines.append(
                f"| {c['dtype']} | {c['batch']:,} | {c['mode']} | {c['first_call_seconds']:.1f} s |"
            )
    if result["aten_ops_b1"]:
        lines += ["", "### ATen ops per call at B=1 (float32)", ""]
        lines += [
            "Counted with a `TorchDispatchMode`; in brackets, how many of them are views "
            "(select, unsqueeze, expand, ...). A dispatch mode sends dgpgeom to its torch path "
            "(the one GPUs take): these are that path's ops. Its NumPy and scalar paths for CPU "
            "calls dispatch none beyond the tensor conversions.",
            "",
            "| implementation | forward | forward+backward |",
            "|---|---:|---:|",
        ]
        for name, counts in result["aten_ops_b1"].items():
            f, fb = counts["forward"], counts["forward+backward"]
            lines.append(
                f"| {LABELS[name]} | {f['total']} ({f['views']}) | {fb['total']} ({fb['views']}) |"
            )
    if result["float32_vs_float64"]:
        lines += [
            "",
            "### float32 accuracy: distance of each peer's float32 translation to its own float64 one",
            "",
            "| implementation | median | max |",
            "|---|---:|---:|",
        ]
        for name, acc in result["float32_vs_float64"].items():
            lines.append(
                f"| {LABELS[name]} | {acc['median_m'] * 1e6:.3g} µm | {acc['max_m'] * 1e6:.3g} µm |"
            )
    lines += ["", "### Targets", ""]
    for t in result["targets"]:
        verdict = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
        lines.append(f"- {t['target']}: **{verdict}** ({t['detail']})")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="B in {1, 64, 4096}, fewer repeats and samples"
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", help=f"batch sizes (default {DEFAULT_SIZES})"
    )
    parser.add_argument(
        "--dtypes", nargs="+", choices=["float32", "float64"], default=["float32", "float64"]
    )
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument(
        "--repeats", type=int, help="samples per peer and cell (default 7, quick 3)"
    )
    parser.add_argument(
        "--sample", type=int, help="problems timed for per-problem peers (default 200, quick 20)"
    )
    parser.add_argument(
        "--min-sample-seconds", type=float, help="inner-loop length of one sample (default 0.05)"
    )
    parser.add_argument(
        "--budget-seconds", type=float, default=60.0,
        help="per peer and cell: fewer repeats (at least 3) when they would take longer",
    )  # fmt: skip
    parser.add_argument(
        "--max-call-seconds", type=float, default=60.0, help="skip and extrapolate slower calls"
    )
    parser.add_argument(
        "--max-memory-gb", type=float, default=8.0, help="skip and extrapolate larger temporaries"
    )
    parser.add_argument("--num-points", type=int, default=21)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--peers", nargs="+", default=[*P.PEERS, "dgpgeom_compiled"], help="subset of peers"
    )
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile path")
    parser.add_argument(
        "--output", type=Path, help="JSON path (default benchmarks/results/translation-<time>.json)"
    )
    args = parser.parse_args(argv)
    args.sizes = args.sizes or list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    args.repeats = args.repeats or (3 if args.quick else 7)
    args.sample = args.sample or (20 if args.quick else 200)
    args.min_sample_seconds = args.min_sample_seconds or (0.01 if args.quick else 0.05)
    order = [*P.PEERS, "dgpgeom_compiled"]
    args.peers = [
        p for p in order if p in args.peers and not (args.no_compile and p == "dgpgeom_compiled")
    ]
    unknown = set(parser.parse_args(argv).peers) - set(order)
    if unknown:
        parser.error(f"unknown peers: {sorted(unknown)}")
    if "dgpgeom" not in args.peers:
        parser.error("the dgpgeom peer is the reference of every ratio and cannot be left out")
    # the compiled twin sits right under the eager row
    args.peers.remove("dgpgeom")
    args.peers.insert(0, "dgpgeom")
    if "dgpgeom_compiled" in args.peers:
        args.peers.remove("dgpgeom_compiled")
        args.peers.insert(1, "dgpgeom_compiled")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        import cv2

        cv2.setNumThreads(args.threads)
    except ImportError:
        pass
    cache = None
    if "dgpgeom_compiled" in args.peers:
        if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
            # Cold compile times every run: a private inductor cache, removed at the end.
            # Set before importing torch._inductor, whose import fixes the default one.
            cache = tempfile.TemporaryDirectory(prefix="dgpgeom-bench-inductor-")
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache.name
        from torch._inductor import config as inductor_config

        inductor_config.compile_threads = 1  # no compile workers on a shared machine
    try:
        return _main(args)
    finally:
        if cache is not None:
            del os.environ["TORCHINDUCTOR_CACHE_DIR"]
            cache.cleanup()


def _main(args: argparse.Namespace) -> dict:
    env = environment(args.threads)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log(
        f"torch {env['torch']}, threads {env['torch_threads']}, THP_MEM_ALLOC_ENABLE={env['THP_MEM_ALLOC_ENABLE']}, "
        f"transparent_hugepage={env['transparent_hugepage']}"
    )
    output = args.output or (
        Path(__file__).resolve().parent
        / "results"
        / f"translation-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = output.with_suffix(".partial.json")
    start = time.perf_counter()
    result = run_benchmark(args, log, checkpoint)
    result["environment"] = env
    # the file name only: results are shared, the writer's directories are not
    result["args"] = {k: (v.name if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result["wall_seconds"] = time.perf_counter() - start
    result["targets"] = check_targets(result, args.sizes, args.dtypes)
    table = markdown(result, args.peers, args.sizes, args.dtypes)
    print(table, end="")
    output.write_text(json.dumps(result, indent=1) + "\n")
    output.with_suffix(".md").write_text(table)
    checkpoint.unlink(missing_ok=True)
    log(f"wrote {output} and {output.with_suffix('.md').name} ({result['wall_seconds']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
