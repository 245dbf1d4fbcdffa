"""Speed (and accuracy) of the multi-view solver and the Gauss-Newton refinement.

Run from the repository root:

    THP_MEM_ALLOC_ENABLE=1 python benchmarks/bench_solvers_extra.py [--threads 1] [--quick]
    python benchmarks/bench_solvers_extra.py --accuracy

Speed: for every dtype, batch size B and mode (forward, forward+backward) four
solvers are timed round-robin on the same data (one sample of each, then the next
round, with the starting solver rotated every round); each time is the median of
its samples:

- ``single-view``: :func:`dgpgeom.solve_translation`, N = 21 (the reference);
- ``multiview C=4``: :func:`dgpgeom.solvers.solve_translation_multiview`, four
  cameras, N = 21 points each;
- ``refine huber x5``: :func:`dgpgeom.solvers.refine_translation`, 5 Gauss-Newton
  steps with the Huber kernel (2 px), from the DLT;
- ``SLSQP``: ``scipy.optimize.minimize(method="SLSQP")`` per problem on the same
  weighted pixel objective (analytic gradient, MobRecon's start ``(0, 0, 0.6)``
  and depth bounds), float64 forward only, timed on a sample of the batch and
  extrapolated to B.

Results are printed as a markdown table and written (JSON and markdown) to
``benchmarks/results/``. Memory: forward+backward at B = 262144 in float64 peaks
near 10 GB (refine); ``--quick`` stops at B = 4096.

Accuracy (``--accuracy``): float32 against float64 for the multi-view solver,
convergence of the refinement with the number of
iterations, its agreement with SLSQP, and translation errors with outliers.
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
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import cpu_model
from peers import look_at

from dgpgeom.solvers import (
    refine_translation,
    solve_translation,
    solve_translation_multiview,
)
from dgpgeom.testing import random_intrinsics

SIZES = (1, 4096, 262144)
QUICK_SIZES = (1, 4096)
POINTS = 21
CAMERAS = 4
RESULTS = Path(__file__).resolve().parent / "results"
F64 = torch.float64


# ---------------------------------------------------------------------------
# Problems (float64, cast per run)


def single_view_problems(
    batch: int, *, seed: int = 0, noise: float = 1.0, outliers: float = 0.0, size: float = 0.15
) -> dict[str, torch.Tensor]:
    """Hand-sized point clouds 0.3-2 m in front of random cameras (float64)."""
    gen = torch.Generator().manual_seed(seed)
    K = random_intrinsics((batch,), (480, 640), generator=gen)
    depth = torch.exp(
        math.log(0.3) + math.log(2.0 / 0.3) * torch.rand(batch, generator=gen, dtype=F64)
    )
    root = torch.rand(batch, 2, generator=gen, dtype=F64) * torch.tensor([639.0, 479.0], dtype=F64)
    y = (root[:, 1] - K[:, 1, 2]) / K[:, 1, 1]
    x = (root[:, 0] - K[:, 0, 2]) / K[:, 0, 0]
    translation = torch.stack((x, y, torch.ones_like(x)), -1) * depth.unsqueeze(-1)
    points3d = (torch.rand(batch, POINTS, 3, generator=gen, dtype=F64) - 0.5) * size
    points3d[:, 0] = 0.0
    uvw = (points3d + translation.unsqueeze(-2)) @ K.mT
    points2d = uvw[..., :2] / uvw[..., 2:]
    points2d += noise * torch.randn(points2d.shape, generator=gen, dtype=F64)
    outlier = torch.rand(batch, POINTS, generator=gen) < outliers
    magnitude = 30.0 + 50.0 * torch.rand(batch, POINTS, generator=gen, dtype=F64)
    angle = 2.0 * math.pi * torch.rand(batch, POINTS, generator=gen, dtype=F64)
    shift = magnitude.unsqueeze(-1) * torch.stack((angle.cos(), angle.sin()), -1)
    points2d = torch.where(outlier.unsqueeze(-1), points2d + shift, points2d)
    weights = 0.2 + 0.8 * torch.rand(batch, POINTS, generator=gen, dtype=F64)
    return {
        "points2d": points2d,
        "points3d": points3d,
        "intrinsics": K,
        "weights": weights,
        "translation": translation,
    }


def multiview_problems(
    batch: int,
    cameras: int = CAMERAS,
    *,
    seed: int = 0,
    depth: tuple[float, float] = (0.5, 2.0),
    size: tuple[float, float] = (0.1, 0.2),
    spread: float = math.pi,
    offcentre: float = 0.2,
    noise: float = 1.0,
) -> dict[str, torch.Tensor]:
    """An object near the origin seen by cameras within ``spread`` rad of -z (float64).

    Each camera looks at a point up to ``offcentre`` × distance away from the object
    along each axis (keep it below ~0.5: the object must stay in front of it).
    """
    gen = torch.Generator().manual_seed(seed)

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand((batch, *shape), generator=gen, dtype=F64)

    translation = (uniform(3) - 0.5) * 0.2
    points3d = (uniform(POINTS, 3) - 0.5) * (size[0] + (size[1] - size[0]) * uniform(1, 1))
    points3d[:, 0] = 0.0
    distance = torch.exp(math.log(depth[0]) + math.log(depth[1] / depth[0]) * uniform(1))
    theta = torch.acos(1.0 - (1.0 - math.cos(spread)) * uniform(cameras))
    phi = 2.0 * math.pi * uniform(cameras)
    directions = torch.stack((theta.sin() * phi.cos(), theta.sin() * phi.sin(), -theta.cos()), -1)
    centres = translation.unsqueeze(-2) + distance.unsqueeze(-1) * directions
    targets = translation.unsqueeze(-2) + (uniform(cameras, 3) - 0.5) * (
        2.0 * offcentre * distance.unsqueeze(-1)
    )
    rotations, camera_translations = look_at(centres, targets, 2.0 * math.pi * uniform(cameras))
    K = random_intrinsics((batch, cameras), (480, 640), generator=gen)
    camera = (points3d + translation.unsqueeze(-2)).unsqueeze(-3) @ rotations.mT
    camera = camera + camera_translations.unsqueeze(-2)
    uvw = camera @ K.mT
    points2d = uvw[..., :2] / uvw[..., 2:]
    points2d += noise * torch.randn(points2d.shape, generator=gen, dtype=F64)
    return {
        "points2d": points2d,
        "points3d": points3d,
        "intrinsics": K,
        "rotations": rotations,
        "camera_translations": camera_translations,
        "weights": 0.1 + 0.9 * uniform(cameras, POINTS),
        "translation": translation,
        "depth": camera[..., 2],
    }


def off_axis_problems(batch: int, *, seed: int = 7) -> dict[str, torch.Tensor]:
    """One camera (R = I, t_c = 0) seeing a 10 cm object 2 m away, 56° off its axis."""
    gen = torch.Generator().manual_seed(seed)
    scale = 1.0 + 0.1 * torch.rand(batch, 1, generator=gen, dtype=F64)
    translation = torch.tensor([3.0, 0.0, 2.0], dtype=F64) * scale
    points3d = (torch.rand(batch, POINTS, 3, generator=gen, dtype=F64) - 0.5) * 0.1
    points3d[:, 0] = 0.0
    K = torch.tensor([[300.0, 0.0, 320.0], [0.0, 300.0, 240.0], [0.0, 0.0, 1.0]], dtype=F64)
    uvw = (points3d + translation.unsqueeze(-2)) @ K.T
    return {
        "points2d": (uvw[..., :2] / uvw[..., 2:]).unsqueeze(1),
        "points3d": points3d,
        "intrinsics": K.expand(batch, 1, 3, 3),
        "rotations": torch.eye(3, dtype=F64).expand(batch, 1, 3, 3),
        "camera_translations": torch.zeros(batch, 1, 3, dtype=F64),
        "weights": 0.2 + 0.8 * torch.rand(batch, 1, POINTS, generator=gen, dtype=F64),
        "translation": translation,
    }


# ---------------------------------------------------------------------------
# SLSQP, per problem


def _pixel_cost(t, points3d, points2d, K, w2):
    camera = points3d + t
    inv = 1.0 / camera[:, 2]
    x, y = camera[:, 0] * inv, camera[:, 1] * inv
    u = K[0, 0] * x + K[0, 1] * y + K[0, 2] - points2d[:, 0]
    v = K[1, 1] * y + K[1, 2] - points2d[:, 1]
    du = np.stack([K[0, 0] * inv, K[0, 1] * inv, -(K[0, 0] * x + K[0, 1] * y) * inv], 1)
    dv = np.stack([0.0 * inv, K[1, 1] * inv, -K[1, 1] * y * inv], 1)
    return 0.5 * np.sum(w2 * (u * u + v * v)), (w2 * u) @ du + (w2 * v) @ dv


def slsqp(
    problem: dict[str, np.ndarray],
    index: int,
    start=(0.0, 0.0, 0.6),
    ftol: float = 1e-6,
    max_depth: float = 2.0,
):
    """SLSQP fit of one problem; the defaults are MobRecon's (start, ftol, z in [0.05, 2])."""
    from scipy.optimize import minimize

    args = (
        problem["points3d"][index],
        problem["points2d"][index],
        problem["intrinsics"][index],
        problem["weights"][index] ** 2,
    )
    return minimize(
        _pixel_cost,
        np.asarray(start, dtype=np.float64),
        args=args,
        jac=True,
        method="SLSQP",
        bounds=[(None, None), (None, None), (0.05, max_depth)],
        options={"ftol": ftol, "maxiter": 500},
    )


# ---------------------------------------------------------------------------
# Speed


def _runners(dtype: torch.dtype, batch: int, mode: str, slsqp_sample: int) -> dict[str, Callable]:
    single = single_view_problems(batch, seed=1)
    multi = multiview_problems(batch, seed=2)
    grad = mode == "forward+backward"

    def leaves(problem: dict[str, torch.Tensor], names: tuple[str, ...]) -> list[torch.Tensor]:
        return [problem[n].to(dtype).requires_grad_(grad) for n in names]

    sv = leaves(single, ("points3d", "points2d", "intrinsics", "weights"))
    mv = leaves(
        multi,
        ("points3d", "points2d", "intrinsics", "rotations", "camera_translations", "weights"),
    )

    def wrap(fn: Callable[[], torch.Tensor], inputs: list[torch.Tensor]) -> Callable[[], None]:
        if not grad:

            def forward() -> None:
                with torch.no_grad():
                    fn()

            return forward

        def forward_backward() -> None:
            torch.autograd.grad(fn().sum(), inputs)

        return forward_backward

    runners = {
        "single-view": wrap(lambda: solve_translation(*sv).translation, sv),
        f"multiview C={CAMERAS}": wrap(lambda: solve_translation_multiview(*mv).translation, mv),
        "refine huber x5": wrap(
            lambda: refine_translation(*sv, robust="huber", scale=2.0, iterations=5).translation,
            sv,
        ),
    }
    if dtype == F64 and not grad:
        arrays = {k: v.numpy() for k, v in single.items()}
        sample = min(batch, slsqp_sample)

        def run_slsqp() -> None:
            for i in range(sample):
                slsqp(arrays, i)

        runners["SLSQP (per problem)"] = run_slsqp
    return runners


def _time(run: Callable[[], None], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) / calls


def measure(
    dtype: torch.dtype, batch: int, mode: str, rounds: int, slsqp_sample: int
) -> list[dict]:
    runners = _runners(dtype, batch, mode, slsqp_sample)
    calls = {}
    for name, run in runners.items():
        once = _time(run, 1)  # warm-up
        once = _time(run, 1) if once < 1.0 else once
        calls[name] = max(1, math.ceil(0.05 / max(once, 1e-9)))
    samples: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            gc.collect()
            samples[name].append(_time(runners[name], calls[name]))
    rows = []
    for name, values in samples.items():
        per_call = statistics.median(values)
        problems = min(batch, slsqp_sample) if name.startswith("SLSQP") else batch
        per_problem = per_call / problems
        rows.append(
            {
                "solver": name,
                "dtype": str(dtype).removeprefix("torch."),
                "batch": batch,
                "mode": mode,
                "seconds_per_call": per_problem * batch,
                "seconds_per_problem": per_problem,
                "samples": values,
                "calls_per_sample": calls[name],
                "problems_timed": problems,
                "extrapolated": problems != batch,
            }
        )
    return rows


def _format_seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def markdown(rows: list[dict]) -> str:
    lines = [
        "| dtype | B | solver | forward | forward+backward | per problem (fwd) | vs single-view (fwd / fwd+bwd) |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    keyed = {(r["dtype"], r["batch"], r["solver"], r["mode"]): r for r in rows}
    for dtype, batch, solver in dict.fromkeys((r["dtype"], r["batch"], r["solver"]) for r in rows):
        fwd = keyed.get((dtype, batch, solver, "forward"))
        bwd = keyed.get((dtype, batch, solver, "forward+backward"))
        ref_f = keyed.get((dtype, batch, "single-view", "forward"))
        ref_b = keyed.get((dtype, batch, "single-view", "forward+backward"))

        def ratio(a, b):
            return f"{a['seconds_per_call'] / b['seconds_per_call']:.2g}×" if a and b else "—"

        star = " (extrapolated)" if fwd and fwd["extrapolated"] else ""
        lines.append(
            f"| {dtype} | {batch} | {solver}{star} | "
            f"{_format_seconds(fwd['seconds_per_call']) if fwd else '—'} | "
            f"{_format_seconds(bwd['seconds_per_call']) if bwd else '—'} | "
            f"{_format_seconds(fwd['seconds_per_problem']) if fwd else '—'} | "
            f"{ratio(fwd, ref_f)} / {ratio(bwd, ref_b)} |"
        )
    return "\n".join(lines)


def environment(threads: int) -> dict:
    import scipy

    return {
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "scipy": scipy.__version__,
        "numpy": np.__version__,
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "requested_threads": threads,
        "THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE", "unset"),
        "load_average_at_start": os.getloadavg(),
    }


def run_speed(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    env = environment(args.threads)
    sizes = QUICK_SIZES if args.quick else tuple(args.sizes)
    rows: list[dict] = []
    for dtype in (torch.float32, F64):
        for batch in sizes:
            rounds = args.rounds if batch < 100_000 else max(3, args.rounds // 2)
            for mode in ("forward", "forward+backward"):
                print(f"{dtype} B={batch} {mode} ...", file=sys.stderr, flush=True)
                rows.extend(measure(dtype, batch, mode, rounds, args.slsqp_sample))
                gc.collect()
    env["load_average_at_end"] = os.getloadavg()
    table = markdown(rows)
    header = (
        f"Threads: {env['torch_threads']}; torch {env['torch']}; scipy {env['scipy']}; "
        f"THP_MEM_ALLOC_ENABLE={env['THP_MEM_ALLOC_ENABLE']}; load average "
        f"{env['load_average_at_start'][0]:.1f} at start, {env['load_average_at_end'][0]:.1f} "
        f"at end on {env['logical_cpus']} logical CPUs. Times per call (the whole batch), "
        f"median of interleaved samples; SLSQP timed on {args.slsqp_sample} problems and "
        "extrapolated."
    )
    print(header)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "solvers_extra.json").write_text(
        json.dumps({"environment": env, "results": rows}, indent=1)
    )
    (RESULTS / "solvers_extra.md").write_text(header + "\n\n" + table + "\n")


# ---------------------------------------------------------------------------
# Accuracy


def _rounded(problem: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: v.to(torch.float32).to(dtype) for k, v in problem.items()}


def accuracy_multiview(batch: int) -> None:
    print("\n## Multi-view solver: float32 against float64 on the same (float32) inputs\n")
    print("| configuration | max error | 99th percentile | single-view solver max |")
    print("|---|---:|---:|---:|")
    names = ("points3d", "points2d", "intrinsics", "rotations", "camera_translations", "weights")
    configs = [
        ("1 camera, 0.3-2 m, 10-20 cm", dict(cameras=1, spread=0.0, depth=(0.3, 2.0))),
        (
            "2 cameras 3° apart, 2-10 m, 5-10 cm, off-centre",
            dict(cameras=2, spread=0.05, depth=(2.0, 10.0), size=(0.05, 0.1), offcentre=0.3),
        ),
        (
            "4 cameras around, 2-10 m, 5-10 cm, off-centre",
            dict(cameras=4, spread=math.pi, depth=(2.0, 10.0), size=(0.05, 0.1), offcentre=0.3),
        ),
    ]
    configs.append(("1 camera, object 56° off-axis (x̃ ≈ 1.5), 2 m, 10 cm, no noise", None))
    for label, config in configs:
        if config is None:
            problem, config = off_axis_problems(batch), {"cameras": 1}
        else:
            problem = multiview_problems(batch, seed=3, **config)
        double = solve_translation_multiview(*(_rounded(problem, F64)[n] for n in names))
        single_inputs = [_rounded(problem, torch.float32)[n] for n in names]
        reference = ""
        if config["cameras"] == 1:
            p = _rounded(problem, F64)
            rotated = p["points3d"] @ p["rotations"][:, 0].mT
            sv64 = solve_translation(
                rotated, p["points2d"][:, 0], p["intrinsics"][:, 0], p["weights"][:, 0]
            )
            sv32 = solve_translation(
                *(
                    t.float()
                    for t in (
                        rotated,
                        p["points2d"][:, 0],
                        p["intrinsics"][:, 0],
                        p["weights"][:, 0],
                    )
                )
            )
            reference = f"{(sv32.translation.double() - sv64.translation).norm(dim=-1).max():.2g} m"
        single = solve_translation_multiview(*single_inputs)
        ok = double.valid & single.valid
        error = (single.translation.double() - double.translation).norm(dim=-1)[ok]
        print(f"| {label} | {error.max():.2g} m | {error.quantile(0.99):.2g} m | {reference} |")


def accuracy_refine(batch: int, slsqp_sample: int) -> None:
    names = ("points3d", "points2d", "intrinsics", "weights")
    print("\n## Refinement: distance to the converged optimum (100 iterations), metres\n")
    print("| data | kernel | 1 it (median / p90) | 3 it | 5 it | 10 it | 20 it |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, outliers in (("1 px noise", 0.0), ("1 px noise + 20% outliers", 0.2)):
        problem = single_view_problems(batch, seed=4, outliers=outliers)
        inputs = [problem[n] for n in names]
        for robust in (None, "huber", "cauchy"):
            optimum = refine_translation(*inputs, robust=robust, iterations=100).translation
            cells = []
            for iterations in (1, 3, 5, 10, 20):
                t = refine_translation(*inputs, robust=robust, iterations=iterations).translation
                gap = (t - optimum).norm(dim=-1)
                cells.append(f"{gap.median():.1g} / {gap.quantile(0.9):.1g}")
            print(f"| {label} | {robust or 'least squares'} | " + " | ".join(cells) + " |")

    print("\n## Translation error with 20% of keypoints displaced by 30-80 px (5 iterations)\n")
    problem = single_view_problems(batch, seed=5, outliers=0.2)
    inputs = [problem[n] for n in names]
    print("| solver | median | 90th percentile |")
    print("|---|---:|---:|")
    candidates = {
        "DLT (solve_translation)": solve_translation(*inputs).translation,
        "refine, least squares": refine_translation(*inputs).translation,
        "refine, Huber 2 px": refine_translation(*inputs, robust="huber").translation,
        "refine, Cauchy 2 px": refine_translation(*inputs, robust="cauchy").translation,
    }
    for name, translation in candidates.items():
        error = (translation - problem["translation"]).norm(dim=-1) * 1000
        print(f"| {name} | {error.median():.3g} mm | {error.quantile(0.9):.3g} mm |")

    print(f"\n## Refinement against SLSQP, {slsqp_sample} problems with 1 px noise, float64\n")
    problem = single_view_problems(slsqp_sample, seed=6)
    inputs = [problem[n] for n in names]
    refined = refine_translation(*inputs).translation.numpy()
    dlt = solve_translation(*inputs).translation.numpy()
    arrays = {k: v.numpy() for k, v in problem.items()}
    tight = [slsqp(arrays, i, dlt[i], 1e-16, 20.0).x for i in range(slsqp_sample)]
    mobrecon = [slsqp(arrays, i).x for i in range(slsqp_sample)]
    gap_tight = np.linalg.norm(refined - np.stack(tight), axis=-1)
    gap_mobrecon = np.linalg.norm(refined - np.stack(mobrecon), axis=-1)
    print(f"- SLSQP from the DLT, ftol 1e-16: max |t_refine - t_slsqp| = {gap_tight.max():.2g} m")
    print(
        "- SLSQP from (0, 0, 0.6), default ftol (MobRecon's set-up): median "
        f"{np.median(gap_mobrecon):.2g} m, {int((gap_mobrecon > 1e-3).sum())} of {slsqp_sample} "
        "problems more than 1 mm away"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--rounds", type=int, default=7, help="samples per cell (halved at B>1e5)")
    parser.add_argument("--slsqp-sample", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="B = 1 and 4096 only")
    parser.add_argument("--accuracy", action="store_true", help="accuracy tables instead of speed")
    args = parser.parse_args()
    if args.accuracy:
        torch.set_num_threads(args.threads)
        accuracy_multiview(4096)
        accuracy_refine(2000, 50)
    else:
        run_speed(args)


if __name__ == "__main__":
    main()
