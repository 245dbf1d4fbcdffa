"""Data for the HandDGP reference model: a mesh renderer and data-set readers.

- :mod:`~handdgp.data.render`: RGB / mask / depth rendering for any intrinsics
  (OpenGL through moderngl on EGL, or a pure-torch fallback).
- :mod:`~handdgp.data.freihand`, :mod:`~handdgp.data.ho3d`: readers for
  FreiHAND v2, our synthetic sets and HO3D, yielding :class:`HandSample` s.
- :mod:`~handdgp.data.scenes`, :mod:`~handdgp.data.appearance`,
  :mod:`~handdgp.data.synthesize`: the synthetic data set (``handdgp make-data``).
- :mod:`~handdgp.data.crops`: rectified network crops and their targets
  (:class:`CropDataset`).
- :mod:`~handdgp.data.contact_sheet`: contact sheets (``handdgp show-data``).
"""

from .contact_sheet import contact_sheet, draw_hand
from .crops import CropDataset, crop_image, crop_rectification, hand_box
from .freihand import FREIHAND_VERSIONS, FreiHANDDataset, SyntheticHandDataset
from .ho3d import HO3D_TO_FREIHAND, HO3DDataset, opengl_to_opencv
from .render import (
    Light,
    RenderOutput,
    concat_meshes,
    egl_available,
    intrinsics_to_gl_projection,
    render_mesh,
    vertex_normals,
)
from .safe_pickle import load_pickle
from .sample import HandSample, collate_hand_samples, project_points
from .scenes import SceneConfig
from .synthesize import make_dataset

__all__ = [
    "FREIHAND_VERSIONS",
    "HO3D_TO_FREIHAND",
    "CropDataset",
    "FreiHANDDataset",
    "HO3DDataset",
    "HandSample",
    "Light",
    "RenderOutput",
    "SceneConfig",
    "SyntheticHandDataset",
    "collate_hand_samples",
    "concat_meshes",
    "contact_sheet",
    "crop_image",
    "crop_rectification",
    "draw_hand",
    "egl_available",
    "hand_box",
    "intrinsics_to_gl_projection",
    "load_pickle",
    "make_dataset",
    "opengl_to_opencv",
    "project_points",
    "render_mesh",
    "vertex_normals",
]
