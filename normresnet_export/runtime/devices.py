"""Device choice that never lies: what was asked for, what is there, and why not when it is not.

``auto`` takes a GPU only when one is really usable. ``cuda`` either runs on the GPU or fails with
the reason: no GPU visible, a CPU-only runtime installed, or CUDA libraries the runtime could
not load. The CPU is used instead only when the caller allows the fallback, and reports then
say so: a silent fallback would make a CPU timing pass for a GPU one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch

from normresnet_export.limits import THREADS_PER_CORE, check_int, thread_limit, usable_cores
from normresnet_export.runtime.base import DeviceError
from normresnet_export.vocabulary import DEVICES


def check_device_name(device: str) -> str:
    """``device`` if it is one of :data:`DEVICES`, else a one-line error."""
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    return device


def check_threads(threads: int | None, *, option: str = "--threads") -> int | None:
    """``threads`` if it is ``None`` (the runtime's choice) or from 1 to the CPU's thread limit.

    The bound is what a CPU can use (four threads per core this process may run on): past it
    more threads only contend, and far past it the runtimes break instead of refusing (100,000
    torch threads crashed the process, as many ONNX Runtime threads took minutes to start).

    Args:
        threads: CPU threads asked for.
        option: Its name in the message (``--threads``, or ``--workers`` for decoding threads).

    Raises:
        InputError: Not an integer in the range; the message gives the range and the core count.
    """
    if threads is None:
        return None
    hint = (
        f"this process may use {usable_cores()} cores, {THREADS_PER_CORE} threads each at most; "
        "leave it out for the default"
    )
    return check_int(option, threads, low=1, high=thread_limit(), hint=hint)


def no_gpu_reason() -> str | None:
    """Why torch sees no CUDA GPU, or ``None`` when it does."""
    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build"
    return (
        "no CUDA GPU is visible (torch.cuda.is_available() is False; check the driver, CUDA_VISIBLE_DEVICES)"
    )


def torch_device(requested: str, *, allow_cpu_fallback: bool = False) -> tuple[torch.device, str | None]:
    """(device, fallback reason) for torch backends.

    Raises:
        DeviceError: ``cuda`` (or ``tensorrt``, which torch does not run) asked for without a usable
            GPU and without ``allow_cpu_fallback``.
    """
    check_device_name(requested)
    if requested == "cpu":
        return torch.device("cpu"), None
    if requested == "tensorrt":
        raise DeviceError("--device tensorrt applies to ONNX models (ONNX Runtime's TensorRT provider)")
    reason = no_gpu_reason()
    if reason is None:
        return torch.device("cuda", torch.cuda.current_device()), None
    if requested == "auto":
        return torch.device("cpu"), None
    if allow_cpu_fallback:
        return torch.device("cpu"), reason
    raise DeviceError(f"CUDA was requested but {reason}; use --device cpu, or --allow-cpu-fallback")


@contextlib.contextmanager
def quiet_onnxruntime() -> Iterator[Any]:
    """Import onnxruntime with its provider-loading noise off (the reports name the active provider).

    onnxruntime-gpu logs an error for every CUDA library it cannot open, on every session, even
    when the caller asked only for the CPU. The default logger is raised to FATAL while a session
    is created; failures still surface as exceptions or as a missing active provider.
    """
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    try:
        yield ort
    finally:
        ort.set_default_logger_severity(2)


def onnxruntime_providers(requested: str) -> list[str]:
    """Providers to ask ONNX Runtime for, best first (CPU always last)."""
    import onnxruntime as ort

    check_device_name(requested)
    available = ort.get_available_providers()
    if requested == "cpu":
        return ["CPUExecutionProvider"]
    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if requested == "tensorrt":
        wanted.insert(0, "TensorrtExecutionProvider")
    if requested == "auto":
        # Only where it can work: listing CUDA on a machine without a GPU costs a failed library load.
        wanted = [
            p for p in wanted if p in available and (p == "CPUExecutionProvider" or no_gpu_reason() is None)
        ]
    return wanted


def onnxruntime_missing_reason(provider: str) -> str:
    """Why ONNX Runtime did not activate ``provider`` (CUDA or TensorRT)."""
    import onnxruntime as ort

    if provider not in ort.get_available_providers():
        return (
            f"the installed onnxruntime {ort.__version__} has no {provider} "
            "(a CPU-only build; install onnxruntime-gpu)"
        )
    gpu = no_gpu_reason()
    if gpu is not None and not os.path.exists("/dev/nvidia0"):
        return gpu
    libraries = "TensorRT, CUDA and cuDNN" if provider.startswith("Tensorrt") else "CUDA and cuDNN"
    return (
        f"onnxruntime {ort.__version__} could not load its {provider} ({libraries} libraries of the versions "
        "it was built for are missing or not on the library path)"
    )


#: The CPU flags (as Linux's ``/proc/cpuinfo`` names them) of native bfloat16 arithmetic.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from ``/proc/cpuinfo``, or ``None`` where there is no such file."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        return None
    return set()


def torch_bf16_missing_reason(device: torch.device) -> str | None:
    """Why torch cannot compute bfloat16 natively on ``device``, or ``None`` when it can.

    Without AVX512-BF16 or AMX, oneDNN emulates bfloat16 convolutions and they run slower than
    float32 (measured: about 1 GFLOP/s against 150 on a 2-core AVX2 CPU), so asking for
    bfloat16 there is refused rather than quietly made slower. Where the flags cannot be read
    (no ``/proc/cpuinfo``), torch is trusted to compute it.
    """
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return None
        return f"{torch.cuda.get_device_name(device)} has no bfloat16 arithmetic"
    flags = cpu_flags()
    if flags is None or flags & set(BF16_CPU_FLAGS):
        return None
    return "this CPU has no AVX512-BF16 or AMX, so torch would emulate bfloat16, slower than float32"
