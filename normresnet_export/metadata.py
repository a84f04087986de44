"""What a deployed model carries: one typed record, written into and read from every format.

Every artefact normexport writes (ONNX, TorchScript, torch.export ``.pt2``, the ``model.onnx``
of a Triton repository) carries a :class:`ModelMetadata`: the architecture and its keywords, the
preprocessing, the class labels, whether and how it was folded, the compute precision, the
input and output tensors, and the versions that wrote it. The file alone then says how to
prepare its input and how to read its output, and the eager backend describes a checkpoint with
the same record.

The encodings hold the same fields:

- ONNX: one ``metadata_props`` entry per field, key ``normexport.<field>``, value the field as JSON
  (readable with any ONNX tool, one field at a time).
- TorchScript and ``.pt2``: one extra file ``normexport.json`` holding every field in one JSON
  object (plain ``torch.jit.load(..., _extra_files=...)`` reads it without this package).

``schema`` numbers the layout of the fields. Files written before the number existed carry no
``schema`` entry; their fields are those of schema 1 and they are read as such. A file of a newer
schema is refused with a one-line error rather than half-read.

Loading a TorchScript or ``.pt2`` file is the only way to reach its extra file, so the two
loaders live here too: the exporters (which reload what they wrote, to check it) and the
runtime (which serves it) share them. Both files are programs, so both loaders refuse unless
told ``trust_code=True`` (the exporters' reload of the bytes they just made is trusted).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from normresnet_export._version import __version__
from normresnet_export.errors import InputError
from normresnet_export.preprocess import Preprocessing

if TYPE_CHECKING:
    from normresnet_export.checkpoint import Checkpoint

#: The newest layout of the fields this version writes and reads.
SCHEMA = 1
#: Prefix of every ONNX ``metadata_props`` key (``normexport.arch``, …).
METADATA_PREFIX = "normexport."
#: Name of the extra file that holds the metadata in TorchScript and ``.pt2`` files.
EXTRA_FILE = "normexport.json"
#: Compute precisions (input and output are float32 in all): int8 is a statically quantised
#: (QDQ) ONNX model, written only once it passed the accuracy gate.
PRECISIONS = ("float32", "float16", "int8")


def _invalid(where: str, name: str, expected: str, value: Any) -> InputError:
    return InputError(
        f"{where}: its normexport metadata field {name!r} must be {expected}, got {value!r:.80}; "
        "re-export the model with this normexport"
    )


def _optional(data: Mapping[str, Any], name: str, types: type | tuple[type, ...], where: str) -> Any:
    """``data[name]`` if it is absent, null or of ``types``; anything else is a one-line error."""
    value = data.get(name)
    if value is None or isinstance(value, types):
        return value
    names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
    raise _invalid(where, name, f"{names} or null", value)


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor of a deployed model.

    Attributes:
        name: Its name in the graph (the ONNX input or output name, Triton's tensor name).
        dtype: The element type callers pass in or get back, e.g. ``"float32"``.
        shape: Its dimensions, a string for a symbolic one (``("batch", 3, 32, 32)``); ``None``
            when the file does not record it (outputs).
    """

    name: str
    dtype: str
    shape: tuple[int | str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form; ``shape`` only when it is recorded."""
        data: dict[str, Any] = {"name": self.name}
        if self.shape is not None:
            data["shape"] = list(self.shape)
        data["dtype"] = self.dtype
        return data

    @classmethod
    def from_dict(cls, data: Any, *, field: str, where: str) -> TensorSpec:
        """Parse :meth:`to_dict` output; ``field`` and ``where`` name it in errors."""
        expected = 'an object {"name": str, "dtype": str, "shape": [int or str, …]}'
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
            raise _invalid(where, field, expected, data)
        shape = data.get("shape")
        if shape is not None and not (
            isinstance(shape, list)
            and all(isinstance(d, (int, str)) and not isinstance(d, bool) for d in shape)
        ):
            raise _invalid(where, field, expected, data)
        dtype = data.get("dtype", "float32")
        if not isinstance(dtype, str):
            raise _invalid(where, field, expected, data)
        return cls(name=data["name"], dtype=dtype, shape=tuple(shape) if shape is not None else None)


@dataclass(frozen=True)
class OnnxRecord:
    """How an ONNX file was made (ONNX files only).

    Attributes:
        exporter: The torch exporter that wrote it: ``"dynamo"`` or ``"torchscript"``.
        opset: Its default-domain opset.
        ir_version: Its ONNX IR version.
    """

    exporter: str
    opset: int
    ir_version: int

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> OnnxRecord:
        """Parse ``dataclasses.asdict`` output; ``where`` names the file in errors."""
        expected = 'an object {"exporter": str, "opset": int, "ir_version": int}'
        if not isinstance(data, Mapping):
            raise _invalid(where, "onnx", expected, data)
        try:
            record = cls(**data)
        except TypeError:
            raise _invalid(where, "onnx", expected, data) from None
        if not (isinstance(record.exporter, str) and isinstance(record.opset, int)):
            raise _invalid(where, "onnx", expected, data)
        return record


def _resized(preprocessing: Preprocessing | None, size: tuple[int, int]) -> Preprocessing | None:
    """The preprocessing for another input size: crop to it, resize in the same resize/crop ratio."""
    if preprocessing is None or tuple(preprocessing.input_size[1:]) == size:
        return preprocessing
    ratio = preprocessing.resize / preprocessing.crop
    return Preprocessing(
        input_size=(preprocessing.input_size[0], *size),
        mean=preprocessing.mean,
        std=preprocessing.std,
        resize=round(max(size) * ratio),
        crop=size[0],
        interpolation=preprocessing.interpolation,
        channel_order=preprocessing.channel_order,
    )


@dataclass(frozen=True)
class ModelMetadata:
    """What a deployed model carries (see the module docstring for the encodings).

    Every field has a default, so a file without normexport metadata (an ONNX file from another
    tool) reads as a record that knows nothing: no arch, preprocessing or labels, float32. Treat
    the dict fields as read-only; :meth:`to_dict` hands out copies.

    Attributes:
        schema: The layout of these fields (:data:`SCHEMA` for what this version writes).
        arch: Registered model name, or ``None`` for a bare module or a foreign file.
        model_kwargs: Every builder keyword of ``arch``.
        preprocessing: How to prepare an image for the model, or ``None`` when unknown.
        labels: Class names, one per output, or ``None``.
        folded: Whether the network is the folded one.
        fold: The fold's compact record (pattern counts, kept groups, deviations, verdict, as
            ``FoldReport.to_compact_dict`` gives it); for a checkpoint folded beforehand only its
            pattern counts and verdict; ``None`` for an unfolded network.
        precision: The compute precision, ``"float32"``, ``"float16"`` or ``"int8"`` (input and
            output are float32 either way).
        input: The input tensor; its first dimension is ``"batch"`` unless the export pinned it.
        output: The output tensor (logits).
        version: The normexport version that wrote the file.
        torch: The torch version that wrote the file.
        onnx: How an ONNX file was made; ``None`` in the other formats (and absent from :meth:`to_dict`).
        verified: Whether the artefact was run against the model before it was written: ``False``
            for an export with ``--no-check`` (unverified), ``None`` where not recorded (files from
            before this field, the eager backend; absent from :meth:`to_dict` then).
    """

    schema: int = SCHEMA
    arch: str | None = None
    model_kwargs: dict[str, Any] | None = None
    preprocessing: Preprocessing | None = None
    labels: tuple[str, ...] | None = None
    folded: bool = False
    fold: dict[str, Any] | None = None
    precision: str = "float32"
    input: TensorSpec | None = None
    output: TensorSpec | None = None
    version: str | None = None
    torch: str | None = None
    onnx: OnnxRecord | None = None
    verified: bool | None = None

    # ----------------------------------------------------------------------------------- building

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: Checkpoint | None,
        *,
        fold: Mapping[str, Any] | None = None,
        precision: str = "float32",
        input_size: Sequence[int] | None = None,
        input: TensorSpec | None = None,
        output: TensorSpec | None = None,
        verified: bool | None = None,
    ) -> ModelMetadata:
        """What a deployed copy of ``checkpoint`` carries: the one place this record is made.

        Args:
            checkpoint: The checkpoint deployed, or ``None`` for a bare module (then there is no
                arch, preprocessing or labels).
            fold: The fold's compact record when the network was folded on the way to deployment
                (the record then says ``folded``); ``None`` when it was not, and the checkpoint's
                own state (folded or not) is what is deployed.
            precision: The compute precision, ``"float32"`` or ``"float16"``.
            input_size: The (C, H, W) deployed at when it is not the checkpoint's own; the
                preprocessing is adjusted to it (crop to it, resize in the same ratio).
            input: The input tensor (exports; the eager backend has no named input).
            output: The output tensor.
            verified: Whether the artefact is checked against the model before it is written.

        Raises:
            InputError: An unknown precision.
        """
        if precision not in PRECISIONS:
            raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        folded = fold is not None or bool(checkpoint is not None and checkpoint.folded)
        record = dict(fold) if fold is not None else None
        if record is None and checkpoint is not None and checkpoint.folded and checkpoint.fold_report:
            record = {
                k: checkpoint.fold_report[k] for k in ("folded", "passed") if k in checkpoint.fold_report
            }
        preprocessing = checkpoint.preprocessing if checkpoint is not None else None
        if input_size is not None:
            preprocessing = _resized(preprocessing, tuple(input_size[-2:]))  # type: ignore[arg-type]
        return cls(
            arch=checkpoint.arch if checkpoint is not None else None,
            model_kwargs=dict(checkpoint.model_kwargs) if checkpoint is not None else None,
            preprocessing=preprocessing,
            labels=tuple(checkpoint.labels) if checkpoint is not None and checkpoint.labels else None,
            folded=folded,
            fold=record,
            precision=precision,
            input=input,
            output=output,
            version=str(__version__),
            torch=str(torch.__version__),
            verified=verified,
        )

    def with_batch(self, batch: int | None) -> ModelMetadata:
        """The record of an export whose batch dimension is pinned to ``batch`` (``None``: unchanged)."""
        if batch is None or self.input is None or self.input.shape is None:
            return self
        shape = (batch, *self.input.shape[1:])
        return dataclasses.replace(self, input=dataclasses.replace(self.input, shape=shape))

    @property
    def static_batch(self) -> int | None:
        """The batch size the input is pinned to (an export with ``--static-batch``), else ``None``."""
        first = self.input.shape[0] if self.input is not None and self.input.shape else None
        return first if isinstance(first, int) else None

    # ----------------------------------------------------------------------------------- dict form

    def to_dict(self) -> dict[str, Any]:
        """The JSON-compatible form every encoding holds (``onnx`` only where it is set)."""
        data = {
            "schema": self.schema,
            "arch": self.arch,
            "model_kwargs": copy.deepcopy(self.model_kwargs),
            "preprocessing": self.preprocessing.to_dict() if self.preprocessing is not None else None,
            "labels": list(self.labels) if self.labels is not None else None,
            "folded": self.folded,
            "fold": copy.deepcopy(self.fold),
            "precision": self.precision,
            "input": self.input.to_dict() if self.input is not None else None,
            "output": self.output.to_dict() if self.output is not None else None,
            "version": self.version,
            "torch": self.torch,
        }
        if self.onnx is not None:
            data["onnx"] = dataclasses.asdict(self.onnx)
        if self.verified is not None:
            data["verified"] = self.verified
        return data

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "the model file") -> ModelMetadata:
        """Parse :meth:`to_dict` output, or the metadata of a file written before ``schema`` existed.

        Fields this version does not know are ignored; missing ones take their defaults.

        Args:
            data: The decoded JSON object.
            where: The file, for error messages.

        Raises:
            InputError: A newer schema than this version reads, or an ill-typed field (named).
        """
        if not isinstance(data, Mapping):
            raise InputError(
                f"{where}: its normexport metadata must be a JSON object, got {type(data).__name__}"
            )
        schema = data.get("schema", 1)  # files from before the schema number hold schema 1's fields
        if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
            raise _invalid(where, "schema", "a positive integer", schema)
        if schema > SCHEMA:
            raise InputError(
                f"{where} was written by a newer normexport (metadata schema {schema}, this one reads up "
                f"to {SCHEMA}); upgrade normresnet-export"
            )
        labels = _optional(data, "labels", list, where)
        if labels is not None and not all(isinstance(label, str) for label in labels):
            raise _invalid(where, "labels", "a list of strings or null", labels)
        precision = data.get("precision") or "float32"
        if precision not in PRECISIONS:
            raise _invalid(where, "precision", " or ".join(map(repr, PRECISIONS)), precision)
        preprocessing = _optional(data, "preprocessing", dict, where)
        if preprocessing:
            try:
                preprocessing = Preprocessing.from_dict(preprocessing)
            except InputError as exc:
                raise InputError(f"{where}: its normexport metadata holds an {exc}") from None
        kwargs = _optional(data, "model_kwargs", dict, where)
        fold = _optional(data, "fold", dict, where)
        shapes = {
            name: TensorSpec.from_dict(data[name], field=name, where=where) if data.get(name) else None
            for name in ("input", "output")
        }
        return cls(
            schema=schema,
            arch=_optional(data, "arch", str, where),
            model_kwargs=dict(kwargs) if kwargs is not None else None,
            preprocessing=preprocessing or None,
            labels=tuple(labels) if labels is not None else None,
            folded=bool(_optional(data, "folded", bool, where)),
            fold=copy.deepcopy(fold),
            precision=precision,
            input=shapes["input"],
            output=shapes["output"],
            version=_optional(data, "version", str, where),
            torch=_optional(data, "torch", str, where),
            onnx=OnnxRecord.from_dict(data["onnx"], where=where) if data.get("onnx") else None,
            verified=_optional(data, "verified", bool, where),
        )

    # ----------------------------------------------------------------------------------- encodings

    def to_onnx_props(self) -> dict[str, str]:
        """ONNX ``metadata_props`` entries: ``normexport.<field>`` → the field as JSON."""
        return {METADATA_PREFIX + key: json.dumps(value) for key, value in self.to_dict().items()}

    @classmethod
    def from_onnx_props(cls, properties: Mapping[str, str], *, where: str = "the ONNX file") -> ModelMetadata:
        """The record in ONNX metadata properties; entries without the ``normexport.`` prefix are ignored."""
        prefix = METADATA_PREFIX
        fields = {}
        for key, value in properties.items():
            if key.startswith(prefix):
                fields[key[len(prefix) :]] = _json(value, where, f"property {key!r}")
        return cls.from_dict(fields, where=where)

    def to_extra_files(self) -> dict[str, str]:
        """The TorchScript / ``.pt2`` extra files: ``normexport.json`` → every field as one JSON object."""
        return {EXTRA_FILE: json.dumps(self.to_dict())}

    @classmethod
    def from_extra_file(cls, raw: str | bytes, *, where: str = "the model file") -> ModelMetadata:
        """The record in a ``normexport.json`` extra file; an empty one (a foreign file) knows nothing."""
        return cls.from_dict(_json(raw, where, f"extra file {EXTRA_FILE}") if raw else {}, where=where)


def _json(text: str | bytes, where: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{where}: the normexport metadata in its {what} is not JSON ({exc.msg}); "
            "re-export the model with this normexport"
        ) from None


# --------------------------------------------------------------------------------------------- loading


def _where(data: bytes | str | os.PathLike[str]) -> str:
    return "the exported bytes" if isinstance(data, bytes) else str(data)


#: What each program format is called in the refusal of an untrusted file.
PROGRAM_KINDS = {"torchscript": "a TorchScript program", "pt2": "a torch.export program (.pt2)"}


def require_trust(where: str | os.PathLike[str], kind: str, trust_code: bool) -> None:
    """Refuse to load a program (``kind`` a key of :data:`PROGRAM_KINDS`) unless the caller trusts it.

    TorchScript and torch.export files are code: loading and calling one runs whatever its
    author put in it, reading or writing files included, whatever the file is named. Checkpoints
    and ONNX files hold only data and need no trust.

    Raises:
        InputError: ``trust_code`` is false; the message names the file and the opt-in.
    """
    if not trust_code:
        raise InputError(
            f"{where} is {PROGRAM_KINDS[kind]}, and loading it runs the code inside it; if you trust "
            "where it came from, pass --trust-code (trust_code=True in Python)"
        )


def load_torchscript(
    data: bytes | str | os.PathLike[str],
    map_location: torch.device | str | None = None,
    *,
    trust_code: bool = False,
) -> tuple[torch.jit.ScriptModule, ModelMetadata]:
    """Load a TorchScript file (or its bytes) and its metadata; a program, so only with ``trust_code``.

    ``torch.jit`` warns on every call that it is deprecated; the warning is silenced here because
    the format is still what libtorch (C++) loads. ``map_location`` places the module on a device:
    a frozen module's weights are constants, which ``.to(device)`` would not move.

    Raises:
        InputError: ``trust_code`` is false (see :func:`require_trust`).
    """
    require_trust(_where(data), "torchscript", trust_code)
    extra = {EXTRA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(
            io.BytesIO(data) if isinstance(data, bytes) else str(data),
            map_location=map_location,
            _extra_files=extra,
        )
    return module, ModelMetadata.from_extra_file(extra[EXTRA_FILE], where=_where(data))


def load_pt2(
    data: bytes | str | os.PathLike[str],
    device: torch.device | str | None = None,
    *,
    trust_code: bool = False,
) -> tuple[nn.Module, ModelMetadata]:
    """Load a ``.pt2`` file (or its bytes) as a callable module and its metadata, on ``device`` if given.

    A ``.pt2`` file is a program (its graph calls whatever operators its author chose), so it is
    loaded only with ``trust_code``.

    Raises:
        InputError: ``trust_code`` is false (see :func:`require_trust`).
    """
    require_trust(_where(data), "pt2", trust_code)
    extra = {EXTRA_FILE: ""}
    program = torch.export.load(io.BytesIO(data) if isinstance(data, bytes) else str(data), extra_files=extra)
    if device is not None and torch.device(device).type != "cpu":
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, torch.device(device))
    return program.module(), ModelMetadata.from_extra_file(extra[EXTRA_FILE], where=_where(data))
