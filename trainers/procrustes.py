"""The Procrustes regularisation step of ProcResNet training, and how far the projected layers drift.

After every optimizer step, with probability ``regul_freq``, the three transition
convolutions of a ProcResNet (stem ``conv1``, ``trans_conv1``, ``trans_conv2``) are projected so
that every singular value of their operator equals ``sqrt(n_out/n_in)``
(``ProcResNet.regularize_convs``; maths in ``normresnet_export.nn.procrustes``). The coin is
drawn from a generator of its own, seeded from the run seed and saved in every checkpoint,
so a resumed run projects at the same steps; every DDP process draws the same coins, and rank
0's projected weights are broadcast so that the processes cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from normresnet_export.errors import InputError
from normresnet_export.models.procresnet import ProcResNet
from normresnet_export.nn.procrustes import PROJECTION_MODES, projection_deviation
from trainers.distributed import Communicator
from trainers.transforms import sample_seed

_STREAM = 0x50524F43  # "PROC": keeps this generator's seed apart from every other use of the run seed


def supports_projection(model: nn.Module) -> bool:
    """Whether the model has the Procrustes step (ProcResNets do; their baselines do not)."""
    return isinstance(model, ProcResNet)


class ProcrustesStep:
    """Calls ``model.regularize_convs(p, mode, generator)`` after each optimizer step.

    Args:
        model: The (unwrapped) ProcResNet.
        regul_freq: Probability of projecting after a step, in [0, 1].
        mode: ``"exact"`` or ``"reference"``.
        seed: Run seed; the coin generator is seeded from it.
        comm: Collectives, to keep DDP processes identical.
    """

    def __init__(
        self, model: ProcResNet, *, regul_freq: float, mode: str, seed: int, comm: Communicator
    ) -> None:
        if mode not in PROJECTION_MODES:
            raise InputError(
                f"unknown Procrustes mode {mode!r}; expected one of {', '.join(PROJECTION_MODES)}"
            )
        if not 0.0 <= regul_freq <= 1.0:
            raise InputError(f"--regul-freq is a probability in [0, 1], got {regul_freq}")
        self.model = model
        self.regul_freq = regul_freq
        self.mode = mode
        self.comm = comm
        self.generator = torch.Generator().manual_seed(sample_seed(seed, _STREAM))
        self.projections = 0

    def __call__(self) -> bool:
        """Maybe project; returns whether it did."""
        projected = self.model.regularize_convs(self.regul_freq, mode=self.mode, generator=self.generator)  # type: ignore[arg-type]
        if projected:
            self.projections += 1
            self.comm.broadcast_([conv.weight.data for conv in self.model.regularized_convs().values()])
        return projected

    def state_dict(self) -> dict[str, Any]:
        """Generator state and projection count."""
        return {"generator": self.generator.get_state(), "projections": self.projections}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.generator.set_state(state["generator"])
        self.projections = int(state["projections"])


def deviation_report(model: nn.Module) -> dict[str, dict[str, float]]:
    """Per regularised conv: target singular value, min/max of the operator's, max relative deviation.

    For the 1×1 transitions after an exact projection the deviation is ~1e-7; the 3×3 stem
    keeps a deviation after any projection, because cropping the projected kernel back to 3×3
    is not norm-preserving. Empty for models without the Procrustes step.
    """
    if not supports_projection(model):
        return {}
    grids = ProcResNet.PROCRUSTES_GRIDS
    return {
        name: projection_deviation(conv.weight, grids[name])
        for name, conv in model.regularized_convs().items()  # type: ignore[operator]
    }


def summarise_deviation(report: dict[str, dict[str, float]]) -> dict[str, float]:
    """Flat metrics for ``metrics.jsonl``: ``procrustes_dev_<layer>`` = max relative deviation."""
    return {f"procrustes_dev_{name}": round(values["max_rel_dev"], 6) for name, values in report.items()}
