"""Load a licensed MANO model (``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``) safely.

The official MANO files are Python-2 pickles that reference ``chumpy`` arrays and
``scipy.sparse`` matrices. Unpickling them normally imports those packages and runs
whatever callables the file names. :func:`load_mano` instead uses a restricted
unpickler: the only globals it resolves are numpy's array and dtype reconstructors,
a few inert builtins, and two stand-ins, one for ``chumpy.ch.Ch`` and one for the
``scipy.sparse`` CSC/CSR matrices, whose pickled state (a plain dict of arrays) is
read back into numpy arrays by this module. Any other global (``os.system``,
``builtins.eval``, another chumpy class...) is refused with :class:`UnsafePickleError`
before anything is called. Neither chumpy nor scipy is needed.

MANO itself cannot be redistributed: users who have accepted its licence point
:func:`load_mano` at their own copy.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from handdgp.hand.skeleton import anatomical_frames, rest_flexion_angles
from handdgp.hand.template import HandTemplate

__all__ = [
    "MANO_JOINT_NAMES",
    "MANO_TIP_VERTICES",
    "MANO_TIP_VERTICES_MOBRECON",
    "SparseMatrix",
    "UnsafePickleError",
    "load_mano",
    "read_mano_pickle",
]

MANO_JOINT_NAMES = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "little1", "little2", "little3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
)  # fmt: skip
# FreiHAND keypoint -> MANO joint (-1: fingertip vertex).
_MANO_KEYPOINT_JOINTS = (0, 13, 14, 15, -1, 1, 2, 3, -1, 4, 5, 6, -1, 10, 11, 12, -1, 7, 8, 9, -1)
# Fingertip vertices, thumb to little. The default is the set used by the smplx MANO
# layer and most MANO-based works; MobRecon's keypoint regressor used the second one.
MANO_TIP_VERTICES = (744, 320, 443, 554, 671)
MANO_TIP_VERTICES_MOBRECON = (744, 333, 444, 555, 672)


class UnsafePickleError(pickle.UnpicklingError):
    """Raised when a pickle references anything but arrays, chumpy Ch and sparse matrices."""


class SparseMatrix(NamedTuple):
    """A compressed sparse matrix read from a pickle, without scipy.

    Attributes:
        format: ``"csc"`` or ``"csr"``.
        shape: ``(rows, cols)``.
        data: `(nnz,)` values.
        indices: `(nnz,)` row (csc) or column (csr) indices.
        indptr: `(cols + 1,)` (csc) or `(rows + 1,)` (csr) offsets.
    """

    format: str
    shape: tuple[int, int]
    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray

    def to_dense(self) -> np.ndarray:
        """The dense `(rows, cols)` float64 array.

        Example:
            >>> m = SparseMatrix("csc", (2, 2), np.array([5.0]), np.array([1]), np.array([0, 0, 1]))
            >>> m.to_dense().tolist()
            [[0.0, 0.0], [0.0, 5.0]]
        """
        dense = np.zeros(self.shape, dtype=np.float64)
        major = np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))
        if self.format == "csc":
            np.add.at(dense, (self.indices, major), self.data)
        else:
            np.add.at(dense, (major, self.indices), self.data)
        return dense


class _ChumpyStandIn:
    """Receives the pickled state of a ``chumpy.ch.Ch``; its array is ``state['x']``."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or "x" not in state:
            raise UnsafePickleError("a chumpy.ch.Ch in the pickle has no array state 'x'")
        self.state = state


class _SparseStandIn:
    """Receives the pickled ``__dict__`` of a scipy.sparse CSC/CSR matrix."""

    format = ""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not {"data", "indices", "indptr"} <= state.keys():
            raise UnsafePickleError(
                f"a scipy.sparse {self.format} matrix in the pickle lacks data/indices/indptr"
            )
        self.state = state


class _CscStandIn(_SparseStandIn):
    format = "csc"


class _CsrStandIn(_SparseStandIn):
    format = "csr"


def _safe_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    # copyreg._reconstructor(cls, object, None), as written by protocols 0 and 1
    if cls not in (_ChumpyStandIn, _CscStandIn, _CsrStandIn) or base is not object or state is not None:
        raise UnsafePickleError(f"refusing copyreg._reconstructor({cls!r}, {base!r}, ...)")
    return cls.__new__(cls)


def _safe_codecs_encode(text: Any, encoding: str = "utf-8") -> bytes:
    # bytes pickled by Python 3 with protocol < 3
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("refusing _codecs.encode other than of a str to latin1")
    return text.encode("latin1")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]
    scalar = np.float64(0).__reduce__()[0]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("chumpy.ch", "Ch"): _ChumpyStandIn,
        ("_codecs", "encode"): _safe_codecs_encode,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    for module in ("copy_reg", "copyreg"):
        allowed[(module, "_reconstructor")] = _safe_reconstructor
    for module in ("__builtin__", "builtins"):
        for name, value in (("object", object), ("set", set), ("frozenset", frozenset)):
            allowed[(module, name)] = value
    for module in ("scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse"):
        allowed[(module, "csc_matrix")] = _CscStandIn
    for module in ("scipy.sparse.csr", "scipy.sparse._csr", "scipy.sparse"):
        allowed[(module, "csr_matrix")] = _CsrStandIn
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    _allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load the global {module}.{name}: a MANO file holds only numpy "
                "arrays, chumpy.ch.Ch arrays and scipy.sparse CSC/CSR matrices"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing a persistent id in the pickle")


def _convert(value: Any) -> Any:
    if isinstance(value, _ChumpyStandIn):
        return np.asarray(_convert(value.state["x"]), dtype=np.float64)
    if isinstance(value, _SparseStandIn):
        state = value.state
        shape = state.get("_shape", state.get("shape"))
        if shape is None:
            raise UnsafePickleError(f"a scipy.sparse {value.format} matrix has no shape")
        return SparseMatrix(
            value.format,
            (int(shape[0]), int(shape[1])),
            np.asarray(state["data"]),
            np.asarray(state["indices"], dtype=np.int64),
            np.asarray(state["indptr"], dtype=np.int64),
        )
    if isinstance(value, dict):
        return {(k.decode("latin1") if isinstance(k, bytes) else k): _convert(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_convert(v) for v in value)
    return value


def read_mano_pickle(path: str | Path) -> dict[str, Any]:
    """Read a MANO-layout pickle without chumpy or scipy and without running its code.

    chumpy arrays become numpy arrays and sparse matrices :class:`SparseMatrix`.

    Args:
        path: the ``.pkl`` file.

    Returns:
        The file's dict, with plain numpy values.

    Raises:
        UnsafePickleError: if the file references any other global.

    Example:
        >>> import pickle, tempfile, os
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = os.path.join(d, "m.pkl")
        ...     with open(p, "wb") as f:
        ...         pickle.dump({"f": np.zeros((2, 3), np.uint32)}, f, protocol=2)
        ...     read_mano_pickle(p)["f"].shape
        (2, 3)
    """
    with open(path, "rb") as file:
        data = _RestrictedUnpickler(file, encoding="latin1").load()
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a MANO dict, got {type(data).__name__}")
    return _convert(data)


def _dense(value: Any) -> np.ndarray:
    return value.to_dense() if isinstance(value, SparseMatrix) else np.asarray(value, np.float64)


def load_mano(
    path: str | Path,
    side: str | None = None,
    tip_vertices: tuple[int, int, int, int, int] = MANO_TIP_VERTICES,
    hierarchy: bool = False,
    dtype: torch.dtype = torch.float32,
) -> HandTemplate:
    """Load a licensed MANO model as a :class:`~handdgp.hand.HandTemplate`.

    The result has MANO's 778 vertices, 1,538 faces and 16 joints; its 21 keypoints,
    in FreiHAND order, are the 16 joints plus five fingertip vertices. The keypoint
    regressor holds MANO's ``J_regressor`` rows for the joints and one-hot rows for the
    tips. Shape coefficients are MANO's betas (mean 0, std 1); ``posedirs``,
    ``hands_components`` and ``hands_mean`` are kept. Anatomical joint frames are
    computed from the rest skeleton (:func:`~handdgp.hand.skeleton.anatomical_frames`).

    Args:
        path: ``MANO_RIGHT.pkl`` or ``MANO_LEFT.pkl`` (or a file in their layout).
        side: ``"right"`` or ``"left"``; ``None`` reads it from the file name.
        tip_vertices: fingertip vertex ids, thumb to little. The default
            :data:`MANO_TIP_VERTICES` (744, 320, 443, 554, 671) is the smplx set;
            :data:`MANO_TIP_VERTICES_MOBRECON` reproduces MobRecon's regressor.
        hierarchy: also build the 5-level mesh hierarchy (778 -> 389 -> 195 -> 98 -> 49,
            as MobRecon), which needs ``handdgp[mesh]``.
        dtype: floating-point dtype of the tensors.

    Returns:
        The MANO hand template.

    Raises:
        UnsafePickleError: if the file references anything but arrays and the
            chumpy / scipy.sparse classes of the MANO layout.
        ValueError: if a MANO key is missing or ``side`` cannot be told.
    """
    path = Path(path)
    if side is None:
        match = re.search(r"(right|left)", path.name, flags=re.IGNORECASE)
        if match is None:
            raise ValueError(f"side: cannot tell the hand side from {path.name!r}; pass side=")
        side = match.group(1).lower()
    if side not in ("right", "left"):
        raise ValueError(f"side: expected 'right' or 'left', got {side!r}")
    raw = read_mano_pickle(path)
    required = ("v_template", "f", "weights", "kintree_table", "J_regressor", "shapedirs")
    missing = [key for key in required if key not in raw]
    if missing:
        raise ValueError(f"{path.name}: not a MANO model, missing {missing}")

    vertices = np.asarray(raw["v_template"], np.float64)
    faces = np.asarray(raw["f"], np.int64)
    weights = np.asarray(raw["weights"], np.float64)
    regressor = _dense(raw["J_regressor"])
    shapedirs = np.asarray(raw["shapedirs"], np.float64)
    num_vertices, num_joints = len(vertices), len(regressor)
    if num_joints != len(MANO_JOINT_NAMES):
        raise ValueError(f"J_regressor: expected {len(MANO_JOINT_NAMES)} joints, got {num_joints}")
    if max(tip_vertices) >= num_vertices or len(tip_vertices) != 5:
        raise ValueError(f"tip_vertices: expected 5 vertex ids below {num_vertices}, got {tip_vertices}")
    parents = np.asarray(raw["kintree_table"], np.int64)[0].copy()
    parents[0] = -1

    rest_joints = regressor @ vertices
    joint_shapedirs = np.einsum("jv,vcs->jcs", regressor, shapedirs)
    keypoint_joints = np.asarray(_MANO_KEYPOINT_JOINTS)
    tips = np.asarray(tip_vertices)
    keypoint_regressor = np.zeros((21, num_vertices))
    keypoints = np.zeros((21, 3))
    is_joint = keypoint_joints >= 0
    keypoint_regressor[is_joint] = regressor[keypoint_joints[is_joint]]
    keypoint_regressor[np.flatnonzero(~is_joint), tips] = 1.0
    keypoints[is_joint] = rest_joints[keypoint_joints[is_joint]]
    keypoints[~is_joint] = vertices[tips]
    frames_kp = anatomical_frames(keypoints, side)
    flexion_kp = rest_flexion_angles(keypoints, frames_kp)
    joint_frames = np.tile(np.eye(3), (num_joints, 1, 1))
    joint_flexion = np.zeros(num_joints)
    joint_frames[keypoint_joints[is_joint]] = frames_kp[is_joint]
    joint_flexion[keypoint_joints[is_joint]] = flexion_kp[is_joint]
    joint_frames[0], joint_flexion[0] = np.eye(3), 0.0

    def t(a: np.ndarray | None, integer: bool = False) -> torch.Tensor | None:
        if a is None:
            return None
        out = torch.from_numpy(np.ascontiguousarray(a))
        return out.to(torch.int64) if integer else out.to(dtype)

    optional = {
        key: np.asarray(raw[key], np.float64) if key in raw else None
        for key in ("posedirs", "hands_components", "hands_mean")
    }
    num_shape = shapedirs.shape[-1]
    template = HandTemplate(
        name=f"mano-{side}",
        side=side,
        vertices=t(vertices),
        faces=t(faces, True),
        skinning_weights=t(weights),
        rest_joints=t(rest_joints),
        parents=t(parents, True),
        joint_names=MANO_JOINT_NAMES,
        shapedirs=t(shapedirs),
        joint_shapedirs=t(joint_shapedirs),
        shape_mean=torch.zeros(num_shape, dtype=dtype),
        shape_std=torch.ones(num_shape, dtype=dtype),
        joint_frames=t(joint_frames),
        joint_rest_flexion=t(joint_flexion),
        keypoint_joints=t(keypoint_joints, True),
        tip_vertices=t(tips, True),
        joint_regressor=t(keypoint_regressor),
        posedirs=t(optional["posedirs"]),
        hands_components=t(optional["hands_components"]),
        hands_mean=t(optional["hands_mean"]),
        attribution=(
            "MANO (Romero, Tzionas, Black, SIGGRAPH Asia 2017), loaded from the user's licensed "
            f"copy {path.name}; subject to the MANO licence, not redistributable."
        ),
    )
    if hierarchy:
        import dataclasses

        from handdgp.hand.hierarchy import build_mesh_hierarchy

        template = dataclasses.replace(
            template, hierarchy=build_mesh_hierarchy(vertices, faces, num_levels=5)
        )
    return template
