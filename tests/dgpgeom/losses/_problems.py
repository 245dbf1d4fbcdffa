"""Problems and references shared by the loss tests."""

import torch

# ----------------------------------------------------------------------------- helpers


def make_problem(batch=(4,), n=7, *, dtype=torch.float64, device="cpu", seed=0, noise=3.0):
    g = torch.Generator().manual_seed(seed)
    points = torch.randn(*batch, n, 3, generator=g, dtype=torch.float64) * 0.05
    points[..., 2] += 0.6
    k = torch.tensor(
        [[520.0, 0.7, 110.0], [0.0, 500.0, 115.0], [0.0, 0.0, 1.0]], dtype=torch.float64
    )
    targets = project(points, k) + noise * torch.randn(
        *batch, n, 2, generator=g, dtype=torch.float64
    )
    weights = torch.rand(*batch, n, generator=g, dtype=torch.float64)
    valid = torch.rand(*batch, n, generator=g) > 0.25
    return (
        points.to(device, dtype),
        targets.to(device, dtype),
        k.to(device, dtype),
        weights.to(device, dtype),
        valid.to(device),
    )


def project(points, k, min_depth=1e-3):
    z = points[..., 2:].clamp(min=min_depth)
    return (points[..., :2] / z) @ k[..., :2, :2].mT + k[..., None, :2, 2]


def leaves(*tensors):
    return tuple(t.detach().clone().requires_grad_(t.is_floating_point()) for t in tensors)


KINDS = ["l1", "l2", "huber"]
REDUCTIONS = ["mean", "sum", "none"]
