"""The ``normexport`` command line: parses options and calls one library function per command.

The library is imported inside each command, so ``normexport --help`` starts without
loading torch. Errors the user can fix (``NormexportError``) become one line on stderr and
exit code 2 (bad input) or 1 (a check that failed); there are no tracebacks.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
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


@app.command("import")
def import_command(
    src: Annotated[
        Path, typer.Argument(help="A checkpoint written by the original research code or torchvision.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the normexport checkpoint.")],
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Who wrote it: procresnet, leno, tau-resnet, torch-resnet, diracnet, diracnet-folded or "
            "torchvision. Recognised from the file when omitted.",
        ),
    ] = None,
    arch: Annotated[
        str | None, typer.Option("--arch", help="Model to load into; inferred when omitted.")
    ] = None,
    num_classes: Annotated[
        int | None, typer.Option("--num-classes", help="Checked against the file's classifier.")
    ] = None,
    model_arg: Annotated[
        list[str] | None,
        typer.Option("--model-arg", help="KEY=VALUE builder keyword, e.g. tau=0.136; repeatable."),
    ] = None,
    keep_half: Annotated[
        bool, typer.Option("--keep-half", help="Keep float16 tensors in float16 (default: float32).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Import a checkpoint of the original research code or torchvision as a normexport checkpoint."""
    from normresnet_export import import_checkpoint
    from normresnet_export._render import import_summary, print_import_summary, print_json
    from normresnet_export.models import parse_model_args

    kwargs = _run(parse_model_args, model_arg)
    checkpoint = _run(
        import_checkpoint,
        src,
        source=source,
        arch=arch,
        num_classes=num_classes,
        keep_half=keep_half,
        **kwargs,
    )
    _run(checkpoint.save, output)
    summary = import_summary(checkpoint, str(output))
    if as_json:
        print_json(summary)
    else:
        print_import_summary(summary)


class Layout(str, Enum):
    """Weight layouts of other projects that ``export --layout`` writes."""

    diracnet = "diracnet"


@app.command("export")
def export_command(
    checkpoint: Annotated[Path, typer.Argument(help="A normexport checkpoint.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the export.")],
    layout: Annotated[
        Layout,
        typer.Option(
            "--layout",
            help="diracnet: a folded DiracNet-18/34 as the published folded state_dict "
            "(diracnet18v2folded layout), loadable by the original DiracNet module.",
        ),
    ],
) -> None:
    """Write a checkpoint's weights in another project's layout."""
    from normresnet_export import load_checkpoint
    from normresnet_export.interop.diracnet import write_folded_layout

    loaded = _run(load_checkpoint, checkpoint)
    path = _run(write_folded_layout, loaded, output)
    typer.echo(f"wrote {path} ({layout.value} layout, {len(loaded.model.state_dict())} tensors)")
