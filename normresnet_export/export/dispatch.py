"""One entry point for every format: ``export(format, source, path, **options)``."""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from normresnet_export.checkpoint import Checkpoint
from normresnet_export.errors import InputError
from normresnet_export.export import contract
from normresnet_export.export.onnx import export_onnx
from normresnet_export.export.pt2 import export_pt2
from normresnet_export.export.result import ExportResult
from normresnet_export.export.torchscript import export_torchscript
from normresnet_export.export.triton import export_triton

FORMATS = ("onnx", "torchscript", "pt2", "triton")


def export(
    format: str,
    source: Checkpoint | str | os.PathLike[str] | nn.Module,
    path: str | os.PathLike[str],
    *,
    fold: bool = True,
    input_size: tuple[int, ...] | None = None,
    fp16: bool = False,
    check: bool = True,
    opset: int | None = None,
    exporter: str | None = None,
    static_batch: int | None = None,
    name: str | None = None,
    max_batch_size: int | None = None,
) -> ExportResult:
    """Export ``source`` in ``format``; options that do not apply to the format are refused, not ignored.

    Raises:
        InputError: Unknown format, or an option the format does not take.
        CheckFailedError: The export does not agree with the model (nothing is written).
    """
    if format not in FORMATS:
        raise InputError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    given = {
        "opset": opset,
        "exporter": exporter,
        "static_batch": static_batch,
        "name": name,
        "max_batch_size": max_batch_size,
    }
    accepted = {
        "onnx": {"opset", "exporter", "static_batch"},
        "torchscript": set(),
        "pt2": {"static_batch"},
        "triton": {"opset", "exporter", "name", "max_batch_size"},
    }[format]
    refused = sorted(k for k, v in given.items() if v is not None and k not in accepted)
    if refused:
        why = " (it batches dynamically)" if "static_batch" in refused else ""
        raise InputError(f"{', '.join(refused)} does not apply to format {format}{why}")
    options: dict[str, Any] = {"fold": fold, "input_size": input_size, "fp16": fp16, "check": check}
    options.update({k: v for k, v in given.items() if v is not None})
    if format in ("onnx", "triton"):
        options.setdefault("opset", contract.DEFAULT_OPSET)
    writer = {
        "onnx": export_onnx,
        "torchscript": export_torchscript,
        "pt2": export_pt2,
        "triton": export_triton,
    }
    return writer[format](source, path, **options)
