"""What ``normexport check`` measured: the agreement of every backend, and their latency."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from normresnet_export.check.agreement import Agreement
from normresnet_export.compare import shortfall


@dataclass
class CheckReport:
    """What ``normexport check`` measured.

    Attributes:
        data: The inputs compared on, in words.
        samples: How many.
        reference: The unfolded eager backend's description (``Backend.to_dict``).
        reference_accuracy: Its accuracy on labelled data, else ``None``.
        agreements: Every other backend against it.
        latency: Timing rows (empty with ``latency=False``).
        reference_kind: ``unfolded`` (a trained checkpoint) or ``folded`` (a folded checkpoint
            as the reference: deviations are measured against its float32 model).
    """

    data: str
    samples: int
    reference: dict[str, Any]
    reference_accuracy: float | None
    agreements: list[Agreement]
    latency: list[dict[str, Any]] = field(default_factory=list)
    reference_kind: str = "unfolded"

    @property
    def passed(self) -> bool:
        return all(a.passed for a in self.agreements)

    def failures(self) -> list[str]:
        """One line per backend that disagrees with the reference."""
        lines = []
        for a in self.agreements:
            if not a.passed and a.gate is not None:
                lines.append(f"{a.label}: {a.gate.verdict()}")
            elif not a.passed:
                d = a.deviation
                reason = shortfall(d, a.limit, model="it", reference=f"the {self.reference_kind} checkpoint")
                rel = "non-finite" if not d.finite else f"max rel {d.max_rel:.2e} (limit {a.limit:.1e})"
                lines.append(f"{a.label}: {rel}, top-1 agreement {d.top1_agreement:.2%}: {reason}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (``normexport check --json``)."""
        return {
            "data": self.data,
            "samples": self.samples,
            "reference": self.reference,
            "reference_kind": self.reference_kind,
            "reference_accuracy": self.reference_accuracy,
            "agreement": [
                {
                    "label": a.label,
                    **a.backend,
                    "deviation": asdict(a.deviation),
                    "limit": a.limit,
                    "accuracy": a.accuracy,
                    "gate": a.gate.to_dict() if a.gate is not None else None,
                    "passed": a.passed,
                }
                for a in self.agreements
            ],
            "latency": self.latency,
            "passed": self.passed,
        }
