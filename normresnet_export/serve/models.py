"""What the server serves: every MODEL argument opened in ONNX Runtime or OpenVINO, named and versioned.

A MODEL is an ONNX file (served as version 1, named after the file), a normexport checkpoint
(folded, exported to ONNX and checked against the checkpoint in a temporary directory before
the server says it is ready, exactly as ``normexport export`` would), a pretrained weights name
(its checkpoint, served under that name), a Triton model directory,
or a Triton model repository written by ``normexport export --format triton`` (every model in
it, each as its newest version, Triton's default version policy). Models are only ever the
ones named at start-up: a request names a model among them, never a file.

ONNX Runtime runs them by default; ``runtime="openvino"`` runs them in OpenVINO instead, at the
inference precision asked for (float32 unless told), set explicitly and read back as
``normexport predict`` and ``check`` do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from normresnet_export.errors import InputError
from normresnet_export.runtime.loader import check_runtime, model_kind, triton_model_file
from normresnet_export.runtime.openvino_backend import OpenVinoBackend
from normresnet_export.runtime.ort_backend import OnnxRuntimeBackend
from normresnet_export.serve.protocol import ONNX_DATATYPES, OPENVINO_DATATYPES, TensorInfo

#: The ``platform`` the model metadata names for each runtime (Triton's names).
PLATFORMS = {"onnxruntime": "onnxruntime_onnx", "openvino": "openvino"}

#: What a served model's name may be: what fits a URL path segment and a Triton directory name.
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


@dataclass
class ServedModel:
    """One model the server answers for.

    Attributes:
        name: Its name in URLs (``/v2/models/{name}``).
        version: Its version (``"1"`` for a file; the version directory for Triton).
        backend: What runs it: an ONNX Runtime session or an OpenVINO compiled model.
        source: The MODEL argument it came from.
        inputs: Its inputs as the protocol describes them.
        outputs: Its outputs as the protocol describes them.
        pinned: The batch its graph is fixed to, else ``None``.
    """

    name: str
    version: str
    backend: OnnxRuntimeBackend | OpenVinoBackend
    source: str
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    pinned: int | None = None

    @property
    def platform(self) -> str:
        """What runs it, by Triton's name (``onnxruntime_onnx``, ``openvino``)."""
        return PLATFORMS[self.backend.name]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Every output for ``feeds``, in the order of :attr:`outputs` (on the model's worker thread)."""
        if isinstance(self.backend, OpenVinoBackend):
            # One infer request per model, used by its one worker thread only; infer() releases the GIL.
            result = self.backend.request.infer(feeds)
            return [np.array(result[port], copy=True) for port in self.backend.compiled.outputs]
        return self.backend.session.run([spec.name for spec in self.outputs], feeds)

    def metadata(self) -> dict[str, Any]:
        """The model metadata response (``GET /v2/models/{name}``)."""
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.platform,
            "inputs": [spec.to_dict() for spec in self.inputs],
            "outputs": [spec.to_dict() for spec in self.outputs],
        }


def _tensors(args: Sequence[Any], where: str) -> list[TensorInfo]:
    """ONNX Runtime's description of a session's inputs or outputs, as the protocol gives it."""
    tensors = []
    for arg in args:
        if arg.type not in ONNX_DATATYPES:
            raise InputError(
                f"{where}: tensor {arg.name!r} is of type {arg.type}, which the server cannot carry"
            )
        shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
        tensors.append(TensorInfo(arg.name, ONNX_DATATYPES[arg.type], shape))
    return tensors


def _openvino_tensors(ports: Sequence[Any], where: str) -> list[TensorInfo]:
    """OpenVINO's description of a compiled model's inputs or outputs, as the protocol gives it."""
    tensors = []
    for port in ports:
        kind = port.get_element_type().get_type_name()
        if kind not in OPENVINO_DATATYPES:
            raise InputError(
                f"{where}: tensor {port.get_any_name()!r} is of type {kind}, which the server cannot carry"
            )
        shape = tuple(-1 if d.is_dynamic else d.get_length() for d in port.get_partial_shape())
        tensors.append(TensorInfo(port.get_any_name(), OPENVINO_DATATYPES[kind], shape))
    return tensors


def _described(
    name: str, version: str, backend: OnnxRuntimeBackend | OpenVinoBackend, source: str
) -> ServedModel:
    if isinstance(backend, OpenVinoBackend):
        inputs = _openvino_tensors(backend.compiled.inputs, source)
        outputs = _openvino_tensors(backend.compiled.outputs, source)
    else:
        inputs = _tensors(backend.session.get_inputs(), source)
        outputs = _tensors(backend.session.get_outputs(), source)
    first = {spec.shape[0] if spec.shape else -1 for spec in inputs}
    pinned = first.pop() if len(first) == 1 and -1 not in first else None
    return ServedModel(name, version, backend, source, inputs, outputs, pinned)


def _check_name(name: str, where: str) -> str:
    if not _NAME.fullmatch(name):
        raise InputError(
            f"{where}: a model name is letters, digits, '_', '.' and '-', not starting with '.', got "
            f"{name!r}; pass --name"
        )
    return name


def _triton_models(directory: Path) -> list[Path]:
    """The model directories a Triton path holds: itself, or every visible model directory in it."""
    if (directory / "config.pbtxt").is_file():
        return [directory]
    found = sorted(
        entry
        for entry in directory.iterdir()
        if not entry.name.startswith(".") and (entry / "config.pbtxt").is_file()
    )
    if not found:
        raise InputError(
            f"{directory} is a directory but holds no Triton model (no config.pbtxt); give an .onnx "
            "file, a checkpoint or a repository written by normexport export --format triton"
        )
    return found


def load_models(
    models: Sequence[str],
    *,
    name: str | None,
    device: str,
    allow_cpu_fallback: bool,
    threads: int | None,
    workspace: Path,
    runtime: str = "onnxruntime",
    precision: str = "fp32",
) -> list[ServedModel]:
    """Open every MODEL argument (see the module docstring).

    Args:
        models: The MODEL arguments.
        name: The name of the one model served (``--name``), else ``None`` (file or directory names).
        device: ``auto``, ``cpu``, ``cuda`` or ``tensorrt``.
        allow_cpu_fallback: Run on the CPU, and say why, when the GPU asked for is not usable.
        threads: Intra-op threads per model.
        workspace: Where checkpoints are exported to (removed when the server stops).
        runtime: ``onnxruntime`` or ``openvino``.
        precision: The inference precision asked of OpenVINO (``fp32`` or ``bf16``).

    Raises:
        InputError: A MODEL that is none of the kinds above, two models of one name, or
            ``--name`` with more than one model.
        CheckFailedError: A checkpoint whose ONNX export does not agree with it.
        DeviceError: The device cannot be used, or OpenVINO cannot compute at ``precision`` here.
    """
    from normresnet_export.export.dispatch import export
    from normresnet_export.weights import resolve_model_file

    if not models:
        raise InputError("give at least one MODEL: an .onnx file, a checkpoint or a Triton repository")
    check_runtime(runtime, precision)
    found: list[tuple[str, str, Path, str]] = []  # (name, version, onnx file, source)
    for model in models:
        path = resolve_model_file(model)  # a pretrained weights name becomes its checkpoint
        kind = model_kind(path)
        if kind == "onnx":
            found.append((path.stem, "1", path, model))
        elif kind == "triton":
            for directory in _triton_models(path):
                onnx_file = triton_model_file(directory)
                found.append((directory.name, onnx_file.parent.name, onnx_file, model))
        elif kind == "checkpoint":
            target = workspace / f"{len(found)}" / f"{path.stem}.onnx"
            target.parent.mkdir()
            export("onnx", path, target)  # folds, exports and checks; raises if they disagree
            named = path.stem if path == Path(model) else model  # a weights name keeps its name
            found.append((named, "1", target, model))
        else:
            raise InputError(
                f"{model} is a {kind} program; the server runs ONNX files: export the checkpoint "
                "with normexport export --format onnx and serve the .onnx file"
            )
    if name is not None:
        if len(found) != 1:
            raise InputError(f"--name names one model, but {len(found)} are served; leave it out")
        found = [(name, *found[0][1:])]
    served: list[ServedModel] = []
    for model_name, version, onnx_file, source in found:
        _check_name(model_name, source)
        if any(other.name == model_name for other in served):
            raise InputError(
                f"two models are named {model_name!r} ({source} and another); serve them from "
                "differently named files or repositories"
            )
        backend: OnnxRuntimeBackend | OpenVinoBackend
        if runtime == "openvino":
            backend = OpenVinoBackend(
                onnx_file,
                device=device,
                threads=threads,
                precision=precision,
                label=f"openvino ({model_name})",
            )
        else:
            # Spinning worker threads would take the cores from the event loop between batches.
            backend = OnnxRuntimeBackend(
                onnx_file,
                device=device,
                allow_cpu_fallback=allow_cpu_fallback,
                threads=threads,
                spinning=False,
                label=f"onnxruntime ({model_name})",
            )
        served.append(_described(model_name, version, backend, source))
    return served
