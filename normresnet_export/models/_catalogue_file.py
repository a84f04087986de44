"""``catalogue.json``: the stored parameter and layer counts of every registered model.

Counting a model means building it: even shape-only on the meta device, the 1000-layer
nets take about a second each, so counting all of them would take over ten seconds.
:class:`~normresnet_export.models.ModelInfo` and ``normexport models`` therefore read
the counts (default keywords) from this file. The module only knows the file, not the
registry, so the registry can read it without importing the code that regenerates it
(:mod:`normresnet_export.models._catalogue`, ``make catalogue``).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

CATALOGUE_PATH = Path(__file__).with_name("catalogue.json")

Counts = dict[str, dict[str, int]]


@functools.lru_cache(maxsize=1)
def load_catalogue() -> Counts:
    """``{name: {"parameters": int, "layers": int}}`` as stored (empty if the file is missing)."""
    try:
        return json.loads(CATALOGUE_PATH.read_text())
    except FileNotFoundError:
        return {}


def save_catalogue(counts: Counts) -> Path:
    """Rewrite ``catalogue.json`` with ``counts``, one model per line in name order (readable diffs)."""
    rows = [f"  {json.dumps(name)}: {json.dumps(c, sort_keys=True)}" for name, c in sorted(counts.items())]
    CATALOGUE_PATH.write_text("{\n" + ",\n".join(rows) + "\n}\n")
    load_catalogue.cache_clear()
    return CATALOGUE_PATH
