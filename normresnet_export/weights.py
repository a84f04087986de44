"""Pretrained weights: the registry in ``weights/registry.toml``, verified downloads, the cache.

A registry entry names a file of weights (shipped inside the repository under ``weights/``, or
published at one or more URLs), the architecture it belongs to, which importer converts it
(``source``), its SHA-256 (the full digest, or the prefix a published file name carries), how
its inputs are prepared and what accuracy it reaches. :func:`resolve_model_file` turns a name
into a checkpoint of this project's format, so every command that takes a model file also
takes a weights name.

Downloads stream into ``<cache>/weights/<name>/<file>.part`` while their SHA-256 is computed;
an interrupted download resumes with an HTTP ``Range`` request; the digest is checked before
the file is renamed into place, and only then is the file converted (the converted checkpoint
records the source digest). A lock file per entry makes concurrent processes safe: the second
waits for the first and uses its result. Downloaded ``.pth`` files are read only through the
weights-only readers of the importers.

Environment:

* ``NORMEXPORT_HOME``: the cache root (default: the user cache directory, ``platformdirs``).
* ``NORMEXPORT_OFFLINE=1``: never open a connection; a missing file is an error that says
  which file to put where.
* ``NORMEXPORT_WEIGHTS_MIRROR=URL``: replace the scheme and host of every ``http(s)`` URL
  (air-gapped sites); the mirror's path is put in front of the URL's path.
* ``NORMEXPORT_WEIGHTS_REGISTRY=FILE``: a further registry file whose entries are added to the
  shipped ones (a site's own weights); its relative ``file`` and ``labels`` paths are read
  beside it.
* ``NORMEXPORT_DOWNLOAD_TIMEOUT``: seconds to wait for a connection or for data (default 30).
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

try:
    import tomllib
except ImportError:  # Python 3.10: the same parser, as a package
    import tomli as tomllib  # type: ignore[no-redef]

from normresnet_export import vocabulary
from normresnet_export._io import atomic_write
from normresnet_export._render import CATALOGUE_COLUMNS, Column
from normresnet_export.errors import CheckFailedError, InputError, NormexportError, first_line
from normresnet_export.preprocess import Preprocessing

#: ``source`` values of a registry entry: every importer's, and ``normexport`` for our own format.
SOURCES: tuple[str, ...] = vocabulary.WEIGHT_SOURCES

#: The registry and the files shipped with the project.
#: ``weights/`` of the repository, reached through the package's link to it (``shipped_weights``),
#: which a wheel replaces by a copy of the files.
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped_weights"
REGISTRY_FILE = SHIPPED_DIR / "registry.toml"

#: File endings that make a missing argument a missing *file* rather than an unknown weights name.
_FILE_SUFFIXES = (
    ".pt",
    ".pth",
    ".safetensors",
    ".onnx",
    ".pt2",
    ".ts",
    ".torchscript",
    ".ckpt",
    ".bin",
    ".zip",
)
_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z0-9][a-z0-9_]*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX_PREFIX = re.compile(r"^[0-9a-f]{8,63}$")
_CHUNK = 1 << 20
_CHECKPOINT = "checkpoint.safetensors"
_RECORD = "record.json"

_FIELDS = {
    "name": str,
    "arch": str,
    "source": str,
    "description": str,
    "license": str,
    "default": bool,
    "file": str,
    "url": (str, list),
    "sha256": str,
    "sha256_prefix": str,
    "unpublished_hash": bool,
    "size": int,
    "labels": str,
    "model_kwargs": dict,
    "preprocessing": dict,
    "metrics": dict,
    "train_command": str,
}
_REQUIRED = ("name", "arch", "source", "description", "license")


# --------------------------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class WeightsEntry:
    """One registry entry, validated when the registry is read.

    Attributes:
        name: ``ARCH.TAG``, e.g. ``resnet20.digits``; what users type.
        arch: The registered model the weights belong to.
        source: Which importer converts the file (:data:`SOURCES`).
        description: One line for ``weights list``.
        license: The weights' licence, as their publisher states it.
        default: The entry ``create_model(arch, pretrained=True)`` takes (at most one per arch).
        file: A file shipped beside the registry (shipped entries), else ``None``.
        urls: Where the file is published (``http``, ``https`` or ``file``), tried in order.
        sha256: The full SHA-256 of the file, when known.
        sha256_prefix: The leading hex digits of the SHA-256, when only those are published.
        unpublished_hash: No digest is published at all: the first download's is recorded and
            every later use is checked against it.
        size: The file's size in bytes, when known (checked after the download).
        labels: A label file (one class name a line) beside the registry, else ``None``.
        model_kwargs: Builder keywords the weights need (others take the builder's defaults).
        preprocessing: How inputs are prepared, else the importer's (or the checkpoint's).
        metrics: Reported accuracy (``top1``, ``top5`` in percent) and where it comes from.
        train_command: For weights this project trains: the exact ``normexport train`` command.
        base: The directory relative ``file`` and ``labels`` paths are read from.
    """

    name: str
    arch: str
    source: str
    description: str
    license: str
    default: bool = False
    file: str | None = None
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    sha256_prefix: str | None = None
    unpublished_hash: bool = False
    size: int | None = None
    labels: str | None = None
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    preprocessing: Preprocessing | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    train_command: str | None = None
    base: Path = SHIPPED_DIR

    @property
    def shipped(self) -> bool:
        """Whether the file comes with the project (no download)."""
        return self.file is not None

    @property
    def shipped_path(self) -> Path:
        """The shipped file (only for shipped entries)."""
        assert self.file is not None
        return self.base / self.file

    @property
    def file_name(self) -> str:
        """The downloaded file's name in the cache: the last part of its first URL."""
        if self.file is not None:
            return Path(self.file).name
        return Path(unquote(urlsplit(self.urls[0]).path)).name

    @property
    def accuracy(self) -> float | None:
        """Reported top-1 accuracy in percent, if any."""
        top1 = self.metrics.get("top1")
        return float(top1) if isinstance(top1, (int, float)) else None

    def expected_digest(self) -> str:
        """What the SHA-256 must be (or start with), in words, for messages."""
        if self.sha256:
            return self.sha256
        if self.sha256_prefix:
            return f"{self.sha256_prefix}… (published prefix)"
        return "the digest recorded at the first download"

    def matches(self, digest: str, recorded: str | None = None) -> bool:
        """Whether a file's full ``digest`` is the one this entry (or the first download) names."""
        if self.sha256:
            return digest == self.sha256
        if self.sha256_prefix and not digest.startswith(self.sha256_prefix):
            return False
        return recorded is None or digest == recorded


def _entry_from_table(table: Mapping[str, Any], where: str, base: Path) -> WeightsEntry:
    """Validate one ``[[weights]]`` table; every problem names the entry and the field."""
    name = table.get("name")
    label = f"{where}: entry {name!r}" if isinstance(name, str) else f"{where}: an entry without a name"

    def bad(field_name: str, expected: str) -> InputError:
        return InputError(
            f"{label}, field {field_name!r}: expected {expected}, got {table.get(field_name)!r}"
        )

    unknown = sorted(set(table) - set(_FIELDS))
    if unknown:
        raise InputError(f"{label}: unknown field {unknown[0]!r}; the fields are {', '.join(_FIELDS)}")
    for key in _REQUIRED:
        if key not in table:
            raise InputError(f"{label}: field {key!r} is missing")
    for key, kind in _FIELDS.items():
        if key in table and (
            not isinstance(table[key], kind) or (kind is int and isinstance(table[key], bool))
        ):
            raise bad(key, f"a {kind.__name__ if isinstance(kind, type) else 'string or list of strings'}")
    if not _NAME.match(name) or name.endswith(_FILE_SUFFIXES):
        raise bad("name", "ARCH.TAG in lower case letters, digits and '_', e.g. 'resnet20.digits'")
    from normresnet_export.models import model_info

    try:
        info = model_info(table["arch"])
    except InputError as exc:
        raise InputError(f"{label}, field 'arch': {exc}") from None
    if not name.startswith(table["arch"] + "."):
        raise bad("name", f"a name that starts with its arch, {table['arch']!r}.")
    if table["source"] not in SOURCES:
        raise bad("source", f"one of {', '.join(SOURCES)}")
    urls = table.get("url", [])
    urls = [urls] if isinstance(urls, str) else urls
    if ("file" in table) == bool(urls):
        raise InputError(f"{label}: give exactly one of 'file' (shipped beside the registry) or 'url'")
    for url in urls:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https", "file") or not parts.path.strip("/"):
            raise bad("url", "http://, https:// or file:// URLs of a file")
        if parts.scheme != "file" and not parts.netloc:
            raise bad("url", "URLs with a host")
    if "sha256" in table and not _HEX64.match(table["sha256"]):
        raise bad("sha256", "64 lower-case hex digits")
    if "sha256_prefix" in table and not _HEX_PREFIX.match(table["sha256_prefix"]):
        raise bad("sha256_prefix", "8 to 63 lower-case hex digits")
    hashes = sum(key in table for key in ("sha256", "sha256_prefix")) + bool(table.get("unpublished_hash"))
    if hashes != 1:
        raise InputError(
            f"{label}: give exactly one of 'sha256', 'sha256_prefix' or 'unpublished_hash = true'"
        )
    if "file" in table and "sha256" not in table:
        raise InputError(f"{label}: a shipped file needs its full 'sha256'")
    if "size" in table and table["size"] < 1:
        raise bad("size", "a positive number of bytes")
    try:
        preprocessing = Preprocessing.from_dict(table["preprocessing"]) if "preprocessing" in table else None
        kwargs = dict(table.get("model_kwargs", {}))
        info.resolve_kwargs(**kwargs)
    except InputError as exc:
        raise InputError(f"{label}: {exc}") from None
    metrics = dict(table.get("metrics", {}))
    for key, value in metrics.items():
        if key in ("top1", "top5") and not (isinstance(value, (int, float)) and 0 <= value <= 100):
            raise InputError(f"{label}, field 'metrics.{key}': expected a percentage, got {value!r}")
    if "labels" in table and not (base / table["labels"]).is_file():
        raise InputError(f"{label}, field 'labels': {base / table['labels']} does not exist")
    if "train_command" in table and not table["train_command"].startswith(
        f"normexport train {table['arch']} "
    ):
        raise bad("train_command", f"a 'normexport train {table['arch']} ...' command")
    return WeightsEntry(
        name=name,
        arch=table["arch"],
        source=table["source"],
        description=table["description"],
        license=table["license"],
        default=table.get("default", False),
        file=table.get("file"),
        urls=tuple(urls),
        sha256=table.get("sha256"),
        sha256_prefix=table.get("sha256_prefix"),
        unpublished_hash=table.get("unpublished_hash", False),
        size=table.get("size"),
        labels=table.get("labels"),
        model_kwargs=kwargs,
        preprocessing=preprocessing,
        metrics=metrics,
        train_command=table.get("train_command"),
        base=base,
    )


def read_registry(path: str | os.PathLike[str]) -> dict[str, WeightsEntry]:
    """Read and validate a registry file; entries keep the file's order.

    Raises:
        InputError: The file is missing or not TOML, or an entry is invalid (the message names
            the entry and the field), or two entries share a name or claim the same default.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"the weights registry {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"the weights registry {path} cannot be read: {first_line(exc)}") from None
    tables = data.get("weights", [])
    if set(data) - {"weights"} or not isinstance(tables, list):
        raise InputError(f"{path}: expected only [[weights]] tables, got {', '.join(sorted(data))}")
    entries: dict[str, WeightsEntry] = {}
    for table in tables:
        entry = _entry_from_table(table, str(path), path.parent)
        if entry.name in entries:
            raise InputError(f"{path}: entry {entry.name!r} appears twice")
        entries[entry.name] = entry
    return entries


_LOADED: dict[tuple[str, int], dict[str, WeightsEntry]] = {}


def _cached_read(path: Path) -> dict[str, WeightsEntry]:
    try:
        key = (str(path.resolve()), path.stat().st_mtime_ns)
    except OSError:
        return read_registry(path)  # reports the missing file
    if key not in _LOADED:
        _LOADED[key] = read_registry(path)
    return _LOADED[key]


def registry() -> dict[str, WeightsEntry]:
    """Every entry: the shipped registry's, then those of ``$NORMEXPORT_WEIGHTS_REGISTRY``.

    Raises:
        InputError: A registry file is invalid, a name appears in both, or an arch has two defaults.
    """
    entries = dict(_cached_read(REGISTRY_FILE))
    extra = os.environ.get("NORMEXPORT_WEIGHTS_REGISTRY")
    if extra:
        for name, entry in _cached_read(Path(extra)).items():
            if name in entries:
                raise InputError(f"{extra}: entry {name!r} is already in {REGISTRY_FILE}; rename it")
            entries[name] = entry
    defaults: dict[str, str] = {}
    for entry in entries.values():
        if entry.default:
            if entry.arch in defaults:
                raise InputError(
                    f"the weights registry marks both {defaults[entry.arch]!r} and {entry.name!r} as the "
                    f"default for {entry.arch}; keep one"
                )
            defaults[entry.arch] = entry.name
    return entries


def _closest(name: str, names: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return f"{hint}(`normexport weights list` lists them)"


def get_entry(name: str) -> WeightsEntry:
    """The registry entry called ``name``.

    Raises:
        InputError: No such entry; the message names the closest ones.
    """
    entries = registry()
    if name not in entries:
        raise InputError(f"unknown weights {name!r}; {_closest(name, entries)}")
    return entries[name]


def default_entry(arch: str) -> WeightsEntry:
    """The entry ``create_model(arch, pretrained=True)`` loads.

    Raises:
        InputError: ``arch`` has no default weights; the message lists the weights it has.
    """
    entries = [e for e in registry().values() if e.arch == arch]
    for entry in entries:
        if entry.default:
            return entry
    others = f"; its weights are {', '.join(e.name for e in entries)}" if entries else ""
    raise InputError(
        f"{arch} has no default pretrained weights{others} (`normexport weights list` lists them all)"
    )


# --------------------------------------------------------------------------------------------- cache


def cache_root() -> Path:
    """``$NORMEXPORT_HOME``, else the user cache directory of normexport."""
    home = os.environ.get("NORMEXPORT_HOME")
    if home:
        return Path(home)
    import platformdirs

    return Path(platformdirs.user_cache_dir("normexport"))


def entry_dir(name: str) -> Path:
    """Where an entry's download, converted checkpoint, record and lock live."""
    return cache_root() / "weights" / name


def _offline() -> bool:
    return os.environ.get("NORMEXPORT_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def _mirrored(url: str) -> str:
    """``url`` with its scheme and host replaced by ``$NORMEXPORT_WEIGHTS_MIRROR``'s."""
    mirror = os.environ.get("NORMEXPORT_WEIGHTS_MIRROR", "").strip()
    parts = urlsplit(url)
    if not mirror or parts.scheme not in ("http", "https"):
        return url
    base = urlsplit(mirror)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise InputError(
            f"NORMEXPORT_WEIGHTS_MIRROR must be an http:// or https:// URL with a host, got {mirror!r}"
        )
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, ""))


def _timeout() -> float:
    value = os.environ.get("NORMEXPORT_DOWNLOAD_TIMEOUT", "30")
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 3600:
        raise InputError(f"NORMEXPORT_DOWNLOAD_TIMEOUT must be 0 to 3600 seconds, got {value!r}")
    return seconds


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _read_record(directory: Path) -> dict[str, Any]:
    try:
        record = json.loads((directory / _RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _write_record(directory: Path, record: Mapping[str, Any]) -> None:
    with atomic_write(directory / _RECORD) as handle:
        handle.write((json.dumps(dict(record), indent=2) + "\n").encode())


def is_cached(entry: WeightsEntry) -> bool:
    """Whether the converted checkpoint is ready (shipped entries always are)."""
    if entry.shipped:
        return entry.shipped_path.is_file()
    directory = entry_dir(entry.name)
    return (directory / _CHECKPOINT).is_file() and bool(_read_record(directory).get("checkpoint_sha256"))


# --------------------------------------------------------------------------------------------- download


def _stream(url: str, part: Path, entry: WeightsEntry) -> None:
    """Append ``url``'s bytes to ``part``, resuming from its size with a Range request."""
    import httpx

    from normresnet_export._render import progress_bar

    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    timeout = _timeout()
    host = urlsplit(url).netloc
    received = 0
    try:
        with httpx.stream("GET", url, headers=headers, timeout=timeout, follow_redirects=True) as response:
            if response.status_code == 416 and offset:  # the part is already whole (or not this file)
                part.unlink()
                return _stream(url, part, entry)
            if response.status_code not in (200, 206):
                raise InputError(
                    f"downloading {entry.name}: {url} answered HTTP {response.status_code} "
                    f"{response.reason_phrase}; check the URL or set NORMEXPORT_WEIGHTS_MIRROR"
                )
            if response.status_code == 200:
                offset = 0  # the server ignored the Range: start again
            length = response.headers.get("content-length")
            total = offset + int(length) if length and length.isdigit() else 0
            with (
                part.open("ab" if offset else "wb") as handle,
                progress_bar(total, f"downloading {entry.name}", minimum=_CHUNK) as advance,
            ):
                advance(offset)
                for chunk in response.iter_bytes():
                    handle.write(chunk)
                    received += len(chunk)
                    advance(len(chunk))
            if total and offset + received < total:
                raise httpx.RemoteProtocolError("the server closed the connection early")
    except httpx.TimeoutException:
        raise InputError(
            f"downloading {entry.name}: {host} did not answer within {timeout:g} s; try again later "
            "or raise NORMEXPORT_DOWNLOAD_TIMEOUT"
        ) from None
    except httpx.HTTPError as exc:
        have = part.stat().st_size if part.exists() else 0
        kept = f"; {have:,} bytes are kept and the next run resumes" if have else ""
        raise InputError(f"downloading {entry.name} from {host} failed ({first_line(exc)}){kept}") from None


def _copy_local(url: str, part: Path, entry: WeightsEntry) -> None:
    source = Path(unquote(urlsplit(url).path))
    try:
        with source.open("rb") as reader, part.open("wb") as writer:
            while chunk := reader.read(_CHUNK):
                writer.write(chunk)
    except OSError as exc:
        raise InputError(f"copying {entry.name} from {url} failed: {exc.strerror or exc}") from None


def _missing_offline(entry: WeightsEntry, final: Path) -> InputError:
    return InputError(
        f"NORMEXPORT_OFFLINE is set and {entry.name} is not cached: put {entry.file_name} "
        f"(sha256 {entry.expected_digest()}, from {entry.urls[0]}) at {final}, or unset NORMEXPORT_OFFLINE"
    )


def _download(entry: WeightsEntry, directory: Path) -> tuple[Path, str]:
    """Fetch the entry's file into the cache, verified; return its path and full digest."""
    final = directory / entry.file_name
    part = final.with_name(final.name + ".part")
    recorded = _read_record(directory).get("sha256")
    if final.is_file():  # verified before, or put here by hand (offline sites)
        digest = sha256_file(final)
        if entry.matches(digest, recorded):
            return final, digest
        final.unlink()
        if _offline():
            raise CheckFailedError(
                f"{final} has sha256 {digest}, expected {entry.expected_digest()}; it was removed: put the "
                f"right {entry.file_name} there"
            )
    if _offline():
        raise _missing_offline(entry, final)
    problem: InputError | None = None
    for url in entry.urls:
        url = _mirrored(url)
        try:
            if urlsplit(url).scheme == "file":
                _copy_local(url, part, entry)
            else:
                _stream(url, part, entry)
        except InputError as exc:
            problem = exc
            continue
        digest = sha256_file(part)
        size = part.stat().st_size
        if not entry.matches(digest, recorded) or (entry.size is not None and size != entry.size):
            part.unlink()
            got = f"sha256 {digest}" + (f" ({size:,} bytes, expected {entry.size:,})" if entry.size else "")
            raise CheckFailedError(
                f"{entry.name}: the file from {url} has {got}, expected sha256 {entry.expected_digest()}; "
                "it was deleted and nothing was cached"
            )
        os.replace(part, final)
        return final, digest
    assert problem is not None
    raise problem


def _convert(entry: WeightsEntry, raw: Path, digest: str, destination: Path) -> None:
    """Convert a verified download into a checkpoint of this project's format at ``destination``."""
    from normresnet_export.checkpoint import load_checkpoint

    if entry.source == vocabulary.NATIVE_SOURCE:
        checkpoint = load_checkpoint(raw)
    else:
        from normresnet_export.interop.api import import_checkpoint

        checkpoint = import_checkpoint(raw, source=entry.source, arch=entry.arch, **dict(entry.model_kwargs))
    _check_fits(entry, checkpoint.arch, checkpoint.model_kwargs, str(raw))
    labels = read_labels(entry) if entry.labels else checkpoint.labels
    checkpoint = dataclasses.replace(
        checkpoint,
        labels=labels,
        preprocessing=entry.preprocessing or checkpoint.preprocessing,
        metrics={**checkpoint.metrics, "weights": entry.name, "source_sha256": digest},
        train_state=None,
    )
    checkpoint.save(destination, inputs=[raw])


def _check_fits(entry: WeightsEntry, arch: str, kwargs: Mapping[str, Any], where: str) -> None:
    if arch != entry.arch:
        raise InputError(f"{where} holds {arch}, but the registry entry {entry.name} says {entry.arch}")
    wrong = {k: v for k, v in entry.model_kwargs.items() if kwargs.get(k) != v}
    if wrong:
        key = next(iter(wrong))
        raise InputError(
            f"{where} was built with {key}={kwargs.get(key)!r}, but the registry entry {entry.name} "
            f"says {key}={wrong[key]!r}"
        )


def read_labels(entry: WeightsEntry) -> list[str] | None:
    """The class names of the entry's label file (one a line), or ``None``."""
    if entry.labels is None:
        return None
    return [
        line.strip()
        for line in (entry.base / entry.labels).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def _check_shipped(entry: WeightsEntry) -> Path:
    path = entry.shipped_path
    if not path.is_file():
        raise InputError(
            f"{entry.name}: the shipped file {path} is missing; run `make weights` to rebuild it"
        )
    digest = sha256_file(path)
    if digest != entry.sha256:
        raise CheckFailedError(
            f"{entry.name}: {path} has sha256 {digest}, expected {entry.sha256}; the file is damaged "
            "(restore it from the repository, or run `make weights`)"
        )
    return path


def fetch(name: str, *, force: bool = False) -> Path:
    """The converted checkpoint of the entry ``name``, downloading and converting it if needed.

    Args:
        name: A registry entry.
        force: Download and convert again even when cached.

    Returns:
        The checkpoint's path: the shipped file, or ``<cache>/weights/<name>/checkpoint.safetensors``.

    Raises:
        InputError: Unknown name, offline without the file, or a download that failed (HTTP
            error, timeout, dropped connection: a partial file is kept for the next run).
        CheckFailedError: The file's SHA-256 is not the registry's (the file is deleted).
    """
    entry = get_entry(name)
    if entry.shipped:
        return _check_shipped(entry)
    import filelock

    directory = entry_dir(entry.name)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot create the weights cache {directory}: {exc.strerror}; set NORMEXPORT_HOME"
        ) from None
    checkpoint = directory / _CHECKPOINT
    with filelock.FileLock(str(directory / ".lock")):
        record = _read_record(directory)
        if force:
            for stale in (checkpoint, directory / entry.file_name, directory / _RECORD):
                stale.unlink(missing_ok=True)
            record = {}
        if checkpoint.is_file() and record.get("checkpoint_size") == checkpoint.stat().st_size:
            return checkpoint
        raw, digest = _download(entry, directory)
        first = not record.get("sha256")
        _convert(entry, raw, digest, checkpoint)
        _write_record(
            directory,
            {
                "name": entry.name,
                "file": raw.name,
                "sha256": digest,
                "size": raw.stat().st_size,
                "checkpoint_sha256": sha256_file(checkpoint),
                "checkpoint_size": checkpoint.stat().st_size,
            },
        )
        if first and not entry.sha256:
            print(
                f"{entry.name}: recorded the full sha256 {digest} of the first verified download",
                file=sys.stderr,
            )
    return checkpoint


def resolve_model_file(spec: str | os.PathLike[str]) -> Path:
    """A model file argument: an existing path as it is, a weights name as its checkpoint.

    What looks like a file (a directory part, or a model file's suffix such as ``.pt``) but
    does not exist is returned as it is, so the caller reports the missing file as it always
    has. A weights name is downloaded, verified and converted if needed (see :func:`fetch`).

    Raises:
        InputError: Neither a file nor a weights name (the message names the closest names),
            or the weights cannot be fetched (see :func:`fetch`).
        CheckFailedError: Downloaded weights whose SHA-256 is wrong.
    """
    path = Path(spec)
    text = os.fspath(spec)
    if path.exists():
        return path
    if (
        isinstance(spec, os.PathLike)
        or os.sep in text
        or "/" in text
        or path.suffix.lower() in _FILE_SUFFIXES
    ):
        return path
    entries = registry()
    if text in entries:
        return fetch(text)
    raise InputError(f"{text!r} is neither a file nor a pretrained weights name; {_closest(text, entries)}")


# --------------------------------------------------------------------------------------------- commands


@dataclass
class VerifyReport:
    """What ``weights verify`` found: one row per entry; ``passed`` when none is damaged."""

    rows: list[dict[str, Any]]

    @property
    def passed(self) -> bool:
        return all(row["status"] != "damaged" for row in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "weights": self.rows}


#: Columns of ``normexport weights list``.
LIST_COLUMNS = (
    Column("name", "name"),
    Column("arch", "arch"),
    Column("source", "source"),
    Column("size", "size", justify="right", format=lambda n: "?" if n is None else f"{n / 1e6:.1f} MB"),
    Column("location", "where"),
    Column("accuracy", "top-1", justify="right", format=lambda a: "" if a is None else f"{a:.2f}%"),
    Column("dataset", "evaluated on"),
)
#: Columns of ``normexport weights verify`` and ``download``.
STATUS_COLUMNS = (
    Column("name", "name"),
    Column("status", "status"),
    Column("detail", "detail"),
)
#: Columns of ``normexport models``: the catalogue's and the weights each model has.
MODEL_COLUMNS = (*CATALOGUE_COLUMNS, Column("weights", "weights", format=", ".join))


def _selected(names: Sequence[str] | None) -> list[WeightsEntry]:
    return [get_entry(n) for n in names] if names else list(registry().values())


def list_weights(pattern: str | None = None) -> list[dict[str, Any]]:
    """One row per registry entry (filtered by a shell-style ``pattern``): what ``weights list`` shows.

    Each row has ``name``, ``arch``, ``source``, ``size`` (bytes, when known), ``cached``,
    ``location`` (``shipped`` with the project, in the ``cache``, or ``remote``),
    ``sha256`` (the registry's full digest, else the one recorded at the first download, else
    ``None``), ``sha256_prefix``, ``accuracy`` (top-1 %), ``dataset`` (what it was measured
    on), ``default``, ``license``, ``description`` and ``urls``.
    """
    rows = []
    for entry in registry().values():
        if pattern is not None and not fnmatch.fnmatchcase(entry.name, pattern):
            continue
        record = {} if entry.shipped else _read_record(entry_dir(entry.name))
        rows.append(
            {
                "name": entry.name,
                "arch": entry.arch,
                "source": entry.source,
                "size": entry.size or record.get("size"),
                "cached": is_cached(entry),
                "location": "shipped" if entry.shipped else "cache" if is_cached(entry) else "remote",
                "sha256": entry.sha256 or record.get("sha256"),
                "sha256_prefix": entry.sha256_prefix,
                "accuracy": entry.accuracy,
                "dataset": entry.metrics.get("dataset", ""),
                "default": entry.default,
                "license": entry.license,
                "description": entry.description,
                "urls": list(entry.urls),
            }
        )
    return rows


def download(names: Sequence[str], *, force: bool = False) -> list[dict[str, Any]]:
    """Fetch each named entry (see :func:`fetch`); one row per entry with its checkpoint path."""
    entries = _selected(names)  # every name checked before anything is fetched
    rows = []
    for entry in entries:
        path = fetch(entry.name, force=force)
        rows.append({"name": entry.name, "status": "ok", "detail": str(path), "path": str(path)})
    return rows


def verify(names: Sequence[str] | None = None) -> VerifyReport:
    """Re-hash what is cached (and the shipped files) against the registry and the cache's record.

    An entry is ``ok``, ``not cached`` or ``damaged`` (a truncated or altered download or
    checkpoint; ``weights download NAME --force`` fetches it again).
    """
    rows = []
    for entry in _selected(names):
        status, detail = "ok", ""
        if entry.shipped:
            try:
                detail = str(_check_shipped(entry))
            except NormexportError as exc:
                status, detail = "damaged", str(exc)
        else:
            directory = entry_dir(entry.name)
            record = _read_record(directory)
            raw, checkpoint = directory / entry.file_name, directory / _CHECKPOINT
            if not record and not raw.exists() and not checkpoint.exists():
                status, detail = "not cached", ""
            else:
                problems = []
                if not raw.is_file():
                    problems.append(f"{raw.name} is missing")
                else:
                    digest = sha256_file(raw)
                    if not entry.matches(digest, record.get("sha256")):
                        problems.append(
                            f"{raw.name} has sha256 {digest}, "
                            f"expected {record.get('sha256') or entry.expected_digest()}"
                        )
                if not checkpoint.is_file():
                    problems.append(f"{checkpoint.name} is missing")
                elif sha256_file(checkpoint) != record.get("checkpoint_sha256"):
                    problems.append(
                        f"{checkpoint.name} does not match the digest recorded when it was converted"
                    )
                if problems:
                    status = "damaged"
                    detail = "; ".join(problems) + f"; run `normexport weights download {entry.name} --force`"
                else:
                    detail = f"sha256 {record.get('sha256')}"
        rows.append({"name": entry.name, "status": status, "detail": detail})
    return VerifyReport(rows)


# --------------------------------------------------------------------------------------------- models


def create_model(
    name: str,
    *,
    weights: str | None = None,
    pretrained: bool = False,
    num_classes: int | None = None,
    **kwargs: Any,
) -> Any:
    """Build a registered model, optionally with pretrained weights (as torchvision and timm do).

    Args:
        name: A registered model name.
        weights: A weights entry of that model (``"resnet20.digits"``); ``None`` for none.
        pretrained: Load the model's default weights (the entry marked ``default``).
        num_classes: Classifier size; with weights it must agree with them.
        **kwargs: Builder keywords; with weights they must agree with the entry's.

    Returns:
        Without weights, the freshly initialised model in training mode; with weights, the
        loaded model in eval mode (a folded network for folded weights).

    Raises:
        UnknownModelError: Unknown model name.
        InputError: Unknown weights, weights of another model, no default weights, or a
            ``num_classes`` or keyword that contradicts the weights.
    """
    from normresnet_export import models

    if weights is None and not pretrained:
        return models.create_model(name, num_classes=num_classes, **kwargs)
    info = models.model_info(name)
    entry = get_entry(weights) if weights is not None else default_entry(name)
    if entry.arch != name:
        raise InputError(
            f"weights {entry.name} belong to {entry.arch}, not {name}; use create_model({entry.arch!r}, ...)"
        )
    from normresnet_export.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(fetch(entry.name))
    asked = {**kwargs, **({"num_classes": num_classes} if num_classes is not None else {})}
    resolved = info.resolve_kwargs(**asked)
    for key in asked:
        if checkpoint.model_kwargs.get(key) != resolved[key]:
            raise InputError(
                f"{key}={resolved[key]!r} contradicts the weights {entry.name} "
                f"({key}={checkpoint.model_kwargs.get(key)!r}); "
                f"drop {key} or build the model without weights"
            )
    return checkpoint.model


def list_models(
    pattern: str | None = None,
    *,
    family: str | None = None,
    dataset: str | None = None,
    pretrained: bool = False,
) -> list[str]:
    """Registered model names (see :func:`normresnet_export.models.list_models`); with ``pretrained``,
    only those that have weights in the registry."""
    from normresnet_export import models

    names = models.list_models(pattern, family=family, dataset=dataset)  # type: ignore[arg-type]
    if not pretrained:
        return names
    with_weights = {entry.arch for entry in registry().values()}
    return [n for n in names if n in with_weights]


def model_catalogue(
    pattern: str | None = None, *, family: str | None = None, dataset: str | None = None
) -> list[dict[str, Any]]:
    """The model catalogue (``normexport models``) with a ``weights`` list per model."""
    from normresnet_export.models import catalogue

    by_arch: dict[str, list[str]] = {}
    for entry in registry().values():
        by_arch.setdefault(entry.arch, []).append(entry.name)
    rows = catalogue(pattern, family=family, dataset=dataset)  # type: ignore[arg-type]
    return [{**row, "weights": by_arch.get(row["name"], [])} for row in rows]


# --------------------------------------------------------------------------------------------- README


def readme_table() -> str:
    """The README's table of registry entries (a test keeps the README equal to it)."""
    lines = [
        "| name | arch | source | top-1 | evaluated on | license |",
        "|---|---|---|---|---|---|",
    ]
    for entry in registry().values():
        accuracy = "" if entry.accuracy is None else f"{entry.accuracy:.2f}%"
        default = " (default)" if entry.default else ""
        lines.append(
            f"| `{entry.name}`{default} | {entry.arch} | {entry.source} | {accuracy} | "
            f"{entry.metrics.get('dataset', '')} | {entry.license} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- shipped


def _replace_in_entry(text: str, name: str, key: str, value: str) -> str:
    """Set ``key = value`` inside the ``[[weights]]`` block of ``name`` (the registry's own layout)."""
    start = text.index(f'name = "{name}"')
    end = text.find("[[weights]]", start)
    end = len(text) if end < 0 else end
    block, count = re.subn(rf"(?m)^{re.escape(key)} = .*$", f"{key} = {value}", text[start:end], count=1)
    if count != 1:
        raise InputError(f"{REGISTRY_FILE}: entry {name!r} has no line '{key} = ...' to update")
    return text[:start] + block + text[end:]


def rebuild_shipped(
    names: Sequence[str] | None = None, *, executable: str | None = None
) -> list[dict[str, Any]]:
    """Retrain the shipped weights with their recorded commands and update the registry (``make weights``).

    Each entry's ``train_command`` runs as it is written (into a temporary run directory), then
    :func:`ship_run` writes and measures its best checkpoint.

    Args:
        names: Entries to rebuild (default: every shipped entry with a ``train_command``).
        executable: The ``normexport`` program (default: the one beside this Python).
    """
    program = executable or str(Path(sys.executable).with_name("normexport"))
    entries = [e for e in _selected(names) if e.shipped and e.train_command]
    rows = []
    for entry in entries:
        assert entry.train_command is not None
        with tempfile.TemporaryDirectory(prefix="normexport-weights-") as tmp:
            run = Path(tmp) / "run"
            print("$", entry.train_command, file=sys.stderr, flush=True)
            argv = [program, *shlex.split(entry.train_command)[1:], "--out", str(run)]
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
            rows.append(ship_run(entry.name, run, program=program))
    return rows


def ship_run(name: str, run: str | os.PathLike[str], *, program: str = "normexport") -> dict[str, Any]:
    """Write a training run's best checkpoint as the shipped file of entry ``name``, and record it.

    The file is the ``.safetensors`` form (no training state), with the entry's labels; its
    accuracy on the digits test split is measured with ``normexport check``; the entry's
    ``sha256``, ``size`` and ``metrics.top1`` lines in ``registry.toml`` are rewritten.
    """
    from normresnet_export.checkpoint import load_checkpoint

    entry = get_entry(name)
    checkpoint = load_checkpoint(Path(run) / "best.pt")
    _check_fits(entry, checkpoint.arch, checkpoint.model_kwargs, str(run))
    checkpoint = dataclasses.replace(
        checkpoint,
        labels=read_labels(entry) or checkpoint.labels,
        metrics={k: v for k, v in checkpoint.metrics.items() if k in ("epoch", "dataset", "top1")},
        train_state=None,
    )
    checkpoint.save(entry.shipped_path)
    top1 = measure_digits_accuracy(entry.shipped_path, program=program)
    size = entry.shipped_path.stat().st_size
    text = REGISTRY_FILE.read_text(encoding="utf-8")
    text = _replace_in_entry(text, entry.name, "sha256", f'"{sha256_file(entry.shipped_path)}"')
    text = _replace_in_entry(text, entry.name, "size", str(size))
    text = _replace_in_entry(text, entry.name, "top1", f"{top1:.2f}")
    with atomic_write(REGISTRY_FILE) as handle:
        handle.write(text.encode("utf-8"))
    print(
        f"{entry.name}: top-1 {top1:.2f}% on the digits test split, {size:,} bytes",
        file=sys.stderr,
        flush=True,
    )
    return {"name": entry.name, "top1": top1, "size": size}


#: The images of the digits test split (what the shipped entries' accuracy is measured on).
DIGITS_TEST_IMAGES = 360


def digits_check_command(model: str | os.PathLike[str]) -> list[str]:
    """The ``normexport check`` arguments that measure a model's accuracy on the digits test split."""
    return [
        "check",
        os.fspath(model),
        "--data",
        "digits",
        "--samples",
        str(DIGITS_TEST_IMAGES),
        "--no-latency",
        "--json",
    ]


def measure_digits_accuracy(model: str | os.PathLike[str], *, program: str = "normexport") -> float:
    """Top-1 accuracy (percent) on the digits test split of a model file or weights name, by ``check``."""
    done = subprocess.run(
        [program, *digits_check_command(model)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise CheckFailedError(f"normexport check of {model} failed: {done.stderr.strip()[-300:]}")
    return round(100 * float(json.loads(done.stdout)["reference_accuracy"]), 2)
