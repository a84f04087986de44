"""The layout of a ``torch.save`` file, read without running anything from it, and what it may cost.

``torch.save`` writes one of two layouts. The zip archive (PyTorch >= 1.6) holds ``data.pkl``
and one entry ``data/<key>`` per storage. The legacy layout (PyTorch < 1.6, or
``_use_new_zipfile_serialization=False``; what tau-ResNet's PyTorch 1.0 scripts wrote) is a
sequence of pickles (magic number, protocol version, system information, the object, the list
of storage keys) followed by each storage's element count and raw little-endian bytes. Either
way the object pickle names its storages by persistent ids
``('storage', type, key, location, numel[, view])``.

:func:`read_layout` reads that structure with a *dry* unpickler, in which every name a pickle asks
for becomes an inert placeholder, so nothing the file names is imported or called. It returns
the names the pickles ask for (to tell a file of tensors from one of Python objects) and the
storages they declare, after checking them against the file *before any tensor is allocated*:
each declared storage must be in the file, whole, and all of them together under a cap
(:func:`max_bytes`). Without that, a 5 MB zip holding a compressed 1 GiB tensor, or a pickle
declaring storages its file does not hold, costs gigabytes of memory before it is refused.
Every read is bounded by the file's size, so a length field cannot make Python allocate more.
"""

from __future__ import annotations

import _compat_pickle
import io
import os
import pickle
import struct
import tarfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import torch

from normresnet_export.errors import CheckpointError, InputError, NormexportError, first_line

#: The environment variable that sets the cap on what reading one file may allocate, in bytes.
MAX_BYTES_VARIABLE = "NORMEXPORT_MAX_CHECKPOINT_BYTES"

#: The default cap: 8 GiB. The largest model in the registry (LeNo-ResNet-500, 152 M parameters)
#: takes 0.6 GiB, 1.7 GiB with Adam's training state, so real checkpoints pass with room for much
#: larger imported models, while a file that asks for more is refused before it can exhaust a
#: workstation's memory. Raise it through :data:`MAX_BYTES_VARIABLE` or the ``max_bytes``
#: parameter of the readers.
DEFAULT_MAX_BYTES = 8 * 2**30

#: How many times its own size a zip file may grow when unpacked. ``torch.save`` stores its
#: entries uncompressed (1x); weights that someone re-compressed shrink by well under 2x, so a
#: file that unpacks to more than 4x its size is a zip bomb, not a checkpoint.
MAX_EXPANSION = 4

#: Files this small may unpack to this much whatever their ratio (a tiny model of zeros
#: compresses well, and 64 MiB harms no machine).
SMALL_FILE_ALLOWANCE = 64 * 2**20

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # the first pickle of a legacy torch.save file
_PROTOCOL_VERSION = 1001  # the second


def max_bytes(limit: int | None = None) -> int:
    """The cap on the bytes reading one file may allocate: ``limit``, else the environment, else 8 GiB.

    Raises:
        InputError: ``limit`` or :data:`MAX_BYTES_VARIABLE` is not a positive whole number of bytes.
    """
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InputError(f"max_bytes must be a positive number of bytes, got {limit!r}")
        return limit
    text = os.environ.get(MAX_BYTES_VARIABLE, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise InputError(
            f"{MAX_BYTES_VARIABLE} must be a positive whole number of bytes, got {text!r}; "
            f"unset it for the default ({DEFAULT_MAX_BYTES}) or set e.g. {2 * DEFAULT_MAX_BYTES}"
        )
    return int(text)


def gib(size: int) -> str:
    """A byte count for a message: ``1.0 GiB``, ``12.5 MiB``, ``300 bytes``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def too_large(path: Path, size: int, limit: int) -> CheckpointError:
    """The refusal of a file whose tensors need more than the cap, with the way to raise it."""
    return CheckpointError(
        f"{path} would need {gib(size)} of memory for its tensors, more than the limit of {gib(limit)}; "
        f"if you trust the file, raise the limit with {MAX_BYTES_VARIABLE}=BYTES (or max_bytes=)"
    )


def tensor_bytes(obj: Any) -> int:
    """The memory the tensors in a loaded object claim: shape times element size, views each counted.

    A tensor may claim far more than its storage holds (a stride of 0 repeats one element), and
    what is built from it (a classifier of that many rows, say) is then as large as the claim.
    Containers and objects' attributes are walked without recursion, each object once.
    """
    total = 0
    seen: set[int] = set()
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, (str, bytes, int, float, bool, type(None))):
            continue
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, torch.Tensor):
            try:
                total += item.numel() * item.element_size()
            except RuntimeError:  # layouts without a plain element count (nested tensors) hold their storage
                total += item.untyped_storage().nbytes()
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif not isinstance(item, type) and isinstance(getattr(item, "__dict__", None), dict):
            stack.extend(vars(item).values())
    return total


# ------------------------------------------------------------------------------------ bounded reads


class BoundedReader:
    """A read-only window on a file that never reads, or allocates, past ``end``.

    ``pickle`` allocates what a length field asks for before reading it; through this window a
    length past the end of the file yields a short read (an error), never a huge buffer.
    """

    def __init__(self, handle: BinaryIO, end: int) -> None:
        self._handle = handle
        self._end = end

    def _left(self, wanted: int | None) -> int:
        left = max(self._end - self._handle.tell(), 0)
        return left if wanted is None or wanted < 0 else min(wanted, left)

    def read(self, size: int | None = -1) -> bytes:
        return self._handle.read(self._left(size))

    def readline(self, size: int | None = -1) -> bytes:
        return self._handle.readline(self._left(size))


# ----------------------------------------------------------------------------- persistent ids


@dataclass(frozen=True, slots=True)
class StorageType:
    """A ``torch.<X>Storage`` name in a pickle: only its element type matters."""

    name: str
    dtype: torch.dtype


def storage_type(path: str) -> StorageType | None:
    """The storage type a pickled global ``torch.<X>Storage`` names, or ``None`` for other names."""
    module, _, name = path.rpartition(".")
    if module != "torch" or not name.endswith("Storage"):
        return None
    if name == "UntypedStorage":
        return StorageType(name, torch.uint8)
    try:
        return StorageType(name, torch.storage._get_dtype_from_pickle_storage_type(name))
    except KeyError:
        return None


@dataclass(frozen=True)
class DeclaredStorage:
    """A storage a pickle's persistent id declares.

    Attributes:
        key: Its name in the file (the zip entry ``data/<key>``, or its legacy section).
        dtype: The element type.
        numel: Its number of elements.
        view: Legacy files of old PyTorch only: ``(view_key, offset, size)``, in elements.
    """

    key: str
    dtype: torch.dtype
    numel: int
    view: tuple[str, int, int] | None = None

    @property
    def nbytes(self) -> int:
        return self.numel * torch._utils._element_size(self.dtype)


def _text(value: Any, what: str) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        raise pickle.UnpicklingError(f"the {what} of a storage is a {type(value).__name__}, not a string")
    return value


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise pickle.UnpicklingError(f"the {what} of a storage is {value!r}, not a count")
    return value


def parse_persistent_id(pid: Any) -> DeclaredStorage | tuple[str, Any]:
    """What a persistent id says: a storage, or (legacy whole-model files) ``('module', class)``.

    Raises:
        pickle.UnpicklingError: Anything else (the file is damaged or was not written by torch.save).
    """
    if not isinstance(pid, tuple) or not pid:
        raise pickle.UnpicklingError("a persistent id that is not a tuple")
    typename = _text(pid[0], "kind")
    if typename == "module" and len(pid) == 4:  # legacy: (module, class, source file, source); never run
        return ("module", pid[1])
    if typename != "storage" or len(pid) not in (5, 6):
        raise pickle.UnpicklingError(f"a persistent id of kind {typename!r} with {len(pid)} fields")
    kind, key, numel = pid[1], _text(pid[2], "key"), _count(pid[4], "size")
    if not isinstance(kind, StorageType):
        raise pickle.UnpicklingError("a storage whose type is not a torch storage type")
    view = pid[5] if len(pid) == 6 else None
    if view is not None:
        if not (isinstance(view, tuple) and len(view) == 3):
            raise pickle.UnpicklingError("a storage view that is not (key, offset, size)")
        view = (_text(view[0], "view key"), _count(view[1], "view offset"), _count(view[2], "view size"))
        if view[1] + view[2] > numel:
            raise pickle.UnpicklingError(f"a view of storage {key} past its {numel} elements")
    _text(pid[3], "location")  # the device it was saved from: read as a string, never used
    return DeclaredStorage(key, kind.dtype, numel, view)


def global_name(module: str, name: str) -> str:
    """The dotted name of a pickled global, with Python 2 names mapped as ``pickle`` itself does."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    else:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f"{module}.{name}"


# ------------------------------------------------------------------------------------ dry scan


class SafeUnpickler(pickle._Unpickler):  # type: ignore[name-defined,misc]
    """Python's own unpickler in its pure-Python form, with what lets a small pickle cost a lot closed.

    The C unpickler keeps its memo in an array as long as the largest index a ``PUT`` names: a
    16 KiB pickle whose index reads 10**9 makes it allocate and clear gigabytes (found by
    ``tests/test_fuzz.py``). The pure-Python one keeps a dict. Its ``BYTEARRAY8`` zero-fills as
    many bytes as the length field says before reading them; here the bytes are read first. And
    ``BUILD`` calls ``__setstate__`` on whatever object it is given (a tensor's re-points it at
    any storage): here only the objects a subclass accepts (:meth:`accepts_state`) take a state.
    Reading both passes of a file with the same parser also means both see the same ids.
    """

    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def accepts_state(self, obj: Any) -> bool:
        """Whether ``BUILD`` may give ``obj`` a state (nothing, unless a subclass says so)."""
        return False

    def load(self) -> Any:
        try:
            return super().load()
        except KeyError as exc:  # the pure-Python machine's way of meeting a byte that is no opcode
            if exc.args and isinstance(exc.args[0], int):
                raise pickle.UnpicklingError(f"invalid opcode {exc.args[0]:#04x}") from None
            raise

    def load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if not self.accepts_state(target):
            raise pickle.UnpicklingError(f"the pickle sets the state of a {type(target).__name__}")
        target.__setstate__(state)

    dispatch[pickle.BUILD[0]] = load_build

    def load_bytearray8(self) -> None:
        (size,) = struct.unpack("<Q", self.read(8))
        data = self.read(size)
        if len(data) != size:
            raise pickle.UnpicklingError(f"a byte array of {size} bytes in a shorter pickle")
        self.append(bytearray(data))

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8


class _Placeholder:
    """What the dry scan makes of anything a pickle names: calling, building or filling it does nothing."""

    def __init__(self, *_: Any, **__: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass

    def add(self, item: Any) -> None:
        pass


class _DryUnpickler(SafeUnpickler):
    """Reads a pickle's structure: every global is a placeholder class, every storage a record."""

    def __init__(self, file: Any, scan: Scan) -> None:
        super().__init__(file, encoding="utf-8")
        self._scan = scan
        self._classes: dict[str, type] = {}

    def accepts_state(self, obj: Any) -> bool:
        return isinstance(obj, _Placeholder)

    def find_class(self, module: str, name: str) -> Any:
        path = global_name(module, name)
        self._scan.globals.add(path)
        kind = storage_type(path)
        if kind is not None:
            return kind
        if path not in self._classes:
            self._classes[path] = type("Placeholder", (_Placeholder,), {"pickled_name": path})
        return self._classes[path]

    def persistent_load(self, pid: Any) -> Any:
        said = parse_persistent_id(pid)
        if isinstance(said, tuple):
            return said[1]
        self._scan.storages.append(said)
        return _Placeholder()


@dataclass
class Scan:
    """What the pickles of a file ask for: the globals they name and the storages they declare."""

    globals: set[str] = field(default_factory=set)
    storages: list[DeclaredStorage] = field(default_factory=list)


def _dry_load(stream: Any, scan: Scan) -> Any:
    """One pickle from ``stream``, read without running anything (its value, with placeholders)."""
    return _DryUnpickler(stream, scan).load()


# ---------------------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Section:
    """Where a legacy file keeps a storage's bytes."""

    offset: int
    nbytes: int


@dataclass(frozen=True)
class Layout:
    """A ``torch.save`` file's structure, checked against the file and the cap.

    Attributes:
        path: The file.
        kind: ``zip``, ``legacy``, or ``raw`` (a plain pickle that torch.save did not write).
        globals: Every name its pickles ask for (classes and functions; nothing was imported).
        storages: The storages the object pickle declares, by key (the first declaration of each).
        prefix: Zip: the archive's folder (``archive/``), in front of ``data.pkl`` and ``data/<key>``.
        object_span: Legacy: where the object pickle starts and ends in the file.
        sections: Legacy: where each storage's bytes lie.
        limit: The cap the file was checked against.
    """

    path: Path
    kind: str
    globals: frozenset[str]
    storages: Mapping[str, DeclaredStorage]
    prefix: str = ""
    object_span: tuple[int, int] = (0, 0)
    sections: Mapping[str, Section] = field(default_factory=dict)
    limit: int = DEFAULT_MAX_BYTES


def _first_declarations(path: Path, declared: list[DeclaredStorage]) -> dict[str, DeclaredStorage]:
    storages: dict[str, DeclaredStorage] = {}
    for storage in declared:
        first = storages.setdefault(storage.key, storage)
        if first.numel != storage.numel:
            raise CheckpointError(
                f"{path} is damaged: storage {storage.key!r} is declared with {first.numel} and "
                f"{storage.numel} elements"
            )
    return storages


def _zip_layout(path: Path, limit: int) -> Layout:
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if not infos:
                raise CheckpointError(f"{path} is an empty zip archive, not a file torch.save wrote")
            unpacked = sum(info.file_size for info in infos)
            if unpacked > limit:
                raise too_large(path, unpacked, limit)
            if unpacked > max(MAX_EXPANSION * size, SMALL_FILE_ALLOWANCE):
                raise CheckpointError(
                    f"{path} unpacks to {gib(unpacked)} from {gib(size)}, more than {MAX_EXPANSION} times "
                    "its size: a zip bomb or a damaged file (torch.save never compresses; re-save it with "
                    "torch.save)"
                )
            prefix = infos[0].filename.split("/", 1)[0] + "/"  # torch reads the first entry's folder
            entries = {info.filename: info for info in infos}
            if prefix + "data.pkl" not in entries:
                raise CheckpointError(f"{path} is a zip archive without data.pkl, not written by torch.save")
            byteorder = entries.get(prefix + "byteorder")
            if byteorder is not None and archive.read(byteorder)[:16] not in (b"little", b""):
                raise CheckpointError(
                    f"{path} was written on a big-endian machine; re-save it with torch.save on a "
                    "little-endian one (x86, ARM)"
                )
            pickled = archive.read(entries[prefix + "data.pkl"])
    except NormexportError:
        raise
    except Exception as exc:  # zipfile, zlib and the pickle machine raise many kinds; all mean damage
        raise CheckpointError(f"{path} is damaged or truncated (zip archive: {first_line(exc)})") from None
    scan = Scan()
    try:
        _dry_load(io.BytesIO(pickled), scan)
    except Exception as exc:  # the pickle machine raises many kinds (and MemoryError, RecursionError)
        raise CheckpointError(f"{path} is damaged: its data.pkl cannot be read ({first_line(exc)})") from None
    storages = _first_declarations(path, scan.storages)
    for key, storage in storages.items():
        entry = entries.get(f"{prefix}data/{key}")
        if entry is None or entry.file_size != storage.nbytes:
            held = "no such entry" if entry is None else f"{entry.file_size} bytes"
            raise CheckpointError(
                f"{path} is damaged: storage {key!r} declares {storage.nbytes} bytes, the archive has {held}"
            )
    return Layout(path, "zip", frozenset(scan.globals), storages, prefix=prefix, limit=limit)


def _legacy_sections(
    path: Path, handle: BinaryIO, size: int, keys: Any, storages: Mapping[str, DeclaredStorage], limit: int
) -> dict[str, Section]:
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or len(set(keys)) != len(keys):
        raise CheckpointError(f"{path} is damaged: its list of storage keys is not a list of distinct names")
    missing = sorted(set(storages) - set(keys))
    if missing:
        raise CheckpointError(f"{path} is damaged: it declares storage {missing[0]!r} but does not hold it")
    sections: dict[str, Section] = {}
    total = 0
    for key in keys:
        storage = storages.get(key)
        if storage is None:
            raise CheckpointError(f"{path} is damaged: it holds storage {key!r}, which nothing uses")
        head = handle.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path} is truncated: storage {key!r} is missing")
        (numel,) = struct.unpack("<q", head)
        if numel != storage.numel:
            raise CheckpointError(
                f"{path} is damaged: storage {key!r} holds {numel} elements, its tensors say {storage.numel}"
            )
        offset = handle.tell()
        if offset + storage.nbytes > size:
            raise CheckpointError(f"{path} is truncated: storage {key!r} ends past the end of the file")
        total += storage.nbytes
        if total > limit:
            raise too_large(path, total, limit)
        sections[key] = Section(offset, storage.nbytes)
        handle.seek(offset + storage.nbytes)
    return sections


def _pickle_layout(path: Path, limit: int) -> Layout:
    size = path.stat().st_size
    scan = Scan()
    try:
        with path.open("rb") as handle:
            window = BoundedReader(handle, size)
            magic = _dry_load(window, scan)
            if type(magic) is not int or magic != _MAGIC_NUMBER:
                return Layout(path, "raw", frozenset(scan.globals), {}, limit=limit)
            if _dry_load(window, scan) != _PROTOCOL_VERSION:
                raise CheckpointError(f"{path} is damaged or from an unknown torch.save version (protocol)")
            _dry_load(window, scan)  # system information (endianness, C type sizes): not needed
            start = handle.tell()
            _dry_load(window, scan)
            end = handle.tell()
            keys = _dry_load(window, scan)
            storages = _first_declarations(path, scan.storages)
            sections = _legacy_sections(path, handle, size, keys, storages, limit)
        if tarfile.is_tarfile(path):  # torch.load would take it for PyTorch < 0.4's tar layout
            raise CheckpointError(f"{path} is both a torch.save pickle and a tar archive: a crafted file")
    except NormexportError:
        raise
    except Exception as exc:  # the pickle machine raises many kinds (and MemoryError, RecursionError)
        raise CheckpointError(f"{path} is damaged or truncated ({first_line(exc)})") from None
    return Layout(
        path,
        "legacy",
        frozenset(scan.globals),
        storages,
        object_span=(start, end),
        sections=sections,
        limit=limit,
    )


def read_layout(path: Path, *, limit: int | None = None) -> Layout:
    """Read the layout of a ``torch.save`` file (zip or legacy) and check it against the file and the cap.

    Args:
        path: An existing file that starts like a zip archive or a pickle.
        limit: The cap on the bytes its tensors may need (default: :func:`max_bytes`).

    Raises:
        CheckpointError: A damaged or truncated file, storages the file does not hold, or more than the cap.
    """
    cap = max_bytes(limit)
    with path.open("rb") as handle:
        head = handle.read(4)
    if head == b"PK\x03\x04":
        return _zip_layout(path, cap)
    if head[:1] == b"\x80":
        return _pickle_layout(path, cap)
    raise CheckpointError(f"{path} is not a file torch.save wrote (neither a zip archive nor a pickle)")
