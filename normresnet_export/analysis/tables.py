"""How ``normexport analyze`` shows its reports to people: one table per model."""

from __future__ import annotations

from collections.abc import Sequence

from normresnet_export._render import Column, print_table
from normresnet_export.analysis.measure import GradnormReport, SpectrumReport
from normresnet_export.nn.norm_probe import BLOCK


def _ratio(value: float) -> str:
    return f"{value:.4f}"


GRADNORM_COLUMNS = (
    Column("index", "#", justify="right"),
    Column("name", "unit"),
    Column("transition", "transition", format=lambda t: "▼" if t else ""),
    Column("shape", "in → out"),
    Column("grad", "grad ratio", justify="right", format=_ratio),
    Column("grad_std", "± std", justify="right", format=_ratio),
    Column("forward", "forward ratio", justify="right", format=_ratio),
)

SPECTRUM_COLUMNS = (
    Column("name", "layer"),
    Column("shape", "weight"),
    Column("grid", "grid"),
    Column("target", "target", justify="right", format=_ratio),
    Column("min", "min σ", justify="right", format=_ratio),
    Column("mean", "mean σ", justify="right", format=_ratio),
    Column("max", "max σ", justify="right", format=_ratio),
    Column("max_rel_dev", "max rel dev", justify="right", format=lambda v: f"{v:.2e}"),
    Column("norm_preserving", "norm-preserving", format=lambda ok: "yes" if ok else "no"),
)


def _shape(values: Sequence[int]) -> str:
    return "×".join(map(str, values))


def print_gradnorm(reports: Sequence[GradnormReport]) -> None:
    """One table per model: every unit's gradient ratio (mean ± std over the batch) and forward ratio."""
    for report in reports:
        rows = [
            {
                "index": unit.index,
                "name": f"{unit.name} ({unit.kind})" if unit.kind != BLOCK else unit.name,
                "transition": unit.transition,
                "shape": f"{_shape(unit.in_shape)} → {_shape(unit.out_shape)}",
                "grad": unit.grad_ratio.mean,
                "grad_std": unit.grad_ratio.std,
                "forward": unit.forward_ratio.mean,
            }
            for unit in report.units
        ]
        title = (
            f"{report.model} on {report.data}: mean |ln ratio| {report.block_deviation:.3f} "
            f"(transitions {report.transition_deviation:.3f}); peak memory {report.peak_memory_mb:.0f} MiB"
        )
        print_table(rows, GRADNORM_COLUMNS, title=title)


def print_spectrum(report: SpectrumReport) -> None:
    """One row per convolution: its singular values against the norm-preserving target."""
    rows = [
        {
            "name": layer.name,
            "shape": _shape(layer.weight_shape),
            "grid": _shape(layer.grid),
            "target": layer.target,
            "min": layer.min,
            "mean": layer.mean,
            "max": layer.max,
            "max_rel_dev": layer.max_rel_dev,
            "norm_preserving": layer.norm_preserving,
        }
        for layer in report.layers
    ]
    title = f"{report.model} ({_shape(report.input_size)}): tolerance {report.tolerance:g}"
    print_table(rows, SPECTRUM_COLUMNS, title=title)
