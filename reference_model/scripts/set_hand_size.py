"""Fix a checkpoint's hand size to the training set's mean (``net.hand_size``).

    python reference_model/scripts/set_hand_size.py CHECKPOINT --train DIR --out OUT.pt

One image cannot tell a hand's size from its distance. A network still guesses one,
and where its guess follows the true size less than the population's mean does, every
hand is better placed at the mean size. This reads the training set's 3D keypoints
(``DIR/training_xyz.json``), takes their mean summed bone length
(:func:`handdgp.hand.skeleton.hand_size`), writes it as ``net.hand_size`` into a copy
of the checkpoint (weights unchanged) and prints it. The model then scales every
predicted hand to that size before it places it (:class:`handdgp.net.model.NetConfig`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from handdgp.config import ExperimentConfig
from handdgp.hand.skeleton import hand_size
from handdgp.train import load_checkpoint


def mean_hand_size(directory: Path) -> float:
    """Metres: the mean summed bone length of a data set's 3D keypoints."""
    keypoints = torch.tensor(json.loads((directory / "training_xyz.json").read_text()))
    return float(hand_size(keypoints.double()).mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--train", type=Path, required=True, help="the training set")
    parser.add_argument("--out", type=Path, required=True, help="the checkpoint to write")
    args = parser.parse_args(argv)
    state = load_checkpoint(args.checkpoint)
    size = round(mean_hand_size(args.train), 4)
    state["config"]["net"]["hand_size"] = size
    ExperimentConfig.from_dict(state["config"])  # still a valid config
    torch.save(state, args.out)
    print(f"{args.out}: net.hand_size = {size} m (mean summed bone length of {args.train})")


if __name__ == "__main__":
    main()
