"""CIFAR-10 and CIFAR-100 from a local copy of the python-version batches, read without running the pickles.

The copy is the one torchvision's ``CIFAR10``/``CIFAR100`` read: ``ROOT/cifar-10-batches-py/``
(``data_batch_1`` … ``data_batch_5``, ``test_batch``, ``batches.meta``) or
``ROOT/cifar-100-python/`` (``train``, ``test``, ``meta``), as extracted from
``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``. Each batch is a pickled dict of a
``uint8 [N, 3072]`` NumPy array and a list of labels. The pickles are read with an unpickler
that builds plain ``uint8``/integer NumPy arrays and nothing else, so a file that names any
other class or function is refused instead of run. Nothing is downloaded unless asked
(:func:`read_cifar` with ``download=True``, i.e. ``--download``).
"""

from __future__ import annotations

import contextlib
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from normresnet_export.errors import InputError, first_line
from normresnet_export.files.torch_layout import SafeUnpickler

#: Splits a data set has.
SPLITS = ("train", "test")


@dataclass(frozen=True)
class _Layout:
    title: str
    folder: str
    archive: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    labels_key: str
    names_key: str
    reader: str  # torchvision's class, used only to download


_LAYOUTS = {
    "cifar10": _Layout(
        "CIFAR-10",
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "batches.meta",
        "labels",
        "label_names",
        "CIFAR10",
    ),
    "cifar100": _Layout(
        "CIFAR-100",
        "cifar-100-python",
        "cifar-100-python.tar.gz",
        ("train",),
        ("test",),
        "meta",
        "fine_labels",
        "fine_label_names",
        "CIFAR100",
    ),
}
_SIDE = 32
_DTYPES = frozenset({"u1", "i1", "i2", "i4", "i8"})  # the pixels, and labels stored as arrays


@dataclass
class CifarImages:
    """One split: ``uint8 [N, 3, 32, 32]`` images, ``int64`` labels and the class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]


class _Dtype:
    """``numpy.dtype(spec, …)`` as a pickle rebuilds it: integer types only, the byte order from the state."""

    def __init__(self, spec: Any, align: Any = False, copy: Any = False) -> None:
        if not isinstance(spec, str) or spec not in _DTYPES:
            raise pickle.UnpicklingError(f"an array of {spec!r}: CIFAR batches hold uint8 pixels")
        self.spec, self.order = spec, "="

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) >= 5 and state[1] in ("<", ">", "|", "=")):
            raise pickle.UnpicklingError("a NumPy dtype with an unexpected state")
        if any(part is not None for part in state[2:5]):
            raise pickle.UnpicklingError("a structured NumPy dtype: CIFAR batches hold plain arrays")
        self.order = state[1]

    def numpy(self) -> np.dtype:
        dtype = np.dtype(self.spec)
        return dtype.newbyteorder(self.order) if self.order in "<>" else dtype


def _raw(data: Any) -> bytes:
    """Array bytes: Python 2 pickles (read as latin-1) give ``str``, Python 3 ones ``bytes``."""
    if isinstance(data, str):
        return data.encode("latin-1")
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    raise pickle.UnpicklingError(f"array data of type {type(data).__name__}")


def _array(dtype: Any, shape: Any, data: Any, fortran: bool = False) -> np.ndarray:
    if not isinstance(dtype, _Dtype):
        raise pickle.UnpicklingError("an array whose element type is not a plain NumPy dtype")
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise pickle.UnpicklingError(f"an array of shape {shape!r}")
    raw, numpy_dtype = _raw(data), dtype.numpy()
    if len(raw) != int(np.prod(shape, dtype=np.int64)) * numpy_dtype.itemsize:
        raise pickle.UnpicklingError(f"an array of shape {shape} with {len(raw)} bytes")
    return np.frombuffer(raw, dtype=numpy_dtype).reshape(shape, order="F" if fortran else "C")


class _Array:
    """``numpy.core.multiarray._reconstruct(ndarray, …)``: an empty array until ``BUILD`` gives its state."""

    def __init__(self, subtype: Any, shape: Any = (0,), typecode: Any = b"b") -> None:
        if subtype is not np.ndarray:
            raise pickle.UnpicklingError("a NumPy array subclass")
        self.value: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("a NumPy array with an unexpected state")
        shape, dtype, fortran, data = state[-4:]
        self.value = _array(dtype, shape, data, bool(fortran))


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any = "C") -> np.ndarray:
    """NumPy's pickle protocol 5 form of an array."""
    return _array(dtype, tuple(shape), buffer, order == "F")


_CALLABLES = {
    "numpy.ndarray": np.ndarray,
    "numpy.dtype": _Dtype,
    "numpy.core.multiarray._reconstruct": _Array,
    "numpy._core.multiarray._reconstruct": _Array,
    "numpy.core.numeric._frombuffer": _frombuffer,
    "numpy._core.numeric._frombuffer": _frombuffer,
    "_codecs.encode": lambda text, encoding="latin-1": str(text).encode(encoding),
}


class _BatchUnpickler(SafeUnpickler):
    """Builds dicts, lists, strings, numbers and integer NumPy arrays; any other name is refused."""

    def accepts_state(self, obj: Any) -> bool:
        return isinstance(obj, (_Array, _Dtype))

    def find_class(self, module: str, name: str) -> Any:
        path = f"{module}.{name}"
        if path not in _CALLABLES:
            raise pickle.UnpicklingError(f"the pickle names {path}, which a CIFAR batch never does")
        return _CALLABLES[path]


def _plain(value: Any) -> Any:
    """Arrays out of their stand-ins; ``bytes`` keys and names (Python 3 pickles) as text."""
    if isinstance(value, _Array):
        if value.value is None:
            raise pickle.UnpicklingError("a NumPy array without its data")
        return value.value
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            loaded = _plain(_BatchUnpickler(handle, encoding="latin1").load())
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise InputError(
            f"{path} is not a CIFAR python batch ({first_line(exc)}); extract it again"
        ) from None
    if not isinstance(loaded, dict):
        raise InputError(f"{path} is not a CIFAR python batch (a {type(loaded).__name__}, not a dict)")
    return loaded


def _missing(layout: _Layout, root: Path) -> InputError:
    return InputError(
        f"{layout.title} is not in {root}: expected {root / layout.folder}/ (the python-version batches, "
        f"{layout.archive} extracted); put it there, point --data-dir at the directory that holds "
        f"{layout.folder}/, or pass --download to fetch it (about 170 MB)"
    )


def _download(layout: _Layout, root: Path) -> None:
    """Fetch and extract the archive with torchvision's downloader (its URL and MD5 checked).

    Only the archive's integrity is torchvision's business: the batches are then read here,
    with the restricted unpickler, like any local copy.
    """
    import torchvision
    from torchvision.datasets import utils

    reader = getattr(torchvision.datasets, layout.reader)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with contextlib.redirect_stdout(sys.stderr):  # its "Downloading …" lines: stdout is for the result
            utils.download_and_extract_archive(
                reader.url, str(root), filename=reader.filename, md5=reader.tgz_md5
            )
    except (RuntimeError, OSError, ValueError) as exc:
        raise InputError(
            f"cannot download {layout.title} into {root}: {first_line(exc)}; check the network, or put "
            f"{layout.archive} extracted at {root / layout.folder}/"
        ) from None


def read_cifar(name: str, root: str | Path, *, split: str = "test", download: bool = False) -> CifarImages:
    """One split of CIFAR-10 or CIFAR-100 from ``root`` (the directory that holds the batch folder).

    Args:
        name: ``cifar10`` or ``cifar100``.
        root: Holds ``cifar-10-batches-py/`` or ``cifar-100-python/``.
        split: ``train`` or ``test``.
        download: Fetch and extract the archive (torchvision's downloader, MD5 checked) when the
            copy is missing.

    Raises:
        InputError: The copy is missing (the message says where to put it, or to pass
            ``--download``), or a batch file is not a CIFAR python batch.
    """
    layout = _LAYOUTS[name]
    if split not in SPLITS:
        raise InputError(f"unknown CIFAR split {split!r}; expected train or test")
    root = Path(root)
    folder = root / layout.folder
    files = [folder / batch for batch in (layout.train if split == "train" else layout.test)]
    meta = folder / layout.meta
    if not all(path.is_file() for path in [*files, meta]):
        if not download:
            raise _missing(layout, root)
        _download(layout, root)
        if not all(path.is_file() for path in [*files, meta]):
            raise _missing(layout, root)
    classes = _unpickle(meta).get(layout.names_key)
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise InputError(
            f"{meta} holds no class names ({layout.names_key!r}); extract {layout.archive} again"
        )
    images, labels = [], []
    for path in files:
        batch = _unpickle(path)
        data, targets = batch.get("data"), batch.get(layout.labels_key)
        if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3 * _SIDE * _SIDE:
            raise InputError(f"{path}: expected 'data' as a uint8 array [N, 3072], got {type(data).__name__}")
        targets = np.asarray(targets if targets is not None else [], dtype=np.int64)
        if targets.shape != (len(data),) or (
            len(targets) and not 0 <= targets.min() <= targets.max() < len(classes)
        ):
            raise InputError(
                f"{path}: expected {len(data)} labels {layout.labels_key!r} from 0 to {len(classes) - 1}"
            )
        images.append(torch.from_numpy(data.astype(np.uint8).reshape(-1, 3, _SIDE, _SIDE)))
        labels.append(torch.from_numpy(targets))
    return CifarImages(torch.cat(images), torch.cat(labels), list(classes))
