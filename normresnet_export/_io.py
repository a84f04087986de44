"""Atomic file writes: a crash or Ctrl-C never leaves half a file at the destination."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from normresnet_export.errors import InputError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a temporary file next to ``path`` for binary writing; rename it over ``path`` on success.

    The temporary file lives in the destination directory (so the rename is atomic on
    POSIX), is flushed and fsynced before the rename, and is removed if the block raises,
    including on ``KeyboardInterrupt``. Missing parent directories are created.

    Raises:
        InputError: ``path`` is an existing directory, or its parent cannot be created.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a directory; give the path of the file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create directory {path.parent}: {exc.strerror}") from None
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def staging_directory(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """A fresh temporary directory inside ``destination`` (created if missing), removed afterwards.

    Multi-file outputs (an ONNX graph with external data, a Triton model directory) are
    written here, checked, and then moved into place with :func:`commit`, so a crash never
    leaves a partial set of files at the destination.
    """
    destination = Path(destination)
    try:
        destination.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create directory {destination}: {exc.strerror}") from None
    staging = Path(tempfile.mkdtemp(dir=destination, prefix=".normexport-"))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def commit(staged: Path, target: Path) -> Path:
    """Move a staged file or directory to ``target``: fsync, then rename (replacing a previous ``target``)."""
    if staged.is_file():
        with staged.open("rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(staged, 0o666 & ~_current_umask())
        os.replace(staged, target)
        return target
    os.chmod(staged, 0o777 & ~_current_umask())  # mkdtemp makes it private (0700)
    if target.exists():  # a directory cannot be renamed over a non-empty one: move the old one aside first
        aside = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, aside)
        os.replace(staged, target)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(staged, target)
    return target
