"""Reading checkpoint-like files without running code from them.

Every file normexport accepts is first told apart by its content, never its name
(:func:`sniff`, :func:`zip_kind`): a safetensors file, a zip or legacy ``torch.save``
pickle, an ONNX graph, or an exported TorchScript / torch.export archive. :func:`read_file`
then reads tensors and plain data only (``torch.load(weights_only=True)`` or safetensors).
A pickle that asks for Python classes is refused with the classes it named (listed
without executing it) and what they suggest the file is. This sits below every room that
reads files: the checkpoint format and the importers alike.
"""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch

from normresnet_export.errors import CheckpointError
from normresnet_export.files.recognise import Recognised, recognise_unsafe_globals


class PickledObjectsError(CheckpointError):
    """A pickle that asks for Python classes or functions (refused: unpickling would run code).

    Attributes:
        recognised: What the classes it asks for suggest the file is (read without executing it).
    """

    def __init__(self, message: str, recognised: Recognised) -> None:
        super().__init__(message)
        self.recognised = recognised


def sniff(path: Path) -> str:
    """Container type from the first bytes: ``zip``, ``safetensors``, ``pickle``, ``onnx`` or ``unknown``."""
    with path.open("rb") as handle:
        head = handle.read(16)
    size = path.stat().st_size
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] <= size - 8:
        return "safetensors"
    if head[:1] == b"\x80":
        return "pickle"
    if head[:1] == b"\x08" and path.suffix == ".onnx":
        return "onnx"
    return "unknown"


def zip_kind(path: Path) -> str | None:
    """``torchscript`` or ``pt2`` for exported archives; ``None`` for others (e.g. torch.save files)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return None
    if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
        return "torchscript"
    if any(n.endswith(("serialized_exported_program.json", "archive_format")) for n in names):
        return "pt2"
    return None


_EXPORTED = {
    "torchscript": "a TorchScript archive (an exported model, not a checkpoint; run it with torch.jit.load)",
    "pt2": "a torch.export archive (.pt2, an exported model, not a checkpoint)",
}


def _unsafe_globals(path: Path) -> list[str]:
    """Classes a zip-format pickle would instantiate, read without executing it."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:
        return []


def not_a_checkpoint(path: Path, what: str, hint: str) -> CheckpointError:
    return CheckpointError(f"{path} is not a normexport checkpoint: it looks like {what}; {hint}")


def load_safetensors(
    path: Path, map_location: str | torch.device
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        return load_file(str(path), device=str(map_location)), header
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is a damaged safetensors file ({exc})") from None


def read_file(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> tuple[Any, dict[str, str] | None]:
    """Read a checkpoint-like file without running code from it.

    Returns:
        The object ``torch.load`` (weights only) returns, and ``None``; or, for a
        safetensors file, its tensors and its header metadata.

    Raises:
        PickledObjectsError: A pickle that asks for Python classes (named in the message).
        CheckpointError: A missing, damaged, truncated or exported (ONNX, TorchScript) file.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{path} is not a file")
    kind = sniff(path)
    if kind == "safetensors":
        return load_safetensors(path, map_location)
    if kind == "onnx":
        raise not_a_checkpoint(path, "an ONNX model (an exported file)", "run it with ONNX Runtime")
    if kind == "unknown":
        raise CheckpointError(f"{path} is not a PyTorch or safetensors file (damaged, or another format)")
    if kind == "zip" and (exported := zip_kind(path)):
        raise not_a_checkpoint(path, _EXPORTED[exported], "checkpoints are .pt files written by normexport")
    try:
        return torch.load(path, map_location=map_location, weights_only=True), None
    except pickle.UnpicklingError as exc:
        unsafe = _unsafe_globals(path) if kind == "zip" else []
        if unsafe:
            seen = recognise_unsafe_globals(unsafe)
            raise PickledObjectsError(
                f"refused to load {path}: it is {seen.description}, and unpickling it would run code "
                f"from the file; {seen.import_hint(str(path))}",
                seen,
            ) from None
        if "Unsupported global" in str(exc) or "Unsupported operand" in str(exc):
            raise PickledObjectsError(
                f"refused to load {path}: it holds pickled Python objects, and unpickling them would run "
                "code from the file; normexport loads only tensors and plain data",
                recognise_unsafe_globals([]),
            ) from None
        raise CheckpointError(
            f"{path} is damaged or not a PyTorch file ({str(exc).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path} is damaged or truncated ({first})") from None
