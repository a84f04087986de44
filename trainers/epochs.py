"""The epoch loop: train from the current position to the end of the epoch, evaluate, record the epoch.

A stop request (SIGINT/SIGTERM, seen through ``stop_requested``) ends an epoch after the
current step and keeps its position and running sums in the :class:`~trainers.state.Position`,
so the saved ``last.pt`` resumes in the middle of the epoch with the statistics an
uninterrupted epoch would have had. Under DDP the processes agree on stopping every few
steps, so that all of them stop after the same step.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from normresnet_export.errors import CheckFailedError
from normresnet_export.nn.norm_probe import NormProbe
from trainers.distributed import Communicator, Topology
from trainers.feed import Feed
from trainers.learner import Learner
from trainers.optim import main_lr
from trainers.procrustes import deviation_report, summarise_deviation
from trainers.progress import Reporter
from trainers.settings import RunSettings
from trainers.state import LAST, Position

_REFRESH_EVERY = 10  # steps between progress updates (each one synchronises the GPU)
_SYNC_STOP_EVERY = 10  # steps between checks, under DDP, whether any process was asked to stop


def gradnorm_units(probe: NormProbe) -> dict[str, Any]:
    """The units of a ``--log-gradnorm`` probe: their names, and which of them are transitions."""
    units = probe.units()
    return {"units": [u.name for u in units], "transitions": [i for i, u in enumerate(units) if u.transition]}


def gradnorm_record(step: int, probe: NormProbe) -> dict[str, Any]:
    """One ``--log-gradnorm`` record: the batch-mean ratio ``‖∂L/∂x_l‖ / ‖∂L/∂x_{l+1}‖`` of every unit."""
    return {"step": step, "ratios": [round(float(u.grad_ratio.mean()), 6) for u in probe.units()]}


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


class EpochLoop:
    """Trains the learner epoch by epoch from ``position``, which it advances.

    Args:
        settings: The run's settings.
        learner: Model, optimizer and the rest of what a step changes (restored on resume).
        position: Where the run is; updated in place.
        topology: This process's rank and the world size.
        comm: Collectives (sums over processes, the stop agreement).
        reporter: The progress bar.
        on_step: Called after every optimizer step.
        stop_requested: Whether this process was asked to stop.
    """

    def __init__(
        self,
        settings: RunSettings,
        learner: Learner,
        position: Position,
        *,
        topology: Topology,
        comm: Communicator,
        reporter: Reporter,
        on_step: Callable[[StepInfo], None] | None,
        stop_requested: Callable[[], bool],
    ) -> None:
        self.settings = settings
        self.learner = learner
        self.position = position
        self.topology = topology
        self.comm = comm
        self.reporter = reporter
        self.on_step = on_step
        self.stop_requested = stop_requested
        self.feed = Feed(settings, topology)
        self.network: torch.nn.Module = learner.model
        if topology.distributed:  # after a restore: DDP broadcasts rank 0's weights when it is built
            from torch.nn.parallel import DistributedDataParallel

            device = settings.device
            self.network = DistributedDataParallel(
                learner.model, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.projections_at_epoch_start = learner.projections
        #: This epoch's ``--log-gradnorm`` records, and the units their ratios belong to.
        self.gradnorm: dict[str, Any] = {}

    def _probe(self, global_step: int) -> NormProbe | None:
        """A norm probe for the step about to run when ``--log-gradnorm N`` falls on it."""
        every = self.settings.log_gradnorm
        return NormProbe(self.learner.model) if every and global_step % every == 0 else None

    def train_epoch(self) -> dict[str, float] | None:
        """Train from the current position to the end of the epoch (or a stop).

        Returns:
            The epoch's training statistics, or ``None`` when a stop was requested (the
            position and running sums are then kept in :attr:`position` for the checkpoint).
        """
        settings, learner, position = self.settings, self.learner, self.position
        device = settings.device
        epoch, start = position.epoch, position.batch_in_epoch
        batches = self.feed.train_batches(epoch)
        steps = len(batches)
        if start == 0 and settings.recipe.momentum_reset and learner.schedule.decays_at_epoch_start(epoch):
            learner.optimizer.state.clear()  # the reference builds a new optimizer at each decay
        partial = position.partial or {
            "loss_sum": 0.0,
            "correct": 0,
            "seen": 0,
            "seconds": 0.0,
            "projections_at_start": learner.projections,
        }
        position.partial = None
        self.gradnorm = dict(partial.get("gradnorm", {}))
        self.projections_at_epoch_start = int(partial.get("projections_at_start", learner.projections))
        loss_sum = torch.tensor(float(partial["loss_sum"]), dtype=torch.float64, device=device)
        correct = torch.tensor(int(partial["correct"]), dtype=torch.int64, device=device)
        seen, seconds_before = int(partial["seen"]), float(partial["seconds"])
        network = self.network
        network.train()
        self.reporter.start_epoch(epoch + 1, settings.epochs, steps, done=start)
        lr = main_lr(learner.optimizer)
        began = time.perf_counter()
        step = start
        stopped = False
        try:
            for images, labels in self.feed.train(batches[start:]):
                lr = learner.schedule.apply(learner.optimizer, epoch, position.global_step)
                x = self.feed.images(images)
                y = self.feed.labels(labels)
                probe = self._probe(position.global_step)
                with probe or contextlib.nullcontext():
                    with learner.autocast():
                        logits = network(x)
                        loss = F.cross_entropy(logits, y)
                    learner.update(loss)
                position.global_step += 1
                if probe is not None:
                    self.gradnorm = self.gradnorm or {**gradnorm_units(probe), "records": []}
                    self.gradnorm["records"].append(gradnorm_record(position.global_step, probe))
                step += 1
                with torch.no_grad():
                    loss_sum += loss.detach().double() * len(y)
                    correct += (logits.argmax(1) == y).sum()
                seen += len(y)
                if self.on_step is not None:
                    info = StepInfo(epoch=epoch, step=step, steps=steps, global_step=position.global_step)
                    self.on_step(info)
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
                if step < steps and check and self.comm.any(self.stop_requested()):
                    stopped = True
                    break
        finally:
            self.reporter.end_epoch()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - began + seconds_before
        if stopped:
            position.batch_in_epoch = step
            position.partial = {
                "loss_sum": float(loss_sum),
                "correct": int(correct),
                "seen": seen,
                "seconds": seconds,
                "projections_at_start": self.projections_at_epoch_start,
                "gradnorm": self.gradnorm,
            }
            return None
        position.batch_in_epoch = 0
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
        model = self.learner.model
        if self.topology.distributed:  # BatchNorm statistics: rank 0's, as in the checkpoint
            self.comm.broadcast_(list(model.buffers()))
        model.eval()
        began = time.perf_counter()
        batches = self.feed.test_batches()
        device = self.settings.device
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        if batches:
            for images, labels in self.feed.test(batches):
                y = self.feed.labels(labels)
                with self.learner.autocast():
                    logits = model(self.feed.images(images))
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

    def run_epoch(self) -> tuple[dict[str, Any], bool] | None:
        """Finish the current epoch, evaluate it and add its row to the history.

        Returns:
            The epoch's metrics row and whether its test accuracy is the best so far, or
            ``None`` when a stop was requested first.

        Raises:
            CheckFailedError: The training loss is not finite (the run diverged).
        """
        stats = self.train_epoch()
        if stats is None:
            return None
        position = self.position
        if not math.isfinite(stats["train_loss"]):
            raise CheckFailedError(
                f"training diverged: the loss is {stats['train_loss']} in epoch {position.epoch + 1}; "
                f"{LAST} holds the last finite epoch; lower --lr and start again"
            )
        stats.update(self.evaluate())
        position.epoch += 1
        row: dict[str, Any] = {"epoch": position.epoch, **{k: round(v, 6) for k, v in stats.items()}}
        if self.learner.procrustes is not None:
            row["projections"] = self.learner.projections - self.projections_at_epoch_start
            row.update(summarise_deviation(deviation_report(self.learner.model)))
        if self.gradnorm:
            row["gradnorm"] = self.gradnorm
        position.history.append(row)
        improved = position.best["top1"] is None or row["test_top1"] > position.best["top1"]
        if improved:
            position.best = {"top1": row["test_top1"], "epoch": position.epoch}
        return row, improved
