"""Time of one training step of the HandDGP reference network on this machine.

Run from the repository root (nothing else heavy running):

    PYTHONPATH=reference_model:. python benchmarks/bench_training_step.py [--threads 1]

One step is what ``handdgp train`` does per batch: forward, every loss term of the
``full`` experiment, backward, gradient clipping and an Adam update, on a batch of
random crops with consistent random targets (the time does not depend on the
values). The variants are measured interleaved (round-robin, ``--rounds`` rounds of
``--steps`` steps each) and the median step time of each is reported, with its ratio
to the first variant, all from one run:

- ``hand_model``: the shipped decoder (MLP to joint rotations and shape, skinned);
- ``spiral``: MobRecon's spiral mesh decoder (256-128-64-32 channels);
- ``hand_model + bf16``: the shipped decoder under CPU bf16 autocast;
- ``hand_model + channels_last``: the images and encoder in channels-last layout;
- ``shipped @ 192 / 224 / 256 px``: the shipped network (stride-4 heat maps with the
  top-down context path, bf16 encoder) at its 192 px crop and two larger ones: what a
  larger crop costs per step (every weight carries over to another crop size).

``--variants NAME ...`` runs some of them; ratios are to the first one run.

Results are printed as markdown and written under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "reference_model"))
sys.path.insert(0, str(ROOT))

from handdgp.config import ExperimentConfig  # noqa: E402
from handdgp.loading import default_model_factory  # noqa: E402
from handdgp.objective import training_losses  # noqa: E402


def make_batch(model, batch_size, size, generator):
    """Random crops and targets that are consistent (keypoints project to keypoints2d)."""
    num_vertices = model.joint_regressor.shape[1]
    focal = torch.full((batch_size,), 150.0)
    K = torch.zeros(batch_size, 3, 3)
    K[:, 0, 0], K[:, 1, 1], K[:, 2, 2] = focal, focal, 1.0
    K[:, :2, 2] = (size - 1) / 2
    root = torch.tensor([0.0, 0.0, 0.5]) + 0.02 * torch.randn(batch_size, 3, generator=generator)
    verts = root[:, None] + 0.05 * torch.randn(batch_size, num_vertices, 3, generator=generator)
    keypoints = model.joint_regressor @ verts
    uvw = keypoints @ K.transpose(-1, -2)
    return {
        "image": torch.rand(batch_size, 3, size, size, generator=generator),
        "intrinsics": K,
        "keypoints2d": uvw[..., :2] / uvw[..., 2:],
        "keypoints3d": keypoints,
        "vertices": verts,
        "visibility": torch.ones(batch_size, 21, dtype=torch.bool),
    }


def build(decoder, amp=False, channels_last=False, batch_size=32, net=None):
    config = ExperimentConfig()
    config.net.decoder = decoder
    for key, value in (net or {}).items():
        setattr(config.net, key, value)
    torch.manual_seed(0)
    model, faces = default_model_factory(config)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    batch = make_batch(model, batch_size, config.net.image_size, torch.Generator().manual_seed(0))
    if channels_last:
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    model.train()

    def step():
        with autocast:
            prediction = model(batch["image"], batch["intrinsics"])
        total, _ = training_losses(prediction, batch, faces, config.loss, config.net.image_size)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
        optimizer.step()

    return step


VARIANTS = {
    "hand_model": dict(decoder="hand_model"),
    "spiral": dict(decoder="spiral"),
    "hand_model + bf16": dict(decoder="hand_model", amp=True),
    "hand_model + channels_last": dict(decoder="hand_model", channels_last=True),
    **{
        f"shipped @ {size} px": dict(
            decoder="hand_model",
            amp=True,
            net=dict(image_size=size, keypoint_stride=4, keypoint_context=True),
        )
        for size in (192, 224, 256)
    },
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS)[:4],
        metavar="NAME", help=f"which variants, in order (default: the first four of {list(VARIANTS)})",
    )  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    steps = {name: build(batch_size=args.batch_size, **VARIANTS[name]) for name in args.variants}
    for step in steps.values():  # warm-up
        step()
    samples = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            samples[name].append((time.perf_counter() - start) / args.steps)
    medians = {name: statistics.median(v) for name, v in samples.items()}
    first = next(iter(medians.values()))
    lines = [
        f"Training step, batch {args.batch_size}, {args.threads} thread(s), "
        f"median of {args.rounds} interleaved rounds of {args.steps} steps "
        f"({dt.datetime.now():%Y-%m-%d %H:%M})",
        "",
        f"| variant | s / step | images / s | time vs {args.variants[0]} |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, value in medians.items():
        lines.append(
            f"| {name} | {value:.3f} | {args.batch_size / value:.1f} | {value / first:.2f}x |"
        )
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"training_step-{args.threads}thread"
    (args.out / f"{stem}.md").write_text(table + "\n")
    (args.out / f"{stem}.json").write_text(
        json.dumps(
            {"samples_s": samples, "median_s": medians, "args": {**vars(args), "out": stem}},
            default=str,
            indent=1,
        )
    )
    return medians


if __name__ == "__main__":
    main()
