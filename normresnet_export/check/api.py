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
from normresnet_export.errors import InputError
from normresnet_export.runtime import open_model
from normresnet_export.runtime.devices import check_threads

#: Labels of the unfolded and folded eager backends in reports.
UNFOLDED, FOLDED = "eager (unfolded)", "eager (folded)"


def _reference(checkpoint: Checkpoint | str | os.PathLike[str]) -> Checkpoint:
    """The trained checkpoint every backend is compared with; a folded one cannot be the reference."""
    loaded = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    if loaded.folded:
        raise InputError(
            f"{loaded.path} is a folded checkpoint; check compares against the unfolded (trained) checkpoint"
        )
    return loaded


def check(
    checkpoint: Checkpoint | str | os.PathLike[str],
    exported: Sequence[str | os.PathLike[str]] = (),
    *,
    data: str = "random",
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
) -> CheckReport:
    """Compare a checkpoint's deployment artefacts with it: agreement, accuracy and latency.

    The backends are the unfolded checkpoint (the reference), the folded checkpoint, and every
    artefact in ``exported``, all on the same device.

    Args:
        checkpoint: The trained (unfolded) checkpoint; the reference.
        exported: ONNX / TorchScript / pt2 files or Triton model directories made from it.
        data: ``random``, ``digits`` or ``folder:DIR`` (see :func:`~normresnet_export.check.data.load_data`).
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

    Raises:
        InputError: Bad data, batch sizes, or plot path, an artefact that does not match the
            checkpoint, or a program artefact without ``trust_code``.
        DeviceError: The device cannot be used.
    """
    check_timing(batch_sizes, repeats=repeats, budget=budget)  # every number, before any work
    check_threads(threads)
    inputs = [checkpoint.path if isinstance(checkpoint, Checkpoint) else checkpoint, *exported]
    if plot is not None:
        if not latency:
            raise InputError("--plot charts the timing; it cannot be used with --no-latency")
        prepare_plot(plot, inputs=inputs)
    loaded = _reference(checkpoint)
    check_samples(samples, loaded.input_size)
    options = {"device": device, "allow_cpu_fallback": allow_cpu_fallback, "threads": threads}
    reference = open_model(loaded, label=UNFOLDED, **options)
    folded = open_model(loaded, fold=True, label=FOLDED, **options)
    artefacts = [open_model(path, trust_code=trust_code, **options) for path in exported]
    for artefact in artefacts:
        require_comparable(artefact, loaded)
    size = tuple(loaded.input_size)
    checked = load_data(
        data, preprocessing=loaded.preprocessing, input_size=size, labels=loaded.labels, samples=samples
    )
    compared, reference_accuracy = agreements(
        loaded.model,
        [folded, *artefacts],
        checked.inputs,
        checked.targets,
        chunk=max(batch_sizes),
        progress=progress,
    )
    report = CheckReport(
        data=checked.description,
        samples=len(checked.inputs),
        reference=reference.to_dict(),
        reference_accuracy=reference_accuracy,
        agreements=compared,
    )
    if latency:
        report.latency = measure_latency(
            [reference, folded, *artefacts],
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
