"""How synthetic samples look: skin, objects, light, backgrounds and camera effects.

All of it is procedural numpy/OpenCV, drawn from the sample's appearance generator
(no external images), and cheap enough for hundreds of images per second:

- **Skin** (:func:`skin_colors`): a tone from :data:`SKIN_TONES` (eight sRGB albedos
  from very light to very dark skin) with brightness and hue jitter; the palm side
  lighter and less saturated (much lighter for dark tones, as real palms are);
  fingertips a little redder; blotches from four random 3D sinusoids over the rest
  pose (2-6 cm wavelengths); and per-vertex noise, so the surface has detail.
- **Objects** (occluders, sleeves): a random colour with stripes or checks over the
  mesh's own parameterisation and per-vertex noise.
- **Light** (:func:`shade`): a key light from a random direction (two-sided
  Lambertian, like :func:`~handdgp.data.render_mesh`), a weaker fill light, an
  ambient term and a colour tint, all random.
- **Backgrounds** (:func:`procedural_background`): a two-colour gradient, Gaussian
  blobs of random colours and sizes, a few opaque shapes (the hard edges of clutter),
  optional stripes or bars, and value noise from 64- to 4-pixel cells; sometimes
  defocused.
- **Camera** (:func:`finish_image`): a slight blur (optics and anti-aliasing of the
  hand's silhouette), a white-balance cast and sensor noise.
"""

from __future__ import annotations

import numpy as np

from handdgp.hand import HandTemplate

from .render import vertex_normals

__all__ = [
    "SKIN_TONES",
    "composite",
    "finish_image",
    "object_colors",
    "procedural_background",
    "shade",
    "skin_colors",
]

# sRGB albedo of skin, very light to very dark.
SKIN_TONES = np.array(
    [
        (0.96, 0.80, 0.70),
        (0.92, 0.73, 0.62),
        (0.87, 0.65, 0.52),
        (0.78, 0.56, 0.42),
        (0.69, 0.50, 0.36),
        (0.58, 0.40, 0.28),
        (0.44, 0.29, 0.20),
        (0.31, 0.20, 0.14),
    ]
)


_FEATURES: dict[int, tuple[HandTemplate, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}


def _skin_features(template: HandTemplate) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rest-pose positions, palm-side weight and fingertip weight per vertex (cached)."""
    cached = _FEATURES.get(id(template))
    if cached is not None and cached[0] is template:
        return cached[1]
    vertices = template.vertices.double()
    normals = vertex_normals(vertices, template.faces).numpy()  # the rest pose's
    positions = vertices.numpy()
    palm = np.clip(-normals[:, 0], 0.0, 1.0) ** 0.7  # template +x is the back of the hand
    tips = positions[template.tip_vertices.numpy()]
    distance = np.linalg.norm(positions[:, None] - tips[None], axis=-1).min(axis=1)
    fingertip = np.clip(1.0 - distance / 0.018, 0.0, 1.0)
    _FEATURES[id(template)] = (template, (positions, palm, fingertip))
    return positions, palm, fingertip


def skin_colors(rng: np.random.Generator, template: HandTemplate) -> np.ndarray:
    """Per-vertex skin albedo of one hand.

    Args:
        rng: the random source.
        template: the hand template (rest pose, fingertips).

    Returns:
        `(V, 3)` float32 sRGB albedo in [0, 1].

    Example:
        >>> from handdgp.hand import load_template
        >>> colors = skin_colors(np.random.default_rng(0), load_template())
        >>> colors.shape, bool(colors.min() >= 0 and colors.max() <= 1)
        ((1609, 3), True)
    """
    positions, palm, fingertip = _skin_features(template)
    t = rng.uniform(0, len(SKIN_TONES) - 1)
    i = min(int(t), len(SKIN_TONES) - 2)
    tone = SKIN_TONES[i] + (t - i) * (SKIN_TONES[i + 1] - SKIN_TONES[i])
    tone = tone * rng.uniform(0.92, 1.08) * (1.0 + rng.uniform(-0.04, 0.04, 3))
    lightness = float(tone.mean())
    palm_color = tone + (1.0 - lightness) * np.array([0.35, 0.3, 0.28])
    base = tone + palm[:, None] * (palm_color - tone) * rng.uniform(0.4, 0.9)
    base = base * (1.0 + fingertip[:, None] * np.array([0.06, -0.04, -0.03]))
    freq = rng.normal(0.0, 1.0, (4, 3))
    freq *= (2 * np.pi / rng.uniform(0.02, 0.06, 4))[:, None] / np.linalg.norm(freq, axis=1)[:, None]
    phase = rng.uniform(0, 2 * np.pi, 4)
    blotch = np.sin(positions @ freq.T + phase) @ rng.uniform(0.0, 0.04, 4)
    noise = rng.normal(0.0, rng.uniform(0.005, 0.025), (len(positions), 1))
    return np.clip(base * (1.0 + blotch[:, None] + noise), 0.0, 1.0).astype(np.float32)


def object_colors(rng: np.random.Generator, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Per-vertex albedo of an object with a random colour and pattern.

    Args:
        rng: the random source.
        u: `(V,)` first surface parameter of each vertex (e.g. longitude), radians.
        v: `(V,)` second surface parameter (e.g. latitude or length), radians.

    Returns:
        `(V, 3)` float32 albedo in [0, 1].

    Example:
        >>> c = object_colors(np.random.default_rng(1), np.zeros(5), np.linspace(0, 1, 5))
        >>> c.shape, c.dtype
        ((5, 3), dtype('float32'))
    """
    base = rng.uniform(0.05, 0.95, 3)
    other = rng.uniform(0.05, 0.95, 3)
    kind = rng.integers(0, 3)
    if kind == 0:  # plain
        pattern = np.zeros_like(u)
    elif kind == 1:  # stripes
        pattern = (np.sin(rng.integers(2, 8) * u + rng.integers(0, 4) * v) > 0).astype(float)
    else:  # checks
        pattern = ((np.sin(rng.integers(2, 6) * u) > 0) ^ (np.sin(rng.integers(2, 6) * v) > 0)).astype(float)
    colors = base + pattern[:, None] * (other - base)
    colors = colors * (1.0 + rng.normal(0.0, 0.03, (len(u), 1)))
    return np.clip(colors, 0.0, 1.0).astype(np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def shade(rng: np.random.Generator, normals: np.ndarray, albedo: np.ndarray) -> np.ndarray:
    """Per-vertex colours under a random key light, fill light, ambient and tint.

    Args:
        rng: the random source.
        normals: `(V, 3)` camera-frame unit vertex normals (e.g. from
            :func:`~handdgp.data.vertex_normals`); the shading is two-sided.
        albedo: `(V, 3)` albedo in [0, 1].

    Returns:
        `(V, 3)` float32 colours in [0, 1].

    Example:
        >>> normals = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
        >>> colors = shade(np.random.default_rng(0), normals, np.ones((2, 3)))
        >>> colors.shape, bool(np.allclose(colors[0], colors[1]))  # two-sided
        ((2, 3), True)
    """
    key = _unit(rng.normal(0.0, 1.0, 3) + np.array([0.0, -0.5, 1.0]))
    fill = _unit(rng.normal(0.0, 1.0, 3))
    ambient = rng.uniform(0.2, 0.5)
    key_strength = rng.uniform(0.4, 0.85)
    fill_strength = rng.uniform(0.0, 0.25)
    tint = 1.0 + rng.uniform(-0.08, 0.08, 3)
    light = (
        ambient
        + key_strength * np.abs(normals @ key)
        + fill_strength * np.abs(normals @ fill)
    )
    return np.clip(albedo * light[:, None] * tint, 0.0, 1.0).astype(np.float32)


_NOISE_TILE = 640
_NOISE: dict[str, np.ndarray] = {}


def _unit_noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """`(H, W, 3)` float32 unit Gaussian noise: a random window of a fixed noise tile.

    Drawing fresh Gaussian noise for every pixel costs more than the rest of the
    camera model; a window at a random offset (with a random sign) of one fixed
    ``640 x 640 x 3`` tile, repeated for larger images, is indistinguishable at the
    amplitudes used and is still a pure function of ``rng``.
    """
    tile = _NOISE.get("tile")
    if tile is None:
        tile = np.random.default_rng(0x5EED).standard_normal(
            (_NOISE_TILE, _NOISE_TILE, 3), dtype=np.float32
        )
        _NOISE["tile"] = tile
    if height > _NOISE_TILE or width > _NOISE_TILE:
        tile = np.tile(tile, (-(-height // _NOISE_TILE), -(-width // _NOISE_TILE), 1))
    y = int(rng.integers(0, tile.shape[0] - height + 1))
    x = int(rng.integers(0, tile.shape[1] - width + 1))
    window = tile[y : y + height, x : x + width]
    return window if rng.random() < 0.5 else -window


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    return cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)


def _draw_shapes(rng: np.random.Generator, image: np.ndarray) -> None:
    """Opaque rectangles, ellipses, polygons and bars: the hard edges of a cluttered scene."""
    import cv2

    height, width = image.shape[:2]
    size = max(height, width)
    for _ in range(rng.integers(0, 8)):
        color = tuple(float(c) for c in rng.uniform(0.0, 255.0, 3))
        kind = rng.integers(0, 4)
        centre = rng.uniform(-0.1, 1.1, 2) * (width, height)
        extent = rng.uniform(0.05, 0.5, 2) * size
        angle = rng.uniform(0, 180)
        if kind == 0:
            box = cv2.boxPoints(((*centre,), (*extent,), angle))
            cv2.fillPoly(image, [np.round(box).astype(np.int32)], color, cv2.LINE_AA)
        elif kind == 1:
            axes = tuple(int(a) for a in extent / 2)
            cv2.ellipse(image, tuple(int(c) for c in centre), axes, angle, 0, 360, color, -1, cv2.LINE_AA)
        elif kind == 2:
            n = int(rng.integers(3, 7))
            points = centre + rng.uniform(-0.5, 0.5, (n, 2)) * extent
            cv2.fillPoly(image, [np.round(points).astype(np.int32)], color, cv2.LINE_AA)
        else:
            end = centre + extent * np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))])
            thickness = max(1, int(rng.uniform(0.005, 0.05) * size))
            cv2.line(image, tuple(int(c) for c in centre), tuple(int(c) for c in end), color, thickness, cv2.LINE_AA)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """The background as `(H, W, 3)` float32 in [0, 255] units (not clipped)."""
    import cv2

    # Everything smooth is built at a quarter of the resolution, then upsampled once.
    h, w = max(2, -(-height // 4)), max(2, -(-width // 4))
    ys = (np.arange(h, dtype=np.float32) / h)[:, None]
    xs = (np.arange(w, dtype=np.float32) / w)[None, :]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.float32(np.cos(angle)) * xs + np.float32(np.sin(angle)) * ys
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    c0, c1 = rng.uniform(0.0, 255.0, (2, 3)).astype(np.float32)
    low = c0 + ramp[..., None] * (c1 - c0)
    for _ in range(rng.integers(2, 10)):
        cy, cx = rng.uniform(-0.2, 1.2, 2)
        sy, sx = rng.uniform(0.05, 0.45, 2)
        gy = np.exp(-0.5 * ((ys - np.float32(cy)) / np.float32(sy)) ** 2)
        gx = np.exp(-0.5 * ((xs - np.float32(cx)) / np.float32(sx)) ** 2)
        blob = np.float32(rng.uniform(0.3, 1.0)) * (gy * gx)
        color = rng.uniform(0.0, 255.0, 3).astype(np.float32)
        low += blob[..., None] * (color - low)
    # Value noise from 64-pixel down to 4-pixel cells (one low-resolution pixel),
    # grey or coloured, summed at low resolution.
    amplitude = rng.uniform(5.0, 25.0)
    for cells in (16, 8, 4, 2, 1):
        gh, gw = max(2, h // cells), max(2, w // cells)
        channels = 3 if rng.random() < 0.3 else 1
        grid = rng.normal(0.0, amplitude, (gh, gw, channels)).astype(np.float32)
        layer = grid if cells == 1 else _resize(grid, h, w)
        low += layer if layer.ndim == 3 else layer[..., None]
        amplitude *= rng.uniform(0.35, 0.7)
    image = np.ascontiguousarray(_resize(low, height, width))
    _draw_shapes(rng, image)
    if rng.random() < 0.4:  # stripes (or, sharpened, bars), at half resolution
        hh, hw = -(-height // 2), -(-width // 2)
        period = rng.uniform(0.015, 0.15) * max(height, width)
        theta = rng.uniform(0, np.pi)
        x = np.arange(hw, dtype=np.float32)[None, :] * np.float32(np.cos(theta) / period)
        y = np.arange(hh, dtype=np.float32)[:, None] * np.float32(np.sin(theta) / period)
        wave = np.sin(np.float32(2 * np.pi) * (x + y))
        if rng.random() < 0.5:
            wave = np.tanh(np.float32(6.0) * wave)
        color = rng.uniform(8.0, 40.0) * rng.uniform(0.3, 1.0, 3)
        wave = cv2.resize(wave, (width, height), interpolation=cv2.INTER_LINEAR)
        image += cv2.merge([wave * np.float32(c) for c in color])
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 3.0))
    return image


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Round and saturate float32 [0, 255] values to uint8, in one OpenCV pass."""
    import cv2

    return cv2.add(image, (0.0, 0.0, 0.0, 0.0), dtype=cv2.CV_8U)


def procedural_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random textured background: gradient, blobs, shapes, stripes, multi-scale noise.

    Args:
        rng: the random source.
        height: pixels.
        width: pixels.

    Returns:
        `(H, W, 3)` uint8 RGB image.

    Example:
        >>> bg = procedural_background(np.random.default_rng(0), 48, 64)
        >>> bg.shape, bg.dtype, bool(bg.std() > 1)
        ((48, 64, 3), dtype('uint8'), True)
    """
    return _to_uint8(_background(rng, height, width))


def composite(
    rng: np.random.Generator, foreground: np.ndarray, covered: np.ndarray
) -> np.ndarray:
    """A rendering over a fresh :func:`procedural_background`, through :func:`finish_image`.

    Args:
        rng: the random source (background, then camera effects).
        foreground: `(H, W, 3)` uint8 RGB rendering.
        covered: `(H, W)` bool, where the rendering shows a surface.

    Returns:
        `(H, W, 3)` uint8 RGB image.

    Example:
        >>> fg = np.full((16, 16, 3), 200, np.uint8)
        >>> covered = np.zeros((16, 16), bool)
        >>> covered[4:12, 4:12] = True
        >>> composite(np.random.default_rng(0), fg, covered).shape
        (16, 16, 3)
    """
    import cv2

    height, width = covered.shape
    image = _background(rng, height, width)
    cv2.copyTo(foreground.astype(np.float32), covered.view(np.uint8), image)
    return _finish(rng, image)


def _finish(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    import cv2

    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 1.0))
    gain = rng.uniform(0.85, 1.15) * (1.0 + rng.uniform(-0.06, 0.06, 3))
    image = cv2.multiply(image, (*gain.tolist(), 0.0))
    image = cv2.scaleAdd(_unit_noise(rng, *image.shape[:2]), rng.uniform(0.0, 4.0), image)
    return _to_uint8(image)


def finish_image(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Camera effects on a composited image: blur, white-balance cast, sensor noise.

    Args:
        rng: the random source.
        image: `(H, W, 3)` uint8 RGB.

    Returns:
        `(H, W, 3)` uint8 RGB.

    Example:
        >>> out = finish_image(np.random.default_rng(0), np.full((8, 8, 3), 128, np.uint8))
        >>> out.shape, bool(abs(float(out.mean()) - 128) < 30)
        ((8, 8, 3), True)
    """
    return _finish(rng, image.astype(np.float32))
