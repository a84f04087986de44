"""Error types shared by the library and the CLI.

Every error a user can cause (a bad name, a bad file, a bad option) derives from
:class:`NormexportError`. Its message is one line that says what was expected, what
was received and what to do. The CLI prints that line and exits with ``exit_code``
(2: bad usage or bad input, 1: a check that ran and failed), never a traceback.
"""

from __future__ import annotations


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
