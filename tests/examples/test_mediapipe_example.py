"""The MediaPipe example: its geometry on saved MediaPipe outputs, and the guide's numbers.

Everything except the last test runs without MediaPipe, on the landmarks that MediaPipe
0.10.21 returned on two synthetic renders (``docs/how-to/data/mediapipe_hands.json``).
The last test runs MediaPipe end to end and is skipped where it is not installed.
"""

from __future__ import annotations

import doctest
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests._scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "how-to" / "mediapipe.md"
FIXTURE = ROOT / "docs" / "how-to" / "data" / "mediapipe_hands.json"


ex = load_script("examples/mediapipe_to_camera_space.py")
HANDS = json.loads(FIXTURE.read_text(encoding="utf-8"))["hands"]


def fake_results(landmarks: np.ndarray | None, world: np.ndarray | None = None):
    """An object shaped like ``Hands.process``'s result (one hand, or none)."""
    if landmarks is None:
        return SimpleNamespace(multi_hand_landmarks=None, multi_hand_world_landmarks=None)

    def hand(points):
        return SimpleNamespace(landmark=[SimpleNamespace(x=x, y=y, z=z) for x, y, z in points])

    return SimpleNamespace(
        multi_hand_landmarks=[hand(landmarks)], multi_hand_world_landmarks=[hand(world)]
    )


def fixture_detection(hand: dict):
    points2d, points3d = ex.landmarks_to_arrays(
        fake_results(hand["landmarks"], hand["world_landmarks"]), tuple(hand["image_size"])
    )
    return ex.Detection(
        hand["view"],
        np.array(hand["intrinsics"]),
        np.array(hand["keypoints_cam"]),
        points2d,
        points3d,
    )


def guide_numbers() -> dict[str, tuple[float, str, float, int]]:
    """The guide's printed fit of each fixture hand: statistic, verdict, depth, error."""
    pattern = re.compile(
        r"^(palm|back): median residual ([0-9.]+) of the hand size, (accepted|rejected); "
        r"depth ([0-9.]+) m \(true [0-9.]+ m\), wrist error (\d+) mm$",
        re.M,
    )
    found = pattern.findall(GUIDE.read_text(encoding="utf-8"))
    return {v: (float(s), verdict, float(z), int(e)) for v, s, verdict, z, e in found}


class TestConversions:
    def test_no_hand_gives_none(self):
        assert ex.landmarks_to_arrays(fake_results(None), (480, 640)) is None
        assert ex.raw_landmarks(fake_results(None)) is None

    def test_pixels_and_wrist_relative_points(self):
        landmarks = np.zeros((21, 3))
        landmarks[:, :2] = [0.5, 0.25]
        landmarks[0, :2] = [0.0, 1.0]  # the image's left edge, bottom edge
        world = np.arange(63.0).reshape(21, 3) / 100
        points2d, points3d = ex.landmarks_to_arrays(fake_results(landmarks, world), (480, 640))
        assert points2d.shape == (21, 2) and points3d.shape == (21, 3)
        np.testing.assert_allclose(points2d[1], [319.5, 119.5])
        np.testing.assert_allclose(points2d[0], [-0.5, 479.5])
        np.testing.assert_allclose(points3d, world - world[0])

    def test_bone_length_sum_is_pose_free(self):
        hand = np.array(HANDS[0]["keypoints_cam"])
        c, s = np.cos(0.7), np.sin(0.7)
        rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        moved = hand @ rotation.T + [0.1, -0.2, 0.3]
        assert ex.bone_length_sum(moved) == pytest.approx(ex.bone_length_sum(hand))
        assert 0.6 < ex.bone_length_sum(hand) < 1.2  # metres, an adult hand


class TestCameraSpaceHand:
    def test_exact_projections_are_recovered_and_accepted(self):
        truth = np.array(HANDS[0]["keypoints_cam"])
        K = np.array(HANDS[0]["intrinsics"])
        hand = ex.camera_space_hand(truth - truth[0], ex.project(truth, K), K)
        np.testing.assert_allclose(hand.translation, truth[0], atol=1e-9)
        np.testing.assert_allclose(hand.keypoints_cam, truth, atol=1e-9)
        assert hand.accepted
        assert hand.residuals.shape == (21,) and hand.residuals.max() < 1e-6

    def test_depth_scales_with_the_3d_hand(self):
        detection = fixture_detection(HANDS[0])
        base = ex.camera_space_hand(detection.points3d, detection.points2d, detection.intrinsics)
        larger = ex.camera_space_hand(
            1.3 * detection.points3d, detection.points2d, detection.intrinsics
        )
        np.testing.assert_allclose(larger.translation, 1.3 * base.translation, rtol=1e-9)
        np.testing.assert_allclose(larger.residuals, base.residuals, rtol=1e-6)

    def test_gate_threshold_decides(self):
        detection = fixture_detection(HANDS[0])
        args = (detection.points3d, detection.points2d, detection.intrinsics)
        statistic = ex.relative_residual(ex.camera_space_hand(*args).residuals, detection.points2d)
        assert ex.camera_space_hand(*args, max_relative_residual=statistic * 1.01).accepted
        assert not ex.camera_space_hand(*args, max_relative_residual=statistic * 0.99).accepted


class TestFixtureAgainstGuide:
    """The example, on real MediaPipe numbers, prints what the guide says."""

    def test_fixture_holds_a_palm_and_a_back_view(self):
        assert [h["view"] for h in HANDS] == ["palm", "back"]
        for hand in HANDS:
            assert np.array(hand["landmarks"]).shape == (21, 3)
            assert np.array(hand["world_landmarks"]).shape == (21, 3)
            assert np.array(hand["keypoints_cam"]).shape == (21, 3)

    @pytest.mark.parametrize("index", [0, 1], ids=["palm", "back"])
    def test_fit_matches_the_guide(self, index):
        hand = HANDS[index]
        statistic, verdict, depth, error_mm = guide_numbers()[hand["view"]]
        detection = fixture_detection(hand)
        fit = ex.camera_space_hand(detection.points3d, detection.points2d, detection.intrinsics)
        truth = detection.keypoints_cam
        assert ex.relative_residual(fit.residuals, detection.points2d) == pytest.approx(
            statistic, abs=5e-4
        )
        assert ("accepted" if fit.accepted else "rejected") == verdict
        assert fit.translation[2] == pytest.approx(depth, abs=5e-4)
        assert np.linalg.norm(fit.translation - truth[0]) * 1000 == pytest.approx(error_mm, abs=0.5)

    def test_guide_states_the_gate_threshold(self):
        text = GUIDE.read_text(encoding="utf-8")
        assert f"MAX_RELATIVE_RESIDUAL = {ex.MAX_RELATIVE_RESIDUAL}" in text


class TestMeasurement:
    def test_measure_and_tables(self, tmp_path):
        detections = [fixture_detection(h) for h in HANDS]
        missing = detections[0]._replace(points2d=None, points3d=None)
        records = [ex.measure(d) for d in [*detections, missing]]
        palm, back, lost = records
        assert palm.accepted and not back.accepted and not lost.detected
        assert np.isnan(lost.root_error_mm)
        # the true 3D hand with MediaPipe's 2D landmarks beats MediaPipe's own 3D hand
        assert palm.root_error_true_shape_mm < palm.root_error_mm
        assert back.root_error_true_shape_mm < back.root_error_mm
        table = ex.format_table(records)
        assert "| palm | 2 | 50% | 100% | 80 | 80 | - |" in table
        assert "| back | 1 | 100% | 0% | 208 | - | 208 |" in table
        assert "| none | 100% | 100% | 100% |" in ex.format_gate_sweep(records)
        assert "| palm |" in ex.format_landmark_check([*detections, missing])
        axes = ex.format_axis_check(detections)
        angles = [float(line.split("|")[2]) for line in axes.splitlines()[2:]]
        assert angles[0] == min(angles)  # the world landmarks' own axes fit best

        path = str(tmp_path / "detections.npz")
        ex.save_detections(path, [*detections, missing])
        loaded = ex.load_detections(path)
        assert [d.view for d in loaded] == ["palm", "back", "palm"]
        assert loaded[2].points2d is None
        np.testing.assert_array_equal(loaded[1].points3d, detections[1].points3d)


def test_docstring_examples():
    outcome = doctest.testmod(ex)
    assert outcome.attempted >= 2 and outcome.failed == 0


def test_mediapipe_end_to_end():
    """MediaPipe itself on one synthetic render (skipped where MediaPipe is missing)."""
    mp = pytest.importorskip("mediapipe")
    pytest.importorskip("handdgp")
    names = [landmark.name for landmark in mp.solutions.hands.HandLandmark]
    order = ["WRIST"] + [
        f"{finger}_{joint}"
        for finger, joints in (
            ("THUMB", ("CMC", "MCP", "IP", "TIP")),
            *((f, ("MCP", "PIP", "DIP", "TIP")) for f in ("INDEX_FINGER", "MIDDLE_FINGER")),
            *((f, ("MCP", "PIP", "DIP", "TIP")) for f in ("RING_FINGER", "PINKY")),
        )
        for joint in joints
    ]
    assert names == order  # FreiHAND's order

    view = list(ex.render_synthetic(3, seed=0))[2]  # a palm view, well fitted in the guide's run
    assert view.view == "palm"
    found = ex.detect(ex.create_detector(), view.image)
    assert found is not None
    points2d, points3d = found
    size = ex.hand_size_px(points2d)
    error2d = np.linalg.norm(points2d - ex.project(view.keypoints_cam, view.intrinsics), axis=1)
    assert np.median(error2d) < 0.1 * size
    truth = view.keypoints_cam - view.keypoints_cam[0]
    assert ex._proper_procrustes_angle(points3d, truth) < 60.0  # no axis flip
    hand = ex.camera_space_hand(points3d, points2d, view.intrinsics)
    assert hand.accepted
    assert np.linalg.norm(hand.translation - view.keypoints_cam[0]) < 0.3
