"""The ranges the numbers a user gives must fall in, and the one check that says so.

A number outside its range does not fail where it is given: ``--repeats 0`` ended the timing
only after the agreement had run, ``--batch-sizes 100000000`` asked the allocator for a terabyte,
``--threads 100000`` crashed the process, ``--opset -1`` printed the exporter's whole graph. So
every command checks each of its numbers before any work, with the range it takes, through
:func:`check_int` and :func:`check_float`, and the caps live here once, where the help texts
and the README can point to them. Like :mod:`~normresnet_export.errors` this module imports
nothing heavy: the checks cost nothing before torch is loaded.
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Sequence
from typing import Any

from normresnet_export.errors import InputError

#: Largest batch anywhere (predict, check's compared and timed batches, an export's static batch,
#: Triton's max_batch_size, analyze gradnorm): 4096 ImageNet inputs are already 2.4 GB of float32.
MAX_BATCH = 4096
#: Largest input side (export --input-size, analyze spectrum --input-size), 4.5 times ImageNet's 224.
MAX_INPUT_SIDE = 1024
#: Largest number of interleaved timing blocks per backend (check --repeats).
MAX_REPEATS = 100
#: Seeds are the integers NumPy, Python and torch all take: 0 to 2**32 - 1.
MAX_SEED = 2**32 - 1
#: Threads (or data-loader processes) per usable core beyond which more only adds contention; 100,000
#: threads crashed a torch process, 512 took 12 s to start.
THREADS_PER_CORE = 4


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def thread_limit() -> int:
    """The most threads (or worker processes) an option may ask for: :data:`THREADS_PER_CORE` per core."""
    return THREADS_PER_CORE * usable_cores()


def runtime_threads(threads: int | None = None) -> int | None:
    """The intra-op threads for ONNX Runtime and OpenVINO: ``threads``, else ``OMP_NUM_THREADS``.

    torch already honours ``OMP_NUM_THREADS``; ONNX Runtime and OpenVINO do not, and each starts
    one (spinning) thread per core. A process told to use one core (a job scheduler's cap, a
    test worker among several) would otherwise run twice the threads the cores hold, and every
    runtime in it would slow the others. ``None`` leaves the runtime its own choice; a value that
    is not a positive integer is ignored, and one past :func:`thread_limit` is cut to it.
    """
    if threads is not None:
        return threads
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return min(int(value), thread_limit()) if value.isdigit() and int(value) > 0 else None


def _number(value: float) -> str:
    """An integer in full (``4294967295``), a float shortest (``0.001``)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def _bounds(low: float | None, high: float | None, *, open_low: bool = False) -> str:
    """``from 1 to 8``, ``of at least 1``, ``greater than 0``, ``greater than 0 and at most 1``."""
    if open_low:
        return f"greater than {_number(low)}" + (f" and at most {_number(high)}" if high is not None else "")
    if high is None:
        return f"of at least {_number(low)}"
    return f"from {_number(low)} to {_number(high)}"


def _refuse(name: str, kind: str, value: Any, bounds: str, hint: str) -> InputError:
    return InputError(f"{name} must be {kind} {bounds}, got {value!r}" + (f"; {hint}" if hint else ""))


def check_int(name: str, value: Any, *, low: int, high: int | None = None, hint: str = "") -> int:
    """``value`` if it is an integer in ``[low, high]``, else a one-line :class:`InputError`.

    Args:
        name: How the user gave it, e.g. ``"--repeats"``; it starts the message.
        value: The number (any integer, NumPy's included; ``bool``, floats and text are refused,
            so the Python API gets the same error as the command line).
        low: Smallest value taken.
        high: Largest value taken, or ``None`` for no upper bound.
        hint: What to do instead, appended after the range.

    Returns:
        ``value`` as an ``int``.

    Raises:
        InputError: ``NAME must be an integer from LOW to HIGH, got VALUE``.
    """
    try:
        number = operator.index(value) if not isinstance(value, bool) else None  # NumPy integers too
    except TypeError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        raise _refuse(name, "an integer", value, _bounds(low, high), hint)
    return number


def check_float(
    name: str, value: Any, *, low: float, high: float | None = None, open_low: bool = False, hint: str = ""
) -> float:
    """``value`` as a float if it is a finite number in ``[low, high]`` (``(low, high]`` with ``open_low``).

    Raises:
        InputError: Not a number, not finite, or outside the range; the message gives the range.
    """
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if (
        not number
        or not math.isfinite(value)
        or value < low
        or (open_low and value == low)
        or (high is not None and value > high)
    ):
        raise _refuse(name, "a finite number", value, _bounds(low, high, open_low=open_low), hint)
    return float(value)


def check_input_size(input_size: Sequence[int], *, channels: bool = False) -> tuple[int, ...]:
    """``--input-size`` as a tuple: H W (or C H W where ``channels``), every side 1 to ``MAX_INPUT_SIDE``.

    Raises:
        InputError: Not two (or three) integers, or a side out of the range.
    """
    size = tuple(input_size)
    if len(size) not in ((2, 3) if channels else (2,)):
        form = "H W (or C H W)" if channels else "H W (two positive integers)"
        raise InputError(f"--input-size is {form}, got {list(size)}")
    return tuple(check_int("each --input-size side", side, low=1, high=MAX_INPUT_SIDE) for side in size)
