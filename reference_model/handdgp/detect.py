"""Finding the hand in an image, for ``handdgp predict`` without ``--box``.

The finder is MediaPipe Hands (the optional extra ``handdgp[detect]``; release
0.10.21 bundles its palm detector and landmark models, so nothing is downloaded):
its palm detector finds the hand, its landmark model places the 21 joints, and
the hand box is the tight box of those joints, the box training crops are made
from (:func:`handdgp.data.crops.hand_box`). :func:`detection_recall` measures how
often it finds the hand on a held-out set (``handdgp detect-recall DIR``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "HandFinder",
    "box_iou",
    "detection_recall",
    "detector_available",
    "find_hand_box",
    "keypoint_box",
]


def detector_available() -> bool:
    """True when MediaPipe (``pip install 'handdgp[detect]'``) is installed."""
    return importlib.util.find_spec("mediapipe") is not None


def keypoint_box(points2d: np.ndarray) -> np.ndarray:
    """Tight ``(x0, y0, x1, y1)`` box of points at pixel centres (corners on pixel edges).

    Example:
        >>> keypoint_box(np.array([[10.0, 20.0], [30.0, 24.0]]))
        array([ 9.5, 19.5, 30.5, 24.5])
    """
    points = np.asarray(points2d, np.float64).reshape(-1, 2)
    return np.concatenate([points.min(axis=0) - 0.5, points.max(axis=0) + 0.5])


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes.

    Example:
        >>> box_iou((0, 0, 10, 10), (5, 0, 15, 10))
        0.3333333333333333
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class HandFinder:
    """MediaPipe Hands in static-image mode, one hand, as a box finder.

    Use as a context manager (or call :meth:`close`); each call takes an `(H, W, 3)`
    uint8 RGB image and returns the tight box of the hand's 21 landmarks in its
    pixels, or None when no hand is found.

    Args:
        min_confidence: MediaPipe's ``min_detection_confidence``.
        model_complexity: 0 (lite) or 1 (full) landmark model.

    Raises:
        ImportError: without MediaPipe, saying how to install it.
    """

    def __init__(self, min_confidence: float = 0.5, model_complexity: int = 1) -> None:
        try:
            import mediapipe as mp
        except ImportError as error:
            raise ImportError(
                "the hand finder needs MediaPipe: pip install 'handdgp[detect]'"
            ) from error
        self._hands = mp.solutions.hands.Hands(
            static_image_mode=True,
            max_num_hands=1,
            model_complexity=model_complexity,
            min_detection_confidence=min_confidence,
        )

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        result = self._hands.process(np.ascontiguousarray(image))
        if not result.multi_hand_landmarks:
            return None
        height, width = image.shape[:2]
        landmarks = result.multi_hand_landmarks[0].landmark
        # MediaPipe's normalised coordinates run over the image's edges: [0, 1] is [-0.5, W - 0.5].
        points = np.array([[p.x, p.y] for p in landmarks]) * [width, height] - 0.5
        return keypoint_box(points)

    def close(self) -> None:
        self._hands.close()

    def __enter__(self) -> HandFinder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def find_hand_box(image: np.ndarray) -> np.ndarray | None:
    """The box of the most prominent hand in an RGB image, or None if none is found.

    Args:
        image: `(H, W, 3)` uint8 RGB.

    Returns:
        `(4,)` ``(x0, y0, x1, y1)`` pixels, the tight box of the hand's joints, or None.

    Raises:
        ImportError: without MediaPipe (``pip install 'handdgp[detect]'``).
    """
    with HandFinder() as finder:
        return finder(image)


def detection_recall(
    samples: Any,
    indices: Sequence[int],
    *,
    finder: Callable[[np.ndarray], np.ndarray | None] | None = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """How often the finder finds the hand: a box with IoU >= ``threshold`` with the truth.

    The true box is the tight box of the sample's 2D keypoints (:func:`keypoint_box`).

    Args:
        samples: items with ``image`` and ``keypoints2d`` (e.g. a
            :class:`~handdgp.data.SyntheticHandDataset`).
        indices: the samples to use.
        finder: image -> box or None; default a :class:`HandFinder`.
        threshold: IoU a found box needs.

    Returns:
        ``recall`` (found with IoU >= threshold / samples), ``found`` (any box /
        samples), ``num_samples``, and ``iou`` `(N,)` (0 where nothing was found).

    Example:
        >>> from types import SimpleNamespace
        >>> kp = np.array([[10.0, 10.0], [30.0, 40.0]])
        >>> samples = [SimpleNamespace(image=None, keypoints2d=kp)] * 2
        >>> answers = iter([keypoint_box(kp), None])
        >>> stats = detection_recall(samples, [0, 1], finder=lambda image: next(answers))
        >>> stats["recall"], stats["found"], stats["iou"].tolist()
        (0.5, 0.5, [1.0, 0.0])
    """
    own = finder is None
    finder = HandFinder() if own else finder
    ious, found = np.zeros(len(indices)), 0
    try:
        for n, i in enumerate(indices):
            sample = samples[i]
            box = finder(sample.image)
            if box is not None:
                found += 1
                ious[n] = box_iou(box, keypoint_box(sample.keypoints2d))
    finally:
        if own:
            finder.close()
    count = max(len(indices), 1)
    return {
        "recall": float((ious >= threshold).sum() / count),
        "found": found / count,
        "num_samples": len(indices),
        "iou": ious,
    }
