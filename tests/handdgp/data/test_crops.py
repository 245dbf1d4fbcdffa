"""Tests for handdgp.data.crops: boxes, rectified crops, augmentation, the training contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dgpgeom.rectification import rectify_camera
from handdgp.data import HandSample, SyntheticHandDataset
from handdgp.data.crops import (
    CropDataset,
    crop_fit_statistics,
    crop_image,
    crop_rectification,
    hand_box,
)

CONTRACT = {
    "image": ((3, 128, 128), torch.float32),
    "intrinsics": ((3, 3), torch.float32),
    "keypoints2d": ((21, 2), torch.float32),
    "keypoints3d": ((21, 3), torch.float32),
    "vertices": ((1609, 3), torch.float32),
    "visibility": ((21,), torch.bool),
    "rotation": ((3, 3), torch.float32),
    "to_original": ((3, 3), torch.float32),
    "original_intrinsics": ((3, 3), torch.float32),
}
VARIANTS = [
    {"rectify": r, "mode": m, "augment": a}
    for r in (True, False)
    for m in ("perspective", "affine")
    for a in (False, True)
]


def _project(points, K):
    uvw = np.asarray(points, np.float64) @ np.asarray(K, np.float64).T
    return uvw[:, :2] / uvw[:, 2:]


def _hand(seed=0, centre=(0.15, -0.05, 0.6), size=(480, 640)):
    """A synthetic sample: random keypoints/vertices around ``centre``, a random image."""
    rng = np.random.default_rng(seed)
    K = np.array([[600.0, 0, 300.0], [0, 610.0, 250.0], [0, 0, 1]], np.float32)
    kp = (rng.normal(0, 0.03, (21, 3)) + centre).astype(np.float32)
    verts = (rng.normal(0, 0.035, (50, 3)) + centre).astype(np.float32)
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    return HandSample(image, K, 0, "test", keypoints3d=kp, vertices=verts,
                      keypoints2d=_project(kp, K).astype(np.float32))


@pytest.fixture(scope="module")
def dataset(synthetic_set):
    return SyntheticHandDataset(synthetic_set)


class TestHandBox:
    def test_square_and_scaled(self):
        points = np.array([[10.0, 20.0], [50.0, 30.0]])
        box = hand_box(points, 1.5)
        side = box[2] - box[0]
        assert side == pytest.approx(box[3] - box[1]) and side == pytest.approx(41 * 1.5)
        np.testing.assert_allclose((box[:2] + box[2:]) / 2, [30.0, 25.0])

    def test_pixel_edges(self):
        np.testing.assert_allclose(hand_box(np.array([[3.0, 3.0]]), 1.0), [2.5, 2.5, 3.5, 3.5])


class TestCropRectification:
    K = np.array([[500.0, 0, 320.0], [0, 505.0, 240.0], [0, 0, 1]])
    box = np.array([420.0, 80.0, 520.0, 180.0])

    @pytest.mark.parametrize("mode", ["perspective", "affine"])
    @pytest.mark.parametrize("focal", [160.0, None])
    def test_no_rotation_is_rectify_camera(self, mode, focal):
        ours = crop_rectification(self.K, self.box, image_size=128, focal=focal, mode=mode)
        ref = rectify_camera(torch.from_numpy(self.K), torch.from_numpy(self.box), size=128,
                             focal=focal, mode=mode)
        for name in ("intrinsics", "from_original", "to_original", "rotation"):
            torch.testing.assert_close(getattr(ours, name), getattr(ref, name), rtol=1e-12, atol=1e-9)

    @pytest.mark.parametrize("mode", ["perspective", "affine"])
    def test_rotation_about_the_optical_axis(self, mode):
        rect = crop_rectification(self.K, self.box, mode=mode, rotation=0.4)
        base = crop_rectification(self.K, self.box, mode=mode)
        rz = rect.rotation @ base.rotation.T
        torch.testing.assert_close(rz[2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
        assert math.atan2(float(rz[1, 0]), float(rz[0, 0])) == pytest.approx(0.4)
        centre = torch.tensor([470.0, 130.0, 1.0], dtype=torch.float64)
        mapped = rect.from_original @ centre
        torch.testing.assert_close(mapped[:2] / mapped[2], torch.full((2,), 63.5, dtype=torch.float64))
        torch.testing.assert_close(rect.from_original @ rect.to_original,
                                   torch.eye(3, dtype=torch.float64))
        if mode == "affine":  # the map stays affine
            torch.testing.assert_close(rect.from_original[2], torch.tensor([0.0, 0.0, 1.0],
                                                                            dtype=torch.float64))

    def test_bad_mode(self):
        with pytest.raises(ValueError, match="mode"):
            crop_rectification(self.K, self.box, mode="fisheye")


class TestCropImage:
    def test_constant_image(self):
        K = np.array([[100.0, 0, 31.5], [0, 100.0, 31.5], [0, 0, 1]])
        rect = crop_rectification(K, np.array([8.0, 8.0, 56.0, 56.0]), image_size=32, focal=None)
        out = crop_image(np.full((64, 64, 3), 51, np.uint8), rect)
        assert out.shape == (3, 32, 32) and out.dtype == torch.float32
        torch.testing.assert_close(out, torch.full_like(out, 0.2), atol=1e-6, rtol=0)

    def test_antialias(self):
        # 1-pixel stripes shrunk 8x: averaged to grey, not aliased into stripes.
        image = np.zeros((512, 512, 3), np.uint8)
        image[:, ::2] = 255
        K = np.array([[400.0, 0, 255.5], [0, 400.0, 255.5], [0, 0, 1]])
        rect = crop_rectification(K, np.array([0.0, 0.0, 512.0, 512.0]), image_size=64, focal=50.0,
                                  mode="affine")
        smooth = crop_image(image, rect)
        aliased = crop_image(image, rect, antialias=False)
        assert float(smooth.std()) < 0.05 and abs(float(smooth.mean()) - 0.5) < 0.05
        # point sampling every 8th column sees only white (or black) columns
        assert float(aliased.std()) > 0.2 or abs(float(aliased.mean()) - 0.5) > 0.4


class TestCropDataset:
    @pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(map(str, v.values())))
    def test_contract_and_consistency(self, dataset, variant):
        crops = CropDataset(dataset, seed=5, **variant)
        for index in (0, 11, 64):
            item = crops[index, 2]
            # The synthetic set has the hand model's parameters: rotation targets too.
            assert set(item) == {*CONTRACT, "index", "joint_rotations", "shape"}
            assert item["index"] == index
            assert item["joint_rotations"].shape[-2:] == (3, 3) and item["shape"].ndim == 1
            for name, (shape, dtype) in CONTRACT.items():
                assert item[name].shape == shape and item[name].dtype == dtype, name
            assert 0 <= float(item["image"].min()) and float(item["image"].max()) <= 1
            sample = dataset[index]
            K = item["intrinsics"].double()
            # K · keypoints3d projects onto keypoints2d
            p = item["keypoints3d"].double() @ K.T
            err = (p[:, :2] / p[:, 2:] - item["keypoints2d"].double()).abs().max()
            assert float(err) < 0.01
            # keypoints2d map back to the original 2D keypoints
            h = torch.cat([item["keypoints2d"].double(), torch.ones(21, 1, dtype=torch.float64)], 1)
            back = h @ item["to_original"].double().T
            original2d = torch.from_numpy(_project(sample.keypoints3d, sample.intrinsics))
            assert float((back[:, :2] / back[:, 2:] - original2d).abs().max()) < 2e-3
            # rotationᵀ takes the 3D targets back to the original camera frame
            R = item["rotation"].double()
            torch.testing.assert_close(item["keypoints3d"].double() @ R,
                                       torch.from_numpy(sample.keypoints3d).double(), atol=1e-6, rtol=0)
            torch.testing.assert_close(item["vertices"].double() @ R,
                                       torch.from_numpy(sample.vertices).double(), atol=1e-6, rtol=0)
            torch.testing.assert_close(R @ R.T, torch.eye(3, dtype=torch.float64), atol=1e-6, rtol=0)
            torch.testing.assert_close(item["original_intrinsics"],
                                       torch.from_numpy(sample.intrinsics))
            # visibility: the sample's, and inside the crop
            uv = item["keypoints2d"]
            inside = ((uv >= -0.5) & (uv < 127.5)).all(1)
            assert not (item["visibility"] & ~inside).any()
            assert not (item["visibility"] & ~torch.from_numpy(sample.visibility)).any()

    @pytest.mark.parametrize("mode", ["perspective", "affine"])
    def test_canonical_camera(self, dataset, mode):
        crops = CropDataset(dataset, canonical_focal=150.0, mode=mode)
        item = crops[3]
        assert float(item["intrinsics"][0, 0]) == pytest.approx(150.0)
        assert float(item["intrinsics"][1, 1]) == pytest.approx(150.0)
        if mode == "perspective":
            torch.testing.assert_close(item["intrinsics"][:2, 2], torch.full((2,), 63.5))
        else:
            torch.testing.assert_close(item["rotation"], torch.eye(3))

    def test_no_rectification_fills_the_crop(self, dataset):
        crops = CropDataset(dataset, rectify=False, mode="affine", box_scale=1.3)
        for index in (0, 5):
            item = crops[index]
            K = item["intrinsics"].double()
            points = torch.cat([item["keypoints3d"], item["vertices"]]).double() @ K.T
            uv = points[:, :2] / points[:, 2:]
            scale = float(K[0, 0] / item["original_intrinsics"][0, 0].double())
            extent = float((uv.amax(0) - uv.amin(0)).max()) + scale  # + one original pixel
            assert extent == pytest.approx(128 / 1.3, rel=1e-3)
            torch.testing.assert_close(item["rotation"], torch.eye(3))

    def test_augmentation_is_a_function_of_seed_epoch_index(self, dataset):
        crops = CropDataset(dataset, augment=True, seed=1)
        a, b = crops[7, 3], crops[7, 3]
        for name in CONTRACT:
            torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
        other_epoch = crops[7, 4]
        assert not torch.equal(a["image"], other_epoch["image"])
        other_seed = CropDataset(dataset, augment=True, seed=2)[7, 3]
        assert not torch.equal(a["image"], other_seed["image"])
        torch.testing.assert_close(crops[7], crops[7, 0], rtol=0, atol=0)  # int key = epoch 0
        plain = CropDataset(dataset)
        torch.testing.assert_close(plain[7, 0]["image"], plain[7, 9]["image"], rtol=0, atol=0)

    def test_augmentation_covers_rotations_and_shifts(self, dataset):
        crops = CropDataset(dataset, augment=True, mode="affine")  # rotation = R_z exactly
        plain = CropDataset(dataset, mode="affine")[2]
        angles, shifts = [], []
        for epoch in range(40):
            item = crops[2, epoch]
            rz = item["rotation"].double()
            angles.append(math.degrees(math.atan2(float(rz[1, 0]), float(rz[0, 0]))))
            # the root's distance from the crop centre is unchanged by a rotation about it
            shifts.append(float((item["keypoints2d"][0] - 63.5).norm()))
        angles = np.array(angles)
        assert np.abs(angles).max() <= 90 + 1e-3
        assert (angles == 0).mean() > 0.2 and (np.abs(angles) > 20).any()
        base = float((plain["keypoints2d"][0] - 63.5).norm())
        assert np.std(shifts) > 0.1 and max(abs(np.array(shifts) - base)) < 0.2 * 128

    def test_image_warp_agrees_with_keypoints(self):
        # Bright dots at the keypoints' pixels must land on the returned 2D keypoints.
        sample = _hand(3)
        image = np.zeros_like(sample.image)
        for u, v in np.rint(sample.keypoints2d[:4]).astype(int):
            image[v - 1 : v + 2, u - 1 : u + 2] = 255
        uv = np.rint(sample.keypoints2d).astype(np.float32)
        kp = np.concatenate([uv, np.ones((21, 1), np.float32)], 1) @ np.linalg.inv(
            sample.intrinsics).T.astype(np.float32) * sample.keypoints3d[:, 2:]
        dotted = HandSample(image, sample.intrinsics, 0, "dots", keypoints3d=kp.astype(np.float32),
                            vertices=sample.vertices)
        checked = 0
        for variant in VARIANTS:
            crops = CropDataset([dotted], image_size=96, canonical_focal=300.0, seed=4, **variant)
            for epoch in range(3):
                item = crops[0, epoch]
                grey = item["image"].mean(0)
                for k in range(4):
                    x, y = item["keypoints2d"][k].tolist()
                    xi, yi = round(x), round(y)
                    if not (2 <= xi < 94 and 2 <= yi < 94):
                        continue
                    patch = grey[yi - 2 : yi + 3, xi - 2 : xi + 3]
                    ys, xs = torch.meshgrid(torch.arange(5.0), torch.arange(5.0), indexing="ij")
                    w = patch / patch.sum()
                    cy, cx = float((w * ys).sum()) + yi - 2, float((w * xs).sum()) + xi - 2
                    assert abs(cx - x) < 0.6 and abs(cy - y) < 0.6, (variant, epoch, k)
                    checked += 1
        assert checked > 60

    def test_loader_with_epoch_pairs(self, dataset):
        crops = CropDataset(dataset, augment=True)
        loader = DataLoader(crops, batch_size=4, sampler=[(i, 1) for i in range(8)])
        batch = next(iter(loader))
        assert batch["image"].shape == (4, 3, 128, 128) and batch["index"].tolist() == [0, 1, 2, 3]
        assert batch["visibility"].dtype == torch.bool

    def test_bad_input(self, dataset):
        with pytest.raises(ValueError, match="mode"):
            CropDataset(dataset, mode="fisheye")
        with pytest.raises(ValueError, match="image_size"):
            CropDataset(dataset, image_size=0)
        with pytest.raises(TypeError):
            CropDataset(dataset)[1, 2, 3]
        with pytest.raises(TypeError):
            CropDataset(dataset)[1.5]
        bare = HandSample(np.zeros((8, 8, 3), np.uint8), np.eye(3, dtype=np.float32), 0, "bare")
        with pytest.raises(ValueError, match="no 3D keypoints or vertices"):
            CropDataset([bare])[0]


class TestCropFitStatistics:
    def test_fractions_and_sizes(self):
        samples = [_hand(s, centre=(0.0, 0.0, z)) for s, z in enumerate((0.3, 0.6, 1.0))]
        fit = crop_fit_statistics(samples, [50.0, 200.0, 2000.0])
        assert fit[50.0][:2] == (1.0, 1.0) and fit[2000.0][:2] == (0.0, 0.0)
        assert 0.0 <= fit[200.0].vertices_inside <= fit[200.0].keypoints_inside <= 1.0
        # sizes scale with the focal length (perspective mode: exactly)
        assert fit[200.0].median_size == pytest.approx(4 * fit[50.0].median_size)
        assert fit[50.0].p10_size <= fit[50.0].median_size

    def test_box_scaled_crop_fits_every_depth(self):
        samples = [_hand(s, centre=(0.0, 0.0, z)) for s, z in enumerate((0.3, 0.6, 1.0))]
        fit = crop_fit_statistics(samples, [50.0, None])
        # A fixed focal shrinks far hands; the box scale keeps every hand at one size.
        assert fit[None][:2] == (1.0, 1.0)
        assert fit[None].p10_size > fit[50.0].p10_size
        assert fit[None].median_size == pytest.approx(fit[None].p10_size, rel=0.2)
