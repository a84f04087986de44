"""What the user asks for (:class:`TrainConfig`) and the complete configuration a run records.

Every field left ``None`` takes the recipe's value. The *resolved* configuration — every
value the run actually uses, including the stretched schedule, the parameter-group policy,
the device and precision — is written to ``config.json`` in the run directory and into
every checkpoint, so a run can be read, compared and reproduced from its files alone.

On ``--resume`` the recorded configuration wins. An option given again with a different
value is an error (a run cannot silently change its learning rate half-way), except
``--epochs`` (to extend a run; the schedule stays as it was resolved), ``--workers``, and the
device-bound ``--amp``/``--channels-last`` (a run started on a GPU may continue on a CPU).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from normresnet_export.data.sets import data_kind, parse_data_set
from normresnet_export.errors import InputError
from normresnet_export.nn.procrustes import PROJECTION_MODES
from normresnet_export.vocabulary import OPTIMIZERS
from trainers.datasets import DATASETS
from trainers.distributed import DEVICES

#: Options that may differ on --resume.
RESUMABLE_CHANGES = ("epochs", "workers", "amp", "channels_last", "log_gradnorm")


@dataclass
class TrainConfig:
    """A training request (``normexport train`` options).

    Attributes:
        arch: Registered model name.
        dataset: ``digits``, ``cifar10``, ``cifar100``, ``imagenet``, ``folder:DIR``, or ``folder``
            with ``data_dir`` (the same; ``folder:DIR`` is stored as that).
        data_dir: Where the data set lives (CIFAR default ``./data``).
        download: Fetch CIFAR when it is missing.
        epochs: Training epochs (recipe default).
        batch_size: Images per optimizer step over all processes (recipe default).
        lr: Initial learning rate of the main parameter group.
        weight_decay: Weight decay of the parameters the recipe decays.
        optimizer: ``sgd`` (every recipe's) or ``adamw``; default ``sgd``.
        recipe: Recipe name (default: the family's).
        tau: tau-ResNet residual scale (default: the paper's rule).
        regul_freq: ProcResNet projection probability per step.
        procrustes: ``exact`` or ``reference`` projection (default ``exact``).
        amp: Mixed precision (float16 autocast + gradient scaling, CUDA only); default: on
            CUDA when the recipe uses it.
        channels_last: Channels-last memory format.
        device: ``auto``, ``cpu`` or ``cuda``.
        workers: Data-loader worker processes (default: 0 for in-memory data, else the recipe's).
        seed: Seed of initialisation, sample order, augmentation, dropout and projections.
        out: Run directory (default ``runs/<arch>-<dataset>-<time>``).
        resume: Continue the run in ``out``.
        num_classes: Expected number of classes (checked against the data set).
        model_kwargs: Further builder keywords (e.g. ``shortcut``).
        limit_train: Train on the first N images only (smoke runs).
        limit_test: Evaluate on the first N test images only.
        log_gradnorm: Every N steps, record the gradient-norm ratio of every residual block
            (``metrics.jsonl`` and a panel of ``curves.png``); ``None``: never.
        progress: Show the progress bar and epoch lines (rank 0).
    """

    arch: str
    dataset: str
    data_dir: Path | None = None
    download: bool = False
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    optimizer: str | None = None
    recipe: str | None = None
    tau: float | None = None
    regul_freq: float | None = None
    procrustes: str | None = None
    amp: bool | None = None
    channels_last: bool | None = None
    device: str = "auto"
    workers: int | None = None
    seed: int | None = None
    out: Path | None = None
    resume: bool = False
    num_classes: int | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    limit_train: int | None = None
    limit_test: int | None = None
    log_gradnorm: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.out = Path(self.out) if self.out is not None else None
        self.data_dir = Path(self.data_dir) if self.data_dir is not None else None
        problems = []
        try:
            if data_kind(self.dataset, option="--dataset", kinds=DATASETS)[1] is not None:
                # folder:D is --dataset folder --data-dir D, and recorded so (resume, run names)
                chosen = parse_data_set(
                    self.dataset, data_dir=self.data_dir, option="--dataset", kinds=DATASETS
                )
                self.dataset, self.data_dir = chosen.kind, chosen.root
        except InputError as exc:
            problems.append(str(exc))
        if self.device not in DEVICES:
            problems.append(f"unknown device {self.device!r}; expected one of {', '.join(DEVICES)}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            problems.append(
                f"unknown --optimizer {self.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}"
            )
        if self.procrustes is not None and self.procrustes not in PROJECTION_MODES:
            problems.append(
                f"unknown --procrustes mode {self.procrustes!r}; "
                f"expected one of {', '.join(PROJECTION_MODES)}"
            )
        for name in ("epochs", "batch_size", "num_classes", "limit_train", "limit_test", "log_gradnorm"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.workers is not None and self.workers < 0:
            problems.append(f"--workers must be 0 or more, got {self.workers}")
        for name in ("lr", "weight_decay", "tau"):
            value = getattr(self, name)
            if value is not None and (
                not math.isfinite(value) or value < 0 or (name != "weight_decay" and value == 0)
            ):
                problems.append(f"--{name.replace('_', '-')} must be a positive number, got {value}")
        if self.regul_freq is not None and not 0.0 <= self.regul_freq <= 1.0:
            problems.append(f"--regul-freq is a probability in [0, 1], got {self.regul_freq}")
        if self.download and self.dataset not in ("cifar10", "cifar100"):
            problems.append(f"--download fetches CIFAR-10/100 only; {self.dataset} is not downloaded")
        if self.resume and self.out is None:
            problems.append("--resume needs --out, the directory of the run to continue")
        if "num_classes" in self.model_kwargs or "tau" in self.model_kwargs:
            problems.append("give num_classes and tau as --num-classes and --tau, not as model keywords")
        if problems:
            raise InputError("; ".join(problems))

    def given(self) -> dict[str, Any]:
        """The options that were set (not left to the recipe), as plain values."""
        skip = {"arch", "dataset", "resume", "out", "progress", "device"}
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in skip or value is None or (f.name == "model_kwargs" and not value):
                continue
            if f.name == "download" and not value:
                continue
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible form."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def recorded_optimizer(recorded: Mapping[str, Any]) -> str:
    """The optimizer a recorded run used: runs from before ``--optimizer`` recorded ``"SGD"``."""
    return str(recorded.get("optimizer", "sgd")).lower()


def conflicts_with(config: TrainConfig, recorded: dict[str, Any]) -> list[str]:
    """Options given on ``--resume`` whose value differs from the recorded run's, as ``--opt X (run: Y)``."""
    mapping = {
        "data_dir": "data_dir",
        "batch_size": "batch_size",
        "lr": "lr",
        "weight_decay": "weight_decay",
        "recipe": "recipe",
        "regul_freq": "regul_freq",
        "procrustes": "procrustes_mode",
        "amp": "amp",
        "channels_last": "channels_last",
        "seed": "seed",
        "num_classes": "num_classes",
        "limit_train": "limit_train",
        "limit_test": "limit_test",
    }
    conflicts = []
    for name, value in config.given().items():
        if name in RESUMABLE_CHANGES or name == "download":
            continue
        if name == "tau":
            old = recorded.get("model_kwargs", {}).get("tau")
        elif name == "optimizer":
            old = recorded_optimizer(recorded)
        elif name == "model_kwargs":
            old = {k: recorded.get("model_kwargs", {}).get(k) for k in value}
        else:
            old = recorded.get(mapping.get(name, name))
        if old != value:
            conflicts.append(f"--{name.replace('_', '-')} {value} (the run has {old})")
    if config.dataset != recorded.get("dataset"):
        conflicts.append(f"--dataset {config.dataset} (the run has {recorded.get('dataset')})")
    return conflicts
