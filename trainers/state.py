"""What a resumable run saves, and reading it back: RNG states, ``last.pt``/``best.pt``, the run directory.

A run directory holds ``config.json`` (the resolved configuration), ``last.pt`` (weights plus
``train_state``: optimizer, schedule, AMP scaler, epoch, step, every RNG state, the metric
history and, when interrupted mid-epoch, the position in the epoch and its running sums),
``best.pt`` (the weights of the best test accuracy so far), ``metrics.jsonl`` and
``curves.png``. Checkpoints are normexport checkpoints (``nx.load_checkpoint`` reads them)
and every file is written atomically.

What makes resuming exact: the model, optimizer and scaler state; the global torch/CUDA/
NumPy/Python RNG states of every process (dropout draws from them); the Procrustes coin
generator; and augmentation and sample order that are functions of (seed, epoch, index)
alone (``trainers.transforms``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from normresnet_export._io import atomic_write
from normresnet_export.checkpoint import Checkpoint, load_checkpoint
from normresnet_export.errors import CheckpointError, InputError

CONFIG_FILE = "config.json"
LAST = "last.pt"
BEST = "best.pt"


def capture_rng() -> dict[str, Any]:
    """This process's global RNG states, as plain data that ``torch.load(weights_only=True)`` reads."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": int(version), "internal": list(internal), "gauss": gauss},
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Set the global RNG states captured by :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_write(path) as handle:
        handle.write((json.dumps(data, indent=2) + "\n").encode())


def _no_best() -> dict[str, Any]:
    return {"top1": None, "epoch": None}


@dataclass
class Position:
    """How far a run has come and what it measured: what ``last.pt`` holds beside weights and optimizer.

    Attributes:
        epoch: Completed epochs.
        batch_in_epoch: Steps already taken in the current epoch (non-zero only after a stop
            mid-epoch).
        global_step: Optimizer steps taken in the whole run.
        history: One metrics row per completed epoch.
        best: ``{"top1": …, "epoch": …}`` of the best test accuracy so far (``None`` before any).
        partial: The running sums of an epoch stopped mid-way, so that it ends with the
            statistics of an uninterrupted one; ``None`` otherwise.
    """

    epoch: int = 0
    batch_in_epoch: int = 0
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=_no_best)
    partial: dict[str, Any] | None = None

    @classmethod
    def from_train_state(cls, state: dict[str, Any]) -> Position:
        """The position a checkpoint's ``train_state`` recorded."""
        return cls(
            epoch=int(state["epoch"]),
            batch_in_epoch=int(state.get("batch_in_epoch", 0)),
            global_step=int(state["global_step"]),
            history=list(state.get("history", [])),
            best=dict(state.get("best", _no_best())),
            partial=state.get("partial"),
        )


@dataclass
class Resumed:
    """A run read back from its directory.

    Attributes:
        config: The resolved configuration the run was started with.
        checkpoint: ``last.pt``, or ``None`` when the run stopped before its first checkpoint.
    """

    config: dict[str, Any]
    checkpoint: Checkpoint | None


def read_run(run_dir: Path, arch: str) -> Resumed:
    """Open a run directory for ``--resume``.

    Raises:
        InputError: The directory is missing or holds no run, its run trained another
            architecture, or its ``last.pt`` is damaged.
    """
    config_path = run_dir / CONFIG_FILE
    if not run_dir.is_dir():
        raise InputError(
            f"--resume: {run_dir} does not exist; give the --out directory of the run to continue"
        )
    if not config_path.is_file():
        raise InputError(
            f"--resume: {run_dir} holds no run ({CONFIG_FILE} is missing); give the --out directory of a "
            "run started by normexport train"
        )
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"--resume: cannot read {config_path} ({exc})") from None
    if config.get("arch") != arch:
        raise InputError(
            f"--resume: {run_dir} is a run of {config.get('arch')!r}, not {arch!r}; resume it with "
            f"`normexport train {config.get('arch')} … --resume`, or start {arch} with another --out"
        )
    last = run_dir / LAST
    if not last.is_file():
        return Resumed(config=config, checkpoint=None)
    try:
        checkpoint = load_checkpoint(last)
    except CheckpointError as exc:
        raise InputError(f"--resume: {exc}") from None
    if checkpoint.arch != arch:
        raise InputError(
            f"--resume: {last} is a checkpoint of {checkpoint.arch!r} but {config_path} a run of {arch!r}; "
            f"put back the run's own {LAST}, or start a new run with another --out"
        )
    if not checkpoint.train_state:
        raise InputError(f"--resume: {last} is not a resumable checkpoint of {arch!r}")
    saved = checkpoint.train_state.get("config", {})
    return Resumed(config=saved or config, checkpoint=checkpoint)
