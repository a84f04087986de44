"""Error types shared by the library and the CLI.

Every error a user can cause (a bad name, a bad file, a bad option) derives from
:class:`NormexportError`. Its message is one line that says what was expected, what
was received and what to do. The CLI prints that line and exits with ``exit_code``
(2: bad usage or bad input, 1: a check that ran and failed), never a traceback.
"""

from __future__ import annotations


def first_line(exc: BaseException, *, limit: int | None = 200) -> str:
    """An exception's first non-blank line, cut at ``limit`` characters, for a one-line message.

    Errors from torch, ONNX Runtime or a file format often run to pages; the first line says what
    failed. An exception without text is named by its type.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:limit] if lines else type(exc).__name__


class NormexportError(Exception):
    """Base class of every error normexport raises on purpose."""

    exit_code: int = 2


class InputError(NormexportError, ValueError):
    """Bad user input: an unknown model name, a wrong option, a file that is not what it should be."""


class UnknownModelError(InputError):
    """A model name that is not in the registry."""


class CheckpointError(InputError):
    """A file that cannot be read as a normexport checkpoint (missing, damaged, foreign or unsafe)."""


class CheckFailedError(NormexportError):
    """A numerical check ran and failed (exit code 1)."""

    exit_code = 1
