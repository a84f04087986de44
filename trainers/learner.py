"""The network being trained and what updates it: model, optimizer, scaler, schedule, Procrustes step.

:meth:`Learner.build` makes them in a fixed order from the run seed, so every process starts
from identical weights; :meth:`Learner.update` is one optimizer step, with the family's two
hooks (tau-ResNet's averaged tau gradient before it, ProcResNet's projection after it).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from normresnet_export.models import create_model
from trainers.distributed import Communicator
from trainers.optim import LRSchedule, average_tau_gradient, build_optimizer
from trainers.procrustes import ProcrustesStep
from trainers.settings import RunSettings


@dataclass
class Learner:
    """What one optimizer step changes.

    Attributes:
        model: The (unwrapped) model.
        optimizer: SGD or AdamW with the recipe's parameter groups.
        scaler: The AMP gradient scaler, or ``None`` in float32.
        schedule: Sets the learning rate before each step.
        procrustes: ProcResNet's projection after each step, or ``None``.
        tau_grad_average: Divide the shared tau's gradient by the number of blocks.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    schedule: LRSchedule
    procrustes: ProcrustesStep | None
    tau_grad_average: bool

    @classmethod
    def build(cls, settings: RunSettings, comm: Communicator) -> Learner:
        """Build everything from ``settings``; the initial weights are a function of the run seed."""
        torch.manual_seed(settings.seed)  # identical initial weights in every process
        model = create_model(settings.arch, **settings.model_kwargs).to(settings.device)
        if settings.channels_last:
            model = model.to(memory_format=torch.channels_last)
        recipe = settings.recipe
        optimizer = build_optimizer(
            model,
            kind=settings.optimizer,
            lr=settings.lr,
            momentum=recipe.momentum,
            nesterov=recipe.nesterov,
            weight_decay=settings.weight_decay,
            decay_on=recipe.decay_on,
            lr_groups=recipe.lr_groups,
        )
        procrustes = (
            ProcrustesStep(
                model,  # type: ignore[arg-type]
                regul_freq=float(settings.regul_freq or 0.0),
                mode=str(settings.procrustes_mode),
                seed=settings.seed,
                comm=comm,
            )
            if settings.projects
            else None
        )
        return cls(
            model=model,
            optimizer=optimizer,
            scaler=torch.amp.GradScaler("cuda") if settings.amp else None,
            schedule=LRSchedule(settings.schedule, settings.steps_per_epoch),
            procrustes=procrustes,
            tau_grad_average=settings.tau_grad_average,
        )

    @property
    def projections(self) -> int:
        """Procrustes projections so far (0 for models without the step)."""
        return self.procrustes.projections if self.procrustes is not None else 0

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The forward pass's precision: float16 autocast under AMP, else nothing."""
        if self.scaler is not None:
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def update(self, loss: torch.Tensor) -> None:
        """One step on ``loss``: backward, the tau hook, the optimizer step, then maybe a projection."""
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
        if self.procrustes is not None:
            self.procrustes()
