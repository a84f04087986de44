"""The stable layout of ``normexport analyze … --json``, as JSON Schema, and a small validator.

The schemas are JSON Schema (draft 2020-12) documents, so any standard validator can check
the output; :func:`validate` implements the subset they use (``type``, ``const``, ``enum``,
``required``, ``properties``, ``additionalProperties``, ``items``, ``minimum``) so that the
package needs no validator dependency. A change to the layout that breaks readers raises
``SCHEMA_VERSION`` (the documents' ``schema`` field).
"""

from __future__ import annotations

from typing import Any

from normresnet_export.analysis.measure import SCHEMA_VERSION
from normresnet_export.errors import InputError
from normresnet_export.vocabulary import ANALYSIS_UNITS


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "additionalProperties": False,
    }


_NUMBER = {"type": "number"}
_SHAPE = {"type": "array", "items": {"type": "integer", "minimum": 0}}
_SPREAD = _object({"mean": _NUMBER, "std": _NUMBER, "min": _NUMBER, "max": _NUMBER})

_UNIT = _object(
    {
        "index": {"type": "integer", "minimum": 0},
        "name": {"type": "string"},
        "kind": {"enum": list(ANALYSIS_UNITS)},
        "transition": {"type": "boolean"},
        "in_shape": _SHAPE,
        "out_shape": _SHAPE,
        "grad_ratio": _SPREAD,
        "forward_ratio": _SPREAD,
    }
)

_MODEL = _object(
    {
        "model": {"type": "string"},
        "source": {"type": "string"},
        "data": {"type": "string"},
        "batch_size": {"type": "integer", "minimum": 2},
        "seed": {"type": "integer"},
        "loss": _NUMBER,
        "units": {"type": "array", "items": _UNIT},
        "seconds": _NUMBER,
        "peak_memory_mb": _NUMBER,
        "transition_deviation": _NUMBER,
        "block_deviation": _NUMBER,
    }
)

#: ``normexport analyze gradnorm --json``: one entry per model, one per unit along its main path.
GRADNORM_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "normexport analyze gradnorm",
    **_object(
        {
            "schema": {"const": SCHEMA_VERSION},
            "kind": {"const": "gradnorm"},
            "models": {"type": "array", "items": _MODEL},
        }
    ),
}

_LAYER = _object(
    {
        "name": {"type": "string"},
        "weight_shape": _SHAPE,
        "stride": _SHAPE,
        "grid": _SHAPE,
        "target": _NUMBER,
        "min": _NUMBER,
        "mean": _NUMBER,
        "max": _NUMBER,
        "max_rel_dev": _NUMBER,
        "norm_preserving": {"type": "boolean"},
    }
)

#: ``normexport analyze spectrum --json``: one entry per convolution measured.
SPECTRUM_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "normexport analyze spectrum",
    **_object(
        {
            "schema": {"const": SCHEMA_VERSION},
            "kind": {"const": "spectrum"},
            "model": {"type": "string"},
            "input_size": _SHAPE,
            "tolerance": _NUMBER,
            "layers": {"type": "array", "items": _LAYER},
            "norm_preserving": {"type": "boolean"},
        }
    ),
}

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
}


def problems(document: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Every way ``document`` breaks ``schema``, as ``path: what is wrong`` lines (empty: valid)."""
    found: list[str] = []
    expected = schema.get("type")
    if expected is not None:
        ok = isinstance(document, _TYPES[expected]) and not (
            expected in ("integer", "number") and isinstance(document, bool)
        )
        if not ok:
            return [f"{where}: expected {expected}, got {type(document).__name__}"]
    if "const" in schema and document != schema["const"]:
        found.append(f"{where}: expected {schema['const']!r}, got {document!r}")
    if "enum" in schema and document not in schema["enum"]:
        found.append(f"{where}: expected one of {schema['enum']}, got {document!r}")
    if "minimum" in schema and document < schema["minimum"]:
        found.append(f"{where}: expected at least {schema['minimum']}, got {document}")
    if isinstance(document, dict):
        properties = schema.get("properties", {})
        found += [f"{where}: missing {key!r}" for key in schema.get("required", []) if key not in document]
        if schema.get("additionalProperties") is False:
            found += [f"{where}: unexpected {key!r}" for key in document if key not in properties]
        for key, value in document.items():
            if key in properties:
                found += problems(value, properties[key], f"{where}.{key}")
    if isinstance(document, list) and "items" in schema:
        for i, item in enumerate(document):
            found += problems(item, schema["items"], f"{where}[{i}]")
    return found


def validate(document: Any, schema: dict[str, Any]) -> None:
    """Check ``document`` against ``schema``.

    Raises:
        InputError: The document does not follow the schema (the first problems are named).
    """
    found = problems(document, schema)
    if found:
        more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
        raise InputError(
            f"the document does not follow {schema.get('title', 'the schema')}: {'; '.join(found[:3])}{more}"
        )
