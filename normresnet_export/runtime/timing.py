"""Latency measurement that compares backends fairly on a noisy, shared machine.

Every backend gets the same input. Each (backend, batch) pair is timed in blocks: a short pause
(so spinning worker threads of the previous runtime go idle), warm-up calls, then timed calls,
each ending with a device synchronisation. The blocks of all pairs are interleaved and
repeated, so a slow spell of the machine hits every backend alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Timing:
    """Per-call wall times of one (backend, batch) pair, in seconds."""

    label: str
    batch: int
    seconds: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile call time, in milliseconds."""
        return float(np.percentile(self.seconds, q)) * 1e3

    @property
    def images_per_second(self) -> float:
        """Throughput at the median call time."""
        return self.batch / (self.percentile(50) / 1e3)

    def to_dict(self) -> dict[str, float | int | str]:
        """p50/p90/p99 in ms, images/s and the number of timed calls."""
        return {
            "label": self.label,
            "batch": self.batch,
            "p50_ms": self.percentile(50),
            "p90_ms": self.percentile(90),
            "p99_ms": self.percentile(99),
            "images_per_s": self.images_per_second,
            "calls": len(self.seconds),
        }


def calls_for(call: Callable[[], None], budget: float) -> int:
    """How many calls fill ``budget`` seconds (3 to 200), from one timed call."""
    start = time.perf_counter()
    call()
    once = max(time.perf_counter() - start, 1e-6)
    return int(min(200, max(3, budget / once)))


def time_interleaved(
    pairs: Sequence[tuple[str, int, Callable[[], None]]],
    *,
    repeats: int = 3,
    budget: float = 0.5,
    warmup: int = 2,
    pause: float = 0.05,
    progress: Callable[[int], None] | None = None,
) -> list[Timing]:
    """Time each ``(label, batch, call)`` in ``repeats`` interleaved blocks of about ``budget`` seconds.

    Args:
        pairs: What to time; ``call`` runs one batch and waits for the device.
        repeats: Blocks per pair; the blocks of all pairs alternate.
        budget: Target seconds of timed calls per block (at least 3 calls).
        warmup: Untimed calls at the start of every block.
        pause: Idle seconds before every block.
        progress: Called with 1 after every block.
    """
    timings = [Timing(label, batch) for label, batch, _ in pairs]
    counts: list[int | None] = [None] * len(pairs)
    for _ in range(repeats):
        for index, (_, _, call) in enumerate(pairs):
            time.sleep(pause)
            for _ in range(warmup):
                call()
            if counts[index] is None:
                counts[index] = calls_for(call, budget)
            for _ in range(counts[index] or 3):
                start = time.perf_counter()
                call()
                timings[index].seconds.append(time.perf_counter() - start)
            if progress is not None:
                progress(1)
    return timings
