"""Render synthetic hand samples and write them as a data set in FreiHAND's layout.

:func:`render_block` turns the scenes of :mod:`handdgp.data.scenes` into images,
masks, visibility and annotations; :func:`make_dataset` (``handdgp make-data``)
writes ``N`` of them to disk in FreiHAND's training layout, which
:class:`~handdgp.data.SyntheticHandDataset` reads::

    DIR/training/rgb/%08d.jpg       RGB images (JPEG)
    DIR/training/mask/%08d.jpg      hand masks (the hand and the first 4 cm of the
                                    forearm), 0 or 255 (JPEG, quality 100)
    DIR/training_K.json             N x 3 x 3 intrinsics
    DIR/training_xyz.json           N x 21 x 3 keypoints, metres, camera frame
    DIR/training_verts.json         N x 1609 x 3 vertices, metres, camera frame
    DIR/training_scale.json         N reference bone lengths |xyz[9] - xyz[10]|
    DIR/training_visibility.json    N x 21 booleans
    DIR/training_params.json        N objects: pose (20 x 3 axis-angle, pose[0] the
                                    global orientation into the camera frame), shape
                                    (10), root (3, metres), focal (fx, fy),
                                    principal_point (cx, cy), occluder, forearm,
                                    cropped (0 or 1), curl
    DIR/synthesis.json              the command's settings, to resume or refuse

Coordinates are written with 6 decimals (1 µm, 1e-6 pixel for intrinsics), which
keeps the vertex file near 45 kB per sample. Intrinsics are rounded *before*
rendering, so the images match the stored cameras exactly; the vertices used for
rendering differ from the stored ones by less than 0.5 µm.

**Determinism and resumption.** Every sample is a pure function of ``(seed, index)``
and the scene configuration (see :mod:`handdgp.data.scenes`; each sample is
rasterised with the rest of its block of 64, whatever ``N``); the output files are
byte-identical for the same settings whatever the number of workers, on the same
software stack (OpenCV's JPEG encoder and Mesa's rasteriser). Samples are
processed in chunks (256 by default); a finished chunk's annotations go to
``DIR/.parts/<chunk>`` (renamed into place once complete), so an interrupted run
restarted with the same command redoes only the unfinished chunks. The JSON lists are
assembled at the end; then ``.parts`` is renamed to ``.parts.done`` and removed, so a
kill during the removal leaves a finished set (the leftover is removed on the next
run). A chunk folder missing any of its files (left by an older version's clean-up)
is redone.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from handdgp.hand import HandModel, HandTemplate, load_template

from . import appearance, gl
from .imageio import load_json
from .render import Light, intrinsics_to_gl_projection, render_mesh, vertex_normals
from .scenes import (
    BLOCK_SIZE,
    HandScene,
    SceneConfig,
    forearm_faces,
    keypoint_skin,
    keypoint_visibility,
    occluder_topology,
    sample_scenes,
    wrist_ring,
)

__all__ = ["ANNOTATION_KEYS", "RenderedSample", "make_dataset", "render_block"]

ANNOTATION_KEYS = ("K", "xyz", "verts", "scale", "visibility", "params")
_FORMAT = 1
_DECIMALS = 6
_DRAW_BATCH = 16


class RenderedSample(NamedTuple):
    """One rendered sample.

    Attributes:
        index: position in the data set.
        rgb: `(H, W, 3)` uint8 RGB image.
        mask: `(H, W)` bool hand mask: the hand and the wrist cuff (the first 4 cm of
            the forearm), not the rest of the arm or the occluder.
        intrinsics: `(3, 3)` float64 intrinsics, pixels.
        keypoints: `(21, 3)` float64 camera-frame keypoints, metres.
        vertices: `(V, 3)` float64 camera-frame hand vertices, metres.
        visibility: `(21,)` bool keypoint visibility.
        params: the generator's parameters (see the module docstring).
    """

    index: int
    rgb: np.ndarray
    mask: np.ndarray
    intrinsics: np.ndarray
    keypoints: np.ndarray
    vertices: np.ndarray
    visibility: np.ndarray
    params: dict[str, Any]


class _Meshes(NamedTuple):
    """The combined hand + forearm + occluder topology, shared by every sample."""

    faces: torch.Tensor
    faces_np: np.ndarray
    num_mask_faces: int
    own_faces: np.ndarray
    ring: np.ndarray
    forearm_uv: tuple[np.ndarray, np.ndarray]
    occluder_uv: tuple[np.ndarray, np.ndarray]


def _meshes(template: HandTemplate) -> _Meshes:
    hand = template.faces.to(torch.int64).numpy()
    num_verts = template.num_vertices
    ring = wrist_ring(template)
    arm = forearm_faces(len(ring)) + num_verts
    num_arm_verts = int(arm.max()) + 1 - num_verts
    latitude, longitude, occ = occluder_topology()
    faces = np.concatenate([hand, arm, occ + num_verts + num_arm_verts])
    stations = num_arm_verts // max(len(ring), 1)
    arm_u = np.concatenate(
        [np.tile(2 * np.pi * np.arange(len(ring)) / max(len(ring), 1), stations), [0.0]]
    )
    arm_v = np.concatenate([np.repeat(np.arange(stations, dtype=float), len(ring)), [stations]])
    own = np.zeros((21, len(faces)), dtype=bool)
    own[:, : len(hand)] = keypoint_skin(template)
    cuff = len(hand) + 2 * len(ring)  # the hand, then the forearm's first 4 cm
    own[0, len(hand) : cuff] = True
    return _Meshes(
        torch.from_numpy(faces),
        faces,
        cuff,
        own,
        ring,
        (arm_u, arm_v * 2.0),
        (longitude, latitude),
    )


def _round(array: np.ndarray, decimals: int = _DECIMALS) -> np.ndarray:
    return np.round(np.asarray(array, np.float64), decimals) + 0.0  # no "-0.0"


def _albedo(scene: HandScene, template: HandTemplate, meshes: _Meshes) -> np.ndarray:
    rng = scene.rng
    skin = appearance.skin_colors(rng, template)
    ring_colors = skin[meshes.ring]
    arm_skin = np.tile(ring_colors, (len(meshes.forearm_uv[0]) // len(meshes.ring), 1))
    arm = np.concatenate([arm_skin, ring_colors.mean(0, keepdims=True)])
    arm = arm * (1.0 + rng.normal(0.0, 0.02, (len(arm), 1)))
    if rng.random() < 0.5:  # a sleeve from the second or third ring on
        sleeve = appearance.object_colors(rng, *meshes.forearm_uv)
        start = int(rng.integers(2, 4)) * len(meshes.ring)
        arm[start:] = sleeve[start:]
    occluder = appearance.object_colors(rng, *meshes.occluder_uv)
    return np.concatenate([skin, np.clip(arm, 0, 1), occluder]).astype(np.float32)


def _rasterize(
    vertices: np.ndarray,
    colors: np.ndarray,
    intrinsics: np.ndarray,
    meshes: _Meshes,
    size: tuple[int, int],
    backend: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(B, V, 3)` meshes, pre-shaded colours -> uint8 RGB, depth, face ids (numpy)."""
    verts = torch.from_numpy(vertices).float()
    K = torch.from_numpy(intrinsics).float()
    cols = torch.from_numpy(colors)
    if backend == "egl" or (backend == "auto" and gl.available()):
        projection = intrinsics_to_gl_projection(K, size)
        clip = torch.cat([verts, torch.ones_like(verts[..., :1])], -1) @ projection.transpose(-1, -2)
        color8, depth, face = gl.draw(clip, cols, meshes.faces, size)
        return color8[..., :3].numpy(), depth.numpy(), face.numpy()
    # Pre-shaded colours pass through unchanged with ambient 1 and no diffuse light.
    out = render_mesh(
        verts,
        meshes.faces,
        K,
        size,
        vertex_colors=cols,
        light=Light(ambient=1.0, diffuse=0.0),
        backend="torch" if backend == "auto" else backend,
    )
    rgb = (out.rgb.permute(0, 2, 3, 1) * 255.0 + 0.5).clamp(0, 255).to(torch.uint8)
    return rgb.numpy(), out.depth.numpy(), out.face_index.numpy()


def render_block(
    scenes: list[HandScene],
    template: HandTemplate,
    *,
    config: SceneConfig | None = None,
    backend: str = "auto",
    count: int | None = None,
) -> list[RenderedSample]:
    """Render scenes (e.g. one block of :func:`~handdgp.data.scenes.sample_scenes`).

    Scenes of the same image size are rasterised together, up to 16 per call, in
    order. Rasterisation depends (at the level of sub-pixel rounding on triangle
    edges) on a scene's position in its call, so to make every sample a pure function
    of its index, pass the whole block and use ``count`` to keep only the first
    scenes. Everything random (skin, light, background, noise) comes from each
    scene's own generator.

    Args:
        scenes: the scenes.
        template: the hand template they were posed with.
        config: the scene configuration (for the visibility tolerance); default
            ``SceneConfig()``.
        backend: renderer backend, ``"auto"``, ``"egl"`` or ``"torch"``.
        count: return only the first ``count`` scenes (all are rasterised); default all.

    Returns:
        One :class:`RenderedSample` per returned scene, in order.

    Example:
        >>> from handdgp.data.scenes import sample_scenes
        >>> from handdgp.hand import HandModel, load_template
        >>> template = load_template()
        >>> config = SceneConfig(image_size_range=(32, 32), focal_range=(30.0, 100.0))
        >>> scenes = sample_scenes(HandModel(template), template, 0, 0, config)
        >>> out = render_block(scenes, template, config=config, count=2)
        >>> len(out), out[1].rgb.shape, out[1].mask.dtype, out[1].visibility.shape
        (2, (32, 32, 3), dtype('bool'), (21,))
    """
    config = SceneConfig() if config is None else config
    count = len(scenes) if count is None else min(count, len(scenes))
    meshes = _meshes(template)
    combined = np.stack([np.concatenate([s.vertices, s.forearm, s.occluder]) for s in scenes])
    normals = vertex_normals(torch.from_numpy(combined[:count]).float(), meshes.faces)
    normals = normals.double().numpy()
    shaded = [
        appearance.shade(scene.rng, normals[k], _albedo(scene, template, meshes))
        if k < count
        else np.zeros(combined[k].shape, np.float32)  # rasterised for the grouping only
        for k, scene in enumerate(scenes)
    ]
    results: dict[int, RenderedSample] = {}
    groups = []
    for size in sorted({s.image_size for s in scenes}):
        same = [k for k, s in enumerate(scenes) if s.image_size == size]
        # At most 16 images per draw: bigger read-back buffers cost page faults.
        groups += [(size, same[i : i + _DRAW_BATCH]) for i in range(0, len(same), _DRAW_BATCH)]
    for size, group in groups:
        rgb, depth, face = _rasterize(
            np.stack([combined[k] for k in group]),
            np.stack([shaded[k] for k in group]),
            np.stack([scenes[k].intrinsics for k in group]),
            meshes,
            size,
            backend,
        )
        for j, k in enumerate(group):
            if k >= count:
                continue
            scene = scenes[k]
            rng = scene.rng
            image = appearance.composite(rng, rgb[j], face[j] >= 0)
            visibility = keypoint_visibility(
                scene.keypoints,
                scene.intrinsics,
                depth[j],
                face[j],
                meshes.own_faces,
                max_skin_depth=config.max_skin_depth,
                tolerance=config.visibility_tolerance,
            )
            K = scene.intrinsics
            results[k] = RenderedSample(
                index=scene.index,
                rgb=image,
                mask=(face[j] >= 0) & (face[j] < meshes.num_mask_faces),
                intrinsics=K,
                keypoints=scene.keypoints,
                vertices=scene.vertices,
                visibility=visibility,
                params={
                    "pose": scene.pose.reshape(-1),
                    "shape": scene.shape,
                    "root": scene.root,
                    "focal": np.array([K[0, 0], K[1, 1]]),
                    "principal_point": np.array([K[0, 2], K[1, 2]]),
                    "occluder": float(scene.has_occluder),
                    "forearm": float(scene.has_forearm),
                    "cropped": float(scene.cropped),
                    "curl": scene.curl,
                },
            )
    return [results[k] for k in range(count)]


# ----------------------------------------------------------------------------- writing


def _dumps(value: Any) -> bytes:
    import orjson

    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def _annotation_items(sample: RenderedSample) -> dict[str, bytes]:
    """Each annotation of one sample as JSON text."""
    xyz = _round(sample.keypoints)
    params = {
        k: _round(v) if isinstance(v, np.ndarray) else round(float(v), _DECIMALS)
        for k, v in sample.params.items()
    }
    return {
        "K": _dumps(_round(sample.intrinsics)),
        "xyz": _dumps(xyz),
        "verts": _dumps(_round(sample.vertices)),
        "scale": _dumps(round(float(np.linalg.norm(xyz[9] - xyz[10])), 8)),
        "visibility": _dumps(sample.visibility.astype(bool)),
        "params": _dumps(params),
    }


def _write_image(path: Path, image: np.ndarray, quality: int) -> None:
    import cv2

    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {path}")
    path.write_bytes(data.tobytes())


class _Job(NamedTuple):
    out: Path
    num: int
    seed: int
    config: SceneConfig
    jpeg_quality: int
    backend: str


_WORKER: dict[str, Any] = {}


def _keep_freed_memory() -> None:
    """Ask glibc to keep freed memory instead of returning it to the system.

    Every sample allocates and frees a few megabytes of image buffers; with glibc's
    defaults they go back to the kernel and come back as fresh pages, which cost
    about 10 % of the run time in page faults. A no-op where glibc is not the libc.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 64 << 20)
    mallopt(m_trim_threshold, 512 << 20)


def _worker_state() -> tuple[HandModel, HandTemplate]:
    key = os.getpid()
    if _WORKER.get("pid") != key:
        import cv2

        torch.set_num_threads(1)
        cv2.setNumThreads(1)  # parallelism comes from the worker processes
        _keep_freed_memory()
        template = load_template()
        _WORKER.update(pid=key, template=template, model=HandModel(template))
    return _WORKER["model"], _WORKER["template"]


def _process_block(job: _Job, block: int) -> tuple[int, dict[str, bytes]]:
    """Render one block, write its images; returns its annotations as JSON fragments."""
    model, template = _worker_state()
    scenes = sample_scenes(model, template, job.seed, block, job.config)
    count = min(job.num - block * BLOCK_SIZE, BLOCK_SIZE)
    items: dict[str, list[bytes]] = {k: [] for k in ANNOTATION_KEYS}
    rendered = render_block(scenes, template, config=job.config, backend=job.backend, count=count)
    for sample in rendered:
        name = f"{sample.index:08d}.jpg"
        _write_image(job.out / "training" / "rgb" / name, sample.rgb, job.jpeg_quality)
        _write_image(job.out / "training" / "mask" / name, sample.mask.astype(np.uint8) * 255, 100)
        for key, text in _annotation_items(sample).items():
            items[key].append(text)
    return block, {k: b",".join(v) for k, v in items.items()}


def _settings(num: int, seed: int, chunk_size: int, config: SceneConfig, quality: int) -> dict:
    return {
        "format": _FORMAT,
        "num": num,
        "seed": seed,
        "chunk_size": chunk_size,
        "jpeg_quality": quality,
        "scene": json.loads(json.dumps(dataclasses.asdict(config))),
    }


def _atomic_write(path: Path, chunks: Iterator[bytes] | bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        if isinstance(chunks, bytes):
            handle.write(chunks)
        else:
            for chunk in chunks:
                handle.write(chunk)
    os.replace(tmp, path)


def _assemble(out: Path, parts: Path, num_chunks: int) -> None:
    for key in ANNOTATION_KEYS:

        def pieces(key: str = key) -> Iterator[bytes]:
            yield b"["
            for c in range(num_chunks):
                if c:
                    yield b","
                yield (parts / f"{c:05d}" / f"{key}.part").read_bytes()
            yield b"]"

        _atomic_write(out / f"training_{key}.json", pieces())


def make_dataset(
    out: str | Path,
    num: int,
    *,
    seed: int = 0,
    config: SceneConfig | None = None,
    workers: int = 2,
    chunk_size: int = 256,
    jpeg_quality: int = 90,
    backend: str = "auto",
    progress: bool = True,
) -> Path:
    """Generate ``num`` synthetic samples into ``out`` in FreiHAND's training layout.

    See the module docstring for the files, precision, determinism and resumption.
    Rerunning an interrupted call with the same arguments finishes it; a directory
    made with other settings is refused.

    Args:
        out: output directory (created).
        num: number of samples.
        seed: the data set's seed.
        config: the scene distribution; default ``SceneConfig()``.
        workers: processes (``fork``); 1 renders in this process.
        chunk_size: samples per resumable chunk, a multiple of 64.
        jpeg_quality: RGB JPEG quality (masks use 100).
        backend: renderer backend, ``"auto"``, ``"egl"`` or ``"torch"``.
        progress: show a tqdm progress bar.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: on bad arguments (an empty ``out``), or if ``out`` holds a set made
            with other settings.
        NotADirectoryError: if ``out`` is an existing file.

    Example:
        >>> import tempfile
        >>> from handdgp.data import SyntheticHandDataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> config = SceneConfig(image_size_range=(32, 40), focal_range=(30.0, 100.0))
        >>> root = make_dataset(tmp.name, 3, config=config, workers=1, progress=False)
        >>> ds = SyntheticHandDataset(root)
        >>> len(ds), ds[2].vertices.shape, ds[2].visibility.shape
        (3, (1609, 3), (21,))
        >>> tmp.cleanup()
    """
    config = SceneConfig() if config is None else config
    if not str(out).strip():
        raise ValueError(f"out: expected a directory, got {str(out)!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out: {out} is a file, expected a directory")
    if not isinstance(num, int) or num < 1:
        raise ValueError(f"num: expected a positive integer, got {num!r}")
    if chunk_size < BLOCK_SIZE or chunk_size % BLOCK_SIZE:
        raise ValueError(f"chunk_size: expected a positive multiple of {BLOCK_SIZE}, got {chunk_size}")
    if workers < 1:
        raise ValueError(f"workers: expected at least 1, got {workers}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality: expected 1..100, got {jpeg_quality}")
    settings = _settings(num, seed, chunk_size, config, jpeg_quality)
    settings_file = out / "synthesis.json"
    parts = out / ".parts"
    finished_parts = out / ".parts.done"
    if settings_file.is_file():
        previous = load_json(settings_file)
        if previous != settings:
            raise ValueError(
                f"{out} holds a data set made with other settings ({settings_file}); "
                "use another directory or delete it"
            )
        if not parts.exists() and all(
            (out / f"training_{k}.json").is_file() for k in ANNOTATION_KEYS
        ):
            shutil.rmtree(finished_parts, ignore_errors=True)  # a kill during the clean-up
            return out  # already complete
    for sub in ("rgb", "mask"):
        (out / "training" / sub).mkdir(parents=True, exist_ok=True)
    parts.mkdir(exist_ok=True)
    _atomic_write(settings_file, json.dumps(settings, indent=1).encode())
    for stale in parts.glob("*.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)

    num_chunks = -(-num // chunk_size)
    for c in range(num_chunks):
        chunk_dir = parts / f"{c:05d}"
        if chunk_dir.is_dir() and not all(
            (chunk_dir / f"{k}.part").is_file() for k in ANNOTATION_KEYS
        ):
            shutil.rmtree(chunk_dir)  # half removed: redo it
    blocks_per_chunk = chunk_size // BLOCK_SIZE
    num_blocks = -(-num // BLOCK_SIZE)
    todo = [c for c in range(num_chunks) if not (parts / f"{c:05d}").is_dir()]
    blocks = [
        b
        for c in todo
        for b in range(c * blocks_per_chunk, min((c + 1) * blocks_per_chunk, num_blocks))
    ]
    done_samples = num - sum(
        min(num, (c + 1) * chunk_size) - c * chunk_size for c in todo
    )
    job = _Job(out, num, seed, config, jpeg_quality, backend)

    from tqdm import tqdm

    bar = tqdm(total=num, initial=done_samples, unit="img", disable=not progress, smoothing=0.1)
    pending: dict[int, dict[int, dict[str, bytes]]] = {c: {} for c in todo}

    def finish(block: int, texts: dict[str, bytes]) -> None:
        chunk = block // blocks_per_chunk
        pending[chunk][block] = texts
        first = chunk * blocks_per_chunk
        expected = min(first + blocks_per_chunk, num_blocks) - first
        bar.update(min(num, (block + 1) * BLOCK_SIZE) - block * BLOCK_SIZE)
        if len(pending[chunk]) < expected:
            return
        tmp = parts / f"{chunk:05d}.tmp-{os.getpid()}"
        tmp.mkdir(exist_ok=True)
        received = pending.pop(chunk)
        texts_by_block = [received[b] for b in range(first, first + expected)]
        for key in ANNOTATION_KEYS:
            (tmp / f"{key}.part").write_bytes(b",".join(t[key] for t in texts_by_block))
        os.replace(tmp, parts / f"{chunk:05d}")

    try:
        if workers == 1 or len(blocks) <= 1:
            for block in blocks:
                finish(*_process_block(job, block))
        else:
            import multiprocessing

            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(min(workers, len(blocks))) as pool:
                args = [(job, b) for b in blocks]
                for result in pool.imap_unordered(_star_process_block, args):
                    finish(*result)
    finally:
        bar.close()
    _assemble(out, parts, num_chunks)
    shutil.rmtree(finished_parts, ignore_errors=True)
    os.replace(parts, finished_parts)  # from here on the set is complete
    shutil.rmtree(finished_parts)
    return out


def _star_process_block(args: tuple[_Job, int]) -> tuple[int, dict[str, bytes]]:
    return _process_block(*args)
