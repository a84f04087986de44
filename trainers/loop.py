"""The training run: ``train(TrainConfig) -> TrainResult``, and the :class:`Trainer` behind it.

One run for every family; the family's specifics come from its recipe
(``trainers.recipes``) and from two hooks: the Procrustes projection after each optimizer
step (ProcResNet) and the averaged tau gradient (tau-ResNet without BatchNorm).

Order of work, so that bad input fails before anything runs: resolve the settings
(``trainers.settings``: the model name, the run directory and on ``--resume`` the recorded
run, the recipe, the device, the data set and its classes); only then join the process
group, build the model (``trainers.learner``), restore or seed it (``trainers.checkpoints``)
and train (``trainers.epochs``). Every epoch ends with an evaluation on the test split and, on
rank 0, ``last.pt``, ``best.pt`` (when the test accuracy improved), ``metrics.jsonl`` and
``curves.png``; what the person watching reads comes from ``trainers.report``.

SIGINT or SIGTERM (Ctrl-C, a scheduler's pre-emption) finishes the current step, saves a
``last.pt`` that resumes in the middle of the epoch, and returns with ``interrupted=True``;
a second Ctrl-C aborts at once (atomic writes leave no partial file).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from normresnet_export.models import count_parameters
from trainers import records, report
from trainers.checkpoints import Checkpoints
from trainers.config import TrainConfig
from trainers.distributed import Communicator, Topology
from trainers.epochs import EpochLoop, StepInfo
from trainers.learner import Learner
from trainers.progress import Reporter
from trainers.report import TrainResult
from trainers.settings import RunSettings, resolve_settings


class Trainer:
    """One training run; see the module docstring. Use :func:`train` unless you drive epochs yourself.

    Constructing it resolves the settings (and fails on bad input) but does no work;
    :meth:`setup` joins the process group and builds the model; :meth:`run` trains.

    Args:
        config: What to train and how.
        on_step: Called after every optimizer step.
        reporter: Where progress and messages go (default: stderr on rank 0, unless
            ``config.progress`` is off).
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        on_step: Callable[[StepInfo], None] | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.topology = Topology.from_env()
        self.reporter = reporter or Reporter(enabled=config.progress and self.topology.is_main)
        self.settings: RunSettings = resolve_settings(config, self.topology)
        self.on_step = on_step
        self.comm = Communicator(self.topology, self.settings.device)
        self.checkpoints = Checkpoints(self.settings, self.topology, self.comm, self.reporter)
        self.loop: EpochLoop | None = None  # built by setup()
        self.curves: Path | None = None
        self._stop = False

    def setup(self) -> EpochLoop:
        """Join the process group, build model and optimizer, restore them on ``--resume``; the epoch loop.

        :meth:`run` calls it; call it yourself to drive :meth:`train_epoch` and
        :meth:`evaluate` directly (as ``bench/bench_train.py`` does). A second call does nothing.
        """
        if self.loop is None:
            self.comm.start()
            if self.settings.device.type == "cuda":
                torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels
            learner = Learner.build(self.settings, self.comm)
            position = self.checkpoints.start(learner)
            self.loop = EpochLoop(
                self.settings,
                learner,
                position,
                topology=self.topology,
                comm=self.comm,
                reporter=self.reporter,
                on_step=self.on_step,
                stop_requested=lambda: self._stop,
            )
        return self.loop

    @property
    def epoch(self) -> int:
        """Completed epochs; set it to move on when driving :meth:`train_epoch` yourself."""
        return self.setup().position.epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.setup().position.epoch = value

    def train_epoch(self) -> dict[str, float] | None:
        """Train to the end of the current epoch; see :meth:`EpochLoop.train_epoch`."""
        return self.setup().train_epoch()

    def evaluate(self) -> dict[str, float]:
        """Test loss and top-1 of the current weights; see :meth:`EpochLoop.evaluate`."""
        return self.setup().evaluate()

    def run(self) -> TrainResult:
        """Train to the configured number of epochs (or an interruption) and return the result."""
        settings = self.settings
        try:
            loop = self.setup()
            position = loop.position
            self.checkpoints.write_config()
            if position.history:
                self._write_records(loop)
            for line in report.opening_lines(
                settings, position, parameters=count_parameters(loop.learner.model), backend=self.comm.backend
            ):
                self.reporter.say(line)
            interrupted = False
            images_per_s: float | None = position.history[-1]["images_per_s"] if position.history else None
            with self._signals():
                while position.epoch < settings.epochs:
                    done = loop.run_epoch()
                    if done is None:
                        self.checkpoints.save(loop.learner, position)
                        interrupted = True
                        break
                    row, improved = done
                    self.checkpoints.save(loop.learner, position, improved=improved)
                    self._write_records(loop)
                    self.reporter.say(report.epoch_line(row, settings.epochs, improved=improved))
                    images_per_s = row["images_per_s"]
                    if position.epoch < settings.epochs and self.comm.any(self._stop):
                        interrupted = True
                        break
            if interrupted:
                self.reporter.say(report.stopped_line(settings, position))
            self.comm.barrier()
            return report.result(
                settings, loop, interrupted=interrupted, images_per_s=images_per_s, curves=self.curves
            )
        finally:
            self.comm.stop()

    def _write_records(self, loop: EpochLoop) -> None:
        if self.topology.is_main:
            settings = self.settings
            title = f"{settings.arch} on {settings.data.name}"
            self.curves = records.write_records(settings.run_dir, loop.position.history, title=title)

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM ask the loop to stop after this step; a second one aborts at once."""
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
