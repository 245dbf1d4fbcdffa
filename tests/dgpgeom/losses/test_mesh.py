"""Tests for dgpgeom.losses.mesh."""

import numpy as np
import pytest
import torch
from torch.func import vmap

from dgpgeom.losses import (
    edge_length_loss,
    normal_loss,
)
from dgpgeom.validation import ShapeError

# ----------------------------------------------------------------------- mesh losses


def make_mesh(batch=(2,), v=12, f=16, *, dtype=torch.float64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    gt = torch.randn(*batch, v, 3, generator=g, dtype=torch.float64) * 0.05
    pred = gt + 0.01 * torch.randn(*batch, v, 3, generator=g, dtype=torch.float64)
    faces = torch.stack([torch.randperm(v, generator=g)[:3] for _ in range(f)])
    return pred.to(device, dtype), gt.to(device, dtype), faces.to(device)


def edge_length_reference(pred, gt, faces):
    out = np.zeros((*pred.shape[:-2], len(faces), 3))
    for fi, (a, b, c) in enumerate(faces.tolist()):
        for ei, (i, j) in enumerate(((a, b), (a, c), (b, c))):
            lp = np.linalg.norm(pred[..., i, :] - pred[..., j, :], axis=-1)
            lg = np.linalg.norm(gt[..., i, :] - gt[..., j, :], axis=-1)
            out[..., fi, ei] = np.abs(lp - lg)
    return out


def normal_reference(pred, gt, faces):
    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)

    out = np.zeros((*pred.shape[:-2], len(faces), 3))
    for fi, (a, b, c) in enumerate(faces.tolist()):
        n = unit(np.cross(unit(gt[..., b, :] - gt[..., a, :]), unit(gt[..., c, :] - gt[..., a, :])))
        for ei, (i, j) in enumerate(((b, a), (c, a), (c, b))):
            e = unit(pred[..., i, :] - pred[..., j, :])
            out[..., fi, ei] = np.abs(np.sum(e * n, axis=-1))
    return out


class _MeshLossTests:
    """Tests shared by edge_length_loss and normal_loss, which have one interface."""

    @pytest.fixture
    def loss_fn(self):
        return type(self).function

    @pytest.fixture
    def reference(self):
        return type(self).reference_impl

    def test_against_reference(self, loss_fn, reference, device, dtype):
        pred, gt, faces = make_mesh(device=device, dtype=dtype)
        expected = reference(pred.cpu().double().numpy(), gt.cpu().double().numpy(), faces.cpu())
        per_edge = loss_fn(pred, gt, faces, reduction="none")
        assert per_edge.shape == (2, 16, 3) and per_edge.dtype == dtype
        tol = 1e-10 if dtype == torch.float64 else 1e-5
        np.testing.assert_allclose(per_edge.cpu().double().numpy(), expected, atol=tol)
        assert abs(float(loss_fn(pred, gt, faces)) - expected.mean()) < tol
        assert abs(float(loss_fn(pred, gt, faces, reduction="sum")) - expected.sum()) < 100 * tol

    def test_identical_is_zero_and_rigid_invariant(self, loss_fn, reference, device, dtype):
        pred, gt, faces = make_mesh(device=device, dtype=dtype)
        assert loss_fn(gt, gt, faces) < 1e-6
        rot = torch.linalg.matrix_exp(
            torch.tensor(
                [[0.0, -0.3, 0.2], [0.3, 0.0, -0.1], [-0.2, 0.1, 0.0]], dtype=dtype, device=device
            )
        )
        moved_pred = pred @ rot.T + torch.tensor([0.1, -0.2, 0.6], dtype=dtype, device=device)
        moved_gt = gt @ rot.T + torch.tensor([0.1, -0.2, 0.6], dtype=dtype, device=device)
        torch.testing.assert_close(loss_fn(moved_pred, moved_gt, faces), loss_fn(pred, gt, faces))

    def test_valid_and_broadcast(self, loss_fn, reference, device, dtype):
        pred, gt, faces = make_mesh(batch=(3,), device=device, dtype=dtype)
        valid = torch.tensor([True, False, True], device=device)
        per_edge = loss_fn(pred, gt, faces, reduction="none")
        torch.testing.assert_close(loss_fn(pred, gt, faces, valid), per_edge[valid].mean())
        assert loss_fn(pred, gt, faces, torch.zeros_like(valid)) == 0
        # One ground-truth mesh for the whole batch.
        assert loss_fn(pred, gt[0], faces, reduction="none").shape == (3, 16, 3)
        # int32 faces work too.
        torch.testing.assert_close(loss_fn(pred, gt, faces.int()), loss_fn(pred, gt, faces))

    def test_bad_input(self, loss_fn, reference):
        pred, gt, faces = make_mesh()
        with pytest.raises(ShapeError, match="faces"):
            loss_fn(pred, gt, faces.double())
        with pytest.raises(ShapeError, match="faces"):
            loss_fn(pred, gt, faces[:, :2])
        with pytest.raises(ShapeError, match="vertices_gt"):
            loss_fn(pred, gt[..., :5, :], faces)
        with pytest.raises(ShapeError, match="valid"):
            loss_fn(pred, gt, faces, torch.ones(2))
        with pytest.raises(ValueError, match="reduction"):
            loss_fn(pred, gt, faces, reduction="mean_of_means")

    def test_degenerate_gradients_are_finite(self, loss_fn, reference):
        pred, gt, faces = make_mesh()
        collapsed = torch.zeros_like(pred, requires_grad=True)
        loss_fn(collapsed, gt, faces).backward()
        assert torch.isfinite(collapsed.grad).all()

    def test_gradcheck(self, loss_fn, reference):
        pred, gt, faces = make_mesh(batch=(1,), v=6, f=4)
        pred = pred.requires_grad_()
        assert torch.autograd.gradcheck(lambda p: loss_fn(p, gt, faces), (pred,))
        assert torch.autograd.gradgradcheck(lambda p: loss_fn(p, gt, faces), (pred,))

    def test_vmap_compile_meta(self, loss_fn, reference):
        pred, gt, faces = make_mesh(batch=(3,), dtype=torch.float32)
        mapped = vmap(lambda p, g: loss_fn(p, g, faces))(pred, gt)
        loop = torch.stack([loss_fn(pred[i], gt[i], faces) for i in range(3)])
        torch.testing.assert_close(mapped, loop)
        compiled = torch.compile(loss_fn, backend="eager", fullgraph=True)
        torch.testing.assert_close(compiled(pred, gt, faces), loss_fn(pred, gt, faces))
        meta = loss_fn(pred.to("meta"), gt.to("meta"), faces.to("meta"), reduction="none")
        assert meta.shape == (3, 16, 3)


class TestEdgeLengthLoss(_MeshLossTests):
    function = staticmethod(edge_length_loss)
    reference_impl = staticmethod(edge_length_reference)

    def test_scaled_mesh(self):
        gt = torch.tensor(
            [[0.0, 0.0, 0.0], [0.03, 0.0, 0.0], [0.0, 0.04, 0.0]], dtype=torch.float64
        )
        faces = torch.tensor([[0, 1, 2]])
        # Doubling the mesh adds each edge's own length: (0.03 + 0.04 + 0.05) / 3.
        torch.testing.assert_close(
            edge_length_loss(2.0 * gt, gt, faces), torch.tensor(0.04, dtype=torch.float64)
        )


class TestNormalLoss(_MeshLossTests):
    function = staticmethod(normal_loss)
    reference_impl = staticmethod(normal_reference)

    def test_bounded_and_orientation_free(self):
        pred, gt, faces = make_mesh(batch=(4,), v=20, f=30, seed=3)
        per_edge = normal_loss(pred * 5.0, gt, faces, reduction="none")
        assert (per_edge >= 0).all() and (per_edge <= 1 + 1e-12).all()
        torch.testing.assert_close(
            normal_loss(pred, gt, faces.flip(-1), reduction="none").sum(-1),
            normal_loss(pred, gt, faces, reduction="none").sum(-1),
        )
