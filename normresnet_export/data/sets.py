"""Data-set resolution: one reading of ``--data`` / ``--dataset`` for every command.

``train --dataset``, ``check --data``, ``analyze gradnorm --data`` and the calibration of
low-precision exports name their data in one vocabulary (:data:`~normresnet_export.vocabulary.DATA_KINDS`):

* ``digits``: scikit-learn's bundled handwritten digits (no directory, no download);
* ``cifar10`` / ``cifar100``: the python-version batches (``cifar-10-batches-py/``,
  ``cifar-100-python/``) inside ``--data-dir``, by default ``./data``; fetched only with
  ``--download``;
* ``imagenet``: an ImageNet-layout folder, ``--data-dir DIR`` holding ``train/<class>/…`` and
  ``val/<class>/…``;
* ``folder:DIR``: any class-per-directory tree. ``folder`` with ``--data-dir DIR`` means the same;
* ``random``: seeded standard-normal inputs (for agreement and timing; nothing to learn).

:func:`parse_data_set` turns what the user wrote into one :class:`DataSet` before any data is
read, and refuses, in one line, a spelling it does not know, a directory given twice, a
directory that a kind does not take, and ``--download`` for anything but CIFAR.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from normresnet_export.errors import InputError
from normresnet_export.vocabulary import DATA_KINDS

#: Where CIFAR is looked for (and downloaded to) without ``--data-dir``: ``./data``.
DEFAULT_DATA_DIR = Path("data")

#: The kind a class-per-directory tree has (``folder:DIR`` in the vocabulary).
FOLDER = "folder"
#: Kinds read from the python-version CIFAR batches.
CIFAR_KINDS = frozenset({"cifar10", "cifar100"})
#: Kinds that live in a directory the user names.
_DIRECTORY_KINDS = frozenset({"imagenet", FOLDER})


@dataclass(frozen=True)
class DataSet:
    """A resolved data set.

    Attributes:
        kind: ``digits``, ``cifar10``, ``cifar100``, ``imagenet``, ``folder`` or ``random``.
        root: Where it is read from: the directory holding CIFAR's batch folder, the
            ImageNet-layout folder, the class-per-directory tree; ``None`` for digits and random.
        download: Fetch CIFAR into ``root`` when it is missing.
    """

    kind: str
    root: Path | None = None
    download: bool = False

    @property
    def spec(self) -> str:
        """The canonical spelling: ``folder:DIR`` for a folder, else the kind."""
        return f"{FOLDER}:{self.root}" if self.kind == FOLDER else self.kind


def _listing(kinds: Sequence[str]) -> str:
    *others, last = kinds
    return f"{', '.join(others)} or {last}" if others else last


def data_kind(
    spec: str, *, option: str = "--data", kinds: Sequence[str] = DATA_KINDS
) -> tuple[str, Path | None]:
    """The kind ``spec`` names and the directory written into it (``folder:DIR``), checking only the spelling.

    Args:
        spec: What the user wrote.
        option: The option it was given to, for the message.
        kinds: The spellings this command accepts (a subset of ``DATA_KINDS``).

    Raises:
        InputError: An unknown spelling (with the closest known one), or ``folder:`` without a directory.
    """
    names = [kind.partition(":")[0] for kind in kinds]
    name, colon, rest = spec.partition(":")
    if name == FOLDER and FOLDER in names and colon:
        if not rest:
            raise InputError(f"{option} folder: names no directory; write {option} folder:DIR")
        return FOLDER, Path(rest)
    if name in names and not colon:
        return name, None
    close = difflib.get_close_matches(spec, list(kinds), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    if spec in DATA_KINDS or spec.partition(":")[0] in DATA_KINDS:
        hint = f" ({spec} is not accepted here)"
    raise InputError(f"unknown {option} {spec!r}; expected one of {_listing(kinds)}{hint}")


def parse_data_set(
    spec: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    option: str = "--data",
    kinds: Sequence[str] = DATA_KINDS,
) -> DataSet:
    """Resolve ``spec`` (with ``--data-dir`` and ``--download``) into a :class:`DataSet`.

    Nothing is read: a directory that does not exist is reported by the reader, which knows what
    it expected inside.

    Args:
        spec: ``digits``, ``cifar10``, ``cifar100``, ``imagenet``, ``folder:DIR``, ``folder`` (with
            ``data_dir``) or ``random``.
        data_dir: ``--data-dir``: where CIFAR is (default ``./data``), the ImageNet-layout folder,
            or the tree of a bare ``folder``.
        download: ``--download``: fetch CIFAR when it is missing.
        option: The option ``spec`` was given to, for the messages.
        kinds: The spellings this command accepts.

    Raises:
        InputError: An unknown spelling, ``folder:D`` with another ``--data-dir``, ``imagenet`` or a
            bare ``folder`` without a directory, ``--data-dir`` for a kind that reads none, or
            ``--download`` for anything but CIFAR.
    """
    kind, inline = data_kind(spec, option=option, kinds=kinds)
    given = Path(data_dir) if data_dir is not None else None
    if download and kind not in CIFAR_KINDS:
        raise InputError(f"--download fetches CIFAR-10/100 only; {option} {spec} is not downloaded")
    if kind in CIFAR_KINDS:
        return DataSet(kind, given if given is not None else DEFAULT_DATA_DIR, download)
    if kind == FOLDER:
        if inline is not None and given is not None and inline != given:
            raise InputError(
                f"{option} {spec} and --data-dir {given} name two directories; give the tree once "
                f"({option} folder:DIR)"
            )
        root = inline if inline is not None else given
        if root is None:
            raise InputError(
                f"{option} folder needs its directory: write {option} folder:DIR (or --data-dir DIR)"
            )
        return DataSet(FOLDER, root)
    if kind == "imagenet":
        if given is None:
            raise InputError(
                f"{option} imagenet reads an ImageNet-layout folder (DIR/train/<class>/…, "
                "DIR/val/<class>/…); pass --data-dir DIR"
            )
        return DataSet(kind, given)
    if given is not None:
        raise InputError(
            f"--data-dir applies to cifar10, cifar100, imagenet and folder; "
            f"{option} {kind} reads no directory"
        )
    return DataSet(kind)


def imagenet_split(root: Path, split: str) -> Path:
    """``root/split`` of an ImageNet-layout folder (``train`` or ``val``).

    Raises:
        InputError: ``root`` or its ``split`` directory is missing, naming the layout expected.
    """
    directory = root / split
    if not directory.is_dir():
        raise InputError(
            f"{root} is not an ImageNet-layout folder: expected {directory}/<class>/<image files> "
            f"(and {root}/train/, {root}/val/); for a single class-per-directory tree use folder:DIR"
        )
    return directory


__all__ = [
    "CIFAR_KINDS",
    "DEFAULT_DATA_DIR",
    "FOLDER",
    "DataSet",
    "data_kind",
    "imagenet_split",
    "parse_data_set",
]
