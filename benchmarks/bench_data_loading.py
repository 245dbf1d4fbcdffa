"""Images per second that ``handdgp train``'s data loader delivers, without the network.

Run from the repository root on a rendered training set:

    PYTHONPATH=reference_model:. python benchmarks/bench_data_loading.py DATA \
        [--workers 14] [--batch 128] [--seconds 10] [--rounds 3]

The loader is the training one (the ``full`` experiment's rectified, augmented crops,
``EpochSampler`` order), timed for ``--seconds`` after a warm-up of 4 batches, with each
worker's OpenCV on one thread (``handdgp.train.one_thread_per_worker``, as ``handdgp
train`` does) and with OpenCV's default thread count, interleaved over ``--rounds``
rounds; the median of each is printed, as markdown, with the machine's core count.
A training run cannot go faster than its loader: compare with its steps per second
times the batch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "reference_model"))
sys.path.insert(0, str(ROOT))

from handdgp.loading import default_dataset_factory  # noqa: E402
from handdgp.train import EpochSampler, one_thread_per_worker  # noqa: E402
from handdgp.training_run import resolve_config  # noqa: E402


def images_per_second(dataset, workers: int, batch: int, seconds: float, init) -> float:
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch,
        sampler=EpochSampler(len(dataset), batch, seed=0),
        num_workers=workers,
        worker_init_fn=init,
        drop_last=True,
    )
    batches = iter(loader)
    for _ in range(4):
        next(batches)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(batches)
        count += 1
    return count * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a training set made by `handdgp make-data`")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    dataset = default_dataset_factory(args.data, resolve_config("full", {}))
    variants = {"OpenCV on one thread per worker": one_thread_per_worker, "OpenCV default": None}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, init in variants.items():
            rates[name].append(
                images_per_second(dataset, args.workers, args.batch, args.seconds, init)
            )
    print(f"{os.cpu_count()} cores, {args.workers} workers, batches of {args.batch}, "
          f"median of {args.rounds} interleaved rounds of {args.seconds:g} s")  # fmt: skip
    print("| loader | images / s |\n| --- | ---: |")
    for name, values in rates.items():
        print(f"| {name} | {statistics.median(values):.0f} |")


if __name__ == "__main__":
    main()
