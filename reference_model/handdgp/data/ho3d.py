"""Reader for HO3D (v2 layout; v3 with ``image_ext=".jpg"``).

Layout::

    train.txt, evaluation.txt           one "SEQ/id" per line
    {train,evaluation}/SEQ/rgb/id.png   640 x 480 images
    {train,evaluation}/SEQ/meta/id.pkl  dict of NumPy arrays

Meta keys used: ``camMat`` (3x3), ``handJoints3D`` ((21, 3) in train; the
root joint only, (3,), in evaluation), ``handBoundingBox`` (evaluation,
``[x1, y1, x2, y2]``), ``handPose`` (48), ``handBeta`` (10), ``handTrans`` (3).
HO3D coordinates are OpenGL camera coordinates (y up, z backward); we turn
them into OpenCV ones with ``diag(1, -1, -1)`` and reorder the joints from
HO3D's order (0 wrist; 1-3 index; 4-6 middle; 7-9 pinky; 10-12 ring;
13-15 thumb; 16-20 tips of thumb, index, middle, ring, pinky) to FreiHAND's.
Meta pickles are read with :func:`handdgp.data.safe_pickle.load_pickle`. A meta
file that does not unpickle to a dict, lacks ``camMat``, holds arrays of the
wrong size, non-finite values, a non-positive focal length or keypoints behind
the camera, or an image that is missing, truncated or undecodable, raises one
:class:`~handdgp.data.imageio.DataError` naming the file and the sample index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from .imageio import DataError, read_rgb
from .safe_pickle import load_pickle
from .sample import HandSample, project_points

__all__ = ["HO3D_TO_FREIHAND", "HO3DDataset", "opengl_to_opencv"]

#: ``freihand_keypoints = ho3d_keypoints[HO3D_TO_FREIHAND]``.
HO3D_TO_FREIHAND = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)
_SPLITS = ("train", "evaluation")
_PARAM_KEYS = {"handPose": ("pose", 48), "handBeta": ("shape", 10), "handTrans": ("trans", 3)}


def opengl_to_opencv(points: np.ndarray) -> np.ndarray:
    """Map OpenGL camera coordinates (y up, z backward) to OpenCV ones: ``diag(1, -1, -1)``.

    Args:
        points: `(..., 3)` points.

    Returns:
        `(..., 3)` float32 points.

    Example:
        >>> opengl_to_opencv(np.array([0.1, 0.2, -0.5])).tolist()
        [0.10000000149011612, -0.20000000298023224, 0.5]
    """
    return (np.asarray(points, np.float64) * np.array([1.0, -1.0, -1.0])).astype(np.float32)


class HO3DDataset(Dataset[HandSample]):
    """HO3D train or evaluation split as :class:`HandSample` s.

    Train samples carry 21 keypoints (OpenCV frame, FreiHAND order), their
    projection and the root. Evaluation samples carry only the root joint
    (``keypoints3d`` and ``keypoints2d`` are None) and ``bbox``. ``params``
    holds the MANO fit as ``pose`` (48), ``shape`` (10) and ``trans`` (3), in
    HO3D's OpenGL frame, when present. Masks and vertices are not read.

    Args:
        root: directory holding ``train.txt`` / ``evaluation.txt`` and the splits.
        split: ``"train"`` or ``"evaluation"``.
        image_ext: ``".png"`` (v2) or ``".jpg"`` (v3).

    Example:
        >>> import pickle, tempfile, cv2
        >>> tmp = tempfile.TemporaryDirectory()
        >>> root = Path(tmp.name)
        >>> _ = (root / "evaluation.txt").write_text("SM1/0000")
        >>> for sub in ("rgb", "meta"):
        ...     (root / "evaluation" / "SM1" / sub).mkdir(parents=True)
        >>> cv2.imwrite(str(root / "evaluation/SM1/rgb/0000.png"), np.zeros((480, 640, 3), np.uint8))
        True
        >>> meta = {"camMat": np.eye(3), "handJoints3D": np.array([0.0, 0.1, -0.5])}
        >>> _ = (root / "evaluation/SM1/meta/0000.pkl").write_bytes(pickle.dumps(meta, protocol=2))
        >>> sample = HO3DDataset(root, "evaluation")[0]
        >>> sample.keypoints3d is None, sample.root.tolist(), sample.image.shape
        (True, [0.0, -0.10000000149011612, 0.5], (480, 640, 3))
        >>> tmp.cleanup()
    """

    def __init__(self, root: str | Path, split: str = "train", *, image_ext: str = ".png") -> None:
        if split not in _SPLITS:
            raise ValueError(f"split: expected one of {_SPLITS}, got {split!r}")
        self.root = Path(root)
        self.split = split
        self.image_ext = image_ext
        listing = self.root / f"{split}.txt"
        if not listing.is_file():
            raise FileNotFoundError(f"{listing} not found: is {self.root} an HO3D root?")
        lines = (line.strip() for line in listing.read_text().splitlines())
        self.frames = [tuple(line.split("/")) for line in lines if line]
        bad = [f for f in self.frames if len(f) != 2]
        if bad:
            raise ValueError(f"{listing}: expected 'SEQ/id' lines, got {'/'.join(bad[0])!r}")

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> HandSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        seq, frame = self.frames[index]
        folder = self.root / self.split / seq
        meta_file = folder / "meta" / f"{frame}.pkl"
        meta = load_pickle(meta_file)
        if not isinstance(meta, dict) or meta.get("camMat") is None:
            raise DataError(meta_file, "expected a dict with a 'camMat' entry", index)

        def array(key: str, sizes: tuple[int, ...]) -> np.ndarray:
            try:
                value = np.asarray(meta[key], np.float32).reshape(-1)
            except (TypeError, ValueError) as error:
                raise DataError(meta_file, f"{key}: expected numbers ({error})", index) from None
            if value.size not in sizes:
                expected = " or ".join(str(s) for s in sizes)
                raise DataError(meta_file, f"{key}: {value.size} values, expected {expected}", index)
            if not np.isfinite(value).all():
                raise DataError(meta_file, f"{key}: non-finite value (NaN or Inf)", index)
            return value

        K = array("camMat", (9,)).reshape(3, 3)
        if not (K[0, 0] > 0 and K[1, 1] > 0):
            raise DataError(
                meta_file, f"camMat: focal lengths ({K[0, 0]:g}, {K[1, 1]:g}), expected > 0", index
            )
        keypoints3d = keypoints2d = root = None
        if meta.get("handJoints3D") is not None:
            joints = opengl_to_opencv(array("handJoints3D", (3, 63)).reshape(-1, 3))
            if not (joints[:, 2] > 0).all():
                raise DataError(meta_file, "handJoints3D: a joint behind the camera", index)
            if len(joints) == 21:
                keypoints3d = joints[list(HO3D_TO_FREIHAND)]
                keypoints2d = project_points(keypoints3d, K)
            root = joints[0].copy()
        bbox = None if meta.get("handBoundingBox") is None else array("handBoundingBox", (4,))
        params = {
            name: array(key, (size,))
            for key, (name, size) in _PARAM_KEYS.items()
            if meta.get(key) is not None
        }
        return HandSample(
            image=read_rgb(folder / "rgb" / f"{frame}{self.image_ext}", index),
            intrinsics=K,
            index=index,
            source=f"ho3d/{self.split}/{seq}/{frame}",
            keypoints3d=keypoints3d,
            keypoints2d=keypoints2d,
            root=root,
            bbox=bbox,
            params=params or None,
        )
