"""Average the weights of checkpoints of one network (a "model soup" of one run's stages).

    python reference_model/scripts/average_weights.py CHECKPOINT CHECKPOINT [...] --out OUT

Checkpoints warm-started from one another lie in one basin of the loss, and the mean of
their weights can score better than each of them (the reference README has the numbers).
Floating-point tensors are averaged with equal weights; integer buffers (BatchNorm's
batch counters) and the configuration and step are the last checkpoint's. The
checkpoints are read with ``weights_only=True`` (no code runs); they must hold the same
tensor names and shapes. Shipped names (``full``) are accepted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from handdgp.loading import resolve_checkpoint


def _read(path: Path) -> dict:
    """A checkpoint's ``{"model", "config", "step"}``, read without running code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # (unpickling errors come in many types)
        raise ValueError(
            f"{path}: not a checkpoint that loads with weights_only=True ({error})"
        ) from None
    if not (isinstance(state, dict) and {"model", "config", "step"} <= state.keys()):
        raise ValueError(f"{path}: expected a checkpoint holding 'model', 'config' and 'step'")
    return state


def average_checkpoints(paths: list[Path]) -> dict:
    """``{"model", "config", "step"}`` with the mean of the checkpoints' floating weights.

    Raises:
        ValueError: on fewer than two checkpoints, or ones whose tensor names, shapes or
            dtypes differ (naming the file and the first difference).
    """
    if len(paths) < 2:
        raise ValueError(f"checkpoints: expected at least two to average, got {len(paths)}")
    states = [_read(path) for path in paths]
    first = states[0]["model"]
    for path, state in zip(paths[1:], states[1:], strict=True):
        weights = state["model"]
        if weights.keys() != first.keys():
            difference = sorted(weights.keys() ^ first.keys())[0]
            raise ValueError(
                f"{path}: expected the tensors of {paths[0]}, but {difference!r} is in only one"
            )
        for name, tensor in weights.items():
            if (tensor.shape, tensor.dtype) != (first[name].shape, first[name].dtype):
                raise ValueError(
                    f"{path}: {name}: expected shape {tuple(first[name].shape)} and "
                    f"{first[name].dtype} as in {paths[0]}, got {tuple(tensor.shape)} and "
                    f"{tensor.dtype}"
                )
    last = states[-1]
    averaged = {
        name: (
            torch.stack([s["model"][name] for s in states]).mean(0)
            if tensor.is_floating_point()
            else tensor
        )
        for name, tensor in last["model"].items()
    }
    return {"model": averaged, "config": last["config"], "step": last["step"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="checkpoint files or shipped names")
    parser.add_argument("--out", type=Path, required=True, help="where to write the average")
    args = parser.parse_args(argv)
    try:
        paths = [resolve_checkpoint(name) for name in args.checkpoints]
        averaged = average_checkpoints(paths)
    except (ValueError, FileNotFoundError) as error:
        print(f"average_weights.py: error: {error}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(averaged, args.out)
    print(f"wrote the mean of {len(paths)} checkpoints to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
