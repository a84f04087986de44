"""Agreement: every backend's logits against the unfolded checkpoint's, on the same inputs.

An artefact agrees when its outputs are finite, its largest relative deviation is within the
limit (the float32 limit of the fold check, or the float16 one for a float16 artefact), and
every top-1 prediction is the reference's. A bfloat16 or int8 artefact is judged by the accuracy
gate instead (:mod:`~normresnet_export.export.gate`: top-1 agreement and accuracy against the
float32 reference's), its deviation reported beside.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from normresnet_export.checkpoint import Checkpoint
from normresnet_export.compare import Deviation, deviation, run_outputs
from normresnet_export.errors import InputError
from normresnet_export.export.gate import LOW_PRECISIONS, Gate, GateResult
from normresnet_export.export.verify import deviation_limit, float32_noise
from normresnet_export.runtime import Backend
from normresnet_export.runtime.inputs import dims, fixed_batch, input_mismatch


@dataclass
class Agreement:
    """One backend against the unfolded reference."""

    label: str
    backend: dict[str, Any]
    deviation: Deviation
    limit: float
    accuracy: float | None
    gate: GateResult | None = None

    @property
    def passed(self) -> bool:
        if self.gate is not None:
            return self.gate.passed
        d = self.deviation
        return d.finite and d.max_rel is not None and d.max_rel <= self.limit and d.top1_agreement == 1.0


def require_comparable(backend: Backend, checkpoint: Checkpoint) -> None:
    """Refuse an artefact that cannot be compared with the checkpoint, before anything runs.

    The input the artefact declares (its graph's, for ONNX; so a foreign file is covered) must
    take the checkpoint's inputs, its batch must not be fixed behind normexport's back (the
    agreement and the timing run several batch sizes), and its architecture must be the
    checkpoint's.

    Raises:
        InputError: Naming what the artefact takes and what the checkpoint gives.
    """
    size = tuple(checkpoint.input_size)
    mismatch = input_mismatch(backend, size)
    if mismatch is not None:
        fix = (
            f"export it at the checkpoint's size; check compares at {dims(size)}"
            if mismatch.size is not None
            else "check feeds one float32 [N, C, H, W] image batch; export the checkpoint with normexport"
        )
        raise InputError(
            f"{backend.label} takes {mismatch.takes}, but the checkpoint takes float32 inputs of "
            f"{dims(size)}; {fix}"
        )
    pinned = fixed_batch(backend)
    if pinned is not None:
        raise InputError(
            f"{backend.label} takes batches of exactly {pinned} and records no normexport --static-batch; "
            "check runs several batch sizes: export the checkpoint with normexport"
        )
    if backend.metadata.arch not in (None, checkpoint.arch):
        raise InputError(f"{backend.label} is a {backend.metadata.arch}, the checkpoint a {checkpoint.arch}")


def accuracy(logits: torch.Tensor, targets: torch.Tensor | None) -> float | None:
    """Top-1 accuracy against ``targets``, or ``None`` for unlabelled data."""
    return None if targets is None else (logits.argmax(1) == targets).double().mean().item()


def agreements(
    reference: torch.nn.Module,
    backends: Sequence[Backend],
    inputs: torch.Tensor,
    targets: torch.Tensor | None,
    *,
    chunk: int,
    progress: Callable[[str, int, int], None] | None = None,
    gate: Gate | None = None,
) -> tuple[list[Agreement], float | None]:
    """Each backend against ``reference`` on ``inputs`` (in calls of ``chunk``), and the reference's accuracy.

    Args:
        reference: The unfolded float32 model.
        backends: What to compare with it.
        inputs: Preprocessed inputs.
        targets: Their true classes, or ``None``.
        chunk: Inputs per call.
        progress: Called as ``progress("agreement", done, total)``.
        gate: What a bfloat16 or int8 backend must achieve (default: :class:`Gate`'s defaults).
    """
    chunks = list(torch.split(inputs, chunk))
    expected = run_outputs(reference, chunks)
    # The float64 run that sets the limits is needed only when there is something to compare.
    noise = float32_noise(reference, chunks, expected) if backends else 0.0
    found = []
    for step, backend in enumerate(backends, start=1):
        if progress is not None:
            progress("agreement", step, len(backends))
        limit = deviation_limit(reference, noise, float16=backend.precision == "float16")
        actual = [backend.run_in_batches(c, len(c)) for c in chunks]
        judged = None
        if backend.precision in LOW_PRECISIONS:
            judged = (gate or Gate()).judge(torch.cat(expected), torch.cat(actual), targets)
        found.append(
            Agreement(
                label=backend.label,
                backend=backend.to_dict(),
                deviation=deviation(expected, actual),
                limit=limit,
                accuracy=accuracy(torch.cat(actual), targets),
                gate=judged,
            )
        )
    return found, accuracy(torch.cat(expected), targets)
