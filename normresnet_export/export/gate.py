"""The accuracy gate of low-precision artefacts (bfloat16 compute, int8 quantisation).

A float32 artefact must reproduce the unfolded model: every top-1 prediction, logits within the
float32 limit. A bfloat16 or int8 one cannot (bfloat16 keeps 8 significant bits), so it is
judged on what a deployment cares about instead: its top-1 predictions agree with the float32
model's on at least :attr:`Gate.min_agreement` of the inputs (99% by default), and, on labelled
data, its accuracy is at most :attr:`Gate.max_accuracy_drop` below the float32 model's (half a
point by default). The logit deviation is measured and reported beside the verdict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from normresnet_export.compare import Deviation, deviation
from normresnet_export.errors import InputError

#: Compute precisions judged by the gate rather than by the float32 limit.
LOW_PRECISIONS = ("bfloat16", "int8")


@dataclass(frozen=True)
class Gate:
    """What a low-precision artefact must achieve against the float32 reference.

    Attributes:
        min_agreement: Least fraction of inputs whose top-1 class is the reference's.
        max_accuracy_drop: Largest fall of accuracy below the reference's (a fraction: 0.005 is
            half a point), on labelled data.
    """

    min_agreement: float = 0.99
    max_accuracy_drop: float = 0.005

    def __post_init__(self) -> None:
        for name in ("min_agreement", "max_accuracy_drop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise InputError(f"Gate.{name} is a fraction from 0 to 1, got {value!r}")

    @classmethod
    def from_percent(cls, *, min_agreement: float = 99.0, max_accuracy_drop: float = 0.5) -> Gate:
        """The gate of the command line: agreement in percent, the accuracy drop in points.

        Raises:
            InputError: A value outside 0 to 100, naming the option.
        """
        for option, value in (("--min-agreement", min_agreement), ("--max-accuracy-drop", max_accuracy_drop)):
            if not 0.0 <= value <= 100.0:
                raise InputError(f"{option} is in percent (points), from 0 to 100; got {value}")
        return cls(min_agreement=min_agreement / 100.0, max_accuracy_drop=max_accuracy_drop / 100.0)

    def judge(self, expected: torch.Tensor, actual: torch.Tensor, targets: torch.Tensor | None) -> GateResult:
        """The gate's verdict on ``actual`` logits against the float32 ``expected`` ones."""
        measured = deviation([expected], [actual])
        reference = _accuracy(expected, targets)
        return GateResult(
            gate=self,
            deviation=measured,
            samples=len(expected),
            reference_accuracy=reference,
            accuracy=_accuracy(actual, targets),
        )


def _accuracy(logits: torch.Tensor, targets: torch.Tensor | None) -> float | None:
    return None if targets is None else (logits.argmax(1) == targets).double().mean().item()


@dataclass(frozen=True)
class GateResult:
    """A low-precision artefact measured against the float32 reference on ``samples`` inputs."""

    gate: Gate
    deviation: Deviation
    samples: int
    reference_accuracy: float | None
    accuracy: float | None

    @property
    def accuracy_drop(self) -> float | None:
        """How far accuracy fell below the reference's (negative: it rose), or ``None`` unlabelled."""
        if self.accuracy is None or self.reference_accuracy is None:
            return None
        return self.reference_accuracy - self.accuracy

    @property
    def passed(self) -> bool:
        d = self.deviation
        drop = self.accuracy_drop
        # 1e-12: a drop of exactly the limit passes despite the float rounding of the fractions.
        accurate = drop is None or drop <= self.gate.max_accuracy_drop + 1e-12
        return d.finite and d.top1_agreement >= self.gate.min_agreement - 1e-12 and accurate

    def verdict(self) -> str:
        """One line: PASS/FAIL, agreement and accuracy against their limits, the logit deviation."""
        d = self.deviation
        if not d.finite:
            return "FAIL: the outputs are not finite (inf/NaN)"
        text = (
            f"{'PASS' if self.passed else 'FAIL'}: top-1 agreement {d.top1_agreement:.2%} "
            f"(at least {self.gate.min_agreement:.2%}) on {self.samples} inputs"
        )
        if self.accuracy_drop is not None:
            text += (
                f", accuracy {self.accuracy:.2%} against {self.reference_accuracy:.2%} in float32 "
                f"(at most {100 * self.gate.max_accuracy_drop:.2g} points lower)"
            )
        return text + f", max rel logit deviation {d.max_rel:.2e}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, with the verdict."""
        return {
            "gate": asdict(self.gate),
            "deviation": asdict(self.deviation),
            "samples": self.samples,
            "reference_accuracy": self.reference_accuracy,
            "accuracy": self.accuracy,
            "accuracy_drop": self.accuracy_drop,
            "passed": self.passed,
            "verdict": self.verdict(),
        }
