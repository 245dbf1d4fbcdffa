"""The 21-keypoint hand skeleton in FreiHAND order, and anatomical joint frames.

Keypoints follow FreiHAND (HandMesh's ``MPIIHandJoints``): 0 wrist; then for each
finger, thumb, index, middle, ring and little, four keypoints from the palm outwards
(thumb: CMC, MCP, IP, tip; other fingers: MCP, PIP, DIP, tip).

The anatomical frame of a joint holds, as columns in rest-pose coordinates, the
flexion axis (a positive rotation about it curls the finger towards the palm), the
bone axis (twist, pointing away from the palm) and the abduction axis (their cross
product). The pose sampler draws angles about these axes.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "FINGER_NAMES",
    "HAND_EDGES",
    "KEYPOINT_NAMES",
    "NUM_KEYPOINTS",
    "anatomical_frames",
    "hand_size",
    "keypoint_finger_segment",
    "rest_flexion_angles",
]

NUM_KEYPOINTS = 21
FINGER_NAMES = ("thumb", "index", "middle", "ring", "little")
_SEGMENTS = {
    "thumb": ("cmc", "mcp", "ip", "tip"),
    "index": ("mcp", "pip", "dip", "tip"),
}
KEYPOINT_NAMES = (
    "wrist",
    *(
        f"{finger}_{segment}"
        for finger in FINGER_NAMES
        for segment in _SEGMENTS.get(finger, _SEGMENTS["index"])
    ),
)

#: Bones of the 21-keypoint hand, ``(parent, child)``: the wrist to each finger's first
#: keypoint, then along each finger from the palm to the tip.
HAND_EDGES = tuple(
    (0 if joint == 0 else base + joint - 1, base + joint)
    for base in (1, 5, 9, 13, 17)
    for joint in range(4)
)


def hand_size(keypoints: torch.Tensor) -> torch.Tensor:
    """A hand's size: the summed length of its 20 bones.

    Args:
        keypoints: `(..., 21, 3)` FreiHAND-order keypoints, any length unit.

    Returns:
        `(...)` summed bone length, in the keypoints' unit (about 0.9 m for the template hand).

    Example:
        >>> from handdgp.hand import HandModel
        >>> model = HandModel()
        >>> out = model(torch.zeros(model.num_joints, 3))
        >>> 0.7 < float(hand_size(out.keypoints)) < 1.1
        True
    """
    parent, child = torch.tensor(HAND_EDGES, device=keypoints.device).T
    return (keypoints[..., child, :] - keypoints[..., parent, :]).norm(dim=-1).sum(-1)


def keypoint_finger_segment(keypoint: int) -> tuple[int, int]:
    """Return ``(finger, segment)`` of a FreiHAND keypoint index in ``1..20``.

    ``finger`` counts thumb=0 .. little=4; ``segment`` counts from the palm,
    0 (MCP, or CMC for the thumb) to 3 (tip).

    Example:
        >>> keypoint_finger_segment(8), KEYPOINT_NAMES[8]
        ((1, 3), 'index_tip')
    """
    if not 1 <= keypoint < NUM_KEYPOINTS:
        raise ValueError(f"keypoint: expected an index in 1..20, got {keypoint}")
    return (keypoint - 1) // 4, (keypoint - 1) % 4


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def palm_axes(keypoints: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distal, radial and dorsal unit axes of the palm from rest keypoints ``(21, 3)``.

    distal: wrist -> middle MCP; radial: little MCP -> index MCP, made orthogonal to
    distal; dorsal: the back of the hand (``distal x radial`` for a right hand).
    """
    distal = _normalize(keypoints[9] - keypoints[0])
    radial = keypoints[5] - keypoints[17]
    radial = _normalize(radial - (radial @ distal) * distal)
    dorsal = np.cross(distal, radial) if side == "right" else np.cross(radial, distal)
    return distal, radial, dorsal


def anatomical_frames(keypoints: np.ndarray, side: str) -> np.ndarray:
    """Anatomical frames of the 15 finger joints, from rest keypoints in FreiHAND order.

    A finger's flexion axis is the palm's radial axis made orthogonal to the bone
    (negated for a left hand), so that a positive rotation moves the child towards the
    palm. The thumb's nail faces radially rather than dorsally, so its flexion axis is
    ``radial x bone`` (flexion across the palm, towards the little finger).

    Args:
        keypoints: `(21, 3)` rest keypoints, metres.
        side: ``"right"`` or ``"left"``.

    Returns:
        `(21, 3, 3)` frames for the keypoints, columns (flexion, bone, abduction);
        identity for the wrist and the tips (which are not joints).

    Example:
        >>> import numpy as np
        >>> kp = np.zeros((21, 3))
        >>> for f in range(5):  # a flat right hand: fingers along +y, thumb at +x, palm to +z
        ...     for s in range(4):
        ...         kp[1 + 4 * f + s] = [0.02 * (1 - f), 0.08 + 0.025 * s, 0.0]
        >>> frames = anatomical_frames(kp, "right")
        >>> (frames[5].round(6) + 0.0).tolist()  # index MCP: flexion about +x curls +y towards +z
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    _, radial, _ = palm_axes(keypoints, side)
    frames = np.tile(np.eye(3), (NUM_KEYPOINTS, 1, 1))
    for k in range(1, NUM_KEYPOINTS):
        finger, segment = keypoint_finger_segment(k)
        if segment == 3:
            continue
        bone = _normalize(keypoints[k + 1] - keypoints[k])
        if finger == 0:
            flexion = _normalize(np.cross(radial, bone))
        else:
            # dorsal x bone, written so that it stays defined for a bone bent along dorsal
            flexion = radial - (radial @ bone) * bone
            flexion = _normalize(flexion if side == "right" else -flexion)
        frames[k] = np.stack([flexion, bone, np.cross(flexion, bone)], axis=1)
    return frames


def rest_flexion_angles(keypoints: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Rest flexion (radians) of each joint: how far the rest pose is already curled.

    The angle, about the joint's flexion axis, from the incoming segment (parent
    keypoint -> joint) to the outgoing bone. Zero for the wrist, the tips and the thumb
    CMC (whose incoming segment, wrist -> CMC, is not a bone).

    Args:
        keypoints: `(21, 3)` rest keypoints, metres.
        frames: `(21, 3, 3)` from :func:`anatomical_frames`.

    Returns:
        `(21,)` radians.

    Example:
        >>> import numpy as np
        >>> kp = np.zeros((21, 3))
        >>> for f in range(5):  # the flat right hand of anatomical_frames' example
        ...     for s in range(4):
        ...         kp[1 + 4 * f + s] = [0.02 * (1 - f), 0.08 + 0.025 * s, 0.0]
        >>> kp[8] = kp[7] + [0.0, 0.0, 0.025]  # index distal phalanx bent 90 deg towards the palm
        >>> frames = anatomical_frames(kp, "right")
        >>> np.degrees(rest_flexion_angles(kp, frames)[[6, 7]]).round(3).tolist()
        [0.0, 90.0]
    """
    angles = np.zeros(NUM_KEYPOINTS)
    for k in range(1, NUM_KEYPOINTS):
        finger, segment = keypoint_finger_segment(k)
        if segment == 3 or (finger == 0 and segment == 0):
            continue
        parent = 0 if segment == 0 else k - 1
        incoming = _normalize(keypoints[k] - keypoints[parent])
        bone = frames[k][:, 1]
        axis = frames[k][:, 0]
        # signed angle of the rotation about `axis` taking `incoming` to `bone`
        angles[k] = np.arctan2(np.cross(incoming, bone) @ axis, incoming @ bone)
    return angles
