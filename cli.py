"""The ``normexport`` command line: parses options and calls one library function per command.

Each command imports what it calls, so ``import cli`` and ``normexport --help`` do not load
torch; the choices its options offer come from :mod:`normresnet_export.vocabulary`, which
imports nothing. Errors the user can fix (``NormexportError``) become one line on stderr and
exit code 2 (bad input) or 1 (a check that failed); there are no tracebacks.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args

import typer
from typer.core import TyperArgument, TyperGroup

from normresnet_export import limits, vocabulary

try:  # typer >= 0.20 ships its own click; older versions raise click's exceptions
    from typer import TyperException as _CommandLineError
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import ClickException as _CommandLineError

T = TypeVar("T")


class _Argument(TyperArgument):
    """An argument shown as click shows one: ``NAME`` when required, ``[NAME]`` when optional.

    Typer writes a required argument as ``{name}`` in the usage line and adds its Python type
    (``<path>``, ``<str>``) beside it; the name in capitals says what to give.
    """

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        name = self.metavar or self.name.upper()
        return [(name if self.required else f"[{name}]") + ("..." if self.nargs != 1 else "")]

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


#: What a value of each Python type is called in --help (typer would write ``<int>``, ``<str>``, …).
_VALUE_WORDS = {int: "N", float: "F", Path: "PATH"}


def _value_word(annotation: Any, option: str) -> str:
    if annotation is str:  # text: the option's own name says what it is (--arch ARCH, --host HOST)
        return option.lstrip("-").replace("-", "_").upper()
    return _VALUE_WORDS.get(annotation, "VALUE")


def _readable(command: Any, ctx: Any) -> Any:
    """Give ``command`` (and, for a group, its commands) readable metavars, once, in place.

    A flag shows no value; a choice shows its values (``onnx|torchscript|pt2|triton``); a number
    ``N`` or ``F``; a path ``PATH``; text the option's name; an argument its name in capitals.
    An explicit ``metavar=`` is kept. ``ctx`` names the help option (``--help``, a flag too).
    """
    if command is None:
        return None
    for param in command.get_params(ctx):
        if type(param) is TyperArgument:
            param.__class__ = _Argument  # only the usage line and the type column change
        if param.metavar is not None:
            continue
        described = param.type_descriptor
        name = next((o for o in param.opts if o.startswith("--")), param.opts[0])
        if isinstance(param, _Argument):
            param.metavar = param.name.upper()
        elif getattr(param, "is_flag", False):
            param.metavar = ""
        elif described.is_choice:
            param.metavar = "|".join(str(getattr(c, "value", c)) for c in described.choices or ())
        elif described.is_tuple:
            param.metavar = " ".join(_value_word(a, name) for a in get_args(described.annotation))
        else:
            element = get_args(described.annotation)[0] if described.is_list else described.annotation
            param.metavar = _value_word(element, name)
    for sub in getattr(command, "commands", {}).values():
        _readable(sub, ctx)
    return command


class _OneLineErrors(TyperGroup):
    """Typer's own usage errors (a bad choice, a missing or unknown option) in the library's style.

    Typer prints those as a multi-line box with the usage above it; every other error of
    normexport is one ``error:`` line. Here they become one line too, naming the command's
    ``--help``, with click's exit code (2). ``normexport`` alone still prints the help. Every
    command it hands out has readable metavars (:func:`_readable`).
    """

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return _readable(super().get_command(ctx, cmd_name), ctx)

    def get_params(self, ctx: Any) -> Any:
        _readable(super(), ctx)  # the group's own --version and --help
        return super().get_params(ctx)

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            # Not standalone: click hands back what it would print, and the exit code it would exit with.
            returned = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _CommandLineError as exc:
            if not standalone_mode:
                raise
            if type(exc).__name__ == "NoArgsIsHelpError":
                exc.show()
            else:
                from normresnet_export._render import printable

                context = getattr(exc, "ctx", None)
                see = f"; see '{context.command_path} --help'" if context is not None else ""
                # One line, without typer's "Value error, " prefix and the closing full stop.
                message = " ".join(exc.format_message().replace("Value error, ", "").split()).rstrip(".")
                typer.echo(f"error: {printable(message)}{see}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            if not standalone_mode:
                raise
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        if not standalone_mode:
            return returned
        sys.exit(returned if isinstance(returned, int) else 0)


app = typer.Typer(
    name="normexport",
    help="Train, fold, export and serve very deep norm-preserving residual networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_OneLineErrors,
)


def choices(name: str, values: Iterable[str]) -> type[Enum]:
    """A str Enum over one of the library's enumerations, so the CLI never restates a list of choices."""
    return Enum(name, {value: value for value in values}, type=str)  # type: ignore[return-value]


def _choice(name: str) -> type[Enum]:
    """An option type accepting exactly the values of ``vocabulary.<name>`` (others: usage error, exit 2)."""
    return choices(name, getattr(vocabulary, name))


def _listing(name: str) -> str:
    """The values of ``vocabulary.<name>`` for a help text: ``a, b or c``."""
    *others, last = getattr(vocabulary, name)
    return f"{', '.join(others)} or {last}" if others else last


JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")]


def _run(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call into the library; turn a NormexportError into a one-line message and its exit code.

    The message often quotes a file name or a field read from a file: it is printed with its
    control characters escaped (``_render.printable``), so it stays one line and inert.
    """
    from normresnet_export.errors import NormexportError

    try:
        return function(*args, **kwargs)
    except NormexportError as exc:
        from normresnet_export._render import printable

        typer.echo(f"error: {printable(exc)}", err=True)
        raise typer.Exit(exc.exit_code) from None


def _model_file(value: str) -> Path:
    """A model-file argument: a path, or a pretrained weights name (fetched and converted if needed)."""
    from normresnet_export.weights import resolve_model_file

    return _run(resolve_model_file, value)


MODEL_FILE_HELP = " Or a pretrained weights name (`normexport weights list`)."


def _run_check(as_json: bool, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """:func:`_run` for a call whose numerical check can fail: what the check measured comes first.

    A failed check shows its table (or, with ``--json``, its JSON document on stdout) and then
    the one ``error:`` line that says in words what went wrong and what to do.
    """
    from normresnet_export.errors import CheckFailedError

    def shown(*inner: Any, **named: Any) -> T:
        try:
            return function(*inner, **named)
        except CheckFailedError as exc:
            from normresnet_export._render import print_failed_check

            print_failed_check(exc, as_json=as_json)
            raise

    return _run(shown, *args, **kwargs)


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
        typer.Option("--family", help=f"Only this family: {_listing('FAMILIES')}."),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option("--kind", help=f"Only the designs for one input kind: {_listing('DESIGN_DATASETS')}."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the registered models: family, dataset kind, input size, parameters, layers and weights."""
    from normresnet_export._render import print_listing
    from normresnet_export.weights import MODEL_COLUMNS, model_catalogue

    rows = _run(model_catalogue, pattern, family=family, dataset=kind)
    print_listing(rows, MODEL_COLUMNS, as_json=as_json, empty="no registered model matches")


@app.command("train")
def train_command(
    arch: Annotated[str, typer.Argument(help="Model to train (`normexport models` lists them).")],
    # --dataset, --device, --optimizer and --procrustes take any text: TrainConfig checks it
    # (one line, exit 2).
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            help=f"{_listing('TRAINING_DATASETS')} (folder --data-dir D is the same as folder:D).",
        ),
    ],
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where the data lives (CIFAR default ./data).")
    ] = None,
    download: Annotated[
        bool, typer.Option("--download", help="Fetch CIFAR-10/100 into --data-dir if missing.")
    ] = False,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs (default: the recipe's).")] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            help=f"Global batch over all processes, at most {limits.MAX_BATCH} per process (recipe's).",
        ),
    ] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Initial learning rate (recipe's).")] = None,
    weight_decay: Annotated[
        float | None, typer.Option("--weight-decay", help="Weight decay (recipe's).")
    ] = None,
    optimizer: Annotated[
        str | None,
        typer.Option(
            "--optimizer",
            help=f"{_listing('OPTIMIZERS')}: the recipe's SGD (default), or AdamW with its groups and "
            "schedule.",
        ),
    ] = None,
    recipe: Annotated[
        str | None, typer.Option("--recipe", help="Recipe name (default: the model family's).")
    ] = None,
    tau: Annotated[
        float | None, typer.Option("--tau", help="tau-ResNet residual scale (default: the paper's rule).")
    ] = None,
    regul_freq: Annotated[
        float | None, typer.Option("--regul-freq", help="ProcResNet projection probability per step.")
    ] = None,
    procrustes: Annotated[
        str | None,
        typer.Option(
            "--procrustes", help=f"ProcResNet projection: {_listing('PROJECTION_MODES')}; default exact."
        ),
    ] = None,
    amp: Annotated[
        bool | None, typer.Option("--amp/--no-amp", help="Mixed precision on CUDA (recipe's default).")
    ] = None,
    channels_last: Annotated[
        bool | None, typer.Option("--channels-last/--no-channels-last", help="Channels-last memory format.")
    ] = None,
    device: Annotated[str, typer.Option("--device", help=f"{_listing('TRAINING_DEVICES')}.")] = "auto",
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help=f"Data-loader processes, 0 (load in the main process) to {limits.THREADS_PER_CORE} per "
            "core; default 0 for digits, else the recipe's (at most 4).",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help=f"Run seed, 0 to {limits.MAX_SEED} (recipe's).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "--out",
            "-o",
            metavar="RUN_DIR",
            help="Run directory (default runs/ARCH-DATASET-TIME).",
        ),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --output.")] = False,
    num_classes: Annotated[
        int | None, typer.Option("--num-classes", help="Checked against the data set's classes.")
    ] = None,
    model_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--model-arg", metavar="KEY=VALUE", help="KEY=VALUE builder keyword, e.g. shortcut=A; repeatable."
        ),
    ] = None,
    limit_train: Annotated[
        int | None, typer.Option("--limit-train", help="Train on the first N images (smoke runs).")
    ] = None,
    limit_test: Annotated[
        int | None, typer.Option("--limit-test", help="Evaluate on the first N test images.")
    ] = None,
    log_gradnorm: Annotated[
        int | None,
        typer.Option("--log-gradnorm", help="Every N steps, record each block's gradient-norm ratio."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Train a model with its paper's recipe; resumable, DDP under torchrun.

    Writes config.json, last.pt, best.pt, metrics.jsonl and curves.png into the run
    directory. Ctrl-C saves a resumable checkpoint and exits with code 130.
    """
    # Every parameter but these two is the TrainConfig field of the same name.
    options = {name: value for name, value in locals().items() if name not in ("model_arg", "as_json")}
    from normresnet_export._render import print_json, printable
    from normresnet_export.models import parse_model_args
    from trainers import TrainConfig, train

    config = _run(TrainConfig, **options, model_kwargs=_run(parse_model_args, model_arg, arch=arch))
    result = _run(train, config)
    if result.rank == 0:  # under torchrun every process returns the result; one prints it
        if as_json:
            print_json(result.to_dict())
        else:
            typer.echo("\n".join(map(printable, result.summary().splitlines())))
    if result.interrupted:
        raise typer.Exit(130)


KeepStreamBnFlag = Annotated[
    bool,
    typer.Option(
        "--keep-stream-bn",
        help="Keep the BatchNorms on the residual stream as per-channel affines (default: removed "
        "exactly, scale into the next convs and shift into the stream); for debugging.",
    ),
]


@app.command("fold")
def fold_command(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="A normexport checkpoint (.pt or .safetensors)." + MODEL_FILE_HELP, parser=_model_file
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the folded checkpoint.")],
    keep_stream_bn: KeepStreamBnFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Fold BatchNorm, tau and Dirac weights into plain convolutions, check the logits, write the result.

    The check runs the folded and the unfolded model on the same random inputs of the
    model's size, in float32 and float64. If the deviation exceeds the limits, nothing is
    written and the exit code is 1.
    """
    from normresnet_export._render import print_fold_report, print_json, stage_spinner
    from normresnet_export.checkpoint import fold_checkpoint

    with stage_spinner("folding", first="load", enabled=not as_json):
        report = _run(fold_checkpoint, checkpoint, output, keep_stream_bn=keep_stream_bn)
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
        _choice("IMPORT_SOURCES") | None,
        typer.Option(
            "--from",
            help=f"Who wrote it: {_listing('IMPORT_SOURCES')}. Recognised from the file if omitted.",
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
        typer.Option(
            "--model-arg", metavar="KEY=VALUE", help="KEY=VALUE builder keyword, e.g. tau=0.136; repeatable."
        ),
    ] = None,
    keep_half: Annotated[
        bool, typer.Option("--keep-half", help="Keep float16 tensors in float16 (default: float32).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Import a checkpoint of the original research code or torchvision as a normexport checkpoint."""
    from normresnet_export import import_checkpoint
    from normresnet_export._render import import_record, print_import_record, print_json, stage_spinner
    from normresnet_export.models import parse_model_args

    kwargs = _run(parse_model_args, model_arg, arch=arch)
    with stage_spinner("importing", first="read", enabled=not as_json):
        checkpoint = _run(
            import_checkpoint,
            src,
            source=source.value if source else None,
            arch=arch,
            num_classes=num_classes,
            keep_half=keep_half,
            **kwargs,
        )
        _run(checkpoint.save, output, inputs=[src])
    record = import_record(checkpoint, str(output))
    if as_json:
        print_json(record)
    else:
        print_import_record(record)


@app.command("export")
def export_command(
    checkpoint: Annotated[
        Path, typer.Argument(help="A normexport checkpoint." + MODEL_FILE_HELP, parser=_model_file)
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The file to write (for triton: the model repository).")
    ],
    format_: Annotated[
        _choice("FORMATS") | None,
        typer.Option(
            "--format",
            "-f",
            help=f"Deployment format: {_listing('FORMATS')} (default: from -o's suffix: .onnx, .pt2, .ts).",
        ),
    ] = None,
    layout: Annotated[
        _choice("LAYOUTS") | None,
        typer.Option(
            "--layout",
            help=f"Another project's weight layout instead: {_listing('LAYOUTS')}. diracnet: a folded "
            "DiracNet-18/34 as the published folded state_dict.",
        ),
    ] = None,
    no_fold: Annotated[
        bool, typer.Option("--no-fold", help="Export the model as trained, unfolded.")
    ] = False,
    keep_stream_bn: KeepStreamBnFlag = False,
    opset: Annotated[
        int | None,
        typer.Option("--opset", help="ONNX opset (onnx, triton; default 18), 7 to the newest onnx defines."),
    ] = None,
    static_batch: Annotated[
        int | None,
        typer.Option(
            "--static-batch", help=f"Pin the batch dimension, 1 to {limits.MAX_BATCH} (default: symbolic)."
        ),
    ] = None,
    input_size: Annotated[
        tuple[int, int] | None,
        typer.Option(
            "--input-size",
            metavar="H W",
            help=f"H W to export at, 1 to {limits.MAX_INPUT_SIDE} (default: the model's).",
        ),
    ] = None,
    fp16: Annotated[
        bool, typer.Option("--fp16", help="float16 weights and compute (float32 input/output), for GPUs.")
    ] = False,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Skip running the export against the model (not advised).")
    ] = False,
    exporter: Annotated[
        _choice("EXPORTERS") | None,
        typer.Option(
            "--exporter", help=f"ONNX exporter: {_listing('EXPORTERS')} (default auto, see README)."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Triton model name (default: the arch).")] = None,
    max_batch_size: Annotated[
        int | None,
        typer.Option(
            "--max-batch-size", help=f"Triton dynamic batching limit, 1 to {limits.MAX_BATCH} (default 64)."
        ),
    ] = None,
    int8: Annotated[
        bool,
        typer.Option(
            "--int8", help="ONNX only: statically quantised int8 (QDQ), written only if it passes the gate."
        ),
    ] = False,
    calibration: Annotated[
        str | None,
        typer.Option(
            "--calibration",
            help="int8 calibration data: digits, folder:DIR, random:N (or any --data of check); "
            "half calibrates, half is the gate's.",
        ),
    ] = None,
    calibration_method: Annotated[
        _choice("CALIBRATION_METHODS"),
        typer.Option("--calibration-method", help=f"Activation ranges: {_listing('CALIBRATION_METHODS')}."),
    ] = "minmax",
    gate_data: Annotated[
        str | None,
        typer.Option("--gate-data", help="Gate the int8 model on this data instead of the held-out half."),
    ] = None,
    min_agreement: MinAgreementOption = 99.0,
    max_accuracy_drop: MaxAccuracyDropOption = 0.5,
    as_json: JsonFlag = False,
) -> None:
    """Export a checkpoint to ONNX, TorchScript, torch.export (.pt2), a Triton model repository or a layout.

    Folds first, runs the result against the model before writing (exit code 1 and no file
    when they disagree), writes atomically, and carries the preprocessing and labels along.
    A layout writes an already folded checkpoint's weights under another project's names.
    """
    from normresnet_export._render import print_json, printable, stage_spinner
    from normresnet_export.check.calibration import load_calibration
    from normresnet_export.export import export
    from normresnet_export.export.dispatch import resolve_format
    from normresnet_export.export.gate import Gate

    written = _run(
        resolve_format, output, format_.value if format_ else None, layout.value if layout else None
    )
    gate = _run(Gate.from_percent, min_agreement=min_agreement, max_accuracy_drop=max_accuracy_drop)
    calibrated = _run(load_calibration, calibration, checkpoint) if calibration else None
    gated = _run(load_calibration, gate_data, checkpoint) if gate_data else None
    with stage_spinner("exporting", first="load", enabled=not as_json):
        result = _run_check(
            as_json,
            export,
            written,
            checkpoint,
            output,
            fold=not no_fold,
            keep_stream_bn=keep_stream_bn,
            input_size=input_size,
            fp16=fp16,
            check=not no_check,
            opset=opset,
            exporter=exporter.value if exporter else None,
            static_batch=static_batch,
            name=name,
            max_batch_size=max_batch_size,
            int8=int8,
            calibration=calibrated,
            calibration_method=calibration_method.value,
            gate=gate,
            gate_data=gated,
        )
    if as_json:
        print_json(result.to_dict())
    else:
        verdict = (
            result.check.verdict()
            if result.check
            else "not checked (--no-check): its metadata records it as unverified"
        )
        if "gate" in result.details:
            verdict = f"accuracy gate: {result.details['gate']['verdict']}"
        if layout is not None:
            how = f"{written} layout, {result.details['tensors']} tensors"
        else:
            folded = "folded" if result.metadata.get("folded") else "unfolded"
            how = f"{written}, {result.metadata.get('precision')}, {folded}"
        typer.echo(printable(f"wrote {result.path} ({how}) in {result.seconds:.1f} s"))
        typer.echo(verdict)


def _device_option() -> Any:
    """``--device`` of predict and check: ``auto`` takes a GPU only when it is really usable."""
    return Annotated[
        _choice("DEVICES"),
        typer.Option(
            "--device",
            help=f"{_listing('DEVICES')}: auto takes the GPU only if usable, tensorrt is ONNX only.",
        ),
    ]


FallbackFlag = Annotated[
    bool, typer.Option("--allow-cpu-fallback", help="Run on the CPU (and say so) when the GPU is not usable.")
]
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads", help=f"CPU threads, 1 to {limits.THREADS_PER_CORE} per core (default: all cores)."
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Where CIFAR is (default ./data: DIR/cifar-10-batches-py/), or the imagenet folder.",
    ),
]
DownloadFlag = Annotated[
    bool, typer.Option("--download", help="Fetch CIFAR-10/100 into --data-dir if it is missing.")
]
RuntimeOption = Annotated[
    _choice("RUNTIMES"),
    typer.Option("--runtime", help=f"What runs .onnx files: {_listing('RUNTIMES')} (pip extra [openvino])."),
]
PrecisionOption = Annotated[
    _choice("INFERENCE_PRECISIONS"),
    typer.Option(
        "--precision",
        help=f"Inference precision, set explicitly and reported: {_listing('INFERENCE_PRECISIONS')} "
        "(bf16: OpenVINO for .onnx, torch autocast for checkpoints; a CPU with AVX512-BF16 or AMX).",
    ),
]
MinAgreementOption = Annotated[
    float,
    typer.Option("--min-agreement", help="Gate of bf16/int8 artefacts: least top-1 agreement, in percent."),
]
MaxAccuracyDropOption = Annotated[
    float,
    typer.Option("--max-accuracy-drop", help="Gate of bf16/int8 artefacts: most accuracy lost, in points."),
]
TrustCodeFlag = Annotated[
    bool,
    typer.Option(
        "--trust-code",
        help="Load TorchScript and .pt2 files: they are programs, and loading one runs its code. "
        "Only for files from someone you trust.",
    ),
]


@app.command("predict")
def predict_command(
    model: Annotated[
        Path,
        typer.Argument(
            help=".onnx, TorchScript, .pt2, Triton model dir or checkpoint." + MODEL_FILE_HELP,
            parser=_model_file,
        ),
    ],
    inputs: Annotated[
        list[str], typer.Argument(help="Image files, directories (recursive), or - for stdin.")
    ],
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Classes per image, at least 1.")] = 5,
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", help=f"Images per model call, 1 to {limits.MAX_BATCH}.")
    ] = 32,
    device: _device_option() = "auto",
    allow_cpu_fallback: FallbackFlag = False,
    threads: ThreadsOption = None,
    trust_code: TrustCodeFlag = False,
    runtime: RuntimeOption = "onnxruntime",
    precision: PrecisionOption = "fp32",
    preprocessing: Annotated[
        str | None,
        typer.Option("--preprocessing", help="Override: a preset (cifar10, imagenet, …) or a JSON file."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help=f"Image decoding threads, 1 to {limits.THREADS_PER_CORE} per core (default: up to 8; "
            "0 is refused).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Classify images: the top-k labels and probabilities per image.

    The model's own metadata gives the preprocessing. An image that cannot be decoded gets
    an error line naming it; the others are still predicted, and the exit code is 1.
    """
    import sys

    from normresnet_export._render import print_json, print_predictions, progress_bar
    from normresnet_export.predict import check_options, collect_inputs, predict
    from normresnet_export.preprocess import parse_preprocessing
    from normresnet_export.runtime import open_model

    _run(check_options, top_k=top_k, batch_size=batch_size, workers=workers)  # before the model opens
    override = _run(parse_preprocessing, preprocessing) if preprocessing else None
    items = _run(collect_inputs, inputs, sys.stdin.buffer)
    backend = _run(
        open_model,
        model,
        device=device.value,
        allow_cpu_fallback=allow_cpu_fallback,
        threads=threads,
        trust_code=trust_code,
        runtime=runtime.value,
        precision=precision.value,
    )
    with progress_bar(len(items), "predicting") as advance:
        report = _run(
            predict,
            backend,
            items,
            top_k=top_k,
            batch_size=batch_size,
            preprocessing=override,
            workers=workers,
            progress=advance,
        )
    if as_json:
        print_json(report.to_dict())
    else:
        print_predictions(report)
    if report.failed:
        raise typer.Exit(1)


@app.command("check")
def check_command(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="The reference: the trained checkpoint (or a folded one, e.g. imported)." + MODEL_FILE_HELP,
            parser=_model_file,
        ),
    ],
    exported: Annotated[
        list[Path] | None,
        typer.Argument(help="Exported files made from it (.onnx, TorchScript, .pt2, Triton)."),
    ] = None,
    data: Annotated[
        str, typer.Option("--data", help=f"{_listing('DATA_KINDS')} (folder:DIR: a class per directory).")
    ] = ("random"),
    data_dir: DataDirOption = None,
    download: DownloadFlag = False,
    samples: Annotated[
        int, typer.Option("--samples", help="Inputs to compare, at least 1 (at most 2 GiB of inputs).")
    ] = 256,
    batch_sizes: Annotated[
        str,
        typer.Option(
            "--batch-sizes",
            metavar="N,N,...",
            help=f"Batch sizes to time, comma-separated, each 1 to {limits.MAX_BATCH}.",
        ),
    ] = ("1,32"),
    device: _device_option() = "auto",
    allow_cpu_fallback: FallbackFlag = False,
    threads: ThreadsOption = None,
    trust_code: TrustCodeFlag = False,
    no_latency: Annotated[
        bool, typer.Option("--no-latency", help="Check agreement only; skip timing.")
    ] = False,
    exclude_copies: Annotated[
        bool,
        typer.Option("--exclude-copies", help="On a GPU, time with inputs/outputs already on the device."),
    ] = False,
    repeats: Annotated[
        int,
        typer.Option("--repeats", help=f"Interleaved timing blocks per backend, 1 to {limits.MAX_REPEATS}."),
    ] = 3,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG bar chart of throughput (needs matplotlib).")
    ] = None,
    runtime: RuntimeOption = "onnxruntime",
    precision: PrecisionOption = "fp32",
    min_agreement: MinAgreementOption = 99.0,
    max_accuracy_drop: MaxAccuracyDropOption = 0.5,
    as_json: JsonFlag = False,
) -> None:
    """Gate a deployment: agreement, accuracy and latency of every artefact against the checkpoint.

    Exit code 1 when any artefact's top-1 agreement is below 100% or its logit error is
    above the float32 (or float16) limit; a bf16 or int8 artefact instead fails below the
    gate (--min-agreement, --max-accuracy-drop against the float32 accuracy).
    """
    from normresnet_export._render import print_check_report, print_json, progress_bar
    from normresnet_export.check import check, parse_batch_sizes
    from normresnet_export.export.gate import Gate

    sizes = _run(parse_batch_sizes, batch_sizes)
    gate = _run(Gate.from_percent, min_agreement=min_agreement, max_accuracy_drop=max_accuracy_drop)
    with progress_bar(100, "checking", minimum=0) as advance:
        state = {"done": 0}

        def progress(stage: str, done: int, total: int) -> None:
            share = 30 if stage == "agreement" else 70
            start = 0 if stage == "agreement" else 30
            target = start + share * done // max(total, 1)
            advance(target - state["done"])
            state["done"] = target

        report = _run(
            check,
            checkpoint,
            exported or [],
            data=data,
            data_dir=data_dir,
            download=download,
            samples=samples,
            batch_sizes=sizes,
            device=device.value,
            allow_cpu_fallback=allow_cpu_fallback,
            threads=threads,
            latency=not no_latency,
            exclude_copies=exclude_copies,
            repeats=repeats,
            progress=progress,
            trust_code=trust_code,
            plot=plot,
            runtime=runtime.value,
            precision=precision.value,
            gate=gate,
        )
    if as_json:
        print_json(report.to_dict())
    else:
        print_check_report(report)
    if not report.passed:
        raise typer.Exit(1)


@app.command("serve")
def serve_command(
    models: Annotated[
        list[str],
        typer.Argument(
            help=".onnx files, checkpoints (exported and checked first), pretrained weights names or "
            "Triton repositories."
        ),
    ],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port, 0 to 65535 (0: a free one).")] = 8000,
    name: Annotated[
        str | None, typer.Option("--name", help="Served name of the one model (default: the file name).")
    ] = None,
    max_batch_size: Annotated[
        int,
        typer.Option(
            "--max-batch-size", help=f"Rows merged per model call, 1 (no batching) to {limits.MAX_BATCH}."
        ),
    ] = 32,
    max_delay_ms: Annotated[
        float, typer.Option("--max-delay-ms", help="Longest wait for a batch to fill, 0 to 10000 ms.")
    ] = 2.0,
    max_queue: Annotated[
        int, typer.Option("--max-queue", help="Requests waiting per model before 503, 1 to 100000.")
    ] = 256,
    device: _device_option() = "auto",
    threads: ThreadsOption = None,
    max_body_mb: Annotated[
        float, typer.Option("--max-body-mb", help="Largest request body in MiB (413 beyond), up to 4096.")
    ] = 64.0,
    allow_cpu_fallback: FallbackFlag = False,
    allow_nonfinite: Annotated[
        bool, typer.Option("--allow-nonfinite", help="Accept NaN and Inf inputs (otherwise refused: 400).")
    ] = False,
    json_logs: Annotated[
        bool, typer.Option("--json-logs", help="Log one JSON object per line on stderr.")
    ] = False,
    runtime: RuntimeOption = "onnxruntime",
    precision: PrecisionOption = "fp32",
) -> None:
    """Serve models over the KServe v2 / Triton HTTP protocol with dynamic batching, until SIGTERM.

    Speaks the protocol of Triton Inference Server and KServe (tritonclient works as it is),
    binary tensors and classification included; POST /v1/models/NAME/classify takes images;
    GET /metrics is Prometheus text. SIGTERM or Ctrl-C answers every request in flight, then exits 0.
    """
    from normresnet_export.serve import serve

    _run(
        serve,
        models,
        host=host,
        port=port,
        name=name,
        max_batch_size=max_batch_size,
        max_delay_ms=max_delay_ms,
        max_queue=max_queue,
        device=device.value,
        threads=threads,
        max_body_mb=max_body_mb,
        allow_cpu_fallback=allow_cpu_fallback,
        allow_nonfinite=allow_nonfinite,
        json_logs=json_logs,
        runtime=runtime.value,
        precision=precision.value,
    )


# --------------------------------------------------------------------------------------------- weights

weights_app = typer.Typer(
    name="weights",
    help="Pretrained weights: list the registry, download and verify into the cache, print paths.",
    no_args_is_help=True,
)
app.add_typer(weights_app)


@weights_app.command("list")
def weights_list_command(
    pattern: Annotated[str | None, typer.Argument(help="Shell-style name filter, e.g. 'resnet*'.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the registry's weights: arch, source, size, whether cached, reported accuracy."""
    from normresnet_export._render import print_listing
    from normresnet_export.weights import LIST_COLUMNS, list_weights

    rows = _run(list_weights, pattern)
    print_listing(rows, LIST_COLUMNS, as_json=as_json, empty="no weights match")


@weights_app.command("download")
def weights_download_command(
    names: Annotated[list[str], typer.Argument(help="Weights names (`normexport weights list`).")],
    force: Annotated[bool, typer.Option("--force", help="Fetch and convert again even if cached.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Download, verify (sha256) and convert weights into the cache ($NORMEXPORT_HOME)."""
    from normresnet_export._render import print_json, print_table
    from normresnet_export.weights import STATUS_COLUMNS, download

    rows = _run(download, names, force=force)
    if as_json:
        print_json(rows)
    else:
        print_table(rows, STATUS_COLUMNS)


@weights_app.command("verify")
def weights_verify_command(
    names: Annotated[list[str] | None, typer.Argument(help="Weights names (default: all).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Re-hash the cached downloads, converted checkpoints and shipped files; exit 1 if any is damaged."""
    from normresnet_export._render import print_json, print_table
    from normresnet_export.weights import STATUS_COLUMNS, verify

    report = _run(verify, names)
    if as_json:
        print_json(report.to_dict())
    else:
        print_table(report.rows, STATUS_COLUMNS)
    if not report.passed:
        raise typer.Exit(1)


@weights_app.command("path")
def weights_path_command(
    name: Annotated[str, typer.Argument(help="A weights name (`normexport weights list`).")],
) -> None:
    """Print the converted checkpoint's path, downloading and converting it if needed."""
    from normresnet_export._render import printable
    from normresnet_export.weights import fetch

    typer.echo(printable(str(_run(fetch, name))))


@app.command("optimize")
def optimize_command(
    checkpoint: Annotated[Path, typer.Argument(help="The trained (unfolded) checkpoint.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory to write: model.onnx and optimize.json.")
    ],
    data: Annotated[
        str,
        typer.Option("--data", help="Calibration and gate data (half each): digits, folder:DIR, random:N, …"),
    ] = "digits",
    samples: Annotated[int, typer.Option("--samples", help="Inputs read from --data, at least 16.")] = 256,
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", help=f"Batch size timed, 1 to {limits.MAX_BATCH}.")
    ] = 32,
    threads: ThreadsOption = None,
    calibration_method: Annotated[
        _choice("CALIBRATION_METHODS"),
        typer.Option(
            "--calibration-method", help=f"int8 activation ranges: {_listing('CALIBRATION_METHODS')}."
        ),
    ] = "minmax",
    repeats: Annotated[
        int,
        typer.Option(
            "--repeats", help=f"Interleaved timing blocks per candidate, 1 to {limits.MAX_REPEATS}."
        ),
    ] = 3,
    min_agreement: MinAgreementOption = 99.0,
    max_accuracy_drop: MaxAccuracyDropOption = 0.5,
    as_json: JsonFlag = False,
) -> None:
    """Build every deployment candidate, gate each, time each here, and write the fastest that passes.

    Candidates: ONNX Runtime fp32, OpenVINO fp32 and bf16, ONNX Runtime int8, OpenVINO on the
    int8 model. Exit code 1 (nothing written) when none passes.
    """
    from normresnet_export._render import print_json, progress_bar
    from normresnet_export.export.gate import Gate
    from normresnet_export.optimize import optimize, print_optimize_report

    gate = _run(Gate.from_percent, min_agreement=min_agreement, max_accuracy_drop=max_accuracy_drop)
    with progress_bar(100, "optimizing", minimum=0) as advance:
        state = {"done": 0}

        def progress(stage: str, done: int, total: int) -> None:
            start, share = (0, 40) if stage == "agreement" else (40, 60)
            target = start + share * done // max(total, 1)
            advance(target - state["done"])
            state["done"] = target

        report = _run(
            optimize,
            checkpoint,
            output,
            data=data,
            samples=samples,
            batch_size=batch_size,
            threads=threads,
            gate=gate,
            calibration_method=calibration_method.value,
            repeats=repeats,
            progress=progress,
        )
    if as_json:
        print_json(report.to_dict())
    else:
        print_optimize_report(report)


# --------------------------------------------------------------------------------------------- analyze

analyze_app = typer.Typer(
    name="analyze",
    help="Norm-preservation diagnostics: gradient-norm ratios per block, convolution spectra.",
    no_args_is_help=True,
)
app.add_typer(analyze_app)

_MODEL_HELP = "An architecture name (built at initialisation) or a normexport checkpoint."


@analyze_app.command("gradnorm")
def analyze_gradnorm_command(
    models: Annotated[list[str], typer.Argument(help=f"{_MODEL_HELP} Several: side by side.")],
    data: Annotated[
        str, typer.Option("--data", help=f"{_listing('DATA_KINDS')} (folder:DIR: a class per directory).")
    ] = "digits",
    data_dir: DataDirOption = None,
    download: DownloadFlag = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help=f"Samples in the measured batch, 2 to {limits.MAX_BATCH}.")
    ] = 8,
    at_init: Annotated[
        bool, typer.Option("--at-init", help="Measure checkpoints' architectures freshly initialised.")
    ] = False,
    seed: Annotated[
        int,
        typer.Option("--seed", help=f"Seed of the initialisation and random inputs, 0 to {limits.MAX_SEED}."),
    ] = 0,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG line chart, one line per model (matplotlib).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The gradient-norm ratio ‖∂L/∂x_l‖ / ‖∂L/∂x_{l+1}‖ of every residual block, transitions marked.

    One forward and backward pass of the cross-entropy loss per model, in training mode; the
    hooks keep only per-sample norms, so very deep models fit in memory.
    """
    from normresnet_export._render import print_json
    from normresnet_export.analysis import analyze_gradnorm, gradnorm_document
    from normresnet_export.analysis.tables import print_gradnorm

    reports = _run(
        analyze_gradnorm,
        models,
        data=data,
        data_dir=data_dir,
        download=download,
        batch_size=batch_size,
        at_init=at_init,
        seed=seed,
        plot=plot,
    )
    if as_json:
        print_json(gradnorm_document(reports))
    else:
        print_gradnorm(reports)


@analyze_app.command("spectrum")
def analyze_spectrum_command(
    model: Annotated[str, typer.Argument(help=_MODEL_HELP)],
    layer: Annotated[str | None, typer.Option("--layer", help="A convolution's qualified name.")] = None,
    transitions: Annotated[
        bool, typer.Option("--transitions", help="Every convolution of every transition unit.")
    ] = False,
    input_size: Annotated[
        tuple[int, int] | None,
        typer.Option(
            "--input-size",
            metavar="H W",
            help=f"H W of the input, 1 to {limits.MAX_INPUT_SIDE} (default: the model's).",
        ),
    ] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(
            "--tolerance", help="Largest max|σ − target|/target called norm-preserving, at least 0 (1e-3)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Singular values of a convolution's operator over its input grid (2-D FFT), against sqrt(out/in).

    Exit code 1 when a measured layer is not norm-preserving within the tolerance.
    """
    from normresnet_export._render import print_json
    from normresnet_export.analysis import analyze_spectrum
    from normresnet_export.analysis.tables import print_spectrum

    report = _run(
        analyze_spectrum,
        model,
        layer=layer,
        transitions=transitions,
        input_size=input_size,
        tolerance=tolerance,
    )
    if as_json:
        print_json(report.to_dict())
    else:
        print_spectrum(report)
    if not report.norm_preserving:
        raise typer.Exit(1)
