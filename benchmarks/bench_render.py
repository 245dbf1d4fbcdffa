"""Render throughput of handdgp.data.render_mesh, EGL versus the torch fallback.

A closed mesh with the size of the hand template (800 vertices, 1520 faces),
jittered per item, fills about half of a square image; one thread. Rates are
images per second of this process's CPU time (``time.process_time``), which
stays meaningful on a machine shared with other jobs; wall-clock rates on an
idle machine are the same for this single-threaded work.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD/reference_model:$PWD python benchmarks/bench_render.py
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from handdgp.data.render import egl_available, render_mesh


def ellipsoid(rings: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """A UV-sphere with ``rings * 2 * rings`` vertices, scaled like a hand, 0.5 m away."""
    theta = torch.linspace(0.05, math.pi - 0.05, rings)
    phi = torch.linspace(0, 2 * math.pi, 2 * rings + 1)[:-1]
    t, p = torch.meshgrid(theta, phi, indexing="ij")
    v = torch.stack([t.sin() * p.cos(), t.sin() * p.sin(), t.cos()], -1).reshape(-1, 3)
    cols = 2 * rings
    faces = []
    for i in range(rings - 1):
        for j in range(cols):
            a, b = i * cols + j, i * cols + (j + 1) % cols
            faces += [[a, b, a + cols], [b, b + cols, a + cols]]
    return v * torch.tensor([0.06, 0.09, 0.03]) + torch.tensor([0.0, 0.0, 0.5]), torch.tensor(faces)


def throughput(backend: str, size: int, batch: int, seconds: float) -> float:
    torch.manual_seed(0)
    verts, faces = ellipsoid()
    verts = verts + 0.002 * torch.randn(batch, *verts.shape)
    f = size * 0.5 / 0.09 * 0.5  # the mesh spans about half the image
    K = torch.tensor([[f, 0.0, (size - 1) / 2], [0.0, f, (size - 1) / 2], [0.0, 0.0, 1.0]])
    render_mesh(verts, faces, K, (size, size), backend=backend)  # warm-up (context, caches)
    done, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        render_mesh(verts, faces, K, (size, size), backend=backend)
        done += batch
    return done / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    backends = ["egl", "torch"] if egl_available() else ["torch"]
    for size in (128, 224):
        for backend in backends:
            rate = throughput(backend, size, args.batch, args.seconds)
            print(f"{backend:5s} {size:3d}px batch {args.batch}: {rate:8.1f} images/s")


if __name__ == "__main__":
    main()
