"""Read tau-ResNet's pickled model objects without running code from the file.

tau-ResNet's training scripts (``cifar_train.py``, ``imagenet_train.py``) save the whole
(DataParallel-wrapped) model object with ``torch.save``, not a state_dict, and the PyTorch 1.0
they target wrote the legacy (pre-1.6, non-zip) layout. Unpickling such a file normally imports
the scripts' classes and lets the pickle call whatever it names. Here an unpickler hands out
only an allowlist:

* tensors and parameters (rebuilt here from the file's storages, with their sizes checked),
  ``OrderedDict``, ``set``, ``torch.device`` and numeric NumPy scalars (the ImageNet script
  stores its accuracy as one);
* for the module classes those scripts produce (their own ``ResNet``/``BasicBlock``/…,
  ``DataParallel`` and the ``torch.nn`` layers inside), *inert stand-ins*, which record the
  class name and the attributes the pickle restores and do nothing else. The legacy layout
  also stores each module class's source code; it is read as a string and never used.

Any other name raises :class:`UnsafePickleError`, which names the class. Nothing from the file
is imported or executed, and ``torch.load`` is not called: :func:`load_restricted` reads both
layouts itself, after :func:`~normresnet_export.files.torch_layout.read_layout` has checked the
storages against the file and the memory cap. :func:`flatten` then turns the stand-in tree into
a state_dict and collects plain attributes such as ``tau``.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from normresnet_export.errors import CheckpointError, NormexportError, first_line
from normresnet_export.files.recognise import TAU_RESNET_CLASSES
from normresnet_export.files.torch_layout import (
    BoundedReader,
    Layout,
    SafeUnpickler,
    global_name,
    parse_persistent_id,
    read_layout,
    storage_type,
    tensor_bytes,
    too_large,
)


class UnsafePickleError(CheckpointError, pickle.UnpicklingError):
    """The pickle names a class or function outside the allowlist."""


#: The original scripts' module classes (``models/resnet_cifar*.py``, ``models/resnet_imagenet*.py``),
#: by the path pickle records.
ORIGINAL_CLASSES = TAU_RESNET_CLASSES

#: torch.nn classes that appear inside those models; they become stand-ins too (never imported).
TORCH_MODULE_CLASSES = frozenset(
    {
        "torch.nn.parallel.data_parallel.DataParallel",
        "torch.nn.modules.conv.Conv2d",
        "torch.nn.modules.batchnorm.BatchNorm2d",
        "torch.nn.modules.linear.Linear",
        "torch.nn.modules.container.Sequential",
        "torch.nn.modules.activation.ReLU",
        "torch.nn.modules.pooling.AvgPool2d",
        "torch.nn.modules.pooling.MaxPool2d",
        "torch.nn.modules.pooling.AdaptiveAvgPool2d",
    }
)


class StandIn:
    """An inert object in place of a pickled module: it keeps the restored attributes, nothing else."""

    pickled_class = "?"

    def __setstate__(self, state: Any) -> None:
        # A module pickles its __dict__; a (rare) (dict, slots) pair is merged.
        if isinstance(state, tuple) and len(state) == 2 and all(isinstance(s, dict | None) for s in state):
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            state = merged
        self.__dict__["attributes"] = dict(state) if isinstance(state, dict) else {"state": state}


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes`` (NumPy scalars): latin-1 only."""
    if encoding != "latin1" or not isinstance(text, str):
        raise UnsafePickleError(f"refused to unpickle _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _inert_function(*_: Any, **__: Any) -> None:
    """Stand-in for callables old PyTorch pickles next to modules (e.g. the THNN backend getter)."""
    return None


_STAND_INS: dict[str, type[StandIn]] = {}


def _stand_in(path: str) -> type[StandIn]:
    if path not in _STAND_INS:
        _STAND_INS[path] = type(path.rsplit(".", 1)[-1], (StandIn,), {"pickled_class": path})
    return _STAND_INS[path]


#: The NumPy element types a recorded metric may have (bool, integers, floats, complex).
_NUMERIC_DTYPE = re.compile(r"b1|[iu][1248]|f(2|4|8|16)|c(8|16|32)")


class _PickledDtype:
    """``numpy.dtype(spec, align, copy)`` as a pickle rebuilds it, kept as data until a scalar uses it.

    NumPy's own ``dtype.__setstate__`` would take a structured or object layout from the file;
    this takes only a byte order, for numeric types.
    """

    def __init__(self, spec: Any, align: Any = False, copy: Any = False) -> None:
        if not isinstance(spec, str) or not _NUMERIC_DTYPE.fullmatch(spec):
            raise UnsafePickleError(
                f"refused to unpickle numpy.dtype({spec!r}): a recorded metric is a number "
                "(bool, integer, float or complex)"
            )
        self.spec = spec
        self.order = "="

    def __setstate__(self, state: Any) -> None:
        # (version, byte order, subarray, names, fields, size, alignment, flags): only the order is taken.
        if not (isinstance(state, tuple) and len(state) >= 5 and state[1] in ("<", ">", "|", "=")):
            raise pickle.UnpicklingError("a NumPy dtype with an unexpected state")
        if any(part is not None for part in state[2:5]):
            raise UnsafePickleError("refused to unpickle a structured NumPy dtype: metrics are plain numbers")
        self.order = state[1]

    def numpy(self) -> np.dtype:
        dtype = np.dtype(self.spec)
        return dtype.newbyteorder(self.order) if self.order in "<>" else dtype


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """NumPy's scalar constructor, for numeric types and exactly their size of bytes."""
    if not isinstance(dtype, _PickledDtype):
        raise UnsafePickleError("refused to unpickle a NumPy scalar whose type is not a plain numeric dtype")
    numpy_dtype = dtype.numpy()
    if not isinstance(data, bytes) or len(data) != numpy_dtype.itemsize:
        raise pickle.UnpicklingError(f"a NumPy {numpy_dtype} scalar that is not {numpy_dtype.itemsize} bytes")
    return np.frombuffer(data, dtype=numpy_dtype)[0]


_SAFE_CALLABLES: dict[str, Any] = {
    "collections.OrderedDict": collections.OrderedDict,
    "builtins.set": set,
    "torch.device": torch.device,
    "numpy.dtype": _PickledDtype,
    "numpy.core.multiarray.scalar": _numpy_scalar,  # NumPy 1.x
    "numpy._core.multiarray.scalar": _numpy_scalar,  # NumPy 2
    "_codecs.encode": _latin1_bytes,
    # PyTorch <= 1.0 stored a backend object on every module; the scripts' checkpoints date from then.
    "torch.nn.backends.thnn._get_thnn_function_backend": _inert_function,
}


class _FileStorage:
    """A storage of the file, as a persistent id hands it to the tensors built on it."""

    __slots__ = ("data", "dtype")

    def __init__(self, data: torch.UntypedStorage, dtype: torch.dtype) -> None:
        self.data = data
        self.dtype = dtype


class RestrictedUnpickler(SafeUnpickler):
    """Unpickler that resolves only allowlisted names (see the module docstring).

    Args:
        file: The object pickle.
        layout: The file's checked layout (its declared storages and the memory cap).
        storage_bytes: The bytes of the storage with a given key, as a uint8 tensor.
    """

    def __init__(self, file: Any, layout: Layout, storage_bytes: Callable[[str], torch.Tensor]) -> None:
        super().__init__(file, encoding="utf-8")
        self._layout = layout
        self._storage_bytes = storage_bytes

    def accepts_state(self, obj: Any) -> bool:
        return isinstance(obj, (StandIn, _PickledDtype))  # a module's attributes, a dtype's byte order

    def find_class(self, module: str, name: str) -> Any:
        path = global_name(module, name)
        if path in ORIGINAL_CLASSES or path in TORCH_MODULE_CLASSES:
            return _stand_in(path)
        kind = storage_type(path)
        if kind is not None:
            return kind
        if path == "torch._utils._rebuild_tensor_v2":
            return self._rebuild_tensor
        if path == "torch._utils._rebuild_parameter":
            return self._rebuild_parameter
        if path == "torch._utils._rebuild_parameter_with_state":
            return self._rebuild_parameter_with_state
        safe = _SAFE_CALLABLES.get(path)
        if safe is not None:
            return safe
        raise UnsafePickleError(
            f"refused to unpickle {path}: a tau-ResNet checkpoint holds only the scripts' model classes, "
            "torch layers and tensors, and loading anything else could run code from the file"
        )

    def persistent_load(self, pid: Any) -> Any:
        said = parse_persistent_id(pid)
        if isinstance(said, tuple):  # a legacy whole-model file names each module class this way
            cls = said[1]
            if not (isinstance(cls, type) and issubclass(cls, StandIn)):
                raise UnsafePickleError("refused to unpickle a module class outside the tau-ResNet scripts'")
            return cls
        expected = self._layout.storages.get(said.key)
        if expected is None or expected.numel != said.numel:
            raise pickle.UnpicklingError(f"storage {said.key!r} does not match the file's declaration")
        data = self._storage_bytes(said.key).untyped_storage()
        if said.view is not None:
            size = torch._utils._element_size(said.dtype)
            _, offset, count = said.view
            data = data[offset * size : (offset + count) * size]
        return _FileStorage(data, said.dtype)

    def _rebuild_tensor(
        self,
        storage: Any,
        storage_offset: Any,
        size: Any,
        stride: Any,
        requires_grad: Any,
        backward_hooks: Any,
        metadata: Any = None,
    ) -> torch.Tensor:
        """``torch._utils._rebuild_tensor_v2`` on a storage of this file (hooks are never restored)."""
        if not isinstance(storage, _FileStorage):
            raise pickle.UnpicklingError("a tensor whose storage is not one of the file's")
        if metadata:
            raise UnsafePickleError("refused to unpickle tensor metadata: tau-ResNet's tensors have none")
        tensor = torch.empty((0,), dtype=storage.dtype).set_(storage.data, storage_offset, size, stride)
        tensor.requires_grad = bool(requires_grad)
        return tensor

    @staticmethod
    def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any) -> torch.nn.Parameter:
        if not isinstance(data, torch.Tensor):
            raise pickle.UnpicklingError("a parameter whose data is not a tensor")
        return torch.nn.Parameter(data, bool(requires_grad))

    def _rebuild_parameter_with_state(
        self, data: Any, requires_grad: Any, backward_hooks: Any, state: Any
    ) -> torch.nn.Parameter:
        param = self._rebuild_parameter(data, requires_grad, backward_hooks)
        parts = state if isinstance(state, tuple) else (state,)
        for part in parts:
            if not part:
                continue
            plain = isinstance(part, dict) and all(isinstance(k, str) and k[:2] != "__" for k in part)
            if not plain:
                raise UnsafePickleError("refused to unpickle parameter attributes that are not plain names")
            for key, value in part.items():
                setattr(param, key, value)
        return param


def _read_into(handle: BinaryIO, buffer: torch.Tensor) -> None:
    """Fill a uint8 tensor from ``handle`` in chunks (no second copy of a large storage)."""
    view = memoryview(buffer.numpy())
    done = 0
    while done < len(view):
        count = handle.readinto(view[done : done + (1 << 24)])
        if not count:
            raise EOFError(f"{len(view) - done} bytes missing")
        done += count


def _load_zip(path: Path, layout: Layout) -> Any:
    buffers: dict[str, torch.Tensor] = {}
    with zipfile.ZipFile(path) as archive:

        def storage_bytes(key: str) -> torch.Tensor:
            if key not in buffers:
                info = archive.getinfo(f"{layout.prefix}data/{key}")
                buffers[key] = torch.empty(info.file_size, dtype=torch.uint8)
                with archive.open(info) as entry:  # checks the entry's CRC as it reaches the end
                    _read_into(entry, buffers[key])  # type: ignore[arg-type]
                    if entry.read(1):
                        raise EOFError(f"storage {key!r} is longer than its entry says")
            return buffers[key]

        pickled = archive.read(layout.prefix + "data.pkl")
        return RestrictedUnpickler(io.BytesIO(pickled), layout, storage_bytes).load()


def _load_legacy(path: Path, layout: Layout) -> Any:
    buffers: dict[str, torch.Tensor] = {}
    with path.open("rb") as handle:
        for key, section in layout.sections.items():
            buffers[key] = torch.empty(section.nbytes, dtype=torch.uint8)
            handle.seek(section.offset)
            _read_into(handle, buffers[key])
        start, end = layout.object_span
        handle.seek(start)
        return RestrictedUnpickler(BoundedReader(handle, end), layout, buffers.__getitem__).load()


def load_restricted(path: str | os.PathLike[str], *, max_bytes: int | None = None) -> Any:
    """Read a ``torch.save`` file (zip or legacy layout) through the restricted unpickler, on the CPU.

    Args:
        path: The file.
        max_bytes: The cap on the memory its tensors may take (default:
            :func:`~normresnet_export.files.torch_layout.max_bytes`).

    Raises:
        UnsafePickleError: The pickle names something outside the allowlist (the message names it).
        CheckpointError: A damaged or truncated file, or one whose tensors need more than the cap.
    """
    path = Path(path)
    layout = read_layout(path, limit=max_bytes)
    if layout.kind == "raw":
        raise CheckpointError(
            f"{path} is a plain Python pickle, not a file torch.save wrote (a zip archive or legacy layout)"
        )
    try:
        obj = _load_zip(path, layout) if layout.kind == "zip" else _load_legacy(path, layout)
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path}: {exc}") from None
    except NormexportError:
        raise
    except Exception as exc:  # torch, NumPy and the pickle machine raise many kinds; all mean damage
        raise CheckpointError(f"{path} is damaged: unpickling it failed ({first_line(exc)})") from None
    claimed = tensor_bytes(obj)  # a stride of 0 lets a tensor claim more than its storage holds
    if claimed > layout.limit:
        raise too_large(path, claimed, layout.limit)
    return obj


def is_stand_in(obj: Any) -> bool:
    return isinstance(obj, StandIn)


def _children(node: StandIn) -> Iterator[tuple[str, Any]]:
    modules = node.attributes.get("_modules") or {}
    if not isinstance(modules, Mapping):
        raise CheckpointError(f"the pickled {node.pickled_class} has submodules that are not a mapping")
    yield from modules.items()


def _tensors(node: StandIn, kind: str) -> Iterator[tuple[str, Any]]:
    tensors = node.attributes.get(kind) or {}
    if not isinstance(tensors, Mapping):
        raise CheckpointError(f"the pickled {node.pickled_class} has {kind} that are not a mapping")
    for name, tensor in tensors.items():
        if tensor is not None and not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"the pickled {node.pickled_class}'s {kind[1:-1]} {name!r} is not a tensor")
        yield name, tensor


def flatten(root: StandIn) -> tuple[dict[str, torch.Tensor], dict[str, list[Any]]]:
    """A stand-in module tree as (state_dict, attributes).

    The state_dict has the names ``module.state_dict()`` would have given (parameters and
    persistent buffers). ``attributes`` maps each plain numeric attribute name (``tau``) to
    the values found on every module of the tree, so a caller can check they agree.

    Raises:
        CheckpointError: The tree is not one a module pickles: a module inside itself or under two
            names (a crafted file could otherwise make this walk forever), or parameters that are
            not tensors.
    """
    state: dict[str, torch.Tensor] = {}
    attributes: dict[str, list[Any]] = collections.defaultdict(list)
    stack: list[tuple[str, StandIn]] = [("", root)]
    seen: set[int] = set()
    while stack:  # iterative: 1000-layer nets would exhaust Python's recursion limit
        prefix, node = stack.pop()
        if id(node) in seen:
            raise CheckpointError(f"the pickled model holds module {prefix.rstrip('.')!r} twice or in itself")
        seen.add(id(node))
        attrs = node.attributes
        non_persistent = attrs.get("_non_persistent_buffers_set") or ()
        skip = set(non_persistent) if isinstance(non_persistent, (set, frozenset, list, tuple)) else set()
        for kind in ("_parameters", "_buffers"):
            for name, tensor in _tensors(node, kind):
                if tensor is not None and name not in skip:
                    state[f"{prefix}{name}"] = tensor.detach()
        for name, value in attrs.items():
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if numeric and isinstance(name, str) and not name.startswith("_"):
                attributes[name].append(float(value))
        for name, child in reversed(list(_children(node))):
            if child is None:
                continue
            if not isinstance(child, StandIn):
                raise CheckpointError(f"the pickled submodule {prefix}{name} is a {type(child).__name__}")
            stack.append((f"{prefix}{name}.", child))
    return state, dict(attributes)
