"""Image and JSON file reading shared by the data-set readers (OpenCV, imported lazily)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_json", "load_json_array", "read_mask", "read_rgb"]


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as `(H, W, 3)` uint8 RGB.

    Raises:
        FileNotFoundError: if the file is missing or cannot be decoded.
    """
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: str | Path, threshold: int) -> np.ndarray:
    """Read a mask image's first channel as `(H, W)` bool, True where above ``threshold``.

    JPEG masks (FreiHAND) carry compression noise around the edges; a high
    threshold keeps only confidently-foreground pixels.

    Raises:
        FileNotFoundError: if the file is missing or cannot be decoded.
    """
    import cv2

    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise FileNotFoundError(f"cannot read mask {path}")
    if mask.ndim == 3:
        mask = mask[..., 0]
    return mask > threshold


def load_json(path: str | Path) -> Any:
    """Parse a JSON file."""
    with open(path) as f:
        return json.load(f)


def load_json_array(path: str | Path, dtype: Any = np.float32) -> np.ndarray:
    """Parse a JSON file holding a (nested) list of numbers into one array."""
    return np.asarray(load_json(path), dtype=dtype)
