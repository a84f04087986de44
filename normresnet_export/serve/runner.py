"""``normexport serve``: check the options, open the models, listen, and stop gracefully.

Everything that can be refused is refused before the server listens: an option out of its
range, a MODEL that cannot be opened, a checkpoint whose export does not agree with it, a GPU
that is not usable, an address already taken. Then uvicorn runs the application. SIGTERM and
SIGINT stop it the way an orchestrator expects: the listening socket closes, every request in
flight (queued ones included) is answered, the batchers finish, and the process exits 0.

The server's log goes to stderr, one line per event (start-up, each model and the device it
really runs on, ready, refused requests, stop), as text or, with ``json_logs``, as one JSON
object per line. ONNX Runtime's own output is captured while sessions are created, so nothing
else reaches stdout or stderr.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import tempfile
import time
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from normresnet_export.errors import InputError
from normresnet_export.limits import MAX_BATCH, check_float, check_int
from normresnet_export.runtime.devices import check_device_name, check_threads
from normresnet_export.serve.app import Settings, build_app
from normresnet_export.serve.models import ServedModel, load_models

#: Longest ``--max-delay-ms``: ten seconds is already far past any latency budget.
MAX_DELAY_MS = 10_000.0
#: Largest ``--max-queue``.
MAX_QUEUE = 100_000
#: Largest ``--max-body-mb``: 4 GiB.
MAX_BODY_MB = 4096.0

logger = logging.getLogger("normexport.serve")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(entry)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        from normresnet_export._render import printable

        text = printable(record.getMessage())
        if record.exc_info:
            text += f" ({printable(self.formatException(record.exc_info).splitlines()[-1])})"
        return f"normexport serve: {text}"


@contextmanager
def _logging(json_logs: bool) -> Generator[None, None, None]:
    """Our log and uvicorn's warnings as one stream on stderr, restored afterwards."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if json_logs else _TextFormatter())
    loggers = [
        (logging.getLogger("normexport.serve"), logging.INFO),
        (logging.getLogger("uvicorn"), logging.WARNING),
    ]
    saved = [(log, log.level, log.propagate) for log, _ in loggers]
    for log, level in loggers:
        log.addHandler(handler)
        log.setLevel(level)
        log.propagate = False
    try:
        yield
    finally:
        for log, level, propagate in saved:
            log.removeHandler(handler)
            log.setLevel(level)
            log.propagate = propagate


def check_options(
    *,
    port: int,
    max_batch_size: int,
    max_delay_ms: float,
    max_queue: int,
    device: str,
    threads: int | None,
    max_body_mb: float,
) -> None:
    """Refuse any option out of its range before a model is opened.

    Raises:
        InputError: The option and the range it takes.
    """
    check_int("--port", port, low=0, high=65535, hint="0 picks a free port")
    check_int("--max-batch-size", max_batch_size, low=1, high=MAX_BATCH, hint="1 turns batching off")
    check_float("--max-delay-ms", max_delay_ms, low=0.0, high=MAX_DELAY_MS)
    check_int("--max-queue", max_queue, low=1, high=MAX_QUEUE)
    check_float("--max-body-mb", max_body_mb, low=0.0, high=MAX_BODY_MB, open_low=True)
    check_device_name(device)
    check_threads(threads)


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a one-line error (an address in use, a host unknown)."""
    try:
        family, kind, proto, _, _ = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        # proto IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets
        # that say they are TCP; with it on, a response written in two parts waits 40 ms for an ACK.
        sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        raise InputError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --host or --port"
        ) from None
    sock.set_inheritable(True)
    return sock


def describe(model: ServedModel) -> str:
    """A model's start-up line: name, version, source, runtime, provider (and CPU fallback), input."""
    inputs = ", ".join(f"{s.name} {s.datatype} {list(s.shape)}" for s in model.inputs)
    where = f"model {model.name} (version {model.version}) from {model.source}"
    return f"{where}: {model.backend.describe()}; input {inputs}"


def serve(
    models: Sequence[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    name: str | None = None,
    max_batch_size: int = 32,
    max_delay_ms: float = 2.0,
    max_queue: int = 256,
    device: str = "auto",
    threads: int | None = None,
    max_body_mb: float = 64.0,
    allow_cpu_fallback: bool = False,
    allow_nonfinite: bool = False,
    json_logs: bool = False,
    runtime: str = "onnxruntime",
    precision: str = "fp32",
) -> None:
    """Serve ``models`` over the KServe v2 HTTP protocol until SIGTERM or SIGINT.

    Args:
        models: MODEL arguments: ``.onnx`` files, checkpoints, Triton model directories or
            repositories (see :mod:`~normresnet_export.serve.models`).
        host: The address to listen on.
        port: The port (0: a free one, named in the "ready" line).
        name: The served name of the one model (default: its file or directory name).
        max_batch_size: Most rows merged into one model call (1: no batching).
        max_delay_ms: Longest a request waits for others to join its batch.
        max_queue: Most requests waiting per model; more are answered 503 with ``Retry-After``.
        device: ``auto``, ``cpu``, ``cuda`` or ``tensorrt``.
        threads: Intra-op threads per model (default: ``OMP_NUM_THREADS`` when set, else one per core).
        max_body_mb: Largest request body in MiB (413 beyond).
        allow_cpu_fallback: Run on the CPU, and say why, when the GPU asked for is not usable.
        allow_nonfinite: Accept NaN and infinite input values (refused with 400 otherwise).
        json_logs: Log one JSON object per line instead of text.
        runtime: What runs the models: ``onnxruntime`` (default) or ``openvino`` (CPU only).
        precision: OpenVINO's inference precision, ``fp32`` (default) or ``bf16``; always set
            explicitly and read back (OpenVINO would pick bf16 by itself on a CPU that has it).

    Raises:
        InputError: A bad option, a MODEL that cannot be served, an address that cannot be used.
        CheckFailedError: A checkpoint whose ONNX export does not agree with it.
    """
    import uvicorn

    check_options(
        port=port,
        max_batch_size=max_batch_size,
        max_delay_ms=max_delay_ms,
        max_queue=max_queue,
        device=device,
        threads=threads,
        max_body_mb=max_body_mb,
    )
    with _logging(json_logs), tempfile.TemporaryDirectory(prefix="normexport-serve-") as workspace:
        served = load_models(
            models,
            name=name,
            device=device,
            allow_cpu_fallback=allow_cpu_fallback,
            threads=threads,
            workspace=Path(workspace),
            runtime=runtime,
            precision=precision,
        )
        for model in served:
            logger.info(describe(model), extra={"fields": {"event": "model", **_model_fields(model)}})
        sock = _listen(host, port)
        bound = sock.getsockname()[1]
        url = f"http://{host if ':' not in host else f'[{host}]'}:{bound}"
        settings = Settings(
            max_batch=max_batch_size,
            max_delay=max_delay_ms / 1000.0,
            max_queue=max_queue,
            max_body=int(max_body_mb * (1 << 20)),
            allow_nonfinite=allow_nonfinite,
        )

        def on_ready() -> None:
            logger.info(
                f"ready on {url} (max batch {max_batch_size}, delay {max_delay_ms:g} ms, queue {max_queue}, "
                f"body {max_body_mb:g} MiB)",
                extra={"fields": {"event": "ready", "url": url, "port": bound}},
            )

        app = build_app(served, settings, on_ready=on_ready)
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=None
        )
        server = _GracefulServer(config)
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()
        logger.info("stopped: every request in flight was answered", extra={"fields": {"event": "stopped"}})


def _model_fields(model: ServedModel) -> dict[str, Any]:
    return {
        "model": model.name,
        "version": model.version,
        "source": model.source,
        **model.backend.to_dict(),
        "inputs": [s.to_dict() for s in model.inputs],
    }


class _GracefulServer:
    """uvicorn's server, stopping on SIGTERM/SIGINT without re-raising the signal afterwards.

    uvicorn re-raises the signal it caught once it has shut down, so the process dies of it
    (exit status 143 for SIGTERM) although it stopped cleanly; an orchestrator reads that as a
    crash. Here the shutdown is the end: the server returns, and the command exits 0.
    """

    def __init__(self, config: Any) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            @contextmanager
            def capture_signals(self) -> Generator[None, None, None]:
                import signal
                import threading

                if threading.current_thread() is not threading.main_thread():
                    yield
                    return
                handled = (signal.SIGINT, signal.SIGTERM)
                original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
                try:
                    yield
                finally:
                    for sig, handler in original.items():
                        signal.signal(sig, handler)

        self.server = Server(config)

    def run(self, sockets: list[socket.socket]) -> None:
        self.server.run(sockets=sockets)
