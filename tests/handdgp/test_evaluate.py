"""Evaluation: exact scores for known predictions, positioning overrides, the results table."""

import json
import math
import sys
import types

import numpy as np
import pytest
import torch

import dgpgeom
from handdgp.cli import add_evaluate_arguments
from handdgp.config import ExperimentConfig
from handdgp.evaluate import (
    TABLE_COLUMNS,
    evaluate_checkpoints,
    evaluate_command,
    evaluate_dataset,
    evaluate_model,
    format_table,
)
from handdgp.loading import default_dataset_factory, load_model
from handdgp.net import NetConfig

from .toy import IndexedCrops, OracleNet, ToyCrops, toy_model_factory, toy_net

MM_KEYS = ("rs_mje_mm", "rs_mve_mm", "pa_mje_mm", "pa_mve_mm", "cs_mje_mm", "cs_mve_mm")


@pytest.fixture(scope="module")
def crops():
    return IndexedCrops(size=12)


class TestEvaluateModel:
    def test_perfect_model_scores_zero_and_auc_one(self, crops):
        metrics = evaluate_model(OracleNet(crops), crops, batch_size=5)
        for key in MM_KEYS:
            assert metrics[key] == pytest.approx(0.0, abs=1e-4), key
        assert metrics["auc_cs"] == 1.0 and metrics["auc_cs_mesh"] == 1.0
        assert metrics["f_score_5"] == 1.0 and metrics["f_al_score_15"] == 1.0
        assert metrics["valid_fraction"] == 1.0 and metrics["num_samples"] == 12.0
        assert metrics["kp2d_crop_px"] == 0.0
        assert all(type(v) is float for v in metrics.values())

    def test_2d_error_is_the_mean_keypoint_distance_in_crop_pixels(self, crops):
        class Shifted2D(OracleNet):
            def forward(self, images, intrinsics):
                prediction = super().forward(images, intrinsics)
                moved = prediction.keypoints2d + torch.tensor([3.0, 4.0])  # 5 px
                return prediction._replace(keypoints2d=moved)

        metrics = evaluate_model(Shifted2D(crops), crops, batch_size=5)
        assert metrics["kp2d_crop_px"] == pytest.approx(5.0, abs=1e-5)
        assert metrics["cs_mje_mm"] == pytest.approx(0.0, abs=1e-4)

    def test_2d_error_is_left_out_without_2d_ground_truth(self, crops):
        without_2d = [{k: v for k, v in crops[i].items() if k != "keypoints2d"} for i in range(4)]
        metrics = evaluate_model(OracleNet(crops), without_2d, batch_size=3)
        assert "kp2d_crop_px" not in metrics and metrics["num_samples"] == 4.0

    def test_shifted_translation_shows_in_camera_space_only(self, crops):
        shifted = OracleNet(crops, offset=(0.003, 0.004, 0.0))  # 5 mm
        metrics = evaluate_model(shifted, crops, batch_size=5)
        assert metrics["cs_mje_mm"] == pytest.approx(5.0, abs=1e-3)
        assert metrics["cs_mve_mm"] == pytest.approx(5.0, abs=1e-3)
        for key in ("rs_mje_mm", "rs_mve_mm", "pa_mje_mm", "pa_mve_mm"):
            assert metrics[key] == pytest.approx(0.0, abs=1e-4), key
        # Every keypoint is 5 mm off: the PCK curve steps from 0 to 1 at 5 mm of 50.
        assert 0.88 < metrics["auc_cs"] < 0.91
        # Float32 round-off leaves the aligned errors a hair above the 0 mm threshold.
        assert metrics["auc_pa"] > 0.99 and metrics["f_al_score_5"] == 1.0

    def test_batching_and_max_samples(self, crops):
        shifted = OracleNet(crops, offset=(0.0, 0.0, 0.01))
        a = evaluate_model(shifted, crops, batch_size=3, max_samples=7)
        b = evaluate_model(shifted, crops, batch_size=7, max_samples=7)
        assert a["num_samples"] == 7.0
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-9), key

    def test_positioning_override_resolves_the_translation(self, crops):
        # The oracle's own translation is 2 cm off; DGP from its (exact) 2D/3D
        # keypoints puts the hand back where it belongs.
        shifted = OracleNet(crops, offset=(0.02, 0.0, 0.0), positioning="root_regression")
        own = evaluate_model(shifted, crops, batch_size=6)
        dgp = evaluate_model(shifted, crops, batch_size=6, positioning="dgp")
        assert own["cs_mje_mm"] == pytest.approx(20.0, abs=1e-3)
        assert dgp["cs_mje_mm"] < 0.05 and dgp["cs_mve_mm"] < 0.05
        assert dgp["rs_mje_mm"] == pytest.approx(own["rs_mje_mm"], abs=1e-6)

    def test_refine_override_calls_the_refinement(self, crops, monkeypatch):
        calls = []

        def refine_translation(points3d, points2d, intrinsics, weights, *, robust=None):
            calls.append(robust)
            solution = dgpgeom.solve_translation(points3d, points2d, intrinsics, weights)
            shift = torch.tensor([0.0, 0.01, 0.0])
            return types.SimpleNamespace(
                translation=solution.translation + shift, valid=solution.valid
            )

        fake = types.ModuleType("dgpgeom.solvers.refine")
        fake.refine_translation = refine_translation
        monkeypatch.setitem(sys.modules, "dgpgeom.solvers.refine", fake)
        metrics = evaluate_model(OracleNet(crops), crops, batch_size=6, positioning="refine")
        assert calls == ["huber", "huber"]
        assert metrics["cs_mje_mm"] == pytest.approx(10.0, abs=0.05)

    def test_root_regression_override_needs_a_root_head(self, crops):
        with pytest.raises(ValueError, match="root head"):
            evaluate_model(OracleNet(crops), crops, positioning="root_regression")

    def test_bad_arguments(self, crops):
        with pytest.raises(ValueError, match="positioning"):
            evaluate_model(OracleNet(crops), crops, positioning="pnp")
        with pytest.raises(ValueError, match="batch_size"):
            evaluate_model(OracleNet(crops), crops, batch_size=0)
        with pytest.raises(ValueError, match="max_samples"):
            evaluate_model(OracleNet(crops), crops, max_samples=0)
        with pytest.raises(ValueError, match="no samples"):
            evaluate_model(OracleNet(crops), [])

    def test_toy_network_runs_and_keeps_its_mode(self):
        torch.manual_seed(0)
        net = toy_net().train()
        metrics = evaluate_model(net, ToyCrops(size=6), batch_size=4)
        assert net.training
        assert all(math.isfinite(metrics[k]) for k in MM_KEYS)
        assert 0.0 <= metrics["valid_fraction"] <= 1.0

    def test_evaluation_keeps_the_pck_curves(self, crops):
        result = evaluate_dataset(OracleNet(crops, offset=(0.0, 0.0, 0.02)), crops)
        curve = result.freihand.pck_curves["xyz"]
        assert curve.shape == (100,) and curve[0] == 0.0 and curve[-1] == 1.0


def save_checkpoint(path, name, step=10, **net):
    config = ExperimentConfig(name=name, description=f"toy {name}")
    config.net = NetConfig(image_size=32, width=0.125, decoder_channels=(16, 8), **net)
    torch.manual_seed(step)
    model, _ = toy_model_factory(config)
    torch.save({"model": model.state_dict(), "config": config.to_dict(), "step": step}, path)
    return path


def toy_data(path, config):
    return ToyCrops(size=5)


class TestEvaluateCheckpoints:
    def test_table_json_and_pck_plot(self, tmp_path):
        paths = [
            save_checkpoint(tmp_path / "full.pt", "full"),
            save_checkpoint(tmp_path / "a3.pt", "A3-no-weights", learned_weights=False),
            save_checkpoint(tmp_path / "full2.pt", "full", step=20),
        ]
        report = evaluate_checkpoints(
            paths,
            tmp_path / "data",
            out_dir=tmp_path / "out",
            batch_size=4,
            model_factory=toy_model_factory,
            dataset_factory=toy_data,
        )
        assert [name for name, _ in report.rows] == ["full", "A3-no-weights", "full (step 20)"]
        lines = report.paths["table"].read_text().splitlines()
        header = next(line for line in lines if line.startswith("| Method"))
        assert [c.strip() for c in header.strip("|").split("|")] == ["Method"] + [
            title for title, _, _ in TABLE_COLUMNS
        ]
        body = [line for line in lines if line.startswith("| ") and line is not header]
        assert len(body) == 3
        assert all(len(line.strip("|").split("|")) == 1 + len(TABLE_COLUMNS) for line in body)
        records = json.loads(report.paths["json"].read_text())["results"]
        assert [r["step"] for r in records] == [10, 10, 20]
        assert set(MM_KEYS) <= set(records[0]["metrics"])
        assert len(records[0]["pck_camera_space"]["keypoints"]) == 100
        png = report.paths["pck"]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000

    def test_positioning_override_names_the_row(self, tmp_path):
        # B4 is B2's weights with refinement at test time: the row says so.
        paths = [
            save_checkpoint(tmp_path / "b2.pt", "B2", learned_weights=False),
            save_checkpoint(tmp_path / "full.pt", "full"),
        ]
        report = evaluate_checkpoints(
            paths,
            tmp_path / "data",
            out_dir=tmp_path / "out",
            positioning="refine",
            batch_size=5,
            model_factory=toy_model_factory,
            dataset_factory=toy_data,
        )
        assert [name for name, _ in report.rows] == ["B2 + refine", "full + refine"]
        assert "Positioning: `refine` for every model" in report.markdown
        records = json.loads(report.paths["json"].read_text())["results"]
        assert [r["experiment"] for r in records] == ["B2", "full"]

    def test_turned_views_name_the_row_and_are_recorded(self, tmp_path):
        ckpt = save_checkpoint(tmp_path / "m.pt", "full")
        parser = add_evaluate_arguments(__import__("argparse").ArgumentParser())
        args = parser.parse_args([str(ckpt), "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--tta"])
        assert args.tta
        assert evaluate_command(args, model_factory=toy_model_factory, dataset_factory=toy_data) == 0
        records = json.loads((tmp_path / "o" / "results.json").read_text())["results"]
        assert records[0]["name"] == "full (5 turned views)"
        assert records[0]["turns"] == [0.0, 30.0, -30.0, 60.0, -60.0]
        assert "turned by 0, 30, -30, 60, -60 degrees" in (tmp_path / "o" / "results.md").read_text()
        plain = parser.parse_args([str(ckpt), "--data", str(tmp_path)])
        assert not plain.tta

    def test_bad_turns_are_refused_before_any_work(self, tmp_path):
        with pytest.raises(ValueError, match="turns"):
            evaluate_checkpoints(["missing.pt"], tmp_path, turns=[], dataset_factory=toy_data)

    def test_empty_list_is_refused(self, tmp_path):
        with pytest.raises(ValueError, match="at least one"):
            evaluate_checkpoints([], tmp_path, dataset_factory=toy_data)

    def test_command_line(self, tmp_path, capsys):
        ckpt = save_checkpoint(tmp_path / "m.pt", "full")
        parser = add_evaluate_arguments(__import__("argparse").ArgumentParser())
        args = parser.parse_args(
            [str(ckpt), "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--batch-size", "5"]
        )
        assert (
            evaluate_command(args, model_factory=toy_model_factory, dataset_factory=toy_data) == 0
        )
        printed = capsys.readouterr().out
        assert "| full |" in printed and f"wrote table: {tmp_path / 'o' / 'results.md'}" in printed

    def test_held_out_crops_are_never_augmented(self, tmp_path):
        ckpt = save_checkpoint(tmp_path / "m.pt", "full")
        seen = []

        def spy(path, config):
            seen.append(config.data.augment)
            return ToyCrops(size=5)

        state = torch.load(ckpt, weights_only=True)
        assert state["config"]["data"]["augment"] is True
        evaluate_checkpoints(
            [ckpt], tmp_path, out_dir=tmp_path / "o", model_factory=toy_model_factory, dataset_factory=spy
        )
        assert seen == [False]

    def test_default_dataset_factory_crops_the_synthetic_set_as_configured(self, synthetic_set):
        config = ExperimentConfig()
        config.net.image_size, config.data.canonical_focal = 64, 80.0
        config.data.focal_from_box = False
        dataset = default_dataset_factory(synthetic_set, config)
        item = dataset[3]
        assert item["image"].shape == (3, 64, 64)
        assert item["intrinsics"][0, 0].item() == pytest.approx(80.0)
        uvw = item["keypoints3d"] @ item["intrinsics"].T
        assert torch.allclose(uvw[:, :2] / uvw[:, 2:], item["keypoints2d"], atol=1e-2)
        config.data.rectify = False
        assert not torch.equal(default_dataset_factory(synthetic_set, config)[3]["image"], item["image"])

    def test_focal_from_box_makes_the_hand_fill_the_crop(self, synthetic_set):
        config = ExperimentConfig()
        config.net.image_size = 64
        assert config.data.focal_from_box
        dataset = default_dataset_factory(synthetic_set, config)
        for index in range(len(dataset)):
            item = dataset[index]
            points = torch.cat([item["keypoints3d"], item["vertices"]]) @ item["intrinsics"].T
            uv = points[:, :2] / points[:, 2:]
            side = (uv.amax(0) - uv.amin(0)).amax().item()
            # The box (1.3 x the tight box) spans the crop, whatever the depth (the
            # virtual rotation changes the extent a little).
            assert 0.55 * 64 < side < 64


class TestFormatTable:
    def test_missing_values_and_decimals(self):
        metrics = {"rs_mje_mm": 7.44, "cs_mje_mm": float("nan"), "auc_cs": 0.51234}
        text = format_table([("Ours", metrics)], caption="caption")
        assert text.startswith("caption\n")
        row = text.splitlines()[-1]
        assert row.startswith("| Ours | 7.4 | n/a | n/a |") and "| 0.512 |" in row


class TestLoadModel:
    def test_round_trip(self, tmp_path):
        path = save_checkpoint(tmp_path / "m.pt", "full", step=3)
        loaded = load_model(path, model_factory=toy_model_factory)
        reference = torch.load(path, weights_only=True)["model"]
        assert loaded.step == 3 and loaded.config.name == "full" and not loaded.model.training
        for key, value in loaded.model.state_dict().items():
            assert torch.equal(value, reference[key]), key
        assert loaded.faces.shape[1] == 3
        assert np.asarray(loaded.config.net.decoder_channels).tolist() == [16, 8]
