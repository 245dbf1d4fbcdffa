"""An independent NumPy/SciPy version of the FreiHAND protocol, and test data, for the metrics tests."""

import math

import numpy as np
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial import cKDTree

# --------------------------------------------------- reference (NumPy / SciPy, per sample)


def ref_align(gt, pred, *, umeyama=False):
    """Similarity alignment of pred onto gt; returns (aligned, R, s, s_gt, mean_gt, mean_pred)."""
    mean_gt, mean_pred = gt.mean(0), pred.mean(0)
    g, p = gt - mean_gt, pred - mean_pred
    s_gt = np.linalg.norm(g) + 1e-8
    s_pred = np.linalg.norm(p) + 1e-8
    g, p = g / s_gt, p / s_pred
    if umeyama:
        u, sig, vt = np.linalg.svd(g.T @ p)
        d = np.sign(np.linalg.det(u @ vt))
        r = u @ np.diag([1.0, 1.0, d]) @ vt
        s = sig[0] + sig[1] + d * sig[2]
    else:
        r, s = orthogonal_procrustes(g, p)
    aligned = p @ r.T * s * s_gt + mean_gt
    return aligned, r, s, s_gt, s_pred, mean_gt, mean_pred


def ref_align_verts_by_keypoints(verts, trafo, *, official):
    _, r, s, s_gt, s_pred, mean_gt, mean_pred = trafo
    if official:  # the official script's transform for non-MANO meshes
        mean_v = verts.mean(0)
        return (verts - mean_v) @ r.T * s * s_gt + (mean_gt - mean_pred) + mean_v
    return (verts - mean_pred) / s_pred @ r.T * s * s_gt + mean_gt


def ref_fscore(gt, pred, th):
    d_gt = cKDTree(pred).query(gt)[0]  # each GT point to the prediction
    d_pred = cKDTree(gt).query(pred)[0]
    precision = np.mean(d_pred < th)
    recall = np.mean(d_gt < th)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def ref_measures(errors, thresholds):
    """errors: (S, N). Per point over samples, as the official EvalUtil."""
    means, aucs, curves = [], [], []
    norm = np.trapezoid(np.ones_like(thresholds), thresholds)
    for k in range(errors.shape[1]):
        data = errors[:, k]
        means.append(np.mean(data))
        curve = np.array([np.mean((data <= t).astype(float)) for t in thresholds])
        curves.append(curve)
        aucs.append(np.trapezoid(curve, thresholds) / norm)
    return np.mean(means), np.mean(aucs), np.mean(np.array(curves), 0)


def ref_evaluate(pred_xyz, pred_verts, gt_xyz, gt_verts, *, mode="own", umeyama=False):
    thresholds = np.linspace(0.0, 0.05, 100)
    errs = {"xyz": [], "xyz_al": [], "mesh": [], "mesh_al": []}
    f, f_al = [], []
    for i in range(len(pred_xyz)):
        xyz, verts, xyz_p, verts_p = gt_xyz[i], gt_verts[i], pred_xyz[i], pred_verts[i]
        errs["xyz"].append(np.linalg.norm(xyz - xyz_p, axis=1))
        trafo = ref_align(xyz, xyz_p, umeyama=umeyama)
        errs["xyz_al"].append(np.linalg.norm(xyz - trafo[0], axis=1))
        if mode == "own":
            verts_al = ref_align(verts, verts_p, umeyama=umeyama)[0]
            errs["mesh"].append(np.linalg.norm(verts - verts_p, axis=1))
            errs["mesh_al"].append(np.linalg.norm(verts - verts_al, axis=1))
        else:
            verts_al = ref_align_verts_by_keypoints(
                verts_p, trafo, official=mode == "keypoints_official"
            )
        f.append([ref_fscore(verts, verts_p, t) for t in (0.005, 0.015)])
        f_al.append([ref_fscore(verts, verts_al, t) for t in (0.005, 0.015)])
    scores, curves = {}, {}
    for name in ("xyz", "xyz_al", "mesh", "mesh_al"):
        if errs[name]:
            mean, auc, curve = ref_measures(np.array(errs[name]), thresholds)
            scores[f"{name}_mean3d"], scores[f"{name}_auc3d"] = mean * 100.0, auc
            curves[name] = curve
        else:
            scores[f"{name}_mean3d"] = scores[f"{name}_auc3d"] = math.nan
    f, f_al = np.array(f).mean(0), np.array(f_al).mean(0)
    for j, t in enumerate((5, 15)):
        scores[f"f_score_{t}"], scores[f"f_al_score_{t}"] = f[j], f_al[j]
    return scores, curves


# ------------------------------------------------------------------------- data


def random_rotation(g, batch=()):
    q = torch.randn(*batch, 3, 3, generator=g, dtype=torch.float64)
    r, _ = torch.linalg.qr(q)
    return r * torch.linalg.det(r)[..., None, None].sign()


def make_hands(b=6, j=21, v=60, *, seed=0, noise=0.008, v_pred=None):
    """Random point sets ~10 cm across, 0.6 m in front of the camera, with noisy predictions."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.tensor([0.02, -0.01, 0.6], dtype=torch.float64)
    gt_xyz = torch.randn(b, j, 3, generator=g, dtype=torch.float64) * 0.04 + centre
    gt_verts = torch.randn(b, v, 3, generator=g, dtype=torch.float64) * 0.04 + centre
    rot = random_rotation(g, (b,))
    shift = torch.randn(b, 1, 3, generator=g, dtype=torch.float64) * 0.02
    scale = 1.0 + 0.1 * torch.randn(b, 1, 1, generator=g, dtype=torch.float64)

    def perturb(x):
        local = (x - centre) @ (0.9 * torch.eye(3, dtype=torch.float64) + 0.1 * rot).mT
        return (
            local * scale
            + centre
            + shift
            + noise * torch.randn(x.shape, generator=g, dtype=torch.float64)
        )

    pred_xyz = perturb(gt_xyz)
    pred_verts = perturb(gt_verts)
    if v_pred is not None:
        pred_verts = torch.randn(b, v_pred, 3, generator=g, dtype=torch.float64) * 0.04 + centre
    return pred_xyz, pred_verts, gt_xyz, gt_verts


def np_(t):
    return t.detach().cpu().double().numpy()
