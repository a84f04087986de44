"""``optimize``: build, gate and time every deployment candidate here; write the fastest that passes."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from normresnet_export._io import check_output, commit, staging_directory
from normresnet_export.check.agreement import agreements
from normresnet_export.check.calibration import load_calibration
from normresnet_export.checkpoint import Checkpoint, load_checkpoint
from normresnet_export.errors import CheckFailedError, InputError
from normresnet_export.export.gate import Gate
from normresnet_export.export.onnx import export_onnx
from normresnet_export.export.quantize import CalibrationSet, GateFailedError, check_method, export_int8
from normresnet_export.limits import MAX_BATCH, check_int
from normresnet_export.optimize.report import Candidate, OptimizeReport
from normresnet_export.runtime import Backend, open_model
from normresnet_export.runtime.devices import check_threads
from normresnet_export.runtime.timing import time_interleaved

#: Every candidate: (runtime, precision, model file). The first is the baseline of the speed-ups.
CANDIDATES: tuple[tuple[str, str, str], ...] = (
    ("onnxruntime", "fp32", "float32"),
    ("openvino", "fp32", "float32"),
    ("openvino", "bf16", "float32"),
    ("onnxruntime", "fp32", "int8"),
    ("openvino", "fp32", "int8"),
)


def _name(runtime: str, precision: str, model: str) -> str:
    return f"{runtime} {'int8' if model == 'int8' else precision}"


def _build(
    checkpoint: Checkpoint,
    staging: Path,
    calibration: CalibrationSet,
    held_out: CalibrationSet,
    *,
    gate: Gate,
    method: str,
) -> tuple[dict[str, Path], dict[str, str]]:
    """The model files (``float32``, ``int8``) in ``staging``, and why one could not be built."""
    files = {"float32": staging / "float32.onnx"}
    export_onnx(checkpoint, files["float32"])
    failed: dict[str, str] = {}
    try:
        export_int8(
            checkpoint,
            staging / "int8.onnx",
            calibration=calibration,
            gate_data=held_out,
            gate=gate,
            method=method,
        )
        files["int8"] = staging / "int8.onnx"
    except GateFailedError as exc:
        failed["int8"] = f"fails the gate in onnxruntime: {exc.result.verdict()}"
    return files, failed


def _open(candidate: Candidate, files: dict[str, Path], threads: int | None) -> Backend | None:
    """The candidate's backend, or ``None`` with the candidate marked unavailable and why."""
    try:
        return open_model(
            files[candidate.model],
            device="cpu",
            threads=threads,
            runtime=candidate.runtime,
            precision=candidate.precision,
            label=candidate.name,
        )
    except InputError as exc:  # OpenVINO missing, a CPU without bfloat16 (DeviceError is one)
        candidate.status, candidate.reason = "unavailable", str(exc)
        return None


def optimize(
    checkpoint: Checkpoint | str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    data: str = "digits",
    samples: int = 256,
    batch_size: int = 32,
    threads: int | None = None,
    gate: Gate | None = None,
    calibration_method: str = "minmax",
    repeats: int = 3,
    budget: float = 0.5,
    progress: Callable[[str, int, int], None] | None = None,
) -> OptimizeReport:
    """Build every candidate of :data:`CANDIDATES`, gate each, time the ones that pass, write the fastest.

    The data (``digits``, ``folder:DIR``, … as ``check --data``; ``random:N``) is split in two
    halves: the int8 model is calibrated on one, and every candidate is gated on the other
    against the unfolded float32 checkpoint. ``output`` is a directory that receives
    ``model.onnx`` (the chosen candidate's model file) and ``optimize.json`` (this report); it
    is written whole or not at all.

    Args:
        checkpoint: The trained (unfolded) checkpoint.
        output: The directory to write.
        data: Calibration and gate data.
        samples: Inputs read from ``data`` (half calibrate, half gate).
        batch_size: The batch size timed (the deployment's).
        threads: CPU threads of every runtime (default: theirs).
        gate: What a low-precision candidate must achieve (default: :class:`Gate`'s).
        calibration_method: How the int8 model's activation ranges are chosen.
        repeats: Interleaved timing blocks per candidate.
        budget: Seconds of timed calls per block.
        progress: Called as ``progress(stage, done, total)``.

    Raises:
        InputError: Bad options, data or output directory.
        CheckFailedError: No candidate passes (nothing is written); the float32 export itself
            not agreeing with the model is one too.
    """
    check_int("--batch-size", batch_size, low=1, high=MAX_BATCH)
    check_threads(threads)
    check_method(calibration_method)
    gate = gate or Gate()
    output = Path(output)
    loaded = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    check_output(output, inputs=[loaded.path], directory=True)
    if loaded.folded:
        raise InputError(f"{loaded.path} is folded; optimize starts from the trained (unfolded) checkpoint")
    chosen_data = load_calibration(data, loaded, samples=samples)
    calibration, held_out = chosen_data.split()
    candidates = [Candidate(_name(*row), *row) for row in CANDIDATES]
    # The candidates are built in a private temporary directory, not in the output's staging area:
    # the runtimes refuse to open a file in a staging area (it is an unfinished write).
    with tempfile.TemporaryDirectory(prefix="normexport-optimize-") as work:
        files, failed = _build(
            loaded, Path(work), calibration, held_out, gate=gate, method=calibration_method
        )
        opened: list[tuple[Candidate, Backend]] = []
        for candidate in candidates:
            if candidate.model in failed:
                candidate.status, candidate.reason = "failed", failed[candidate.model]
                continue
            backend = _open(candidate, files, threads)
            if backend is not None:
                candidate.backend = backend.to_dict()
                opened.append((candidate, backend))
        compared, _ = agreements(
            loaded.model,
            [backend for _, backend in opened],
            held_out.inputs,
            held_out.targets,
            chunk=batch_size,
            progress=progress,
            gate=gate,
        )
        passing = []
        for (candidate, backend), agreement in zip(opened, compared, strict=True):
            d = agreement.deviation
            candidate.gate = {
                "top1_agreement": d.top1_agreement,
                "accuracy": agreement.accuracy,
                "max_rel": d.max_rel,
                "verdict": agreement.gate.verdict() if agreement.gate is not None else None,
                "passed": agreement.passed,
            }
            if agreement.passed:
                passing.append((candidate, backend))
            else:
                candidate.status = "failed"
                candidate.reason = (
                    agreement.gate.verdict()
                    if agreement.gate is not None
                    else f"not exact: max rel {d.max_rel} (limit {agreement.limit:.1e}), "
                    f"top-1 agreement {d.top1_agreement:.2%}"
                )
        _time(
            passing, tuple(loaded.input_size), batch_size, repeats=repeats, budget=budget, progress=progress
        )
        report = OptimizeReport(
            checkpoint=str(loaded.path),
            data=held_out.description,
            samples=len(held_out.inputs),
            batch_size=batch_size,
            threads=threads,
            candidates=candidates,
        )
        chosen = report.chosen
        if chosen is None:
            raise CheckFailedError(
                f"no deployment candidate of {loaded.path} passes the gate on {held_out.description}, "
                "so nothing was written: "
                + "; ".join(f"{c.name} ({c.status}): {c.reason}" for c in candidates)
            )
        report.output = str(output)
        report.files = [str(output / "model.onnx"), str(output / "optimize.json")]
        with staging_directory(output.parent, output.name) as staging:
            result = staging / output.name
            result.mkdir()
            shutil.copyfile(files[chosen.model], result / "model.onnx")
            (result / "optimize.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
            commit(result, output)
    return report


def _time(
    passing: list[tuple[Candidate, Backend]],
    input_size: tuple[int, ...],
    batch_size: int,
    *,
    repeats: int,
    budget: float,
    progress: Callable[[str, int, int], None] | None,
) -> None:
    """Time the candidates that passed, side by side; mark the fastest ``chosen``, the others ``slower``."""
    if not passing:
        return
    batch = torch.randn(batch_size, *input_size, generator=torch.Generator().manual_seed(0))
    done = {"blocks": 0}
    total = repeats * len(passing)

    def advance(step: int) -> None:
        done["blocks"] += step
        if progress is not None:
            progress("latency", done["blocks"], total)

    timings = time_interleaved(
        [(c.name, batch_size, backend.bind(batch)) for c, backend in passing],
        repeats=repeats,
        budget=budget,
        progress=advance,
    )
    first = _name(*CANDIDATES[0])
    baseline = next((t for (c, _), t in zip(passing, timings, strict=True) if c.name == first), None)
    for (candidate, _), timing in zip(passing, timings, strict=True):
        candidate.timing = timing.to_dict()
        if baseline is not None:
            candidate.speedup = baseline.percentile(50) / timing.percentile(50)
    best_index = min(range(len(timings)), key=lambda i: timings[i].percentile(50))
    best, best_ms = passing[best_index][0], timings[best_index].percentile(50)
    for (candidate, _), timing in zip(passing, timings, strict=True):
        if candidate is best:
            candidate.status = "chosen"
        else:
            candidate.status = "slower"
            candidate.reason = f"p50 {timing.percentile(50):.2f} ms against {best.name}'s {best_ms:.2f} ms"
