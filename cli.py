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


class Format(str, Enum):
    """Deployment formats of ``export --format``."""

    onnx = "onnx"
    torchscript = "torchscript"
    pt2 = "pt2"
    triton = "triton"


class Layout(str, Enum):
    """Weight layouts of other projects that ``export --layout`` writes."""

    diracnet = "diracnet"


class Exporter(str, Enum):
    """torch's ONNX exporters."""

    auto = "auto"
    dynamo = "dynamo"
    torchscript = "torchscript"


@app.command("export")
def export_command(
    checkpoint: Annotated[Path, typer.Argument(help="A normexport checkpoint.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The file to write (for triton: the model repository).")
    ],
    format_: Annotated[
        Format | None, typer.Option("--format", "-f", help="Deployment format (or use --layout).")
    ] = None,
    layout: Annotated[
        Layout | None,
        typer.Option(
            "--layout", help="diracnet: a folded DiracNet-18/34 as the published folded state_dict."
        ),
    ] = None,
    no_fold: Annotated[
        bool, typer.Option("--no-fold", help="Export the model as trained, unfolded.")
    ] = False,
    opset: Annotated[
        int | None, typer.Option("--opset", help="ONNX opset (onnx, triton; default 18).")
    ] = None,
    static_batch: Annotated[
        int | None, typer.Option("--static-batch", help="Pin the batch dimension (default: symbolic).")
    ] = None,
    input_size: Annotated[
        tuple[int, int] | None, typer.Option("--input-size", help="H W to export at (default: the model's).")
    ] = None,
    fp16: Annotated[
        bool, typer.Option("--fp16", help="float16 weights and compute (float32 input/output), for GPUs.")
    ] = False,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Skip running the export against the model (not advised).")
    ] = False,
    exporter: Annotated[
        Exporter | None, typer.Option("--exporter", help="ONNX exporter (default auto: see README).")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Triton model name (default: the arch).")] = None,
    max_batch_size: Annotated[
        int | None, typer.Option("--max-batch-size", help="Triton dynamic batching limit (default 64).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Export a checkpoint to ONNX, TorchScript, torch.export (.pt2) or a Triton model repository.

    Folds first, runs the result against the model before writing (exit code 1 and no file
    when they disagree), writes atomically, and carries the preprocessing and labels along.
    """
    from normresnet_export import load_checkpoint
    from normresnet_export._render import print_json

    if (format_ is None) == (layout is None):
        _run(_usage, "give either --format or --layout")
    if layout is not None:
        from normresnet_export.interop.diracnet import write_folded_layout

        loaded = _run(load_checkpoint, checkpoint)
        path = _run(write_folded_layout, loaded, output)
        typer.echo(f"wrote {path} ({layout.value} layout, {len(loaded.model.state_dict())} tensors)")
        return
    from normresnet_export.export import export

    result = _run(
        export,
        format_.value,
        checkpoint,
        output,
        fold=not no_fold,
        input_size=input_size,
        fp16=fp16,
        check=not no_check,
        opset=opset,
        exporter=exporter.value if exporter else None,
        static_batch=static_batch,
        name=name,
        max_batch_size=max_batch_size,
    )
    if as_json:
        print_json(result.to_dict())
    else:
        verdict = result.check.verdict() if result.check else "not checked (--no-check)"
        typer.echo(
            f"wrote {result.path} ({format_.value}, {result.metadata.get('precision')}, "
            f"{'folded' if result.metadata.get('folded') else 'unfolded'}) in {result.seconds:.1f} s"
        )
        typer.echo(verdict)


def _usage(message: str) -> None:
    from normresnet_export.errors import InputError

    raise InputError(message)
