"""int8 ONNX export: ONNX Runtime's static quantisation of the folded model, written only if it passes.

The folded float32 model is exported and checked as ``export --format onnx`` does, then
prepared by ONNX Runtime's quantisation pre-processing (``quant_pre_process``: shape inference
and graph optimisation, so that quantisation sees fused operators) and statically quantised
(``quantize_static``) in the QDQ format: weights int8, symmetric, one scale per output channel;
activations uint8 with ranges taken from calibration data by ``minmax``, ``entropy`` or
``percentile``. QDQ keeps the graph readable by any runtime: ONNX Runtime fuses the pairs into
int8 kernels, OpenVINO reads them as its FakeQuantize.

Weights use 7 of the 8 bits (``reduce_range``). On x86 CPUs without VNNI (AVX2, AVX-512F)
ONNX Runtime multiplies uint8 activations by int8 weights with ``vpmaddubsw``, whose 16-bit
sums saturate for full-range weights: measured on a digits-trained resnet20 on an AVX2 host,
full-range weights agreed with float32 on 93% of the held-out digits, 7-bit ones on 99.2%. A
file quantised on a VNNI host would pass its gate there and fail on such a CPU, so every
file is written with the range that is right on both.

Calibration data is real inputs prepared with the model's own preprocessing (the caller loads
them, see :class:`CalibrationSet`). One half calibrates; the model is then judged by the
accuracy gate (:mod:`~normresnet_export.export.gate`) on the other, held-out half (or on the
gate data given), in ONNX Runtime, against the unfolded float32 model. Nothing is written
unless it passes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from normresnet_export._io import commit, staging_directory
from normresnet_export.checkpoint import Checkpoint
from normresnet_export.compare import run_outputs
from normresnet_export.errors import CheckFailedError, InputError, first_line
from normresnet_export.export import contract
from normresnet_export.export.gate import Gate, GateResult
from normresnet_export.export.onnx import (
    add_metadata,
    build,
    check_staged,
    ort_runner,
    ort_session,
    read_metadata,
    save,
)
from normresnet_export.export.result import ExportResult
from normresnet_export.export.source import prepare
from normresnet_export.export.verify import guard_output
from normresnet_export.metadata import ModelMetadata
from normresnet_export.vocabulary import CALIBRATION_METHODS

#: ONNX Runtime's ``CalibrationMethod`` for each of :data:`CALIBRATION_METHODS`.
METHODS: dict[str, str] = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}

#: Fewest calibration inputs: ranges from a handful of images are ranges of those images.
MIN_CALIBRATION = 8


@dataclass(frozen=True)
class CalibrationSet:
    """Preprocessed inputs (and their classes, when known) to calibrate and gate a quantised model.

    Attributes:
        description: Where they came from, in words.
        inputs: ``[N, C, H, W]`` float32, already through the model's preprocessing.
        targets: Their true classes, or ``None`` for unlabelled data.
    """

    description: str
    inputs: torch.Tensor
    targets: torch.Tensor | None = None

    def split(self) -> tuple[CalibrationSet, CalibrationSet]:
        """(calibration half, held-out half): alternate inputs, so both halves cover every class."""
        halves = []
        for start, name in ((0, "calibration"), (1, "held-out")):
            targets = self.targets[start::2] if self.targets is not None else None
            halves.append(CalibrationSet(f"{self.description}, {name} half", self.inputs[start::2], targets))
        return halves[0], halves[1]


def check_method(method: str) -> str:
    """``method`` if it is one of :data:`CALIBRATION_METHODS`, else a one-line error."""
    if method not in CALIBRATION_METHODS:
        raise InputError(
            f"unknown --calibration-method {method!r}; expected one of {', '.join(CALIBRATION_METHODS)}"
        )
    return method


class GateFailedError(CheckFailedError):
    """A quantised model that failed the accuracy gate; ``result`` holds the measurement."""

    def __init__(self, message: str, result: GateResult) -> None:
        super().__init__(message)
        self.result = result


class _Reader:
    """ONNX Runtime's ``CalibrationDataReader``: the calibration inputs, a batch at a time."""

    def __init__(self, inputs: torch.Tensor, batch: int = 16) -> None:
        self._batches = iter(
            [{contract.INPUT_NAME: b.numpy()} for b in torch.split(inputs.contiguous(), batch)]
        )

    def get_next(self) -> dict[str, Any] | None:
        return next(self._batches, None)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ONNX Runtime's quantiser prints progress and warnings; none of it may reach stdout (``--json``)."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        logger.setLevel(level)


def quantize_file(float_model: Path, output: Path, calibration: torch.Tensor, *, method: str) -> None:
    """Write the static int8 quantisation (QDQ, per-channel symmetric weights) of ``float_model``.

    Args:
        float_model: The float32 ONNX file.
        output: Where the quantised model goes (a staging path: this writes directly).
        calibration: Preprocessed calibration inputs.
        method: One of :data:`CALIBRATION_METHODS`.

    Raises:
        InputError: An unknown method, or ONNX Runtime cannot quantise the model (its reason).
    """
    from onnxruntime import quantization as q
    from onnxruntime.quantization.shape_inference import quant_pre_process

    check_method(method)
    prepared = output.with_name(output.stem + ".pre.onnx")
    try:
        with _quiet():
            quant_pre_process(str(float_model), str(prepared))
            q.quantize_static(
                str(prepared),
                str(output),
                _Reader(calibration),
                quant_format=q.QuantFormat.QDQ,
                per_channel=True,
                weight_type=q.QuantType.QInt8,
                activation_type=q.QuantType.QUInt8,
                calibrate_method=getattr(q.CalibrationMethod, METHODS[method]),
                reduce_range=True,  # see the module docstring: u8s8 saturation without VNNI
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
            )
    except Exception as exc:  # onnxruntime raises its own types and ValueError/RuntimeError
        raise InputError(f"onnxruntime cannot quantise the model: {first_line(exc)}") from None
    finally:
        prepared.unlink(missing_ok=True)


def mark_int8(path: Path, metadata: ModelMetadata) -> onnx.ModelProto:
    """Record precision int8 in the quantised file's normexport ``metadata`` (rewritten in place)."""
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    add_metadata(proto, dataclasses.replace(metadata, precision="int8"))
    path.write_bytes(proto.SerializeToString())
    return proto


def gate_onnx(
    path: Path, reference: nn.Module, data: CalibrationSet, gate: Gate, *, batch: int = 32
) -> GateResult:
    """Run an ONNX file in ONNX Runtime (CPU) on ``data`` and judge it against ``reference`` by ``gate``."""
    run = ort_runner(ort_session(path, contract.DEFAULT_OPSET))
    chunks = list(torch.split(data.inputs, batch))
    expected = torch.cat(run_outputs(reference, chunks))
    actual = torch.cat([run(c.contiguous()) for c in chunks])
    return gate.judge(expected, actual, data.targets)


def export_int8(
    source: Checkpoint | str | os.PathLike[str] | nn.Module,
    path: str | os.PathLike[str],
    *,
    calibration: CalibrationSet,
    method: str = "minmax",
    gate: Gate | None = None,
    gate_data: CalibrationSet | None = None,
    opset: int = contract.DEFAULT_OPSET,
    exporter: str = "auto",
    input_size: tuple[int, ...] | None = None,
) -> ExportResult:
    """Export the folded model to ONNX, quantise it to int8, gate it, and write it only if it passes.

    Args:
        source: A checkpoint, its path, or an eval-mode module (with ``input_size``).
        path: The ``.onnx`` file to write (atomically).
        calibration: Preprocessed inputs; one half calibrates, the other is the gate's (unless
            ``gate_data`` is given, in which case all of it calibrates).
        method: How activation ranges are chosen: one of :data:`CALIBRATION_METHODS`.
        gate: What the quantised model must achieve (default: :class:`Gate`'s defaults).
        gate_data: Judge on these inputs instead of the held-out half.
        opset: ONNX opset of the float32 export.
        exporter: ONNX exporter of the float32 export.
        input_size: (H, W) to export at instead of the model's size.

    Raises:
        InputError: Too few calibration inputs, an unknown method, or a model ONNX Runtime
            cannot quantise.
        GateFailedError: The quantised model fails the gate (exit code 1; nothing is written).
    """
    started = time.perf_counter()
    gate = gate or Gate()
    check_method(method)
    calibrate, held_out = (calibration, gate_data) if gate_data is not None else calibration.split()
    if len(calibrate.inputs) < MIN_CALIBRATION or len(held_out.inputs) < 1:
        raise InputError(
            f"--calibration {calibration.description} gives {len(calibration.inputs)} inputs; int8 "
            f"calibration needs at least {MIN_CALIBRATION} to calibrate and more to gate on"
        )
    path = Path(path)
    removed = guard_output(source, path)
    prepared = prepare(source, fold=True, input_size=input_size)
    proto, details = build(prepared, opset=opset, static_batch=None, exporter=exporter)
    with staging_directory(path.parent, path.name) as staging:
        float_file = save(proto, staging / "float32.onnx")[-1]
        check_staged(float_file, prepared, details, check=True)  # the float32 export itself is exact
        quantized = staging / path.name
        quantize_file(float_file, quantized, calibrate.inputs, method=method)
        int8 = mark_int8(quantized, read_metadata(proto))
        result = gate_onnx(quantized, prepared.reference, held_out, gate)
        if not result.passed:
            raise GateFailedError(
                f"the int8 export fails the accuracy gate on {held_out.description}, so nothing was "
                f"written: {result.verdict()}; calibrate on more varied data or another --calibration-method",
                result,
            )
        sizes = {"float32_bytes": float_file.stat().st_size, "int8_bytes": quantized.stat().st_size}
        commit(quantized, path)
    details.update(
        sizes,
        nodes=len(int8.graph.node),
        quantization={
            "format": "QDQ",
            "weights": "int8 (7-bit range), symmetric, per channel",
            "activations": "uint8, asymmetric, per tensor",
            "calibration": calibrate.description,
            "calibration_inputs": len(calibrate.inputs),
            "method": method,
        },
        gate=result.to_dict(),
        files=[str(path)],
        removed_stale=removed,
    )
    return ExportResult(
        path=path,
        format="onnx",
        metadata=read_metadata(int8).to_dict(),
        details=details,
        check=None,
        seconds=time.perf_counter() - started,
    )
