"""Running a trained network: eval mode without gradients, test-time turned views and
positioning override, and the result type of a prediction in the original camera."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from handdgp.net.model import HandPrediction
from handdgp.net.positioning import POSITIONING, place_hand
from handdgp.net.turned_views import check_turns, predict_turned

__all__ = [
    "Prediction",
    "check_positioning",
    "check_turns",
    "inference_mode",
    "model_device",
    "reposition",
    "run_model",
]


class Prediction(NamedTuple):
    """A hand prediction in the original camera (NumPy arrays, float64).

    Leading dimensions ``...`` are absent for :func:`predict_image` and `(B,)` for
    :func:`predict_batch`.

    Attributes:
        vertices_cam: `(..., V, 3)` metres, camera space of the original camera.
        keypoints_cam: `(..., 21, 3)` metres, camera space of the original camera.
        translation: `(..., 3)` metres, the root keypoint (wrist) in camera space.
        keypoints2d: `(..., 21, 2)` original pixels: the network's 2D keypoints
            mapped back from the crop (not the projection of ``keypoints_cam``).
        weights: `(..., 21)` the keypoint weights the positioning used.
        valid: `(...)` bool, False where the positioning was degenerate.
        intrinsics: `(..., 3, 3)` pixels, the intrinsics used (given or assumed).
        intrinsics_assumed: True when no intrinsics were given and
            :func:`default_intrinsics` was assumed: depth and camera-space
            position are then only as right as that guess.
        box: `(..., 4)` original pixels, ``(x0, y0, x1, y1)`` of the region the crop
            was centred on (for a model without rectification, the crop itself).
    """

    vertices_cam: np.ndarray
    keypoints_cam: np.ndarray
    translation: np.ndarray
    keypoints2d: np.ndarray
    weights: np.ndarray
    valid: np.ndarray
    intrinsics: np.ndarray
    intrinsics_assumed: bool
    box: np.ndarray


def reposition(prediction: HandPrediction, intrinsics: Tensor, positioning: str) -> HandPrediction:
    """Re-solve the translation of a network prediction with another positioning.

    The root-relative outputs (2D keypoints, vertices, keypoints, weights) are kept;
    the translation, camera-space points and ``valid`` are replaced.

    Args:
        prediction: a :class:`~handdgp.net.HandPrediction` for crops with ``intrinsics``.
        intrinsics: `(B, 3, 3)` pixels, the crops' intrinsics.
        positioning: ``"dgp"`` (weighted DLT, :func:`dgpgeom.solve_translation`) or
            ``"refine"`` (DLT then robust Gauss-Newton on the reprojection error,
            ``dgpgeom.solvers.refine.refine_translation`` with a Huber kernel, as
            the network's own ``"refine"`` mode).

    Returns:
        The updated :class:`~handdgp.net.HandPrediction`.

    Raises:
        ValueError: on another ``positioning`` (``"root_regression"`` needs a
            trained root head, it cannot be applied afterwards).

    Example:
        >>> import torch
        >>> K = torch.tensor([[[100.0, 0.0, 16.0], [0.0, 100.0, 16.0], [0.0, 0.0, 1.0]]])
        >>> kp3d = torch.tensor([[[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.0, 0.05, 0.01]]])
        >>> t = torch.tensor([[0.01, 0.02, 0.5]])
        >>> cam = kp3d + t[:, None]
        >>> kp2d = cam[..., :2] / cam[..., 2:] * 100.0 + 16.0
        >>> ones, zeros = torch.ones(1, 3), torch.zeros(1, 3)
        >>> raw = HandPrediction(kp2d, kp3d, kp3d, ones, zeros, kp3d, kp3d, torch.tensor([False]))
        >>> fixed = reposition(raw, K, "dgp")
        >>> torch.allclose(fixed.translation, t, atol=1e-5), bool(fixed.valid)
        (True, True)
    """
    if positioning not in ("dgp", "refine"):
        raise ValueError(
            f"positioning: expected 'dgp' or 'refine' to re-solve a prediction, got {positioning!r}"
        )
    translation, valid = place_hand(
        prediction.keypoints3d, prediction.keypoints2d, intrinsics, prediction.weights, positioning
    )
    offset = translation.unsqueeze(-2)
    return prediction._replace(
        translation=translation,
        vertices_cam=prediction.vertices + offset,
        keypoints_cam=prediction.keypoints3d + offset,
        valid=valid,
    )


def check_positioning(positioning: str | None) -> None:
    """Raise a ``ValueError`` naming ``positioning`` unless it is None or known."""
    if positioning is not None and positioning not in POSITIONING:
        raise ValueError(f"positioning: expected None or one of {POSITIONING}, got {positioning!r}")


def run_model(
    model: nn.Module,
    images: Tensor,
    intrinsics: Tensor,
    positioning: str | None = None,
    turns: Sequence[float] | None = None,
) -> HandPrediction:
    """Run the network, averaging turned views and overriding its positioning if asked.

    Args:
        model: a :class:`~handdgp.net.HandDGPNet` (or any module with the same call).
        images: `(B, 3, S, S)` crops in [0, 1].
        intrinsics: `(B, 3, 3)` pixels, the crops' intrinsics.
        positioning: None or the model's own positioning (outputs as they are),
            ``"dgp"`` or ``"refine"`` (re-solved with :func:`reposition`).
            ``"root_regression"`` only for a model trained with it.
        turns: None (one view), or view angles in degrees: the prediction averaged
            over the crop seen by cameras turned by each about the optical axis
            (:func:`~handdgp.net.turned_views.predict_turned`; e.g.
            :data:`~handdgp.net.turned_views.DEFAULT_TURNS`).

    Returns:
        A :class:`~handdgp.net.HandPrediction`.

    Raises:
        ValueError: on an unknown positioning, ``"root_regression"`` for a model
            without a root head, or ``turns`` that are not finite angles.

    Example:
        >>> import torch
        >>> class Constant(torch.nn.Module):
        ...     def forward(self, images, intrinsics):
        ...         z = torch.zeros(images.shape[0], 21, 3)
        ...         return HandPrediction(z[..., :2], z, z, z[..., 0] + 1, z[:, 0], z, z, z[:, 0, 0] > 0)
        >>> run_model(Constant(), torch.zeros(2, 3, 8, 8), torch.eye(3).expand(2, 3, 3)).valid
        tensor([False, False])
    """
    check_positioning(positioning)
    check_turns(turns)
    if turns is None:
        prediction = model(images, intrinsics)
    else:
        prediction = predict_turned(model, images, intrinsics, turns)
    own = getattr(getattr(model, "config", None), "positioning", None)
    if positioning is None or positioning == own:
        return prediction
    if positioning == "root_regression":
        raise ValueError(
            "positioning='root_regression' needs a model trained with a root head "
            f"(this one was trained with {own!r})"
        )
    return reposition(prediction, intrinsics, positioning)


@contextmanager
def inference_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for the duration; the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (CPU for an empty model)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")
