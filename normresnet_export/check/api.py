"""``check``: open the reference and every artefact, compare them on one data set, time them."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from normresnet_export.check.agreement import agreements, require_comparable
from normresnet_export.check.data import check_samples, load_data
from normresnet_export.check.latency import check_timing, measure_latency
from normresnet_export.check.plot import plot_throughput, prepare_plot
from normresnet_export.check.report import CheckReport
from normresnet_export.checkpoint import Checkpoint, load_checkpoint
from normresnet_export.data.sets import parse_data_set
from normresnet_export.errors import InputError
from normresnet_export.export.gate import Gate
from normresnet_export.runtime import open_model
from normresnet_export.runtime.devices import check_threads
from normresnet_export.runtime.loader import check_runtime

#: Labels of the unfolded and folded eager backends in reports.
UNFOLDED, FOLDED = "eager (unfolded)", "eager (folded)"
#: Label of the reference when the checkpoint itself is folded (e.g. imported from DiracNet's folded weights).
FOLDED_REFERENCE = "eager (folded checkpoint)"


def _reference(checkpoint: Checkpoint | str | os.PathLike[str]) -> Checkpoint:
    """The checkpoint every backend is compared with.

    Usually the trained, unfolded one. A folded checkpoint (one imported from folded weights,
    say) is a reference too: its float32 model is then what the artefacts are measured against,
    and there is no separate folded backend.
    """
    if isinstance(checkpoint, Checkpoint):
        return checkpoint
    from normresnet_export.weights import resolve_model_file

    return load_checkpoint(resolve_model_file(checkpoint))


def check(
    checkpoint: Checkpoint | str | os.PathLike[str],
    exported: Sequence[str | os.PathLike[str]] = (),
    *,
    data: str = "random",
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    samples: int = 256,
    batch_sizes: Sequence[int] = (1, 32),
    device: str = "auto",
    allow_cpu_fallback: bool = False,
    threads: int | None = None,
    latency: bool = True,
    exclude_copies: bool = False,
    repeats: int = 3,
    budget: float = 0.5,
    progress: Callable[[str, int, int], None] | None = None,
    trust_code: bool = False,
    plot: str | os.PathLike[str] | None = None,
    runtime: str = "onnxruntime",
    precision: str = "fp32",
    gate: Gate | None = None,
) -> CheckReport:
    """Compare a checkpoint's deployment artefacts with it: agreement, accuracy and latency.

    The backends are the unfolded checkpoint (the reference), the folded checkpoint, and every
    artefact in ``exported``, all on the same device.

    Args:
        checkpoint: The reference: the trained (unfolded) checkpoint, or a folded one (then the
            artefacts are measured against the folded float32 model).
        exported: ONNX / TorchScript / pt2 files or Triton model directories made from it.
        data: ``random``, ``digits``, ``cifar10``, ``cifar100``, ``imagenet`` or ``folder:DIR``
            (see :func:`~normresnet_export.check.data.load_data`).
        data_dir: ``--data-dir``: where CIFAR is (default ``./data``), the ImageNet-layout folder.
        download: ``--download``: fetch CIFAR when the local copy is missing.
        samples: Inputs compared.
        batch_sizes: Batch sizes timed.
        device: ``auto``, ``cpu``, ``cuda`` or ``tensorrt`` for every backend.
        allow_cpu_fallback: Let backends run on the CPU when the GPU is not usable (reported).
        threads: CPU threads for every backend.
        latency: Time the backends (``False``: agreement only).
        exclude_copies: On a GPU, keep inputs and outputs on the device while timing.
        repeats: Interleaved timing blocks per backend and batch size.
        budget: Seconds of timed calls per block.
        progress: Called as ``progress(stage, done, total)``.
        trust_code: Load TorchScript and ``.pt2`` artefacts, which are programs (see
            :func:`~normresnet_export.runtime.open_model`); without it they are refused.
        plot: Write the throughput chart here (PNG) once timed; the path is checked first, so a
            bad one fails before any work.
        runtime: What runs the ONNX artefacts: ``onnxruntime`` or ``openvino``.
        precision: The inference precision asked of that runtime (``fp32`` or ``bf16``); ``bf16``
            also adds the folded checkpoint under torch's bfloat16 autocast.
        gate: What a bfloat16 or int8 artefact must achieve against the reference (default:
            top-1 agreement at least 99%, accuracy at most half a point lower).

    Raises:
        InputError: Bad data, batch sizes, or plot path, an artefact that does not match the
            checkpoint, or a program artefact without ``trust_code``.
        DeviceError: The device cannot be used.
    """
    check_timing(batch_sizes, repeats=repeats, budget=budget)  # every number, before any work
    check_threads(threads)
    parse_data_set(data, data_dir=data_dir, download=download)  # a bad spelling fails before any work
    inputs = [checkpoint.path if isinstance(checkpoint, Checkpoint) else checkpoint, *exported]
    if plot is not None:
        if not latency:
            raise InputError("--plot charts the timing; it cannot be used with --no-latency")
        prepare_plot(plot, inputs=inputs)
    loaded = _reference(checkpoint)
    check_samples(samples, loaded.input_size)
    options = {"device": device, "allow_cpu_fallback": allow_cpu_fallback, "threads": threads}
    reference = open_model(loaded, label=FOLDED_REFERENCE if loaded.folded else UNFOLDED, **options)
    folded = [] if loaded.folded else [open_model(loaded, fold=True, label=FOLDED, **options)]
    if precision != "fp32":  # the checkpoint itself, folded, at that precision: gated like any artefact
        label = f"eager {precision} ({'folded checkpoint' if loaded.folded else 'folded'})"
        folded.append(open_model(loaded, fold=not loaded.folded, precision=precision, label=label, **options))
    if exported:
        check_runtime(runtime, precision)
    artefacts = [
        open_model(path, trust_code=trust_code, runtime=runtime, precision=precision, **options)
        for path in exported
    ]
    for artefact in artefacts:
        require_comparable(artefact, loaded)
    size = tuple(loaded.input_size)
    checked = load_data(
        data,
        preprocessing=loaded.preprocessing,
        input_size=size,
        labels=loaded.labels,
        samples=samples,
        data_dir=data_dir,
        download=download,
    )
    compared, reference_accuracy = agreements(
        loaded.model,
        [*folded, *artefacts],
        checked.inputs,
        checked.targets,
        chunk=max(batch_sizes),
        progress=progress,
        gate=gate,
    )
    report = CheckReport(
        data=checked.description,
        samples=len(checked.inputs),
        reference=reference.to_dict(),
        reference_accuracy=reference_accuracy,
        agreements=compared,
        reference_kind="folded" if loaded.folded else "unfolded",
    )
    if latency:
        report.latency = measure_latency(
            [reference, *folded, *artefacts],
            size,
            batch_sizes,
            exclude_copies=exclude_copies,
            repeats=repeats,
            budget=budget,
            progress=progress,
        )
        if plot is not None:
            plot_throughput(report, plot, inputs=inputs)
    return report
