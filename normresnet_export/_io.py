"""Safe output: where a write may land, atomic writes, staging areas, and what killed writers left.

Every file normexport writes goes through here, so that a path the user names as an output can
only ever become that output:

- :func:`check_output` refuses an output that is one of the command's inputs (the same file, hard
  links included), a symbolic link, an existing thing of the wrong kind (a device node, a FIFO, a
  directory where a file goes), and one whose parent directory is missing: directories are never
  created on the user's behalf, except one that is itself the output (:func:`make_directory`).
- :func:`atomic_write` and :func:`staging_directory` write into a staging area beside the
  destination that is renamed into place, so a crash never leaves half a file at the destination.
- A staging name says who made it: ``.<name>.normexport-<host>-<pid>-<token>.tmp`` (``.old`` for a
  replaced directory moved aside). What a killed writer left (made on this host by a process that
  is gone) is removed by the next write into the same directory, which says so with a warning on
  the ``normresnet_export`` logger (one line on stderr when nothing else handles it); what a live
  writer is still writing is left alone. Staging names start with a dot, and loaders skip such
  names, so a staging area is never served as a model.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from normresnet_export.errors import InputError

#: Where notes about removed leftovers go (a warning each).
logger = logging.getLogger("normresnet_export")

#: A staging file or directory: ``.<name>.normexport-<host>-<pid>-<token>.tmp`` (or ``.old``).
STAGING_NAME = re.compile(
    r"^\.(?P<name>.+)\.normexport-(?P<host>[A-Za-z0-9]+)-(?P<pid>[0-9]{1,10})-(?P<token>[a-z0-9_]+)"
    r"\.(?:tmp|old)$"
)
#: How much of the output's name a staging name keeps (file names are limited to 255 bytes).
_NAME_KEPT = 64

_KINDS = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
}


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _host() -> str:
    """This machine's name as staging names hold it (letters and digits only)."""
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:24] or "localhost"


def _staging_prefix(name: str) -> str:
    return f".{name[:_NAME_KEPT]}.normexport-{_host()}-{os.getpid()}-"


def is_staging_name(name: str) -> bool:
    """Whether ``name`` is a staging file's or directory's (never a finished output)."""
    return STAGING_NAME.match(name) is not None


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists; when that cannot be told, it is taken to be alive."""
    if pid == os.getpid() or os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's process (EPERM), or not a pid at all
        return True
    return True


def remove_stale(directory: str | os.PathLike[str]) -> list[str]:
    """Remove the staging files and directories in ``directory`` left by killed writers on this host.

    Only names of the staging pattern, made on this host by a process that no longer exists, are
    removed; a live writer's (another command running now) are left to it. Each removal is a
    warning on :data:`logger`, so the user learns that a run was killed half-way.

    Returns:
        The paths removed.
    """
    directory = Path(directory)
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    host, removed = _host(), []
    for entry in entries:
        match = STAGING_NAME.match(entry.name)
        if match is None or match["host"] != host or not entry.name.isprintable():
            continue
        pid = int(match["pid"])
        if _alive(pid):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
                what = "directory"
            elif entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                what = "file"
            else:  # a link or a device by that name was not made by a writer of ours
                continue
        except OSError:
            continue
        path = directory / entry.name
        logger.warning(
            "note: removed the stale staging %s %s, left by a killed run (pid %d)", what, path, pid
        )
        removed.append(str(path))
    return removed


def _what(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def check_output(
    path: str | os.PathLike[str],
    *,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    directory: bool = False,
) -> Path:
    """Refuse an output path whose writing would damage something other than that output.

    Called by every writer before any work starts (so a bad ``-o`` fails at once) and again by
    :func:`atomic_write` and :func:`commit` just before the rename.

    Args:
        path: The file (or, with ``directory``, the directory) about to be written or replaced.
        inputs: The files the command reads (``None`` entries are skipped). A file output may not
            be one of them (compared by identity, so hard links and other spellings count); a
            directory output, which is replaced as a whole, may not contain one.
        directory: The output is a directory.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        InputError: ``path`` is a symbolic link, exists but is not a regular file (or not a
            directory), has no existing parent directory, or is (or holds) one of ``inputs``.
    """
    path = Path(path)
    if path.is_symlink():
        raise InputError(
            f"{path} is a symbolic link; normexport neither writes through nor replaces links: "
            "give the real path, or remove the link first"
        )
    try:
        mode: int | None = path.stat().st_mode
    except OSError:
        mode = None
    if mode is not None and directory and not stat.S_ISDIR(mode):
        raise InputError(f"{path} exists and is not a directory; give a directory or a new name")
    if mode is not None and not directory:
        if stat.S_ISDIR(mode):
            raise InputError(f"{path} is a directory; give the path of the file to write")
        if not stat.S_ISREG(mode):
            raise InputError(
                f"{path} exists and is {_what(mode)}, not a regular file; give a new name or a regular file"
            )
    parent = path.parent
    if not parent.is_dir():
        state = "is not a directory" if parent.exists() else "does not exist"
        raise InputError(
            f"the directory {parent} for {path.name} {state}; create it first "
            "(normexport creates no directories it was not asked for)"
        )
    for given in inputs:
        if given is None:
            continue
        source = Path(given)
        if directory:
            resolved = path.resolve()
            if mode is not None and resolved in source.resolve().parents:
                raise InputError(
                    f"the input {source} lies inside {path}, which this command replaces; "
                    "move the input out of it or choose another output"
                )
        elif mode is not None and _same_file(path, source):
            which = "an input" if str(source) == str(path) else f"the same file as the input {source}"
            raise InputError(
                f"{path} is {which} of this command; writing it would replace the input: "
                "choose another output path"
            )
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def make_directory(path: str | os.PathLike[str], *, parents: bool = False) -> Path:
    """Create the output directory ``path`` if missing (its parent must exist unless ``parents``).

    Raises:
        InputError: See :func:`check_output`, or the directory cannot be created.
    """
    path = Path(path)
    if parents and not path.parent.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create directory {path.parent}: {exc.strerror}") from None
    check_output(path, directory=True)
    try:
        path.mkdir(exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create directory {path}: {exc.strerror}") from None
    return path


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str] | None] = ()
) -> Iterator[BinaryIO]:
    """Open a staging file next to ``path`` for binary writing; rename it over ``path`` on success.

    The staging file lives in the destination directory (so the rename is atomic on POSIX), is
    flushed and fsynced before the rename, and is removed if the block raises, including on
    ``KeyboardInterrupt``. What killed writers left in that directory is removed first
    (:func:`remove_stale`).

    Args:
        path: The file to write; see :func:`check_output` for what is refused.
        inputs: Files the write must not replace.

    Raises:
        InputError: ``path`` is refused by :func:`check_output`, or the file cannot be written
            (the reason, e.g. a full disk; nothing is left at ``path``).
    """
    path = check_output(path, inputs=inputs)
    remove_stale(path.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=_staging_prefix(path.name), suffix=".tmp")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_current_umask())
        check_output(path)  # nothing has taken its place meanwhile
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise InputError(f"cannot write {path}: {exc.strerror or exc}; nothing was written") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def staging_directory(
    destination: str | os.PathLike[str], name: str, *, create: bool = False
) -> Iterator[Path]:
    """A fresh staging directory in ``destination`` for the output ``name``, removed afterwards.

    Multi-file outputs (an ONNX graph with external data, a Triton model directory) are written
    here, checked, and then moved into place with :func:`commit`, so a crash never leaves a
    partial set of files at the destination. What killed writers left in ``destination`` is
    removed first (:func:`remove_stale`).

    Args:
        destination: The directory the output goes into.
        name: The output's name in it (part of the staging name).
        create: Create ``destination`` if missing (its parent must exist); otherwise it must exist.

    Raises:
        InputError: ``destination`` is missing (without ``create``), refused by
            :func:`check_output`, or cannot be written in.
    """
    destination = Path(destination)
    if create:
        make_directory(destination)
    elif not destination.is_dir():
        raise InputError(
            f"the directory {destination} for {name} does not exist; create it first "
            "(normexport creates no directories it was not asked for)"
        )
    remove_stale(destination)
    try:
        staging = Path(tempfile.mkdtemp(dir=destination, prefix=_staging_prefix(name), suffix=".tmp"))
    except OSError as exc:
        raise InputError(f"cannot write in {destination}: {exc.strerror}") from None
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def commit(staged: Path, target: Path) -> Path:
    """Move a staged file or directory to ``target``: fsync, then rename (replacing a previous ``target``).

    Raises:
        InputError: ``target`` is refused by :func:`check_output` (a link, or a thing of another kind).
    """
    if staged.is_file():
        check_output(target)
        with staged.open("rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(staged, 0o666 & ~_current_umask())
        os.replace(staged, target)
        return target
    check_output(target, directory=True)
    os.chmod(staged, 0o777 & ~_current_umask())  # mkdtemp makes it private (0700)
    if target.exists():  # a directory cannot be renamed over a non-empty one: move the old one aside first
        aside = target.with_name(f"{_staging_prefix(target.name)}{secrets.token_hex(4)}.old")
        os.replace(target, aside)
        os.replace(staged, target)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(staged, target)
    return target
