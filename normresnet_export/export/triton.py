"""Triton model repository export: ``<repository>/<name>/config.pbtxt`` and ``<name>/1/model.onnx``.

The model is the ONNX export (symbolic batch, float32 input and output, metadata inside)
served by Triton's ONNX Runtime backend, with dynamic batching: Triton gathers requests
into batches of up to ``max_batch_size``. The config is rendered here and, when the
``tritonclient`` package is installed, parsed against Triton's own model-config schema
(``model_config_pb2``) before anything is written. Serve with
``tritonserver --model-repository=<repository>``; add instances or machines to scale out.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import torch
from torch import nn

from normresnet_export._io import check_output, commit, remove_stale, staging_directory
from normresnet_export.checkpoint import Checkpoint
from normresnet_export.errors import InputError
from normresnet_export.export import contract
from normresnet_export.export.onnx import build, check_staged, read_metadata, save
from normresnet_export.export.result import ExportResult
from normresnet_export.export.source import ExportSource, prepare
from normresnet_export.export.verify import input_files

INSTANCE_KINDS = ("KIND_AUTO", "KIND_GPU", "KIND_CPU")


def render_config(
    name: str,
    source: ExportSource,
    *,
    max_batch_size: int,
    instances: int,
    kind: str,
    max_queue_delay_us: int,
) -> str:
    """The ``config.pbtxt`` text (protobuf text format, Triton's ``ModelConfig``)."""
    with torch.no_grad():
        outputs = tuple(source.model(source.example()).shape[1:])
    dims = lambda shape: ", ".join(map(str, shape))  # noqa: E731
    return f'''name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch_size}
input [
  {{
    name: "{contract.INPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ {dims(source.input_size)} ]
  }}
]
output [
  {{
    name: "{contract.OUTPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ {dims(outputs)} ]
  }}
]
dynamic_batching {{
  max_queue_delay_microseconds: {max_queue_delay_us}
}}
instance_group [
  {{
    count: {instances}
    kind: {kind}
  }}
]
'''


def validate_config(text: str) -> str:
    """Parse ``text`` against Triton's ModelConfig schema when ``tritonclient`` is installed; say which."""
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        return "not validated (install tritonclient[grpc] to parse it against Triton's schema)"
    try:
        text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise InputError(
            f"the generated config.pbtxt does not parse as Triton's ModelConfig: {exc}"
        ) from None
    return "parsed against tritonclient's model_config_pb2.ModelConfig"


def _check_name(name: str) -> None:
    """A Triton model name is a plain directory name (not hidden: loaders skip hidden names)."""
    if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*", name):
        raise InputError(
            f"a Triton model name is letters, digits, '_', '.' and '-', not starting with '.', got {name!r}"
        )


def _check_repository(repository: Path) -> None:
    """A Triton repository holds only model directories (each with a config.pbtxt); refuse anything else.

    Refused before any work: a link, a file, a directory in a missing parent, or a directory
    holding anything but model directories (hidden entries, staging areas among them, aside).
    """
    check_output(repository, directory=True)
    if not repository.is_dir():
        return
    strangers = [
        entry.name
        for entry in repository.iterdir()
        if not entry.name.startswith(".") and not (entry.is_dir() and (entry / "config.pbtxt").is_file())
    ]
    if strangers:
        raise InputError(
            f"{repository} exists and is not a Triton model repository (it holds "
            f"{', '.join(sorted(strangers)[:3])}); choose an empty or new directory"
        )


def export_triton(
    source: Checkpoint | str | os.PathLike[str] | nn.Module,
    repository: str | os.PathLike[str],
    *,
    name: str | None = None,
    fold: bool = True,
    opset: int = contract.DEFAULT_OPSET,
    input_size: tuple[int, ...] | None = None,
    fp16: bool = False,
    check: bool = True,
    exporter: str = "auto",
    max_batch_size: int = 64,
    instances: int = 1,
    instance_kind: str = "KIND_AUTO",
    max_queue_delay_us: int = 500,
) -> ExportResult:
    """Write (or replace) one model in a Triton model repository.

    Args:
        source: A checkpoint, its path, or an eval-mode module (with ``input_size``).
        repository: The model repository directory (created if missing; its parent must exist).
        name: The model's name in the repository; default its arch.
        max_batch_size: Largest batch Triton forms from queued requests.
        instances: Model instances (copies) Triton runs.
        instance_kind: ``KIND_AUTO`` (GPU when there is one), ``KIND_GPU`` or ``KIND_CPU``.
        max_queue_delay_us: How long Triton waits to fill a batch.
        fold, opset, input_size, fp16, check, exporter: As for
            :func:`~normresnet_export.export.onnx.export_onnx`.

    Raises:
        InputError: Bad options, or a directory that is not a model repository.
        CheckFailedError: The ONNX model does not agree with the checkpoint (nothing is written).
    """
    started = time.perf_counter()
    repository = Path(repository)
    if max_batch_size < 1 or instances < 1 or max_queue_delay_us < 0:
        raise InputError("max_batch_size and instances must be at least 1, max_queue_delay_us at least 0")
    if instance_kind not in INSTANCE_KINDS:
        raise InputError(f"instance_kind must be one of {', '.join(INSTANCE_KINDS)}, got {instance_kind!r}")
    if name is not None:
        _check_name(name)
    _check_repository(repository)
    removed = remove_stale(repository)
    prepared = prepare(source, fold=fold, input_size=input_size, fp16=fp16, check=check)
    model_name = name or prepared.name
    _check_name(model_name)
    # The model directory is replaced as a whole: the checkpoint being exported may not lie in it.
    # (A repository that does not exist yet is created below and holds nothing.)
    if repository.is_dir():
        check_output(repository / model_name, inputs=input_files(source), directory=True)
    proto, details = build(prepared, opset=opset, static_batch=None, exporter=exporter)
    config = render_config(
        model_name,
        prepared,
        max_batch_size=max_batch_size,
        instances=instances,
        kind=instance_kind,
        max_queue_delay_us=max_queue_delay_us,
    )
    details["config_schema"] = validate_config(config)
    with staging_directory(repository, model_name, create=True) as staging:
        (staging / "1").mkdir()
        graph = save(proto, staging / "1" / "model.onnx")[-1]
        (staging / "config.pbtxt").write_text(config)
        result = check_staged(graph, prepared, details, check=check)
        model_dir = commit(staging, repository / model_name)
    details.update(
        {"repository": str(repository), "model": model_name, "config": config, "removed_stale": removed}
    )
    return ExportResult(
        path=model_dir,
        format="triton",
        metadata=read_metadata(proto).to_dict(),
        details=details,
        check=result,
        seconds=time.perf_counter() - started,
    )
