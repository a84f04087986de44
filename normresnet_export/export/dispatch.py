"""One entry point for every format and layout: ``export(format, source, path, **options)``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from torch import nn

from normresnet_export.checkpoint import Checkpoint
from normresnet_export.errors import InputError
from normresnet_export.export import contract
from normresnet_export.export.diracnet_layout import LAYOUT as DIRACNET_LAYOUT
from normresnet_export.export.diracnet_layout import export_diracnet_layout
from normresnet_export.export.gate import Gate
from normresnet_export.export.onnx import export_onnx
from normresnet_export.export.pt2 import export_pt2
from normresnet_export.export.quantize import CalibrationSet, export_int8
from normresnet_export.export.result import ExportResult
from normresnet_export.export.torchscript import export_torchscript
from normresnet_export.export.triton import export_triton
from normresnet_export.fold import FoldOptions
from normresnet_export.vocabulary import FORMATS, LAYOUTS

#: Each writer and the options it takes besides ``check`` (which every writer takes).
_WRITERS: dict[str, tuple[Callable[..., ExportResult], frozenset[str]]] = {
    "onnx": (export_onnx, frozenset({"fold", "input_size", "fp16", "opset", "exporter", "static_batch"})),
    "torchscript": (export_torchscript, frozenset({"fold", "input_size", "fp16"})),
    "pt2": (export_pt2, frozenset({"fold", "input_size", "fp16", "static_batch"})),
    "triton": (
        export_triton,
        frozenset({"fold", "input_size", "fp16", "opset", "exporter", "name", "max_batch_size"}),
    ),
    DIRACNET_LAYOUT: (export_diracnet_layout, frozenset()),
}


#: File suffixes that name one format. Any other (``.pt`` and ``.pth`` are checkpoints as often
#: as programs; a Triton repository is a directory) names none.
SUFFIXES: dict[str, str] = {
    ".onnx": "onnx",
    ".pt2": "pt2",
    ".ts": "torchscript",
    ".torchscript": "torchscript",
}


def resolve_format(path: str | os.PathLike[str], format: str | None = None, layout: str | None = None) -> str:
    """The format or layout to write to ``path``: the one asked for, else the one its suffix names.

    ``export ckpt -o m.onnx`` needs no ``--format``; ``--format pt2 -o m.onnx`` would write a
    torch.export program under an ONNX name, which every tool that goes by the name then
    misreads, so a suffix that names another format is refused.

    Raises:
        InputError: Both a format and a layout; neither, with a suffix that names no format; or
            a suffix that names another format than the one asked for.
    """
    if format is not None and layout is not None:
        raise InputError("give either --format or --layout, not both")
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    named = SUFFIXES.get(suffix)
    asked = format or layout
    if asked is None:
        if named is None:
            known = ", ".join(f"{s} ({f})" for s, f in SUFFIXES.items())
            raise InputError(
                f"cannot tell the format from the name {os.fspath(path)!r}; give --format "
                f"{'|'.join(FORMATS)} (or --layout {'|'.join(LAYOUTS)}), or a name ending in {known}"
            )
        return named
    if named is not None and named != asked:
        raise InputError(
            f"{os.fspath(path)!r} ends in {suffix}, which names the {named} format, but {asked} was "
            f"asked for; name the output for what it holds, or ask for --format {named}"
        )
    return asked


def _why_not(format: str, refused: list[str]) -> str:
    """Why the refused options do not apply, where one reason covers them."""
    if format in LAYOUTS:
        return " (it writes the weights of an already folded checkpoint as they are)"
    return " (it batches dynamically)" if "static_batch" in refused else ""


def _export_int8(
    format: str,
    source: Checkpoint | str | os.PathLike[str] | nn.Module,
    path: str | os.PathLike[str],
    *,
    fold: bool,
    fp16: bool,
    check: bool,
    static_batch: int | None,
    input_size: tuple[int, ...] | None,
    opset: int | None,
    exporter: str | None,
    calibration: CalibrationSet | None,
    method: str,
    gate: Gate | None,
    gate_data: CalibrationSet | None,
) -> ExportResult:
    """The ``--int8`` path of :func:`export`: ONNX only, folded, gated; the options it cannot take refused."""
    if format != "onnx":
        raise InputError(
            f"--int8 writes ONNX (ONNX Runtime's static quantisation); use --format onnx, not {format}"
        )
    resolve_format(path, format)
    refused = [
        option
        for option, given in (
            ("--no-fold", not fold),
            ("--fp16", fp16),
            ("--no-check", not check),
            ("--static-batch", static_batch is not None),
        )
        if given
    ]
    if refused:
        raise InputError(
            f"{', '.join(refused)} does not apply to --int8 "
            "(it quantises the folded model and always gates it)"
        )
    if calibration is None:
        raise InputError("--int8 needs calibration data: --calibration digits, folder:DIR or random:N")
    contract.check_options(opset=opset, static_batch=None, max_batch_size=None, input_size=input_size)
    return export_int8(
        source,
        path,
        calibration=calibration,
        method=method,
        gate=gate,
        gate_data=gate_data,
        opset=opset or contract.DEFAULT_OPSET,
        exporter=exporter or "auto",
        input_size=input_size,
    )


def export(
    format: str,
    source: Checkpoint | str | os.PathLike[str] | nn.Module,
    path: str | os.PathLike[str],
    *,
    fold: bool = True,
    keep_stream_bn: bool = False,
    input_size: tuple[int, ...] | None = None,
    fp16: bool = False,
    check: bool = True,
    opset: int | None = None,
    exporter: str | None = None,
    static_batch: int | None = None,
    name: str | None = None,
    max_batch_size: int | None = None,
    int8: bool = False,
    calibration: CalibrationSet | None = None,
    calibration_method: str = "minmax",
    gate: Gate | None = None,
    gate_data: CalibrationSet | None = None,
) -> ExportResult:
    """Export ``source`` in ``format`` (one of :data:`FORMATS` or :data:`LAYOUTS`).

    Options that do not apply to the format are refused, not ignored. Every writer checks
    what it is about to write against the model (unless ``check=False``) and writes atomically.

    ``int8=True`` (ONNX only) quantises the folded model with ``calibration`` (see
    :func:`~normresnet_export.export.quantize.export_int8`) and writes it only when it passes
    ``gate`` on the held-out half of the calibration data (or on ``gate_data``).
    ``keep_stream_bn`` folds keeping the residual-stream BatchNorms (as per-channel affines).

    Raises:
        InputError: Unknown format, an option the format does not take, or a number out of its
            range (:func:`~normresnet_export.export.contract.check_options`), or an output whose
            suffix names another format (:func:`resolve_format`).
        CheckFailedError: The export does not agree with the model, or the int8 model fails the
            gate (nothing is written).
    """
    if keep_stream_bn and (not fold or int8):
        refused = "--no-fold" if not fold else "--int8 (which always folds fully)"
        raise InputError(f"--keep-stream-bn says how to fold; it does not apply to {refused}")
    if int8:
        return _export_int8(
            format,
            source,
            path,
            fold=fold,
            fp16=fp16,
            check=check,
            static_batch=static_batch,
            input_size=input_size,
            opset=opset,
            exporter=exporter,
            calibration=calibration,
            method=calibration_method,
            gate=gate,
            gate_data=gate_data,
        )
    if calibration is not None or gate_data is not None:
        raise InputError("--calibration and --gate-data calibrate an int8 export; add --int8")
    if format not in _WRITERS:
        raise InputError(
            f"unknown format {format!r}; expected one of {', '.join(FORMATS)} "
            f"(or a layout: {', '.join(LAYOUTS)})"
        )
    resolve_format(path, *((format, None) if format in FORMATS else (None, format)))  # suffix agrees
    writer, accepted = _WRITERS[format]
    given = {  # the options asked for: a default is not asking
        "fold": FoldOptions(keep_stream_bn=True) if keep_stream_bn else (None if fold else False),
        "input_size": input_size,
        "fp16": fp16 or None,
        "opset": opset,
        "exporter": exporter,
        "static_batch": static_batch,
        "name": name,
        "max_batch_size": max_batch_size,
    }
    refused = sorted(k for k, v in given.items() if v is not None and k not in accepted)
    if refused:
        kind = "layout" if format in LAYOUTS else "format"
        raise InputError(f"{', '.join(refused)} does not apply to {kind} {format}{_why_not(format, refused)}")
    contract.check_options(  # every number, before the checkpoint is loaded
        opset=opset, static_batch=static_batch, max_batch_size=max_batch_size, input_size=input_size
    )
    options: dict[str, Any] = {"check": check, **{k: v for k, v in given.items() if v is not None}}
    if "opset" in accepted:
        options.setdefault("opset", contract.DEFAULT_OPSET)
    return writer(source, path, **options)
