"""``handdgp predict`` through ``main``: a user's mistake is one ``error:`` line, exit 2."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from handdgp import __version__, cli, predict
from handdgp.cli import build_parser, join_negative_values, main
from handdgp.config import ExperimentConfig
from handdgp.net import NetConfig
from handdgp.net.turned_views import DEFAULT_TURNS
from handdgp.predict import read_image, reduction_factor, to_reduced

from .toy import toy_model_factory


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A toy checkpoint, a 60 x 80 PNG, a file, an undecodable 'image'."""
    root = tmp_path_factory.mktemp("cli")
    config = ExperimentConfig(name="toy")
    config.net = NetConfig(image_size=32, width=0.125, decoder_channels=(16, 8))
    torch.manual_seed(0)
    model, _ = toy_model_factory(config)
    torch.save({"model": model.state_dict(), "config": config.to_dict(), "step": 1}, root / "m.pt")
    image = (np.random.default_rng(0).random((60, 80, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(root / "hand.png"), image)
    (root / "a_file").write_text("not a directory")
    (root / "bad.jpg").write_bytes(b"this is not a JPEG")
    return root


@pytest.fixture
def run(files, monkeypatch, capfd):
    """``main(["predict", ...])`` with the toy model and no hand finder -> (rc, stdout, stderr)."""

    def command(args):
        return predict.predict_command(args, model_factory=toy_model_factory, hand_finder=None)

    monkeypatch.setattr(cli, "_cmd_predict", command)

    def go(*argv, image="hand.png", checkpoint="m.pt", out="out"):
        head = ["predict", str(files / image)]
        if checkpoint is not None:
            head += ["--checkpoint", str(files / checkpoint)]
        if out is not None:
            head += ["--out", str(files / out)]
        try:
            rc = main([*head, *argv])
        except SystemExit as stop:  # argparse
            rc = stop.code
        captured = capfd.readouterr()
        return rc, captured.out, captured.err

    return go


def one_error(err, *words):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 or lines[-2].startswith("usage:") or lines[0].startswith("usage:"), err
    assert "Traceback" not in err and "[ WARN" not in err
    assert lines[-1].startswith("error:") or ": error:" in lines[-1], err
    for word in words:
        assert word in lines[-1], (word, err)
    return lines[-1]


BAD_ARGUMENTS = [
    (["--intrinsics", "-90,90,40,30"], ["--intrinsics", "positive"]),
    (["--intrinsics", "0,90,40,30"], ["--intrinsics", "positive"]),
    (["--intrinsics", "nan,90,40,30"], ["--intrinsics", "finite"]),
    (["--intrinsics", "90,90,40"], ["--intrinsics", "4 comma-separated"]),
    (["--box", "50,10,10,50"], ["--box", "X1 > X0"]),
    (["--box", "10,10,10,50"], ["--box", "X1 > X0"]),
    (["--box", "a,b,c,d"], ["--box"]),
    (["--positioning", "magic"], ["--positioning"]),
]


@pytest.mark.parametrize(("argv", "words"), BAD_ARGUMENTS)
def test_bad_arguments(run, argv, words):
    rc, _, err = run(*argv)
    assert rc == 2
    line = one_error(err, *words)
    assert line.count("--intrinsics") + line.count("--box") <= 1  # names the option once


def test_out_naming_a_file(run):
    rc, _, err = run(out="a_file")
    assert rc == 2
    one_error(err, "--out", "is a file")


def test_bad_values_found_when_running(run, files):
    rc, _, err = run(checkpoint="no_such_name")
    assert rc == 2
    one_error(err, "checkpoint", "no_such_name", "shipped")

    rc, _, err = run("--device", "cuda:7" if torch.cuda.is_available() else "cuda")
    assert rc == 2
    one_error(err, "--device", "cuda")
    rc, _, err = run("--device", "toaster")
    assert rc == 2
    one_error(err, "--device", "toaster")

    rc, _, err = run(image="missing.jpg")
    assert rc == 2
    missing = one_error(err, "image", "no file", "missing.jpg")
    rc, _, err = run(image="bad.jpg")
    assert rc == 2
    undecodable = one_error(err, "image", "cannot decode", "bad.jpg")
    assert missing != undecodable

    rc, _, err = run("--box", "100,70,150,90")  # the image is 80 x 60
    assert rc == 2
    one_error(err, "--box", "outside the 80x60 image")

    state = torch.load(files / "m.pt", weights_only=True)
    state["model"] = {k: v[..., :1] if v.ndim else v for k, v in state["model"].items()}
    torch.save(state, files / "stale.pt")
    rc, _, err = run(checkpoint="stale.pt")
    assert rc == 2
    one_error(err, "--checkpoint", "stale.pt", "cannot be loaded")


def test_negative_box_without_equals_and_default_checkpoint(run, files):
    rc, _, err = run("--box", "-20,-10,40,30", "--intrinsics", "90,90,39.5,29.5", out="neg")
    assert rc == 0, err
    data = json.loads((files / "neg" / "hand_keypoints.json").read_text())
    assert data["intrinsics_assumed"] is False
    assert join_negative_values(["--intrinsics", "-1.5,2,3,4", "--box", "1,2,3,4"]) == [
        "--intrinsics=-1.5,2,3,4",
        "--box",
        "1,2,3,4",
    ]
    args = build_parser().parse_args(["predict", "x.png"])
    assert str(args.checkpoint) == "full" and args.box is None


def test_turned_views_average_the_prediction(run, files, monkeypatch):
    """``--tta`` runs the default turned views (5 crops through the network, one answer)."""
    from handdgp import inference

    seen = []
    original = inference.predict_turned
    monkeypatch.setattr(
        inference, "predict_turned", lambda *a: seen.append(a[3]) or original(*a)
    )
    rc, _, err = run("--box", "10,10,50,50", "--intrinsics", "90,90,39.5,29.5", "--tta", out="tta")
    assert rc == 0, err
    assert seen == [DEFAULT_TURNS]
    data = json.loads((files / "tta" / "hand_keypoints.json").read_text())
    assert np.isfinite(np.asarray(data["keypoints2d"], float)).all()
    rc, _, err = run("--box", "10,10,50,50", "--intrinsics", "90,90,39.5,29.5", out="one")
    assert rc == 0 and seen == [DEFAULT_TURNS], err  # off by default


def test_without_box_warns_whole_image(run, files, monkeypatch):
    rc, out, _ = run(out="nobox")
    assert rc == 0
    assert "no --box given and no hand detector installed" in out
    assert "whole image" in out

    def nothing(args):
        return predict.predict_command(
            args, model_factory=toy_model_factory, hand_finder=lambda image: None
        )

    monkeypatch.setattr(cli, "_cmd_predict", nothing)
    rc, out, _ = run(out="nothing")
    assert rc == 0 and "no hand found" in out and "whole image" in out

    seen = []

    def finder(image):
        seen.append(image.shape)
        return np.array([10.0, 5.0, 50.0, 45.0])

    def found(args):
        return predict.predict_command(args, model_factory=toy_model_factory, hand_finder=finder)

    monkeypatch.setattr(cli, "_cmd_predict", found)
    rc, out, _ = run(out="found")
    assert rc == 0 and "hand found: box 10,5,50,45" in out and "whole image" not in out
    assert seen == [(60, 80, 3)]
    box = json.loads((files / "found" / "hand_keypoints.json").read_text())["box"]
    assert np.allclose(np.mean(np.reshape(box, (2, 2)), axis=0), [30.0, 25.0])


def test_version_help_and_python_m(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"handdgp {__version__}"
    parser = build_parser()
    subparsers = next(
        a for a in parser._actions if isinstance(a, type(parser._subparsers._group_actions[0]))
    )
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, (name, action.option_strings)
    help_text = " ".join(subparsers.choices["predict"].format_help().split())
    assert subparsers.choices["predict"].description
    for default in (
        "(default: full)",
        "(default: predictions)",
        "(default: cpu)",
        "--box -52,10,80,90",
    ):
        assert default in help_text, default
    assert "(default: 300)" in " ".join(subparsers.choices["detect-recall"].format_help().split())
    result = subprocess.run(
        [sys.executable, "-m", "handdgp", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and result.stdout.strip() == f"handdgp {__version__}"


class TestLargeImages:
    def test_reduction_factor(self):
        assert reduction_factor(4704, 9184) == 4
        assert reduction_factor(4704, 9184, (0, 0, 4096, 3000)) == 8
        assert reduction_factor(4704, 9184, (0, 0, 1100, 900)) == 2
        assert reduction_factor(600, 800) == 1

    def test_jpeg_is_reduced_on_read_and_outputs_stay_in_original_pixels(
        self, tmp_path, monkeypatch
    ):
        # A smooth 3200 x 1700 image, a bright blob where the 'hand' is.
        height, width = 1700, 3200
        yy, xx = np.mgrid[0:height, 0:width]
        blob = np.exp(-((xx - 2400.0) ** 2 + (yy - 500.0) ** 2) / (2 * 120.0**2))
        image = np.stack([blob * 255, xx / width * 255, yy / height * 255], -1).astype(np.uint8)
        path = tmp_path / "big.jpg"
        cv2.imwrite(str(path), image[..., ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 95])
        small, factor, size = read_image(path)
        assert factor == 2 and size == (height, width) and small.shape == (850, 1600, 3)
        # pixel i of the reduced image is centred on original pixel f i + (f - 1) / 2
        weight = small[..., 0].astype(float) ** 2
        ys, xs = np.mgrid[0 : small.shape[0], 0 : small.shape[1]]
        peak = [(weight * xs).sum() / weight.sum(), (weight * ys).sum() / weight.sum(), 1.0]
        centre = np.linalg.inv(to_reduced(factor)) @ peak
        assert np.allclose(centre[:2], [2400, 500], atol=0.3)
        png = tmp_path / "big.png"
        cv2.imwrite(str(png), image[..., ::-1].copy())
        small_png, factor_png, size_png = read_image(png)
        assert (factor_png, size_png, small_png.shape) == (2, (height, width), (850, 1600, 3))
        assert np.abs(small_png.astype(int) - small.astype(int)).mean() < 3

        # The network sees the reduced image with its intrinsics; the outputs come back.
        seen = {}
        real = predict.predict_image

        def spy(model, image, intrinsics, box, **kwargs):
            seen.update(shape=image.shape, k=intrinsics, box=box)
            return real(model, image, intrinsics, box, **kwargs)

        monkeypatch.setattr(predict, "predict_image", spy)
        config = ExperimentConfig(name="toy")
        config.net = NetConfig(image_size=32, width=0.125, decoder_channels=(16, 8))
        model, _ = toy_model_factory(config)
        torch.save(
            {"model": model.state_dict(), "config": config.to_dict(), "step": 1}, tmp_path / "m.pt"
        )
        args = build_parser().parse_args(
            [
                "predict",
                str(path),
                "--checkpoint",
                str(tmp_path / "m.pt"),
                "--out",
                str(tmp_path / "o"),
                "--intrinsics",
                "2000,2000,1599.5,849.5",
            ]
        )
        assert predict.predict_command(args, model_factory=toy_model_factory, hand_finder=None) == 0
        assert seen["shape"] == (850, 1600, 3)
        assert np.allclose(seen["k"], [[1000, 0, 799.5], [0, 1000, 424.5], [0, 0, 1]])
        data = json.loads((tmp_path / "o" / "big_keypoints.json").read_text())
        assert np.allclose(data["intrinsics"], [[2000, 0, 1599.5], [0, 2000, 849.5], [0, 0, 1]])
        box = np.asarray(data["box"])  # the whole image, padded to a square, in original pixels
        assert np.allclose(box, [-0.5, -750.5, 3199.5, 2449.5])


def test_mediapipe_finds_the_demo_hand():
    """The real finder on the repository's demo image: its box overlaps the true one."""
    pytest.importorskip("mediapipe", reason="the hand finder needs handdgp[detect]")
    from pathlib import Path

    from handdgp.detect import box_iou, find_hand_box, keypoint_box

    folder = Path(__file__).resolve().parents[2] / "examples" / "data"
    truth = json.loads((folder / "synthetic_hand.json").read_text())
    image, factor, _ = read_image(folder / "synthetic_hand.jpg")
    k, keypoints = np.asarray(truth["intrinsics"]), np.asarray(truth["keypoints_cam"])
    uvw = keypoints @ k.T
    box = find_hand_box(image)
    assert factor == 1 and box is not None
    assert box_iou(box, keypoint_box(uvw[:, :2] / uvw[:, 2:])) > 0.6
    assert find_hand_box(np.full((120, 160, 3), 90, np.uint8)) is None
