"""The optimizer (the recipe's SGD, or AdamW) over the recipe's parameter groups, and each step's rate.

Which parameters decay, and which learn at a scaled rate, is what distinguishes the
recipes most: ProcResNet and LeNo decay everything;
torch-resnet only conv and linear weights; DiracNet every tensor that is not 1-D (so
alpha, beta, BatchNorm parameters and biases never decay); tau-ResNet learns its scalar
offsets and tau at a tenth of the rate.

The learning rate is set before every step from the schedule (a pure function of the
position), so the "scheduler state" is just the step and epoch counters that the
checkpoint stores anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from normresnet_export.vocabulary import OPTIMIZERS
from trainers.recipes import DecayOn, Schedule

_GROUP_PATTERNS = {
    "offsets": re.compile(r"(^|\.)bias[123][ab]$"),
    "tau": re.compile(r"(^|\.)tau$"),
}


def _decays(module: nn.Module, leaf: str, parameter: nn.Parameter, policy: DecayOn) -> bool:
    if policy == "all":
        return True
    if policy == "multidim":
        return parameter.dim() != 1
    return leaf == "weight" and isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))


def parameter_groups(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    decay_on: DecayOn,
    lr_groups: tuple[tuple[str, float], ...] = (),
) -> list[dict[str, Any]]:
    """Optimizer parameter groups: one per (learning-rate multiplier, decays or not) that has parameters.

    Each group carries ``name``, ``base_lr`` (its unscheduled rate) and its ``weight_decay``.
    Shared parameters (tau-ResNet's one tau, registered in every block) appear once.

    Raises:
        ValueError: An unknown group name in ``lr_groups`` (a bug in a recipe).
    """
    multipliers = dict(lr_groups)
    unknown = set(multipliers) - set(_GROUP_PATTERNS)
    if unknown:
        raise ValueError(f"unknown parameter groups {sorted(unknown)}; known: {sorted(_GROUP_PATTERNS)}")
    modules = dict(model.named_modules())
    buckets: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        owner, _, leaf = name.rpartition(".")
        group = next((g for g in multipliers if _GROUP_PATTERNS[g].search(name)), "main")
        decay = _decays(modules[owner], leaf, parameter, decay_on)
        buckets.setdefault((group, decay), []).append(parameter)
    groups = []
    for (group, decay), params in buckets.items():
        rate = lr * multipliers.get(group, 1.0)
        groups.append(
            {
                "params": params,
                "name": f"{group}{'' if decay else ' (no decay)'}",
                "lr": rate,
                "base_lr": rate,
                "weight_decay": weight_decay if decay else 0.0,
            }
        )
    return groups


def build_optimizer(
    model: nn.Module,
    *,
    kind: str = "sgd",
    lr: float,
    momentum: float,
    nesterov: bool,
    weight_decay: float,
    decay_on: DecayOn,
    lr_groups: tuple[tuple[str, float], ...] = (),
) -> torch.optim.Optimizer:
    """The optimizer over the recipe's parameter groups.

    ``sgd`` is the recipe's SGD, with weight decay as the references apply it (L2 added to
    the gradient). ``adamw`` is AdamW with torch's default betas and epsilon; each group's
    weight decay is decoupled (subtracted from the weights), and ``momentum``/``nesterov``
    do not apply.

    Raises:
        ValueError: ``kind`` is not one of ``OPTIMIZERS`` (``TrainConfig`` checks it first).
    """
    groups = parameter_groups(model, lr=lr, weight_decay=weight_decay, decay_on=decay_on, lr_groups=lr_groups)
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
    if kind == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise ValueError(f"unknown optimizer {kind!r}; expected one of {', '.join(OPTIMIZERS)}")


@dataclass
class LRSchedule:
    """Sets each group's rate to ``base_lr × schedule.factor(position)`` before a step.

    Attributes:
        schedule: The (stretched) schedule.
        steps_per_epoch: Optimizer steps in one epoch.
    """

    schedule: Schedule
    steps_per_epoch: int

    def position(self, epoch: int, global_step: int) -> int:
        """Where the schedule is: the epoch index, or the number of steps taken."""
        return epoch if self.schedule.unit == "epoch" else global_step

    def factor(self, epoch: int, global_step: int) -> float:
        """The factor for the step about to be taken."""
        return self.schedule.factor(self.position(epoch, global_step))

    def apply(self, optimizer: torch.optim.Optimizer, epoch: int, global_step: int) -> float:
        """Set every group's rate for the next step; returns the main group's rate.

        The main group need not be the first: a tau-ResNet's first parameter is its tau, so
        its first group is tau's, at a tenth of the rate.
        """
        factor = self.factor(epoch, global_step)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        return main_lr(optimizer)

    def decays_at_epoch_start(self, epoch: int) -> bool:
        """Whether an epoch-unit schedule changes its factor when ``epoch`` begins."""
        return self.schedule.unit == "epoch" and epoch > 0 and epoch in self.schedule.milestones

    def state_dict(self, epoch: int, global_step: int) -> dict[str, Any]:
        """What a checkpoint records about the schedule (for people; resuming recomputes it)."""
        return {
            **self.schedule.to_dict(),
            "steps_per_epoch": self.steps_per_epoch,
            "epoch": epoch,
            "global_step": global_step,
            "factor": self.factor(epoch, global_step),
        }


def main_lr(optimizer: torch.optim.Optimizer) -> float:
    """The current rate of the main group (its name starts with ``main``; else the first group)."""
    for group in optimizer.param_groups:
        if str(group.get("name", "")).startswith("main"):
            return float(group["lr"])
    return float(optimizer.param_groups[0]["lr"])


def average_tau_gradient(model: nn.Module) -> None:
    """Divide a shared tau's gradient by the number of blocks that use it (tau-ResNet).

    The one tau parameter is registered in every block, so its gradient is the sum over the
    blocks; the reference averages it (only under DataParallel — here always).
    """
    tau = getattr(model, "tau", None)
    if not isinstance(tau, nn.Parameter) or tau.grad is None:
        return
    blocks = sum(1 for m in model.modules() if m is not model and getattr(m, "tau", None) is tau)
    if blocks > 1:
        tau.grad.div_(blocks)
