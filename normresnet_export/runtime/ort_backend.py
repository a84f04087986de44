"""ONNX Runtime backend: providers chosen honestly, the active one checked and reported.

After the session is created, ``get_providers()`` says what really runs; when CUDA (or
TensorRT) was asked for and is not active the backend fails with the reason, unless the CPU
fallback was allowed (ONNX Runtime itself falls back silently). On CUDA,
:meth:`OnnxRuntimeBackend.bind` can keep input and output on the GPU (I/O binding) so that
timings exclude host copies.

ONNX Runtime talks on its own: its Python layer prints an "EP Error" banner on stdout when a
provider fails to load and falls back silently, and its C++ layer writes to the process's file
descriptors 1 and 2. Either would break ``--json`` (nothing but the document may reach stdout)
and the one-line errors. So the session is created with ONNX Runtime's fallback off and its
logger at ERROR, with fd 1 and fd 2 (and Python's streams and warnings) captured for the
duration; the backend does the fallback itself, one provider at a time, and reports why a
provider did not activate in the usual one line (a :class:`DeviceError`, or the fallback
reason with ``allow_cpu_fallback``).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from normresnet_export.errors import InputError, first_line
from normresnet_export.limits import runtime_threads
from normresnet_export.metadata import ModelMetadata
from normresnet_export.runtime.base import Backend, DeviceError, as_batch
from normresnet_export.runtime.devices import (
    no_gpu_reason,
    onnxruntime_missing_reason,
    onnxruntime_providers,
    quiet_onnxruntime,
)

CPU = "CPUExecutionProvider"


def _flush_c_streams() -> None:
    """Flush the C library's stdio buffers (C++ ``std::cout`` writes through them)."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def captured_output() -> Iterator[None]:
    """Send everything written to fd 1 and fd 2, by C++ or Python, to a discarded temporary file.

    Python's ``sys.stdout``/``sys.stderr`` are replaced too (they need not be fd 1 and 2: a test
    runner swaps them), and warnings are silenced. A descriptor that is closed is left alone.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    _flush_c_streams()
    with tempfile.TemporaryFile() as sink:
        saved: list[tuple[int, int]] = []
        try:
            for fd in (1, 2):
                with contextlib.suppress(OSError):
                    saved.append((fd, os.dup(fd)))
                    os.dup2(sink.fileno(), fd)
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
                warnings.catch_warnings(),
            ):
                warnings.simplefilter("ignore")
                yield
        finally:
            _flush_c_streams()
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)


def _gist(error: BaseException) -> str:
    """The first line of an ONNX Runtime error without its source location and C++ signature."""
    first = first_line(error, limit=None)
    first = re.sub(r"^\S+\.(cc|h|cpp):\d+\s+(\S.*?\)\s+)?", "", first)
    return first[:200]


def create_session(
    ort: Any, path: Path, options: Any, providers: Sequence[str]
) -> tuple[Any, dict[str, str]]:
    """An InferenceSession on the first of ``providers`` that loads, and why the ones before it failed.

    Each attempt runs with ONNX Runtime's own fallback off and its output captured (see the
    module docstring); a provider whose registration fails is dropped and the next one tried,
    as ONNX Runtime would, but silently. When the CPU alone fails too, the file is at fault.

    Raises:
        InputError: ONNX Runtime cannot load the file even on the CPU.
    """
    failures: dict[str, str] = {}
    remaining = list(providers)
    while True:
        try:
            with captured_output():
                session = ort.InferenceSession(str(path), options, providers=remaining, enable_fallback=0)
            return session, failures
        except Exception as exc:  # ONNX Runtime raises its own types, RuntimeError and ValueError
            if remaining[0] == CPU or len(remaining) == 1:
                raise InputError(f"onnxruntime {ort.__version__} cannot load {path}: {_gist(exc)}") from None
            failures[remaining.pop(0)] = _gist(exc)


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
        spinning: bool = True,
    ) -> None:
        """Create the session.

        Args:
            path: The ``.onnx`` file.
            label: Short human name for tables (default: ``onnxruntime (<file name>)``).
            device: ``auto``, ``cpu``, ``cuda`` or ``tensorrt`` (TensorRT, then CUDA, then CPU).
            allow_cpu_fallback: Run on the CPU, and say so, when the GPU providers do not activate.
            threads: Intra-op threads (default: ``OMP_NUM_THREADS`` when set, else ONNX Runtime's
                choice, one per core).
            spinning: Let idle worker threads spin-wait for the next call (ONNX Runtime's default:
                the lowest latency for back-to-back calls). A server turns it off, so that its
                event loop and request decoding get the cores between batches.

        Raises:
            DeviceError: A GPU provider was asked for and is not active (and no fallback allowed).
            InputError: ONNX Runtime cannot load the file.
            OutputError: The metadata's labels are not one per output of the graph.
        """
        path = Path(path)
        wanted = onnxruntime_providers(device)
        with quiet_onnxruntime() as ort:
            options = ort.SessionOptions()
            options.log_severity_level = 3
            threads = runtime_threads(threads)
            if threads:
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
            if not spinning:
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.session, failures = create_session(ort, path, options, wanted)
            self._version = ort.__version__
        active = self.session.get_providers()
        self.fallback = None
        gpu_wanted = [p for p in wanted if p != CPU]
        if device in ("cuda", "tensorrt") and gpu_wanted[0] not in active:
            reason = onnxruntime_missing_reason(gpu_wanted[0])
            if gpu_wanted[0] in failures and no_gpu_reason() is None:  # a GPU is there: say what failed
                reason += f" (onnxruntime: {failures[gpu_wanted[0]]})"
            if not allow_cpu_fallback:
                raise DeviceError(
                    f"{device} was requested but ONNX Runtime runs {path.name} on {', '.join(active)}: "
                    f"{reason}; use --device cpu, or --allow-cpu-fallback"
                )
            self.fallback = reason
        self.provider = active[0]
        self.device = "cpu" if self.provider == "CPUExecutionProvider" else "cuda:0"
        # Read from the session's own copy of the graph: the file is parsed once. A damaged file can
        # hold names that are not UTF-8, or no input or output at all: one line, not a traceback.
        try:
            properties = self.session.get_modelmeta().custom_metadata_map
            self.input_name = self.session.get_inputs()[0].name
            output = self.session.get_outputs()[0]
            self.output_name = output.name
        except (UnicodeDecodeError, IndexError) as exc:
            what = "text that is not UTF-8" if isinstance(exc, UnicodeDecodeError) else "no input or output"
            raise InputError(f"{path}: its graph or metadata holds {what}; the file is damaged") from None
        self.metadata = ModelMetadata.from_onnx_props(properties, where=str(path))
        self.precision = self.metadata.precision
        self.label = label or f"onnxruntime ({path.name})"
        width = output.shape[1] if len(output.shape) == 2 and isinstance(output.shape[1], int) else None
        self.check_labels(width)

    def runtime_version(self) -> str:
        return f"onnxruntime {self._version}"

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(as_batch(batch).detach().cpu().numpy(), dtype=np.float32)
        try:
            outputs = self.session.run([self.output_name], {self.input_name: array})
        except Exception as exc:  # ONNX Runtime's own error types (InvalidArgument, Fail, EPFail, ...)
            raise InputError(
                f"onnxruntime {self._version} cannot run {self.label} on a batch of shape "
                f"{list(array.shape)}: {_gist(exc)}"
            ) from None
        return torch.from_numpy(outputs[0])

    def bind(self, batch: torch.Tensor, *, include_copies: bool = True) -> Callable[[], None]:
        array = np.ascontiguousarray(as_batch(batch).detach().cpu().numpy(), dtype=np.float32)
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
