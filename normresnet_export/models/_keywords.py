"""What a builder keyword takes: its annotated type, text parsed against it, a value checked against it.

The builders are typed, keyword-only functions, so their annotations say what each keyword
takes (``zero_init_residual: bool``, ``tau: float``, ``shortcut: Literal["A", "B", "C",
"conv"]``). Reading ``--model-arg`` text blindly as JSON made ``zero_init_residual=False`` the
truthy string ``"False"`` (zero-init stayed on, and ``config.json`` recorded a string) and
``drop_rate=abc`` a string the builder choked on; parsing against the annotation instead gives
``False``, or one line saying what the keyword takes. The same annotations check the values a
Python caller passes to ``create_model``.

The annotation types understood are ``bool``, ``int``, ``float``, ``str``, ``Literal[...]``,
an :class:`enum.Enum`, and unions of them with ``None`` (``Optional``); anything else is taken
as it comes (JSON if it reads as JSON, else the text).
"""

from __future__ import annotations

import enum
import functools
import inspect
import json
import math
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, Union

#: Spellings of true and false accepted on the command line (compared in lower case).
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
#: Spellings of ``None`` for an ``Optional`` keyword (compared in lower case).
_NONE = ("none", "null")


@functools.cache
def keyword_types(builder: Callable[..., Any]) -> dict[str, Any]:
    """Each keyword-only parameter of ``builder`` and its annotation (``Any`` where there is none)."""
    hints = typing.get_type_hints(builder)
    return {
        p.name: hints.get(p.name, Any)
        for p in inspect.signature(builder).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _members(kind: Any) -> tuple[Any, ...]:
    """The alternatives of a union (``X | None`` included), or ``(kind,)``."""
    if typing.get_origin(kind) in (Union, types.UnionType):
        return typing.get_args(kind)
    return (kind,)


def describe(kind: Any) -> str:
    """What a keyword of annotation ``kind`` takes, in words: ``true or false``, ``one of 'A', 'B'``."""
    words = []
    for member in _members(kind):
        if member is type(None):
            words.append("none")
        elif member is bool:
            words.append("true or false")
        elif member is int:
            words.append("an integer")
        elif member is float:
            words.append("a finite number")
        elif member is str:
            words.append("text")
        elif typing.get_origin(member) is Literal:
            words.append("one of " + ", ".join(repr(v) for v in typing.get_args(member)))
        elif isinstance(member, type) and issubclass(member, enum.Enum):
            words.append("one of " + ", ".join(repr(m.value) for m in member))
        else:
            words.append("any value")
    return " or ".join(words)


def _parse_one(text: str, kind: Any) -> Any:
    """``text`` as a value of the one (non-union) type ``kind``; ``ValueError`` when it is none."""
    lowered = text.strip().lower()
    if kind is type(None):
        if lowered in _NONE:
            return None
    elif kind is bool:
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
    elif kind is int:
        return int(text)
    elif kind is float:
        value = float(text)
        if math.isfinite(value):
            return value
    elif kind is str:
        return text
    elif typing.get_origin(kind) is Literal:
        for choice in typing.get_args(kind):
            if text == str(choice):
                return choice
    elif isinstance(kind, type) and issubclass(kind, enum.Enum):
        for member in kind:
            if text in (str(member.value), member.name):
                return member
    else:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    raise ValueError(text)


def parse_value(text: str, kind: Any) -> Any:
    """``text`` parsed as annotation ``kind`` says (each union member in turn, ``None`` first).

    Raises:
        ValueError: ``text`` is none of what ``kind`` takes.
    """
    members = sorted(_members(kind), key=lambda m: m is not type(None))
    for member in members:
        try:
            return _parse_one(text, member)
        except ValueError:
            continue
    raise ValueError(text)


def accepts(value: Any, kind: Any) -> bool:
    """Whether ``value`` is of a type annotation ``kind`` takes (any value, for an unknown annotation).

    A ``Literal`` is checked for the type of its choices only: which choices there are is the
    builder's to say (its layers refuse another with the list), as for a Python caller before.
    """
    for member in _members(kind):
        if member is type(None):
            ok = value is None
        elif member is bool:
            ok = isinstance(value, bool)
        elif member is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif member is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        elif member is str:
            ok = isinstance(value, str)
        elif typing.get_origin(member) is Literal:  # the type only: the builders name their choices
            ok = any(type(value) is type(choice) for choice in typing.get_args(member))
        elif isinstance(member, type) and issubclass(member, enum.Enum):
            ok = isinstance(value, member) or value in {m.value for m in member}
        else:
            ok = True
        if ok:
            return True
    return False
