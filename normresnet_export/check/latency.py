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
from normresnet_export.runtime import Backend
from normresnet_export.runtime.timing import time_interleaved


def parse_batch_sizes(text: str) -> list[int]:
    """``"1,32"`` → ``[1, 32]``; anything else is a one-line error."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise InputError(
            f"--batch-sizes takes positive integers separated by commas, e.g. 1,32; got {text!r}"
        )
    return sizes


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
    """
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
