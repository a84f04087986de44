"""TorchScript export: a traced, frozen module with the metadata as an extra file.

TorchScript is deprecated upstream (every ``torch.jit`` entry point warns); it still loads in
C++ (libtorch) and in any Python process with plain ``torch.jit.load``, without this
package. The warnings stay inside the export; ``--format pt2`` is the forward-looking format.
Traces are batch-polymorphic: the example batch only seeds the trace.
"""

from __future__ import annotations

import io
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from normresnet_export.checkpoint import Checkpoint
from normresnet_export.export import contract
from normresnet_export.export.result import ExportResult
from normresnet_export.export.source import prepare
from normresnet_export.export.verify import check_and_write


def load_torchscript(
    data: bytes | str | os.PathLike[str], map_location: torch.device | str | None = None
) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load a TorchScript export and its metadata (``torch.jit``'s deprecation warning silenced).

    ``map_location`` places it on a device: a frozen module's weights are constants, which
    ``.to(device)`` would not move.
    """
    extra = {contract.EXTRA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(
            io.BytesIO(data) if isinstance(data, bytes) else str(data),
            map_location=map_location,
            _extra_files=extra,
        )
    raw = extra[contract.EXTRA_FILE]
    return module, json.loads(raw) if raw else {}


def export_torchscript(
    source: Checkpoint | str | os.PathLike[str] | nn.Module,
    path: str | os.PathLike[str],
    *,
    fold: bool = True,
    input_size: tuple[int, ...] | None = None,
    fp16: bool = False,
    check: bool = True,
) -> ExportResult:
    """Trace, freeze and save a checkpoint's model as TorchScript; check it before writing.

    Raises:
        InputError: Bad source or options.
        CheckFailedError: The trace does not agree with the model (nothing is written).
    """
    started = time.perf_counter()
    prepared = prepare(source, fold=fold, input_size=input_size, fp16=fp16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(prepared.model, prepared.example(), check_trace=False)
        frozen = torch.jit.freeze(traced.eval())
        buffer = io.BytesIO()
        torch.jit.save(frozen, buffer, _extra_files={contract.EXTRA_FILE: json.dumps(prepared.metadata)})
    data = buffer.getvalue()
    loaded, metadata = load_torchscript(data)  # check the bytes that will be written
    result = check_and_write(
        data,
        loaded,
        prepared,
        path,
        check=check,
        batches=contract.CHECK_BATCHES,
        runtime=f"torch {torch.__version__} (TorchScript)",
        what="the TorchScript export",
    )
    return ExportResult(
        path=Path(path),
        format="torchscript",
        metadata=metadata,
        check=result,
        details={"frozen": True, "bytes": len(data)},
        seconds=time.perf_counter() - started,
    )
