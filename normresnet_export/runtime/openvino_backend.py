"""OpenVINO backend: an ``.onnx`` file compiled for the CPU at an inference precision set explicitly.

OpenVINO chooses the compute precision itself unless told: on a CPU with AVX512-BF16 or AMX its
default ``INFERENCE_PRECISION_HINT`` is bfloat16, so a float32 model silently runs in bfloat16
(logits move by about 5e-3 relative). This backend therefore always sets the hint (``f32``
unless ``bf16`` is asked for) and reports the precision the compiled model reads back, never
the one asked for. When the CPU cannot compute in bfloat16, OpenVINO compiles float32 instead
without a word; the backend refuses that with the reason rather than label float32 numbers
bfloat16.

OpenVINO is an optional extra (``pip install 'normresnet-export[openvino]'``); it is imported
only when a model is opened with it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from normresnet_export.errors import InputError, first_line
from normresnet_export.limits import runtime_threads
from normresnet_export.metadata import ModelMetadata
from normresnet_export.runtime.base import Backend, DeviceError, as_batch
from normresnet_export.vocabulary import INFERENCE_PRECISIONS

#: OpenVINO's name of each inference precision, and the name reports use for it.
_HINTS: dict[str, tuple[str, str]] = {"fp32": ("f32", "float32"), "bf16": ("bf16", "bfloat16")}

#: How to get OpenVINO when it is missing.
INSTALL = "pip install 'normresnet-export[openvino]'"


def import_openvino() -> Any:
    """The ``openvino`` module, or a one-line error saying how to install it.

    Raises:
        InputError: OpenVINO is not installed.
    """
    try:
        import openvino
    except ImportError:
        raise InputError(f"the OpenVINO runtime is not installed; {INSTALL}") from None
    return openvino


def openvino_missing_reason() -> str | None:
    """Why OpenVINO cannot be used here (not installed), or ``None`` when it can."""
    try:
        import_openvino()
    except InputError as exc:
        return str(exc)
    return None


def cpu_capabilities() -> list[str]:
    """What OpenVINO's CPU plugin says this CPU can compute in (``FP32``, ``BF16``, ``INT8``, …)."""
    core = import_openvino().Core()
    return [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def bf16_missing_reason() -> str | None:
    """Why OpenVINO cannot compute in bfloat16 on this CPU, or ``None`` when it can."""
    missing = openvino_missing_reason()
    if missing is not None:
        return missing
    capabilities = cpu_capabilities()
    if "BF16" in capabilities:
        return None
    return (
        "this CPU has no AVX512-BF16 or AMX (OpenVINO's CPU capabilities: "
        f"{', '.join(capabilities)}), so OpenVINO computes in float32 only"
    )


def check_precision(precision: str) -> tuple[str, str]:
    """(OpenVINO's hint, the report's name) for one of :data:`INFERENCE_PRECISIONS`.

    Raises:
        InputError: Another precision, naming the choices.
    """
    if precision not in INFERENCE_PRECISIONS:
        raise InputError(
            f"unknown --precision {precision!r}; expected one of {', '.join(INFERENCE_PRECISIONS)}"
        )
    return _HINTS[precision]


def _type_name(element_type: Any) -> str:
    """OpenVINO's short name of an element type (``bf16``, ``f32``): ``str()`` of one gives
    ``<Type: 'bfloat16'>``, so the name is asked for, with the text as the fallback."""
    name = getattr(element_type, "get_type_name", None)
    return str(name() if callable(name) else element_type)


def _metadata(model: Any, path: Path) -> ModelMetadata:
    """The normexport record of an ONNX file OpenVINO has read (its ``metadata_props`` are the
    read model's ``framework`` run-time information)."""
    framework = model.get_rt_info()["framework"] if model.has_rt_info(["framework"]) else {}
    properties = {str(key): str(value.astype(str)) for key, value in framework.items()}
    return ModelMetadata.from_onnx_props(properties, where=str(path))


def _version(openvino: Any) -> str:
    """``openvino 2026.4.1`` (without the build tag OpenVINO's version string carries)."""
    return f"openvino {openvino.__version__.split('-')[0]}"


class OpenVinoBackend(Backend):
    """An ONNX file compiled by OpenVINO for the CPU.

    Attributes:
        inference_precision: What the compiled model computes in, read back from it
            (``"float32"`` or ``"bfloat16"``). :attr:`precision` is the same, except for an int8
            (quantised) model, whose precision is ``"int8"`` whatever its non-quantised layers use.
    """

    name = "openvino"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        label: str | None = None,
        device: str = "auto",
        threads: int | None = None,
        precision: str = "fp32",
    ) -> None:
        """Read and compile the model.

        Args:
            path: The ``.onnx`` file.
            label: Short human name for tables (default: ``openvino (<file name>)``).
            device: ``auto`` or ``cpu``; this backend runs on the CPU only.
            threads: Inference threads (default: ``OMP_NUM_THREADS`` when set, else OpenVINO's choice).
            precision: ``fp32`` (default) or ``bf16``; always passed to OpenVINO explicitly.

        Raises:
            InputError: OpenVINO is not installed, or cannot read the file.
            DeviceError: A GPU was asked for, or ``bf16`` on a CPU that OpenVINO compiles float32 for.
        """
        path = Path(path)
        hint, wanted = check_precision(precision)
        if device not in ("auto", "cpu"):
            raise DeviceError(
                f"--device {device}: the OpenVINO runtime runs on the CPU here; use --device cpu, "
                "or --runtime onnxruntime for a GPU"
            )
        openvino = import_openvino()
        core = openvino.Core()
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": hint}
        threads = runtime_threads(threads)
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            model = core.read_model(str(path))
            self.metadata = _metadata(model, path)
            self.compiled = core.compile_model(model, "CPU", config)
        except InputError:
            raise
        except Exception as exc:  # OpenVINO raises RuntimeError with a multi-line C++ trace
            raise InputError(f"{_version(openvino)} cannot read {path}: {first_line(exc)}") from None
        compiled = _type_name(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.inference_precision = "bfloat16" if compiled == "bf16" else "float32"
        if self.inference_precision != wanted:
            reason = bf16_missing_reason() or f"it compiled {compiled}"
            raise DeviceError(
                f"--precision {precision} was asked for but OpenVINO compiles {path.name} to "
                f"{self.inference_precision}: {reason}; use --precision fp32"
            )
        self.request = self.compiled.create_infer_request()
        self.output = self.compiled.output(0)
        self._version = _version(openvino)
        self.device = "cpu"
        self.provider = "CPU"
        self.precision = "int8" if self.metadata.precision == "int8" else self.inference_precision
        self.label = label or f"openvino ({path.name})"
        self.check_labels()

    def runtime_version(self) -> str:
        return self._version

    def describe(self) -> str:
        text = super().describe()
        return text if self.precision == self.inference_precision else f"{text} ({self.inference_precision})"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "inference_precision": self.inference_precision}

    def _array(self, batch: Any) -> np.ndarray:
        return np.ascontiguousarray(as_batch(batch).detach().cpu().numpy(), dtype=np.float32)

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        array = self._array(batch)
        try:
            result = self.request.infer({0: array})
        except Exception as exc:
            raise InputError(
                f"openvino cannot run {self.label} on a batch of shape {list(array.shape)}: {first_line(exc)}"
            ) from None
        return torch.from_numpy(np.array(result[self.output], dtype=np.float32, copy=True))

    def bind(self, batch: torch.Tensor, *, include_copies: bool = True) -> Callable[[], None]:
        array = self._array(batch)

        def call() -> None:
            self.request.infer({0: array})

        return call
