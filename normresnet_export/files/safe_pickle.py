"""Read tau-ResNet's pickled model objects without running code from the file.

tau-ResNet's training scripts (``cifar_train.py``, ``imagenet_train.py``) save the whole
(DataParallel-wrapped) model object with ``torch.save(model, ...)``, not a state_dict.
Unpickling such a file normally imports the scripts' classes and lets the pickle call
whatever it names. Here an unpickler hands out only an allowlist:

* the functions torch uses to rebuild tensors and parameters, ``OrderedDict``, ``set``,
  ``torch.device`` and NumPy scalars (the ImageNet script stores its accuracy as one);
* for the module classes those scripts produce (their own ``ResNet``/``BasicBlock``/…,
  ``DataParallel`` and the ``torch.nn`` layers inside), *inert stand-ins*, which record the
  class name and the attributes the pickle restores and do nothing else.

Any other name raises :class:`UnsafePickleError`, which names the class. Nothing from the
file is imported or executed. :func:`flatten` then turns the stand-in tree into a state_dict
and collects plain attributes such as ``tau``.
"""

from __future__ import annotations

import _compat_pickle
import collections
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from normresnet_export.errors import CheckpointError
from normresnet_export.files.recognise import TAU_RESNET_CLASSES


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
        if isinstance(state, tuple) and len(state) == 2:
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


_SAFE_CALLABLES: dict[str, Any] = {
    "collections.OrderedDict": collections.OrderedDict,
    "builtins.set": set,
    "torch.device": torch.device,
    "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
    "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": torch._utils._rebuild_parameter_with_state,
    "numpy.dtype": np.dtype,
    "_codecs.encode": _latin1_bytes,
    # PyTorch <= 1.0 stored a backend object on every module; the scripts' checkpoints date from then.
    "torch.nn.backends.thnn._get_thnn_function_backend": _inert_function,
}


def _numpy_scalar() -> Any:
    """NumPy's scalar constructor (``numpy._core`` since NumPy 2, ``numpy.core`` before)."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # NumPy 1.x
        from numpy.core.multiarray import scalar
    return scalar


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allowlisted names (see the module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        # Protocol-2 pickles use Python 2 names (``__builtin__.set``); map them as pickle itself does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        else:
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        path = f"{module}.{name}"
        if path in ORIGINAL_CLASSES or path in TORCH_MODULE_CLASSES:
            return _stand_in(path)
        if path in ("numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar"):
            return _numpy_scalar()
        if path.startswith("numpy.dtypes.") and name.endswith("DType"):  # NumPy >= 1.25 pickles dtype classes
            return np.dtype
        safe = _SAFE_CALLABLES.get(path)
        if safe is not None:
            return safe
        raise UnsafePickleError(
            f"refused to unpickle {path}: a tau-ResNet checkpoint holds only the scripts' model classes, "
            "torch layers and tensors, and loading anything else could run code from the file"
        )


class _PickleModule:
    """The ``pickle_module`` torch.load expects, restricted."""

    Unpickler = RestrictedUnpickler

    @staticmethod
    def load(file: Any, **kwargs: Any) -> Any:
        return RestrictedUnpickler(file, **kwargs).load()


def load_restricted(path: str | Path) -> Any:
    """``torch.load`` a file through the restricted unpickler, mapping every tensor to the CPU."""
    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_PickleModule)


def is_stand_in(obj: Any) -> bool:
    return isinstance(obj, StandIn)


def _children(node: StandIn) -> Iterator[tuple[str, Any]]:
    yield from (node.attributes.get("_modules") or {}).items()


def flatten(root: StandIn) -> tuple[dict[str, torch.Tensor], dict[str, list[Any]]]:
    """A stand-in module tree as (state_dict, attributes).

    The state_dict has the names ``module.state_dict()`` would have given (parameters and
    persistent buffers). ``attributes`` maps each plain numeric attribute name (``tau``) to
    the values found on every module of the tree, so a caller can check they agree.
    """
    state: dict[str, torch.Tensor] = {}
    attributes: dict[str, list[Any]] = collections.defaultdict(list)
    stack: list[tuple[str, StandIn]] = [("", root)]
    while stack:  # iterative: 1000-layer nets would exhaust Python's recursion limit
        prefix, node = stack.pop()
        attrs = node.attributes
        skip = set(attrs.get("_non_persistent_buffers_set") or ())
        for kind in ("_parameters", "_buffers"):
            for name, tensor in (attrs.get(kind) or {}).items():
                if tensor is not None and name not in skip:
                    state[prefix + name] = tensor.detach() if isinstance(tensor, torch.Tensor) else tensor
        for name, value in attrs.items():
            if not name.startswith("_") and isinstance(value, (int, float)) and not isinstance(value, bool):
                attributes[name].append(float(value))
        for name, child in reversed(list(_children(node))):
            if child is not None:
                stack.append((f"{prefix}{name}.", child))
    return state, dict(attributes)
