"""The throughput chart of a check: images/s per backend, grouped by batch size (``--plot``)."""

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


def plot_throughput(
    report: CheckReport, path: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str] | None] = ()
) -> Path:
    """Write a PNG bar chart of the report's latency rows (needs matplotlib, an optional extra).

    Args:
        report: A check's report with latency rows.
        path: The PNG to write (atomically).
        inputs: Files ``path`` may not be (the checked checkpoint and artefacts).

    Raises:
        InputError: matplotlib is not installed (the message says how to install it), or the
            path is refused (see :func:`prepare_plot`).
    """
    plt = _pyplot()
    labels = list(dict.fromkeys(row["label"] for row in report.latency))
    batches = list(dict.fromkeys(row["batch"] for row in report.latency))
    figure, axis = plt.subplots(figsize=(max(6, 1.6 * len(labels) * len(batches)), 4))
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        values = [
            next((r["images_per_s"] for r in report.latency if r["label"] == label and r["batch"] == b), 0.0)
            for b in batches
        ]
        axis.bar([j + i * width for j in range(len(batches))], values, width, label=label)
    axis.set_xticks([j + width * (len(labels) - 1) / 2 for j in range(len(batches))])
    axis.set_xticklabels([f"batch {b}" for b in batches])
    axis.set_ylabel("images / s (p50)")
    axis.set_title(f"throughput ({report.reference['provider']})")
    axis.legend(fontsize="small")
    figure.tight_layout()
    target = Path(path)
    with atomic_write(target, inputs=inputs) as handle:
        figure.savefig(handle, format="png", dpi=120)
    plt.close(figure)
    return target
