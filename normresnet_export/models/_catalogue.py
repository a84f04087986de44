"""Parameter and layer counts of every registered model (default keywords), cached in ``catalogue.json``.

Counting a model means building it: even shape-only on the meta device, the 1000-layer
nets take about a second each, so listing all of them would take over ten seconds.
``normexport models`` therefore reads this file. ``tests/test_registry.py`` rebuilds every
model and fails when the file is stale; refresh it with ``make catalogue``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

CATALOGUE_PATH = Path(__file__).with_name("catalogue.json")


@functools.lru_cache(maxsize=1)
def load_catalogue() -> dict[str, dict[str, int]]:
    """``{name: {"parameters": int, "layers": int}}`` as stored (empty if the file is missing)."""
    try:
        return json.loads(CATALOGUE_PATH.read_text())
    except FileNotFoundError:
        return {}


def compute_catalogue() -> dict[str, dict[str, int]]:
    """Count every registered model afresh (slow: builds each one on the meta device)."""
    from normresnet_export.models._registry import list_models, meta_counts, model_info

    counts = {name: meta_counts(name, model_info(name).default_kwargs) for name in list_models()}
    return {name: {"parameters": params, "layers": layers} for name, (params, layers) in counts.items()}


def write_catalogue() -> Path:
    """Rewrite ``catalogue.json`` from the registry, one model per line (readable diffs)."""
    rows = [
        f"  {json.dumps(name)}: {json.dumps(c, sort_keys=True)}"
        for name, c in sorted(compute_catalogue().items())
    ]
    CATALOGUE_PATH.write_text("{\n" + ",\n".join(rows) + "\n}\n")
    load_catalogue.cache_clear()
    return CATALOGUE_PATH


def catalogue(
    pattern: str | None = None, *, family: str | None = None, dataset: str | None = None
) -> list[dict[str, Any]]:
    """One row per registered model: name, family, dataset, input size, parameters, layers, description.

    Filters as :func:`~normresnet_export.models.list_models`; counts are for the default keywords.
    """
    from normresnet_export.models._registry import list_models, model_info

    rows = []
    for name in list_models(pattern, family=family, dataset=dataset):
        info = model_info(name)
        rows.append(
            {
                "name": name,
                "family": info.family,
                "dataset": info.dataset,
                "input_size": list(info.input_size),
                "num_classes": info.default_kwargs["num_classes"],
                "parameters": info.parameter_count(),
                "layers": info.layer_count(),
                "description": info.description,
            }
        )
    return rows
