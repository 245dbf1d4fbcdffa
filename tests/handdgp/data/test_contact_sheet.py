"""Tests for handdgp.data.contact_sheet (``handdgp show-data``) and ``handdgp crop-fit``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from handdgp.cli import main
from handdgp.data.contact_sheet import FINGER_COLORS, contact_sheet, draw_hand


def _color_pixels(image: np.ndarray, rgb) -> int:
    return int((np.abs(image.astype(int) - np.array(rgb)).sum(-1) < 30).sum())


class TestDrawHand:
    def test_visible_filled_occluded_hollow(self):
        image = np.zeros((100, 100, 3), np.uint8)
        points = np.full((21, 2), -50.0)  # off the image, but the index finger
        points[5:8] = [50.0, 95.0]  # its lower joints below the tip: a vertical bone
        points[8] = [50.0, 50.0]
        filled = draw_hand(image, points, np.ones(21, bool), scale=2.0)
        hollow_vis = np.ones(21, bool)
        hollow_vis[8] = False
        hollow = draw_hand(image, points, hollow_vis, scale=2.0)
        index = np.array(FINGER_COLORS[1])
        assert filled.shape == (200, 200, 3)
        # 2 canvas pixels right of the tip's centre: inside the dot, inside the ring
        np.testing.assert_allclose(filled[100, 103], index, atol=30)
        assert hollow[100, 103].max() < 30
        assert _color_pixels(hollow, index) > 0

    def test_mesh_and_mask(self):
        image = np.zeros((40, 40, 3), np.uint8)
        verts = np.array([[5.0, 5.0], [35.0, 5.0], [20.0, 35.0]])
        mask = np.zeros((40, 40), bool)
        mask[10:30, 10:30] = True
        out = draw_hand(image, vertices2d=verts, faces=np.array([[0, 1, 2]]), mask=mask)
        assert out[15, 20].sum() > 0  # translucent triangle
        assert _color_pixels(out, (0, 230, 230)) > 40  # the mask outline, in cyan


class TestContactSheet:
    def test_sheet(self, synthetic_set, tmp_path):
        out = contact_sheet(synthetic_set, tmp_path / "sheet.png", num=4, tile=96)
        sheet = cv2.imread(str(out))[..., ::-1]
        assert sheet.shape == (192, 192, 3)
        assert sheet.std() > 20  # images, not an empty canvas
        for color in FINGER_COLORS:  # every finger's skeleton is drawn somewhere
            assert _color_pixels(sheet, color) > 0

    def test_sheet_with_crops(self, synthetic_set, tmp_path):
        out = contact_sheet(synthetic_set, tmp_path / "crops.png", num=3, start=60, crops=True,
                            tile=64, crop_kwargs={"image_size": 64, "canonical_focal": 40.0})
        sheet = cv2.imread(str(out))
        assert sheet.shape[1] % 128 == 0 and sheet.shape[0] % 64 == 0
        assert sheet.shape[0] * sheet.shape[1] == 4 * 64 * 128  # 2 x 2 cells, one empty
        assert sheet[64:, 128:].max() == 0

    def test_empty_range(self, synthetic_set, tmp_path):
        with pytest.raises(ValueError, match="no samples"):
            contact_sheet(synthetic_set, tmp_path / "x.png", start=1000)


class TestCommandLine:
    def test_show_data(self, synthetic_set, tmp_path, capsys):
        out = tmp_path / "cli.png"
        argv = ["show-data", str(synthetic_set), "--out", str(out), "--num", "2", "--crops",
                "--tile", "64", "--image-size", "64", "--canonical-focal", "40"]
        assert main(argv) == 0
        assert out.stat().st_size > 1000 and str(out) in capsys.readouterr().out

    def test_crop_fit(self, synthetic_set, capsys):
        assert main(["crop-fit", str(synthetic_set), "--focals", "40", "100000", "--num", "8"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith("8 samples")
        assert lines[2].split()[:2] == ["40", "100.0"] and lines[3].split()[:2] == ["100000", "0.0"]
        small, large = float(lines[2].split()[-2]), float(lines[3].split()[-2])  # median sizes
        assert large == pytest.approx(2500 * small, rel=2e-2)
