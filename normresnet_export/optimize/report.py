"""What ``normexport optimize`` found: every candidate, why it lost or failed, and the one written."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from normresnet_export._render import Column, print_table, printable

#: A candidate's outcome: chosen (written), passed but slower, failed the gate, or not buildable here.
STATUSES = ("chosen", "slower", "failed", "unavailable")


@dataclass
class Candidate:
    """One deployment candidate: what runs it, how it fared.

    Attributes:
        name: ``<runtime> <precision>``, e.g. ``openvino bf16``.
        runtime: ``onnxruntime`` or ``openvino``.
        precision: What ``--precision`` to run it with (``fp32`` or ``bf16``).
        model: The model file it runs: ``float32`` (the folded export) or ``int8`` (its quantisation).
        status: One of :data:`STATUSES`.
        reason: Why it failed, was unavailable, or lost (``None`` for the chosen one).
        backend: The backend's description (``Backend.to_dict``), once it was opened.
        gate: Top-1 agreement, accuracy, deviation and verdict on the held-out data.
        timing: p50/p90/p99 and images/s at the batch size, for candidates that passed.
        speedup: Over ONNX Runtime float32 at the same batch size.
    """

    name: str
    runtime: str
    precision: str
    model: str
    status: str = "unavailable"
    reason: str | None = None
    backend: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    timing: dict[str, Any] | None = None
    speedup: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class OptimizeReport:
    """The candidates, the data they were gated on, and what was written."""

    checkpoint: str
    data: str
    samples: int
    batch_size: int
    threads: int | None
    candidates: list[Candidate]
    output: str | None = None
    files: list[str] = field(default_factory=list)

    @property
    def chosen(self) -> Candidate | None:
        return next((c for c in self.candidates if c.status == "chosen"), None)

    def command(self) -> str | None:
        """How to run the written model with the chosen runtime and precision."""
        chosen = self.chosen
        if chosen is None or self.output is None:
            return None
        return (
            f"normexport predict {self.output}/model.onnx IMAGES "
            f"--runtime {chosen.runtime} --precision {chosen.precision}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (``normexport optimize --json`` and ``optimize.json``)."""
        chosen = self.chosen
        return {
            "checkpoint": self.checkpoint,
            "data": self.data,
            "samples": self.samples,
            "batch_size": self.batch_size,
            "threads": self.threads,
            "chosen": None if chosen is None else chosen.name,
            "runtime": None if chosen is None else chosen.runtime,
            "precision": None if chosen is None else chosen.precision,
            "output": self.output,
            "files": self.files,
            "command": self.command(),
            "candidates": [c.to_dict() for c in self.candidates],
        }


def _cell(value: Any, text: str) -> str:
    return "" if value is None else text


def print_optimize_report(report: OptimizeReport) -> None:
    """The candidates as a table, then what was written and how to run it."""
    rows = []
    for c in report.candidates:
        gate, timing = c.gate or {}, c.timing or {}
        rows.append(
            {
                "name": c.name,
                "model": c.model,
                "top1": _cell(gate.get("top1_agreement"), f"{gate.get('top1_agreement', 0):.2%}"),
                "accuracy": _cell(gate.get("accuracy"), f"{gate.get('accuracy') or 0:.2%}"),
                "p50": _cell(timing.get("p50_ms"), f"{timing.get('p50_ms', 0):.2f}"),
                "images": _cell(timing.get("images_per_s"), f"{timing.get('images_per_s', 0):,.0f}"),
                "speedup": _cell(c.speedup, f"{c.speedup or 0:.2f}×"),
                "status": c.status,
            }
        )
    columns = (
        Column("name", "candidate"),
        Column("model", "model"),
        Column("top1", "top-1 agreement", "right"),
        Column("accuracy", "accuracy", "right"),
        Column("p50", "p50 ms", "right"),
        Column("images", "images/s", "right"),
        Column("speedup", "speed-up", "right"),
        Column("status", "status"),
    )
    title = (
        f"deployment candidates for {report.checkpoint}: gated on {report.data}, "
        f"timed at batch {report.batch_size}"
    )
    print_table(rows, columns, title=title)
    for c in report.candidates:  # why each one lost, failed or could not run: whole, one line each
        if c.reason:
            sys.stdout.write(printable(f"{c.name}: {c.status}: {c.reason}") + "\n")
    chosen = report.chosen
    if chosen is None:
        sys.stdout.write("FAIL: no candidate passed the gate; nothing was written\n")
    else:
        line = f"wrote {report.output}/model.onnx ({chosen.name}); run it with: {report.command()}"
        sys.stdout.write(printable(line) + "\n")
