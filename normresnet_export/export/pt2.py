"""torch.export export (``.pt2``): an ExportedProgram with a symbolic batch and the metadata as an extra file.

The forward-looking replacement for TorchScript: ``torch.export.load(path).module()`` runs
it in Python; AOTInductor and ExecuTorch compile it further.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from normresnet_export.checkpoint import Checkpoint
from normresnet_export.errors import InputError
from normresnet_export.export import contract
from normresnet_export.export.result import ExportResult
from normresnet_export.export.source import prepare
from normresnet_export.export.verify import check_and_write


def load_pt2(
    data: bytes | str | os.PathLike[str], device: torch.device | str | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a ``.pt2`` export as a callable module, with its metadata, optionally on ``device``."""
    extra = {contract.EXTRA_FILE: ""}
    program = torch.export.load(io.BytesIO(data) if isinstance(data, bytes) else str(data), extra_files=extra)
    if device is not None and torch.device(device).type != "cpu":
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, torch.device(device))
    raw = extra[contract.EXTRA_FILE]
    return program.module(), json.loads(raw) if raw else {}


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
    started = time.perf_counter()
    if static_batch is not None and static_batch < 1:
        raise InputError(f"--static-batch must be at least 1, got {static_batch}")
    prepared = prepare(source, fold=fold, input_size=input_size, fp16=fp16)
    shapes = None if static_batch else ({0: torch.export.Dim(contract.BATCH_DIM, min=1)},)
    try:
        program = torch.export.export(
            prepared.model, (prepared.example(static_batch or contract.EXAMPLE_BATCH),), dynamic_shapes=shapes
        )
    except Exception as exc:  # torch.export's errors are long; the first line says what failed
        raise InputError(f"torch.export could not capture the model: {str(exc).splitlines()[0]}") from None
    buffer = io.BytesIO()
    torch.export.save(
        program, buffer, extra_files={contract.EXTRA_FILE: json.dumps(prepared.metadata_for(static_batch))}
    )
    data = buffer.getvalue()
    loaded, metadata = load_pt2(data)
    result = check_and_write(
        data,
        loaded,
        prepared,
        path,
        check=check,
        batches=contract.CHECK_BATCHES if static_batch is None else (static_batch,),
        runtime=f"torch {torch.__version__} (torch.export)",
        what="the torch.export export",
    )
    return ExportResult(
        path=Path(path),
        format="pt2",
        metadata=metadata,
        check=result,
        details={"batch": contract.BATCH_DIM if static_batch is None else static_batch, "bytes": len(data)},
        seconds=time.perf_counter() - started,
    )
