"""The normexport checkpoint: one file with a model's weights and everything needed to use it.

A checkpoint is ``torch.save`` of a dict that loads with ``torch.load(weights_only=True)``::

    format: "normexport.checkpoint"    version: 1
    arch: str                          model_kwargs: dict (complete: every builder keyword)
    folded: bool                       state_dict: dict[str, Tensor]
    preprocessing: dict | None         labels: list[str] | None
    metrics: dict                      train_state: dict | None
    versions: dict                     (normexport and torch that wrote it)
    fold_report: dict | None           (folded checkpoints: what was folded, measured deviations)
    stream_bn_removed: list[str]       (folded checkpoints: the residual-stream BatchNorms removed)

A folded checkpoint holds the state_dict of the folded network. It is loaded by building
``arch`` shape-only (meta device), folding that structure, and loading the weights into it.
Which residual-stream BatchNorms the fold removed depends on their values, so the file
lists them and the rebuild removes exactly those; a folded file written before that pass
existed has no list and rebuilds with every such BatchNorm kept, as it was folded.

A ``.safetensors`` file holds the same weights with the other fields as JSON in its
header (``__metadata__["normexport"]``); it is the format for distributing weights and
cannot hold ``train_state``.

Safety: nothing here unpickles code. A file whose pickle asks for Python classes is
refused with the list of classes it wanted (read without executing it), and a file
from another tool is recognised and named, with the command that imports it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from normresnet_export._io import atomic_write, check_output
from normresnet_export._version import __version__
from normresnet_export.errors import CheckpointError, InputError, first_line
from normresnet_export.files.reading import not_a_checkpoint, read_file
from normresnet_export.files.recognise import NORMEXPORT_FORMAT, recognise, recognise_state_dict
from normresnet_export.fold import FoldReport, fold_model, stream_bn_removed
from normresnet_export.models import build_record, create_model, model_info
from normresnet_export.preprocess import Preprocessing

FORMAT = NORMEXPORT_FORMAT
VERSION = 1
SAFETENSORS_SUFFIX = ".safetensors"


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        model: The rebuilt model with its weights, in eval mode.
        arch: Registered model name.
        model_kwargs: Every builder keyword the model was built with.
        folded: Whether the weights are those of the folded model.
        preprocessing: How inputs were prepared in evaluation, or ``None`` if unknown.
        labels: Class names, or ``None``.
        metrics: Recorded metrics (e.g. ``top1``, ``epoch``).
        train_state: Optimizer/scheduler/RNG state for resuming training, or ``None``.
        versions: Versions of normexport and torch that wrote the file.
        fold_report: For a folded model, the fold report as a dict
            (``normresnet_export.fold.FoldReport.from_dict`` rebuilds it).
        path: The file it was read from.
    """

    model: nn.Module
    arch: str
    model_kwargs: dict[str, Any]
    folded: bool = False
    preprocessing: Preprocessing | None = None
    labels: list[str] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    train_state: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=dict)
    fold_report: dict[str, Any] | None = None
    path: Path | None = None

    @property
    def num_classes(self) -> int:
        """Size of the classifier (0 when the model returns features)."""
        return int(self.model_kwargs["num_classes"])

    @property
    def input_size(self) -> tuple[int, ...]:
        """Model input (C, H, W): the recorded preprocessing's, else the architecture's design size."""
        if self.preprocessing is not None:
            return tuple(self.preprocessing.input_size)
        return model_info(self.arch).input_size

    def save(
        self, path: str | os.PathLike[str], *, inputs: Sequence[str | os.PathLike[str] | None] = ()
    ) -> Path:
        """Write this checkpoint to ``path`` (``.safetensors`` drops ``train_state``).

        ``inputs`` are the files it was made from, which ``path`` may not be (see :func:`save_checkpoint`).
        """
        return save_checkpoint(
            path,
            self.model,
            inputs=inputs,
            arch=self.arch,
            model_kwargs=self.model_kwargs,
            preprocessing=self.preprocessing,
            labels=self.labels,
            metrics=self.metrics,
            train_state=None if str(path).endswith(SAFETENSORS_SUFFIX) else self.train_state,
            folded=self.folded,
            fold_report=self.fold_report,
        )


# --------------------------------------------------------------------------------------------- save


def describe_mismatch(expected: Mapping[str, Any], given: Mapping[str, Any]) -> str:
    """Summarise how two ``{name: tensor-or-shape}`` maps differ: missing, unexpected, wrong shapes.

    Lists the first few keys of each kind with shapes, so a mismatch message shows what was
    expected and what was found.
    """

    def shape(v: Any) -> list[int]:
        return list(v.shape) if hasattr(v, "shape") else list(v)

    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    wrong = [
        f"{k} {shape(given[k])} (expected {shape(expected[k])})"
        for k in expected
        if k in given and shape(given[k]) != shape(expected[k])
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            shown = ", ".join(items[:3]) + (f", … ({len(items)} in all)" if len(items) > 3 else "")
            parts.append(f"{label}: {shown}")
    return "; ".join(parts)


def _configuration(module: nn.Module) -> tuple[str, str]:
    """A module's type and configuration (strides, paddings, tau, …), minus BatchNorm's momentum.

    Momentum is a training setting that users change freely (BN calibration sets it to
    None); it does not change what the saved model computes.
    """
    return type(module).__name__, re.sub(r"momentum=[^,]*, ", "", module.extra_repr())


def model_shapes(
    arch: str, model_kwargs: dict[str, Any], *, folded: bool, stream_bn_removed: Sequence[str] = ()
) -> nn.Module:
    """The model ``arch`` describes, folded if asked, built on the meta device (shapes only, no memory).

    ``stream_bn_removed``: the residual-stream BatchNorms the fold removed (a folded
    checkpoint's record); the others stay, as per-channel affines.
    """
    with torch.device("meta"):
        model = create_model(arch, **model_kwargs).eval()
    if folded:
        model = fold_model(model, check=False, stream_bn_removed=stream_bn_removed).model
    return model


def _check_model_matches(model: nn.Module, arch: str, model_kwargs: dict[str, Any], *, folded: bool) -> None:
    """Refuse to save a model that ``arch`` + ``model_kwargs`` (+ folding) would not rebuild.

    Compares, against a shape-only (meta device) build, the state-dict keys and shapes and
    every module's type and configuration.
    """
    removed = stream_bn_removed(model) if folded else []
    reference = model_shapes(arch, model_kwargs, folded=folded, stream_bn_removed=removed)
    problem = describe_mismatch(reference.state_dict(), model.state_dict())
    if not problem:
        ours = {name: _configuration(m) for name, m in model.named_modules()}
        for name, module in reference.named_modules():
            spec = _configuration(module)
            if ours.get(name) != spec:
                problem = f"module {name or '<root>'} is {ours.get(name)}, expected {spec}"
                break
    if problem:
        what = "the folded model" if folded else "the model"
        raise InputError(
            f"{what} is not what arch {arch!r} with model_kwargs {model_kwargs} builds ({problem}); "
            "pass the arch and model_kwargs the model was created with"
            + ("" if folded else ", and folded=True for a model returned by fold_model")
        )


def _check_metadata(
    num_classes: int, labels: list[str] | None, metrics: Mapping[str, Any] | None
) -> tuple[list[str] | None, dict[str, Any]]:
    if labels is not None:
        labels = list(labels)
        if not all(isinstance(label, str) for label in labels):
            raise InputError("labels must be a list of strings")
        if num_classes and len(labels) != num_classes:
            raise InputError(f"got {len(labels)} labels for a model with {num_classes} classes")
    metrics = dict(metrics or {})
    for key, value in metrics.items():
        if not isinstance(key, str) or not isinstance(value, (bool, int, float, str)):
            raise InputError(
                f"metric {key!r} must map a string to a number or string, got {type(value).__name__}"
            )
    return labels, metrics


def _shareable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """CPU copy of the state_dict in which no two entries share memory (safetensors refuses aliases)."""
    seen: set[tuple[int, int]] = set()
    out = {}
    for key, value in model.state_dict().items():
        tensor = value.detach().cpu().contiguous()
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        out[key] = tensor.clone() if ident in seen else tensor
        seen.add(ident)
    return out


def _safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """``safetensors.torch.save`` with the header's ``__metadata__`` keys in sorted order.

    safetensors writes the metadata map in hash order, which changes from process to
    process, so the same weights saved twice gave files with different sha256 digests (and
    a rebuild of the shipped weights rewrote the registry's digests although nothing had
    changed). The header is a JSON object after an 8-byte little-endian length; it is written
    again with the same tensor entries in the same order, the metadata sorted, and padded with
    spaces to a multiple of 8 bytes as safetensors pads it. The tensor data after it is untouched.
    """
    from safetensors.torch import save

    blob = save(tensors, metadata=metadata)
    length = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + length])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    header = {"__metadata__": header.pop("__metadata__"), **header}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + blob[8 + length :]


def _builder_keywords(
    model: nn.Module, arch: str | None, model_kwargs: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """The arch and complete keywords to record: the caller's, checked against what create_model recorded."""
    recorded = build_record(model)
    if arch is None and recorded is None:
        raise InputError(
            "save_checkpoint needs arch= (the registered name) for a model that create_model did not "
            "build; pass arch and model_kwargs, or build the model with nx.create_model"
        )
    if arch is not None:
        model_info(arch)  # an unknown name is that, whatever the model
    if recorded is not None and arch is not None and arch != recorded[0]:
        raise InputError(
            f"arch={arch!r} contradicts the model, which create_model built as {recorded[0]!r}; "
            "leave arch out (it is recorded on the model) or save the model it names"
        )
    given = dict(model_kwargs or {})
    if recorded is None:
        return arch, model_info(arch).resolve_kwargs(**given)  # type: ignore[arg-type]
    built, built_kwargs = recorded
    kwargs = model_info(built).resolve_kwargs(**given)
    # Only the keywords the caller gave are compared: the rest are the recorded ones.
    differ = [
        f"{key}={kwargs[key]!r} (built with {built_kwargs.get(key)!r})"
        for key in given
        if kwargs[key] != built_kwargs.get(key)
    ]
    if differ:
        raise InputError(
            f"model_kwargs contradict the keywords create_model built the model with: {', '.join(differ)}; "
            "leave model_kwargs out (they are recorded on the model)"
        )
    return built, built_kwargs


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    arch: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    preprocessing: Preprocessing | None = None,
    labels: list[str] | None = None,
    metrics: Mapping[str, Any] | None = None,
    train_state: Mapping[str, Any] | None = None,
    folded: bool = False,
    fold_report: Mapping[str, Any] | None = None,
    inputs: Sequence[str | os.PathLike[str] | None] = (),
) -> Path:
    """Write ``model`` and its metadata to ``path``, atomically.

    A path ending in ``.safetensors`` writes the distribution format; anything else a
    ``torch.save`` file. ``model_kwargs`` is completed with the builder's defaults before
    it is stored, so the file rebuilds the same model even if a default changes later. A
    model built by :func:`normresnet_export.create_model` (or folded from one) carries its
    name and keywords, so ``arch`` and ``model_kwargs`` can be left out for it.

    Args:
        path: Destination file, in an existing directory; a link, a device or another non-file
            there is refused (see :func:`normresnet_export._io.check_output`).
        model: A model built by :func:`normresnet_export.create_model` (any device, any mode).
        arch: Its registered name; default: the one ``create_model`` recorded on the model.
        model_kwargs: The keywords it was built with (defaults filled in); default: the ones
            ``create_model`` recorded (``{}``, the defaults, for a model built another way).
        preprocessing: Evaluation preprocessing; recorded so exports and ``predict`` reuse it.
        labels: Class names, one per output.
        metrics: Numbers or strings to record (``top1``, ``epoch``, …).
        train_state: Optimizer/scheduler/RNG state (``torch.save`` format only).
        folded: ``model`` is the result of ``fold_model`` on a model of ``arch``.
        fold_report: The fold's report (``FoldReport.to_dict()``), stored with a folded model.
        inputs: The files the checkpoint was made from; ``path`` may not be one of them (a fold or
            an import written over its source would lose it).

    Returns:
        The path written.

    Raises:
        UnknownModelError: ``arch`` is not registered.
        InputError: No ``arch`` for a model ``create_model`` did not build, an ``arch`` or
            ``model_kwargs`` that contradicts what it recorded, a model that does not match
            ``arch``/``model_kwargs``, bad labels or metrics,
            ``train_state`` with a ``.safetensors`` path, or an output path refused by
            :func:`normresnet_export._io.check_output`.
    """
    path = check_output(path, inputs=inputs)
    arch, kwargs = _builder_keywords(model, arch, model_kwargs)
    if fold_report is not None and not folded:
        raise InputError("a fold_report belongs to a folded model; pass folded=True")
    _check_model_matches(model, arch, kwargs, folded=folded)
    labels, metrics_dict = _check_metadata(int(kwargs.get("num_classes", 0)), labels, metrics)
    if preprocessing is not None and not isinstance(preprocessing, Preprocessing):
        raise InputError(f"preprocessing must be a Preprocessing, got {type(preprocessing).__name__}")
    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "arch": arch,
        "model_kwargs": kwargs,
        "folded": folded,
        "fold_report": dict(fold_report) if fold_report is not None else None,
        **({"stream_bn_removed": stream_bn_removed(model)} if folded else {}),
        "preprocessing": preprocessing.to_dict() if preprocessing else None,
        "labels": labels,
        "metrics": metrics_dict,
        "versions": {"normexport": str(__version__), "torch": str(torch.__version__)},
    }
    if path.suffix == SAFETENSORS_SUFFIX:
        if train_state is not None:
            raise InputError(
                "a .safetensors file cannot hold train_state; save a .pt checkpoint to resume training"
            )
        blob = _safetensors_bytes(
            _shareable_state_dict(model), metadata={"format": FORMAT, "normexport": json.dumps(meta)}
        )
        with atomic_write(path, inputs=inputs) as handle:
            handle.write(blob)
        return path
    payload = {
        **meta,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "train_state": dict(train_state) if train_state is not None else None,
    }
    with atomic_write(path, inputs=inputs) as handle:
        torch.save(payload, handle)
    return path


# --------------------------------------------------------------------------------------------- load


def _read_payload(path: Path, map_location: str | torch.device, max_bytes: int | None) -> dict[str, Any]:
    """Read a file into the checkpoint dict, refusing foreign, damaged, oversized and unsafe files."""
    obj, header = read_file(path, map_location=map_location, max_bytes=max_bytes)
    if header is not None:
        return _safetensors_payload(path, obj, header)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        seen = recognise(obj)
        raise not_a_checkpoint(path, seen.description, seen.import_hint(str(path)))
    return obj


def _safetensors_payload(
    path: Path, tensors: dict[str, torch.Tensor], header: dict[str, str]
) -> dict[str, Any]:
    if header.get("format") != FORMAT or "normexport" not in header:
        seen = recognise_state_dict(tensors)
        raise not_a_checkpoint(path, f"{seen.description} in safetensors format", seen.import_hint(str(path)))
    try:
        meta = json.loads(header["normexport"])
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"{path}: the normexport metadata in the safetensors header is not JSON ({exc})"
        ) from None
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"{path}: the normexport metadata in the safetensors header is not a JSON object"
        )
    return {**meta, "state_dict": tensors, "train_state": None}


def _field(payload: Mapping[str, Any], name: str, types: type | tuple[type, ...], path: Path) -> Any:
    value = payload.get(name)
    if not isinstance(value, types):
        expected = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise CheckpointError(f"{path}: field {name!r} must be {expected}, got {type(value).__name__}")
    return value


def check_contents(model: nn.Module, labels: Sequence[str] | None, num_classes: int, *, where: str) -> None:
    """Refuse a model that would answer wrongly without an error: non-finite weights, wrong labels.

    A NaN or inf anywhere in the weights or buffers (a training that diverged, a damaged file)
    makes every output NaN, and labels that are not one per class name some classes and number
    the others. Both are found here, when the model is loaded, rather than by the table of
    ``nan`` a prediction prints or the fold that fails after its work.

    Args:
        model: The rebuilt model with its weights.
        labels: Its class names, or ``None``.
        num_classes: The classifier's size (0: a model that returns features; labels unchecked).
        where: The file, for the message.

    Raises:
        CheckpointError: Labels of the wrong length, or the first tensor holding non-finite values.
    """
    if labels is not None and num_classes and len(labels) != num_classes:
        raise CheckpointError(
            f"{where}: field 'labels' has {len(labels)} entries for a model with {num_classes} classes; "
            "save the checkpoint again with one label per class (or none)"
        )
    damaged = []
    for name, tensor in model.state_dict().items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not tensor.is_meta:
            count = int((~torch.isfinite(tensor)).sum())
            if count:
                damaged.append((name, count, tensor.numel()))
    if damaged:
        name, count, size = damaged[0]
        others = f" (and {len(damaged) - 1} more tensors)" if len(damaged) > 1 else ""
        raise CheckpointError(
            f"{where}: tensor {name!r} holds {count} non-finite values (NaN or inf) of {size}{others}; the "
            "weights are damaged or the training diverged: use an earlier checkpoint or train again"
        )


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    map_location: str | torch.device = "cpu",
    max_bytes: int | None = None,
) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` and rebuild its model.

    Only tensors and plain data are unpickled (``weights_only=True``), so loading a file
    cannot run code from it; and the memory its tensors may take is capped, checked against
    what the file declares before anything is allocated.

    Args:
        path: A ``.pt`` or ``.safetensors`` checkpoint.
        map_location: Device for the tensors (default CPU, so files saved on ``cuda:N``
            load on any machine).
        max_bytes: The cap on that memory (default 8 GiB, or the environment variable
            ``NORMEXPORT_MAX_CHECKPOINT_BYTES``; see :mod:`normresnet_export.files.torch_layout`).

    Returns:
        The checkpoint, with its model in eval mode.

    Raises:
        CheckpointError: Missing, damaged, unsafe or foreign file (the message says what it
            looks like and how to import it), fields that do not describe a model, labels
            that are not one per class, or weights that are not finite (:func:`check_contents`).
    """
    path = Path(path)
    payload = _read_payload(path, map_location, max_bytes)
    version = payload.get("version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: field 'version' must be a positive integer, got {version!r}")
    if version > VERSION:
        raise CheckpointError(
            f"{path} was written by a newer normexport (format version {version}, this one reads up to "
            f"{VERSION}); upgrade normresnet-export"
        )
    arch = _field(payload, "arch", str, path)
    kwargs = _field(payload, "model_kwargs", dict, path)
    state_dict = _field(payload, "state_dict", dict, path)
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
        raise CheckpointError(f"{path}: field 'state_dict' must map names to tensors")
    folded = _field(payload, "folded", bool, path)
    kind = "folded " if folded else ""
    removed = payload.get("stream_bn_removed") or []  # absent: folded before stream BatchNorms were removed
    if not (isinstance(removed, list) and all(isinstance(name, str) for name in removed)):
        raise CheckpointError(f"{path}: field 'stream_bn_removed' must be a list of module names")
    try:
        preprocessing = (
            Preprocessing.from_dict(payload["preprocessing"]) if payload.get("preprocessing") else None
        )
        # Shapes first, on meta (no memory): model_kwargs from a file may describe a model far larger
        # than its weights (num_classes=10**9), which must be refused before it is allocated.
        shapes = model_shapes(arch, kwargs, folded=folded, stream_bn_removed=removed)
    except InputError as exc:  # unknown arch, bad keywords, bad preprocessing
        raise CheckpointError(f"{path}: {exc}") from None
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:  # keywords of the wrong kind
        raise CheckpointError(
            f"{path}: field 'model_kwargs' does not build arch {arch!r} ({first_line(exc)})"
        ) from None
    mismatch = describe_mismatch(shapes.state_dict(), state_dict)
    if mismatch:
        raise CheckpointError(
            f"{path}: the weights do not fit {kind}arch {arch!r} with {kwargs} ({mismatch})"
        )
    # The folded structure has its weights loaded below: building it on meta skips a random init.
    model = shapes.to_empty(device=map_location) if folded else create_model(arch, **kwargs)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        detail = describe_mismatch(model.state_dict(), state_dict) or str(exc).splitlines()[-1].strip()
        raise CheckpointError(
            f"{path}: the weights do not fit {kind}arch {arch!r} with {kwargs} ({detail})"
        ) from None
    labels = payload.get("labels")
    if labels is not None and not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
        raise CheckpointError(f"{path}: field 'labels' must be a list of strings or null")
    check_contents(model, labels, int(kwargs.get("num_classes", 0)), where=str(path))
    return Checkpoint(
        model=model.eval(),
        arch=arch,
        model_kwargs=kwargs,
        folded=folded,
        preprocessing=preprocessing,
        labels=labels,
        metrics=dict(payload.get("metrics") or {}),
        train_state=payload.get("train_state"),
        versions=dict(payload.get("versions") or {}),
        fold_report=payload.get("fold_report"),
        path=path,
    )


def fold_checkpoint(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    input_size: Sequence[int] | None = None,
    keep_stream_bn: bool = False,
) -> FoldReport:
    """Fold the model of a checkpoint and write a folded checkpoint (only if the check passes).

    The check runs at ``input_size``, by default the checkpoint's preprocessing size or
    else the architecture's design size. A failed check writes nothing; the caller reads
    ``report.passed`` (the CLI exits with 1). ``keep_stream_bn`` keeps the residual-stream
    BatchNorms as per-channel affines (see :func:`~normresnet_export.fold.fold_model`).

    Raises:
        InputError: ``destination`` is ``source`` (the fold would replace the trained checkpoint,
            training state and all) or is otherwise refused by
            :func:`normresnet_export._io.check_output`: checked before the fold starts.
    """
    check_output(destination, inputs=[source])
    checkpoint = load_checkpoint(source)
    if checkpoint.folded:
        raise InputError(f"{source} is already folded")
    result = fold_model(
        checkpoint.model, input_size=input_size or checkpoint.input_size, keep_stream_bn=keep_stream_bn
    )
    if result.report.passed:
        folded = dataclasses.replace(
            checkpoint, model=result.model, folded=True, fold_report=result.report.to_dict(), train_state=None
        )
        folded.save(destination, inputs=[source])
    return result.report
