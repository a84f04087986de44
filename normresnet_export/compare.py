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
        reference_finite: Whether the reference's outputs were finite: when they are not, the
            reference itself overflowed and nothing can be verified against it.
    """

    max_abs: float | None
    max_rel: float | None
    top1_agreement: float
    finite: bool = True
    reference_finite: bool = True


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
        reference_finite = all(bool(torch.isfinite(e).all()) for e, _ in pairs)
        return Deviation(
            max_abs=None,
            max_rel=None,
            top1_agreement=agreement,
            finite=False,
            reference_finite=reference_finite,
        )
    max_abs = max((a.double() - e.double()).abs().max().item() for e, a in pairs)
    scale = max(e.abs().max().item() for e, _ in pairs)
    max_rel = max_abs / scale if scale > 0 else max_abs
    return Deviation(max_abs=max_abs, max_rel=max_rel, top1_agreement=agreement)


def shortfall(
    found: Deviation,
    limit: float | None,
    *,
    model: str,
    reference: str,
    top1: bool = True,
    precision: str = "",
) -> str | None:
    """Why ``found`` fails its limit, in one clause for a person (``None`` when it passes).

    The fold check, the export check and ``check`` all say it this way, in this order: a
    reference that overflowed (nothing can be verified against it), outputs that are not
    finite, a deviation above the limit, a changed top-1 class (unless ``top1=False``).

    Args:
        found: The measured deviation.
        limit: The largest relative deviation allowed (``None``: none).
        model: What was compared, e.g. "the folded model".
        reference: What it was compared with, e.g. "the unfolded model".
        top1: Whether every top-1 class must agree.
        precision: The arithmetic compared in ("float32"), named in the clause when given.
    """
    outputs = f"{precision} outputs" if precision else "outputs"
    if not found.reference_finite:
        return (
            f"{reference} itself gives non-finite {outputs} (inf or NaN) on these inputs, "
            f"so {model} cannot be verified against it"
        )
    if not found.finite or found.max_rel is None:
        return f"{model} gives non-finite {outputs} (inf or NaN) where {reference} gives finite ones"
    if limit is not None and found.max_rel > limit:
        return (
            f"{model} differs from {reference} by up to {found.max_rel:.2e} of its largest logit "
            f"(max |Δ| {found.max_abs:.2e}), above the limit of {limit:.1e}"
        )
    if top1 and found.top1_agreement < 1.0:
        changed = 1 - found.top1_agreement
        return f"{model} picks another top-1 class than {reference} on {changed:.0%} of the inputs"
    return None
