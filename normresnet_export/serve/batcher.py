"""Dynamic batching: concurrent requests for one model merged into one ONNX Runtime call.

Requests wait in a queue; the oldest one opens a batch, which closes when it holds
``max_batch`` rows or the oldest request has waited ``max_delay`` seconds, whichever comes
first (Triton's ``max_queue_delay``). Only requests whose inputs agree in everything but the
batch dimension are merged; the others keep their place for a later batch. A request larger
than ``max_batch`` runs on its own, never refused for its size. The batch runs on one worker
thread per model (ONNX Runtime releases the GIL and uses every core itself), so the event loop
goes on accepting and decoding requests while it computes, and the next batch fills meanwhile.
Results are split back per request in order, each to the caller that sent it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

#: Runs one merged batch: the inputs by name, every output in the model's order.
RunBatch = Callable[[Mapping[str, np.ndarray]], list[np.ndarray]]


class QueueFullError(Exception):
    """The model's queue holds ``max_queue`` requests already."""


@dataclass(frozen=True)
class BatchStats:
    """What the batcher measured for one request.

    Attributes:
        queue_seconds: From arrival to the start of its batch.
        compute_seconds: The batch's ONNX Runtime call, merging and splitting included.
        batch_rows: Rows in the batch it ran in.
    """

    queue_seconds: float
    compute_seconds: float
    batch_rows: int


@dataclass
class _Pending:
    key: tuple[tuple[str, str, tuple[int, ...]], ...]
    inputs: Mapping[str, np.ndarray]
    rows: int
    future: asyncio.Future[tuple[list[np.ndarray], BatchStats]]
    arrived: float = field(default_factory=time.perf_counter)


def _key(inputs: Mapping[str, np.ndarray]) -> tuple[tuple[str, str, tuple[int, ...]], ...]:
    """What must agree for two requests to be merged: each input's name, dtype and non-batch shape."""
    return tuple((name, str(array.dtype), tuple(array.shape[1:])) for name, array in inputs.items())


class Batcher:
    """The queue and the batching loop of one model.

    Args:
        run: Runs one merged batch (called on ``executor``).
        executor: Where batches run; one thread, so that batches of a model never contend.
        max_batch: Most rows merged into one call (1: no merging).
        max_delay: Longest a request waits for others to join its batch, in seconds.
        max_queue: Most requests waiting; one more is refused (:class:`QueueFullError`).
        pinned: The batch a model's graph is fixed to, else ``None``: every call is then padded
            with zeros to exactly that many rows (and split into calls of it), padding dropped.
        on_batch: Called with (rows, compute seconds) after every batch, for the metrics.
        on_depth: Called with the queue depth whenever it changes.
    """

    def __init__(
        self,
        run: RunBatch,
        executor: Executor,
        *,
        max_batch: int,
        max_delay: float,
        max_queue: int,
        pinned: int | None = None,
        on_batch: Callable[[int, float], None] | None = None,
        on_depth: Callable[[int], None] | None = None,
    ) -> None:
        self._run = run
        self._executor = executor
        self.max_batch = pinned if pinned is not None else max_batch
        self.max_delay = max_delay
        self.max_queue = max_queue
        self.pinned = pinned
        self._on_batch = on_batch
        self._on_depth = on_depth
        self._pending: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        """Requests waiting for a batch."""
        return len(self._pending)

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Finish every request already queued, then end the loop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def submit(
        self, inputs: Mapping[str, np.ndarray], rows: int
    ) -> tuple[list[np.ndarray], BatchStats]:
        """The model's outputs for ``inputs`` (``rows`` rows), once its batch has run.

        Raises:
            QueueFullError: ``max_queue`` requests are waiting already.
            Exception: Whatever running the batch raised.
        """
        if len(self._pending) >= self.max_queue or self._closing:
            raise QueueFullError
        future: asyncio.Future[tuple[list[np.ndarray], BatchStats]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending.append(_Pending(_key(inputs), inputs, rows, future))
        self._depth_changed()
        self._wake.set()
        return await future

    def _depth_changed(self) -> None:
        if self._on_depth is not None:
            self._on_depth(len(self._pending))

    def _rows_ready(self, key: tuple) -> int:
        return sum(item.rows for item in self._pending if item.key == key)

    async def _wait(self, timeout: float | None) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _loop(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                await self._wait(None)
                continue
            first = self._pending[0]
            while not self._closing and self._rows_ready(first.key) < self.max_batch:
                remaining = first.arrived + self.max_delay - time.perf_counter()
                if remaining <= 0:
                    break
                await self._wait(remaining)
            await self._dispatch(self._take(first.key))

    def _take(self, key: tuple) -> list[_Pending]:
        """The oldest requests of ``key`` that fit one batch (the first always, whatever its size)."""
        taken: list[_Pending] = []
        kept: deque[_Pending] = deque()
        rows = 0
        full = False
        for item in self._pending:
            if not full and item.key == key and (not taken or rows + item.rows <= self.max_batch):
                taken.append(item)
                rows += item.rows
                full = rows >= self.max_batch
            else:
                if item.key == key:  # later requests of this key wait too: order is kept
                    full = True
                kept.append(item)
        self._pending = kept
        self._depth_changed()
        return taken

    async def _dispatch(self, batch: list[_Pending]) -> None:
        batch = [item for item in batch if not item.future.done()]  # a caller that went away
        if not batch:
            return
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            outputs = await loop.run_in_executor(self._executor, self._compute, batch)
        except Exception as exc:  # one failed call fails its batch, not the server
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        seconds = time.perf_counter() - started
        rows = sum(item.rows for item in batch)
        if self._on_batch is not None:
            self._on_batch(rows, seconds)
        for item, result in zip(batch, outputs, strict=True):
            if not item.future.done():
                item.future.set_result((result, BatchStats(started - item.arrived, seconds, rows)))

    def _compute(self, batch: list[_Pending]) -> list[list[np.ndarray]]:
        """Merge, run (padded to a pinned batch, in pieces of it), and split back per request."""
        names = list(batch[0].inputs)
        merged = {
            name: batch[0].inputs[name]
            if len(batch) == 1
            else np.concatenate([item.inputs[name] for item in batch])
            for name in names
        }
        total = sum(item.rows for item in batch)
        step = self.pinned or total
        pieces = []
        for start in range(0, total, step):
            feeds = {name: array[start : start + step] for name, array in merged.items()}
            missing = step - len(next(iter(feeds.values())))
            if missing:
                feeds = {
                    name: np.concatenate([array, np.zeros((missing, *array.shape[1:]), array.dtype)])
                    for name, array in feeds.items()
                }
            outputs = self._run(feeds)
            pieces.append([output[: step - missing] for output in outputs])
        outputs = (
            pieces[0] if len(pieces) == 1 else [np.concatenate(parts) for parts in zip(*pieces, strict=True)]
        )
        results = []
        start = 0
        for item in batch:
            results.append([output[start : start + item.rows] for output in outputs])
            start += item.rows
        return results
