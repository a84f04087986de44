"""TorchScript export: a traced, frozen module with the metadata as an extra file.

TorchScript is deprecated upstream (every ``torch.jit`` entry point warns); it still loads in
C++ (libtorch) and in any Python process with plain ``torch.jit.load``, without this
package. The warnings stay inside the export; ``--format pt2`` is the forward-looking format.
Traces are batch-polymorphic: the example batch only seeds the trace.
"""

from __future__ import annotations

import functools
import io
import os
import warnings

import torch
from torch import nn

from normresnet_export.checkpoint import Checkpoint
from normresnet_export.export.result import ExportResult
from normresnet_export.export.source import ExportSource
from normresnet_export.export.verify import export_one_file
from normresnet_export.metadata import load_torchscript


def _serialise(prepared: ExportSource) -> bytes:
    """Trace, freeze and save ``prepared.model`` with its metadata; the bytes of the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(prepared.model, prepared.example(), check_trace=False)
        frozen = torch.jit.freeze(traced.eval())
        buffer = io.BytesIO()
        torch.jit.save(frozen, buffer, _extra_files=prepared.metadata.to_extra_files())
    return buffer.getvalue()


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
    return export_one_file(
        source,
        path,
        format="torchscript",
        serialise=_serialise,
        load=functools.partial(load_torchscript, trust_code=True),  # the bytes just made: our own program
        runtime=f"torch {torch.__version__} (TorchScript)",
        what="the TorchScript export",
        details={"frozen": True},
        fold=fold,
        input_size=input_size,
        fp16=fp16,
        check=check,
    )
