"""The server's Prometheus metrics (``GET /metrics``): requests, latencies, batches, queue depth.

A server that batches must show that it does: "dynamic batching does not work" is the common
complaint about batching servers, and the batch-size histogram answers it. Every metric is
labelled by model; a request for a model that is not served counts under ``model=""`` (a
label per name a client makes up would let any client grow the metrics without bound).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: Latency buckets, in seconds: 0.5 ms to 10 s.
_SECONDS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
#: Batch-size buckets: the powers of two to 4096 (``limits.MAX_BATCH``).
_ROWS = tuple(float(2**k) for k in range(13))


class Metrics:
    """One registry per server (not the process-wide default, so that tests can run several)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "normexport_requests",
            "Requests answered, by model, endpoint and HTTP status.",
            ("model", "endpoint", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "normexport_request_duration_seconds",
            "Time from receiving a request to its answer.",
            ("model", "endpoint"),
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.queue = Histogram(
            "normexport_queue_duration_seconds",
            "Time an inference request waited for its batch.",
            ("model",),
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.compute = Histogram(
            "normexport_compute_duration_seconds",
            "Time of one batched ONNX Runtime call (merging and splitting included).",
            ("model",),
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.batch = Histogram(
            "normexport_batch_size",
            "Rows per ONNX Runtime call.",
            ("model",),
            buckets=_ROWS,
            registry=self.registry,
        )
        self.depth = Gauge(
            "normexport_queue_depth", "Requests waiting for a batch.", ("model",), registry=self.registry
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
