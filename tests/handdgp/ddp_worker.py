"""Run by ``torchrun`` in the DDP test: train the toy model, save this rank's weights."""

import sys
from pathlib import Path

import torch

from handdgp.config import ExperimentConfig, TrainConfig
from handdgp.train import TrainingComponents, train

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.handdgp.toy import ToyCrops, toy_hierarchy, toy_net


def main(out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = ExperimentConfig(name="ddp")
    config.net.image_size, config.net.width, config.net.decoder_channels = 32, 0.125, (16, 8)
    config.train = TrainConfig(epochs=1, batch_size=2, checkpoint_every=100, eval_every=1000)
    model = toy_net()
    components = TrainingComponents(model, toy_hierarchy()[3], ToyCrops(size=16))
    rank = int(__import__("os").environ["RANK"])
    summary = train(config, Path(out_dir) / "run", components, progress=False)
    torch.save(
        {"state": model.state_dict(), "steps": summary["steps"]}, Path(out_dir) / f"rank{rank}.pt"
    )


if __name__ == "__main__":
    main(sys.argv[1])
