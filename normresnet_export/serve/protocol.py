"""The KServe v2 (Open Inference Protocol) HTTP/REST messages: decoding requests, encoding responses.

An inference request is a JSON object ``{"id", "inputs": [{name, shape, datatype, data}],
"outputs": [{name, parameters}], "parameters"}``. With Triton's binary tensor data extension
(what the official ``tritonclient`` sends for NumPy inputs) the body is that JSON header, of the
length the ``Inference-Header-Content-Length`` header gives, followed by the raw little-endian
bytes of every input whose ``parameters.binary_data_size`` says how many are its; outputs asked
for with ``binary_data`` come back the same way. The classification extension
(``parameters.classification: K`` on an output) answers ``score:index:label`` strings, a
``BYTES`` tensor.

Every request is checked against the model before anything runs, and every refusal is a
:class:`ProtocolError` carrying its HTTP status and one line that names the input and says what
was expected: a server that answers a wrong shape with ONNX Runtime's page-long error, or with a
500, leaves its callers guessing. Nothing is allocated beyond what the body holds: a tensor's
element count must equal its data's, so a small body cannot declare a huge tensor.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Each protocol datatype (``vocabulary.KSERVE_DATATYPES``) as a little-endian NumPy type
#: (``BYTES`` is a tensor of strings).
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}

#: ONNX Runtime's element types (``NodeArg.type``) as protocol datatypes.
ONNX_DATATYPES: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}

#: OpenVINO's element types (``Type.get_type_name()``) as protocol datatypes.
OPENVINO_DATATYPES: dict[str, str] = {
    "boolean": "BOOL",
    "u8": "UINT8",
    "u16": "UINT16",
    "u32": "UINT32",
    "u64": "UINT64",
    "i8": "INT8",
    "i16": "INT16",
    "i32": "INT32",
    "i64": "INT64",
    "f16": "FP16",
    "f32": "FP32",
    "f64": "FP64",
}

#: The HTTP header that gives the length of the JSON part of a binary request or response.
HEADER_LENGTH = "Inference-Header-Content-Length"


class ProtocolError(Exception):
    """A request the server refuses: its HTTP status and one line for the ``{"error": ...}`` body."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def bad_request(message: str) -> ProtocolError:
    """A 400: the request is malformed or does not fit the model."""
    return ProtocolError(400, message)


@dataclass(frozen=True)
class TensorInfo:
    """One input or output as the model declares it.

    Attributes:
        name: The tensor's name in the graph.
        datatype: Its protocol datatype (``FP32``, …).
        shape: Its dimensions; ``-1`` where the graph leaves one open (the batch).
    """

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """The tensor as model metadata lists it."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class RequestedOutput:
    """One output a request asks for.

    Attributes:
        name: The output's name.
        binary: Return it as binary tensor data rather than a JSON list.
        classification: Return the top this many classes as ``score:index:label`` strings.
    """

    name: str
    binary: bool
    classification: int | None = None


@dataclass
class InferRequest:
    """A decoded inference request, checked against the model.

    Attributes:
        id: The request's ``id``, echoed back (``None`` when it has none).
        inputs: Each input's array, by name, in the model's dtype and the request's shape.
        rows: The batch (first dimension) every input shares.
        outputs: The outputs asked for, or ``None`` for every output.
        binary_output: Whether outputs not asked for by name come back binary.
    """

    id: str | None
    inputs: dict[str, np.ndarray]
    rows: int
    outputs: list[RequestedOutput] | None
    binary_output: bool


def split_body(body: bytes, header_length: str | None) -> tuple[Any, bytes]:
    """The JSON header of a request and the binary data after it.

    Raises:
        ProtocolError: A header length that is not a number within the body, or a header that
            is not a JSON object.
    """
    if header_length is None:
        header, rest = body, b""
    else:
        try:
            length = int(header_length)
        except ValueError:
            length = -1
        if not 0 <= length <= len(body):
            raise bad_request(
                f"{HEADER_LENGTH} must be the length of the JSON header, 0 to the body's {len(body)} "
                f"bytes, got {header_length!r:.40}"
            )
        header, rest = body[:length], body[length:]
    try:
        document = json.loads(header)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"the request is not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise bad_request(f"the request must be a JSON object, got {type(document).__name__}")
    return document, rest


def _parameters(item: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    parameters = item.get("parameters", {})
    if not isinstance(parameters, dict):
        raise bad_request(f"{where}: parameters must be an object, got {type(parameters).__name__}")
    return parameters


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    ):
        raise bad_request(f"{where}: shape must be a list of non-negative integers, got {value!r:.80}")
    return tuple(value)


def _check_shape(shape: tuple[int, ...], spec: TensorInfo, where: str) -> None:
    """``shape`` fits ``spec``: same rank, every fixed dimension equal, a batch of at least one."""
    declared = "[" + ", ".join(map(str, spec.shape)) + "]"
    if len(shape) != len(spec.shape) or any(
        want >= 0 and want != got for want, got in zip(spec.shape, shape, strict=True)
    ):
        raise bad_request(f"{where}: the model takes shape {declared} (-1: any size), got {list(shape)}")
    if shape and shape[0] < 1:
        raise bad_request(f"{where}: the batch (first dimension) must be at least 1, got {shape[0]}")


def _binary_tensor(
    data: bytes, offset: int, size: Any, dtype: np.dtype, shape: tuple[int, ...], where: str
) -> np.ndarray:
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise bad_request(f"{where}: binary_data_size must be a non-negative integer, got {size!r:.40}")
    expected = math.prod(shape) * dtype.itemsize
    if size != expected:
        raise bad_request(
            f"{where}: shape {list(shape)} of {dtype.name} needs {expected} bytes, "
            f"but binary_data_size is {size}"
        )
    if offset + size > len(data):
        raise bad_request(
            f"{where}: binary_data_size {size} runs past the end of the body "
            f"({len(data) - offset} bytes of binary data left)"
        )
    return np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=offset).reshape(shape)


def _json_tensor(values: Any, dtype: np.dtype, shape: tuple[int, ...], where: str) -> np.ndarray:
    if not isinstance(values, list):
        raise bad_request(f"{where}: data must be a list (flat or nested), got {type(values).__name__}")
    try:
        array = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise bad_request(f"{where}: data is not a list of {dtype.name} numbers ({exc})") from None
    if array.size != math.prod(shape):
        raise bad_request(
            f"{where}: shape {list(shape)} holds {math.prod(shape)} values, but data has {array.size}"
        )
    return array.reshape(shape)


def parse_infer(
    document: Mapping[str, Any],
    binary: bytes,
    inputs: Sequence[TensorInfo],
    outputs: Sequence[TensorInfo],
    *,
    allow_nonfinite: bool = False,
) -> InferRequest:
    """Decode and check an inference request against the model's ``inputs`` and ``outputs``.

    Args:
        document: The request's JSON header.
        binary: The bytes after the header (binary tensor data), empty for a JSON-only request.
        inputs: The model's inputs.
        outputs: The model's outputs.
        allow_nonfinite: Accept NaN and infinite values in floating-point inputs.

    Raises:
        ProtocolError: (400) Any way the request does not fit: an unknown, missing or repeated
            input or output, a wrong datatype, a shape the model does not take, data whose length
            does not match the shape, binary sizes that do not add up to the binary data sent,
            inputs with different batches, or NaN/Inf in an input.
    """
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise bad_request(f"id must be a string, got {type(request_id).__name__}")
    given = document.get("inputs")
    if not isinstance(given, list) or not all(isinstance(item, dict) for item in given):
        raise bad_request('the request needs "inputs": a list of {name, shape, datatype, data} objects')
    specs = {spec.name: spec for spec in inputs}
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for item in given:
        name = item.get("name")
        if not isinstance(name, str) or name not in specs:
            raise bad_request(f"unknown input {name!r:.80}; the model's inputs are {', '.join(specs)}")
        if name in arrays:
            raise bad_request(f"input {name!r} is given twice")
        where = f"input {name!r}"
        spec = specs[name]
        datatype = item.get("datatype")
        if datatype != spec.datatype:
            raise bad_request(f"{where}: the model takes datatype {spec.datatype}, got {datatype!r:.40}")
        shape = _shape(item.get("shape"), where)
        _check_shape(shape, spec, where)
        dtype = DTYPES[datatype]
        parameters = _parameters(item, where)
        if "binary_data_size" in parameters:
            if "data" in item:
                raise bad_request(f"{where}: give data or binary_data_size, not both")
            size = parameters["binary_data_size"]
            arrays[name] = _binary_tensor(binary, offset, size, dtype, shape, where)
            offset += size
        elif "data" in item:
            arrays[name] = _json_tensor(item["data"], dtype, shape, where)
        else:
            raise bad_request(f"{where}: no data (give data, or binary_data_size with binary tensor data)")
        if not allow_nonfinite and dtype.kind == "f" and not np.isfinite(arrays[name]).all():
            raise bad_request(
                f"{where} holds NaN or infinite values; send finite inputs "
                "(or start the server with --allow-nonfinite)"
            )
    missing = [name for name in specs if name not in arrays]
    if missing:
        raise bad_request(f"missing input {', '.join(map(repr, missing))}; the model needs every one")
    if offset != len(binary):
        raise bad_request(
            f"the binary_data_size of the inputs add up to {offset} bytes, but {len(binary)} bytes of "
            f"binary data follow the JSON header"
        )
    batches = {array.shape[0] if array.ndim else 1 for array in arrays.values()}
    if len(batches) != 1:
        raise bad_request(f"every input must have the same batch (first dimension), got {sorted(batches)}")
    binary_output = _parameters(document, "the request").get("binary_data_output") is True
    return InferRequest(
        id=request_id,
        inputs=arrays,
        rows=batches.pop(),
        outputs=_requested_outputs(document.get("outputs"), outputs, binary_output),
        binary_output=binary_output,
    )


def _requested_outputs(
    given: Any, outputs: Sequence[TensorInfo], binary_output: bool
) -> list[RequestedOutput] | None:
    """The outputs asked for; an output's ``binary_data`` overrides the request's ``binary_data_output``."""
    if given is None:
        return None
    if not isinstance(given, list) or not all(isinstance(item, dict) for item in given):
        raise bad_request('"outputs" must be a list of {name, parameters} objects')
    names = {spec.name for spec in outputs}
    requested = []
    for item in given:
        name = item.get("name")
        if not isinstance(name, str) or name not in names:
            raise bad_request(f"unknown output {name!r:.80}; the model's outputs are {', '.join(names)}")
        parameters = _parameters(item, f"output {name!r}")
        count = parameters.get("classification")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            raise bad_request(
                f"output {name!r}: classification must be an integer of at least 1, got {count!r}"
            )
        binary = parameters.get("binary_data", binary_output) is True
        requested.append(RequestedOutput(name, binary, count))
    return requested


def classify(scores: np.ndarray, count: int, labels: Sequence[str] | None) -> np.ndarray:
    """The top ``count`` classes of every row as ``score:index:label`` strings (``score:index`` unlabelled).

    Triton's classification extension: the score is the output's own value (for our models the
    logit), highest first.
    """
    rows = scores.reshape(len(scores), -1).astype(np.float64)
    count = min(count, rows.shape[1])
    order = np.argsort(-rows, axis=1, kind="stable")[:, :count]
    answer = np.empty(order.shape, dtype=object)
    for r, row in enumerate(order):
        for k, index in enumerate(row.tolist()):
            text = f"{rows[r, index]:f}:{index}"
            if labels is not None and index < len(labels):
                text += f":{labels[index]}"
            answer[r, k] = text.encode()
    return answer


def _datatype(array: np.ndarray) -> str:
    if array.dtype == object:
        return "BYTES"
    for name, dtype in DTYPES.items():
        if dtype == array.dtype.newbyteorder("<") or dtype == array.dtype:
            return name
    raise ValueError(f"no KServe datatype for {array.dtype}")


def _bytes_payload(array: np.ndarray) -> bytes:
    """A ``BYTES`` tensor as the binary extension lays it out: each element's 4-byte length, then it."""
    return b"".join(struct.pack("<I", len(item)) + item for item in array.reshape(-1))


def encode_response(
    model: str,
    version: str,
    request_id: str | None,
    results: Sequence[tuple[str, np.ndarray, bool]],
) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers for ``(name, array, binary)`` outputs.

    Returns:
        ``(body, headers)``: JSON alone when no output is binary; otherwise the JSON header
        followed by the binary outputs, its length in ``Inference-Header-Content-Length``.
    """
    described = []
    payloads = []
    for name, array, binary in results:
        datatype = _datatype(array)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            payload = (
                _bytes_payload(array)
                if datatype == "BYTES"
                else np.ascontiguousarray(array).astype(DTYPES[datatype], copy=False).tobytes()
            )
            entry["parameters"] = {"binary_data_size": len(payload)}
            payloads.append(payload)
        elif datatype == "BYTES":
            entry["data"] = [item.decode("utf-8", "replace") for item in array.reshape(-1)]
        else:
            entry["data"] = array.reshape(-1).tolist()
        described.append(entry)
    document: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": described}
    if request_id is not None:
        document["id"] = request_id
    header = json.dumps(document, allow_nan=True).encode()
    if not payloads:
        return header, {"content-type": "application/json"}
    return b"".join([header, *payloads]), {
        "content-type": "application/octet-stream",
        HEADER_LENGTH: str(len(header)),
    }
