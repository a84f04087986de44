"""The ``normexport`` command line: parses options and calls one library function per command.

The library is imported inside each command, so ``normexport --help`` starts without
loading torch. Errors the user can fix (``NormexportError``) become one line on stderr and
exit code 2 (bad input) or 1 (a check that failed); there are no tracebacks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import typer

T = TypeVar("T")

app = typer.Typer(
    name="normexport",
    help="Train, fold, export and serve very deep norm-preserving residual networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _run(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call into the library; turn a NormexportError into a one-line message and its exit code."""
    from normresnet_export.errors import NormexportError

    try:
        return function(*args, **kwargs)
    except NormexportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


def _version(value: bool) -> None:
    if value:
        import torch

        import normresnet_export

        typer.echo(f"normexport {normresnet_export.__version__} (torch {torch.__version__})")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the versions and exit."
    ),
) -> None:
    """Train, fold, export and serve very deep norm-preserving residual networks."""


@app.command("models")
def models_command(
    pattern: str = typer.Argument(None, help="Shell-style name filter, e.g. 'preact_*'."),
    family: str = typer.Option(
        None,
        "--family",
        "-f",
        help="Only this family: torch-resnet, tau-resnet, procresnet, leno or diracnet.",
    ),
    dataset: str = typer.Option(
        None, "--dataset", help="Only 'cifar' (32×32) or 'imagenet' (224×224) designs."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON list instead of a table."),
) -> None:
    """List the registered models: family, dataset kind, input size, parameters and layers."""
    from normresnet_export._render import CATALOGUE_COLUMNS, print_json, print_table
    from normresnet_export.models import catalogue

    rows = _run(catalogue, pattern, family=family, dataset=dataset)
    if as_json:
        print_json(rows)
    elif rows:
        print_table(rows, CATALOGUE_COLUMNS)
    else:
        typer.echo("no registered model matches", err=True)
