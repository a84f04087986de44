"""`normexport serve`: real server processes on 127.0.0.1, called with the official Triton client.

Two servers per module, started once: ``main`` serves an ONNX file and a Triton repository
written by our exporter, batching up to 32 rows; ``strict`` serves a checkpoint (exported and
checked on the fly) with batching off and a queue of two, for queue-full and SIGTERM. Logits
are compared with ONNX Runtime run directly on the same file, within the float32 limit of
``check``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import tritonclient.http as triton
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app
from normresnet_export import vocabulary
from normresnet_export.compare import deviation
from normresnet_export.fold.api import default_tolerance
from normresnet_export.predict import predict
from normresnet_export.runtime import open_model
from normresnet_export.runtime.openvino_backend import openvino_missing_reason
from normresnet_export.serve.batcher import Batcher
from normresnet_export.serve.models import load_models
from normresnet_export.serve.protocol import DTYPES
from normresnet_export.serve.runner import describe
from tests.helpers import png_bomb, randomise_for_folding

NORMEXPORT = Path(sys.executable).with_name("normexport")
LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
#: The served input: resnet20 (a CIFAR design) at 16×16, a quarter of the compute of 32×32.
SIZE = (3, 16, 16)
ONE = (1, *SIZE)
VALUES = 3 * 16 * 16
#: ``check``'s float32 limit for a network of resnet20's depth.
LIMIT = default_tolerance(nx.create_model("resnet20")).float32
NO_OPENVINO = openvino_missing_reason()


def _build(root: Path) -> None:
    """A resnet20 checkpoint (labels, CIFAR preprocessing), its ONNX file, a Triton repository, images."""
    torch.manual_seed(0)
    model = randomise_for_folding(nx.create_model("resnet20").eval())
    cifar = nx.preprocess.PRESETS["cifar10"]
    small = nx.preprocess.Preprocessing(input_size=SIZE, mean=cifar.mean, std=cifar.std, resize=16, crop=16)
    checkpoint = nx.save_checkpoint(
        root / "net.pt", model, arch="resnet20", preprocessing=small, labels=LABELS
    )
    # The exports' own check is tested with the exporters; here the server is compared with ORT.
    nx.export_onnx(checkpoint, root / "net.onnx", exporter="torchscript", check=False)
    nx.export_triton(checkpoint, root / "repo", name="tri", exporter="torchscript", check=False)
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((30 + 7 * i, 40, 3)) * 255).astype(np.uint8)).save(root / f"img{i}.png")


@pytest.fixture(scope="module")
def artefacts(shared_artefacts) -> Path:
    return shared_artefacts.get("serve-models", _build)


class Server:
    """A `normexport serve` process on a free port of 127.0.0.1, its stdout and stderr in files."""

    def __init__(self, directory: Path, name: str, args: list[str]) -> None:
        self.stdout = directory / f"{name}.stdout"
        self.stderr = directory / f"{name}.stderr"
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(
                [str(NORMEXPORT), "serve", *args, "--host", "127.0.0.1", "--port", "0"],
                stdout=out,
                stderr=err,
                cwd=directory,
            )
        self.url = ""

    def log(self) -> str:
        return self.stderr.read_text()

    def wait_ready(self, timeout: float = 240) -> str:
        """``host:port`` once the server has said it is ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log().splitlines():
                if "ready on http://" in line:
                    self.url = line.split("http://", 1)[1].split()[0].rstrip('",')
                    return self.url
            if self.process.poll() is not None:
                pytest.fail(f"the server exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.1)
        pytest.fail(f"the server did not get ready in {timeout} s:\n{self.log()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture(scope="module")
def servers(artefacts, tmp_path_factory):
    """Both servers, started together (the checkpoint's export overlaps the other's start-up)."""
    directory = tmp_path_factory.mktemp("serve")
    for item in artefacts.iterdir():
        (directory / item.name).symlink_to(item)
    started = {
        "strict": Server(
            directory,
            "strict",
            ["net.pt", "--name", "net", "--max-batch-size", "1", "--max-queue", "2", "--json-logs"],
        ),
        "main": Server(
            directory,
            "main",
            ["net.onnx", "repo", "--max-batch-size", "32", "--max-delay-ms", "5", "--max-body-mb", "1"],
        ),
    }
    if NO_OPENVINO is None:
        started["openvino"] = Server(
            directory,
            "openvino",
            ["net.onnx", "--runtime", "openvino", "--name", "ov", "--max-delay-ms", "5"],
        )
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture(scope="module")
def main(servers) -> str:
    return servers["main"].wait_ready()


@pytest.fixture(scope="module")
def reference(artefacts):
    """ONNX Runtime on the served file, called directly."""
    return open_model(artefacts / "net.onnx", device="cpu")


def _inputs(seed: int, rows: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, *SIZE)).astype(np.float32)


def _agrees(actual: np.ndarray, expected: torch.Tensor | np.ndarray) -> bool:
    d = deviation([torch.as_tensor(expected).clone()], [torch.from_numpy(np.array(actual))])
    return d.finite and d.max_rel is not None and d.max_rel <= LIMIT and d.top1_agreement == 1.0


def _infer(url: str, model: str, x: np.ndarray, *, binary: bool = True, **options) -> triton.InferResult:
    client = triton.InferenceServerClient(url)
    try:
        tensor = triton.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        return client.infer(model, [tensor], **options)
    finally:
        client.close()


def _valid(url: str, reference) -> None:
    """A valid request succeeds (after each refused one: the server is still up and well)."""
    x = _inputs(99, 1)
    assert _agrees(_infer(url, "net", x).as_numpy("logits"), reference.run(x))


def _metrics(url: str) -> dict[str, float]:
    text = httpx.get(f"http://{url}/metrics").text
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}"] = sample.value
    return values


def test_the_datatypes_are_the_vocabulary():
    assert tuple(DTYPES) == vocabulary.KSERVE_DATATYPES


# ------------------------------------------------------------------------------------------ protocol


def test_health_and_metadata_through_tritonclient(main):
    client = triton.InferenceServerClient(main)
    assert client.is_server_live() and client.is_server_ready()
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    for name in ("net", "tri"):
        assert client.is_model_ready(name) and client.is_model_ready(name, "1")
        metadata = client.get_model_metadata(name)
        assert metadata["versions"] == ["1"]
        assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, *SIZE]}]
        assert metadata["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
    assert client.get_model_metadata("net", "1")["name"] == "net"
    with pytest.raises(InferenceServerException, match="no version '2'"):
        client.get_model_metadata("net", "2")
    with pytest.raises(InferenceServerException, match="no model named 'resnet56'"):
        client.get_model_metadata("resnet56")
    client.close()


def test_binary_and_json_tensors_give_onnxruntime_logits(main, reference):
    x = _inputs(1, 3)
    expected = reference.run(x)
    for model in ("net", "tri"):
        binary = _infer(main, model, x, request_id="r-1")
        assert binary.get_response()["id"] == "r-1" and binary.get_response()["model_name"] == model
        assert _agrees(binary.as_numpy("logits"), expected)
        compressed = _infer(main, model, x, request_compression_algorithm="gzip")  # Content-Encoding: gzip
        assert _agrees(compressed.as_numpy("logits"), expected)
        as_json = _infer(main, model, x, binary=False, outputs=[triton.InferRequestedOutput("logits", False)])
        assert "data" in as_json.get_response()["outputs"][0]  # a JSON list, not binary data
        assert _agrees(as_json.as_numpy("logits"), expected)
    # The protocol by hand, as curl would send it: JSON in, JSON out, version in the path.
    body = {"inputs": [{"name": "input", "shape": list(ONE), "datatype": "FP32", "data": x[0].tolist()}]}
    answer = httpx.post(f"http://{main}/v2/models/net/versions/1/infer", json=body)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    output = answer.json()["outputs"][0]
    assert output["shape"] == [1, 10] and _agrees(np.array(output["data"]).reshape(1, 10), expected[:1])


def test_classification_and_classify_give_the_top_k_of_predict(main, artefacts, reference):
    images = sorted(artefacts.glob("img*.png"))
    expected = predict(reference, [(p.name, p) for p in images], top_k=3)  # what `normexport predict` says
    # /v1/models/{name}/classify: one image as the raw body, several as a multipart upload.
    raw = httpx.post(f"http://{main}/v1/models/net/classify?top_k=3", content=images[0].read_bytes())
    assert raw.status_code == 200, raw.text
    assert [t["label"] for t in raw.json()["predictions"][0]["top"]] == [
        t["label"] for t in expected.predictions[0].top
    ]
    files = [("images", (p.name, p.read_bytes(), "image/png")) for p in images]
    multi = httpx.post(f"http://{main}/v1/models/tri/classify?top_k=3", files=files)
    assert multi.status_code == 200, multi.text
    for got, want in zip(multi.json()["predictions"], expected.predictions, strict=True):
        assert got["name"] == want.name and [t["index"] for t in got["top"]] == [t["index"] for t in want.top]
        assert np.allclose(
            [t["probability"] for t in got["top"]], [t["probability"] for t in want.top], rtol=1e-4
        )
    # The classification extension on the preprocessed tensors: "score:index:label", best first.
    batch = torch.stack([reference.preprocessing.apply(nx.preprocess.decode_image(p)) for p in images])
    result = _infer(
        main, "net", batch.numpy(), outputs=[triton.InferRequestedOutput("logits", class_count=3)]
    )
    for row, want in zip(result.as_numpy("logits"), expected.predictions, strict=True):
        entries = [item.decode().split(":") for item in row]
        assert [(int(i), label) for _, i, label in entries] == [(t["index"], t["label"]) for t in want.top]


def test_64_concurrent_clients_each_get_their_own_answer_in_batches(main, reference):
    clients, requests = 64, 20
    inputs = {(c, r): _inputs(1000 * c + r, 1 + (c + r) % 2) for c in range(clients) for r in range(requests)}
    expected = reference.run(np.concatenate(list(inputs.values())))
    offsets = np.cumsum([0] + [len(x) for x in inputs.values()])
    wanted = {key: expected[offsets[i] : offsets[i + 1]] for i, key in enumerate(inputs)}
    before = _metrics(main)
    start = threading.Barrier(clients)

    def client(c: int) -> list[str]:
        problems = []
        connection = triton.InferenceServerClient(main)
        start.wait()
        for r in range(requests):
            try:
                result = _infer_with(connection, inputs[c, r], f"{c}-{r}")
            except InferenceServerException as exc:
                problems.append(f"{c}-{r}: {exc}")
                continue
            if result.get_response()["id"] != f"{c}-{r}" or not _agrees(
                result.as_numpy("logits"), wanted[c, r]
            ):
                problems.append(f"{c}-{r}: the answer is not its own")
        connection.close()
        return problems

    with ThreadPoolExecutor(clients) as pool:
        problems = [p for found in pool.map(client, range(clients)) for p in found]
    assert not problems, problems[:5]
    after = _metrics(main)
    batches = after["normexport_batch_size_count{model=net}"] - before.get(
        "normexport_batch_size_count{model=net}", 0
    )
    single = after["normexport_batch_size_bucket{le=2.0,model=net}"] - before.get(
        "normexport_batch_size_bucket{le=2.0,model=net}", 0
    )
    rows = sum(len(x) for x in inputs.values())
    assert batches < clients * requests and batches - single > 0  # requests were merged: batches of 3+ rows
    assert (
        after["normexport_batch_size_sum{model=net}"] - before.get("normexport_batch_size_sum{model=net}", 0)
        == rows
    )
    assert after["normexport_requests_total{endpoint=infer,model=net,status=200}"] >= clients * requests
    assert after["normexport_queue_depth{model=net}"] == 0


def _infer_with(client: triton.InferenceServerClient, x: np.ndarray, request_id: str) -> triton.InferResult:
    tensor = triton.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    return client.infer("net", [tensor], request_id=request_id)


# ---------------------------------------------------------------------------------------- bad input


def _tensor(shape, datatype="FP32", **extra) -> dict:
    return {"name": "input", "shape": shape, "datatype": datatype, **extra}


ROW = [0.0] * VALUES
BINARY = np.zeros((1, *SIZE), np.float32).tobytes()

#: (what is wrong, path, request keywords, status, words of the error)
BAD = [
    ("malformed JSON", "infer", {"content": b'{"inputs": ['}, 400, "not valid JSON"),
    ("not an object", "infer", {"json": [1, 2]}, 400, "JSON object"),
    ("no inputs", "infer", {"json": {"inputs": []}}, 400, "missing input"),
    (
        "unknown input",
        "infer",
        {"json": {"inputs": [{**_tensor(list(ONE), data=ROW), "name": "x"}]}},
        400,
        "unknown input",
    ),
    (
        "wrong datatype",
        "infer",
        {"json": {"inputs": [_tensor(list(ONE), "FP64", data=ROW)]}},
        400,
        "datatype FP32",
    ),
    (
        "wrong shape",
        "infer",
        {"json": {"inputs": [_tensor([1, 3, 8, 32], data=ROW)]}},
        400,
        "shape [-1, 3, 16, 16]",
    ),
    ("wrong rank", "infer", {"json": {"inputs": [_tensor(list(SIZE), data=ROW)]}}, 400, "shape"),
    (
        "short data",
        "infer",
        {"json": {"inputs": [_tensor(list(ONE), data=ROW[:-1])]}},
        400,
        f"{VALUES} values",
    ),
    (
        "text data",
        "infer",
        {"json": {"inputs": [_tensor(list(ONE), data=["a"] * VALUES)]}},
        400,
        "numbers",
    ),
    (
        "NaN",
        "infer",
        {"content": json.dumps({"inputs": [_tensor(list(ONE), data=[float("nan"), *ROW[1:]])]})},
        400,
        "NaN",
    ),
    (
        "unknown output",
        "infer",
        {"json": {"inputs": [_tensor(list(ONE), data=ROW)], "outputs": [{"name": "probs"}]}},
        400,
        "unknown output",
    ),
]


def _binary(document: dict, data: bytes, length: str | None = None) -> dict:
    header = json.dumps(document).encode()
    return {
        "content": header + data,
        "headers": {
            "Inference-Header-Content-Length": length or str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    }


BAD += [
    (
        "binary size too small",
        "infer",
        _binary({"inputs": [_tensor(list(ONE), parameters={"binary_data_size": 100})]}, BINARY),
        400,
        f"needs {4 * VALUES} bytes",
    ),
    (
        "binary data left over",
        "infer",
        _binary(
            {"inputs": [_tensor(list(ONE), parameters={"binary_data_size": 4 * VALUES})]}, BINARY + b"xx"
        ),
        400,
        "add up",
    ),
    (
        "binary data missing",
        "infer",
        _binary({"inputs": [_tensor(list(ONE), parameters={"binary_data_size": 4 * VALUES})]}, BINARY[:-4]),
        400,
        "past the end",
    ),
    (
        "header length wrong",
        "infer",
        _binary({"inputs": []}, b"", "99999"),
        400,
        "Inference-Header-Content-Length",
    ),
    (
        "Inf in binary",
        "infer",
        _binary(
            {"inputs": [_tensor(list(ONE), parameters={"binary_data_size": 4 * VALUES})]},
            np.full((1, *SIZE), np.inf, np.float32).tobytes(),
        ),
        400,
        "infinite",
    ),
    ("body over the limit", "infer", {"content": b" " * (1 << 20) + b"{}"}, 413, "--max-body-mb"),
    (
        "gzip bomb",
        "infer",
        {"content": gzip.compress(b" " * (8 << 20)), "headers": {"Content-Encoding": "gzip"}},
        413,
        "decompresses to more than",
    ),
    ("unknown encoding", "infer", {"content": b"{}", "headers": {"Content-Encoding": "br"}}, 415, "gzip"),
    ("undecodable image", "classify", {"content": b"GIF89a not really"}, 400, "cannot be read"),
    ("decompression bomb", "classify", {"content": png_bomb(10_000, 10_000)}, 400, "decompression bomb"),
    ("bad top_k", "classify?top_k=0", {"content": b""}, 400, "top_k"),
]


@pytest.mark.parametrize(("what", "path", "request_options", "status", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_and_the_next_request_succeeds(
    main, reference, what, path, request_options, status, words
):
    prefix = "/v1/models/net/" if path.startswith("classify") else "/v2/models/net/"
    answer = httpx.post(f"http://{main}{prefix}{path}", **request_options)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]
    _valid(main, reference)


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/v2/models/nope/infer", "no model named 'nope'"),
        ("/v2/models/net/versions/7/infer", "no version '7'"),
        ("/v2/nothing/here", "no route"),
    ],
)
def test_an_unknown_model_or_version_is_404(main, reference, path, words):
    answer = httpx.post(f"http://{main}{path}", json={"inputs": [_tensor(list(ONE), data=ROW)]})
    assert answer.status_code == 404 and words in answer.json()["error"]
    _valid(main, reference)


def test_a_body_over_the_limit_is_refused_before_it_is_read(main, reference):
    host, port = main.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(
            b"POST /v2/models/net/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n" + b" " * 4096
        )  # 4 KiB of a declared gigabyte: the answer comes without the rest
        answer = connection.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]

    def chunks():  # no Content-Length: refused once the body passes the limit
        for _ in range(64):
            yield b" " * 65536

    assert httpx.post(f"http://{main}/v2/models/net/infer", content=chunks()).status_code == 413
    _valid(main, reference)


def test_stdout_stays_empty_and_the_log_names_the_provider(servers, main):
    assert servers["main"].stdout.read_bytes() == b""
    log = servers["main"].log()
    assert "model net (version 1) from net.onnx: onnxruntime" in log
    assert "model tri (version 1) from repo" in log
    assert "CPUExecutionProvider" in log or "CUDAExecutionProvider" in log


# ----------------------------------------------------------------- checkpoint, queue full, SIGTERM


def test_a_checkpoint_served_unbatched_with_a_full_queue_and_sigterm(servers, main, reference):
    strict = servers["strict"]
    url = strict.wait_ready()
    records = [json.loads(line) for line in strict.log().splitlines()]  # --json-logs: every line JSON
    model = next(r for r in records if r.get("event") == "model")
    assert model["model"] == "net" and model["source"] == "net.pt" and model["provider"]
    # The checkpoint was exported and checked on the fly: same logits as the fixture's export.
    x = _inputs(5, 512)  # far beyond --max-batch-size 1: run on its own, not refused
    expected = reference.run(x)
    assert _agrees(_infer(url, "net", x).as_numpy("logits"), expected)

    document = {"inputs": [_tensor(list(x.shape), parameters={"binary_data_size": x.nbytes})]}

    def send(i: int) -> httpx.Response:  # binary in, JSON out; by hand, to read the 503's headers
        return httpx.post(f"http://{url}/v2/models/net/infer", timeout=120, **_binary(document, x.tobytes()))

    with ThreadPoolExecutor(12) as pool:  # 1 running + 2 queued at most: the others are told to retry
        answers = list(pool.map(send, range(12)))
    full = [a for a in answers if a.status_code == 503]
    assert full and all(a.headers["retry-after"] == "1" and "--max-queue" in a.json()["error"] for a in full)
    for answer in answers:
        if answer.status_code != 503:
            assert answer.status_code == 200 and _agrees(
                np.array(answer.json()["outputs"][0]["data"]).reshape(512, 10), expected
            )
    metrics = _metrics(url)
    assert (
        metrics["normexport_batch_size_count{model=net}"]
        == metrics["normexport_batch_size_sum{model=net}"] / 512
    )
    # SIGTERM with three requests in flight (one running, two queued): all three are answered.
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(send, i) for i in range(3)]
        deadline = time.monotonic() + 60
        while _metrics(url)["normexport_queue_depth{model=net}"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        # The event loop is not blocked by the computing: it answers while batches run.
        assert httpx.get(f"http://{url}/v2/health/live").status_code == 200
        assert not all(future.done() for future in futures)
        strict.process.send_signal(signal.SIGTERM)
        answers = [future.result() for future in futures]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(_agrees(np.array(a.json()["outputs"][0]["data"]).reshape(512, 10), expected) for a in answers)
    assert strict.process.wait(30) == 0
    assert json.loads(strict.log().splitlines()[-1])["event"] == "stopped"
    assert strict.stdout.read_bytes() == b""


# -------------------------------------------------------------------------------- options, batcher


@pytest.mark.skipif(NO_OPENVINO is not None, reason=f"OpenVINO is not installed ({NO_OPENVINO})")
def test_the_openvino_runtime_serves_float32_logits_in_batches(servers, artefacts, reference):
    url = servers["openvino"].wait_ready()
    assert "openvino" in servers["openvino"].log() and "float32" in servers["openvino"].log()
    client = triton.InferenceServerClient(url)
    assert client.get_model_metadata("ov")["platform"] == "openvino"
    assert client.get_model_metadata("ov")["inputs"] == [
        {"name": "input", "datatype": "FP32", "shape": [-1, *SIZE]}
    ]
    client.close()
    inputs = [_inputs(200 + i, 1 + i % 3) for i in range(24)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda x: _infer(url, "ov", x).as_numpy("logits"), inputs))
    for x, answer in zip(inputs, answers, strict=True):
        assert _agrees(answer, reference.run(x))  # OpenVINO float32 within the float32 limit of ORT
    batches = _metrics(url)
    assert batches["normexport_batch_size_count{model=ov}"] < len(inputs)  # merged
    images = sorted(artefacts.glob("img*.png"))
    expected = predict(reference, [(p.name, p) for p in images], top_k=3)
    files = [("images", (p.name, p.read_bytes(), "image/png")) for p in images]
    answer = httpx.post(f"http://{url}/v1/models/ov/classify?top_k=3", files=files)
    assert answer.status_code == 200, answer.text
    for got, want in zip(answer.json()["predictions"], expected.predictions, strict=True):
        assert [t["index"] for t in got["top"]] == [t["index"] for t in want.top]


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--precision", "bf16"], "--precision bf16 for an .onnx file is computed by --runtime openvino"),
        (["--runtime", "openvino", "--device", "cuda"], "the OpenVINO runtime runs on the CPU here"),
    ],
)
def test_a_runtime_that_cannot_serve_is_a_one_line_error(artefacts, options, words):
    if NO_OPENVINO is not None and "openvino" in options:
        pytest.skip(f"OpenVINO is not installed ({NO_OPENVINO})")
    result = CliRunner().invoke(app, ["serve", str(artefacts / "net.onnx"), *options])
    assert result.exit_code == 2 and words in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--max-batch-size", "0"], "--max-batch-size must be an integer from 1 to 4096"),
        (["--max-delay-ms", "-1"], "--max-delay-ms must be a finite number from 0"),
        (["--max-queue", "0"], "--max-queue"),
        (["--max-body-mb", "0"], "--max-body-mb must be a finite number greater than 0"),
        (["--port", "70000"], "--port must be an integer from 0 to 65535"),
    ],
)
def test_options_out_of_range_are_one_line_errors(artefacts, options, words):
    result = CliRunner().invoke(app, ["serve", str(artefacts / "net.onnx"), *options])
    assert result.exit_code == 2 and words in result.output and len(result.output.strip().splitlines()) == 1


def test_models_that_cannot_be_served_are_one_line_errors(artefacts, main):
    onnx = str(artefacts / "net.onnx")
    cases = [
        ([onnx, str(artefacts / "repo"), "--name", "x"], "--name names one model, but 2 are served"),
        ([onnx, onnx], "two models are named 'net'"),
        ([str(artefacts / "img0.png")], "img0.png"),
        (["resnet20_cifar1"], "neither a file nor a pretrained weights name"),
        ([onnx, "--port", main.split(":")[1]], "cannot listen on 127.0.0.1"),
    ]
    for args, words in cases:
        result = CliRunner().invoke(app, ["serve", *args])
        assert result.exit_code == 2 and words in result.output, (args, result.output)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a usable GPU")
def test_cuda_without_a_gpu_is_refused_or_falls_back_with_the_reason(artefacts, tmp_path):
    onnx = str(artefacts / "net.onnx")
    result = CliRunner().invoke(app, ["serve", onnx, "--device", "cuda"])
    assert result.exit_code == 2 and "--allow-cpu-fallback" in result.output
    (model,) = load_models(
        [onnx], name=None, device="cuda", allow_cpu_fallback=True, threads=1, workspace=tmp_path
    )
    assert "CPU fallback: " in describe(model)  # what the server's start-up line says


def test_the_batcher_merges_only_equal_shapes_keeps_order_and_pads_a_pinned_batch():
    calls: list[list[int]] = []

    def run(feeds):
        x = feeds["x"]
        calls.append(list(x.shape))
        return [x.reshape(len(x), -1).sum(axis=1)]

    async def scenario(pinned):
        batcher = Batcher(
            run, ThreadPoolExecutor(1), max_batch=8, max_delay=0.05, max_queue=64, pinned=pinned
        )
        batcher.start()
        requests = [
            np.full((rows, side), float(i), np.float32)
            for i, (rows, side) in enumerate([(2, 3), (1, 5), (3, 3), (20, 3), (1, 5), (2, 3)])
        ]
        answers = await asyncio.gather(*(batcher.submit({"x": x}, len(x)) for x in requests))
        await batcher.stop()
        for x, (outputs, _) in zip(requests, answers, strict=True):
            assert np.array_equal(outputs[0], x.sum(axis=1))  # each caller its own rows
        return answers

    answers = asyncio.run(scenario(None))
    assert sorted(calls) == sorted([[5, 3], [2, 5], [20, 3], [2, 3]])  # shapes never merged; 20 rows alone
    assert [stats.batch_rows for _, stats in answers] == [5, 2, 5, 20, 2, 2]
    calls.clear()
    asyncio.run(scenario(4))  # a graph fixed to 4 rows: every call exactly 4 (padded, or in pieces)
    assert {shape[0] for shape in calls} == {4}

    async def unbatched():  # --max-batch-size 1: one call per request, however many wait together
        batcher = Batcher(run, ThreadPoolExecutor(1), max_batch=1, max_delay=0.05, max_queue=64)
        batcher.start()
        await asyncio.gather(*(batcher.submit({"x": np.ones((1, 3), np.float32)}, 1) for _ in range(5)))
        await batcher.stop()

    calls.clear()
    asyncio.run(unbatched())
    assert calls == [[1, 3]] * 5
