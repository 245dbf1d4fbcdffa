"""The benchmark's peers agree on one problem, and the harness runs end to end."""

import json

import pytest
import torch

from tests.benchmarks._load import bench_translation, peers


def _solve(name, problem):
    args = (problem.points3d, problem.points2d, problem.intrinsics, problem.weights)
    return peers.PEERS[name].fn(*args)


class TestPeersAgree:
    def test_weighted_dlt_peers_agree_on_noisy_problem(self):
        # lstsq, solve and dgpgeom minimise the same weighted objective
        p = peers.make_problems(8, seed=11)
        ours = _solve("dgpgeom", p)
        for name in ("lstsq", "solve"):
            assert peers.translation_error(_solve(name, p), ours) < 1e-9, name

    def test_all_peers_recover_noise_free_translation(self):
        pytest.importorskip("cv2")
        pytest.importorskip("scipy")
        p = peers.make_problems(4, noise_px=0.0, seed=12)
        tolerances = {  # metres; SLSQP stops at its default ftol, OpenCV also fits rotation
            "dgpgeom": 1e-9,
            "lstsq": 1e-9,
            "solve": 1e-9,
            "kornia": 1e-6,
            "slsqp": 2e-3,
            "cv2_epnp": 1e-4,
            "cv2_iterative": 1e-4,
        }
        for name, tol in tolerances.items():
            t = _solve(name, p)
            assert t.shape == (4, 3) and t.dtype == torch.float64, name
            assert peers.translation_error(t, p.translation) < tol, name


def test_harness_runs_and_reports(tmp_path, capsys):
    pytest.importorskip("cv2")
    pytest.importorskip("scipy")
    out = tmp_path / "run.json"
    result = bench_translation.main(
        ["--quick", "--no-compile", "--sizes", "1", "8", "--dtypes", "float64",
         "--repeats", "1", "--sample", "2", "--min-sample-seconds", "0.001",
         "--output", str(out)]
    )  # fmt: skip
    table = capsys.readouterr().out
    for label in (
        "dgpgeom (eager)",
        "lstsq",
        "cv2.solvePnP EPnP",
        "SLSQP",
        "memcpy floor",
        "Targets",
    ):
        assert label in table
    saved = json.loads(out.read_text())
    assert out.with_suffix(".md").read_text() == table
    assert saved["environment"]["torch_threads"] == 1
    cells = {(c["peer"], c["batch"], c["mode"]): c for c in saved["cells"]}
    assert cells[("cv2_epnp", 8, "forward")]["status"] == "extrapolated"  # timed on 2 of 8
    assert cells[("cv2_epnp", 8, "forward+backward")]["status"] == "n/a"
    assert cells[("dgpgeom", 8, "forward+backward")]["seconds_per_problem"] > 0
    assert saved["aten_ops_b1"]["dgpgeom"]["forward"]["total"] > 0
    # 4 general targets, then 5 for the small batch and the plain-autograd prototype
    assert len(saved["targets"]) == len(result["targets"]) == 9
