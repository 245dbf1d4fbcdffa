"""Speed and memory of the fused reprojection loss against plain autograd.

Run from the repository root:

    THP_MEM_ALLOC_ENABLE=1 python benchmarks/bench_losses.py [--threads 1] [--quick]

``reprojection_loss`` (custom autograd Function: saves only its inputs, recomputes
in backward) is compared with its plain-autograd twin ``reprojection_loss_naive``
on the same data, float32, for several batch sizes B and point counts N (21
keypoints, 778 MANO vertices).

Time: forward and forward+backward, timed round-robin (one sample of each
implementation per round, the order alternating every round); each sample runs
enough calls to last about 2 ms; the reported time is the median over rounds, per
call, and the ratio is naive / fused (above 1: fused is faster).

Memory, per forward+backward call (CPU allocator events of ``torch.profiler``
with ``profile_memory=True``):

- *saved*: bytes of the tensors autograd saves for the backward pass that are not
  views of the inputs (counted with ``torch.autograd.graph.saved_tensors_hooks``);
- *retained*: bytes still allocated after the forward pass (the graph's
  activations plus the loss itself), i.e. what the loss adds to a network's
  activation memory until the backward pass;
- *peak*: the highest allocated total during forward+backward, above the inputs.

Results are printed as markdown tables and written as JSON and markdown under
``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _machine import cpu_model

from dgpgeom.losses import reprojection_loss
from dgpgeom.testing import reprojection_loss_naive

IMPLEMENTATIONS: dict[str, Callable] = {
    "fused": reprojection_loss,
    "naive": reprojection_loss_naive,
}
DEFAULT_CASES = ((1, 21), (64, 21), (4096, 21), (65536, 21), (64, 778), (1024, 778))
QUICK_CASES = ((1, 21), (64, 21), (4096, 21), (64, 778))
CONFIGS = {
    "l1": {"kind": "l1", "weights": False, "valid": False},
    "huber+w+mask": {"kind": "huber", "weights": True, "valid": True},
}


def make_inputs(batch: int, n: int, cfg: dict, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    points = torch.randn(batch, n, 3, generator=g) * 0.05
    points[..., 2] += 0.6
    k = torch.tensor([[520.0, 0.0, 112.0], [0.0, 520.0, 112.0], [0.0, 0.0, 1.0]])
    targets = torch.rand(batch, n, 2, generator=g) * 224.0
    return {
        "points3d_cam": points.requires_grad_(),
        "points2d": targets,
        "intrinsics": k,
        "weights": torch.rand(batch, n, generator=g) if cfg["weights"] else None,
        "valid": torch.rand(batch, n, generator=g) > 0.2 if cfg["valid"] else None,
        "kind": cfg["kind"],
    }


def run(fn: Callable, inputs: dict, mode: str) -> None:
    loss = fn(**inputs)
    if mode == "forward+backward":
        torch.autograd.grad(loss, inputs["points3d_cam"])


def calls_per_sample(fn: Callable, inputs: dict, mode: str, target_s: float) -> int:
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            run(fn, inputs, mode)
        elapsed = time.perf_counter() - start
        if elapsed >= target_s or calls >= 1 << 16:
            return max(1, int(calls * target_s / max(elapsed, 1e-9)))
        calls *= 4


def time_interleaved(inputs: dict, mode: str, rounds: int, target_s: float) -> dict[str, float]:
    names = list(IMPLEMENTATIONS)
    for name in names:  # warm-up
        run(IMPLEMENTATIONS[name], inputs, mode)
    calls = {n: calls_per_sample(IMPLEMENTATIONS[n], inputs, mode, target_s) for n in names}
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            fn = IMPLEMENTATIONS[name]
            start = time.perf_counter()
            for _ in range(calls[name]):
                run(fn, inputs, mode)
            samples[name].append((time.perf_counter() - start) / calls[name])
    return {n: statistics.median(v) for n, v in samples.items()}


def saved_bytes(fn: Callable, inputs: dict) -> int:
    """Bytes of saved tensors whose storage is not one of the inputs' storages."""
    own = {t.untyped_storage().data_ptr() for t in inputs.values() if isinstance(t, torch.Tensor)}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in own:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = fn(**inputs)
    del loss
    return sum(seen.values())


def memory(fn: Callable, inputs: dict) -> tuple[int, int]:
    """(retained after forward, peak during forward+backward), bytes, from profiler events."""
    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        loss = fn(**inputs)
        with torch.profiler.record_function("bench::backward"):
            (grad,) = torch.autograd.grad(loss, inputs["points3d_cam"])
        del loss, grad
    events = prof.profiler.kineto_results.events()
    boundary = min(e.start_ns() for e in events if e.name() == "bench::backward")
    allocations = sorted((e for e in events if e.name() == "[memory]"), key=lambda e: e.start_ns())
    current = peak = 0
    retained = None
    for e in allocations:
        if retained is None and e.start_ns() >= boundary:
            retained = current
        current += e.nbytes()
        peak = max(peak, current)
    return (current if retained is None else retained), peak


def environment(threads: int) -> dict:
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE", "unset"),
        "dtype": "float32",
        "load_average_1_5_15": list(os.getloadavg()),
    }


def kib(n: int) -> str:
    return f"{n / 1024:.1f}"


def to_markdown(results: list[dict], env: dict) -> str:
    lines = [
        "# reprojection_loss: fused backward vs plain autograd",
        "",
        f"torch {env['torch']}, {env['cpu']}, {env['torch_threads']} thread(s), "
        f"float32, THP_MEM_ALLOC_ENABLE={env['THP_MEM_ALLOC_ENABLE']}, load average "
        f"{env['load_average_1_5_15'][0]:.1f} at the start (shared machine). "
        "Times: median per call over interleaved rounds. Memory in KiB per call.",
        "",
        "| penalty | B | N | fwd fused µs | fwd naive µs | fwd+bwd fused µs "
        "| fwd+bwd naive µs | speed-up fwd+bwd | saved fused | saved naive "
        "| retained fused | retained naive | peak fused | peak naive |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        t = r["time_s"]
        m = r["memory_bytes"]
        fb = t["forward+backward"]
        lines.append(
            f"| {r['config']} | {r['B']} | {r['N']} "
            f"| {t['forward']['fused'] * 1e6:.1f} | {t['forward']['naive'] * 1e6:.1f} "
            f"| {fb['fused'] * 1e6:.1f} | {fb['naive'] * 1e6:.1f} "
            f"| {fb['naive'] / fb['fused']:.2f}× "
            f"| {kib(m['saved']['fused'])} | {kib(m['saved']['naive'])} "
            f"| {kib(m['retained']['fused'])} | {kib(m['retained']['naive'])} "
            f"| {kib(m['peak']['fused'])} | {kib(m['peak']['naive'])} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="fewer sizes and rounds")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cases = QUICK_CASES if args.quick else DEFAULT_CASES
    rounds = args.rounds or (5 if args.quick else 15)
    env = environment(torch.get_num_threads())
    results = []
    for config, cfg in CONFIGS.items():
        for batch, n in cases:
            inputs = make_inputs(batch, n, cfg)
            times = {
                mode: time_interleaved(inputs, mode, rounds, 0.002)
                for mode in ("forward", "forward+backward")
            }
            mem = {"saved": {}, "retained": {}, "peak": {}}
            for name, fn in IMPLEMENTATIONS.items():
                mem["saved"][name] = saved_bytes(fn, inputs)
                mem["retained"][name], mem["peak"][name] = memory(fn, inputs)
            results.append(
                {"config": config, "B": batch, "N": n, "time_s": times, "memory_bytes": mem}
            )
            print(f"done {config} B={batch} N={n}", file=sys.stderr)

    markdown = to_markdown(results, env)
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_losses.json").write_text(
        json.dumps({"environment": env, "rounds": rounds, "results": results}, indent=2)
    )
    (args.out / "bench_losses.md").write_text(markdown)
    print(f"wrote {args.out / 'bench_losses.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
