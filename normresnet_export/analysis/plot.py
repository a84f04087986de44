"""The gradient-norm chart of ``normexport analyze gradnorm --plot``, laid out like the papers' figures.

Unit index on x, the mean ratio ``‖∂L/∂x_l‖ / ‖∂L/∂x_{l+1}‖`` on y (a band of ± one standard
deviation over the batch around it), one labelled line per model, transition units marked
with a triangle, and a dashed reference line at 1 (perfect norm preservation). The y axis is
logarithmic when the values span more than a factor of :data:`LOG_SCALE_SPAN`, so ratios of
2 and 1/2 lie equally far from the reference.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from normresnet_export._io import atomic_write
from normresnet_export.analysis.measure import GradnormReport
from normresnet_export.errors import InputError

#: Above this max/min span of the plotted values the y axis is logarithmic.
LOG_SCALE_SPAN = 3.0
#: Label of the reference line (``_``-prefixed: matplotlib leaves it out of the legend).
REFERENCE_LABEL = "_reference"


def _matplotlib() -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError(
            "--plot needs matplotlib: pip install 'normresnet-export[plot]' (or pip install matplotlib)"
        ) from None
    return Figure, FigureCanvasAgg


def gradnorm_figure(reports: Sequence[GradnormReport], *, title: str | None = None) -> Any:
    """The chart as a matplotlib ``Figure`` (one ``Line2D`` per model, labelled with its name).

    Raises:
        InputError: matplotlib is not installed, or there is nothing to plot.
    """
    if not reports:
        raise InputError("nothing to plot: give at least one model")
    figure_type, canvas = _matplotlib()
    figure = figure_type(figsize=(9, 4.5), dpi=120)
    canvas(figure)
    axis = figure.subplots()
    values: list[float] = []
    for report in reports:
        x = [unit.index for unit in report.units]
        mean = [unit.grad_ratio.mean for unit in report.units]
        low = [max(unit.grad_ratio.mean - unit.grad_ratio.std, unit.grad_ratio.min) for unit in report.units]
        high = [min(unit.grad_ratio.mean + unit.grad_ratio.std, unit.grad_ratio.max) for unit in report.units]
        (line,) = axis.plot(x, mean, label=report.model, linewidth=1.4)
        axis.fill_between(x, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
        marks = [(unit.index, unit.grad_ratio.mean) for unit in report.units if unit.transition]
        if marks:
            axis.scatter(*zip(*marks, strict=True), marker="v", s=40, color=line.get_color(), zorder=3)
        values += mean + low + high
    axis.axhline(1.0, color="0.4", linestyle="--", linewidth=1, label=REFERENCE_LABEL)
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > LOG_SCALE_SPAN:
        from matplotlib.ticker import FuncFormatter

        axis.set_yscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")  # 0.5, 2, not 5×10⁻¹, 2×10⁰
        axis.yaxis.set_major_formatter(plain)
        axis.yaxis.set_minor_formatter(plain)
    axis.set_xlabel("unit index along the main path (block, or layer between blocks)")
    axis.set_ylabel("‖∂L/∂x_l‖ / ‖∂L/∂x_{l+1}‖")
    data = reports[0].data
    axis.set_title(title or f"gradient-norm ratio per unit, {data}: ▼ transition, dashed line at 1")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize="small")
    figure.tight_layout()
    return figure


def plot_gradnorm(
    reports: Sequence[GradnormReport], path: str | os.PathLike[str], *, title: str | None = None
) -> Path:
    """Write :func:`gradnorm_figure` as a PNG to ``path`` (atomically).

    Raises:
        InputError: matplotlib is not installed, or there is nothing to plot.
    """
    figure = gradnorm_figure(reports, title=title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    target = Path(path)
    with atomic_write(target) as handle:
        handle.write(buffer.getvalue())
    return target
