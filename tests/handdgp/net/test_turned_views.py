"""Test-time turned views: the warp, the turn of the points and the average agree."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import dgpgeom
from handdgp.data.crops import crop_rectification
from handdgp.inference import check_turns, run_model
from handdgp.net import HandPrediction, NetConfig
from handdgp.net.turned_views import DEFAULT_TURNS, predict_turned, turn_matrices
from tests.handdgp.toy import canonical_k, toy_net

SIZE = 64
K = canonical_k(SIZE, 60.0)


def _hand(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`(B, 21, 3)` root-relative keypoints and `(B, 3)` roots of hands in front of K."""
    gen = torch.Generator().manual_seed(seed)
    relative = (torch.rand(batch, 21, 3, generator=gen) - 0.5) * 0.1
    relative = relative - relative[:, :1]
    root = torch.tensor([0.0, 0.0, 0.5]) + (torch.rand(batch, 3, generator=gen) - 0.5) * 0.05
    return relative, root


class TurnAwareOracle(nn.Module):
    """Returns the given hands as each turned camera sees them (view-major batches),
    each view's 2D and 3D moved by its own offset, so the average is known."""

    def __init__(self, relative, root, angles, offsets2d=None, offsets3d=None):
        super().__init__()
        self.config = NetConfig(image_size=SIZE)
        self.relative, self.root, self.angles = relative, root, angles
        views = len(angles)
        self.offsets2d = torch.zeros(views, 2) if offsets2d is None else offsets2d
        self.offsets3d = torch.zeros(views, 3) if offsets3d is None else offsets3d

    def forward(self, images, intrinsics):
        batch = self.relative.shape[0]
        turns = turn_matrices(self.angles, dtype=torch.float32, device=images.device)
        chunks = []
        for v, turn in enumerate(turns):
            rel = self.relative @ turn.T + self.offsets3d[v]
            rel = rel - rel[:, :1]
            root = self.root @ turn.T
            cam = rel + root[:, None]
            uv = dgpgeom.camera.project(cam, intrinsics[v * batch : (v + 1) * batch]).points2d
            chunks.append((uv + self.offsets2d[v], rel, root))
        kp2d = torch.cat([c[0] for c in chunks])
        rel = torch.cat([c[1] for c in chunks])
        root = torch.cat([c[2] for c in chunks])
        ones = torch.ones(kp2d.shape[:2])
        return HandPrediction(
            kp2d, rel, rel, ones, root, rel + root[:, None], rel + root[:, None],
            torch.ones(kp2d.shape[0], dtype=torch.bool),
        )  # fmt: skip


class BlobFinder(nn.Module):
    """Finds the bright blob of channel 0: every 2D keypoint at it, keypoint 1 at its
    ray 0.5 m deep (keypoint 0, the root, at the origin)."""

    config = NetConfig(image_size=SIZE)

    def forward(self, images, intrinsics):
        heat = images[:, 0] ** 8
        heat = heat / heat.sum((-2, -1), keepdim=True)
        ys, xs = torch.meshgrid(torch.arange(float(SIZE)), torch.arange(float(SIZE)), indexing="ij")
        location = torch.stack(((heat * xs).sum((-2, -1)), (heat * ys).sum((-2, -1))), -1)
        batch = images.shape[0]
        kp2d = location[:, None].expand(batch, 21, 2)
        ray = torch.cat((location, torch.ones(batch, 1)), -1) @ torch.linalg.inv(intrinsics[0]).T
        kp3d = torch.zeros(batch, 21, 3)
        kp3d[:, 1] = 0.5 * ray
        ones = torch.ones(batch, 21)
        return HandPrediction(
            kp2d, kp3d, kp3d, ones, torch.zeros(batch, 3), kp3d, kp3d, torch.ones(batch, dtype=torch.bool)
        )


def _blob(centre: tuple[float, float], sigma: float = 2.0) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(float(SIZE)), torch.arange(float(SIZE)), indexing="ij")
    blob = torch.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2))
    return torch.stack((blob, torch.zeros_like(blob), torch.zeros_like(blob)))[None]


class TestTurnMatrices:
    def test_rotations_about_the_optical_axis(self):
        turns = turn_matrices([0.0, 30.0, -75.0], dtype=torch.float64, device=torch.device("cpu"))
        torch.testing.assert_close(turns[0], torch.eye(3, dtype=torch.float64))
        torch.testing.assert_close(turns @ turns.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(3, 3, 3))
        torch.testing.assert_close(turns[:, 2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(3, 3))
        assert torch.det(turns).sub(1).abs().max() < 1e-12

    def test_same_sense_as_the_training_crops(self):
        """A crop made with ``rotation=θ`` is the unturned crop's camera turned by turn_matrices(θ)."""
        k = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
        box = np.array([400.0, 100.0, 500.0, 200.0])
        plain = crop_rectification(k, box)
        turned = crop_rectification(k, box, rotation=math.radians(40.0))
        turn = turn_matrices([40.0], dtype=torch.float64, device=torch.device("cpu"))[0]
        torch.testing.assert_close(turned.rotation, turn @ plain.rotation)


class TestPredictTurned:
    def test_one_unturned_view_is_the_model_itself(self):
        torch.manual_seed(0)
        net = toy_net().eval()
        images, k = torch.rand(3, 3, 32, 32), canonical_k(32).expand(3, 3, 3)
        with torch.no_grad():
            plain, turned = net(images, k), predict_turned(net, images, k, [0.0])
        for name in ("keypoints2d", "vertices", "keypoints3d", "weights", "translation", "keypoints_cam"):
            torch.testing.assert_close(getattr(turned, name), getattr(plain, name), atol=1e-4, rtol=1e-4)
        assert torch.equal(turned.valid, plain.valid)

    def test_views_mapped_back_to_the_crop_recover_the_hand(self):
        relative, root = _hand(4)
        angles = [0.0, 30.0, -60.0, 90.0, 170.0]
        model = TurnAwareOracle(relative, root, angles)
        images, k = torch.zeros(4, 3, SIZE, SIZE), K.expand(4, 3, 3)
        out = predict_turned(model, images, k, angles)
        torch.testing.assert_close(out.keypoints3d, relative, atol=1e-6, rtol=0)
        torch.testing.assert_close(out.translation, root, atol=1e-5, rtol=1e-4)
        truth2d = dgpgeom.camera.project(relative + root[:, None], k).points2d
        torch.testing.assert_close(out.keypoints2d, truth2d, atol=1e-3, rtol=0)
        assert out.valid.all()
        assert out.heatmaps is None and out.joint_rotations is None

    def test_the_views_are_averaged(self):
        relative, root = _hand(2, seed=1)
        angles = [0.0, 45.0]
        offsets2d = torch.tensor([[0.0, 0.0], [2.0, -1.0]])  # pixels, in each view's crop
        offsets3d = torch.tensor([[0.0, 0.0, 0.0], [0.004, 0.0, -0.002]])
        model = TurnAwareOracle(relative, root, angles, offsets2d, offsets3d)
        out = predict_turned(model, torch.zeros(2, 3, SIZE, SIZE), K.expand(2, 3, 3), angles)
        turn = turn_matrices([45.0], dtype=torch.float32, device=torch.device("cpu"))[0]
        expected3d = relative + 0.5 * (offsets3d[1] @ turn)  # turned back: R^T offset
        expected3d = expected3d - expected3d[:, :1]
        torch.testing.assert_close(out.keypoints3d, expected3d, atol=1e-6, rtol=0)
        # The second view's 2D offset, turned back about the principal point (a rotation
        # for this K), moves the average by half of it.
        truth2d = dgpgeom.camera.project(relative + root[:, None], K.expand(2, 3, 3)).points2d
        shift = 0.5 * (offsets2d[1] @ turn[:2, :2])
        torch.testing.assert_close(out.keypoints2d - truth2d, shift.expand_as(truth2d), atol=2e-3, rtol=0)

    @pytest.mark.parametrize("angle", [25.0, -60.0, 90.0])
    def test_the_image_turns_with_the_points(self, angle):
        """The warp and the points' turn agree: a blob found in the turned image, mapped
        back, is where it was, in pixels and as a 3D ray."""
        centre = (40.0, 25.0)
        out = predict_turned(BlobFinder(), _blob(centre), K[None], [angle])
        torch.testing.assert_close(out.keypoints2d[0, 0], torch.tensor(centre), atol=0.3, rtol=0)
        ray = 0.5 * torch.linalg.inv(K) @ torch.tensor([*centre, 1.0])
        torch.testing.assert_close(out.keypoints3d[0, 1], ray, atol=0.3 * 0.5 / 60.0, rtol=0)

    def test_no_views_is_refused(self):
        with pytest.raises(ValueError, match="angles"):
            predict_turned(BlobFinder(), _blob((30.0, 30.0)), K[None], [])


class TestRunModelTurns:
    @pytest.mark.parametrize("bad", [[], [float("nan")], [0.0, float("inf")], ["30"], [True], "30", 30.0])
    def test_bad_turns_name_the_argument(self, bad):
        with pytest.raises(ValueError, match="turns: expected None or at least one finite angle"):
            check_turns(bad)

    def test_the_command_line_help_names_the_default_turns(self):
        from handdgp.cli import _TTA_VIEWS

        turns = sorted({abs(a) for a in DEFAULT_TURNS if a != 0})
        assert 0.0 in DEFAULT_TURNS and all(-a in DEFAULT_TURNS for a in turns)
        named = "0, " + " and ".join(f"+-{a:g}" for a in turns)
        assert named in _TTA_VIEWS and f"{len(DEFAULT_TURNS)} network passes" in _TTA_VIEWS

    def test_run_model_averages_the_default_turns(self):
        relative, root = _hand(3, seed=2)
        model = TurnAwareOracle(relative, root, list(DEFAULT_TURNS))
        out = run_model(model, torch.zeros(3, 3, SIZE, SIZE), K.expand(3, 3, 3), turns=DEFAULT_TURNS)
        torch.testing.assert_close(out.translation, root, atol=1e-5, rtol=1e-4)
