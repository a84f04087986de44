"""The Starlette application: the KServe v2 routes, the classify endpoint and ``/metrics``.

Every answer that is not a success is ``{"error": "..."}`` with its status: 400 for a request
that does not fit the model, 404 for a model or version that is not served, 413 for a body
over the limit (refused from its ``Content-Length`` before it is read, or as soon as a body
without one passes the limit, or a gzip or deflate body whose decompression does), 415 for
another ``Content-Encoding``, 503 with ``Retry-After`` when a model's queue is full or the
server is stopping, 500 when running the model fails. None of them stops the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from normresnet_export._version import __version__
from normresnet_export.errors import InputError, first_line
from normresnet_export.limits import check_int
from normresnet_export.predict import predict
from normresnet_export.runtime.base import OutputError
from normresnet_export.serve.batcher import Batcher, QueueFullError
from normresnet_export.serve.metrics import Metrics
from normresnet_export.serve.models import ServedModel
from normresnet_export.serve.protocol import (
    HEADER_LENGTH,
    ProtocolError,
    bad_request,
    classify,
    encode_response,
    parse_infer,
    split_body,
)

#: The protocol extensions the server implements (listed by ``GET /v2``).
EXTENSIONS = ("binary_tensor_data", "classification")
#: Bodies up to this size are decoded on the event loop; larger ones on a worker thread.
_DECODE_INLINE = 256 * 1024
#: Most files one classify request may upload.
MAX_IMAGES = 256

logger = logging.getLogger("normexport.serve")


@dataclass
class Settings:
    """How the application batches and what it refuses.

    Attributes:
        max_batch: Most rows per model call (1: no batching).
        max_delay: Longest a request waits for others to join its batch, in seconds.
        max_queue: Most requests waiting per model before 503.
        max_body: Largest request body, in bytes (413 beyond).
        allow_nonfinite: Accept NaN and infinite input values.
    """

    max_batch: int = 32
    max_delay: float = 0.002
    max_queue: int = 256
    max_body: int = 64 << 20
    allow_nonfinite: bool = False


class _Slot:
    """A served model with its batcher and the worker thread its calls run on."""

    def __init__(self, model: ServedModel, settings: Settings, metrics: Metrics) -> None:
        self.model = model
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ort-{model.name}")
        self.settings = settings
        self.metrics = metrics
        self.batcher: Batcher | None = None

    def start(self) -> None:
        name = self.model.name

        def on_batch(rows: int, seconds: float) -> None:
            self.metrics.batch.labels(name).observe(rows)
            self.metrics.compute.labels(name).observe(seconds)

        self.batcher = Batcher(
            self.model.run,
            self.executor,
            max_batch=self.settings.max_batch,
            max_delay=self.settings.max_delay,
            max_queue=self.settings.max_queue,
            pinned=self.model.pinned,
            on_batch=on_batch,
            on_depth=self.metrics.depth.labels(name).set,
        )
        self.batcher.start()

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.stop()
        self.executor.shutdown(wait=True)


def _error(exc: ProtocolError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to be over ``limit`` bytes.

    A ``Content-Length`` over the limit is refused before a byte of the body is read; a body
    sent without one (chunked) is read only until it passes the limit.
    """
    too_large = ProtocolError(
        413,
        f"the request body is larger than the server's limit of {limit:,} bytes (--max-body-mb); "
        "send smaller requests",
        {"connection": "close"},
    )
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise bad_request(f"Content-Length must be a number, got {declared!r:.40}")
        if int(declared) > limit:
            raise too_large
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return _decoded(b"".join(chunks), request.headers.get("content-encoding"), limit)


#: ``Content-Encoding`` values a request body may have (what ``tritonclient`` compresses with), and
#: the zlib window bits that read each.
_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def _decoded(body: bytes, encoding: str | None, limit: int) -> bytes:
    """``body`` decompressed as its ``Content-Encoding`` says, never to more than ``limit`` bytes.

    A few kilobytes of gzip can expand to gigabytes: decompression stops one byte past the limit.
    """
    if encoding is None or encoding.strip().lower() in ("", "identity"):
        return body
    bits = _ENCODINGS.get(encoding.strip().lower())
    if bits is None:
        raise ProtocolError(
            415, f"Content-Encoding {encoding!r:.40} is not supported; send {', '.join(_ENCODINGS)} or none"
        )
    decompressor = zlib.decompressobj(bits)
    try:
        data = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise bad_request(f"the {encoding} body cannot be decompressed ({exc})") from None
    if len(data) > limit:
        raise ProtocolError(
            413,
            f"the {encoding} body decompresses to more than the server's limit of {limit:,} bytes "
            "(--max-body-mb); send smaller requests",
        )
    if not decompressor.eof:
        raise bad_request(f"the {encoding} body is truncated")
    return data


def build_app(
    models: list[ServedModel], settings: Settings, *, on_ready: Callable[[], None] | None = None
) -> Starlette:
    """The application serving ``models``.

    Args:
        models: What is served (see :func:`~normresnet_export.serve.models.load_models`).
        settings: Batching and limits.
        on_ready: Called once every model's batcher runs (the server's "ready" line).
    """
    metrics = Metrics()
    slots = {model.name: _Slot(model, settings, metrics) for model in models}
    state = {"ready": False}

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        for slot in slots.values():
            slot.start()
        state["ready"] = True
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:  # uvicorn has finished every request in flight by now
            state["ready"] = False
            for slot in slots.values():
                await slot.stop()

    def lookup(request: Request) -> _Slot:
        name = request.path_params["name"]
        slot = slots.get(name)
        if slot is None:
            raise ProtocolError(404, f"no model named {name!r:.80} is served; served: {', '.join(slots)}")
        version = request.path_params.get("version")
        if version is not None and version != slot.model.version:
            raise ProtocolError(
                404, f"model {name!r} has no version {version!r:.40}; it serves version {slot.model.version}"
            )
        return slot

    def answered(
        request: Request, endpoint: str, response: Response, started: float, model: str, error: str | None
    ) -> Response:
        metrics.requests.labels(model, endpoint, str(response.status_code)).inc()
        metrics.latency.labels(model, endpoint).observe(time.perf_counter() - started)
        if error is not None:
            logger.log(
                logging.ERROR if response.status_code >= 500 else logging.INFO,
                "%s %s -> %d: %s",
                request.method,
                request.url.path,
                response.status_code,
                error,
                extra={
                    "fields": {
                        "method": request.method,
                        "path": request.url.path,
                        "status": response.status_code,
                        "error": error,
                    }
                },
            )
        return response

    def handled(endpoint: str, handler: Callable[[Request, _Slot], Any]) -> Callable[[Request], Any]:
        """``handler`` with the model looked up, errors as ``{"error"}`` bodies, and the metrics counted."""

        async def route(request: Request) -> Response:
            started = time.perf_counter()
            model = ""
            error = None
            try:
                slot = lookup(request)
                model = slot.model.name
                response = await handler(request, slot)
            except ProtocolError as exc:
                response, error = _error(exc), exc.message
            except ClientDisconnect:
                response, error = Response(status_code=499), "the client went away"
            except Exception as exc:  # the server stays up; the caller learns what failed
                logger.exception("internal error")
                error = f"internal error: {first_line(exc)}"
                response = _error(ProtocolError(500, error))
            return answered(request, endpoint, response, started, model, error)

        return route

    async def infer(request: Request, slot: _Slot) -> Response:
        model = slot.model
        body = await read_body(request, settings.max_body)

        def decode() -> Any:
            document, binary = split_body(body, request.headers.get(HEADER_LENGTH))
            return parse_infer(
                document, binary, model.inputs, model.outputs, allow_nonfinite=settings.allow_nonfinite
            )

        parsed = decode() if len(body) <= _DECODE_INLINE else await run_in_threadpool(decode)
        assert slot.batcher is not None
        try:
            outputs, stats = await slot.batcher.submit(parsed.inputs, parsed.rows)
        except QueueFullError:
            raise ProtocolError(
                503,
                f"model {model.name!r} has {settings.max_queue} requests queued (--max-queue); retry shortly",
                {"retry-after": "1"},
            ) from None
        metrics.queue.labels(model.name).observe(stats.queue_seconds)
        by_name = {spec.name: array for spec, array in zip(model.outputs, outputs, strict=True)}
        requested = parsed.outputs
        results: list[tuple[str, np.ndarray, bool]] = []
        if requested is None:
            results = [(name, array, parsed.binary_output) for name, array in by_name.items()]
        for output in requested or []:
            array = by_name[output.name]
            if output.classification is not None:
                array = classify(array, output.classification, model.backend.labels)
            results.append((output.name, array, output.binary))
        body_out, headers = encode_response(model.name, model.version, parsed.id, results)
        return Response(body_out, headers=headers)

    async def classify_images(request: Request, slot: _Slot) -> Response:
        model = slot.model
        try:
            top_k = check_int("top_k", int(request.query_params.get("top_k", "5")), low=1)
        except (ValueError, InputError) as exc:
            raise bad_request(f"top_k must be an integer of at least 1 ({first_line(exc)})") from None
        body = await read_body(request, settings.max_body)
        items = await _images(request, body)
        loop = asyncio.get_running_loop()
        try:
            report = await loop.run_in_executor(
                slot.executor, lambda: predict(model.backend, items, top_k=top_k, batch_size=len(items))
            )
        except OutputError as exc:
            raise ProtocolError(500, first_line(exc, limit=400)) from None
        except InputError as exc:
            raise bad_request(first_line(exc, limit=400)) from None
        failed = [p.error for p in report.predictions if p.error is not None]
        if failed:
            shown = "; ".join(failed[:3]) + ("; …" if len(failed) > 3 else "")
            raise bad_request(f"{len(failed)} of {len(items)} images cannot be read: {shown}")
        return JSONResponse(
            {
                "model_name": model.name,
                "model_version": model.version,
                "preprocessing": report.preprocessing,
                "predictions": [{"name": p.name, "top": p.top} for p in report.predictions],
            }
        )

    async def model_metadata(request: Request, slot: _Slot) -> Response:
        return JSONResponse(slot.model.metadata())

    async def model_ready(request: Request, slot: _Slot) -> Response:
        ready = state["ready"]
        return JSONResponse({"name": slot.model.name, "ready": ready}, status_code=200 if ready else 503)

    async def model_config(request: Request, slot: _Slot) -> Response:
        model = slot.model

        def tensors(specs: list[Any]) -> list[dict[str, Any]]:
            return [
                {"name": s.name, "data_type": f"TYPE_{s.datatype}", "dims": list(s.shape[1:])} for s in specs
            ]

        return JSONResponse(
            {
                "name": model.name,
                "platform": model.platform,
                "max_batch_size": model.pinned or settings.max_batch,
                "input": tensors(model.inputs),
                "output": tensors(model.outputs),
                "dynamic_batching": {"max_queue_delay_microseconds": int(settings.max_delay * 1e6)},
            }
        )

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": state["ready"]}, status_code=200 if state["ready"] else 503)

    async def server_metadata(request: Request) -> Response:
        return JSONResponse(
            {"name": "normexport", "version": str(__version__), "extensions": list(EXTENSIONS)}
        )

    async def show_metrics(request: Request) -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    model_routes = []
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        model_routes += [
            Route(prefix, handled("metadata", model_metadata), methods=["GET"]),
            Route(f"{prefix}/ready", handled("ready", model_ready), methods=["GET"]),
            Route(f"{prefix}/config", handled("config", model_config), methods=["GET"]),
            Route(f"{prefix}/infer", handled("infer", infer), methods=["POST"]),
        ]
    routes = [
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2", server_metadata, methods=["GET"]),
        *model_routes,
        Route("/v1/models/{name}/classify", handled("classify", classify_images), methods=["POST"]),
        Route("/metrics", show_metrics, methods=["GET"]),
    ]
    return Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={404: _not_found, 405: _not_allowed}
    )


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": f"no route {request.url.path!r:.120}; see GET /v2"}, status_code=404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"error": f"{request.method} is not allowed on {request.url.path!r:.120}"}, status_code=405
    )


async def _images(request: Request, body: bytes) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` per uploaded image: every file of a multipart form, or the raw body as one image."""
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        return [("body", body)]

    async def stream() -> AsyncIterator[bytes]:
        yield body

    try:
        form = await MultiPartParser(
            request.headers, stream(), max_files=MAX_IMAGES, max_fields=MAX_IMAGES
        ).parse()
    except MultiPartException as exc:
        raise bad_request(f"the multipart body cannot be read: {exc.message}") from None
    items = []
    try:
        for field, value in form.multi_items():
            if isinstance(value, UploadFile):
                items.append((value.filename or field, await value.read()))
    finally:
        await form.close()
    if not items:
        raise bad_request("the multipart body holds no file; upload images as file fields")
    return items
