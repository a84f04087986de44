"""Latency per backend and batch size, timed side by side in interleaved blocks.

Every backend gets the same input per batch size, and the blocks of all (backend, batch) pairs
alternate (see :func:`~normresnet_export.runtime.timing.time_interleaved`), so a slow spell of
the machine hits every backend alike. Speed-ups are over the first backend, the unfolded eager
model, at the same batch size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from normresnet_export.errors import InputError
from normresnet_export.limits import MAX_BATCH, MAX_REPEATS, check_float, check_int
from normresnet_export.runtime import Backend
from normresnet_export.runtime.timing import time_interleaved

#: Longest timing block, in seconds (``budget``): with the repeats, backends and batch sizes it
#: multiplies into the run's length.
MAX_BUDGET = 60.0


def parse_batch_sizes(text: str) -> list[int]:
    """``"1,32"`` → ``[1, 32]``; anything else is a one-line error.

    Raises:
        InputError: Not integers separated by commas, or a size outside 1 to
            :data:`~normresnet_export.limits.MAX_BATCH`.
    """
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes:
        raise InputError(
            f"--batch-sizes takes positive integers separated by commas, e.g. 1,32; got {text!r}"
        )
    return check_batch_sizes(sizes)


def check_batch_sizes(sizes: Sequence[int]) -> list[int]:
    """``sizes`` as a list if there is at least one and each is from 1 to ``MAX_BATCH``.

    A batch is allocated whole (``--batch-sizes 100000000`` asked for a terabyte), so the cap
    is checked before any model is opened.

    Raises:
        InputError: No size, or one outside the range.
    """
    if not sizes:
        raise InputError("--batch-sizes needs at least one batch size, e.g. 1,32")
    for size in sizes:
        check_int(
            "--batch-sizes", size, low=1, high=MAX_BATCH, hint="give sizes separated by commas, e.g. 1,32"
        )
    return list(sizes)


def check_timing(batch_sizes: Sequence[int], *, repeats: int, budget: float) -> None:
    """Refuse timing options outside their ranges before anything runs (the agreement comes first).

    Raises:
        InputError: A batch size outside 1 to ``MAX_BATCH``, ``repeats`` outside 1 to
            ``MAX_REPEATS``, or a ``budget`` that is not a positive number of seconds (at most 60).
    """
    check_batch_sizes(batch_sizes)
    check_int("--repeats", repeats, low=1, high=MAX_REPEATS)
    check_float(
        "budget", budget, low=0.0, high=MAX_BUDGET, open_low=True, hint="seconds of timed calls per block"
    )


def measure_latency(
    backends: Sequence[Backend],
    input_size: Sequence[int],
    batch_sizes: Sequence[int],
    *,
    exclude_copies: bool = False,
    repeats: int = 3,
    budget: float = 0.5,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Rows of p50/p90/p99 ms, images/s and speed-up over the first backend, per backend and batch size.

    A backend exported with ``--static-batch`` is timed only at the batch it is pinned to.

    Raises:
        InputError: Timing options outside their ranges (see :func:`check_timing`).
    """
    check_timing(batch_sizes, repeats=repeats, budget=budget)
    pairs = []
    for batch in batch_sizes:
        x = torch.randn(batch, *input_size, generator=torch.Generator().manual_seed(batch))
        for backend in backends:
            pinned = backend.metadata.static_batch
            if pinned is not None and pinned != batch:
                continue  # exported with --static-batch: it takes no other size
            pairs.append((backend.label, batch, backend.bind(x, include_copies=not exclude_copies)))
    done = [0]

    def advance(_: int) -> None:
        done[0] += 1
        if progress is not None:
            progress("latency", done[0], len(pairs) * repeats)

    timings = time_interleaved(pairs, repeats=repeats, budget=budget, progress=advance)
    baseline = {t.batch: t.percentile(50) for t in timings if t.label == backends[0].label}
    by_label = {b.label: b for b in backends}
    rows = []
    for timing in timings:
        backend = by_label[timing.label]
        rows.append(
            {
                **timing.to_dict(),
                "speedup": baseline[timing.batch] / timing.percentile(50),
                "provider": backend.provider,
                "precision": backend.precision,
            }
        )
    return rows
