"""ONNX Runtime backend: providers chosen honestly, the active one checked and reported.

After the session is created, ``get_providers()`` says what really runs; when CUDA (or
TensorRT) was asked for and is not active the backend fails with the reason, unless the CPU
fallback was allowed (ONNX Runtime itself falls back silently). On CUDA,
:meth:`OnnxRuntimeBackend.bind` can keep input and output on the GPU (I/O binding) so that
timings exclude host copies.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from normresnet_export.errors import InputError
from normresnet_export.metadata import ModelMetadata
from normresnet_export.runtime.base import Backend, DeviceError
from normresnet_export.runtime.devices import (
    onnxruntime_missing_reason,
    onnxruntime_providers,
    quiet_onnxruntime,
)


class OnnxRuntimeBackend(Backend):
    """An ONNX file in an ONNX Runtime session."""

    name = "onnxruntime"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        label: str | None = None,
        device: str = "auto",
        allow_cpu_fallback: bool = False,
        threads: int | None = None,
    ) -> None:
        """Create the session.

        Args:
            path: The ``.onnx`` file.
            label: Short human name for tables (default: ``onnxruntime (<file name>)``).
            device: ``auto``, ``cpu``, ``cuda`` or ``tensorrt`` (TensorRT, then CUDA, then CPU).
            allow_cpu_fallback: Run on the CPU, and say so, when the GPU providers do not activate.
            threads: Intra-op threads (default: ONNX Runtime's choice, one per core).

        Raises:
            DeviceError: A GPU provider was asked for and is not active (and no fallback allowed).
            InputError: ONNX Runtime cannot load the file.
        """
        path = Path(path)
        wanted = onnxruntime_providers(device)
        with quiet_onnxruntime() as ort:
            options = ort.SessionOptions()
            options.log_severity_level = 3
            if threads:
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
            try:
                self.session = ort.InferenceSession(str(path), options, providers=wanted)
            except Exception as exc:
                first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                raise InputError(f"onnxruntime {ort.__version__} cannot load {path}: {first}") from None
            self._version = ort.__version__
        active = self.session.get_providers()
        self.fallback = None
        gpu_wanted = [p for p in wanted if p != "CPUExecutionProvider"]
        if device in ("cuda", "tensorrt") and gpu_wanted[0] not in active:
            reason = onnxruntime_missing_reason(gpu_wanted[0])
            if not allow_cpu_fallback:
                raise DeviceError(
                    f"{device} was requested but ONNX Runtime runs {path.name} on {', '.join(active)}: "
                    f"{reason}; use --device cpu, or --allow-cpu-fallback"
                )
            self.fallback = reason
        self.provider = active[0]
        self.device = "cpu" if self.provider == "CPUExecutionProvider" else "cuda:0"
        # Read from the session's own copy of the graph: the file is parsed once.
        self.metadata = ModelMetadata.from_onnx_props(
            self.session.get_modelmeta().custom_metadata_map, where=str(path)
        )
        self.precision = self.metadata.precision
        self.label = label or f"onnxruntime ({path.name})"
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def runtime_version(self) -> str:
        return f"onnxruntime {self._version}"

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run([self.output_name], {self.input_name: array})[0])

    def bind(self, batch: torch.Tensor, *, include_copies: bool = True) -> Callable[[], None]:
        array = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        if include_copies or self.device == "cpu":

            def round_trip() -> None:
                self.session.run([self.output_name], {self.input_name: array})

            return round_trip
        from onnxruntime import OrtValue

        placed = OrtValue.ortvalue_from_numpy(array, "cuda", 0)
        binding = self.session.io_binding()
        binding.bind_ortvalue_input(self.input_name, placed)
        binding.bind_output(self.output_name, "cuda", 0)

        def on_device() -> None:
            self.session.run_with_iobinding(binding)
            binding.synchronize_outputs()

        return on_device
