"""Stages of a long step, announced to whoever listens: one hook for export, fold and import.

Exporting or folding a thousand-layer network takes tens of seconds spent in a few stages
(``load``, ``trace``, ``fold``, ``export``, ``verify``, ``write``). The code doing the work calls
:func:`stage` as it enters each one; that costs nothing when no one listens. The command line
listens through :func:`normresnet_export._render.stage_spinner`, which shows the current stage
on a terminal's stderr; a library user may pass any callable to :func:`listening`.

The listener is held in a :class:`contextvars.ContextVar`, so concurrent callers (threads,
tasks) each see only their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

_LISTENER: ContextVar[Callable[[str], None] | None] = ContextVar("normexport_stage_listener", default=None)


def stage(name: str) -> None:
    """Announce that the work enters stage ``name`` (``load``, ``trace``, ``fold``, ``export`` …)."""
    listener = _LISTENER.get()
    if listener is not None:
        listener(name)


@contextlib.contextmanager
def listening(listener: Callable[[str], None]) -> Iterator[None]:
    """Call ``listener(name)`` for every :func:`stage` announced inside the ``with`` block."""
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)
