"""``normexport serve``: an ONNX Runtime or OpenVINO server that speaks the KServe v2 / Triton HTTP protocol.

The same client code (``tritonclient.http``, ``curl``, KServe's clients) works against it, against
Triton Inference Server running the repository ``normexport export --format triton`` writes, and
against KServe. Concurrent requests are merged into batches (:mod:`.batcher`), every input is
checked against the model before it runs (:mod:`.protocol`), and ``/metrics`` shows requests,
latencies, queue times and batch sizes (:mod:`.metrics`).

    from normresnet_export.serve import serve
    serve(["resnet20.onnx"], port=8000, max_batch_size=32, max_delay_ms=2)
"""

from normresnet_export.serve.runner import serve

__all__ = ["serve"]
