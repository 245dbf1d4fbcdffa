"""Prediction: crop-space outputs come back to the original camera; writers and the CLI."""

import argparse
import json
import sys
import types

import cv2
import numpy as np
import pytest
import torch
from torch import nn

import dgpgeom
from dgpgeom.camera import crop_intrinsics
from dgpgeom.rectification import rectify_camera
from handdgp.cli import add_predict_arguments
from handdgp.config import DataConfig, ExperimentConfig
from handdgp.data.crops import network_crop
from handdgp.inference import Prediction, reposition, run_model
from handdgp.net import HandPrediction, NetConfig
from handdgp.outputs import (
    HAND_EDGES,
    plot_overlay,
    plot_side_view,
    write_ply,
    write_prediction_json,
)
from handdgp.predict import (
    crop_box,
    default_intrinsics,
    predict_batch,
    predict_command,
    predict_image,
)

from .toy import toy_hierarchy, toy_model_factory

H, W = 240, 320
K = np.array([[300.0, 0.0, 161.0], [0.0, 310.0, 118.0], [0.0, 0.0, 1.0]])
SIZE = 64


def project(points, k):
    uvw = points @ k.T
    return uvw[:, :2] / uvw[:, 2:]


def make_hand(seed=0, centre=(0.08, -0.04, 0.55)):
    """Keypoints and vertices of a camera-space 'hand' off the optical axis, metres."""
    rng = np.random.default_rng(seed)
    keypoints = rng.normal(size=(21, 3)) * 0.03 + np.asarray(centre)
    vertices = rng.normal(size=(40, 3)) * 0.03 + np.asarray(centre)
    return keypoints, vertices


class CropCamera(nn.Module):
    """A stub net that 'sees' a known hand: it returns that hand in the crop's camera
    frame (rotated by ``rotation``, the rectified <- original rotation the test
    expects) with 2D keypoints projected by the intrinsics it is given."""

    def __init__(self, keypoints, vertices, rotation=None, weights=None):
        super().__init__()
        self.config = NetConfig(image_size=SIZE)
        r = torch.as_tensor(np.eye(3) if rotation is None else rotation, dtype=torch.float64)
        self.keypoints = torch.as_tensor(keypoints, dtype=torch.float64) @ r.T
        self.vertices = torch.as_tensor(vertices, dtype=torch.float64) @ r.T
        self.weights = torch.linspace(0.1, 1.0, 21) if weights is None else weights
        self.seen = []

    def forward(self, images, intrinsics):
        self.seen.append((images.clone(), intrinsics.clone()))
        b = images.shape[0]
        kp, verts = self.keypoints.float(), self.vertices.float()
        root = kp[:1]
        uvw = kp @ intrinsics.transpose(-1, -2)
        kp2d = uvw[..., :2] / uvw[..., 2:]
        rel_kp, rel_v = (kp - root).expand(b, -1, -1), (verts - root).expand(b, -1, -1)
        t = root.expand(b, 3)
        return HandPrediction(
            kp2d,
            rel_v,
            rel_kp,
            self.weights.expand(b, 21),
            t,
            rel_v + t[:, None],
            rel_kp + t[:, None],
            torch.ones(b, dtype=torch.bool),
        )


def blob_image(point, height=H, width=W):
    """Black image with a bright 5x5 square centred on the pixel nearest ``point``."""
    image = np.zeros((height, width, 3), np.uint8)
    u, v = np.rint(point).astype(int)
    image[v - 2 : v + 3, u - 2 : u + 3] = 255
    return image, np.array([u, v], dtype=np.float64)


def centroid(crop):
    """Intensity-weighted centroid (x, y) of a (3, S, S) crop, crop pixels."""
    mass = crop[0].double()
    ys, xs = torch.meshgrid(
        torch.arange(mass.shape[0], dtype=torch.float64),
        torch.arange(mass.shape[1], dtype=torch.float64),
        indexing="ij",
    )
    return np.array([(mass * xs).sum() / mass.sum(), (mass * ys).sum() / mass.sum()])


def hand_box(keypoints, k=K, margin=10.0):
    uv = project(keypoints, k)
    return (*(uv.min(0) - margin), *(uv.max(0) + margin))


def fixed_focal(mode):
    return DataConfig(rectify=True, canonical_focal=200.0, focal_from_box=False, mode=mode)


SETTINGS = {
    "perspective": fixed_focal("perspective"),
    "affine": fixed_focal("affine"),
    "box-scale": DataConfig(rectify=True, focal_from_box=True),
    "no-rectification": DataConfig(rectify=False, box_scale=1.3),
}


class TestPredictImage:
    @pytest.mark.parametrize("setting", list(SETTINGS))
    def test_crop_outputs_come_back_to_the_original_camera(self, setting):
        data = SETTINGS[setting]
        keypoints, vertices = make_hand()
        box = hand_box(keypoints)
        crop = crop_box(box, H, W, box_scale=data.box_scale)
        expected = network_crop(
            K,
            crop,
            image_size=SIZE,
            rectify=data.rectify,
            canonical_focal=None if data.focal_from_box else data.canonical_focal,
            mode=data.mode,
        )
        stub = CropCamera(keypoints, vertices, expected.rotation.numpy())
        image, blob = blob_image(project(keypoints[:1], K)[0])

        out = predict_image(stub, image, K, box, data=data)

        np.testing.assert_allclose(out.vertices_cam, vertices, atol=2e-6)
        np.testing.assert_allclose(out.keypoints_cam, keypoints, atol=2e-6)
        np.testing.assert_allclose(out.translation, keypoints[0], atol=2e-6)
        np.testing.assert_allclose(out.keypoints2d, project(keypoints, K), atol=2e-3)
        np.testing.assert_allclose(out.weights, np.linspace(0.1, 1.0, 21), atol=1e-6)
        np.testing.assert_allclose(out.box, crop)
        assert bool(out.valid) and not out.intrinsics_assumed
        # The network saw the crop's intrinsics, and the image warped consistently.
        crops, k_seen = stub.seen[0]
        np.testing.assert_allclose(k_seen[0].numpy(), expected.intrinsics.numpy(), atol=1e-4)
        if setting == "perspective":
            c = (SIZE - 1) / 2
            want = [[200.0, 0.0, c], [0.0, 200.0, c], [0.0, 0.0, 1.0]]
            np.testing.assert_allclose(k_seen[0].numpy(), want, atol=1e-4)
        elif setting == "affine":  # the principal point follows the box centre
            assert k_seen[0, 0, 0] == 200.0 and k_seen[0, 1, 1] == 200.0
        elif setting == "box-scale":  # the crop box spans the crop
            side = crop[2] - crop[0]
            assert k_seen[0, 0, 0].item() == pytest.approx(K[0, 0] * SIZE / side, rel=0.05)
        else:
            want = crop_intrinsics(torch.from_numpy(K), torch.tensor(crop), (SIZE, SIZE))
            np.testing.assert_allclose(k_seen[0].numpy(), want.numpy(), atol=1e-4)
        blob_rect = dgpgeom.rectification.points2d_to_rectified(
            torch.from_numpy(blob)[None], expected
        )[0].numpy()
        np.testing.assert_allclose(centroid(crops[0]), blob_rect, atol=0.2)

    def test_perspective_crop_looks_straight_at_the_box(self):
        keypoints, vertices = make_hand()
        data = SETTINGS["perspective"]
        box = hand_box(keypoints)
        stub = CropCamera(keypoints, vertices)
        predict_image(stub, blob_image(project(keypoints[:1], K)[0])[0], K, box, data=data)
        # The box centre's ray is the crop's optical axis: it lands on the crop centre.
        centre = torch.tensor([[0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])]])
        rect = rectify_camera(
            torch.from_numpy(K), torch.tensor(box), size=SIZE, focal=200.0, mode="perspective"
        )
        landed = dgpgeom.rectification.points2d_to_rectified(centre.double(), rect)
        np.testing.assert_allclose(landed.numpy(), [[(SIZE - 1) / 2] * 2], atol=1e-6)

    def test_without_intrinsics_warns_and_flags(self):
        keypoints, vertices = make_hand()
        stub = CropCamera(keypoints, vertices)
        with pytest.warns(UserWarning, match="no intrinsics given") as caught:
            out = predict_image(stub, np.zeros((H, W, 3), np.uint8))
        assert caught[0].filename == __file__  # the warning points at the caller
        with pytest.warns(UserWarning, match="no intrinsics given") as caught:
            predict_batch(stub, np.zeros((1, H, W, 3), np.uint8))
        assert caught[0].filename == __file__
        assert out.intrinsics_assumed
        np.testing.assert_array_equal(out.intrinsics, default_intrinsics(H, W))
        assert out.intrinsics[0, 0] == pytest.approx(1.2 * W)
        # The whole image, padded to a square.
        np.testing.assert_allclose(out.box, [-0.5, -40.5, W - 0.5, H + 39.5])

    def test_model_mode_is_restored_and_positioning_overrides(self):
        keypoints, vertices = make_hand()
        stub = CropCamera(keypoints, vertices).train()
        image = np.zeros((H, W, 3), np.uint8)
        own = predict_image(stub, image, K)
        out = predict_image(stub, image, K, positioning="dgp")
        assert stub.training
        # The stub is self-consistent, so re-solving with DGP finds its translation.
        np.testing.assert_allclose(out.translation, own.translation, atol=1e-4)
        np.testing.assert_allclose(out.vertices_cam, own.vertices_cam, atol=1e-4)

    def test_bad_input(self):
        stub = CropCamera(*make_hand())
        image = np.zeros((H, W, 3), np.uint8)
        with pytest.raises(dgpgeom.ShapeError, match="uint8"):
            predict_image(stub, image.astype(np.float32), K)
        with pytest.raises(dgpgeom.ShapeError, match=r"\(H, W, 3\)"):
            predict_image(stub, image[..., 0], K)
        with pytest.raises(dgpgeom.ShapeError, match="intrinsics"):
            predict_image(stub, image, np.eye(2))
        with pytest.raises(ValueError, match="positive focal"):
            predict_image(stub, image, np.zeros((3, 3)))
        with pytest.raises(ValueError, match="box"):
            predict_image(stub, image, K, (10, 10, 5, 20))
        with pytest.raises(ValueError, match="positioning"):
            predict_image(stub, image, K, positioning="pnp")


class TestPredictBatch:
    def test_batch_equals_single_images(self):
        keypoints, vertices = make_hand()
        stub = CropCamera(keypoints, vertices)
        data = SETTINGS["no-rectification"]
        images = np.stack([blob_image((100.0 + 20 * i, 90.0))[0] for i in range(3)])
        boxes = [(60.0, 50.0, 160.0, 150.0), None, (100.0, 40.0, 180.0, 140.0)]
        batch = predict_batch(stub, images, K, boxes, data=data)
        assert batch.vertices_cam.shape == (3, 40, 3) and batch.valid.shape == (3,)
        for i in range(3):
            single = predict_image(stub, images[i], K, boxes[i], data=data)
            np.testing.assert_allclose(batch.keypoints2d[i], single.keypoints2d, atol=1e-9)
            np.testing.assert_allclose(batch.box[i], single.box)
            torch.testing.assert_close(stub.seen[0][0][i], stub.seen[i + 1][0][0])

    def test_images_of_different_sizes(self):
        stub = CropCamera(*make_hand())
        images = [np.zeros((H, W, 3), np.uint8), np.zeros((100, 90, 3), np.uint8)]
        with pytest.warns(UserWarning):
            out = predict_batch(stub, images)
        np.testing.assert_array_equal(out.intrinsics[1], default_intrinsics(100, 90))
        assert out.intrinsics_assumed and out.keypoints_cam.shape == (2, 21, 3)

    def test_bad_batch(self):
        stub = CropCamera(*make_hand())
        with pytest.raises(dgpgeom.ShapeError, match="boxes"):
            predict_batch(stub, np.zeros((2, H, W, 3), np.uint8), K, [None])
        with pytest.raises(dgpgeom.ShapeError, match="intrinsics"):
            predict_batch(stub, np.zeros((2, H, W, 3), np.uint8), np.stack([K] * 3))
        with pytest.raises(dgpgeom.ShapeError, match="at least one"):
            predict_batch(stub, [], K)


class TestReposition:
    def test_refine_dispatch(self, monkeypatch):
        seen = {}

        def refine_translation(points3d, points2d, intrinsics, weights, *, robust=None):
            seen["robust"] = robust
            return types.SimpleNamespace(
                translation=torch.tensor([[0.0, 0.0, 1.0]]), valid=torch.tensor([True])
            )

        fake = types.ModuleType("dgpgeom.solvers.refine")
        fake.refine_translation = refine_translation
        monkeypatch.setitem(sys.modules, "dgpgeom.solvers.refine", fake)
        z = torch.zeros(1, 21, 3)
        raw = HandPrediction(z[..., :2], z, z, z[..., 0], z[:, 0], z, z, torch.tensor([False]))
        out = reposition(raw, torch.eye(3)[None], "refine")
        assert seen["robust"] == "huber" and bool(out.valid)
        torch.testing.assert_close(out.keypoints_cam[0, 5], torch.tensor([0.0, 0.0, 1.0]))

    def test_unknown_positioning(self):
        z = torch.zeros(1, 21, 3)
        raw = HandPrediction(z[..., :2], z, z, z[..., 0], z[:, 0], z, z, torch.tensor([False]))
        with pytest.raises(ValueError, match="re-solve"):
            reposition(raw, torch.eye(3)[None], "root_regression")
        with pytest.raises(ValueError, match="root head"):
            run_model(
                CropCamera(*make_hand()),
                torch.zeros(1, 3, SIZE, SIZE),
                torch.eye(3)[None],
                "root_regression",
            )


def single_prediction(intrinsics_assumed=False):
    keypoints, vertices = make_hand(centre=(0.02, 0.01, 0.5))
    return Prediction(
        vertices_cam=vertices,
        keypoints_cam=keypoints,
        translation=keypoints[0],
        keypoints2d=project(keypoints, K),
        weights=np.linspace(0.0, 1.0, 21),
        valid=np.array(True),
        intrinsics=K,
        intrinsics_assumed=intrinsics_assumed,
        box=np.array([0.0, 0.0, 100.0, 100.0]),
    )


def read_ply(path):
    lines = path.read_text().splitlines()
    assert lines[0] == "ply" and lines[1] == "format ascii 1.0"
    end = lines.index("end_header")
    counts = {ln.split()[1]: int(ln.split()[2]) for ln in lines[:end] if ln.startswith("element")}
    body = lines[end + 1 :]
    vertices = np.array([[float(x) for x in ln.split()] for ln in body[: counts["vertex"]]])
    faces = np.array([[int(x) for x in ln.split()] for ln in body[counts["vertex"] :]])
    assert len(faces) == counts["face"] and np.all(faces[:, 0] == 3)
    return vertices, faces[:, 1:]


def png_pixels(path):
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None
    return image


class TestWriters:
    def test_ply_round_trip(self, tmp_path):
        vertices = np.random.default_rng(1).normal(size=(40, 3))
        faces = toy_hierarchy()[3] % 40
        v, f = read_ply(write_ply(tmp_path / "m.ply", vertices, faces))
        np.testing.assert_allclose(v, vertices, atol=1e-6)
        np.testing.assert_array_equal(f, faces.numpy())

    def test_ply_bad_faces(self, tmp_path):
        with pytest.raises(dgpgeom.ShapeError, match="faces"):
            write_ply(tmp_path / "m.ply", np.zeros((3, 3)), np.array([[0, 1, 3]]))
        with pytest.raises(dgpgeom.ShapeError, match="vertices"):
            write_ply(tmp_path / "m.ply", np.zeros((3, 2)), np.array([[0, 1, 2]]))

    def test_json_round_trip(self, tmp_path):
        p = single_prediction()
        data = json.loads(write_prediction_json(tmp_path / "p.json", p).read_text())
        np.testing.assert_allclose(data["keypoints_cam"], p.keypoints_cam)
        np.testing.assert_allclose(data["translation"], p.translation)
        np.testing.assert_allclose(data["keypoints2d"], p.keypoints2d)
        np.testing.assert_allclose(data["weights"], p.weights)
        assert data["valid"] is True and data["intrinsics_assumed"] is False

    def test_writers_refuse_batches(self, tmp_path):
        p = single_prediction()
        batched = p._replace(vertices_cam=p.vertices_cam[None])
        with pytest.raises(dgpgeom.ShapeError, match="one hand"):
            write_prediction_json(tmp_path / "p.json", batched)

    def test_overlay_and_side_view_are_real_pictures(self, tmp_path):
        p = single_prediction(intrinsics_assumed=True)
        rng = np.random.default_rng(0)
        image = (rng.random((H, W, 3)) * 60).astype(np.uint8)
        faces = np.array([[i, i + 1, i + 2] for i in range(38)])
        overlay = png_pixels(plot_overlay(tmp_path / "o.png", image, p, faces))
        side = png_pixels(plot_side_view(tmp_path / "s.png", p, (H, W)))
        for picture in (overlay, side):
            assert picture.shape[0] > 200 and picture.shape[1] > 300
            assert picture.reshape(-1, 3).std(0).min() > 5.0  # not one flat colour
        # The keypoint colours span the colour map: dark (low weight) to bright yellow.
        assert (overlay[..., 2].astype(int) - overlay[..., 0] > 150).any()

    def test_hand_edges_form_a_tree(self):
        assert len(HAND_EDGES) == 20
        assert sorted(child for _, child in HAND_EDGES) == list(range(1, 21))
        assert all(parent < child for parent, child in HAND_EDGES)


class TestCommandLine:
    def test_predict_command_writes_and_reports(self, tmp_path, capsys):
        config = ExperimentConfig(name="toy")
        config.net = NetConfig(image_size=32, width=0.125, decoder_channels=(16, 8))
        torch.manual_seed(0)
        model, _ = toy_model_factory(config)
        ckpt = tmp_path / "model.pt"
        torch.save({"model": model.state_dict(), "config": config.to_dict(), "step": 1}, ckpt)
        image_path = tmp_path / "hand.png"
        cv2.imwrite(
            str(image_path), (np.random.default_rng(0).random((60, 80, 3)) * 255).astype(np.uint8)
        )
        parser = add_predict_arguments(argparse.ArgumentParser())

        args = parser.parse_args(
            [
                str(image_path),
                "--checkpoint",
                str(ckpt),
                "--intrinsics",
                "90,90,39.5,29.5",
                "--box",
                "10,10,50,50",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        assert predict_command(args, model_factory=toy_model_factory) == 0
        printed = capsys.readouterr().out
        assert "WARNING: no --intrinsics" not in printed
        suffixes = {"mesh": ".ply", "keypoints": ".json", "overlay": ".png", "side_view": ".png"}
        for name, suffix in suffixes.items():
            path = tmp_path / "out" / f"hand_{name}{suffix}"
            assert f"wrote {name}: {path}" in printed and path.stat().st_size > 0
        vertices, _ = read_ply(tmp_path / "out" / "hand_mesh.ply")
        assert vertices.shape == (96, 3)

        args = parser.parse_args(
            [str(image_path), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o2")]
        )
        predict_command(args, model_factory=toy_model_factory)
        printed = capsys.readouterr().out
        assert "WARNING: no --intrinsics given: assumed fx = fy = 96.0 px" in printed
        data = json.loads((tmp_path / "o2" / "hand_keypoints.json").read_text())
        assert data["intrinsics_assumed"] is True

    def test_argument_errors(self):
        parser = add_predict_arguments(argparse.ArgumentParser())
        with pytest.raises(SystemExit):
            parser.parse_args(["x.png", "--checkpoint", "m.pt", "--intrinsics", "1,2,3"])
        with pytest.raises(SystemExit):
            parser.parse_args(["x.png", "--checkpoint", "m.pt", "--box", "a,b,c,d"])
