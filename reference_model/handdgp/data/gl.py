"""Headless OpenGL rasterization with moderngl on an EGL context.

Contexts are created lazily, on first use, one per process and thread: the
cache is keyed by ``(pid, thread id)``, so a forked child (a ``DataLoader``
worker) never touches its parent's context and creates its own.

Mesa's software rasterizer (llvmpipe) keeps a pool of rasterizer threads per
process. After a fork the child inherits the parent's driver state but not
those threads, and rendering in the child, even with a context of its own,
hangs (observed with Mesa 22.3 when the parent had rendered). We therefore
default ``LP_NUM_THREADS`` to ``0`` (rasterize in the calling thread) before the
first context is made; that is also the right setting when parallelism comes
from data-loading worker processes. A process that set ``LP_NUM_THREADS`` to a
positive value itself and rendered before forking gets a ``RuntimeError`` in
the child instead of a hang.

A batch is drawn in one call: the images are stacked as tiles in a tall
framebuffer, every vertex is moved into its item's tile in the vertex shader,
and clip distances keep each triangle inside its tile.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["available", "draw", "unavailable_reason"]

_VERTEX_SHADER = """
#version 330
in vec4 in_clip;
in vec3 in_color;
uniform int u_vertices;
uniform float u_tiles;
out vec3 v_color;
out float v_depth;
out float gl_ClipDistance[4];
void main() {
    float tile = float(gl_VertexID / u_vertices);
    gl_ClipDistance[0] = in_clip.w + in_clip.x;
    gl_ClipDistance[1] = in_clip.w - in_clip.x;
    gl_ClipDistance[2] = in_clip.w + in_clip.y;
    gl_ClipDistance[3] = in_clip.w - in_clip.y;
    float y = (in_clip.y + in_clip.w * (2.0 * tile + 1.0 - u_tiles)) / u_tiles;
    gl_Position = vec4(in_clip.x, y, in_clip.z, in_clip.w);
    v_color = in_color;
    v_depth = in_clip.w;
}
"""

_FRAGMENT_SHADER = """
#version 330
in vec3 v_color;
in float v_depth;
uniform int u_faces;
layout(location = 0) out vec4 out_color;
layout(location = 1) out vec2 out_depth_face;
void main() {
    out_color = vec4(v_color, 1.0);
    out_depth_face = vec2(v_depth, float(gl_PrimitiveID % u_faces + 1));
}
"""

_GL_CLIP_DISTANCE0 = 0x3000
# Colour (RGBA8) + depth/face (RG32F) + z-buffer attachments stay under this many bytes.
_FRAMEBUFFER_BYTES = 64 << 20
# Framebuffers (of distinct sizes) kept alive per context.
_MAX_FRAMEBUFFERS = 8


@dataclass
class _State:
    ctx: Any
    program: Any
    vbo: Any
    ibo: Any
    vao: Any
    max_size: int
    threaded_llvmpipe: bool
    framebuffers: dict[tuple[int, int], Any] = field(default_factory=dict)


_STATES: dict[tuple[int, int], _State] = {}
_FAILURES: dict[int, str] = {}
_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    global _LOCK
    _LOCK = threading.Lock()  # another thread may have held it at the fork


os.register_at_fork(after_in_child=_after_fork_in_child)


def _create_state() -> _State:
    import moderngl

    for (pid, _), state in _STATES.items():
        if pid != os.getpid() and state.threaded_llvmpipe:
            raise RuntimeError(
                "this process was forked from one that rendered with a multi-threaded llvmpipe "
                "context (LP_NUM_THREADS > 0); a new context here would deadlock. Leave "
                "LP_NUM_THREADS unset (or 0) in the parent, or start workers with 'spawn'."
            )
    os.environ.setdefault("LP_NUM_THREADS", "0")
    ctx = moderngl.create_context(standalone=True, backend="egl", require=330)
    program = ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
    vbo = ctx.buffer(reserve=4)
    ibo = ctx.buffer(reserve=4)
    vao = ctx.vertex_array(
        program, [(vbo, "4f 3f", "in_clip", "in_color")], index_buffer=ibo, index_element_size=4
    )
    ctx.enable(moderngl.DEPTH_TEST)
    for i in range(4):
        ctx.enable_direct(_GL_CLIP_DISTANCE0 + i)
    info = ctx.info
    max_size = min(
        int(info["GL_MAX_TEXTURE_SIZE"]),
        int(info["GL_MAX_RENDERBUFFER_SIZE"]),
        int(min(info["GL_MAX_VIEWPORT_DIMS"])),
    )
    threaded = "llvmpipe" in str(info["GL_RENDERER"]) and os.environ["LP_NUM_THREADS"] != "0"
    return _State(ctx, program, vbo, ibo, vao, max_size, threaded)


def _state() -> _State:
    key = (os.getpid(), threading.get_ident())
    state = _STATES.get(key)
    if state is None:
        with _LOCK:
            state = _STATES.get(key)
            if state is None:
                state = _STATES[key] = _create_state()
    return state


def available() -> bool:
    """Whether an EGL context can be created in this process (creates it if so)."""
    return unavailable_reason() is None


def unavailable_reason() -> str | None:
    """Why no EGL context can be created here, or None when one can (creates it if so)."""
    pid = os.getpid()
    if pid in _FAILURES:
        return _FAILURES[pid]
    try:
        _state()
    except Exception as exc:  # missing module, missing libraries, no driver, ...
        _FAILURES[pid] = f"{type(exc).__name__}: {exc}"
        return _FAILURES[pid]
    return None


def _framebuffer(state: _State, width: int, rows: int) -> Any:
    """The framebuffer of this size, from a small least-recently-used cache.

    The cache is bounded: a caller that renders many image sizes (a synthetic data
    set of random sizes) would otherwise keep one framebuffer per size alive, about
    2 MB each at 640 x 480, for the life of the process.
    """
    key = (width, rows)
    fbo = state.framebuffers.pop(key, None)  # re-inserted below as the most recent
    if fbo is None:
        ctx = state.ctx
        fbo = ctx.framebuffer(
            color_attachments=[
                ctx.renderbuffer((width, rows), components=4, dtype="f1"),
                ctx.renderbuffer((width, rows), components=2, dtype="f4"),
            ],
            depth_attachment=ctx.depth_renderbuffer((width, rows)),
        )
    state.framebuffers[key] = fbo
    while len(state.framebuffers) > _MAX_FRAMEBUFFERS:
        oldest = next(iter(state.framebuffers))
        _release(state.framebuffers.pop(oldest))
    return fbo


def _release(fbo: Any) -> None:
    for attachment in (*fbo.color_attachments, fbo.depth_attachment):
        attachment.release()
    fbo.release()


def _write(buffer: Any, data: np.ndarray) -> None:
    if buffer.size < data.nbytes:
        buffer.orphan(max(data.nbytes, 2 * buffer.size))
    buffer.write(data)


def draw(
    clip: Tensor, colors: Tensor, faces: Tensor, image_size: tuple[int, int]
) -> tuple[Tensor, Tensor, Tensor]:
    """Rasterize a batch of triangle meshes given in clip coordinates.

    Args:
        clip: `(B, V, 4)` clip-space vertices of each item's own image, whose
            NDC y axis points *down* the image (row 0 at y = -1).
        colors: `(B, V, 3)` per-vertex colours in [0, 1], interpolated
            perspective-correctly and stored with 8 bits per channel.
        faces: `(F, 3)` integer vertex indices, shared by the batch.
        image_size: ``(H, W)`` pixels.

    Returns:
        ``(color, depth, face_index)`` CPU tensors: `(B, H, W, 4)` uint8 RGBA
        (alpha 255 where covered), `(B, H, W)` float32 clip w (camera z) of
        the visible surface, 0 where empty, and `(B, H, W)` int64 visible
        face, -1 where empty.

    Raises:
        RuntimeError: if no EGL context can be created, or the image is wider
            or taller than the driver's maximum framebuffer size.
    """
    height, width = image_size
    state = _state()
    if max(height, width) > state.max_size:
        raise RuntimeError(
            f"image_size {image_size} exceeds the OpenGL framebuffer limit {state.max_size}"
        )
    batch, n_vertices, _ = clip.shape
    n_faces = faces.shape[0]
    # Whole tiles per draw, a power of two (or the cap), so few framebuffer sizes get cached.
    cap = max(1, min(state.max_size // height, _FRAMEBUFFER_BYTES // (height * width * 16)))
    tiles = min(cap, 1 << (batch - 1).bit_length())
    fbo = _framebuffer(state, width, tiles * height)

    vertices = torch.cat([clip, colors], -1).to("cpu", torch.float32).contiguous()
    faces32 = faces.to("cpu", torch.int32)
    color = torch.empty(batch, height, width, 4, dtype=torch.uint8)
    depth_face = torch.empty(batch, height, width, 2)
    prog = state.program
    prog["u_vertices"].value = n_vertices
    prog["u_faces"].value = n_faces
    for start in range(0, batch, tiles):
        count = min(tiles, batch - start)
        prog["u_tiles"].value = float(count)
        offsets = torch.arange(count, dtype=torch.int32).view(count, 1, 1) * n_vertices
        _write(state.vbo, vertices[start : start + count].numpy())
        _write(state.ibo, (faces32.unsqueeze(0) + offsets).numpy())
        viewport = (0, 0, width, count * height)
        fbo.viewport = viewport
        fbo.use()
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0, viewport=viewport)
        state.vao.render(vertices=count * n_faces * 3)
        fbo.read_into(color[start : start + count].numpy(), viewport=viewport, components=4)
        fbo.read_into(
            depth_face[start : start + count].numpy(),
            viewport=viewport,
            components=2,
            attachment=1,
            dtype="f4",
        )
    return color, depth_face[..., 0], depth_face[..., 1].long() - 1
