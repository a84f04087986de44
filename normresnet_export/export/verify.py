"""The post-export check: run what was written and compare it with the unfolded model.

:func:`export_one_file` is the whole of a one-file export (TorchScript, ``.pt2``) around that
check; the ONNX and Triton exporters stage several files and call the check themselves. Every
exporter starts with :func:`guard_output`, so a bad output path fails before any work.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from normresnet_export._io import atomic_write, check_output, remove_stale
from normresnet_export._progress import stage
from normresnet_export.checkpoint import Checkpoint
from normresnet_export.compare import deviation, run_outputs
from normresnet_export.errors import CheckFailedError
from normresnet_export.export import contract
from normresnet_export.export.result import ExportCheck, ExportResult
from normresnet_export.export.source import ExportSource, prepare
from normresnet_export.fold import default_tolerance
from normresnet_export.metadata import ModelMetadata

#: How much coarser float16 rounding is than float32 (2**-11 against 2**-24 relative).
_FLOAT16_OVER_FLOAT32 = 2.0**13


def float32_noise(
    reference: torch.nn.Module, inputs: Sequence[torch.Tensor], expected: Sequence[torch.Tensor]
) -> float:
    """How far the reference's own float32 logits ``expected`` lie from its float64 ones on ``inputs``.

    The float64 run is the expensive part of a check (CPU convolutions in float64 take no fast
    path): compute it once per check and derive every limit from it (:func:`deviation_limit`).
    """
    reference64 = copy.deepcopy(reference).double()
    return deviation(run_outputs(reference64, [x.double() for x in inputs]), expected).max_rel or 0.0


def deviation_limit(reference: torch.nn.Module, noise: float, *, float16: bool) -> float:
    """The largest relative deviation to accept from an artefact of ``reference``.

    The float32 limit is the fold stage's: 1e-5 (1e-4 for 400+ layer nets), or 4 times the
    reference's own float32 error against float64 (``noise``) where that is larger. The float16
    limit is ``FLOAT16_TOLERANCE``, or what float16 arithmetic allows for this model where larger.
    """
    tolerance = default_tolerance(reference)
    if float16:
        return max(contract.FLOAT16_TOLERANCE, tolerance.noise_factor * _FLOAT16_OVER_FLOAT32 * noise)
    return max(tolerance.float32, tolerance.noise_factor * noise)


def reference_outputs(
    reference: torch.nn.Module, inputs: Sequence[torch.Tensor], *, float16: bool
) -> tuple[list[torch.Tensor], float]:
    """The unfolded float32 model's logits for ``inputs``, and the largest relative deviation to accept."""
    expected = run_outputs(reference, inputs)
    return expected, deviation_limit(reference, float32_noise(reference, inputs, expected), float16=float16)


def check_artefact(
    run: Callable[[torch.Tensor], torch.Tensor], source: ExportSource, *, batches: Sequence[int], runtime: str
) -> ExportCheck:
    """Run the loaded artefact and the reference on the same random inputs; measure how far apart they are."""
    stage("verify")
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

    def to_dict(self) -> dict[str, Any]:
        """What ``export --json`` prints for it: the sentence and the measurement."""
        return {"passed": False, "error": str(self), "check": self.check.to_dict()}


def require(check: ExportCheck, what: str) -> None:
    """Raise (exit code 1) when the check failed; nothing has been written at that point."""
    if not check.passed:
        advice = (
            "; export a trained checkpoint, or pass --no-check to export it anyway, marked unverified"
            if not check.deviation.reference_finite
            else ""
        )
        raise ExportCheckError(
            f"{what} does not agree with the model: {check.failure('it')}; nothing was written{advice}", check
        )


def input_files(source: Checkpoint | str | os.PathLike[str] | nn.Module) -> list[Path]:
    """The files an export reads: the checkpoint file (none for a bare module or a built checkpoint)."""
    if isinstance(source, (str, os.PathLike)):
        return [Path(source)]
    if isinstance(source, Checkpoint) and source.path is not None:
        return [Path(source.path)]
    return []


def guard_output(
    source: Checkpoint | str | os.PathLike[str] | nn.Module,
    path: str | os.PathLike[str],
    *,
    directory: bool = False,
) -> list[str]:
    """Refuse an output that writing would damage, before any work; clear killed exports' leftovers.

    The output may not be the checkpoint being exported (``export m.pt -f torchscript -o m.pt``
    would replace the checkpoint with a program), a link, a device or other non-file (for a
    directory output: a non-directory), nor lie in a missing directory; see
    :func:`~normresnet_export._io.check_output`. Staging files that killed exports left where the
    output goes are removed (and reported).

    Returns:
        The leftovers removed, for the result's ``details["removed_stale"]``.

    Raises:
        InputError: The output is refused.
    """
    target = check_output(path, inputs=input_files(source), directory=directory)
    return remove_stale(target if directory else target.parent)


def export_one_file(
    source: Checkpoint | str | os.PathLike[str] | nn.Module,
    path: str | os.PathLike[str],
    *,
    format: str,
    serialise: Callable[[ExportSource], bytes],
    load: Callable[[bytes], tuple[Callable[[torch.Tensor], torch.Tensor], ModelMetadata]],
    runtime: str,
    what: str,
    batches: Sequence[int] = contract.CHECK_BATCHES,
    details: Mapping[str, Any] | None = None,
    fold: bool = True,
    input_size: tuple[int, ...] | None = None,
    fp16: bool = False,
    check: bool = True,
) -> ExportResult:
    """Export a format that is one file: prepare, serialise, reload the bytes, check them, write them.

    The check runs on the bytes reloaded exactly as they will be written, so what passes is what
    lands on disk; nothing is written when it fails. The write is atomic.

    Args:
        source: A checkpoint, its path, or an eval-mode module (see
            :func:`~normresnet_export.export.source.prepare`).
        path: The file to write.
        format: The format's name in the result (``"torchscript"``, ``"pt2"``).
        serialise: The prepared model to the file's bytes (metadata included).
        load: The bytes back to a callable model and the metadata it carries.
        runtime: What runs the reloaded model, for the check's report.
        what: The artefact in words, for the error when the check fails.
        batches: Batch sizes the check runs.
        details: Format-specific facts for the result (the byte count is added).
        fold, input_size, fp16: As for :func:`~normresnet_export.export.source.prepare`.
        check: Compare with the model before writing (default).

    Raises:
        InputError: Bad source or options, or an output refused by :func:`guard_output`.
        ExportCheckError: The artefact disagrees with the model; nothing is written.
    """
    started = time.perf_counter()
    removed = guard_output(source, path)
    prepared = prepare(source, fold=fold, input_size=input_size, fp16=fp16, check=check)
    stage("export")
    data = serialise(prepared)
    loaded, metadata = load(data)
    result = None
    if check:
        result = check_artefact(loaded, prepared, batches=batches, runtime=runtime)
        require(result, what)
    stage("write")
    with atomic_write(Path(path), inputs=input_files(source)) as handle:
        handle.write(data)
    return ExportResult(
        path=Path(path),
        format=format,
        metadata=metadata.to_dict(),
        check=result,
        details={**(details or {}), "bytes": len(data), "removed_stale": removed},
        seconds=time.perf_counter() - started,
    )
