"""Inference throughput of the HandDGP reference network on this machine.

Run from the repository root:

    PYTHONPATH=reference_model:. python benchmarks/bench_inference.py [--threads 1] [--quick]

Two measurements, each at batch 1 and batch 32, in images per second:

- ``network``: one forward pass of the shipped network (the ``full`` checkpoint's
  architecture and weights, at its input size) on ready crops, including the DGP
  translation solve;
- ``end-to-end``: :func:`handdgp.predict.predict_batch` on 640x480 uint8 images:
  perspective rectification, the network, and the maps back to the original camera.

Each figure is the median over ``--repeats`` timed runs after warm-up runs.
Results are printed as markdown and written as JSON and markdown under
``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "reference_model"))
sys.path.insert(0, str(ROOT))

from _machine import cpu_model  # noqa: E402

from handdgp.loading import load_model  # noqa: E402
from handdgp.predict import predict_batch  # noqa: E402


def build_model():
    """(model, its experiment config, a description of it): the shipped ``full`` network."""
    loaded = load_model("full")
    return loaded.model, loaded.config, f"the shipped `full` checkpoint (step {loaded.step})"


def median_time(fn, repeats, warmup):
    """Median wall-clock and process-CPU seconds of ``fn``, and the wall-clock samples."""
    for _ in range(warmup):
        fn()
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(times), statistics.median(cpu), times


def load_average():
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def _cores():
    import os

    return os.cpu_count() or 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="3 repeats, 1 warm-up")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup = 3, 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model, config, mesh = build_model()
    model.eval()
    size = config.net.image_size
    c = (size - 1) / 2.0
    focal = config.data.canonical_focal
    k_crop = torch.tensor([[focal, 0.0, c], [0.0, focal, c], [0.0, 0.0, 1.0]])
    k_image = np.array([[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]])
    rng = np.random.default_rng(0)

    rows = []
    for batch in args.batch_sizes:
        crops = torch.rand(batch, 3, size, size)
        intrinsics = k_crop.expand(batch, 3, 3)

        def network(crops=crops, intrinsics=intrinsics):
            with torch.no_grad():
                model(crops, intrinsics)

        images = rng.integers(0, 256, (batch, 480, 640, 3), dtype=np.uint8)
        boxes = [(220.0, 140.0, 420.0, 340.0)] * batch

        def end_to_end(images=images, boxes=boxes):
            predict_batch(model, images, k_image, boxes, data=config.data)

        for name, fn in (("network", network), ("end-to-end", end_to_end)):
            seconds, cpu_seconds, times = median_time(fn, args.repeats, args.warmup)
            rows.append(
                {
                    "what": name,
                    "batch": batch,
                    "median_s": seconds,
                    "images_per_s": batch / seconds,
                    "ms_per_image": 1000.0 * seconds / batch,
                    "cpu_ms_per_image": 1000.0 * cpu_seconds / batch,
                    "times_s": times,
                }
            )
            print(f"{name:>10} B={batch:<3} {batch / seconds:8.1f} images/s", file=sys.stderr)

    params = sum(p.numel() for p in model.parameters())
    environment = {
        "load_average_1min": load_average(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "input_size": size,
        "net": config.net.to_dict(),
        "parameters": params,
        "mesh": mesh,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "command": "PYTHONPATH=reference_model:. python benchmarks/bench_inference.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    lines = [
        "## HandDGP reference network: inference throughput",
        "",
        f"CPU: {environment['cpu']}, {environment['threads']} thread(s), torch "
        f"{environment['torch']}. Shipped network ({params / 1e6:.2f} M parameters, "
        f"{size}x{size} input) from {mesh}. Median of "
        f"{args.repeats} runs after {args.warmup} warm-up runs. Load average at the end "
        f"of the run: {environment['load_average_1min']:.2f} (on {_cores()} cores): "
        "where it exceeds the cores, wall-clock figures include waiting for the CPU, and "
        "the process CPU time per image is the steadier number.",
        "",
        "| What | Batch | images/s | ms/image (wall) | ms/image (CPU) |",
        "|:--|--:|--:|--:|--:|",
    ]
    lines += [
        f"| {r['what']} | {r['batch']} | {r['images_per_s']:.1f} | {r['ms_per_image']:.1f} "
        f"| {r['cpu_ms_per_image']:.1f} |"
        for r in rows
    ]
    lines += [
        "",
        "network: forward pass on ready crops, DGP included. end-to-end: "
        "`predict_batch` on 640x480 uint8 images (perspective rectification, network, "
        "maps back to the original camera).",
        "",
        f"Command: `{environment['command'].strip()}`",
    ]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "inference.json").write_text(
        json.dumps({"environment": environment, "results": rows}, indent=1)
    )
    (args.out / "inference.md").write_text(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
