"""The run's human- and machine-readable record: ``metrics.jsonl`` and ``curves.png``.

Both are rewritten, atomically, from the metric history held in ``last.pt`` after every
epoch; so after a crash and ``--resume`` they show exactly the epochs the resumed run
continues from, never a line from an epoch that was lost.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from normresnet_export._io import atomic_write

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"
PLOT_HINT = "install matplotlib (`pip install 'normresnet-export[plot]'`) to get curves.png"


def write_metrics(run_dir: Path, history: Sequence[dict[str, Any]]) -> Path:
    """``metrics.jsonl``: one JSON object per completed epoch."""
    path = run_dir / METRICS_FILE
    with atomic_write(path) as handle:
        handle.write("".join(json.dumps(row) + "\n" for row in history).encode())
    return path


def plot_available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _plot_gradnorm(axes: Any, history: Sequence[dict[str, Any]]) -> None:
    """The ``--log-gradnorm`` panel: each unit's gradient-norm ratio at the run's first and latest record."""
    logged = [row["gradnorm"] for row in history if row.get("gradnorm")]
    first, latest = logged[0]["records"][0], logged[-1]["records"][-1]
    transitions = logged[-1]["transitions"]
    for record in (first, latest) if first is not latest else (first,):
        ratios = record["ratios"]
        (line,) = axes.plot(range(len(ratios)), ratios, label=f"step {record['step']}")
        axes.scatter(
            transitions, [ratios[i] for i in transitions], marker="v", color=line.get_color(), zorder=3
        )
    axes.axhline(1.0, color="0.4", linestyle="--", linewidth=1)
    axes.set_xlabel("block (▼ transition)")
    axes.set_ylabel("‖∂L/∂x_l‖ / ‖∂L/∂x_{l+1}‖")
    axes.grid(alpha=0.3)
    axes.legend()


def _plot_learning_rate(axes: Any, epochs: Sequence[int], rates: Sequence[float | None]) -> None:
    """The learning rate per epoch: log axis when every rate is positive (step decays read as equal steps)."""
    from matplotlib.ticker import MaxNLocator

    shown = [(e, r) for e, r in zip(epochs, rates, strict=True) if r is not None]
    axes.plot([e for e, _ in shown], [r for _, r in shown], marker="o", drawstyle="steps-post", color="C2")
    if shown and all(r > 0 for _, r in shown):
        axes.set_yscale("log")
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("learning rate (end of epoch)")
    axes.set_title("learning rate")
    axes.grid(alpha=0.3, which="both")


def write_curves(run_dir: Path, history: Sequence[dict[str, Any]], *, title: str = "") -> Path | None:
    """``curves.png``: loss and top-1 accuracy per epoch (train and test), and the learning rate.

    The learning-rate panel shows the schedule the run followed (the rate at the end of each
    epoch, on a log axis, so step decays read as equal steps). A run with ``--log-gradnorm``
    gets a fourth panel: the per-block gradient-norm ratio at its first and its latest record.
    ``None`` without matplotlib.
    """
    if not plot_available():
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in history]
    gradnorm = any(row.get("gradnorm") for row in history)
    figure = Figure(figsize=(20 if gradnorm else 15, 4), dpi=100)
    FigureCanvasAgg(figure)
    panels = figure.subplots(1, 4 if gradnorm else 3)
    loss_axes, acc_axes = panels[0], panels[1]
    for axes, key, label in (
        (loss_axes, "loss", "cross-entropy loss"),
        (acc_axes, "top1", "top-1 accuracy (%)"),
    ):
        axes.plot(epochs, [row[f"train_{key}"] for row in history], marker="o", label="train")
        axes.plot(epochs, [row[f"test_{key}"] for row in history], marker="o", label="test")
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend()
    _plot_learning_rate(panels[2], epochs, [row.get("lr") for row in history])
    if gradnorm:
        _plot_gradnorm(panels[3], history)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    path = run_dir / CURVES_FILE
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())
    return path


def write_records(run_dir: Path, history: Sequence[dict[str, Any]], *, title: str = "") -> Path | None:
    """Rewrite ``metrics.jsonl`` and ``curves.png``; returns the curves' path (``None``: no matplotlib)."""
    write_metrics(run_dir, history)
    return write_curves(run_dir, history, title=title)
