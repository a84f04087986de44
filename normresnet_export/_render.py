"""How command results are shown: a rich table for people, one JSON document for programs."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
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
