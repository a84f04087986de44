"""How command results are shown: a rich table for people, one JSON document for programs."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Column:
    """A table column: which row key, its header, alignment and how to format a value."""

    key: str
    header: str
    justify: str = "left"
    format: Callable[[Any], str] = str


def print_json(data: Any) -> None:
    """Write ``data`` as one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def print_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], *, title: str | None = None
) -> None:
    """Write ``rows`` as a table on stdout (plain text when stdout is not a terminal).

    Cells are never truncated: when the table is wider than the terminal (or than the
    80 columns rich assumes for a pipe), lines are allowed to be longer instead.
    """
    cells = [[column.format(row[column.key]) for column in columns] for row in rows]
    widths = [max([len(c.header)] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]
    table = Table(title=title, show_edge=False, header_style="bold")
    for column, width in zip(columns, widths, strict=True):
        table.add_column(column.header, justify=column.justify, no_wrap=True, min_width=width)  # type: ignore[arg-type]
    for line in cells:
        table.add_row(*line)
    console = Console()
    needed = sum(widths) + 3 * len(widths) - 1  # one space of padding each side, one separator between
    console.print(table, width=max(console.width, needed), crop=False)


CATALOGUE_COLUMNS = (
    Column("name", "name"),
    Column("family", "family"),
    Column("dataset", "dataset"),
    Column("input_size", "input", format=lambda size: "×".join(map(str, size))),
    Column("parameters", "params", justify="right", format=lambda n: f"{n:,}"),
    Column("layers", "layers", justify="right"),
)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2e}"


def print_fold_report(report: Any, *, output: str | None = None) -> None:
    """Human summary of a :class:`~normresnet_export.fold.FoldReport`, ending with a one-line verdict."""
    ops = sorted(set(report.ops_before) | set(report.ops_after))
    rows = [
        {"op": op, "before": report.ops_before.get(op, 0), "after": report.ops_after.get(op, 0)} for op in ops
    ]
    print_table(
        rows,
        (Column("op", "operation"), Column("before", "before", "right"), Column("after", "after", "right")),
    )
    console = Console(soft_wrap=True)
    console.print(f"parameters: {report.parameters_before:,} -> {report.parameters_after:,}")
    for pattern, count in report.folded.items():
        console.print(f"  folded   {count:5d} × {pattern}", highlight=False)
    for group in report.unfolded_summary():
        names = ", ".join(group["examples"]) + (", …" if group["count"] > len(group["examples"]) else "")
        console.print(
            f"  kept     {group['count']:5d} × {group['op']}: {group['reason']} ({names})", highlight=False
        )
    if report.checked:
        size = "×".join(map(str, report.input_size))
        rows = [
            {
                "precision": precision,
                "max_abs": _number(d.max_abs),
                "max_rel": _number(d.max_rel),
                "limit": _number(report.limit(precision)),
                "top1": f"{d.top1_agreement:.0%}",
            }
            for precision, d in report.deviations.items()
        ]
        print_table(
            rows,
            (
                Column("precision", "precision"),
                Column("max_abs", "max |Δ|", "right"),
                Column("max_rel", "max rel", "right"),
                Column("limit", "limit", "right"),
                Column("top1", "top-1 agreement", "right"),
            ),
            title=f"folded vs. unfolded logits ({size})",
        )
        if report.float32_noise is not None:
            console.print(
                f"  the unfolded model's own float32 error against float64: {_number(report.float32_noise)}"
            )
    if not report.checked:
        verdict = "folded (not checked)"
    elif report.passed:
        verdict = "PASS: the folded model agrees with the unfolded one within the limits"
    else:
        verdict = "FAIL: the folded model deviates beyond the limits; nothing was written"
    if output and report.passed:
        verdict += f"; wrote {output}"
    console.print(verdict, highlight=False)


def import_record(checkpoint: Any, output: str) -> dict[str, Any]:
    """What an import produced, as one JSON-able dict (``normexport import --json``)."""
    return {
        "source": checkpoint.metrics.get("imported_from"),
        "arch": checkpoint.arch,
        "model_kwargs": checkpoint.model_kwargs,
        "folded": checkpoint.folded,
        "tensors": len(checkpoint.model.state_dict()),
        "parameters": sum(p.numel() for p in checkpoint.model.parameters()),
        "metrics": checkpoint.metrics,
        "preprocessing": checkpoint.preprocessing.to_dict() if checkpoint.preprocessing else None,
        "output": output,
    }


def print_import_record(record: dict[str, Any]) -> None:
    """One short human account of an import."""
    console = Console(soft_wrap=True)
    kwargs = ", ".join(f"{k}={v!r}" for k, v in record["model_kwargs"].items())
    folded = " (folded)" if record["folded"] else ""
    console.print(
        f"imported {record['source']} checkpoint as {record['arch']}{folded}({kwargs})", highlight=False
    )
    console.print(f"  {record['tensors']} tensors, {record['parameters']:,} parameters", highlight=False)
    if record["metrics"]:
        recorded = ", ".join(f"{k}={v}" for k, v in record["metrics"].items() if k != "imported_from")
        console.print(f"  recorded: {recorded}", highlight=False)
    if record["preprocessing"] is None:
        console.print(
            "  preprocessing: unknown (not recorded by the source); set it before predicting", highlight=False
        )
    console.print(f"wrote {record['output']}", highlight=False)


@contextlib.contextmanager
def progress_bar(total: int, description: str, *, minimum: int = 8) -> Iterator[Callable[[int], None]]:
    """A transient progress bar on stderr for ``total`` steps; silent below ``minimum`` steps.

    Yields ``advance(n)``. Nothing is drawn when stderr is not a terminal (rich's rule), so
    logs and ``--json`` pipelines stay clean.
    """
    if total < minimum:
        yield lambda _: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def print_predictions(report: Any) -> None:
    """Per image: the top classes with their probabilities, or the reason it failed (on stderr)."""
    backend = report.backend
    console = Console(soft_wrap=True)
    console.print(
        f"{backend['label']}: {backend['runtime']} · {backend['provider']} · {backend['precision']}",
        highlight=False,
    )
    rows = []
    for prediction in report.predictions:
        if prediction.error:
            Console(stderr=True, soft_wrap=True).print(f"error: {prediction.error}", highlight=False)
            continue
        for rank, entry in enumerate(prediction.top):
            rows.append(
                {
                    "image": prediction.name if rank == 0 else "",
                    "rank": rank + 1,
                    "label": entry["label"],
                    "probability": entry["probability"],
                }
            )
    if rows:
        print_table(
            rows,
            (
                Column("image", "image"),
                Column("rank", "#", "right"),
                Column("label", "label"),
                Column("probability", "probability", "right", format=lambda p: f"{p:.4f}"),
            ),
        )


def print_check_report(report: Any) -> None:
    """Agreement and latency tables of :func:`normresnet_export.check.check`, then a one-line verdict."""
    console = Console(soft_wrap=True)
    reference = report.reference
    console.print(
        f"reference: {reference['label']} · {reference['runtime']} · {reference['provider']} · "
        f"{reference['precision']}; data: {report.data}",
        highlight=False,
    )
    labelled = report.reference_accuracy is not None
    rows = [
        {
            "backend": a.label,
            "provider": a.backend["provider"],
            "precision": a.backend["precision"],
            "max_abs": _number(a.deviation.max_abs),
            "max_rel": _number(a.deviation.max_rel),
            "limit": _number(a.limit),
            "top1": f"{a.deviation.top1_agreement:.2%}",
            "accuracy": "" if a.accuracy is None else f"{a.accuracy:.2%}",
            "verdict": "ok" if a.passed else "FAIL",
        }
        for a in report.agreements
    ]
    columns = [
        Column("backend", "backend"),
        Column("provider", "device / provider"),
        Column("precision", "precision"),
        Column("max_abs", "max |Δ|", "right"),
        Column("max_rel", "max rel", "right"),
        Column("limit", "limit", "right"),
        Column("top1", "top-1 agreement", "right"),
    ]
    if labelled:
        columns.append(Column("accuracy", "accuracy", "right"))
    columns.append(Column("verdict", ""))
    title = f"against the unfolded checkpoint, {report.samples} samples"
    if labelled:
        title += f" (its accuracy: {report.reference_accuracy:.2%})"
    print_table(rows, columns, title=title)
    if report.latency:
        print_table(
            report.latency,
            (
                Column("label", "backend"),
                Column("batch", "batch", "right"),
                Column("p50_ms", "p50 ms", "right", format=lambda v: f"{v:.2f}"),
                Column("p90_ms", "p90 ms", "right", format=lambda v: f"{v:.2f}"),
                Column("p99_ms", "p99 ms", "right", format=lambda v: f"{v:.2f}"),
                Column("images_per_s", "images/s", "right", format=lambda v: f"{v:,.0f}"),
                Column("speedup", "speed-up", "right", format=lambda v: f"{v:.2f}×"),
            ),
            title="latency (interleaved blocks; speed-up over eager (unfolded) at the same batch)",
        )
    if report.passed:
        console.print(
            f"PASS: {len(report.agreements)} backends agree with the unfolded checkpoint", highlight=False
        )
    else:
        console.print("FAIL: " + "; ".join(report.failures()), highlight=False)
