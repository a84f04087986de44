"""What a run tells: its opening lines, one line per epoch, the stop notice, and its :class:`TrainResult`.

The lines go to the person watching (``trainers.progress.Reporter``, rank 0); the result is
what ``train`` returns and ``normexport train`` prints (a summary, or ``--json``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainers import records
from trainers.distributed import describe_device
from trainers.epochs import EpochLoop
from trainers.procrustes import deviation_report
from trainers.recipes import Schedule
from trainers.settings import RunSettings
from trainers.state import BEST, LAST, Position

_DECAY = {
    "all": "all parameters",
    "conv_linear_weights": "conv and linear weights",
    "multidim": "non-1-D tensors",
}


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        run_dir: The run directory.
        arch: Model name.
        dataset: Data set name.
        recipe: Recipe name.
        epochs: Epochs the run is configured for.
        epochs_completed: Epochs finished (all of them unless interrupted).
        best_top1: Best test top-1 accuracy in percent (``None`` before the first epoch ends).
        best_epoch: The (1-based) epoch of ``best_top1``.
        last_top1: Test top-1 of the last completed epoch.
        device: The device trained on, in words.
        precision: ``float32`` or the mixed-precision mode.
        channels_last: Whether the channels-last memory format was used.
        world_size: Number of processes.
        images_per_s: Training throughput of the last epoch, over all processes.
        interrupted: Stopped by SIGINT/SIGTERM; ``last.pt`` resumes where it stopped.
        checkpoints: Paths of ``last.pt`` and ``best.pt`` (``None`` when not written yet).
        curves: Path of ``curves.png``, or ``None`` (no matplotlib).
        procrustes: Mode, frequency, projection count and the current deviation per layer.
        rank: This process's rank (0 when not distributed).
    """

    run_dir: Path
    arch: str
    dataset: str
    recipe: str
    epochs: int
    epochs_completed: int
    best_top1: float | None
    best_epoch: int | None
    last_top1: float | None
    device: str
    precision: str
    channels_last: bool
    world_size: int
    images_per_s: float | None
    interrupted: bool
    checkpoints: dict[str, str | None] = field(default_factory=dict)
    curves: str | None = None
    procrustes: dict[str, Any] | None = None
    rank: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible form (``normexport train --json``)."""
        data = asdict(self)
        data["run_dir"] = str(self.run_dir)
        return data

    def summary(self) -> str:
        """A few human lines: what was reached, on what, and where the files are."""
        best = (
            f"best test top-1 {self.best_top1:.2f}% (epoch {self.best_epoch}), last {self.last_top1:.2f}%"
            if self.best_top1 is not None
            else "no epoch completed yet"
        )
        state = "interrupted at" if self.interrupted else "trained"
        processes = f"{self.world_size} process{'es' if self.world_size != 1 else ''}"
        lines = [
            f"{state} {self.arch} on {self.dataset} ({self.recipe} recipe), "
            f"{self.epochs_completed}/{self.epochs} epochs: {best}",
            f"  device {self.device}, precision {self.precision}, "
            f"channels_last {'on' if self.channels_last else 'off'}, {processes}",
        ]
        if self.images_per_s is not None:
            lines.append(f"  training throughput {self.images_per_s:,.0f} images/s (last epoch)")
        if self.procrustes is not None:
            devs = ", ".join(f"{k} {v['max_rel_dev']:.2g}" for k, v in self.procrustes["deviation"].items())
            lines.append(
                f"  Procrustes ({self.procrustes['mode']}): {self.procrustes['projections']} projections; "
                f"singular-value deviation now {devs}"
            )
        files = ["config.json", "last.pt"] + (["best.pt"] if self.checkpoints.get("best") else [])
        files += ["metrics.jsonl"] + (["curves.png"] if self.curves else [])
        lines.append(f"  run directory {self.run_dir}: {', '.join(files)}")
        if self.interrupted:
            lines.append(
                f"  resume with: normexport train {self.arch} --dataset {self.dataset} "
                f"--out {self.run_dir} --resume"
            )
        return "\n".join(lines)


def describe_schedule(schedule: Schedule, lr: float) -> str:
    """``"0.1, 0.01 from epoch 150, 0.001 from epoch 225"``: the main group's rate over the run."""
    steps = zip(schedule.milestones, schedule.factors[1:], strict=True)
    return ", ".join(
        [f"{lr * schedule.factors[0]:.3g}"] + [f"{lr * f:.3g} from {schedule.unit} {m}" for m, f in steps]
    )


def _optimizer(settings: RunSettings) -> str:
    """``SGD lr 0.1 momentum 0.9`` (Nesterov said when on), or ``AdamW lr 0.001``."""
    if settings.optimizer == "adamw":
        return f"AdamW lr {settings.lr:g} (decoupled decay)"
    nesterov = " (Nesterov)" if settings.recipe.nesterov else ""
    return f"SGD lr {settings.lr:g} momentum {settings.recipe.momentum:g}{nesterov}"


def opening_lines(
    settings: RunSettings, position: Position, *, parameters: int, backend: str | None
) -> list[str]:
    """What is trained, how, where, and from where it continues.

    Args:
        settings: The run's settings.
        position: Where the run starts (past the start when resuming).
        parameters: The model's parameter count.
        backend: The DDP backend (``None`` in a single process).
    """
    s, data, recipe = settings, settings.data, settings.recipe
    lines = [
        f"training {s.arch} ({s.family}, {parameters:,} parameters) on {data.name}: "
        f"{data.num_train:,} train / {data.num_test:,} test images, {data.num_classes} classes",
        f"recipe {recipe.name}: {s.epochs} epoch{'s' if s.epochs != 1 else ''}, "
        f"batch {s.batch_size}, {_optimizer(s)}, "
        f"weight decay {s.weight_decay:g} on {_DECAY[recipe.decay_on]}, "
        f"lr {describe_schedule(s.schedule, s.lr)}; augmentation: {data.augmentation}",
    ]
    if s.procrustes_mode:
        lines.append(
            f"Procrustes projection: {s.procrustes_mode}, after each step with probability {s.regul_freq:g}"
        )
    ddp = f", DDP over {s.world_size} processes ({backend})" if s.world_size > 1 else ""
    lines.append(
        f"device {describe_device(s.device)}, precision {s.precision}, "
        f"channels_last {'on' if s.channels_last else 'off'}{ddp}"
    )
    if s.resumed is None:
        lines.append(f"run directory {s.run_dir}")
    else:
        step = f", step {position.batch_in_epoch + 1}" if position.batch_in_epoch else ""
        lines.append(f"resuming {s.run_dir} at epoch {position.epoch + 1}{step}")
    if not records.plot_available():
        lines.append(f"note: curves.png is skipped: {records.PLOT_HINT}")
    return lines


def epoch_line(row: dict[str, Any], epochs: int, *, improved: bool) -> str:
    """One completed epoch: losses, accuracies, rate, speed, and the projections (ProcResNet)."""
    line = (
        f"epoch {row['epoch']}/{epochs}  "
        f"train loss {row['train_loss']:.4f} acc {row['train_top1']:.1f}%  "
        f"test loss {row['test_loss']:.4f} acc {row['test_top1']:.2f}%  lr {row['lr']:.3g}  "
        f"{row['images_per_s']:,.0f} img/s  {row['train_seconds']:.1f}+{row['eval_seconds']:.1f} s"
    )
    if "projections" in row:
        devs = [v for k, v in row.items() if k.startswith("procrustes_dev_")]
        line += f"  projections {row['projections']} (max dev {max(devs):.2g})"
    return line + ("  [best]" if improved else "")


def stopped_line(settings: RunSettings, position: Position) -> str:
    """Where a stopped run stopped, and the command that resumes it."""
    where = (
        f"in epoch {position.epoch + 1} after step {position.batch_in_epoch}"
        if position.batch_in_epoch
        else f"after epoch {position.epoch}"
    )
    return (
        f"stopped {where}; {settings.run_dir / LAST} resumes it: "
        f"normexport train {settings.arch} --dataset {settings.data.name} "
        f"--out {settings.run_dir} --resume"
    )


def result(
    settings: RunSettings,
    loop: EpochLoop,
    *,
    interrupted: bool,
    images_per_s: float | None,
    curves: Path | None,
) -> TrainResult:
    """The run's :class:`TrainResult` as it stands."""
    learner, position = loop.learner, loop.position
    procrustes = None
    if learner.procrustes is not None:
        procrustes = {
            "mode": settings.procrustes_mode,
            "regul_freq": settings.regul_freq,
            "projections": learner.procrustes.projections,
            "deviation": deviation_report(learner.model),
        }
    run_dir = settings.run_dir
    best_path = run_dir / BEST
    return TrainResult(
        run_dir=run_dir,
        arch=settings.arch,
        dataset=settings.data.name,
        recipe=settings.recipe.name,
        epochs=settings.epochs,
        epochs_completed=position.epoch,
        best_top1=position.best["top1"],
        best_epoch=position.best["epoch"],
        last_top1=position.history[-1]["test_top1"] if position.history else None,
        device=describe_device(settings.device),
        precision=settings.precision,
        channels_last=settings.channels_last,
        world_size=settings.world_size,
        images_per_s=images_per_s,
        interrupted=interrupted,
        checkpoints={"last": str(run_dir / LAST), "best": str(best_path) if best_path.exists() else None},
        curves=str(curves) if curves else None,
        procrustes=procrustes,
        rank=loop.topology.rank,
    )
