"""The throughput chart of a check (``--plot``): images/s per backend and batch size, on a log axis."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from normresnet_export._io import atomic_write, check_output
from normresnet_export.check.report import CheckReport
from normresnet_export.errors import InputError


def _pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend.

    Raises:
        InputError: matplotlib is not installed (the message says how to install it).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError(
            "--plot needs matplotlib: pip install 'normresnet-export[plot]' (or pip install matplotlib)"
        ) from None
    return plt


def prepare_plot(
    path: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str] | None] = ()
) -> Path:
    """Check, before a check starts, that its chart can be written to ``path``.

    A check runs for minutes; a ``--plot`` path in a missing directory, a directory, a link or
    one of the files checked, or a missing matplotlib, must fail at once, not after the run.

    Raises:
        InputError: The path is refused (see :func:`normresnet_export._io.check_output`), or
            matplotlib is not installed.
    """
    target = check_output(path, inputs=inputs)
    _pyplot()
    return target


#: The chart's size: 1000×560 pixels, a width that a README shows unscaled.
FIGURE_INCHES, FIGURE_DPI = (10.0, 5.6), 100


def backend_name(row: dict[str, Any]) -> str:
    """A backend as the chart's legend names it: its label, provider and precision."""
    provider = str(row.get("provider", "")).removesuffix("ExecutionProvider")
    return f"{row['label']} · {provider} · {row.get('precision', '')}".strip(" ·")


def plot_throughput(
    report: CheckReport, path: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str] | None] = ()
) -> Path:
    """Write a PNG chart of the report's latency rows (needs matplotlib, an optional extra).

    Grouped bars, one group per batch size and one bar per backend, on a logarithmic
    throughput axis: a backend at 3 images/s and one at 30,000 are both readable. Each bar is
    labelled with its value; the legend names every backend with its provider and precision
    (its own, not the reference's). 1000×560 pixels, sized for a README.

    Args:
        report: A check's report with latency rows.
        path: The PNG to write (atomically).
        inputs: Files ``path`` may not be (the checked checkpoint and artefacts).

    Raises:
        InputError: matplotlib is not installed (the message says how to install it), or the
            path is refused (see :func:`prepare_plot`).
    """
    plt = _pyplot()
    rows = report.latency
    names = list(dict.fromkeys(backend_name(row) for row in rows))
    batches = sorted({row["batch"] for row in rows})
    figure, axis = plt.subplots(figsize=FIGURE_INCHES, dpi=FIGURE_DPI)
    width = 0.8 / max(1, len(names))
    colours = plt.get_cmap("tab10")
    values = [row["images_per_s"] for row in rows if row["images_per_s"] > 0]
    for i, name in enumerate(names):
        found = {row["batch"]: row["images_per_s"] for row in rows if backend_name(row) == name}
        xs = [j + (i - (len(names) - 1) / 2) * width for j, batch in enumerate(batches) if batch in found]
        ys = [found[batch] for batch in batches if batch in found]
        bars = axis.bar(xs, ys, width * 0.92, label=name, color=colours(i % 10))
        axis.bar_label(
            bars, labels=[f"{y:,.0f}" if y >= 10 else f"{y:.2g}" for y in ys], fontsize=8, padding=2
        )
    axis.set_yscale("log")
    if values:  # room above the tallest bar for its label, and below the shortest one
        axis.set_ylim(min(values) / 3, max(values) * 4)
    axis.set_xticks(range(len(batches)))
    axis.set_xticklabels([str(b) for b in batches])
    axis.set_xlabel("batch size (images per call)")
    axis.set_ylabel("throughput, images/s (p50, log scale)")
    axis.grid(axis="y", which="both", alpha=0.25)
    axis.set_axisbelow(True)
    axis.set_title("Throughput per backend and batch size (higher is better)", fontsize=12)
    axis.legend(loc="upper left", fontsize=9, frameon=False)
    figure.tight_layout()
    target = Path(path)
    with atomic_write(target, inputs=inputs) as handle:
        figure.savefig(handle, format="png", dpi=FIGURE_DPI)
    plt.close(figure)
    return target
