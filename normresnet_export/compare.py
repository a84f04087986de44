"""Comparing two models' outputs: the one measurement behind the fold check, export verification, check.

Outputs are compared as matching lists of ``[samples, outputs]`` tensors (one per input
batch). The deviation is relative to the largest absolute logit of the reference, so one
limit serves logits of any scale, and top-1 agreement is counted beside it. A comparison
in which either side is not finite is void, and says so, rather than producing ``nan``
numbers that every threshold test would silently pass or fail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Deviation:
    """How far one model's outputs are from a reference's, on the same inputs.

    Attributes:
        max_abs: Largest absolute difference (``None`` when an output is not finite).
        max_rel: ``max_abs`` divided by the largest absolute output of the reference.
        top1_agreement: Fraction of inputs whose arg-max class agrees.
        finite: Whether both models' outputs were finite (an overflow makes the comparison void).
    """

    max_abs: float | None
    max_rel: float | None
    top1_agreement: float
    finite: bool = True


def run_outputs(
    model: Callable[[torch.Tensor], torch.Tensor], inputs: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """``model``'s output on each input, flattened per sample: one ``[samples, outputs]`` tensor per input."""
    with torch.no_grad():
        return [model(x).flatten(1) for x in inputs]


def deviation(expected: Sequence[torch.Tensor], actual: Sequence[torch.Tensor]) -> Deviation:
    """How far ``actual`` is from ``expected`` (matching lists of ``[samples, outputs]`` tensors)."""
    pairs = list(zip(expected, actual, strict=True))
    agreement = torch.cat([a.argmax(1) == e.argmax(1) for e, a in pairs]).double().mean().item()
    if not all(torch.isfinite(e).all() and torch.isfinite(a).all() for e, a in pairs):
        return Deviation(max_abs=None, max_rel=None, top1_agreement=agreement, finite=False)
    max_abs = max((a.double() - e.double()).abs().max().item() for e, a in pairs)
    scale = max(e.abs().max().item() for e, _ in pairs)
    max_rel = max_abs / scale if scale > 0 else max_abs
    return Deviation(max_abs=max_abs, max_rel=max_rel, top1_agreement=agreement)
