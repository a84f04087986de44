"""Open any model file normexport knows as a :class:`~normresnet_export.runtime.base.Backend`.

``MODEL`` may be an ONNX file, a Triton model directory (its newest version's ``model.onnx``),
a TorchScript or ``.pt2`` export, or a normexport checkpoint (folded or not). The kind is told
from the file's content, not its name.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from torch import nn

from normresnet_export._io import is_staging_name
from normresnet_export.checkpoint import Checkpoint, load_checkpoint
from normresnet_export.errors import InputError
from normresnet_export.files.reading import sniff, zip_kind
from normresnet_export.metadata import PROGRAM_KINDS, ModelMetadata, load_pt2, load_torchscript, require_trust
from normresnet_export.precision import BFloat16Autocast, Float16Model
from normresnet_export.runtime.base import Backend, DeviceError
from normresnet_export.runtime.devices import (
    check_device_name,
    check_threads,
    torch_bf16_missing_reason,
    torch_device,
)
from normresnet_export.runtime.openvino_backend import OpenVinoBackend, check_precision
from normresnet_export.runtime.ort_backend import OnnxRuntimeBackend
from normresnet_export.runtime.torch_backend import TorchBackend
from normresnet_export.vocabulary import RUNTIMES


def _visible(directory: Path) -> list[Path]:
    """The entries of ``directory`` that can be outputs: not hidden, so never a staging area.

    An export that was killed half-way leaves a complete-looking model in a hidden staging
    directory; serving it would run a model nobody finished writing or checking.
    """
    return sorted(entry for entry in directory.iterdir() if not entry.name.startswith("."))


def triton_model_file(directory: Path) -> Path:
    """The ``model.onnx`` of a Triton model directory's newest version (or of a one-model repository).

    Hidden entries (staging directories of unfinished exports among them) are never models.
    """
    if not (directory / "config.pbtxt").is_file():
        models = [d for d in _visible(directory) if (d / "config.pbtxt").is_file()]
        if len(models) != 1:
            raise InputError(
                f"{directory} is a directory but not a Triton model directory (no config.pbtxt); "
                "give a model file, a Triton model directory or a repository holding one model"
            )
        directory = models[0]
    versions = sorted((int(d.name), d) for d in _visible(directory) if d.name.isdigit() and d.is_dir())
    for _, version in reversed(versions):
        if (version / "model.onnx").is_file():
            return version / "model.onnx"
    raise InputError(f"the Triton model directory {directory} has no <version>/model.onnx")


def model_kind(path: Path) -> str:
    """``onnx``, ``torchscript``, ``pt2``, ``triton`` or ``checkpoint``, from the file's content."""
    if not path.exists():
        raise InputError(f"{path} does not exist; give an .onnx, TorchScript, .pt2 or checkpoint file")
    staging = next((p for p in (path, *path.absolute().parents) if is_staging_name(p.name)), None)
    if staging is not None:
        raise InputError(
            f"{staging} is the staging area of a write that never finished (a killed run), not a "
            "model; export the model again"
        )
    if path.is_dir():
        return "triton"
    container = sniff(path)
    if container == "onnx" or (path.suffix == ".onnx" and container == "unknown"):
        return "onnx"
    if container == "zip":
        kind = zip_kind(path)
        if kind is not None:
            return kind
    return "checkpoint"


def check_runtime(runtime: str, precision: str, kind: str = "onnx") -> None:
    """Refuse a runtime or precision that is unknown, or that does not apply to a model of ``kind``.

    OpenVINO runs ONNX files; ONNX Runtime here computes what the file holds (float32, or the
    float16 or int8 an export wrote), so ``bf16`` is OpenVINO's for ONNX files. A checkpoint
    runs in torch, and ``bf16`` runs it under torch's bfloat16 autocast. TorchScript and
    ``.pt2`` programs compute in the precision they were written in.

    Raises:
        InputError: Naming the choices, or what to use instead.
    """
    if runtime not in RUNTIMES:
        raise InputError(f"unknown --runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}")
    check_precision(precision)
    if runtime == "openvino" and kind not in ("onnx", "triton"):
        raise InputError(
            f"--runtime openvino runs ONNX files, and this is a {kind}; export it with "
            "normexport export --format onnx first"
        )
    if precision != "fp32" and kind in PROGRAM_KINDS:
        raise InputError(
            f"--precision {precision} applies to checkpoints (torch autocast) and .onnx files "
            f"(--runtime openvino); a {kind} program computes in the precision it was exported in "
            "(export --fp16 for a lower one)"
        )
    if precision != "fp32" and kind in ("onnx", "triton") and runtime != "openvino":
        raise InputError(
            f"--precision {precision} for an .onnx file is computed by --runtime openvino; ONNX Runtime "
            "computes in the precision of the file (export --fp16 or --int8 for a lower one)"
        )


def open_model(
    model: str | os.PathLike[str] | Checkpoint,
    *,
    device: str = "auto",
    allow_cpu_fallback: bool = False,
    threads: int | None = None,
    fold: bool = False,
    fp16: bool = False,
    label: str | None = None,
    trust_code: bool = False,
    runtime: str = "onnxruntime",
    precision: str = "fp32",
) -> Backend:
    """Load ``model`` on ``device`` behind the :class:`Backend` interface.

    Args:
        model: A model file (see the module docstring) or a loaded checkpoint.
        device: ``auto`` (a GPU only when it is really usable), ``cpu``, ``cuda`` or
            ``tensorrt`` (ONNX models only).
        allow_cpu_fallback: Run on the CPU, and report it, when the GPU asked for is not usable.
        threads: CPU threads (ONNX Runtime's intra-op threads; ``torch.set_num_threads`` for torch).
        fold: Checkpoints only: fold the model first (the "folded eager" backend).
        fp16: Checkpoints only: compute in float16 behind float32 input and output.
        label: Short human name for reports (default: the kind and the file name).
        trust_code: Load TorchScript and ``.pt2`` files. They are programs, and loading one runs
            the code it holds (which may read or write files), so they are refused unless the
            caller says the file comes from someone trusted. ONNX files and checkpoints hold no
            code and need no trust.
        runtime: What runs an ONNX file (or a Triton directory's): ``onnxruntime`` (default) or
            ``openvino`` (the optional extra).
        precision: The inference precision asked of the runtime, set explicitly and reported:
            ``fp32`` (default) or ``bf16``: OpenVINO's bfloat16 for an ONNX file, torch's
            bfloat16 autocast for a checkpoint (both on CPUs with AVX512-BF16 or AMX, or a GPU
            that has bfloat16).

    Raises:
        InputError: A file that is none of the kinds above, options that do not apply to it, or
            a TorchScript or ``.pt2`` program without ``trust_code``.
        DeviceError: The device asked for cannot be used, with the reason.
    """
    check_device_name(device)
    check_threads(threads)
    if not isinstance(model, Checkpoint):
        from normresnet_export.weights import resolve_model_file

        model = resolve_model_file(model)  # a pretrained weights name becomes its checkpoint file
    kind = "checkpoint" if isinstance(model, Checkpoint) else model_kind(Path(model))
    if kind != "checkpoint" and (fold or fp16):
        raise InputError(f"fold and fp16 apply to checkpoints; {model} is already an exported {kind} model")
    if fp16 and precision != "fp32":
        raise InputError(f"fp16 and --precision {precision} are two precisions; ask for one")
    check_runtime(runtime, precision, kind)
    if kind in PROGRAM_KINDS:  # refused before anything else is set up
        require_trust(model, kind, trust_code)  # type: ignore[arg-type]
    if kind in ("onnx", "triton"):
        path = Path(model) if kind == "onnx" else triton_model_file(Path(model))  # type: ignore[arg-type]
        if label is None and kind == "triton":
            label = f"{runtime} (triton {path.parent.parent.name})"
        if runtime == "openvino":
            return OpenVinoBackend(path, label=label, device=device, threads=threads, precision=precision)
        return OnnxRuntimeBackend(
            path,
            label=label,
            device=device,
            allow_cpu_fallback=allow_cpu_fallback,
            threads=threads,
        )
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    target, fallback = torch_device(device, allow_cpu_fallback=allow_cpu_fallback)
    computes = None  # what the module computes in, when it is not what the file holds
    if kind == "torchscript":
        module, metadata = load_torchscript(model, map_location=target, trust_code=trust_code)  # type: ignore[arg-type]
        name = "torchscript"
    elif kind == "pt2":
        module, metadata = load_pt2(model, device=target, trust_code=trust_code)  # type: ignore[arg-type]
        name = "torch.export"
    else:
        if precision == "bf16":
            computes = "bfloat16"
            reason = torch_bf16_missing_reason(target)
            if reason is not None:
                raise DeviceError(f"--precision bf16 for a checkpoint: {reason}; use --precision fp32")
        checkpoint = model if isinstance(model, Checkpoint) else load_checkpoint(model)
        module, metadata = _eager(checkpoint, fold=fold, fp16=fp16)
        name = "eager"
        if target.type != "cpu":  # a copy: the checkpoint's own model stays the CPU reference
            module = copy.deepcopy(module).to(target)
        if computes == "bfloat16":
            module = BFloat16Autocast(module, target.type).eval()
    if label is None:
        where = model.path.name if isinstance(model, Checkpoint) and model.path else Path(str(model)).name
        label = f"{name} ({where})"
    return TorchBackend(
        module,
        name=name,
        label=label,
        metadata=metadata,
        device=target,
        fallback=fallback,
        precision=computes,
    )


def _eager(checkpoint: Checkpoint, *, fold: bool, fp16: bool) -> tuple[nn.Module, ModelMetadata]:
    """(module, metadata) for a checkpoint, folded and/or in float16 as asked.

    bfloat16 autocast is not a property of the weights: the caller wraps it around the module
    once it is on its device, and the backend, not the metadata, reports it.

    The metadata is the record an export of the same network would carry (without the export's
    named input and output), so that reports read every backend the same way.
    """
    module = checkpoint.model.eval()
    record = None
    if fold and not checkpoint.folded:
        from normresnet_export.fold import fold_model

        result = fold_model(module, input_size=checkpoint.input_size)
        module, record = result.model, result.report.to_compact_dict()
    if fp16:
        module = Float16Model(copy.deepcopy(module)).eval()
    metadata = ModelMetadata.from_checkpoint(
        checkpoint, fold=record, precision="float16" if fp16 else "float32"
    )
    return module, metadata
