"""A training request resolved, once, into the frozen settings the run uses: :func:`resolve_settings`.

Every value a run uses is decided here, before any work: the run directory (and on
``--resume`` the recorded run, whose values win), the recipe, the model's keywords (checked
by building the model's shape only), the device and precision, and the data set with what
follows from it — the classes, the steps per epoch and the schedule stretched to the run's
length. Bad input therefore fails here, with one message, before a process group is joined
or a model is built.

The rest of the trainer reads these attributes and nothing else; :meth:`RunSettings.record`
is the same values as plain data, written to ``config.json`` and into every checkpoint, and
read back (as the recorded run) by ``--resume``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import Parameter

from normresnet_export.errors import InputError
from normresnet_export.limits import MAX_BATCH, MAX_SEED, check_int, thread_limit
from normresnet_export.models import create_model, model_info
from trainers.config import TrainConfig, conflicts_with, recorded_optimizer
from trainers.datasets import DataSource, load_data
from trainers.distributed import Topology, resolve_device
from trainers.procrustes import supports_projection
from trainers.recipes import Recipe, Schedule, default_recipe_name, get_recipe
from trainers.sampling import epoch_batches
from trainers.state import CONFIG_FILE, LAST, Resumed, read_run

_DEFAULT_PROJECTION = "exact"


@dataclass(frozen=True)
class RunSettings:
    """Every value one training run uses, resolved from the request, the recipe and the recorded run.

    Attributes:
        arch: Registered model name.
        family: The model's family.
        run_dir: The run directory.
        resumed: The run this one continues (its recorded configuration and ``last.pt``), or
            ``None`` for a new run.
        recipe: The training recipe; the fields below override its values.
        data: The opened data set (its size and classes decide the steps and the classifier).
        model_kwargs: Every builder keyword, ``num_classes`` included.
        device: The device of this process.
        amp: float16 autocast with gradient scaling.
        channels_last: Channels-last memory format.
        seed: Run seed.
        batch_size: Images per optimizer step over all processes.
        world_size: Number of processes.
        epochs: Epochs to train to.
        limit_train: Training images used, when limited.
        limit_test: Test images used, when limited.
        log_gradnorm: Steps between two records of the per-block gradient-norm ratios (``None``: none).
        workers: Data-loader worker processes.
        steps_per_epoch: Optimizer steps in one epoch (per process; the same on every process).
        schedule: The learning-rate schedule, stretched to this run's length.
        optimizer: ``sgd`` or ``adamw`` (``vocabulary.OPTIMIZERS``).
        lr: Initial learning rate of the main parameter group.
        weight_decay: Weight decay of the parameters the recipe decays.
        regul_freq: Procrustes projection probability per step (``None``: no projection).
        procrustes_mode: ``exact`` or ``reference`` (``None``: the model has no Procrustes step).
        tau_grad_average: Divide the shared tau's gradient by the number of blocks.
    """

    arch: str
    family: str
    run_dir: Path
    resumed: Resumed | None = field(repr=False, compare=False)
    recipe: Recipe
    data: DataSource = field(repr=False, compare=False)
    model_kwargs: dict[str, Any]
    device: torch.device
    amp: bool
    channels_last: bool
    seed: int
    batch_size: int
    world_size: int
    epochs: int
    limit_train: int | None
    limit_test: int | None
    log_gradnorm: int | None
    workers: int
    steps_per_epoch: int
    schedule: Schedule
    optimizer: str
    lr: float
    weight_decay: float
    regul_freq: float | None
    procrustes_mode: str | None
    tau_grad_average: bool

    @property
    def projects(self) -> bool:
        """Whether the model takes the Procrustes step after each optimizer step."""
        return self.procrustes_mode is not None

    @property
    def batch_size_per_process(self) -> int:
        """Training images per step in each process."""
        return self.batch_size // self.world_size

    @property
    def test_batch_size(self) -> int:
        """Evaluation images per batch over all processes."""
        return self.batch_size * self.recipe.test_batch_multiplier

    @property
    def test_batch_size_per_process(self) -> int:
        """Evaluation images per batch in each process (at least one)."""
        return max(1, self.test_batch_size // self.world_size)

    @property
    def precision(self) -> str:
        """``float32`` or the mixed-precision mode, in words."""
        return "float16 autocast + gradient scaling (AMP)" if self.amp else "float32"

    def record(self) -> dict[str, Any]:
        """The settings as plain JSON data: ``config.json``, and ``train_state["config"]`` of checkpoints."""
        recipe, data = self.recipe, self.data
        return {
            "arch": self.arch,
            "family": self.family,
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
            "log_gradnorm": self.log_gradnorm,
            "augmentation": data.augmentation,
            "normalization": {"mean": list(data.mean), "std": list(data.std)},
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "batch_size_per_process": self.batch_size_per_process,
            "test_batch_size": self.test_batch_size,
            "steps_per_epoch": self.steps_per_epoch,
            "optimizer": self.optimizer,
            "lr": self.lr,
            **({"momentum": recipe.momentum, "nesterov": recipe.nesterov} if self.optimizer == "sgd" else {}),
            "weight_decay": self.weight_decay,
            "weight_decay_on": recipe.decay_on,
            "lr_groups": [list(g) for g in recipe.lr_groups],
            "schedule": self.schedule.to_dict(),
            "momentum_reset": recipe.momentum_reset,
            "tau_grad_average": self.tau_grad_average,
            "regul_freq": self.regul_freq,
            "procrustes_mode": self.procrustes_mode,
            "amp": self.amp,
            "precision": self.precision,
            "channels_last": self.channels_last,
            "device": str(self.device),
            "world_size": self.world_size,
            "seed": self.seed,
            "workers": self.workers,
        }


#: What makes ``last.pt`` a checkpoint of the run in its directory: the values its ``config.json``
#: must share with the configuration ``last.pt`` recorded (the rest, e.g. ``epochs`` or
#: ``workers``, may change on ``--resume``).
_RUN_IDENTITY = (
    "arch",
    "model_kwargs",
    "dataset",
    "recipe",
    "seed",
    "batch_size",
    "lr",
    "weight_decay",
    "optimizer",
    "num_classes",
    "regul_freq",
    "procrustes_mode",
    "limit_train",
    "limit_test",
)


def _check_numbers(request: TrainConfig, topology: Topology) -> None:
    """Refuse a seed, worker count or batch size outside its range, before the run directory is read.

    ``--workers 0`` is honoured: the data is loaded in the main process (the default for the
    in-memory digits). Lower bounds of the other numbers are :class:`TrainConfig`'s.
    """
    if request.seed is not None:
        check_int("--seed", request.seed, low=0, high=MAX_SEED)
    if request.workers is not None:
        check_int(
            "--workers",
            request.workers,
            low=0,
            high=thread_limit(),
            hint="0 loads the data in the main process",
        )
    if request.batch_size is not None:
        world = topology.world_size
        check_int(
            "--batch-size",
            request.batch_size,
            low=1,
            high=MAX_BATCH * world,
            hint=f"it is the global batch over {world} process(es), at most {MAX_BATCH} each",
        )


def _require_same_run(run_dir: Path, resumed: Resumed) -> None:
    """Refuse a ``last.pt`` that belongs to another run than the directory's ``config.json``.

    ``--resume`` continues from ``last.pt`` and adopts the configuration it recorded; a
    ``last.pt`` copied in from another run would silently change the run's settings and
    rewrite ``config.json``.

    Raises:
        InputError: Naming each value that differs, as both files hold it.
    """
    if resumed.checkpoint is None:
        return
    try:
        recorded = json.loads((run_dir / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return  # read_run read it a moment ago; a file that changed since is not this check's business
    differ = [
        f"{key} {resumed.config.get(key)!r} in {LAST} vs {recorded.get(key)!r} in {CONFIG_FILE}"
        for key in _RUN_IDENTITY
        if key in recorded and resumed.config.get(key) != recorded.get(key)
    ]
    if differ:
        raise InputError(
            f"--resume: {run_dir / LAST} belongs to another run than {run_dir / CONFIG_FILE}: "
            f"{'; '.join(differ)}; put back the run's own {LAST}, or start a new run with another --out"
        )


def _open_run(request: TrainConfig, run_dir: Path) -> Resumed | None:
    """The recorded run on ``--resume`` (refusing changed settings); otherwise check ``run_dir`` is free."""
    if not request.resume:
        if (run_dir / CONFIG_FILE).exists() or (run_dir / LAST).exists():
            raise InputError(
                f"{run_dir} already holds a run; pass --resume to continue it, or choose another --out"
            )
        return None
    resumed = read_run(run_dir, request.arch)
    _require_same_run(run_dir, resumed)
    conflicts = conflicts_with(request, resumed.config)
    if conflicts:
        raise InputError(
            f"--resume: {run_dir} was started with other settings: {'; '.join(conflicts)}; "
            "drop these options to continue the run as it was, or start a new run with another --out"
        )
    return resumed


def _schedule(recipe: Recipe, recorded: Mapping[str, Any], epochs: int, steps_per_epoch: int) -> Schedule:
    """The recorded run's schedule (a resumed run keeps its decays), or the recipe's stretched to the run."""
    if recorded.get("schedule"):
        s = recorded["schedule"]
        return Schedule(s["unit"], tuple(s["milestones"]), tuple(s["factors"]), s["length"])
    length = epochs if recipe.schedule.unit == "epoch" else epochs * steps_per_epoch
    return recipe.schedule.stretched(length)


def resolve_settings(request: TrainConfig, topology: Topology) -> RunSettings:
    """Resolve a request into the run's settings: request, then the recorded run, then the recipe.

    Opens the data set (its size and classes are part of the settings) but builds no model
    and starts no process group.

    Raises:
        InputError: Unknown model or data set, a seed, worker count or batch size out of range,
            a run directory that holds another run (or, on ``--resume``, a run with other
            settings, or a ``last.pt`` of another run), options the model does not take, CUDA
            asked for but unusable, a batch that does not divide over the processes, missing
            data, or a class count that differs from the data set's.
    """
    info = model_info(request.arch)
    _check_numbers(request, topology)
    run_dir = request.out or Path("runs") / (
        f"{request.arch}-{request.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    resumed = _open_run(request, run_dir)
    recorded: Mapping[str, Any] = resumed.config if resumed else {}
    recipe = get_recipe(request.recipe or recorded.get("recipe") or default_recipe_name(request.arch))

    def pick(name: str, default: Any) -> Any:
        value = getattr(request, name)
        return value if value is not None else recorded.get(name, default)

    # The model's keywords: checked now by building its shape only (no memory, no init).
    kwargs = {**recorded.get("model_kwargs", {}), **request.model_kwargs}
    if request.tau is not None:
        if info.family != "tau-resnet":
            raise InputError(f"--tau applies to tau-ResNets; {request.arch} is a {info.family} model")
        kwargs["tau"] = request.tau
    kwargs.pop("num_classes", None)
    with torch.device("meta"):
        shape_only = create_model(request.arch, **kwargs)
    projects = supports_projection(shape_only)
    if not projects and (request.regul_freq is not None or request.procrustes is not None):
        raise InputError(
            f"--regul-freq and --procrustes apply to ProcResNets (procresnet166 …); "
            f"{request.arch} has no Procrustes step"
        )

    device = resolve_device(request.device, topology)
    cuda = device.type == "cuda"
    amp = request.amp if request.amp is not None else recorded.get("amp", recipe.amp and cuda)
    if amp and not cuda:
        raise InputError(
            "--amp (float16 autocast with gradient scaling) needs CUDA; training runs on the CPU here, "
            "so drop --amp (or pass --no-amp)"
        )
    seed = int(pick("seed", recipe.seed))
    batch_size = int(pick("batch_size", recipe.batch_size))
    world = topology.world_size
    if batch_size % world:
        raise InputError(
            f"the batch size ({batch_size}) is the global batch and must divide evenly over the "
            f"{world} processes; pass a multiple of {world}"
        )
    epochs = int(pick("epochs", recipe.epochs))

    limit_train, limit_test = pick("limit_train", None), pick("limit_test", None)
    data = load_data(
        request.dataset,
        recipe=recipe,
        input_size=info.input_size[-1],
        data_dir=request.data_dir if request.data_dir is not None else recorded.get("data_dir"),
        download=request.download,
        seed=seed,
        limit_train=limit_train,
        limit_test=limit_test,
    )
    num_classes = pick("num_classes", None)
    if num_classes is not None and num_classes != data.num_classes:
        raise InputError(
            f"--num-classes is {num_classes}, but {request.dataset} has {data.num_classes} classes "
            f"({', '.join(data.labels[:5])}{', …' if data.num_classes > 5 else ''}); "
            "drop --num-classes or point --data-dir at the data set you meant"
        )
    steps_per_epoch = len(
        epoch_batches(data.num_train, batch_size // world, epoch=0, seed=seed, topology=topology)
    )
    return RunSettings(
        arch=request.arch,
        family=info.family,
        run_dir=run_dir,
        resumed=resumed,
        recipe=recipe,
        data=data,
        model_kwargs=info.resolve_kwargs(**kwargs, num_classes=data.num_classes),
        device=device,
        amp=bool(amp),
        channels_last=bool(pick("channels_last", False)),
        seed=seed,
        batch_size=batch_size,
        world_size=world,
        epochs=epochs,
        limit_train=limit_train,
        limit_test=limit_test,
        log_gradnorm=pick("log_gradnorm", None),
        # Digits are tiny and in memory: no worker processes; other sets: the recipe's, at most four.
        workers=request.workers
        if request.workers is not None
        else (0 if request.dataset == "digits" else min(recipe.workers, 4)),
        steps_per_epoch=steps_per_epoch,
        schedule=_schedule(recipe, recorded, epochs, steps_per_epoch),
        optimizer=request.optimizer or recorded_optimizer(recorded),
        lr=float(pick("lr", recipe.lr)),
        weight_decay=float(pick("weight_decay", recipe.weight_decay)),
        regul_freq=float(pick("regul_freq", recipe.regul_freq or 0.0)) if projects else None,
        procrustes_mode=(
            (request.procrustes or recorded.get("procrustes_mode") or _DEFAULT_PROJECTION)
            if projects
            else None
        ),
        tau_grad_average=recipe.tau_grad_average and isinstance(getattr(shape_only, "tau", None), Parameter),
    )
