"""Reading checkpoint-like files without running code from them.

Every file normexport accepts is first told apart by its content, never its name
(:func:`sniff`, :func:`zip_kind`): a safetensors file, a zip or legacy ``torch.save``
pickle, an ONNX graph, or an exported TorchScript / torch.export archive. :func:`read_file`
then reads tensors and plain data only (``torch.load(weights_only=True)`` or safetensors),
after :func:`~normresnet_export.files.torch_layout.read_layout` has checked the storages the file
declares against its size and the memory cap, so no file costs more memory than it holds (and
never more than the cap). A pickle that asks for Python classes is refused with the classes it
named (listed without executing it) and what they suggest the file is; every other failure of
torch's reader becomes one line saying the file is damaged. This sits below every room that
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

from normresnet_export.errors import CheckpointError, first_line
from normresnet_export.files import torch_layout
from normresnet_export.files.recognise import Recognised, recognise_unsafe_globals
from normresnet_export.files.torch_layout import read_layout, tensor_bytes, too_large


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
    except Exception:  # not a readable zip: torch_layout.read_layout says how it is damaged
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


def not_a_checkpoint(path: Path, what: str, hint: str) -> CheckpointError:
    """The refusal of a file that is something else than a checkpoint, with what to do instead."""
    return CheckpointError(f"{path} is not a normexport checkpoint: it looks like {what}; {hint}")


def load_safetensors(
    path: Path, map_location: str | torch.device, limit: int | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A safetensors file's tensors and header metadata (the library checks every offset against the file)."""
    from safetensors.torch import load_file

    cap = torch_layout.max_bytes(limit)
    if path.stat().st_size > cap:
        raise too_large(path, path.stat().st_size, cap)
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        return load_file(str(path), device=str(map_location)), header
    except Exception as exc:  # SafetensorError, OSError, ValueError, and whatever a crafted header provokes
        raise CheckpointError(f"{path} is a damaged safetensors file ({first_line(exc)})") from None


def _weights_only_globals() -> frozenset[str]:
    """The names ``torch.load(weights_only=True)`` accepts (tensors, storages, plain containers)."""
    try:
        from torch import _weights_only_unpickler as weights_only

        return frozenset(weights_only._get_allowed_globals()) | frozenset(
            weights_only._get_user_allowed_globals()
        )
    except Exception:  # a private table: without it, every name counts as an object (a longer message)
        return frozenset()


def _pickled_objects(path: Path, names: frozenset[str]) -> PickledObjectsError:
    seen = recognise_unsafe_globals(names)
    return PickledObjectsError(
        f"refused to load {path}: it is {seen.description}, and unpickling it would run code from the "
        f"file, which normexport never does; {seen.import_hint(str(path))}",
        seen,
    )


def _torch_detail(exc: BaseException) -> str:
    """What torch said went wrong, without its advice to retry with ``weights_only=False``."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [
        line
        for line in lines
        if "weights_only" not in line and "Weights only load failed" not in line and "torch.load" not in line
    ]
    return useful[0][:200] if useful else type(exc).__name__


def read_file(
    path: str | os.PathLike[str],
    *,
    map_location: str | torch.device = "cpu",
    max_bytes: int | None = None,
) -> tuple[Any, dict[str, str] | None]:
    """Read a checkpoint-like file without running code from it.

    Args:
        path: The file.
        map_location: Device for the tensors.
        max_bytes: The cap on the memory its tensors may take (default:
            :func:`~normresnet_export.files.torch_layout.max_bytes`: 8 GiB, or the
            ``NORMEXPORT_MAX_CHECKPOINT_BYTES`` environment variable). It is checked against what
            the file declares before anything is allocated.

    Returns:
        The object ``torch.load`` (weights only) returns, and ``None``; or, for a
        safetensors file, its tensors and its header metadata.

    Raises:
        PickledObjectsError: A pickle that asks for Python classes (named in the message).
        CheckpointError: A missing, damaged, truncated, oversized or exported (ONNX, TorchScript) file.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{path} is not a file")
    kind = sniff(path)
    if kind == "safetensors":
        return load_safetensors(path, map_location, max_bytes)
    if kind == "onnx":
        raise not_a_checkpoint(path, "an ONNX model (an exported file)", "run it with ONNX Runtime")
    if kind == "unknown":
        raise CheckpointError(f"{path} is not a PyTorch or safetensors file (damaged, or another format)")
    if kind == "zip" and (exported := zip_kind(path)):
        raise not_a_checkpoint(path, _EXPORTED[exported], "checkpoints are .pt files written by normexport")
    layout = read_layout(path, limit=max_bytes)
    unsafe = layout.globals - _weights_only_globals()
    if layout.kind == "raw":
        if unsafe:
            raise _pickled_objects(path, unsafe)
        raise CheckpointError(
            f"{path} is a plain Python pickle, not a file torch.save wrote; normexport reads torch.save "
            "and safetensors files"
        )
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if unsafe:
            raise _pickled_objects(path, unsafe) from None
        raise CheckpointError(f"{path} is damaged or not a PyTorch file ({_torch_detail(exc)})") from None
    except Exception as exc:  # torch raises many kinds on a damaged file; every one means the same
        if "deserialize object on" in str(exc):
            raise CheckpointError(f"cannot load {path} onto {map_location} ({_torch_detail(exc)})") from None
        raise CheckpointError(f"{path} is damaged or truncated ({_torch_detail(exc)})") from None
    claimed = tensor_bytes(obj)
    if claimed > layout.limit:
        raise too_large(path, claimed, layout.limit)
    return obj, None
