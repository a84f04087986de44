"""How command results are shown: a rich table for people, one JSON document for programs.

Much of what is shown comes from outside: file names, class labels and metadata read from a
model file, error messages quoting them. None of it may steer the terminal, so every string
reaches rich through :func:`printable` and as a :class:`rich.text.Text`, never as markup: a
label ``[white on white]hidden[/]`` or an image named ``[bold]x.png`` is shown as written
(markup and ``:emoji:`` codes are only interpreted in plain strings), and a control character
such as the ESC of ``\\x1b[2J`` is shown as the four characters ``\\x1b`` instead of clearing the
screen. The CLI's error line goes through :func:`printable` too.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

#: What a terminal may act on rather than show: C0 controls (ESC among them), DEL, C1 controls
#: (a lone 0x9b is a CSI on some terminals), the line and paragraph separators, and the bidi
#: overrides and isolates that reorder what is displayed.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object) -> str:
    """``str(value)`` with every control character written out as an escape (``\\x1b``, ``\\u202e``).

    Used for every string shown to a person, so that text from a file (a name, a label, an error
    quoting either) can neither send terminal commands nor break a one-line message into several.
    """
    return _CONTROL.sub(_escaped, str(value))


def _text(value: object) -> Text:
    """``value`` as rich :class:`~rich.text.Text`: shown literally, no markup, no emoji codes."""
    return Text(printable(value))


def _say(message: object, *, stderr: bool = False) -> None:
    """Print one message line (literally, see :func:`printable`) on stdout or stderr."""
    Console(soft_wrap=True, stderr=stderr).print(_text(message))


@dataclass(frozen=True)
class Column:
    """A table column: which row key, its header, alignment and how to format a value."""

    key: str
    header: str
    justify: str = "left"
    format: Callable[[Any], str] = str


def print_json(data: Any) -> None:
    """Write ``data`` as one JSON document on stdout.

    JSON escapes every control character but DEL; DEL is escaped too, so that no string from a
    file reaches a terminal raw (it can occur only inside strings, where ``\\u007f`` means the same).
    """
    sys.stdout.write(json.dumps(data, indent=2).replace("\x7f", "\\u007f") + "\n")


def print_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], *, title: str | None = None
) -> None:
    """Write ``rows`` as a table on stdout (plain text when stdout is not a terminal).

    Cells are never truncated: when the table is wider than the terminal (or than the
    80 columns rich assumes for a pipe), lines are allowed to be longer instead. Cells, headers
    and the title are shown literally (see :func:`printable`).
    """
    cells = [[_text(column.format(row[column.key])) for column in columns] for row in rows]
    headers = [_text(column.header) for column in columns]
    widths = [max([headers[i].cell_len] + [line[i].cell_len for line in cells]) for i in range(len(columns))]
    table = Table(title=None if title is None else _text(title), show_edge=False, header_style="bold")
    for column, header, width in zip(columns, headers, widths, strict=True):
        table.add_column(header, justify=column.justify, no_wrap=True, min_width=width)  # type: ignore[arg-type]
    for line in cells:
        table.add_row(*line)
    console = Console()
    needed = sum(widths) + 3 * len(widths) - 1  # one space of padding each side, one separator between
    console.print(table, width=max(console.width, needed), crop=False)


def print_listing(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], *, as_json: bool, empty: str
) -> None:
    """A listing command's output: one JSON document, else a table, else ``empty`` on stderr.

    An empty listing is a JSON ``[]`` for programs; for people a table without rows says
    nothing, so they get one line saying that nothing matched.
    """
    if as_json:
        print_json(list(rows))
    elif rows:
        print_table(rows, columns)
    else:
        sys.stderr.write(empty + "\n")


CATALOGUE_COLUMNS = (
    Column("name", "name"),
    Column("family", "family"),
    Column("dataset", "dataset"),
    Column("input_size", "input", format=lambda size: "×".join(map(str, size))),
    Column("parameters", "params", justify="right", format=lambda n: f"{n:,}"),
    Column("layers", "layers", justify="right"),
)


#: The columns every comparison table shows (the fold check, the export check, ``check``): the
#: deviation from the reference, its limit and the top-1 agreement, under the same keys.
_DEVIATION_COLUMNS = (
    Column("max_abs", "max |Δ|", "right"),
    Column("max_rel", "max rel", "right"),
    Column("limit", "limit", "right"),
    Column("top1", "top-1 agreement", "right"),
)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2e}"


def print_fold_deviations(report: Any) -> None:
    """The fold check's table: per precision, the deviation, its limit and the top-1 agreement."""
    if not report.checked:
        return
    size = "×".join(map(str, report.input_size))
    rows = [
        {
            "precision": precision,
            "max_abs": _number(d.max_abs) if d.finite else "inf/NaN",
            "max_rel": _number(d.max_rel) if d.finite else "inf/NaN",
            "limit": _number(report.limit(precision)),
            "top1": f"{d.top1_agreement:.0%}",
        }
        for precision, d in report.deviations.items()
    ]
    print_table(
        rows,
        (Column("precision", "precision"), *_DEVIATION_COLUMNS),
        title=f"folded vs. unfolded logits ({size})",
    )
    if report.float32_noise is not None:
        _say(f"  the unfolded model's own float32 error against float64: {_number(report.float32_noise)}")


def print_failed_check(error: Any, *, as_json: bool) -> None:
    """What a failed check measured, before its one ``error:`` line: the table, or the JSON document.

    ``error`` is a ``CheckFailedError`` that may carry a fold ``report`` or an export ``check``
    (and their ``to_dict``); one that carries neither shows nothing here.
    """
    if not hasattr(error, "to_dict"):
        return
    if as_json:
        print_json(error.to_dict())
    elif getattr(error, "report", None) is not None:
        print_fold_deviations(error.report)
    elif getattr(error, "check", None) is not None:
        check = error.check
        d = check.deviation
        row = {
            "runtime": check.runtime,
            "batches": ", ".join(map(str, check.batches)),
            "max_abs": _number(d.max_abs),
            "max_rel": _number(d.max_rel),
            "limit": _number(check.limit),
            "top1": f"{d.top1_agreement:.0%}",
        }
        print_table(
            [row],
            (Column("runtime", "runtime"), Column("batches", "batches"), *_DEVIATION_COLUMNS),
            title="the export vs. the unfolded model",
        )


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
    _say(f"parameters: {report.parameters_before:,} -> {report.parameters_after:,}")
    for pattern, count in report.folded.items():
        _say(f"  folded   {count:5d} × {pattern}")
    for group in report.unfolded_summary():
        names = ", ".join(group["examples"]) + (", …" if group["count"] > len(group["examples"]) else "")
        _say(f"  kept     {group['count']:5d} × {group['op']}: {group['reason']} ({names})")
    print_fold_deviations(report)
    if not report.checked:
        verdict = "folded (not checked)"
    elif report.passed:
        verdict = "PASS: the folded model agrees with the unfolded one within the limits"
    else:
        verdict = f"FAIL: {report.failure()}; nothing was written"
    if output and report.passed:
        verdict += f"; wrote {output}"
    _say(verdict)


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
    kwargs = ", ".join(f"{k}={v!r}" for k, v in record["model_kwargs"].items())
    folded = " (folded)" if record["folded"] else ""
    _say(f"imported {record['source']} checkpoint as {record['arch']}{folded}({kwargs})")
    _say(f"  {record['tensors']} tensors, {record['parameters']:,} parameters")
    # imported_from is the source named above; a torchvision state_dict records nothing else.
    recorded = ", ".join(f"{k}={v}" for k, v in record["metrics"].items() if k != "imported_from")
    if recorded:
        _say(f"  recorded: {recorded}")
    if record["preprocessing"] is None:
        _say("  preprocessing: unknown (not recorded by the source); set it before predicting")
    _say(f"wrote {record['output']}")


@contextlib.contextmanager
def progress_bar(total: int, description: str, *, minimum: int = 8) -> Iterator[Callable[[int], None]]:
    """A transient progress bar on stderr for ``total`` steps; silent below ``minimum`` steps.

    Yields ``advance(n)``. Nothing is drawn when stderr is not a terminal (rich's rule), so
    logs and ``--json`` pipelines stay clean.
    """
    console = Console(stderr=True)
    if total < minimum or not console.is_terminal:  # rich would still end a silent bar with a newline
        yield lambda _: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def _fallback(backend: Mapping[str, Any]) -> str:
    """`` · CPU fallback: <reason>`` for a backend that runs on the CPU although a GPU was asked for."""
    return f" · CPU fallback: {backend['fallback']}" if backend.get("fallback") else ""


@contextlib.contextmanager
def stage_spinner(description: str, *, first: str | None = None, enabled: bool = True) -> Iterator[None]:
    """A transient spinner on stderr naming the stage the work is in (see :mod:`normresnet_export._progress`).

    Shows ``description: <stage>`` and the time elapsed, redrawn at every stage the library
    announces inside the block, and erased at the end. Nothing is drawn when stderr is not a
    terminal or when ``enabled`` is false (``--json``), so logs and pipelines stay clean.

    Args:
        description: What the command does (``exporting``).
        first: The stage shown until the library announces one (``load``).
        enabled: Draw at all (the CLI passes ``not --json``).
    """
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from normresnet_export._progress import listening

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"{description}: {first}" if first else description, total=None)
        progress.refresh()

        def show(name: str) -> None:
            progress.update(task, description=f"{description}: {printable(name)}", refresh=True)

        with listening(show):
            yield


def print_predictions(report: Any) -> None:
    """Per image: the top classes with their probabilities, or the reason it failed (on stderr)."""
    backend = report.backend
    _say(
        f"{backend['label']}: {backend['runtime']} · {backend['provider']} · {backend['precision']}"
        f"{_fallback(backend)}"
    )
    rows = []
    for prediction in report.predictions:
        if prediction.error:
            _say(f"error: {prediction.error}", stderr=True)
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
    reference = report.reference
    kind = getattr(report, "reference_kind", "unfolded")
    _say(
        f"reference: {reference['label']} · {reference['runtime']} · {reference['provider']} · "
        f"{reference['precision']}{_fallback(reference)}; data: {report.data}"
    )
    shown = {reference.get("fallback")}
    for a in report.agreements:  # every other reason once, naming the backend
        if a.backend.get("fallback") not in shown:
            shown.add(a.backend["fallback"])
            _say(f"  {a.label}: CPU fallback: {a.backend['fallback']}")
    labelled = report.reference_accuracy is not None
    rows = [
        {
            "backend": a.label,
            "provider": a.backend["provider"] + (" (CPU fallback)" if a.backend.get("fallback") else ""),
            "precision": a.backend["precision"],
            "max_abs": _number(a.deviation.max_abs),
            "max_rel": _number(a.deviation.max_rel),
            "limit": "gate" if getattr(a, "gate", None) is not None else _number(a.limit),
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
        *_DEVIATION_COLUMNS,
    ]
    if labelled:
        columns.append(Column("accuracy", "accuracy", "right"))
    columns.append(Column("verdict", ""))
    title = f"against the {kind} checkpoint, {report.samples} samples"
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
            title=f"latency (interleaved blocks; speed-up over {reference['label']} at the same batch)",
        )
    if report.passed:
        count = len(report.agreements)
        if count == 0:  # a folded reference and no artefacts: nothing was compared with it
            _say(f"PASS: nothing to compare: give exported files to check them against the {kind} checkpoint")
        else:
            _say(f"PASS: {count} backend{'s agree' if count != 1 else ' agrees'} with the {kind} checkpoint")
    else:
        _say("FAIL: " + "; ".join(report.failures()))
