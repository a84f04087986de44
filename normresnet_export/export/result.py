"""What an export reports: the file written, how, and how well it agrees with the model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from normresnet_export.compare import Deviation, shortfall


@dataclass(frozen=True)
class ExportCheck:
    """The written artefact run on random inputs and compared with the unfolded float32 model.

    Attributes:
        runtime: What ran the artefact, e.g. ``"onnxruntime 1.31.1 (CPUExecutionProvider)"``.
        batches: Batch sizes run (1, 2 and 7 for a dynamic batch dimension).
        deviation: Artefact versus model logits.
        limit: The largest acceptable relative deviation.
        float16: The artefact computes in float16 (top-1 agreement is then reported, not required).
    """

    runtime: str
    batches: list[int]
    deviation: Deviation
    limit: float
    float16: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form: the measurement, ``passed`` and the verdict line."""
        return {**asdict(self), "passed": self.passed, "verdict": self.verdict()}

    @property
    def passed(self) -> bool:
        d = self.deviation
        agrees = self.float16 or d.top1_agreement == 1.0
        return d.finite and d.max_rel is not None and d.max_rel <= self.limit and agrees

    def failure(self, what: str = "the artefact") -> str | None:
        """Why the check failed, in one clause for a person (``None`` when it passed)."""
        return shortfall(
            self.deviation, self.limit, model=what, reference="the unfolded model", top1=not self.float16
        )

    def verdict(self) -> str:
        """One line: PASS/FAIL with the measured numbers."""
        d = self.deviation
        if not d.reference_finite:
            return f"FAIL: the unfolded model's own outputs are not finite (inf/NaN); under {self.runtime}"
        if not d.finite:
            return f"FAIL: the artefact's outputs are not finite (inf/NaN) under {self.runtime}"
        word = "PASS" if self.passed else "FAIL"
        return (
            f"{word}: max |Δ| {d.max_abs:.2e}, max rel {d.max_rel:.2e} (limit {self.limit:.1e}), "
            f"top-1 agreement {d.top1_agreement:.0%} on batches {', '.join(map(str, self.batches))} "
            f"under {self.runtime}"
        )


@dataclass
class ExportResult:
    """An export: where it went, how it was made, what the check measured.

    Attributes:
        path: The file (or, for Triton, the model repository) written.
        format: One of the deployment formats or weight layouts of
            :mod:`~normresnet_export.export.dispatch` (``onnx``, ``diracnet``, …).
        metadata: What the artefact carries (arch, preprocessing, labels, fold summary, …); for a
            weight layout, another code's bare state_dict, the record that knows nothing.
        details: Format-specific facts: exporter, opset, IR version, node counts, files, tensors.
        check: The post-export check, or ``None`` with ``check=False``.
        seconds: Wall time of the export, check included.
    """

    path: Path
    format: str
    metadata: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)
    check: ExportCheck | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (``normexport export --json``)."""
        check = None
        if self.check is not None:
            check = self.check.to_dict()
        return {
            "path": str(self.path),
            "format": self.format,
            "metadata": self.metadata,
            "details": self.details,
            "check": check,
            "seconds": self.seconds,
        }
