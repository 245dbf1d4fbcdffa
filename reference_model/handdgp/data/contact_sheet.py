"""Contact sheets of a hand data set: images with keypoints, mesh and mask drawn on.

``handdgp show-data DIR`` draws, for each of the first samples of a FreiHAND-layout
directory, the image with the mesh as translucent triangles, the mask's outline
(cyan), and the skeleton coloured by finger (thumb red, index orange, middle green,
ring blue, little magenta); visible keypoints are filled dots, occluded ones hollow
rings. With ``crops=True`` each sample is followed by its rectified network input
from :class:`~handdgp.data.crops.CropDataset`, with its 2D keypoints.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np

from .sample import project_points

__all__ = ["FINGER_COLORS", "contact_sheet", "draw_hand"]

# RGB per finger, thumb to little; the wrist is white.
FINGER_COLORS = ((230, 40, 40), (250, 160, 20), (40, 200, 60), (40, 120, 250), (220, 50, 220))
_SHIFT = 4  # sub-pixel bits for OpenCV drawing


def _keypoint_color(k: int) -> tuple[int, int, int]:
    return (255, 255, 255) if k == 0 else FINGER_COLORS[(k - 1) // 4]


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(points * (1 << _SHIFT)).astype(np.int32)


def draw_hand(
    image: np.ndarray,
    keypoints2d: np.ndarray | None = None,
    visibility: np.ndarray | None = None,
    *,
    vertices2d: np.ndarray | None = None,
    faces: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    scale: float = 1.0,
) -> np.ndarray:
    """Draw a hand's annotation on an image.

    Args:
        image: `(H, W, 3)` uint8 RGB.
        keypoints2d: `(21, 2)` pixels, FreiHAND order, or None.
        visibility: `(21,)` bool (None: all visible).
        vertices2d: `(V, 2)` projected mesh vertices, pixels, or None.
        faces: `(F, 3)` triangles of the mesh (needed with ``vertices2d``).
        mask: `(H, W)` bool hand mask, outlined in cyan, or None.
        scale: resize the image by this factor before drawing (annotations follow,
            pixel centres kept on integers).

    Returns:
        `(round(H * scale), round(W * scale), 3)` uint8 RGB drawing.

    Example:
        >>> img = np.zeros((20, 20, 3), np.uint8)
        >>> kp = np.tile([[10.0, 10.0]], (21, 1))
        >>> out = draw_hand(img, kp, scale=2.0)
        >>> out.shape, int(out.max()) > 0
        ((40, 40, 3), True)
    """
    import cv2

    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    canvas = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.ascontiguousarray(canvas)

    def to_canvas(p: np.ndarray) -> np.ndarray:
        return (np.asarray(p, np.float64) + 0.5) * scale - 0.5

    if vertices2d is not None and faces is not None:
        overlay = canvas.copy()
        tris = _fixed(to_canvas(vertices2d))[np.asarray(faces)]
        cv2.fillPoly(overlay, list(tris), (255, 230, 180), lineType=cv2.LINE_AA, shift=_SHIFT)
        cv2.polylines(overlay, list(tris), True, (120, 90, 60), 1, cv2.LINE_AA, shift=_SHIFT)
        canvas = cv2.addWeighted(overlay, 0.35, canvas, 0.65, 0.0)
    if mask is not None:
        resized = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(resized, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(canvas, contours, -1, (0, 230, 230), 1, cv2.LINE_8)
    if keypoints2d is not None:
        points = _fixed(to_canvas(keypoints2d))
        visible = np.ones(len(points), bool) if visibility is None else np.asarray(visibility, bool)
        for finger in range(5):
            chain = [0, *range(1 + 4 * finger, 5 + 4 * finger)]
            for a, b in itertools.pairwise(chain):
                cv2.line(canvas, points[a], points[b], FINGER_COLORS[finger], 1, cv2.LINE_AA, _SHIFT)
        radius = max(2, round(2.5 * max(scale, 1.0))) << _SHIFT
        for k, (point, seen) in enumerate(zip(points, visible, strict=True)):
            color = _keypoint_color(k)
            if seen:
                cv2.circle(canvas, point, radius, color, -1, cv2.LINE_AA, _SHIFT)
                cv2.circle(canvas, point, radius, (0, 0, 0), 1, cv2.LINE_AA, _SHIFT)
            else:
                cv2.circle(canvas, point, radius, color, 1, cv2.LINE_AA, _SHIFT)
    return canvas


def _fit(image: np.ndarray, tile: int) -> np.ndarray:
    """Centre an image on a dark ``tile x tile`` square."""
    out = np.full((tile, tile, 3), 24, np.uint8)
    h, w = image.shape[:2]
    y, x = (tile - h) // 2, (tile - w) // 2
    out[y : y + h, x : x + w] = image
    return out


def _label(image: np.ndarray, text: str) -> None:
    import cv2

    cv2.putText(image, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)


def contact_sheet(
    root: str | Path,
    out: str | Path,
    *,
    num: int = 16,
    start: int = 0,
    crops: bool = False,
    tile: int = 256,
    crop_kwargs: dict | None = None,
) -> Path:
    """Write a PNG contact sheet of samples ``start .. start + num - 1`` of a data set.

    Args:
        root: a FreiHAND-layout directory (our synthetic sets, or FreiHAND training).
        out: the PNG file to write.
        num: number of samples.
        start: first sample.
        crops: also draw each sample's rectified crop from
            :class:`~handdgp.data.crops.CropDataset`.
        tile: pixels per image tile.
        crop_kwargs: keyword arguments for :class:`~handdgp.data.crops.CropDataset`.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Example:
        >>> import tempfile
        >>> from handdgp.data.scenes import SceneConfig
        >>> from handdgp.data.synthesize import make_dataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> data = make_dataset(tmp.name, 2, config=SceneConfig((48, 48), (50.0, 150.0)),
        ...                     workers=1, progress=False)
        >>> sheet = contact_sheet(data, f"{tmp.name}/sheet.png", num=2, crops=True, tile=96)
        >>> sheet.stat().st_size > 1000
        True
        >>> tmp.cleanup()
    """
    import cv2

    from .freihand import SyntheticHandDataset

    dataset = SyntheticHandDataset(root)
    faces = _faces_for(dataset)
    indices = list(range(start, min(start + num, len(dataset))))
    if not indices:
        raise ValueError(f"no samples in [{start}, {start + num}) of {root} ({len(dataset)} samples)")
    cropper = None
    if crops:
        from .crops import CropDataset

        cropper = CropDataset(dataset, **(crop_kwargs or {}))
    cells = []
    for i in indices:
        sample = dataset[i]
        h, w = sample.image.shape[:2]
        scale = tile / max(h, w)
        verts2d = None
        if sample.vertices is not None and faces is not None:
            verts2d = project_points(sample.vertices, sample.intrinsics)
        drawing = draw_hand(
            sample.image,
            sample.keypoints2d,
            sample.visibility,
            vertices2d=verts2d,
            faces=faces,
            mask=sample.mask,
            scale=scale,
        )
        cell = _fit(drawing, tile)
        text = f"#{i} {w}x{h}"
        if sample.visibility is not None:
            text += f" vis {int(sample.visibility.sum())}/21"
        if sample.params is not None and float(sample.params.get("occluder", 0)) > 0:
            text += " occ"
        _label(cell, text)
        parts = [cell]
        if cropper is not None:
            crop = cropper[i]
            image = (crop["image"].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
            size = image.shape[0]
            crop_faces = faces if crop["vertices"].shape[0] == sample.vertices.shape[0] else None
            drawing = draw_hand(
                image,
                crop["keypoints2d"].numpy(),
                crop["visibility"].numpy(),
                vertices2d=project_points(crop["vertices"].numpy(), crop["intrinsics"].numpy())
                if crop_faces is not None
                else None,
                faces=crop_faces,
                scale=tile / size,
            )
            crop_cell = _fit(drawing, tile)
            _label(crop_cell, f"crop {size}px f={float(crop['intrinsics'][0, 0]):.0f}")
            parts.append(crop_cell)
        cells.append(np.concatenate(parts, axis=1))
    columns = max(1, math.ceil(math.sqrt(len(cells) * (1 if cropper is None else 0.5))))
    rows = math.ceil(len(cells) / columns)
    blank = np.zeros_like(cells[0])
    grid = [
        np.concatenate(
            [cells[r * columns + c] if r * columns + c < len(cells) else blank for c in range(columns)],
            axis=1,
        )
        for r in range(rows)
    ]
    sheet = np.concatenate(grid, axis=0)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), sheet[..., ::-1]):
        raise RuntimeError(f"could not write {out}")
    return out


def _faces_for(dataset) -> np.ndarray | None:
    """The hand template's faces when the data set's meshes use its topology."""
    if dataset.vertices is None:
        return None
    from handdgp.hand import load_template

    template = load_template()
    if dataset.vertices.shape[1] != template.num_vertices:
        return None
    return template.faces.numpy()
