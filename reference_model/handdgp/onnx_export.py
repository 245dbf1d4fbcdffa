"""ONNX export of the trained network, DGP included (``handdgp export-onnx``).

The exported graph takes what the network takes, the crops and their intrinsics,
and returns its camera-space outputs: the positioning step (dgpgeom's
:func:`~dgpgeom.solve_translation`, closed-form 3x3 algebra with no LAPACK call) is
part of the graph. Making the crop (:func:`handdgp.data.crops.network_crop`) and
mapping the outputs back to the original camera stay with the caller, as in
:func:`handdgp.predict.predict_image`.

Needs ``onnx`` and, for the default (dynamo) exporter, ``onnxscript``.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "CameraSpaceOutputs",
    "compare_onnx",
    "export_command",
    "export_onnx",
]

INPUT_NAMES = ("images", "intrinsics")
OUTPUT_NAMES = ("vertices_cam", "keypoints_cam", "translation", "keypoints2d", "weights", "valid")


class CameraSpaceOutputs(nn.Module):
    """The network with its outputs as the flat tuple :data:`OUTPUT_NAMES` (ONNX has no
    named tuples): `(B, V, 3)`, `(B, 21, 3)`, `(B, 3)` metres in the crop's camera,
    `(B, 21, 2)` crop pixels, `(B, 21)` weights, `(B,)` bool."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor, intrinsics: Tensor) -> tuple[Tensor, ...]:
        out = self.model(images, intrinsics)
        return (
            out.vertices_cam,
            out.keypoints_cam,
            out.translation,
            out.keypoints2d,
            out.weights,
            out.valid,
        )


def export_onnx(model: nn.Module, path: str | Path, *, dynamo: bool = True) -> Path:
    """Write the network (eval mode, on the CPU) as an ONNX model with a dynamic batch.

    Args:
        model: a :class:`~handdgp.net.HandDGPNet` (``config.image_size`` sets the crop
            side); it is exported in eval mode and left as it was.
        path: the ``.onnx`` file to write.
        dynamo: the default ``torch.export`` based exporter (needs ``onnxscript``);
            False for the older TorchScript exporter.

    Returns:
        The path written. Inputs :data:`INPUT_NAMES`: `(B, 3, S, S)` float32 RGB crops
        in [0, 1] and their `(B, 3, 3)` float32 intrinsics; outputs :data:`OUTPUT_NAMES`.
    """
    path = Path(path)
    size = int(model.config.image_size)
    wrapped = CameraSpaceOutputs(model).to("cpu").eval()
    was_training = model.training
    args = (torch.rand(2, 3, size, size), _crop_intrinsics(size, 2))
    try:
        with torch.no_grad():
            if dynamo:
                batch = torch.export.Dim("batch")
                program = torch.onnx.export(
                    wrapped,
                    args,
                    input_names=list(INPUT_NAMES),
                    output_names=list(OUTPUT_NAMES),
                    dynamic_shapes=({0: batch}, {0: batch}),
                    dynamo=True,
                    verbose=False,
                )
                data = program.model_proto.SerializeToString()
            else:
                buffer = io.BytesIO()
                torch.onnx.export(
                    wrapped,
                    args,
                    buffer,
                    input_names=list(INPUT_NAMES),
                    output_names=list(OUTPUT_NAMES),
                    dynamic_axes={name: {0: "batch"} for name in INPUT_NAMES + OUTPUT_NAMES},
                    dynamo=False,
                )
                data = buffer.getvalue()
    finally:
        model.train(was_training)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _crop_intrinsics(size: int, batch: int, focal_factor: float = 1.2) -> Tensor:
    focal, centre = focal_factor * size, (size - 1) / 2
    k = torch.tensor([[focal, 0.0, centre], [0.0, focal, centre], [0.0, 0.0, 1.0]])
    return k.expand(batch, 3, 3).contiguous()


def compare_onnx(
    model: nn.Module, path: str | Path, images: Tensor, intrinsics: Tensor
) -> dict[str, float]:
    """Largest difference of each output between ONNX Runtime and PyTorch on these crops.

    Args:
        model: the network that was exported.
        path: its ``.onnx`` file.
        images: `(B, 3, S, S)` crops in [0, 1].
        intrinsics: `(B, 3, 3)` their intrinsics.

    Returns:
        Output name -> largest absolute difference (``valid``: the number of
        crops where the two disagree).
    """
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {"images": images.float().numpy(), "intrinsics": intrinsics.float().numpy()}
    got = session.run(None, feed)
    with torch.no_grad():
        expected = CameraSpaceOutputs(model.cpu()).eval()(images.float(), intrinsics.float())
    return {
        name: float(np.abs(g.astype(np.float64) - e.numpy().astype(np.float64)).max())
        if name != "valid"
        else float((g != e.numpy()).sum())
        for name, g, e in zip(OUTPUT_NAMES, got, expected, strict=True)
    }


def export_command(args: argparse.Namespace, *, model_factory=None) -> int:
    """``handdgp export-onnx``: export a checkpoint, then check it in ONNX Runtime.

    The check runs the exported graph and PyTorch on ``args.check`` random crops
    (where ``onnxruntime`` is installed) and prints the largest difference of each
    output.
    """
    from handdgp.loading import load_model

    loaded = load_model(args.checkpoint, model_factory=model_factory)
    try:
        path = export_onnx(loaded.model, args.out, dynamo=args.exporter == "dynamo")
    except ImportError as error:
        raise ValueError(
            f"export-onnx needs onnx and onnxscript (pip install onnx onnxscript): {error}"
        ) from error
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if args.check:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            print("not checked: onnxruntime is not installed")
            return 0
        size = int(loaded.model.config.image_size)
        generator = torch.Generator().manual_seed(0)
        images = torch.rand(args.check, 3, size, size, generator=generator)
        diffs = compare_onnx(loaded.model, path, images, _crop_intrinsics(size, args.check))
        print(f"ONNX Runtime vs PyTorch on {args.check} random crops, largest difference:")
        for name, value in diffs.items():
            print(f"  {name}: {value:.3g}" + (" crops disagree" if name == "valid" else ""))
    return 0
