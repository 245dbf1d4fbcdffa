"""Training: deterministic, resumable after a kill, data-parallel through ``torchrun``.

Determinism and resumption rest on three rules:

1. The data order is a pure function of ``(seed, epoch)`` and every sample's
   augmentation a pure function of ``(seed, epoch, index)`` (the sampler hands
   ``(index, epoch)`` pairs to the data set), so any step's batch can be rebuilt.
2. A checkpoint stores the number of optimisation steps done; resuming restarts the
   data stream at exactly that step: no step is lost or repeated.
3. Checkpoints are written atomically (a temporary file, then a rename), so a kill
   during a write leaves the previous checkpoint intact. They hold tensors and plain
   data only and load with ``torch.load(..., weights_only=True)``.

The metrics log holds each step exactly once whatever the kill: on start it is cut
back to the checkpoint's step (to nothing without a checkpoint, and a line cut short
by the kill is dropped), and an evaluation due at the checkpoint's step whose record
is missing (a kill during the final evaluation) is run again before training goes on.
A batch with a non-finite value is refused before it reaches the network.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Dataset, Sampler

from handdgp.config import ExperimentConfig
from handdgp.net.model import HandDGPNet
from handdgp.objective import training_losses

__all__ = ["EpochSampler", "TrainingComponents", "load_checkpoint", "train"]

CHECKPOINT = "checkpoint.pt"
FINAL_MODEL = "model.pt"
METRICS = "metrics.jsonl"


@dataclass
class TrainingComponents:
    """What :func:`train` needs besides the configuration."""

    model: HandDGPNet
    faces: Tensor
    train_set: Dataset
    test_set: Dataset | None = None


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(index, epoch)`` pairs for one rank, from a given step onwards, forever.

    Each epoch is a permutation drawn from ``seed`` and the epoch number; the
    ``world`` ranks take interleaved slices of it, trimmed so that every rank
    makes the same number of full batches.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        seed: int,
        *,
        rank: int = 0,
        world: int = 1,
        start_step: int = 0,
    ) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world, self.start_step = rank, world, start_step
        self.steps_per_epoch = size // (batch_size * world)
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"data set of {size} samples is smaller than one global batch "
                f"({batch_size} x {world} ranks)"
            )

    def epoch_order(self, epoch: int) -> Tensor:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.size, generator=gen)
        return order[self.rank :: self.world][: self.steps_per_epoch * self.batch_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, offset = divmod(self.start_step, self.steps_per_epoch)
        skip = offset * self.batch_size
        while True:
            for index in self.epoch_order(epoch)[skip:].tolist():
                yield index, epoch
            epoch, skip = epoch + 1, 0


def _distributed() -> tuple[int, int]:
    """Initialise the process group when launched by ``torchrun``; (rank, world)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint or shipped model safely (``weights_only=True``: no code runs)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def _learning_rate(config: ExperimentConfig, step: int, total_steps: int) -> float:
    """Linear warm-up over ``warmup_steps``, then a cosine to zero at ``total_steps``."""
    warmup = min(1.0, (step + 1) / max(1, config.train.warmup_steps))
    return config.train.lr * warmup * 0.5 * (1.0 + math.cos(math.pi * step / max(1, total_steps)))


def one_thread_per_worker(worker_id: int) -> None:
    """A data-loader worker's OpenCV runs on one thread: the workers are the parallelism.

    OpenCV otherwise starts a thread per core in every worker process (PyTorch already
    limits its own threads there): 16 workers on 16 cores would run 256 resize threads.
    """
    import cv2

    cv2.setNumThreads(1)


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()
    }


def warm_start(model: nn.Module, state: dict[str, Tensor]) -> tuple[list[str], list[str]]:
    """Load a stage's weights into ``model`` where names match; return what did not.

    A new stage may add modules (a stride-4 keypoint head, a root-depth head) or
    drop them (no weight head in an ablation): those start from their own
    initialisation, or are left out. A tensor whose shape differs raises.

    Returns:
        ``(new, unused)``: parameter names initialised afresh, and names in
        ``state`` the model has no place for. Both are printed.
    """
    new, unused = model.load_state_dict(state, strict=False)
    for label, names in (("initialised afresh", new), ("not used", unused)):
        if names:
            print(f"warm start: {len(names)} tensors {label}: {', '.join(names)}", flush=True)
    return list(new), list(unused)


def train(
    config: ExperimentConfig,
    run_dir: str | Path,
    components: TrainingComponents,
    *,
    stop_after: int | None = None,
    evaluate: Callable[[nn.Module, Dataset], dict[str, float]] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume training) a model; returns a summary of the run.

    Args:
        config: the experiment.
        run_dir: where the config, ``metrics.jsonl``, checkpoints and plots go.
            If it holds a checkpoint, training resumes from it.
        components: model, mesh faces, data sets.
        stop_after: stop after this many total steps without a final checkpoint,
            as a kill would (for tests).
        evaluate: called on rank 0 every ``eval_every`` steps and at the end with
            the bare model and the test set; its metrics are logged.
        progress: show a tqdm progress bar on rank 0.

    Returns:
        ``{"steps": steps done, "total_steps": ..., "losses": last running means}``.
    """
    rank, world = _distributed()
    run_dir = Path(run_dir)
    device = torch.device(config.train.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2, default=list))

    model = components.model.to(device)
    faces = components.faces.to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay
    )
    start_step = 0
    checkpoint_path = run_dir / CHECKPOINT
    state = None
    if checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_step = int(state["step"])
    elif config.train.init_from:
        warm_start(model, load_checkpoint(config.train.init_from, map_location=device)["model"])
    average = _moving_average(model, config.train.ema_decay)
    if average is not None and state is not None and "average" in state:
        average.load_state_dict(state["average"])  # (else it starts from the resumed weights)
    shipped = model if average is None else average.module
    evaluated = _truncate_metrics(run_dir / METRICS, start_step) if rank == 0 else False

    sampler = EpochSampler(
        len(components.train_set),
        config.train.batch_size,
        config.train.seed,
        rank=rank,
        world=world,
        start_step=start_step,
    )
    total_steps = config.train.epochs * sampler.steps_per_epoch
    if config.train.max_steps is not None:
        total_steps = min(total_steps, config.train.max_steps)
    end_step = total_steps if stop_after is None else min(total_steps, stop_after)
    loader = DataLoader(
        components.train_set,
        batch_size=config.train.batch_size,
        sampler=sampler,
        num_workers=config.train.num_workers,
        persistent_workers=False,
        drop_last=True,
        worker_init_fn=one_thread_per_worker,
    )
    trained: nn.Module = model
    if world > 1:
        trained = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    # bf16 wherever the device has it (the CPU stages' numerics); float16 with loss
    # scaling on older GPUs.
    amp_dtype = (
        torch.bfloat16
        if device.type != "cuda" or torch.cuda.is_bf16_supported()
        else torch.float16
    )
    autocast = (
        torch.autocast(device.type, dtype=amp_dtype)
        if config.train.amp
        else contextlib.nullcontext()
    )
    scaler = torch.amp.GradScaler(enabled=config.train.amp and amp_dtype == torch.float16)

    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=start_step, desc=config.name, dynamic_ncols=True)
    log = (run_dir / METRICS).open("a") if rank == 0 else None
    losses = _LossLog(log)
    step = start_step
    batches = iter(loader)
    model.train()
    try:
        if evaluate is not None and start_step > 0 and _eval_due(config, start_step, total_steps):
            if world > 1:
                flag = [evaluated]
                dist.broadcast_object_list(flag, src=0)
                evaluated = flag[0]
            if not evaluated:  # killed during this evaluation: its record was lost
                _evaluate(shipped, components, evaluate, log, start_step, rank, world)
        while step < end_step:
            cpu_batch = next(batches)
            _check_finite_batch(cpu_batch, step + 1)
            batch = _to_device(cpu_batch, device)
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(config, step, total_steps)
            with autocast:
                prediction = trained(batch["image"], batch["intrinsics"])
            total, terms = training_losses(
                prediction,
                batch,
                faces,
                config.loss,
                config.net.image_size,
                camera_space_scale=config.loss.camera_space_scale(step / total_steps),
            )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            if config.train.grad_clip > 0:
                scaler.unscale_(optimizer)
                terms["grad_norm"] = nn.utils.clip_grad_norm_(
                    model.parameters(), config.train.grad_clip
                ).detach()
            scaler.step(optimizer)
            scaler.update()
            if average is not None:
                average.update_parameters(model)
            step += 1

            losses.add(step, optimizer.param_groups[0]["lr"], {"loss": total, **terms})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    {k: f"{v:.4f}" for k, v in losses.running.items() if k != "normal"}
                )
            if step % config.train.checkpoint_every == 0 or step == total_steps:
                losses.flush()
                if log is not None:
                    log.flush()  # a hard kill must not lose log lines the checkpoint covers
                _save(model, average, optimizer, config, step, checkpoint_path, rank)
            if evaluate is not None and _eval_due(config, step, total_steps):
                losses.flush()
                _evaluate(shipped, components, evaluate, log, step, rank, world)
    finally:
        losses.flush()
        if bar is not None:
            bar.close()
        if log is not None:
            log.close()

    if step == total_steps and rank == 0:
        _atomic_save(
            {"model": shipped.state_dict(), "config": config.to_dict(), "step": step},
            run_dir / FINAL_MODEL,
        )
        plot_curves(run_dir)
    if world > 1:
        # DDP re-broadcasts buffers (BatchNorm statistics) from rank 0 at each forward;
        # do it once more so every replica ends identical to the saved model.
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)
        dist.barrier()
        dist.destroy_process_group()
    return {"steps": step, "total_steps": total_steps, "losses": losses.running}


class _LossLog:
    """The steps' records of ``metrics.jsonl`` and running means, read one step late.

    Reading a step's loss terms waits for the device to finish that step. Read after the
    next step has been queued, the wait overlaps that step's work instead of leaving a
    GPU idle. :meth:`flush` reads and writes the pending step now: before a checkpoint
    or an evaluation, whose records must follow it, and at the end.
    """

    def __init__(self, file: Any) -> None:
        self.file, self.running = file, {}
        self.pending: tuple[int, float, list[str], Tensor] | None = None

    def add(self, step: int, lr: float, values: dict[str, Tensor]) -> None:
        stacked = torch.stack([v.detach().float() for v in values.values()])
        self.flush()
        self.pending = (step, lr, list(values), stacked)

    def flush(self) -> None:
        if self.pending is None:
            return
        step, lr, names, stacked = self.pending
        self.pending = None
        numbers = dict(zip(names, stacked.tolist(), strict=True))  # (one read per step)
        for name, value in numbers.items():
            self.running[name] = 0.9 * self.running.get(name, value) + 0.1 * value
        if self.file is not None:
            self.file.write(json.dumps({"step": step, "lr": lr, **numbers}) + "\n")


def _eval_due(config: ExperimentConfig, step: int, total_steps: int) -> bool:
    return step % config.train.eval_every == 0 or step == total_steps


def _truncate_metrics(path: Path, step: int) -> bool:
    """Keep only the log records of steps up to ``step`` (the checkpoint's; 0: none).

    Records after it will be redone; a line cut short by a kill is dropped. The
    log is rewritten atomically. Returns whether an evaluation record of ``step``
    itself is kept.
    """
    if not path.exists():
        return False
    kept, evaluated = [], False
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
            record_step = int(record["step"])
        except (ValueError, TypeError, KeyError):
            continue  # the tail of a write a kill interrupted
        if record_step <= step:
            kept.append(line)
            evaluated = evaluated or (record_step == step and "eval" in record)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)
    return evaluated


def _check_finite_batch(batch: dict[str, Any], step: int) -> None:
    """Refuse a batch holding NaN or Inf (checked on the host, before the network).

    Raises:
        ValueError: naming the step, the field and the samples' indices.
    """
    for name, value in batch.items():
        if isinstance(value, Tensor) and value.is_floating_point():
            finite = torch.isfinite(value.reshape(len(value), -1)).all(dim=1)
            if not bool(finite.all()):
                rows = (~finite).nonzero().flatten().tolist()
                index = batch.get("index")
                where = (
                    f"batch rows {rows}"
                    if index is None
                    else f"data set samples {[int(index[r]) for r in rows]}"
                )
                raise ValueError(
                    f"training step {step}: non-finite {name} (NaN or Inf) in {where}; "
                    "check those samples' files"
                )


def _moving_average(model: nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights and buffers (None if decay is 0).

    Its first update copies the weights (a warm start's, on a new stage). Integer and
    boolean buffers (the spiral indices, BatchNorm's step count) are copied, not averaged:
    torch's own EMA function would round their averages back into integers.
    """
    if decay == 0:
        return None

    @torch.no_grad()
    def update(averaged: list[Tensor], current: list[Tensor], _: Tensor) -> None:
        # torch groups the tensors by dtype: one group is all floating or all not.
        if averaged[0].is_floating_point():
            torch._foreach_lerp_(averaged, current, 1.0 - decay)
        else:
            torch._foreach_copy_(averaged, current)

    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)


def _save(
    model: nn.Module,
    average: AveragedModel | None,
    optimizer: torch.optim.Optimizer,
    config: ExperimentConfig,
    step: int,
    path: Path,
    rank: int,
) -> None:
    if rank != 0:
        return
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "config": config.to_dict(),
        "step": step,
    }
    if average is not None:
        state["average"] = average.state_dict()
    _atomic_save(state, path)


def _evaluate(
    model: nn.Module,
    components: TrainingComponents,
    evaluate: Callable,
    log: Any,
    step: int,
    rank: int,
    world: int,
) -> None:
    if rank == 0 and components.test_set is not None:
        model.eval()
        with torch.no_grad():
            metrics = evaluate(model, components.test_set)
        model.train()
        if log is not None:
            log.write(json.dumps({"step": step, "eval": metrics}) + "\n")
            log.flush()
    if world > 1:
        dist.barrier()


def read_metrics(run_dir: str | Path) -> tuple[list[dict], list[dict]]:
    """Training records and evaluation records of a run's ``metrics.jsonl``."""
    train_records, eval_records = [], []
    path = Path(run_dir) / METRICS
    if path.exists():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            (eval_records if "eval" in record else train_records).append(record)
    return train_records, eval_records


def term_colours(count: int) -> list[tuple[float, float, float]]:
    """``count`` RGB colours, all different for up to 20 terms.

    The strong half of matplotlib's ``tab20`` first, then the light half: the default
    cycle repeats after ten, and a run logs twelve terms.

    Example:
        >>> len(set(term_colours(12)))
        12
    """
    from matplotlib import colormaps

    palette = colormaps["tab20"].colors
    order = [*palette[0::2], *palette[1::2]]
    return [order[i % len(order)] for i in range(count)]


def plot_curves(run_dir: str | Path) -> Path:
    """Write ``loss_curves.png``: every loss term (smoothed) and the evaluation errors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    train_records, eval_records = read_metrics(run_dir)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    names = [k for k in (train_records[0] if train_records else {}) if k not in ("step", "lr")]
    window = max(1, len(train_records) // 50)
    for name, colour in zip(names, term_colours(len(names)), strict=True):
        steps = [r["step"] for r in train_records]
        values = torch.tensor([r[name] for r in train_records])
        smooth = values.unfold(0, window, 1).mean(-1) if len(values) >= window else values
        axes[0].plot(steps[window - 1 :], smooth.tolist(), label=name, color=colour)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("step")
    axes[0].set_title("training losses")
    if names:
        axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for key in sorted({k for r in eval_records for k in r["eval"] if k.endswith("_mm")}):
        axes[1].plot(
            [r["step"] for r in eval_records],
            [r["eval"][key] for r in eval_records],
            "o-",
            label=key,
        )
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("mm")
    axes[1].set_title("held-out errors")
    if eval_records:
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    out = run_dir / "loss_curves.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
