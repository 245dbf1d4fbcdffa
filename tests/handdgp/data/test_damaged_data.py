"""Damaged data sets, made from a tiny generated one: every reader names the file, the
sample and the problem, and every command prints that as one ``error:`` line, exit 2."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from handdgp.cli import main
from handdgp.data import SyntheticHandDataset
from handdgp.data.imageio import DataError

BAD = 5  # the damaged sample


@pytest.fixture
def damaged(synthetic_set, tmp_path):
    """A fresh copy of the generated set, to damage."""
    root = tmp_path / "set"
    shutil.copytree(synthetic_set, root)
    return root


def _edit(root, key, change):
    path = root / f"training_{key}.json"
    value = json.loads(path.read_text())
    path.write_text(json.dumps(change(value)))


def _set(index, *where, value):
    def change(data):
        target, keys = data, (index, *where)
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
        return data

    return change


def _image(root, index, kind="rgb"):
    return root / "training" / kind / f"{index:08d}.jpg"


# Each case: (damage the copied set, file name in the error, sample in the error, problem).
ANNOTATION_CASES = {
    "K NaN": (lambda r: _edit(r, "K", _set(BAD, 0, 2, value=float("nan"))), "K", BAD, "non-finite"),
    "K Inf": (lambda r: _edit(r, "K", _set(BAD, 1, 1, value=float("inf"))), "K", BAD, "non-finite"),
    "K zero focal": (lambda r: _edit(r, "K", _set(BAD, 0, 0, value=0.0)), "K", BAD, "focal"),
    "K negative focal": (lambda r: _edit(r, "K", _set(BAD, 1, 1, value=-3.0)), "K", BAD, "focal"),
    "K last row": (lambda r: _edit(r, "K", _set(BAD, 2, 0, value=5.0)), "K", BAD, "last row"),
    "K short entry": (
        lambda r: _edit(r, "K", lambda d: [k if i != BAD else k[:2] for i, k in enumerate(d)]),
        "K", None, "regular nested list",
    ),
    "K flat 8 values": (
        lambda r: _edit(r, "K", lambda d: [[v for row in k for v in row][:8] for k in d]),
        "K", None, r"3x3 values per sample, got shape \(8,\)",
    ),
    "K cut JSON": (
        lambda r: (r / "training_K.json").write_text((r / "training_K.json").read_text()[:500]),
        "K", None, "not a readable JSON",
    ),
    "K a number": (lambda r: (r / "training_K.json").write_text("3"), "K", None, "single number"),
    "xyz NaN": (lambda r: _edit(r, "xyz", _set(BAD, 7, 1, value=float("nan"))), "xyz", BAD, "non-finite"),
    "xyz behind camera": (lambda r: _edit(r, "xyz", _set(BAD, 3, 2, value=-0.2)), "xyz", BAD, "depth"),
    "xyz one short": (lambda r: _edit(r, "xyz", lambda d: d[:-1]), "xyz", None, "69 entries"),
    "xyz 20 keypoints": (lambda r: _edit(r, "xyz", lambda d: [k[:20] for k in d]), "xyz", None, "21x3"),
    "verts Inf": (lambda r: _edit(r, "verts", _set(BAD, 100, 0, value=float("inf"))), "verts", BAD, "non-finite"),
    "scale zero": (lambda r: _edit(r, "scale", _set(BAD, value=0.0)), "scale", BAD, "bone length"),
    "visibility short": (lambda r: _edit(r, "visibility", lambda d: d[:3]), "visibility", None, "3 entries"),
    "params NaN": (
        lambda r: _edit(r, "params", lambda d: [p | {"shape": [float("nan")] * 10} if i == BAD else p
                                                for i, p in enumerate(d)]),
        "params", BAD, "shape: non-finite",
    ),
    "params ragged": (
        lambda r: _edit(r, "params", lambda d: [p | {"pose": p["pose"][:3]} if i == BAD else p
                                                for i, p in enumerate(d)]),
        "params", None, "pose: expected lists of numbers",
    ),
}


def _truncate(path, keep=0.6):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


IMAGE_CASES = {
    "truncated JPEG": (lambda r: _truncate(_image(r, BAD)), "rgb", "truncated JPEG"),
    "JPEG cut after its header": (lambda r: _truncate(_image(r, BAD), 0.1), "rgb", "truncated JPEG"),
    "not an image": (lambda r: _image(r, BAD).write_bytes(b"GIF89a" + bytes(300)), "rgb", "cannot decode"),
    "empty image": (lambda r: _image(r, BAD).write_bytes(b""), "rgb", "empty image"),
    "truncated mask": (lambda r: _truncate(_image(r, BAD, "mask")), "mask", "truncated JPEG"),
    "mask of another size": (
        lambda r: cv2.imwrite(str(_image(r, BAD, "mask")), np.zeros((9, 9), np.uint8)),
        "mask", "mask of 9 x 9 pixels",
    ),
}


class TestReaders:
    @pytest.mark.parametrize("case", list(ANNOTATION_CASES))
    def test_annotation_file(self, damaged, case):
        damage, key, index, problem = ANNOTATION_CASES[case]
        damage(damaged)
        with pytest.raises(DataError, match=problem) as error:
            SyntheticHandDataset(damaged)
        assert error.value.path == damaged / f"training_{key}.json" and error.value.index == index
        where = f"training_{key}.json" + (f", sample {index}" if index is not None else "")
        assert where in str(error.value)

    @pytest.mark.parametrize("case", list(IMAGE_CASES))
    def test_image_file(self, damaged, case):
        damage, kind, problem = IMAGE_CASES[case]
        damage(damaged)
        dataset = SyntheticHandDataset(damaged)
        dataset[BAD - 1]  # the others still load
        with pytest.raises(DataError, match=problem) as error:
            dataset[BAD]
        assert error.value.path == _image(damaged, BAD, kind) and error.value.index == BAD
        assert f"{BAD:08d}.jpg, sample {BAD}:" in str(error.value)

    def test_missing_image_names_it(self, damaged):
        _image(damaged, BAD).unlink()
        with pytest.raises(FileNotFoundError, match=f"{BAD:08d}.jpg"):
            SyntheticHandDataset(damaged)[BAD]


def _one_error_line(capsys, *names):
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: ")
    assert sum(line.startswith("error:") for line in lines) == 1 and "Traceback" not in captured.err
    for name in names:
        assert name in lines[-1]
    return lines[-1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small untrained model of the current configuration, as ``model.pt``."""
    import torch

    from handdgp.config import ExperimentConfig
    from handdgp.loading import default_model_factory

    config = ExperimentConfig(name="small")
    config.net.image_size, config.net.width, config.net.depth = 32, 0.125, (1, 1, 1, 1)
    model, _ = default_model_factory(config)
    path = tmp_path_factory.mktemp("checkpoint") / "model.pt"
    torch.save({"model": model.state_dict(), "config": config.to_dict(), "step": 0}, path)
    return path


class TestCommands:
    def test_show_data_nan_intrinsics(self, damaged, tmp_path, capsys):
        ANNOTATION_CASES["K NaN"][0](damaged)
        assert main(["show-data", str(damaged), "--out", str(tmp_path / "s.png")]) == 2
        _one_error_line(capsys, "training_K.json", f"sample {BAD}", "non-finite")
        assert not (tmp_path / "s.png").exists()

    def test_show_data_truncated_image(self, damaged, tmp_path, capsys):
        _truncate(_image(damaged, 1))
        assert main(["show-data", str(damaged), "--out", str(tmp_path / "s.png"), "--num", "3"]) == 2
        _one_error_line(capsys, "00000001.jpg", "sample 1", "truncated JPEG")

    def test_train_zero_focal(self, damaged, tmp_path, capsys):
        ANNOTATION_CASES["K zero focal"][0](damaged)
        overrides = ["--set", f"data.train={damaged}", "--set", f"data.test={damaged}"]
        assert main(["train", "full", "--run-dir", str(tmp_path / "run"), *overrides, "--no-progress"]) == 2
        _one_error_line(capsys, "training_K.json", f"sample {BAD}", "focal")

    def test_train_bad_config_value(self, tmp_path, capsys):
        argv = ["train", "full", "--run-dir", str(tmp_path / "run"), "--set", "net.width=1e6"]
        assert main(argv) == 2
        _one_error_line(capsys, "net.width = 1000000.0")

    def test_evaluate_truncated_image(self, damaged, tmp_path, capsys, checkpoint):
        _truncate(_image(damaged, 0))
        argv = ["evaluate", str(checkpoint), "--data", str(damaged), "--out", str(tmp_path / "e"),
                "--max-samples", "2", "--batch-size", "2"]
        assert main(argv) == 2
        _one_error_line(capsys, "00000000.jpg", "sample 0", "truncated JPEG")

    def test_evaluate_nan_keypoints(self, damaged, tmp_path, capsys, checkpoint):
        ANNOTATION_CASES["xyz NaN"][0](damaged)
        argv = ["evaluate", str(checkpoint), "--data", str(damaged), "--out", str(tmp_path / "e")]
        assert main(argv) == 2
        _one_error_line(capsys, "training_xyz.json", f"sample {BAD}")

    def test_predict_truncated_image(self, damaged, tmp_path, capsys, checkpoint):
        _truncate(_image(damaged, 2))
        argv = ["predict", str(_image(damaged, 2)), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "p")]
        assert main(argv) == 2
        _one_error_line(capsys, "00000002.jpg", "truncated JPEG")
        assert not (tmp_path / "p").exists()

    def test_make_data_into_a_damaged_set(self, damaged, capsys):
        (damaged / "synthesis.json").write_text("{not json")
        argv = ["make-data", "--out", str(damaged), "--num", "3", "--no-progress"]
        assert main(argv) == 2
        _one_error_line(capsys, "synthesis.json")
