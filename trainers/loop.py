"""The training loop: ``train(TrainConfig) -> TrainResult``.

One function for every family; the family's specifics come from its recipe
(``trainers.recipes``) and from two hooks: the Procrustes projection after each optimizer
step (ProcResNet) and the averaged tau gradient (tau-ResNet without BatchNorm).

Order of work, so that bad input fails before anything runs: resolve the model name, the run
directory (and on ``--resume`` the recorded run), the recipe, the device, the data set and its
classes; only then join the process group, build the model and train. Every epoch ends with
an evaluation on the test split and, on rank 0, ``last.pt``, ``best.pt`` (when the test
accuracy improved), ``metrics.jsonl`` and ``curves.png``.

SIGINT or SIGTERM (Ctrl-C, a scheduler's pre-emption) finishes the current step, saves a
``last.pt`` that resumes in the middle of the epoch, and returns with ``interrupted=True``;
a second Ctrl-C aborts at once (atomic writes leave no partial file).
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from normresnet_export.checkpoint import save_checkpoint
from normresnet_export.errors import CheckFailedError, InputError
from normresnet_export.models import count_parameters, create_model, model_info
from trainers import records
from trainers.config import TrainConfig, conflicts_with
from trainers.datasets import DataSource, load_data
from trainers.distributed import Communicator, Topology, describe_device, resolve_device
from trainers.optim import LRSchedule, average_tau_gradient, build_optimizer, main_lr
from trainers.procrustes import ProcrustesStep, deviation_report, summarise_deviation, supports_projection
from trainers.progress import Reporter
from trainers.recipes import Recipe, Schedule, default_recipe_name, get_recipe
from trainers.sampling import epoch_batches, test_batches
from trainers.state import BEST, CONFIG_FILE, LAST, Resumed, capture_rng, read_run, restore_rng, write_json
from trainers.transforms import sample_seed

_REFRESH_EVERY = 10  # steps between progress updates (each one synchronises the GPU)
_SYNC_STOP_EVERY = 10  # steps between checks, under DDP, whether any process was asked to stop


@dataclass(frozen=True)
class StepInfo:
    """Passed to ``train(..., on_step=...)`` after every optimizer step.

    Attributes:
        epoch: 0-based epoch.
        step: Steps taken in this epoch (1 after the first).
        steps: Steps in this epoch.
        global_step: Steps taken in the whole run.
    """

    epoch: int
    step: int
    steps: int
    global_step: int


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


def _ignore_sigint(_worker_id: int) -> None:
    # Data-loader workers must survive Ctrl-C: the main process finishes its step and saves first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _precision(amp: bool) -> str:
    return "float16 autocast + gradient scaling (AMP)" if amp else "float32"


def _describe_schedule(schedule: dict[str, Any], lr: float) -> str:
    """``"0.1, 0.01 from epoch 150, 0.001 from epoch 225"``: the main group's rate over the run."""
    unit = schedule["unit"]
    steps = zip(schedule["milestones"], schedule["factors"][1:], strict=True)
    return ", ".join(
        [f"{lr * schedule['factors'][0]:.3g}"] + [f"{lr * f:.3g} from {unit} {m}" for m, f in steps]
    )


class Trainer:
    """One training run; see the module docstring. Use :func:`train` unless you drive epochs yourself."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        on_step: Callable[[StepInfo], None] | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.request = config
        self.on_step = on_step
        self.topology = Topology.from_env()
        self.reporter = reporter or Reporter(enabled=config.progress and self.topology.is_main)
        self._stop = False
        self._prepare()

    # ------------------------------------------------------------------ preparation (no work yet)

    def _prepare(self) -> None:
        request = self.request
        self.info = model_info(request.arch)
        self.run_dir = request.out or Path("runs") / (
            f"{request.arch}-{request.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        self.resumed: Resumed | None = None
        recorded: dict[str, Any] = {}
        if request.resume:
            self.resumed = read_run(self.run_dir, request.arch)
            recorded = self.resumed.config
            conflicts = conflicts_with(request, recorded)
            if conflicts:
                raise InputError(
                    f"--resume: {self.run_dir} was started with other settings: {'; '.join(conflicts)}; "
                    "drop these options to continue the run as it was, or start a new run with another --out"
                )
        elif (self.run_dir / CONFIG_FILE).exists() or (self.run_dir / LAST).exists():
            raise InputError(
                f"{self.run_dir} already holds a run; pass --resume to continue it, or choose another --out"
            )
        self.recipe: Recipe = get_recipe(
            request.recipe or recorded.get("recipe") or default_recipe_name(request.arch)
        )

        def pick(name: str, default: Any) -> Any:
            value = getattr(request, name)
            if value is not None:
                return value
            return recorded.get(name, default)

        # The model's keywords: checked now by building its shape only (no memory, no init).
        kwargs = {**recorded.get("model_kwargs", {}), **request.model_kwargs}
        if request.tau is not None:
            if self.info.family != "tau-resnet":
                raise InputError(
                    f"--tau applies to tau-ResNets; {request.arch} is a {self.info.family} model"
                )
            kwargs["tau"] = request.tau
        kwargs.pop("num_classes", None)
        with torch.device("meta"):
            shape_only = create_model(request.arch, **kwargs)
        self.projects = supports_projection(shape_only)
        if not self.projects and (request.regul_freq is not None or request.procrustes is not None):
            raise InputError(
                f"--regul-freq and --procrustes apply to ProcResNets (procresnet166 …); "
                f"{request.arch} has no Procrustes step"
            )
        self.device = resolve_device(request.device, self.topology)
        cuda = self.device.type == "cuda"
        amp = request.amp if request.amp is not None else recorded.get("amp", self.recipe.amp and cuda)
        if amp and not cuda:
            raise InputError(
                "--amp (float16 autocast with gradient scaling) needs CUDA; training runs on the CPU here, "
                "so drop --amp (or pass --no-amp)"
            )
        self.amp = bool(amp)
        self.channels_last = bool(pick("channels_last", False))
        self.seed = int(pick("seed", self.recipe.seed))
        self.batch_size = int(pick("batch_size", self.recipe.batch_size))
        world = self.topology.world_size
        if self.batch_size % world:
            raise InputError(
                f"the batch size ({self.batch_size}) is the global batch and must divide evenly over the "
                f"{world} processes; pass a multiple of {world}"
            )
        self.epochs = int(pick("epochs", self.recipe.epochs))

        data_dir = request.data_dir if request.data_dir is not None else recorded.get("data_dir")
        self.limit_train, self.limit_test = pick("limit_train", None), pick("limit_test", None)
        self.data: DataSource = load_data(
            request.dataset,
            recipe=self.recipe,
            input_size=self.info.input_size[-1],
            data_dir=data_dir,
            download=request.download,
            seed=self.seed,
            limit_train=self.limit_train,
            limit_test=self.limit_test,
        )
        num_classes = pick("num_classes", None)
        if num_classes is not None and num_classes != self.data.num_classes:
            raise InputError(
                f"--num-classes is {num_classes}, but {request.dataset} has {self.data.num_classes} classes "
                f"({', '.join(self.data.labels[:5])}{', …' if self.data.num_classes > 5 else ''}); "
                "drop --num-classes or point --data-dir at the data set you meant"
            )
        self.model_kwargs = self.info.resolve_kwargs(**kwargs, num_classes=self.data.num_classes)
        self.workers = (
            request.workers
            if request.workers is not None
            else (0 if request.dataset == "digits" else min(self.recipe.workers, 4))
        )
        per_rank = self.batch_size // world
        steps_per_epoch = len(
            epoch_batches(self.data.num_train, per_rank, epoch=0, seed=self.seed, topology=self.topology)
        )
        schedule = self.recipe.schedule
        if recorded.get("schedule"):
            s = recorded["schedule"]
            schedule = Schedule(s["unit"], tuple(s["milestones"]), tuple(s["factors"]), s["length"])
        else:
            length = self.epochs if schedule.unit == "epoch" else self.epochs * steps_per_epoch
            schedule = schedule.stretched(length)
        self.schedule = LRSchedule(schedule, steps_per_epoch)
        self.lr = float(pick("lr", self.recipe.lr))
        self.weight_decay = float(pick("weight_decay", self.recipe.weight_decay))
        self.regul_freq = float(pick("regul_freq", self.recipe.regul_freq or 0.0)) if self.projects else None
        self.procrustes_mode = (
            (request.procrustes or recorded.get("procrustes_mode") or "exact") if self.projects else None
        )
        self.tau_grad_average = self.recipe.tau_grad_average and isinstance(
            getattr(shape_only, "tau", None), nn.Parameter
        )
        self.config = self._resolved(steps_per_epoch)

    def _resolved(self, steps_per_epoch: int) -> dict[str, Any]:
        recipe, data = self.recipe, self.data
        world = self.topology.world_size
        return {
            "arch": self.request.arch,
            "family": self.info.family,
            "model_kwargs": self.model_kwargs,
            "num_classes": data.num_classes,
            "recipe": recipe.name,
            "recipe_source": recipe.source,
            "dataset": data.name,
            "data_dir": data.root,
            "num_train": data.num_train,
            "num_test": data.num_test,
            "limit_train": self.limit_train,
            "limit_test": self.limit_test,
            "augmentation": data.augmentation,
            "normalization": {"mean": list(data.mean), "std": list(data.std)},
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "batch_size_per_process": self.batch_size // world,
            "test_batch_size": self.batch_size * recipe.test_batch_multiplier,
            "steps_per_epoch": steps_per_epoch,
            "optimizer": "SGD",
            "lr": self.lr,
            "momentum": recipe.momentum,
            "nesterov": recipe.nesterov,
            "weight_decay": self.weight_decay,
            "weight_decay_on": recipe.decay_on,
            "lr_groups": [list(g) for g in recipe.lr_groups],
            "schedule": self.schedule.schedule.to_dict(),
            "momentum_reset": recipe.momentum_reset,
            "tau_grad_average": self.tau_grad_average,
            "regul_freq": self.regul_freq,
            "procrustes_mode": self.procrustes_mode,
            "amp": self.amp,
            "precision": _precision(self.amp),
            "channels_last": self.channels_last,
            "device": str(self.device),
            "world_size": world,
            "seed": self.seed,
            "workers": self.workers,
        }

    # ------------------------------------------------------------------------------- building

    def _build(self) -> None:
        torch.manual_seed(self.seed)  # identical initial weights in every process
        model = create_model(self.request.arch, **self.model_kwargs).to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.optimizer = build_optimizer(
            model,
            lr=self.lr,
            momentum=self.recipe.momentum,
            nesterov=self.recipe.nesterov,
            weight_decay=self.weight_decay,
            decay_on=self.recipe.decay_on,
            lr_groups=self.recipe.lr_groups,
        )
        self.scaler = torch.amp.GradScaler("cuda") if self.amp else None
        self.procrustes = (
            ProcrustesStep(
                model,  # type: ignore[arg-type]
                regul_freq=float(self.regul_freq or 0.0),
                mode=str(self.procrustes_mode),
                seed=self.seed,
                comm=self.comm,
            )
            if self.projects
            else None
        )
        mean = torch.tensor(self.data.mean, device=self.device).view(1, -1, 1, 1)
        std = torch.tensor(self.data.std, device=self.device).view(1, -1, 1, 1)
        self._mean, self._std = mean, std
        self.epoch, self.batch_in_epoch, self.global_step = 0, 0, 0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"top1": None, "epoch": None}
        self.partial: dict[str, Any] | None = None
        checkpoint = self.resumed.checkpoint if self.resumed else None
        if checkpoint is not None:
            self._restore(checkpoint.model.state_dict(), checkpoint.train_state or {})
        else:
            rank = self.topology.rank
            torch.manual_seed(sample_seed(self.seed, rank, 1))  # dropout: different masks per process
            random.seed(sample_seed(self.seed, rank, 2))
            np.random.seed(sample_seed(self.seed, rank, 3) % 2**32)
        self.ddp = None
        if self.topology.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )

    def _restore(self, weights: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        self.model.load_state_dict(weights)
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the checkpoint's rates; base rates stay ours
            group.setdefault("base_lr", group["lr"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.procrustes is not None and state.get("procrustes"):
            self.procrustes.load_state_dict(state["procrustes"])
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state.get("batch_in_epoch", 0))
        self.global_step = int(state["global_step"])
        self.history = list(state.get("history", []))
        self.best = dict(state.get("best", self.best))
        self.partial = state.get("partial")
        states = state.get("rng") or []
        rank = self.topology.rank
        if rank < len(states) and len(states) == self.topology.world_size:
            restore_rng(states[rank])
        else:
            self.reporter.say(
                f"note: the run was saved by {len(states)} process(es) and resumes with "
                f"{self.topology.world_size}; it continues correctly but not bit-identically"
            )
            torch.manual_seed(sample_seed(self.seed, rank, 1, self.epoch))

    # ---------------------------------------------------------------------------------- epochs

    def _input(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device, non_blocking=True).float().div_(255).sub_(self._mean).div_(self._std)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp:
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _loader(self, dataset: Any, batches: list[Any]) -> DataLoader:
        return DataLoader(
            dataset,
            batch_sampler=batches,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=_ignore_sigint if self.workers else None,
            generator=torch.Generator().manual_seed(self.seed),  # keeps the global RNG untouched
        )

    def train_epoch(self) -> dict[str, float] | None:
        """Train from the current position to the end of the epoch (or an interruption).

        Returns:
            The epoch's training statistics, or ``None`` when a stop was requested (the
            position and running sums are then kept for the checkpoint).
        """
        epoch, start = self.epoch, self.batch_in_epoch
        per_rank = self.batch_size // self.topology.world_size
        batches = epoch_batches(
            self.data.num_train, per_rank, epoch=epoch, seed=self.seed, topology=self.topology
        )
        steps = len(batches)
        if start == 0 and self.recipe.momentum_reset and self.schedule.decays_at_epoch_start(epoch):
            self.optimizer.state.clear()  # the reference builds a new optimizer at each decay
        projections = self.procrustes.projections if self.procrustes is not None else 0
        partial = self.partial or {
            "loss_sum": 0.0,
            "correct": 0,
            "seen": 0,
            "seconds": 0.0,
            "projections_at_start": projections,
        }
        self.partial = None
        self.projections_at_epoch_start = int(partial.get("projections_at_start", projections))
        loss_sum = torch.tensor(float(partial["loss_sum"]), dtype=torch.float64, device=self.device)
        correct = torch.tensor(int(partial["correct"]), dtype=torch.int64, device=self.device)
        seen, seconds_before = int(partial["seen"]), float(partial["seconds"])
        network = self.ddp or self.model
        network.train()
        self.reporter.start_epoch(epoch + 1, self.epochs, steps, done=start)
        lr = main_lr(self.optimizer)
        began = time.perf_counter()
        step = start
        stopped = False
        try:
            for images, labels in self._loader(self.data.train, batches[start:]):
                lr = self.schedule.apply(self.optimizer, epoch, self.global_step)
                x = self._input(images)
                y = labels.to(self.device, non_blocking=True)
                with self._autocast():
                    logits = network(x)
                    loss = F.cross_entropy(logits, y)
                self.optimizer.zero_grad(set_to_none=True)
                if self.scaler is not None:
                    self.scaler.scale(loss).backward()
                else:
                    loss.backward()
                if self.tau_grad_average:
                    average_tau_gradient(self.model)
                if self.scaler is not None:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                self.global_step += 1
                step += 1
                if self.procrustes is not None:
                    self.procrustes()
                with torch.no_grad():
                    loss_sum += loss.detach().double() * len(y)
                    correct += (logits.argmax(1) == y).sum()
                seen += len(y)
                if self.on_step is not None:
                    self.on_step(StepInfo(epoch=epoch, step=step, steps=steps, global_step=self.global_step))
                if step % _REFRESH_EVERY == 0 or step == steps:
                    elapsed = time.perf_counter() - began + seconds_before
                    self.reporter.update(
                        step,
                        loss=float(loss_sum) / max(seen, 1),
                        top1=100.0 * float(correct) / max(seen, 1),
                        lr=lr,
                        images_per_s=seen * self.topology.world_size / max(elapsed, 1e-9),
                    )
                check = not self.topology.distributed or step % _SYNC_STOP_EVERY == 0
                if step < steps and check and self.comm.any(self._stop):
                    stopped = True
                    break
        finally:
            self.reporter.end_epoch()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - began + seconds_before
        if stopped:
            self.batch_in_epoch = step
            self.partial = {
                "loss_sum": float(loss_sum),
                "correct": int(correct),
                "seen": seen,
                "seconds": seconds,
                "projections_at_start": self.projections_at_epoch_start,
            }
            return None
        self.batch_in_epoch = 0
        total_loss, total_correct, total_seen = self.comm.sum([float(loss_sum), float(correct), float(seen)])
        return {
            "train_loss": total_loss / max(total_seen, 1),
            "train_top1": 100.0 * total_correct / max(total_seen, 1),
            "lr": lr,
            "images_per_s": total_seen / max(seconds, 1e-9),
            "train_seconds": seconds,
        }

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Test loss and top-1 (percent) of the current weights, over all processes."""
        model = self.model
        if self.topology.distributed:  # BatchNorm statistics: rank 0's, as in the checkpoint
            self.comm.broadcast_(list(model.buffers()))
        model.eval()
        began = time.perf_counter()
        per_rank = max(1, self.batch_size * self.recipe.test_batch_multiplier // self.topology.world_size)
        batches = test_batches(self.data.num_test, per_rank, topology=self.topology)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen = 0
        if batches:
            for images, labels in self._loader(self.data.test, batches):
                y = labels.to(self.device, non_blocking=True)
                with self._autocast():
                    logits = model(self._input(images))
                loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
                correct += (logits.argmax(1) == y).sum()
                seen += len(y)
        total_loss, total_correct, total_seen = self.comm.sum([float(loss_sum), float(correct), float(seen)])
        model.train()
        return {
            "test_loss": total_loss / max(total_seen, 1),
            "test_top1": 100.0 * total_correct / max(total_seen, 1),
            "eval_seconds": time.perf_counter() - began,
        }

    # ------------------------------------------------------------------------------ checkpoints

    def _train_state(self, rng: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "config": self.config,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "global_step": self.global_step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(self.epoch, self.global_step),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "procrustes": self.procrustes.state_dict() if self.procrustes is not None else None,
            "rng": rng,
            "history": self.history,
            "best": self.best,
            "partial": self.partial,
        }

    def _metrics(self, row: dict[str, Any] | None) -> dict[str, Any]:
        metrics: dict[str, Any] = {"epoch": self.epoch, "dataset": self.data.name}
        if row is not None:
            metrics.update(
                top1=round(row["test_top1"], 4),
                test_loss=round(row["test_loss"], 6),
                train_top1=round(row["train_top1"], 4),
                train_loss=round(row["train_loss"], 6),
            )
        return metrics

    def save(self, *, improved: bool = False) -> None:
        """Write ``best.pt`` (when improved) and ``last.pt`` on rank 0; every process takes part (RNG)."""
        rng = self.comm.gather(capture_rng())
        if not self.topology.is_main:
            return
        row = self.history[-1] if self.history else None
        common = {
            "arch": self.request.arch,
            "model_kwargs": self.model_kwargs,
            "preprocessing": self.data.preprocessing,
            "labels": self.data.labels,
        }
        if improved:
            save_checkpoint(
                self.run_dir / BEST,
                self.model,
                metrics=self._metrics(row),
                train_state={"config": self.config, "epoch": self.epoch},
                **common,
            )
        save_checkpoint(
            self.run_dir / LAST,
            self.model,
            metrics=self._metrics(row),
            train_state=self._train_state(rng),
            **common,
        )

    def _write_records(self) -> None:
        if not self.topology.is_main:
            return
        records.write_metrics(self.run_dir, self.history)
        self.curves = records.write_curves(
            self.run_dir, self.history, title=f"{self.request.arch} on {self.data.name}"
        )

    # ------------------------------------------------------------------------------------ run

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum: int, _frame: Any) -> None:
            if self._stop:
                for sig, old in previous.items():
                    signal.signal(sig, old)
                raise KeyboardInterrupt
            self._stop = True
            self.reporter.say(
                f"{signal.Signals(signum).name}: finishing this step and saving a resumable checkpoint "
                "(press Ctrl-C again to abort without saving)"
            )

        for sig in previous:
            signal.signal(sig, handler)
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def _announce(self) -> None:
        c, say = self.config, self.reporter.say
        params = count_parameters(self.model)
        say(
            f"training {c['arch']} ({c['family']}, {params:,} parameters) on {c['dataset']}: "
            f"{c['num_train']:,} train / {c['num_test']:,} test images, {c['num_classes']} classes"
        )
        decay = {
            "all": "all parameters",
            "conv_linear_weights": "conv and linear weights",
            "multidim": "non-1-D tensors",
        }
        say(
            f"recipe {c['recipe']}: {c['epochs']} epoch{'s' if c['epochs'] != 1 else ''}, "
            f"batch {c['batch_size']}, SGD lr {c['lr']:g} "
            f"momentum {c['momentum']:g}, weight decay {c['weight_decay']:g} "
            f"on {decay[c['weight_decay_on']]}, "
            f"lr {_describe_schedule(c['schedule'], c['lr'])}; augmentation: {c['augmentation']}"
        )
        if c["procrustes_mode"]:
            say(
                f"Procrustes projection: {c['procrustes_mode']}, after each step with probability "
                f"{c['regul_freq']:g}"
            )
        backend = (
            f", DDP over {c['world_size']} processes ({self.comm.backend})"
            if self.topology.distributed
            else ""
        )
        say(
            f"device {describe_device(self.device)}, precision {c['precision']}, "
            f"channels_last {'on' if c['channels_last'] else 'off'}{backend}"
        )
        where = (
            f"resuming {self.run_dir} at epoch {self.epoch + 1}"
            if self.resumed
            else f"run directory {self.run_dir}"
        )
        if self.resumed and self.batch_in_epoch:
            where += f", step {self.batch_in_epoch + 1}"
        say(where)
        if not records.plot_available():
            say(f"note: curves.png is skipped: {records.PLOT_HINT}")

    def _epoch_line(self, row: dict[str, Any], improved: bool) -> str:
        line = (
            f"epoch {row['epoch']}/{self.epochs}  "
            f"train loss {row['train_loss']:.4f} acc {row['train_top1']:.1f}%  "
            f"test loss {row['test_loss']:.4f} acc {row['test_top1']:.2f}%  lr {row['lr']:.3g}  "
            f"{row['images_per_s']:,.0f} img/s  {row['train_seconds']:.1f}+{row['eval_seconds']:.1f} s"
        )
        if "projections" in row:
            devs = [v for k, v in row.items() if k.startswith("procrustes_dev_")]
            line += f"  projections {row['projections']} (max dev {max(devs):.2g})"
        return line + ("  [best]" if improved else "")

    def setup(self) -> None:
        """Join the process group and build model, optimizer and state (restored on ``--resume``).

        :meth:`run` calls it; call it yourself to drive :meth:`train_epoch` and
        :meth:`evaluate` directly (as ``bench/bench_train.py`` does).
        """
        if getattr(self, "model", None) is not None:
            return
        self.comm = Communicator(self.topology, self.device)
        self.comm.start()
        self.curves: Path | None = None
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels
        self._build()

    def run(self) -> TrainResult:
        """Train to the configured number of epochs (or an interruption) and return the result."""
        try:
            self.setup()
            if self.topology.is_main:
                write_json(self.run_dir / CONFIG_FILE, self.config)
                if self.history:
                    self._write_records()
            self._announce()
            interrupted = False
            last_ips: float | None = self.history[-1]["images_per_s"] if self.history else None
            with self._signals():
                while self.epoch < self.epochs:
                    stats = self.train_epoch()
                    if stats is None:
                        self.save()
                        interrupted = True
                        break
                    if not math.isfinite(stats["train_loss"]):
                        raise CheckFailedError(
                            f"training diverged: the loss is {stats['train_loss']} "
                            f"in epoch {self.epoch + 1}; "
                            f"{LAST} holds the last finite epoch; lower --lr and start again"
                        )
                    stats.update(self.evaluate())
                    self.epoch += 1
                    row = {"epoch": self.epoch, **{k: round(v, 6) for k, v in stats.items()}}
                    if self.procrustes is not None:
                        row["projections"] = self.procrustes.projections - self.projections_at_epoch_start
                        row.update(summarise_deviation(deviation_report(self.model)))
                    self.history.append(row)
                    improved = self.best["top1"] is None or row["test_top1"] > self.best["top1"]
                    if improved:
                        self.best = {"top1": row["test_top1"], "epoch": self.epoch}
                    self.save(improved=improved)
                    self._write_records()
                    self.reporter.say(self._epoch_line(row, improved))
                    last_ips = row["images_per_s"]
                    if self.epoch < self.epochs and self.comm.any(self._stop):
                        interrupted = True
                        break
            if interrupted:
                where = (
                    f"in epoch {self.epoch + 1} after step {self.batch_in_epoch}"
                    if self.batch_in_epoch
                    else f"after epoch {self.epoch}"
                )
                self.reporter.say(
                    f"stopped {where}; {self.run_dir / LAST} resumes it: "
                    f"normexport train {self.request.arch} --dataset {self.request.dataset} "
                    f"--out {self.run_dir} --resume"
                )
            self.comm.barrier()
            return self._result(interrupted, last_ips)
        finally:
            if getattr(self, "comm", None) is not None:
                self.comm.stop()

    def _result(self, interrupted: bool, images_per_s: float | None) -> TrainResult:
        procrustes = None
        if self.procrustes is not None:
            procrustes = {
                "mode": self.procrustes_mode,
                "regul_freq": self.regul_freq,
                "projections": self.procrustes.projections,
                "deviation": deviation_report(self.model),
            }
        best_path = self.run_dir / BEST
        return TrainResult(
            run_dir=self.run_dir,
            arch=self.request.arch,
            dataset=self.data.name,
            recipe=self.recipe.name,
            epochs=self.epochs,
            epochs_completed=self.epoch,
            best_top1=self.best["top1"],
            best_epoch=self.best["epoch"],
            last_top1=self.history[-1]["test_top1"] if self.history else None,
            device=describe_device(self.device),
            precision=_precision(self.amp),
            channels_last=self.channels_last,
            world_size=self.topology.world_size,
            images_per_s=images_per_s,
            interrupted=interrupted,
            checkpoints={
                "last": str(self.run_dir / LAST),
                "best": str(best_path) if best_path.exists() else None,
            },
            curves=str(self.curves) if self.curves else None,
            procrustes=procrustes,
            rank=self.topology.rank,
        )


def train(
    config: TrainConfig,
    *,
    on_step: Callable[[StepInfo], None] | None = None,
    reporter: Reporter | None = None,
) -> TrainResult:
    """Train ``config.arch`` on ``config.dataset`` with its family's recipe; see :class:`TrainConfig`.

    Started under ``torchrun`` it trains with DistributedDataParallel: every process calls
    this, rank 0 writes the files, and every process returns the same result.

    Args:
        config: What to train and how (``None`` fields take the recipe's values).
        on_step: Called after every optimizer step (progress hooks, tests).
        reporter: Where progress and messages go (default: stderr on rank 0).

    Returns:
        The run's result; ``interrupted`` when stopped by SIGINT/SIGTERM (resumable).

    Raises:
        InputError: Bad input, found before any training work (unknown model or data set,
            missing data, class-count mismatch, a resume directory of another run, CUDA
            asked for but unusable).
        CheckFailedError: The loss diverged.
    """
    return Trainer(config, on_step=on_step, reporter=reporter).run()
