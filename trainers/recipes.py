"""Each paper's training recipe as named, typed defaults.

A recipe fixes what the reference training script did: epochs, batch size, SGD settings,
which parameters get weight decay, per-group learning rates, the learning-rate schedule, the
CIFAR augmentation's padding and the normalisation statistics, plus the family's own rules
(ProcResNet's projection frequency, tau-ResNet's averaged tau gradient, DiracNet's momentum
reset). ``normexport train`` picks the recipe of the model's family; command-line values
override single fields.

Schedules are written for the reference's own length and stretch with it: a run with
``--epochs 30`` of a 300-epoch recipe decays at epochs 15 and 22 instead of never. At the
recipe's own length (and, for per-step schedules, the reference's steps per epoch) the
milestones are exactly the reference's.

Deliberate decisions about the references' quirks:

* LeNo steps its scheduler at the *start* of each epoch, so every decay happens one epoch
  early; DiracNet decays at the start of the 1-based epochs it lists. Both recipes
  use these *effective* epochs (0-based 29/59/79 and 59/119/159), because that is what
  produced the published numbers.
* tau-ResNet averages tau's gradient over the blocks only under DataParallel; here it
  is always averaged, as the code intends.
* DiracNet creates a new optimizer at each decay, which drops the momentum; reproduced
  (``momentum_reset``).
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from normresnet_export.errors import InputError
from normresnet_export.models import model_info

DecayOn = Literal["all", "conv_linear_weights", "multidim"]
Padding = Literal["reflect", "zero"]


@dataclass(frozen=True)
class Schedule:
    """A piecewise-constant learning-rate factor.

    ``factors[i]`` applies from ``milestones[i-1]`` (inclusive) to ``milestones[i]``
    (exclusive), counted in ``unit`` (0-based epoch index, or the number of optimizer steps
    taken so far); ``factors[0]`` applies before the first milestone.

    Attributes:
        unit: ``"epoch"`` or ``"step"``.
        milestones: Increasing positions, written for a run of ``length`` units.
        factors: One more than ``milestones``.
        length: The run length (epochs or steps) the milestones are written for.
    """

    unit: Literal["epoch", "step"]
    milestones: tuple[int, ...]
    factors: tuple[float, ...]
    length: int

    def __post_init__(self) -> None:
        if len(self.factors) != len(self.milestones) + 1:
            raise InputError(
                f"a schedule needs one more factor than milestones, got {len(self.factors)} factors "
                f"for {len(self.milestones)} milestones"
            )
        if list(self.milestones) != sorted(self.milestones):
            raise InputError(f"schedule milestones must increase, got {list(self.milestones)}")

    def stretched(self, length: int) -> Schedule:
        """The same schedule for a run of ``length`` units (milestones scaled and rounded)."""
        if length == self.length:
            return self
        milestones: list[int] = []
        factors = [self.factors[0]]
        for milestone, factor in zip(self.milestones, self.factors[1:], strict=True):
            # A first phase keeps at least one unit: a 1-epoch run of a 300-epoch recipe starts at its lr.
            position = max(1, round(milestone * length / self.length)) if milestone > 0 else 0
            if position == 0:
                factors[0] = factor
            elif milestones and position == milestones[-1]:  # a phase shrunk to nothing
                factors[-1] = factor
            else:
                milestones.append(position)
                factors.append(factor)
        return replace(self, milestones=tuple(milestones), factors=tuple(factors), length=length)

    def factor(self, position: int) -> float:
        """The factor at ``position`` (an epoch index or a step count, as ``unit`` says)."""
        return self.factors[bisect.bisect_right(self.milestones, position)]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible form (as recorded in the run's config)."""
        return {
            "unit": self.unit,
            "milestones": list(self.milestones),
            "factors": list(self.factors),
            "length": self.length,
        }


@dataclass(frozen=True)
class Recipe:
    """One reference training recipe.

    Attributes:
        name: Registry name (``--recipe``).
        source: Where the values come from (repository and file).
        epochs: Training epochs.
        batch_size: Images per optimizer step, over all processes.
        lr: Initial learning rate of the main parameter group.
        schedule: Learning-rate factor over the run.
        momentum: SGD momentum.
        nesterov: Nesterov momentum.
        weight_decay: L2 coefficient of the parameters that decay.
        decay_on: Which parameters decay: ``all``; ``conv_linear_weights`` (biases and
            BatchNorm parameters do not); ``multidim`` (tensors with ``dim != 1``, so DiracNet's
            alpha/beta, BatchNorm parameters and biases do not).
        lr_groups: ``(group, multiplier)`` for parameter groups at a scaled learning rate:
            ``offsets`` (tau-ResNet's scalar ``bias1a``… offsets) and ``tau``.
        padding: Padding of the 32×32 random-crop augmentation on small datasets.
        normalization: Statistics for CIFAR (a ``normresnet_export.preprocess.PRESETS`` name),
            or ``None`` for the data set's own.
        amp: Mixed precision by default (on CUDA).
        seed: Default seed.
        regul_freq: ProcResNet projection probability after each step (``None``: no projection).
        tau_grad_average: Divide the shared tau's gradient by the number of blocks.
        momentum_reset: Drop the momentum buffers at each learning-rate decay.
        test_batch_multiplier: Evaluation batch = this × training batch.
        workers: Default data-loader worker processes for file-based data sets.
    """

    name: str
    source: str
    epochs: int
    batch_size: int
    lr: float
    schedule: Schedule
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    decay_on: DecayOn = "all"
    lr_groups: tuple[tuple[str, float], ...] = ()
    padding: Padding = "zero"
    normalization: str | None = None
    amp: bool = False
    seed: int = 0
    regul_freq: float | None = None
    tau_grad_average: bool = False
    momentum_reset: bool = False
    test_batch_multiplier: int = 1
    workers: int = 4
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible form."""
        data = asdict(self)
        data["schedule"] = self.schedule.to_dict()
        data["lr_groups"] = [list(g) for g in self.lr_groups]
        data["notes"] = list(self.notes)
        return data


def _epochs(milestones: tuple[int, ...], gamma: float, epochs: int) -> Schedule:
    return Schedule(
        "epoch", milestones, tuple(round(gamma**i, 12) for i in range(len(milestones) + 1)), epochs
    )


# torch-resnet's example steps the scheduler every iteration; its boundaries are written for
# CIFAR with batch 128 (391 steps per epoch, the last one partial) over 160 epochs.
_TORCH_RESNET_STEPS = 160 * 391

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            name="procresnet",
            source="ProcResNet_PyTorch main.py, README.md",
            epochs=300,
            batch_size=128,
            lr=0.1,
            schedule=_epochs((150, 225), 0.1, 300),
            weight_decay=1e-4,
            decay_on="all",
            padding="reflect",
            normalization="cifar-wrn",
            regul_freq=0.5,
            workers=1,
        ),
        Recipe(
            name="leno",
            source="LeNo main.py, args_file.py",
            epochs=90,
            batch_size=256,
            lr=0.1,
            schedule=_epochs((29, 59, 79), 0.1, 90),
            weight_decay=1e-4,
            decay_on="all",
            normalization=None,
            workers=4,
            notes=("decays at the effective epochs 29/59/79 (the reference steps its scheduler early)",),
        ),
        Recipe(
            name="tau-resnet-cifar",
            source="tau-ResNet cifar/cifar_train.py",
            epochs=200,
            batch_size=128,
            lr=0.1,
            schedule=_epochs((100, 150), 0.1, 200),
            weight_decay=1e-4,
            decay_on="all",
            lr_groups=(("offsets", 0.1), ("tau", 0.1)),
            normalization="cifar10",
            tau_grad_average=True,
            seed=0,
            workers=2,
        ),
        Recipe(
            name="tau-resnet-imagenet",
            source="tau-ResNet imagenet/imagenet_train.py",
            epochs=200,
            batch_size=256,
            lr=0.1,
            schedule=_epochs((60, 120), 0.1, 200),
            weight_decay=1e-4,
            decay_on="all",
            lr_groups=(("offsets", 0.1), ("tau", 0.1)),
            tau_grad_average=True,
            workers=4,
        ),
        Recipe(
            name="torch-resnet",
            source="torch-resnet example/example.py",
            epochs=160,
            batch_size=128,
            lr=0.1,
            schedule=Schedule("step", (401, 32001, 48001), (0.1, 1.0, 0.1, 0.01), _TORCH_RESNET_STEPS),
            weight_decay=1e-4,
            decay_on="conv_linear_weights",
            normalization=None,
            amp=True,
            seed=666,
            test_batch_multiplier=4,
            workers=2,
        ),
        Recipe(
            name="torch-resnet-wide",
            source="torch-resnet example/example.py, wide-ResNet schedule",
            epochs=160,
            batch_size=128,
            lr=0.1,
            schedule=Schedule(
                "step", (401, 23001, 46001, 62001), (0.1, 1.0, 0.2, 0.04, 0.008), _TORCH_RESNET_STEPS
            ),
            weight_decay=1e-4,
            decay_on="conv_linear_weights",
            normalization=None,
            amp=True,
            seed=666,
            test_batch_multiplier=4,
            workers=2,
        ),
        Recipe(
            name="imagenet-classic",
            source="not in the spec: torchvision's reference ImageNet recipe (step 30, 90 epochs)",
            epochs=90,
            batch_size=256,
            lr=0.1,
            schedule=_epochs((30, 60), 0.1, 90),
            weight_decay=1e-4,
            decay_on="conv_linear_weights",
            amp=True,
            workers=4,
            notes=("torch-resnet publishes no ImageNet recipe; this is the classic one",),
        ),
        Recipe(
            name="diracnet-cifar",
            source="diracnets train.py, README.md",
            epochs=200,
            batch_size=128,
            lr=0.1,
            schedule=_epochs((59, 119, 159), 0.2, 200),
            weight_decay=5e-4,
            decay_on="multidim",
            padding="reflect",
            normalization="cifar-wrn",
            momentum_reset=True,
            seed=1,
            workers=4,
            notes=("decays at the start of the 1-based epochs 60/120/160, i.e. 0-based 59/119/159",),
        ),
        Recipe(
            name="diracnet-imagenet",
            source="diracnets train.py, README.md ImageNet command",
            epochs=100,
            batch_size=256,
            lr=0.1,
            schedule=_epochs((29, 59, 89), 0.1, 100),
            weight_decay=1e-4,
            decay_on="multidim",
            momentum_reset=True,
            seed=1,
            workers=4,
        ),
    )
}


def default_recipe_name(arch: str) -> str:
    """The recipe of ``arch``'s family and design (CIFAR or ImageNet).

    Raises:
        UnknownModelError: ``arch`` is not registered.
    """
    info = model_info(arch)
    imagenet = info.dataset == "imagenet"
    if info.family == "procresnet":
        return "procresnet"
    if info.family == "leno":
        return "leno"
    if info.family == "tau-resnet":
        return "tau-resnet-imagenet" if imagenet else "tau-resnet-cifar"
    if info.family == "diracnet":
        return "diracnet-imagenet" if imagenet else "diracnet-cifar"
    if imagenet:
        return "imagenet-classic"
    return "torch-resnet-wide" if "wide" in arch else "torch-resnet"


def get_recipe(name: str) -> Recipe:
    """A recipe by name.

    Raises:
        InputError: Unknown name; the message lists the known ones.
    """
    try:
        return RECIPES[name]
    except KeyError:
        raise InputError(f"unknown recipe {name!r}; expected one of {', '.join(RECIPES)}") from None
