"""ONNX export: one ``input`` → ``logits`` graph with a symbolic batch, weights as initializers, metadata.

Two torch exporters exist. ``torch.onnx.export(dynamo=True)`` is the maintained one and
writes smaller graphs, but spends about 50 ms per layer: a folded resnet1202 takes 55 s and
an unfolded one 166 s on the CI machine, against 8 s and 12 s for the TorchScript-based
exporter (deprecated, but still shipped and correct). ``exporter="auto"`` therefore takes
dynamo for ordinary depths and the TorchScript-based exporter from ``DEEP_LAYERS`` layers
on, or when the opset is below 18 (dynamo writes 18 at least). Measurements are in
``bench/RESULTS.md``.

The file is checked before anything is written: ``onnx.checker``, one graph input
(weights are initializers, not inputs), a symbolic batch dimension where asked, an
ONNX Runtime session of the installed version (which also proves the opset and IR
version load there), and the numerical check of :mod:`~normresnet_export.export.verify`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import re
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from normresnet_export._io import commit, staging_directory
from normresnet_export._progress import stage
from normresnet_export.checkpoint import Checkpoint
from normresnet_export.errors import InputError, first_line
from normresnet_export.export import contract
from normresnet_export.export.result import ExportResult
from normresnet_export.export.source import ExportSource, prepare
from normresnet_export.export.verify import check_artefact, guard_output, require
from normresnet_export.fold import DEEP_LAYERS
from normresnet_export.limits import runtime_threads
from normresnet_export.metadata import ModelMetadata, OnnxRecord
from normresnet_export.models import count_layers
from normresnet_export.vocabulary import EXPORTERS

#: Opsets the TorchScript-based exporter writes; dynamo writes 18 and later.
TORCHSCRIPT_OPSETS = range(7, 24)
#: ONNX files hold at most 2 GB in one protobuf; larger weights go to an external data file.
EXTERNAL_DATA_BYTES = 1_800_000_000


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the exporters' deprecation warnings and progress logs; the result reports what happened."""
    previous = logging.root.manager.disable
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(previous)


def choose_exporter(model: nn.Module, requested: str, opset: int) -> tuple[str, str]:
    """(exporter, reason) for ``requested`` ("auto", "dynamo" or "torchscript")."""
    if requested not in EXPORTERS:
        raise InputError(f"unknown exporter {requested!r}; expected one of {', '.join(EXPORTERS)}")
    contract.check_opset(opset)
    if requested == "dynamo" and opset < 18:
        raise InputError(
            f"the dynamo exporter writes opset 18 or later, not {opset}; use --exporter torchscript"
        )
    if requested == "torchscript" and opset not in TORCHSCRIPT_OPSETS:
        raise InputError(f"the TorchScript-based exporter writes opsets 7 to 23, not {opset}")
    if requested != "auto":
        return requested, "requested"
    if opset < 18:
        return "torchscript", f"opset {opset} is below dynamo's minimum of 18"
    layers = count_layers(model)
    if layers >= DEEP_LAYERS and opset in TORCHSCRIPT_OPSETS:
        return (
            "torchscript",
            f"{layers} layers: dynamo would take minutes, the TorchScript-based exporter seconds",
        )
    return "dynamo", "torch's maintained exporter"


def to_onnx(
    model: nn.Module, example: torch.Tensor, *, opset: int, dynamic: bool, exporter: str
) -> onnx.ModelProto:
    """Trace ``model`` on ``example`` into an ONNX graph (``input`` → ``logits``)."""
    names = {
        "input_names": [contract.INPUT_NAME],
        "output_names": [contract.OUTPUT_NAME],
        "opset_version": opset,
    }
    with quiet():
        if exporter == "dynamo":
            shapes = ({0: torch.export.Dim(contract.BATCH_DIM, min=1)},) if dynamic else None
            program = torch.onnx.export(
                model, (example,), dynamo=True, dynamic_shapes=shapes, optimize=True, verbose=False, **names
            )
            proto = program.model_proto
        else:
            axes = {
                contract.INPUT_NAME: {0: contract.BATCH_DIM},
                contract.OUTPUT_NAME: {0: contract.BATCH_DIM},
            }
            buffer = io.BytesIO()
            torch.onnx.export(
                model,
                (example,),
                buffer,
                dynamo=False,
                dynamic_axes=axes if dynamic else None,
                do_constant_folding=True,
                **names,
            )
            proto = onnx.load_from_string(buffer.getvalue())
    tidy(proto)
    return proto


def tidy(proto: onnx.ModelProto) -> None:
    """Remove ``Identity`` nodes and turn tensor ``Constant`` nodes into initializers.

    The TorchScript-based exporter shares identical initializers (e.g. the all-zero biases
    folding leaves behind) through one ``Identity`` node per use, about 1,200 in resnet1202, and
    writes the statistics of a kept BatchNorm as ``Constant`` nodes. Runtimes optimise both
    away; removing them here makes both exporters' graphs the same length and easier to read.
    """
    graph = proto.graph
    outputs = {o.name for o in graph.output}
    alias = {
        n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity" and n.output[0] not in outputs
    }
    constants = [
        n
        for n in graph.node
        if n.op_type == "Constant"
        and [a.name for a in n.attribute] == ["value"]
        and n.output[0] not in outputs
    ]
    for node in constants:
        tensor = onnx.TensorProto()
        tensor.CopyFrom(node.attribute[0].t)
        tensor.name = node.output[0]
        graph.initializer.append(tensor)
    dropped = set(alias) | {n.output[0] for n in constants}
    kept = [n for n in graph.node if n.output[0] not in dropped]
    for node in kept:
        for i, name in enumerate(node.input):
            while name in alias:
                name = alias[name]
            node.input[i] = name
    del graph.node[:]
    graph.node.extend(kept)


def _opset(proto: onnx.ModelProto) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def _validate(proto: onnx.ModelProto, *, opset: int, dynamic: bool) -> None:
    """The contract holds: the requested opset, one input (weights are initializers), a symbolic batch."""
    if _opset(proto) != opset:
        raise InputError(f"the exporter wrote opset {_opset(proto)} instead of the requested {opset}")
    inputs = [i.name for i in proto.graph.input]
    if inputs != [contract.INPUT_NAME]:
        raise InputError(f"the exported graph has inputs {inputs[:5]}; expected only {contract.INPUT_NAME!r}")
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    if dynamic and (batch.dim_value or not batch.dim_param):
        raise InputError(f"the exported batch dimension is pinned to {batch.dim_value}, not symbolic")
    onnx.checker.check_model(proto)


def add_metadata(proto: onnx.ModelProto, metadata: ModelMetadata) -> None:
    """Write every metadata field as a ``normexport.<field>`` property holding JSON (replacing any)."""
    del proto.metadata_props[:]
    for key, value in metadata.to_onnx_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def read_metadata(model: onnx.ModelProto | str | os.PathLike[str]) -> ModelMetadata:
    """The metadata :func:`export_onnx` wrote (the inverse of :func:`add_metadata`).

    Raises:
        InputError: Metadata of a newer schema than this version reads, or ill-typed fields.
    """
    if isinstance(model, onnx.ModelProto):
        proto, where = model, "the ONNX model"
    else:
        proto, where = onnx.load(str(model), load_external_data=False), str(model)
    return ModelMetadata.from_onnx_props({p.key: p.value for p in proto.metadata_props}, where=where)


def ort_session(model: str | os.PathLike[str], opset: int) -> Any:
    """A CPU ONNX Runtime session of the installed onnxruntime; a file it refuses is a one-line error."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # the GPU build logs missing CUDA libraries; CPU is what the check uses
    threads = runtime_threads()
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        supported = re.search(r"support for domain ai\.onnx is till opset (\d+)", str(exc))
        reason = f"it supports opsets up to {supported.group(1)}" if supported else first_line(exc)
        raise InputError(
            f"onnxruntime {ort.__version__} cannot run the export at opset {opset} ({reason}); "
            f"export with a lower --opset (default {contract.DEFAULT_OPSET})"
        ) from None


def ort_runner(session: Any) -> Any:
    """``tensor -> tensor`` over an ONNX Runtime session."""

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {contract.INPUT_NAME: x.numpy()})[0])

    return run


def build(
    source: ExportSource, *, opset: int, static_batch: int | None, exporter: str
) -> tuple[onnx.ModelProto, dict]:
    """Export and validate in memory: (model with metadata, details). Nothing is written here."""
    if static_batch is not None and static_batch < 1:
        raise InputError(f"--static-batch must be at least 1, got {static_batch}")
    chosen, reason = choose_exporter(source.model, exporter, opset)
    dynamic = static_batch is None
    started = time.perf_counter()
    proto = to_onnx(
        source.model,
        source.example(static_batch or contract.EXAMPLE_BATCH),
        opset=opset,
        dynamic=dynamic,
        exporter=chosen,
    )
    seconds = time.perf_counter() - started
    _validate(proto, opset=opset, dynamic=dynamic)
    details = {
        "exporter": chosen,
        "exporter_reason": reason,
        "export_seconds": round(seconds, 3),
        "opset": opset,
        "ir_version": proto.ir_version,
        "batch": contract.BATCH_DIM if dynamic else static_batch,
        "nodes": len(proto.graph.node),
        "ops": dict(sorted(Counter(n.op_type for n in proto.graph.node).items())),
    }
    record = OnnxRecord(exporter=chosen, opset=opset, ir_version=proto.ir_version)
    add_metadata(proto, dataclasses.replace(source.metadata.with_batch(static_batch), onnx=record))
    return proto, details


def save(proto: onnx.ModelProto, path: Path) -> list[Path]:
    """Write ``proto`` to ``path``; weights beyond the 2 GB protobuf limit go to ``<name>.data`` beside it."""
    if proto.ByteSize() <= EXTERNAL_DATA_BYTES:
        path.write_bytes(proto.SerializeToString())
        return [path]
    data = path.with_name(path.name + ".data")
    onnx.save_model(
        proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=data.name
    )
    return [data, path]  # the weights first: a committed graph must never point at a missing file


def check_staged(graph: Path, source: ExportSource, details: dict[str, Any], *, check: bool) -> Any:
    """Load the staged file in ONNX Runtime (always); compare it with the model unless ``check=False``."""
    import onnxruntime as ort

    session = ort_session(graph, details["opset"])
    if not check:
        return None
    batches = contract.CHECK_BATCHES if details["batch"] == contract.BATCH_DIM else (details["batch"],)
    result = check_artefact(
        ort_runner(session),
        source,
        batches=batches,
        runtime=f"onnxruntime {ort.__version__} (CPUExecutionProvider)",
    )
    require(result, "the ONNX export")
    return result


def export_onnx(
    source: Checkpoint | str | os.PathLike[str] | nn.Module,
    path: str | os.PathLike[str],
    *,
    fold: bool = True,
    opset: int = contract.DEFAULT_OPSET,
    static_batch: int | None = None,
    input_size: tuple[int, ...] | None = None,
    fp16: bool = False,
    check: bool = True,
    exporter: str = "auto",
) -> ExportResult:
    """Export a checkpoint (or model) to ONNX.

    Args:
        source: A checkpoint, its path, or an eval-mode module (with ``input_size``).
        path: The ``.onnx`` file to write (atomically).
        fold: Fold BatchNorm, tau and Dirac weights first (default).
        opset: ONNX opset (default 18).
        static_batch: Pin the batch dimension to this size; default symbolic.
        input_size: (H, W) to export at instead of the model's size.
        fp16: Weights and compute in float16, input and output in float32.
        check: Run the export in ONNX Runtime and compare with the model before writing.
        exporter: ``"auto"``, ``"dynamo"`` or ``"torchscript"`` (see the module docstring).

    Raises:
        InputError: Bad source, options or opset, a file ONNX Runtime cannot load, or an output
            refused by :func:`~normresnet_export.export.verify.guard_output`.
        CheckFailedError: The export does not agree with the model (nothing is written).
    """
    started = time.perf_counter()
    path = Path(path)
    removed = guard_output(source, path)
    prepared = prepare(source, fold=fold, input_size=input_size, fp16=fp16, check=check)
    stage("export")
    proto, details = build(prepared, opset=opset, static_batch=static_batch, exporter=exporter)
    with staging_directory(path.parent, path.name) as staging:
        staged = save(proto, staging / path.name)
        result = check_staged(staged[-1], prepared, details, check=check)
        stage("write")
        details["files"] = [str(commit(file, path.parent / file.name)) for file in staged]
    details["removed_stale"] = removed
    return ExportResult(
        path=path,
        format="onnx",
        metadata=read_metadata(proto).to_dict(),
        details=details,
        check=result,
        seconds=time.perf_counter() - started,
    )
