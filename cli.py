"""The ``normexport`` command line: parses options and calls one library function per command.

The library is imported inside each command, so ``normexport --help`` starts without
loading torch. Errors the user can fix (``NormexportError``) become one line on stderr and
exit code 2 (bad input) or 1 (a check that failed); there are no tracebacks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

T = TypeVar("T")

app = typer.Typer(
    name="normexport",
    help="Train, fold, export and serve very deep norm-preserving residual networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")]


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
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the versions and exit.")
    ] = False,
) -> None:
    """Train, fold, export and serve very deep norm-preserving residual networks."""


@app.command("models")
def models_command(
    pattern: Annotated[str | None, typer.Argument(help="Shell-style name filter, e.g. 'preact_*'.")] = None,
    family: Annotated[
        str | None,
        typer.Option(
            "--family", "-f", help="Only this family: torch-resnet, tau-resnet, procresnet, leno or diracnet."
        ),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Only 'cifar' (32×32) or 'imagenet' (224×224) designs.")
    ] = None,
    as_json: JsonFlag = False,
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


@app.command("fold")
def fold_command(
    checkpoint: Annotated[Path, typer.Argument(help="A normexport checkpoint (.pt or .safetensors).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the folded checkpoint.")],
    as_json: JsonFlag = False,
) -> None:
    """Fold BatchNorm, tau and Dirac weights into plain convolutions, check the logits, write the result.

    The check runs the folded and the unfolded model on the same random inputs of the
    model's size, in float32 and float64. If the deviation exceeds the limits, nothing is
    written and the exit code is 1.
    """
    from normresnet_export._render import print_fold_report, print_json
    from normresnet_export.fold import fold_checkpoint

    report = _run(fold_checkpoint, checkpoint, output)
    if as_json:
        print_json({**report.to_dict(), "output": str(output) if report.passed else None})
    else:
        print_fold_report(report, output=str(output))
    if not report.passed:
        raise typer.Exit(1)
