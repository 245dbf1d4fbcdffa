"""Training: a loss that falls, resumption with no lost or repeated step, safe checkpoints."""

import itertools
import json
import math

import pytest
import torch

from handdgp.config import ExperimentConfig, TrainConfig
from handdgp.train import (
    EpochSampler,
    TrainingComponents,
    load_checkpoint,
    one_thread_per_worker,
    train,
)

from .toy import ToyCrops, toy_hierarchy, toy_net


def toy_config(**train_overrides):
    config = ExperimentConfig(name="toy")
    config.net.image_size, config.net.width, config.net.decoder_channels = 32, 0.125, (16, 8)
    config.train = TrainConfig(
        epochs=2, batch_size=4, lr=1e-3, checkpoint_every=2, eval_every=1000, **train_overrides
    )
    return config


def components(seed=0):
    torch.manual_seed(seed)
    return TrainingComponents(toy_net(), toy_hierarchy()[3], ToyCrops(size=24))


class TestEpochSampler:
    def test_each_epoch_is_a_permutation_and_start_step_resumes_the_stream(self):
        sampler = EpochSampler(10, 3, seed=1)
        stream = list(zip(range(12), iter(sampler), strict=False))
        epoch0 = [i for _, (i, e) in stream if e == 0]
        assert len(epoch0) == 9 and len(set(epoch0)) == 9
        resumed = EpochSampler(10, 3, seed=1, start_step=2)
        assert [x for _, x in zip(range(6), iter(resumed), strict=False)] == [
            x for _, x in stream[6:12]
        ]

    def test_ranks_partition_the_epoch(self):
        a, b = (
            EpochSampler(12, 2, seed=0, rank=r, world=2).epoch_order(3).tolist() for r in (0, 1)
        )
        assert not set(a) & set(b) and len(a) == len(b) == 6

    def test_too_small_a_data_set_is_refused(self):
        with pytest.raises(ValueError, match="smaller than one global batch"):
            EpochSampler(3, 4, seed=0)


class TestTrain:
    @pytest.mark.parametrize("ema_decay", [0.0, 0.5])
    def test_resume_after_a_kill_loses_and_repeats_no_step(self, tmp_path, ema_decay):
        config = toy_config(ema_decay=ema_decay)
        straight = train(config, tmp_path / "straight", components(), progress=False)
        train(config, tmp_path / "killed", components(), stop_after=3, progress=False)
        # A fresh process: a new, differently initialised model picks up the checkpoint.
        resumed = train(config, tmp_path / "killed", components(seed=7), progress=False)
        assert straight["steps"] == resumed["steps"] == 12
        a = load_checkpoint(tmp_path / "straight" / "model.pt")["model"]
        b = load_checkpoint(tmp_path / "killed" / "model.pt")["model"]
        for name in a:
            assert torch.equal(a[name], b[name]), name
        steps = [
            json.loads(line)["step"]
            for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
        ]
        assert steps == list(range(1, 13))  # step 3, lost with the kill, was redone once

    def test_the_log_is_on_disk_before_each_checkpoint(self, tmp_path, monkeypatch):
        # A hard kill (SIGKILL) loses what the log buffers; what a checkpoint covers must
        # already be written, or resuming leaves a gap in metrics.jsonl.
        import handdgp.train as training

        logged_at_save = []
        save = training._save

        def spy(model, average, optimizer, config, step, path, rank):
            lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
            logged_at_save.append((step, len(lines)))
            save(model, average, optimizer, config, step, path, rank)

        monkeypatch.setattr(training, "_save", spy)
        train(toy_config(max_steps=4), tmp_path / "run", components(), progress=False)
        assert logged_at_save == [(2, 2), (4, 4)]

    def test_loss_falls_and_artifacts_are_written(self, tmp_path):
        config = toy_config(max_steps=30)
        config.train.epochs = 10
        config.loss.camera_space_ramp = (0.0, 0.0)  # every term from the start
        summary = train(config, tmp_path, components(), progress=False)
        records = [
            json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
        ]
        first = sum(r["loss"] for r in records[:5]) / 5
        last = sum(r["loss"] for r in records[-5:]) / 5
        assert summary["steps"] == 30 and last < first
        assert (tmp_path / "loss_curves.png").stat().st_size > 1000
        assert json.loads((tmp_path / "config.json").read_text())["name"] == "toy"
        state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
        assert state["step"] == 30 and set(state) == {"model", "optimizer", "config", "step"}

    def test_the_moving_average_is_what_model_pt_holds(self, tmp_path, monkeypatch):
        import handdgp.train as training

        decay, steps = 0.75, 5
        raw = []  # the trained weights after every step (a checkpoint at every step)
        save = training._save

        def spy(model, average, optimizer, config, step, path, rank):
            raw.append({k: v.clone() for k, v in model.state_dict().items()})
            save(model, average, optimizer, config, step, path, rank)

        monkeypatch.setattr(training, "_save", spy)
        config = toy_config(max_steps=steps, ema_decay=decay)
        config.train.checkpoint_every = 1
        train(config, tmp_path, components(), progress=False)
        shipped = load_checkpoint(tmp_path / "model.pt")["model"]
        expected = dict(raw[0])
        for weights in raw[1:]:
            for name, value in weights.items():
                if value.is_floating_point():
                    expected[name] = decay * expected[name] + (1 - decay) * value
                else:
                    expected[name] = value
        assert len(raw) == steps
        moved = 0
        for name, value in shipped.items():
            torch.testing.assert_close(value, expected[name], rtol=1e-5, atol=1e-6)
            moved += not torch.equal(value, raw[-1][name])
        assert moved > 0  # not the last step's weights
        resume = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
        for name, value in raw[-1].items():  # the checkpoint keeps training's own weights
            assert torch.equal(resume["model"][name], value), name

    def test_a_moving_average_can_start_on_a_resumed_run(self, tmp_path):
        train(toy_config(), tmp_path, components(), stop_after=2, progress=False)
        summary = train(toy_config(ema_decay=0.5), tmp_path, components(), progress=False)
        assert summary["steps"] == 12
        assert "average" in torch.load(tmp_path / "checkpoint.pt", weights_only=True)


class TestSchedule:
    def test_warm_up_then_cosine_to_zero(self):
        from handdgp.train import _learning_rate

        config = toy_config(warmup_steps=10)
        config.train.lr = 1e-3
        lrs = [_learning_rate(config, step, 100) for step in range(100)]
        assert lrs[0] == pytest.approx(1e-4 * 0.5 * (1 + math.cos(0.0)))
        assert max(lrs) == pytest.approx(1e-3, rel=0.03) and lrs.index(max(lrs)) == 9
        assert all(b <= a for a, b in itertools.pairwise(lrs[9:]))
        assert lrs[-1] < 1e-6

    def test_camera_space_terms_are_ramped_in(self):
        loss = ExperimentConfig().loss
        start, end = loss.camera_space_ramp
        assert loss.camera_space_scale(0.0) == 0.0 and loss.camera_space_scale(start) == 0.0
        assert 0.0 < loss.camera_space_scale((start + end) / 2) < 1.0
        assert loss.camera_space_scale(end) == 1.0 and loss.camera_space_scale(1.0) == 1.0

    def test_init_from_starts_a_stage_from_saved_weights(self, tmp_path):
        train(toy_config(max_steps=2), tmp_path / "first", components(), progress=False)
        first = torch.load(tmp_path / "first" / "model.pt", weights_only=True)["model"]
        config = toy_config(max_steps=0, init_from=str(tmp_path / "first" / "model.pt"))
        fresh = components(seed=5)
        train(config, tmp_path / "second", fresh, progress=False)
        for name, value in fresh.model.state_dict().items():
            torch.testing.assert_close(value, first[name])


def _log(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return [r["step"] for r in records if "eval" not in r], [r["step"] for r in records if "eval" in r]


class TestKillAndResume:
    """Each state a kill can leave; resuming must log every step exactly once."""

    def test_kill_during_the_first_checkpoint(self, tmp_path, monkeypatch):
        import handdgp.train as training

        config = toy_config()
        config.train.checkpoint_every = 4
        atomic_save = training._atomic_save

        def killed(obj, path):
            path.with_suffix(path.suffix + ".tmp").write_bytes(b"half a checkpoint")
            raise KeyboardInterrupt

        monkeypatch.setattr(training, "_atomic_save", killed)
        with pytest.raises(KeyboardInterrupt):
            train(config, tmp_path, components(), progress=False)
        assert _log(tmp_path)[0] == [1, 2, 3, 4] and not (tmp_path / "checkpoint.pt").exists()
        monkeypatch.setattr(training, "_atomic_save", atomic_save)
        train(config, tmp_path, components(), progress=False)
        assert _log(tmp_path)[0] == list(range(1, 13))

    def test_kill_during_the_final_evaluation(self, tmp_path):
        config = toy_config()
        parts = TrainingComponents(toy_net(), toy_hierarchy()[3], ToyCrops(size=24), ToyCrops(8))
        calls = []

        def killed_at_the_end(model, dataset):
            calls.append(1)
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            train(config, tmp_path, parts, evaluate=killed_at_the_end, progress=False)
        assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 12 and calls
        assert _log(tmp_path) == (list(range(1, 13)), [])
        train(config, tmp_path, parts, evaluate=lambda m, d: {"x_mm": 1.0}, progress=False)
        assert _log(tmp_path) == (list(range(1, 13)), [12])
        assert (tmp_path / "model.pt").exists()
        # A further rerun of the finished run neither repeats nor loses anything.
        train(config, tmp_path, parts, evaluate=lambda m, d: {"x_mm": 2.0}, progress=False)
        assert _log(tmp_path) == (list(range(1, 13)), [12])

    def test_kill_mid_line(self, tmp_path):
        config = toy_config()
        train(config, tmp_path, components(), stop_after=3, progress=False)
        with (tmp_path / "metrics.jsonl").open("a") as log:
            log.write('{"step": 4, "lo')  # a write cut short
        train(config, tmp_path, components(), progress=False)
        assert _log(tmp_path)[0] == list(range(1, 13))

    def test_a_fresh_run_starts_a_fresh_log(self, tmp_path):
        (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 5.0}\n')
        train(toy_config(max_steps=2), tmp_path, components(), progress=False)
        assert _log(tmp_path)[0] == [1, 2]


class _NaNCrops(ToyCrops):
    def __getitem__(self, key):
        item = super().__getitem__(key)
        item["image"][0, 0, 0] = float("nan")
        item["index"] = key[0]
        return item


class TestNonFiniteBatch:
    def test_refused_before_the_network(self, tmp_path, monkeypatch):
        net = toy_net()
        monkeypatch.setattr(net, "forward", lambda *a: pytest.fail("the network ran"))
        parts = TrainingComponents(net, toy_hierarchy()[3], _NaNCrops(size=24))
        with pytest.raises(ValueError, match=r"step 1: non-finite image .* data set samples \["):
            train(toy_config(), tmp_path, parts, progress=False)


class TestDistributed:
    def test_two_gloo_processes_keep_identical_replicas(self, tmp_path):
        import os
        import subprocess
        import sys
        from pathlib import Path

        worker = Path(__file__).with_name("ddp_worker.py")
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(worker),
            str(tmp_path),
        ]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
        # 16 samples, batch 2 per rank, 2 ranks: 4 steps of one epoch.
        assert a["steps"] == b["steps"] == 4
        initial = toy_net().state_dict()
        changed = False
        for name, value in a["state"].items():
            assert torch.equal(value, b["state"][name]), name
            changed |= not torch.equal(value, initial[name])
        assert changed, "training did not change the weights"


class _OpenCVThreads(torch.utils.data.Dataset):
    def __len__(self):
        return 1

    def __getitem__(self, index):
        import cv2

        return cv2.getNumThreads()


def test_loader_workers_run_opencv_on_one_thread():
    import cv2

    before = cv2.getNumThreads()
    loader = torch.utils.data.DataLoader(
        _OpenCVThreads(), num_workers=1, worker_init_fn=one_thread_per_worker
    )
    assert [int(n) for n in loader] == [1]
    assert cv2.getNumThreads() == before  # the main process keeps its own setting


def test_loss_log_reads_each_step_once_one_step_late():
    import io

    from handdgp.train import _LossLog

    file = io.StringIO()
    log = _LossLog(file)
    log.add(1, 0.1, {"loss": torch.tensor(2.0), "edge": torch.tensor(1.0)})
    assert file.getvalue() == "" and log.running == {}  # not read while step 2 is queued
    log.add(2, 0.2, {"loss": torch.tensor(4.0), "edge": torch.tensor(3.0)})
    assert [json.loads(line)["step"] for line in file.getvalue().splitlines()] == [1]
    log.flush()
    log.flush()  # nothing left to write
    records = [json.loads(line) for line in file.getvalue().splitlines()]
    assert records == [
        {"step": 1, "lr": 0.1, "loss": 2.0, "edge": 1.0},
        {"step": 2, "lr": 0.2, "loss": 4.0, "edge": 3.0},
    ]
    assert log.running["loss"] == pytest.approx(0.9 * 2.0 + 0.1 * 4.0)
