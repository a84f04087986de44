"""The run directory's checkpoints: ``config.json``, ``last.pt`` and ``best.pt``, and continuing from them.

``last.pt`` is written after every epoch and on a stop; it holds the weights and a
``train_state`` with everything an exact resume needs (see ``trainers.state``). ``best.pt``
is written when the test accuracy improved and holds the weights and the configuration only.
Rank 0 writes; every process takes part, because every process's RNG state is saved.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from normresnet_export._io import check_output, make_directory
from normresnet_export.checkpoint import save_checkpoint
from trainers.distributed import Communicator, Topology
from trainers.learner import Learner
from trainers.progress import Reporter
from trainers.settings import RunSettings
from trainers.state import BEST, CONFIG_FILE, LAST, Position, capture_rng, restore_rng, write_json
from trainers.transforms import sample_seed

#: Where a run without --out goes (``trainers.settings``): the one parent created on demand.
_DEFAULT_ROOT = Path("runs")


class Checkpoints:
    """Saving and restoring one run.

    Args:
        settings: The run's settings (its directory, its record, the run it resumes).
        topology: This process's rank and the world size.
        comm: Collectives (the RNG states of every process are gathered on save).
        reporter: Where a note about an inexact resume goes.
    """

    def __init__(
        self, settings: RunSettings, topology: Topology, comm: Communicator, reporter: Reporter
    ) -> None:
        self.settings = settings
        self.topology = topology
        self.comm = comm
        self.reporter = reporter
        if topology.is_main:  # a bad --out fails here, before any work
            self._check_run_dir()

    def _check_run_dir(self) -> None:
        """The run directory may be created, but not its parent (a typo in --out would be kept).

        Without --out the run goes under ``runs/``, which is created on the first run.
        """
        run_dir = self.settings.run_dir
        if run_dir.parent != _DEFAULT_ROOT or run_dir.parent.exists():
            check_output(run_dir, directory=True)

    def write_config(self) -> None:
        """``config.json``: the resolved settings (rank 0), in the run directory, created here if new."""
        if self.topology.is_main:
            run_dir = self.settings.run_dir
            make_directory(run_dir, parents=run_dir.parent == _DEFAULT_ROOT)
            write_json(run_dir / CONFIG_FILE, self.settings.record())

    def start(self, learner: Learner) -> Position:
        """Restore the resumed run's ``last.pt`` into ``learner``, or seed a new run; returns the position.

        A new run seeds each process's global RNGs differently (dropout masks differ per
        process); a resumed one restores the RNG states it saved.
        """
        resumed = self.settings.resumed
        checkpoint = resumed.checkpoint if resumed is not None else None
        if checkpoint is not None:
            return self._restore(learner, checkpoint.model.state_dict(), checkpoint.train_state or {})
        seed, rank = self.settings.seed, self.topology.rank
        torch.manual_seed(sample_seed(seed, rank, 1))  # dropout: different masks per process
        random.seed(sample_seed(seed, rank, 2))
        np.random.seed(sample_seed(seed, rank, 3) % 2**32)
        return Position()

    def _restore(self, learner: Learner, weights: dict[str, torch.Tensor], state: dict[str, Any]) -> Position:
        learner.model.load_state_dict(weights)
        learner.optimizer.load_state_dict(state["optimizer"])
        for group in learner.optimizer.param_groups:  # the checkpoint's rates; base rates stay ours
            group.setdefault("base_lr", group["lr"])
        if learner.scaler is not None and state.get("scaler"):
            learner.scaler.load_state_dict(state["scaler"])
        if learner.procrustes is not None and state.get("procrustes"):
            learner.procrustes.load_state_dict(state["procrustes"])
        position = Position.from_train_state(state)
        states = state.get("rng") or []
        rank, world = self.topology.rank, self.topology.world_size
        if rank < len(states) and len(states) == world:
            restore_rng(states[rank])
        else:
            self.reporter.say(
                f"note: the run was saved by {len(states)} process(es) and resumes with "
                f"{world}; it continues correctly but not bit-identically"
            )
            torch.manual_seed(sample_seed(self.settings.seed, rank, 1, position.epoch))
        return position

    def save(self, learner: Learner, position: Position, *, improved: bool = False) -> None:
        """Write ``best.pt`` (when ``improved``) and ``last.pt`` on rank 0; every process must call it."""
        rng = self.comm.gather(capture_rng())
        if not self.topology.is_main:
            return
        settings = self.settings
        record = settings.record()
        common: dict[str, Any] = {
            "arch": settings.arch,
            "model_kwargs": settings.model_kwargs,
            "preprocessing": settings.data.preprocessing,
            "labels": settings.data.labels,
            "metrics": self._metrics(position),
        }
        if improved:
            save_checkpoint(
                settings.run_dir / BEST,
                learner.model,
                train_state={"config": record, "epoch": position.epoch},
                **common,
            )
        train_state = {
            "config": record,
            "epoch": position.epoch,
            "batch_in_epoch": position.batch_in_epoch,
            "global_step": position.global_step,
            "optimizer": learner.optimizer.state_dict(),
            "scheduler": learner.schedule.state_dict(position.epoch, position.global_step),
            "scaler": learner.scaler.state_dict() if learner.scaler is not None else None,
            "procrustes": learner.procrustes.state_dict() if learner.procrustes is not None else None,
            "rng": rng,
            "history": position.history,
            "best": position.best,
            "partial": position.partial,
        }
        save_checkpoint(settings.run_dir / LAST, learner.model, train_state=train_state, **common)

    def _metrics(self, position: Position) -> dict[str, Any]:
        """The checkpoint's ``metrics``: the last completed epoch's accuracy and loss."""
        metrics: dict[str, Any] = {"epoch": position.epoch, "dataset": self.settings.data.name}
        if position.history:
            row = position.history[-1]
            metrics.update(
                top1=round(row["test_top1"], 4),
                test_loss=round(row["test_loss"], 6),
                train_top1=round(row["train_top1"], 4),
                train_loss=round(row["train_loss"], 6),
            )
        return metrics
