"""``handdgp export-onnx``: the whole network, DGP included, runs in ONNX Runtime as in PyTorch."""

import numpy as np
import pytest
import torch

from handdgp.cli import main
from handdgp.config import ExperimentConfig
from handdgp.loading import default_model_factory
from handdgp.net import NetConfig
from handdgp.onnx_export import OUTPUT_NAMES, compare_onnx, export_onnx

onnx = pytest.importorskip("onnx", reason="ONNX export needs the dev extra (onnx)")
ort = pytest.importorskip("onnxruntime", reason="ONNX export needs the dev extra (onnxruntime)")

SIZE = 64


def small_config():
    config = ExperimentConfig(name="tiny")
    config.net = NetConfig(
        image_size=SIZE, width=0.125, depth=(1, 1, 1, 1), decoder_channels=(16, 8)
    )
    return config


def crops(batch, seed):
    """Smooth random crops (a blob on a gradient) and varied canonical intrinsics."""
    generator = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(float(SIZE)), torch.arange(float(SIZE)), indexing="ij")
    centres = torch.rand(batch, 2, generator=generator) * SIZE
    blob = torch.exp(-((xx - centres[:, :1, None]) ** 2 + (yy - centres[:, 1:, None]) ** 2) / 200.0)
    colour = torch.rand(batch, 3, 1, 1, generator=generator)
    images = (blob[:, None] * colour + 0.3 * xx / SIZE).clamp(0, 1)
    focal = 60.0 + 40.0 * torch.rand(batch, generator=generator)
    k = torch.zeros(batch, 3, 3)
    k[:, 0, 0], k[:, 1, 1], k[:, 2, 2] = focal, focal, 1.0
    k[:, :2, 2] = (SIZE - 1) / 2
    return images, k


@pytest.fixture(scope="module")
def model():
    """A small random network whose DGP step solves a real problem.

    An untrained net puts every 2D keypoint at the crop centre, a degenerate problem
    (``valid`` False, translation 0) that would test nothing; a forward hook on the
    keypoint head moves them to where its own 3D hand projects at 0.5 m, plus ten
    times the net's image-dependent offsets. The hook is part of the exported graph.
    """
    torch.manual_seed(0)
    net, _ = default_model_factory(small_config())
    net.eval()
    images, k = crops(1, 0)
    with torch.no_grad():
        rest = net(images, k).keypoints3d[0] + torch.tensor([0.0, 0.0, 0.5])
    target = rest[:, :2] / rest[:, 2:] * 80.0 + (SIZE - 1) / 2

    def spread(module, inputs, output):
        keypoints2d, *others = output
        offsets = keypoints2d - keypoints2d.mean(1, keepdim=True)
        return (target + 10.0 * offsets, *others)

    net.keypoint_head.register_forward_hook(spread)
    return net


def test_network_exports_and_matches_pytorch(model, tmp_path):
    path = export_onnx(model, tmp_path / "net.onnx")
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["images", "intrinsics"]
    assert [o.name for o in graph.output] == list(OUTPUT_NAMES)
    assert all(node.domain in ("", "ai.onnx") for node in graph.node)
    assert model.training is False
    for batch, seed in ((1, 1), (5, 2)):  # other batch sizes than the traced one (2)
        images, k = crops(batch, seed)
        diffs = compare_onnx(model, path, images, k)
        assert diffs["valid"] == 0
        for name in ("vertices_cam", "keypoints_cam", "translation"):
            assert diffs[name] < 1e-4, (name, diffs)  # metres
        assert diffs["keypoints2d"] < 1e-3 and diffs["weights"] < 1e-5, diffs
        with torch.no_grad():
            out = model(images, k)
        assert out.valid.all() and (out.translation[:, 2] > 0).all()  # a real DGP solution


def test_export_onnx_command(model, tmp_path, capsys):
    ckpt = tmp_path / "model.pt"
    config = small_config()
    torch.save({"model": model.state_dict(), "config": config.to_dict(), "step": 3}, ckpt)
    out = tmp_path / "m.onnx"
    assert main(["export-onnx", str(ckpt), "--out", str(out), "--check", "3"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "on 3 random crops" in printed
    values = {
        line.split(":")[0].strip(): float(line.split(":")[1].split()[0])
        for line in printed.splitlines()
        if line.startswith("  ")
    }
    assert set(values) == set(OUTPUT_NAMES) and values["valid"] == 0
    assert np.all([values[n] < 1e-3 for n in OUTPUT_NAMES])
    assert main(["export-onnx", str(tmp_path / "missing.pt"), "--out", str(out)]) == 2
    assert "error: checkpoint: no file" in capsys.readouterr().err
