"""The post-export check: run what was written and compare it with the unfolded model."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from normresnet_export._io import atomic_write
from normresnet_export.errors import CheckFailedError
from normresnet_export.export import contract
from normresnet_export.export.result import ExportCheck
from normresnet_export.export.source import ExportSource
from normresnet_export.fold import default_tolerance
from normresnet_export.fold.api import deviation, run_outputs

#: How much coarser float16 rounding is than float32 (2**-11 against 2**-24 relative).
_FLOAT16_OVER_FLOAT32 = 2.0**13


def reference_outputs(
    reference: torch.nn.Module, inputs: Sequence[torch.Tensor], *, float16: bool
) -> tuple[list[torch.Tensor], float]:
    """The unfolded float32 model's logits for ``inputs``, and the largest relative deviation to accept.

    The float32 limit is the fold stage's: 1e-5 (1e-4 for 400+ layer nets), or 4 times the
    reference's own float32 error against float64 where that is larger. The float16 limit
    is ``FLOAT16_TOLERANCE``, or what float16 arithmetic allows for this model where larger.
    """
    expected = run_outputs(reference, inputs)
    tolerance = default_tolerance(reference)
    reference64 = copy.deepcopy(reference).double()
    noise = deviation(run_outputs(reference64, [x.double() for x in inputs]), expected).max_rel or 0.0
    if float16:
        return expected, max(
            contract.FLOAT16_TOLERANCE, tolerance.noise_factor * _FLOAT16_OVER_FLOAT32 * noise
        )
    return expected, max(tolerance.float32, tolerance.noise_factor * noise)


def check_artefact(
    run: Callable[[torch.Tensor], torch.Tensor], source: ExportSource, *, batches: Sequence[int], runtime: str
) -> ExportCheck:
    """Run the loaded artefact and the reference on the same random inputs; measure how far apart they are."""
    inputs = [torch.randn(b, *source.input_size, generator=torch.Generator().manual_seed(b)) for b in batches]
    expected, limit = reference_outputs(source.reference, inputs, float16=source.fp16)
    with torch.no_grad():
        actual = [run(x).flatten(1) for x in inputs]
    return ExportCheck(
        runtime=runtime,
        batches=list(batches),
        deviation=deviation(expected, actual),
        limit=limit,
        float16=source.fp16,
    )


class ExportCheckError(CheckFailedError):
    """An export that does not agree with its model; ``check`` holds the measurement."""

    def __init__(self, message: str, check: ExportCheck) -> None:
        super().__init__(message)
        self.check = check


def require(check: ExportCheck, what: str) -> None:
    """Raise (exit code 1) when the check failed; nothing has been written at that point."""
    if not check.passed:
        raise ExportCheckError(
            f"{what} does not agree with the model, so nothing was written: {check.verdict()}", check
        )


def check_and_write(
    data: bytes,
    run: Callable[[torch.Tensor], torch.Tensor],
    source: ExportSource,
    path: str | os.PathLike[str],
    *,
    check: bool,
    batches: Sequence[int],
    runtime: str,
    what: str,
) -> ExportCheck | None:
    """Check the loaded bytes of a one-file format (unless ``check=False``), then write them atomically.

    Raises:
        ExportCheckError: The artefact disagrees with the model; nothing is written.
    """
    result = None
    if check:
        result = check_artefact(run, source, batches=batches, runtime=runtime)
        require(result, what)
    with atomic_write(Path(path)) as handle:
        handle.write(data)
    return result
