"""torch.export export (``.pt2``): an ExportedProgram with a symbolic batch and the metadata as an extra file.

The forward-looking replacement for TorchScript: ``torch.export.load(path).module()`` runs
it in Python; AOTInductor and ExecuTorch compile it further.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable

import torch
from torch import nn

from normresnet_export.checkpoint import Checkpoint
from normresnet_export.errors import InputError, first_line
from normresnet_export.export import contract
from normresnet_export.export.result import ExportResult
from normresnet_export.export.source import ExportSource
from normresnet_export.export.verify import export_one_file
from normresnet_export.metadata import load_pt2


def _serialiser(static_batch: int | None) -> Callable[[ExportSource], bytes]:
    """``prepared -> bytes``: capture with ``torch.export`` (batch symbolic unless pinned) and save."""

    def serialise(prepared: ExportSource) -> bytes:
        shapes = None if static_batch else ({0: torch.export.Dim(contract.BATCH_DIM, min=1)},)
        example = prepared.example(static_batch or contract.EXAMPLE_BATCH)
        try:
            program = torch.export.export(prepared.model, (example,), dynamic_shapes=shapes)
        except Exception as exc:  # torch.export's errors are long; the first line says what failed
            raise InputError(
                f"torch.export could not capture the model: {first_line(exc, limit=None)}"
            ) from None
        buffer = io.BytesIO()
        torch.export.save(
            program, buffer, extra_files=prepared.metadata.with_batch(static_batch).to_extra_files()
        )
        return buffer.getvalue()

    return serialise


def export_pt2(
    source: Checkpoint | str | os.PathLike[str] | nn.Module,
    path: str | os.PathLike[str],
    *,
    fold: bool = True,
    static_batch: int | None = None,
    input_size: tuple[int, ...] | None = None,
    fp16: bool = False,
    check: bool = True,
) -> ExportResult:
    """Export a checkpoint's model with ``torch.export`` and save it as ``.pt2``; check it before writing.

    Raises:
        InputError: Bad source or options, or a model torch.export cannot capture.
        CheckFailedError: The program does not agree with the model (nothing is written).
    """
    if static_batch is not None and static_batch < 1:
        raise InputError(f"--static-batch must be at least 1, got {static_batch}")
    return export_one_file(
        source,
        path,
        format="pt2",
        serialise=_serialiser(static_batch),
        load=functools.partial(load_pt2, trust_code=True),  # the bytes just made: our own program
        runtime=f"torch {torch.__version__} (torch.export)",
        what="the torch.export export",
        batches=contract.CHECK_BATCHES if static_batch is None else (static_batch,),
        details={"batch": contract.BATCH_DIM if static_batch is None else static_batch},
        fold=fold,
        input_size=input_size,
        fp16=fp16,
        check=check,
    )
