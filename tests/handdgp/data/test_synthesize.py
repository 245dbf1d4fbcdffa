"""Tests for handdgp.data.synthesize (``handdgp make-data``): files, contents, determinism,
resumption, and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from handdgp.cli import main
from handdgp.data import SyntheticHandDataset
from handdgp.data import synthesize as synth
from handdgp.data.scenes import SceneConfig, sample_scenes
from handdgp.data.synthesize import ANNOTATION_KEYS, make_dataset, render_block
from handdgp.hand import HandModel, load_template

from ..conftest import SMALL, SMALL_NUM


def _files(root: Path) -> dict[str, bytes]:
    """Every output file's bytes, by relative path."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


class TestLayout:
    def test_reader_loads_it(self, synthetic_set):
        ds = SyntheticHandDataset(synthetic_set)
        assert len(ds) == SMALL_NUM
        s = ds[SMALL_NUM - 1]
        assert s.image.dtype == np.uint8 and 48 <= s.image.shape[0] <= 64
        assert s.mask.shape == s.image.shape[:2] and s.mask.any()
        assert s.vertices.shape == (1609, 3) and s.keypoints3d.shape == (21, 3)
        assert s.visibility.shape == (21,) and s.visibility.dtype == bool
        assert set(s.params) == {
            "pose", "shape", "root", "focal", "principal_point", "occluder", "forearm",
            "cropped", "curl",
        }
        assert s.params["pose"].shape == (60,) and s.params["shape"].shape == (10,)
        assert s.scale == pytest.approx(np.linalg.norm(s.keypoints3d[9] - s.keypoints3d[10]), abs=1e-6)

    def test_files(self, synthetic_set):
        names = {p.name for p in synthetic_set.iterdir()}
        assert {f"training_{k}.json" for k in ANNOTATION_KEYS} <= names
        assert ".parts" not in names and "synthesis.json" in names
        assert len(list((synthetic_set / "training" / "rgb").glob("*.jpg"))) == SMALL_NUM
        assert len(list((synthetic_set / "training" / "mask").glob("*.jpg"))) == SMALL_NUM
        verts = json.loads((synthetic_set / "training_verts.json").read_text())
        assert len(verts) == SMALL_NUM and len(verts[0]) == 1609
        text = (synthetic_set / "training_xyz.json").read_text()
        decimals = [len(t.split(".")[1]) for t in text.replace("]", ",").split(",") if "." in t]
        assert max(decimals) <= 6  # limited precision keeps the files small

    def test_params_reproduce_geometry(self, synthetic_set):
        ds = SyntheticHandDataset(synthetic_set)
        model = HandModel(load_template())
        for i in (0, 33, SMALL_NUM - 1):
            s = ds[i]
            pose = torch.from_numpy(s.params["pose"]).reshape(1, -1, 3)
            out = model(pose, torch.from_numpy(s.params["shape"])[None])
            verts = out.vertices[0].numpy() + s.params["root"]
            np.testing.assert_allclose(verts, s.vertices, atol=2e-5)
            np.testing.assert_allclose(s.intrinsics[[0, 1], [0, 1]], s.params["focal"], rtol=1e-6)
            np.testing.assert_allclose(s.intrinsics[:2, 2], s.params["principal_point"], rtol=1e-6)

    def test_visible_keypoints_on_the_hand(self, synthetic_set):
        ds = SyntheticHandDataset(synthetic_set)
        seen = 0
        for i in range(len(ds)):
            s = ds[i]
            height, width = s.mask.shape
            uv = np.rint(s.keypoints2d[s.visibility]).astype(int)
            assert (uv >= 0).all() and (uv[:, 0] < width).all() and (uv[:, 1] < height).all()
            distance = cv2.distanceTransform((~s.mask).astype(np.uint8), cv2.DIST_L2, 5)
            assert (distance[uv[:, 1], uv[:, 0]] <= 2.0).all(), f"sample {i}"
            seen += len(uv)
        assert 0.3 * 21 * len(ds) < seen < 0.95 * 21 * len(ds)  # occlusions happen


class TestRenderBlock:
    def test_count(self):
        template = load_template()
        config = SceneConfig(image_size_range=(40, 40), focal_range=(40.0, 120.0))
        scenes = sample_scenes(HandModel(template), template, 1, 0, config)
        full = render_block(scenes, template, config=config)
        first = render_block(sample_scenes(HandModel(template), template, 1, 0, config), template,
                             config=config, count=3)
        assert len(full) == 64 and len(first) == 3 and first[2].index == 2
        for a, b in zip(first, full, strict=False):
            np.testing.assert_array_equal(a.rgb, b.rgb)
            np.testing.assert_array_equal(a.visibility, b.visibility)


class TestDeterminism:
    def test_same_seed_same_bytes(self, synthetic_set, tmp_path):
        again = make_dataset(
            tmp_path / "again", SMALL_NUM, seed=7, config=SMALL, workers=2, chunk_size=64,
            progress=False,
        )  # two forked workers this time
        assert _files(again) == _files(synthetic_set)

    def test_prefix_independent_of_count(self, synthetic_set, tmp_path):
        fewer = make_dataset(tmp_path / "five", 5, seed=7, config=SMALL, workers=1, progress=False)
        a, b = SyntheticHandDataset(fewer), SyntheticHandDataset(synthetic_set)
        for i in range(5):
            np.testing.assert_array_equal(a[i].image, b[i].image)
            np.testing.assert_array_equal(a[i].vertices, b[i].vertices)

    def test_other_seed_differs(self, synthetic_set, tmp_path):
        other = make_dataset(tmp_path / "other", 2, seed=8, config=SMALL, workers=1, progress=False)
        assert (other / "training_xyz.json").read_bytes() != (
            synthetic_set / "training_xyz.json"
        ).read_bytes()[: len((other / "training_xyz.json").read_bytes())]


class TestResume:
    def test_interrupted_then_resumed(self, synthetic_set, tmp_path, monkeypatch):
        out = tmp_path / "resumed"
        original = synth._process_block

        def interrupted(job, block):
            if block >= 1:  # the second chunk (chunks of 64 = one block)
                raise KeyboardInterrupt
            return original(job, block)

        monkeypatch.setattr(synth, "_process_block", interrupted)
        with pytest.raises(KeyboardInterrupt):
            make_dataset(out, SMALL_NUM, seed=7, config=SMALL, workers=1, chunk_size=64, progress=False)
        assert (out / ".parts" / "00000").is_dir() and not (out / ".parts" / "00001").exists()
        assert not (out / "training_K.json").exists()
        # leftovers of a crash mid-chunk: a stale temporary part and a truncated image
        (out / ".parts" / "00001.tmp-1").mkdir()
        (out / "training" / "rgb" / f"{SMALL_NUM - 1:08d}.jpg").write_bytes(b"\xff\xd8")
        first_chunk_image = (out / "training" / "rgb" / "00000003.jpg").stat().st_mtime_ns

        monkeypatch.setattr(synth, "_process_block", original)
        make_dataset(out, SMALL_NUM, seed=7, config=SMALL, workers=1, chunk_size=64, progress=False)
        assert _files(out) == _files(synthetic_set)
        # the finished chunk was not redone
        assert (out / "training" / "rgb" / "00000003.jpg").stat().st_mtime_ns == first_chunk_image

    def test_complete_is_a_no_op(self, tmp_path):
        out = make_dataset(tmp_path / "d", 3, seed=1, config=SMALL, workers=1, progress=False)
        stamp = (out / "training_verts.json").stat().st_mtime_ns
        make_dataset(out, 3, seed=1, config=SMALL, workers=1, progress=False)
        assert (out / "training_verts.json").stat().st_mtime_ns == stamp

    def test_other_settings_refused(self, tmp_path):
        out = make_dataset(tmp_path / "d", 2, seed=1, config=SMALL, workers=1, progress=False)
        with pytest.raises(ValueError, match="other settings"):
            make_dataset(out, 2, seed=2, config=SMALL, workers=1, progress=False)
        with pytest.raises(ValueError, match="other settings"):
            make_dataset(out, 3, seed=1, config=SMALL, workers=1, progress=False)


class TestBadInput:
    @pytest.mark.parametrize(
        "kwargs",
        [{"num": 0}, {"num": 4, "chunk_size": 100}, {"num": 4, "workers": 0}, {"num": 4, "jpeg_quality": 0}],
    )
    def test_errors(self, tmp_path, kwargs):
        num = kwargs.pop("num")
        with pytest.raises(ValueError):
            make_dataset(tmp_path / "x", num, config=SMALL, progress=False, **kwargs)
        assert not (tmp_path / "x").exists()  # refused before any work


class TestCommandLine:
    def test_make_data(self, tmp_path, capsys):
        out = tmp_path / "cli"
        argv = [
            "make-data", "--out", str(out), "--num", "3", "--seed", "7", "--workers", "1",
            "--image-size-range", "48", "64", "--focal-range", "50", "150", "--no-progress",
        ]
        assert main(argv) == 0
        assert "wrote 3 samples" in capsys.readouterr().out
        settings = json.loads((out / "synthesis.json").read_text())
        assert settings["scene"]["image_size_range"] == [48, 64] and settings["seed"] == 7
        # same samples as the API with the same settings
        ref = make_dataset(tmp_path / "api", 3, seed=7, config=SMALL, workers=1, progress=False)
        assert (out / "training_verts.json").read_bytes() == (ref / "training_verts.json").read_bytes()

    def test_rejects_bad_ranges(self):
        with pytest.raises(SystemExit):
            main(["make-data", "--out", "x", "--num", "3", "--focal-range", "-1", "10"])

    @pytest.mark.parametrize(("text", "spread"), [("template", None), ("0.05", 0.05)])
    def test_hand_size_spread(self, tmp_path, text, spread):
        out = tmp_path / "cli"
        argv = [
            "make-data", "--out", str(out), "--num", "1", "--workers", "1", "--no-progress",
            "--image-size-range", "48", "64", "--focal-range", "50", "150",
            "--hand-size-spread", text,
        ]
        assert main(argv) == 0
        assert json.loads((out / "synthesis.json").read_text())["scene"]["hand_size_spread"] == spread

    @pytest.mark.parametrize("text", ["0", "1", "wide", "nan"])
    def test_rejects_a_bad_hand_size_spread(self, text, capsys):
        with pytest.raises(SystemExit):
            main(["make-data", "--out", "x", "--num", "3", "--hand-size-spread", text])
        assert "--hand-size-spread" in capsys.readouterr().err


class TestKilledCleanUp:
    """States a kill during the final clean-up of ``.parts`` can leave."""

    def _reference(self, tmp_path):
        out = make_dataset(tmp_path / "d", 3, seed=1, config=SMALL, workers=1, progress=False)
        return out, _files(out)

    def test_chunk_folder_with_files_unlinked_is_redone(self, tmp_path):
        out, reference = self._reference(tmp_path)
        # An older clean-up (rmtree of .parts) killed after unlinking K.part only.
        chunk = out / ".parts" / "00000"
        chunk.mkdir(parents=True)
        for key in ANNOTATION_KEYS[1:]:
            (chunk / f"{key}.part").write_bytes(b"[]")
        make_dataset(out, 3, seed=1, config=SMALL, workers=1, progress=False)
        assert _files(out) == reference

    def test_leftover_finished_parts_are_removed(self, tmp_path, monkeypatch):
        out = tmp_path / "d"
        rmtree = synth.shutil.rmtree

        def killed(path, *args, **kwargs):
            if Path(path).name == ".parts.done" and Path(path).exists():
                (Path(path) / "00000" / "K.part").unlink()
                raise KeyboardInterrupt  # killed half-way through the removal
            return rmtree(path, *args, **kwargs)

        monkeypatch.setattr(synth.shutil, "rmtree", killed)
        with pytest.raises(KeyboardInterrupt):
            make_dataset(out, 3, seed=1, config=SMALL, workers=1, progress=False)
        monkeypatch.setattr(synth.shutil, "rmtree", rmtree)
        assert (out / ".parts.done").is_dir() and not (out / ".parts").exists()
        stamp = (out / "training_K.json").stat().st_mtime_ns
        make_dataset(out, 3, seed=1, config=SMALL, workers=1, progress=False)
        assert not (out / ".parts.done").exists()  # cleaned, nothing redone
        assert (out / "training_K.json").stat().st_mtime_ns == stamp
        assert len(SyntheticHandDataset(out)) == 3


class TestOutErrors:
    def test_api(self, tmp_path):
        with pytest.raises(ValueError, match="out: expected a directory"):
            make_dataset("", 3, config=SMALL, progress=False)
        (tmp_path / "file").write_text("x")
        with pytest.raises(NotADirectoryError, match="is a file"):
            make_dataset(tmp_path / "file", 3, config=SMALL, progress=False)

    @pytest.mark.parametrize("name", ["", "file"])
    def test_command_line(self, tmp_path, capsys, name):
        (tmp_path / "file").write_text("x")
        out = str(tmp_path / name) if name else ""
        with pytest.raises(SystemExit) as exit_info:
            main(["make-data", "--out", out, "--num", "3"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "error:" in err and ("empty path" if not name else "is a file") in err
        assert (tmp_path / "file").read_text() == "x"
