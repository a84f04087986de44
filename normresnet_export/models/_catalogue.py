"""The model catalogue: one row per registered model, and the regeneration of its stored counts.

The counts come from ``catalogue.json`` (:mod:`normresnet_export.models._catalogue_file`).
``tests/test_registry.py`` rebuilds every model and fails when the file is stale; refresh
it with ``make catalogue``, which calls :func:`write_catalogue`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from normresnet_export.models._catalogue_file import Counts, save_catalogue
from normresnet_export.models._registry import Dataset, list_models, meta_counts, model_info


def compute_catalogue() -> Counts:
    """Count every registered model afresh (slow: builds each one on the meta device)."""
    counts = {name: meta_counts(name, model_info(name).default_kwargs) for name in list_models()}
    return {name: {"parameters": params, "layers": layers} for name, (params, layers) in counts.items()}


def write_catalogue() -> Path:
    """Recount every registered model and rewrite ``catalogue.json``; returns its path."""
    return save_catalogue(compute_catalogue())


def catalogue(
    pattern: str | None = None, *, family: str | None = None, dataset: Dataset | None = None
) -> list[dict[str, Any]]:
    """One row per registered model: name, family, dataset, input size, parameters, layers, description.

    Filters as :func:`~normresnet_export.models.list_models`; counts are for the default keywords.
    """
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
