"""The acceptance gate between a trained checkpoint and its deployment artefacts.

``check`` runs the unfolded checkpoint (the reference), the folded model and every exported
artefact on the same data and reports, for each: how far its logits are from the reference
(max absolute and relative error against a stated limit), top-1 agreement, task accuracy when
the data has labels, and latency per batch size (p50/p90/p99, images/s, speed-up over the
unfolded eager model), timed side by side in interleaved blocks. It fails when any artefact
disagrees: top-1 agreement below 100% or an error above the float32 (or float16) limit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from normresnet_export.checkpoint import Checkpoint, load_checkpoint
from normresnet_export.errors import InputError
from normresnet_export.export.verify import reference_outputs
from normresnet_export.fold.api import deviation
from normresnet_export.fold.report import Deviation
from normresnet_export.preprocess import Preprocessing, decode_image, image_files
from normresnet_export.runtime import Backend, open_model
from normresnet_export.runtime.timing import time_interleaved

#: Labels of the unfolded and folded eager backends in reports.
UNFOLDED, FOLDED = "eager (unfolded)", "eager (folded)"
DATA_KINDS = ("random", "digits", "folder:DIR")


@dataclass
class CheckData:
    """Inputs (already preprocessed) and, when known, their true classes."""

    description: str
    inputs: torch.Tensor
    targets: torch.Tensor | None = None


@dataclass
class Agreement:
    """One backend against the unfolded reference."""

    label: str
    backend: dict[str, Any]
    deviation: Deviation
    limit: float
    accuracy: float | None

    @property
    def passed(self) -> bool:
        d = self.deviation
        return d.finite and d.max_rel is not None and d.max_rel <= self.limit and d.top1_agreement == 1.0


@dataclass
class CheckReport:
    """What ``normexport check`` measured."""

    data: str
    samples: int
    reference: dict[str, Any]
    reference_accuracy: float | None
    agreements: list[Agreement]
    latency: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(a.passed for a in self.agreements)

    def failures(self) -> list[str]:
        """One line per backend that disagrees with the reference."""
        lines = []
        for a in self.agreements:
            if not a.passed:
                d = a.deviation
                rel = "non-finite" if not d.finite else f"max rel {d.max_rel:.2e} (limit {a.limit:.1e})"
                lines.append(f"{a.label}: {rel}, top-1 agreement {d.top1_agreement:.2%}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (``normexport check --json``)."""
        return {
            "data": self.data,
            "samples": self.samples,
            "reference": self.reference,
            "reference_accuracy": self.reference_accuracy,
            "agreement": [
                {
                    "label": a.label,
                    **a.backend,
                    "deviation": asdict(a.deviation),
                    "limit": a.limit,
                    "accuracy": a.accuracy,
                    "passed": a.passed,
                }
                for a in self.agreements
            ],
            "latency": self.latency,
            "passed": self.passed,
        }


def parse_batch_sizes(text: str) -> list[int]:
    """``"1,32"`` → ``[1, 32]``; anything else is a one-line error."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise InputError(
            f"--batch-sizes takes positive integers separated by commas, e.g. 1,32; got {text!r}"
        )
    return sizes


# --------------------------------------------------------------------------------------------- data


def _folder(
    directory: Path, preprocessing: Preprocessing, labels: list[str] | None, samples: int
) -> CheckData:
    """A class-per-directory tree; classes are the model's labels, or the sorted directory names."""
    if not directory.is_dir():
        raise InputError(f"--data folder:{directory}: not a directory")
    classes = sorted(d.name for d in directory.iterdir() if d.is_dir())
    if not classes:
        raise InputError(f"--data folder:{directory} has no class directories (one directory per class)")
    if labels:
        unknown = [c for c in classes if c not in labels]
        if unknown:
            raise InputError(
                f"--data folder:{directory}: directories {unknown[:3]} are not among the model's labels "
                f"({', '.join(labels[:5])}, …)"
            )
        index = {name: labels.index(name) for name in classes}
    else:
        index = {name: i for i, name in enumerate(classes)}
    files = [(path, index[c]) for c in classes for path in image_files([directory / c])]
    step = max(1, len(files) // samples)
    chosen = files[::step][:samples]
    inputs = torch.stack([preprocessing.apply(decode_image(path)) for path, _ in chosen])
    targets = torch.tensor([target for _, target in chosen])
    return CheckData(f"folder {directory} ({len(chosen)} of {len(files)} images)", inputs, targets)


def load_data(
    spec: str,
    *,
    preprocessing: Preprocessing | None,
    input_size: Sequence[int],
    labels: list[str] | None,
    samples: int,
    arch: str | None = None,
) -> CheckData:
    """The check data: ``random`` (seeded normal inputs), ``digits`` or ``folder:DIR``.

    Raises:
        InputError: An unknown kind, or real images for a model that carries no preprocessing.
    """
    if samples < 1:
        raise InputError(f"--samples must be at least 1, got {samples}")
    if spec == "random":
        generator = torch.Generator().manual_seed(0)
        return CheckData("random normal inputs", torch.randn(samples, *input_size, generator=generator))
    if spec != "digits" and not spec.startswith("folder:"):
        raise InputError(f"unknown --data {spec!r}; expected one of {', '.join(DATA_KINDS)}")
    if preprocessing is None:
        raise InputError(
            f"--data {spec} needs the model's preprocessing, and the checkpoint carries none; "
            "use --data random, or record it when saving the checkpoint"
        )
    if spec == "digits":
        from trainers.datasets import load_data as training_data
        from trainers.recipes import default_recipe_name, get_recipe

        recipe = get_recipe(default_recipe_name(arch or "resnet20"))  # only its test transform matters: none
        held_out = training_data("digits", recipe=recipe, input_size=32, limit_test=samples).test
        pictures = [Image.fromarray(image.permute(1, 2, 0).numpy()) for image in held_out.images]
        inputs = torch.stack([preprocessing.apply(picture) for picture in pictures])
        return CheckData(f"digits test split ({len(pictures)} images)", inputs, held_out.labels.clone())
    return _folder(Path(spec[len("folder:") :]), preprocessing, labels, samples)


# --------------------------------------------------------------------------------------------- check


def _static_batch(backend: Backend) -> int | None:
    """The batch size an artefact exported with ``--static-batch`` is pinned to, else ``None``."""
    batch = ((backend.metadata.get("input") or {}).get("shape") or [None])[0]
    return batch if isinstance(batch, int) else None


def _batched(backend: Backend, inputs: torch.Tensor, batch: int) -> torch.Tensor:
    """Logits for ``inputs`` in calls of ``batch`` (a pinned batch size wins; the last call is padded)."""
    pinned = _static_batch(backend)
    size = pinned or batch
    outputs = []
    for start in range(0, len(inputs), size):
        piece = inputs[start : start + size]
        missing = size - len(piece) if pinned else 0
        if missing:
            piece = torch.cat([piece, piece.new_zeros(missing, *piece.shape[1:])])
        outputs.append(backend.run(piece)[: size - missing])
    return torch.cat(outputs)


def _accuracy(logits: torch.Tensor, targets: torch.Tensor | None) -> float | None:
    return None if targets is None else (logits.argmax(1) == targets).double().mean().item()


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
) -> CheckReport:
    """Compare a checkpoint's deployment artefacts with it: agreement, accuracy and latency.

    Args:
        checkpoint: The trained (unfolded) checkpoint; the reference.
        exported: ONNX / TorchScript / pt2 files or Triton model directories made from it.
        data: ``random``, ``digits`` or ``folder:DIR`` (see :func:`load_data`).
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

    Raises:
        InputError: Bad data, batch sizes, or an artefact that does not match the checkpoint.
        DeviceError: The device cannot be used.
    """
    if not batch_sizes or min(batch_sizes) < 1:
        raise InputError(f"--batch-sizes must be positive integers, got {list(batch_sizes)}")
    loaded = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    if loaded.folded:
        raise InputError(
            f"{loaded.path} is a folded checkpoint; check compares against the unfolded (trained) checkpoint"
        )
    options = {"device": device, "allow_cpu_fallback": allow_cpu_fallback, "threads": threads}
    backends = [
        open_model(loaded, label=UNFOLDED, **options),
        open_model(loaded, fold=True, label=FOLDED, **options),
        *(open_model(path, **options) for path in exported),
    ]
    size = tuple(loaded.input_size)
    for backend in backends[2:]:
        shape = (backend.metadata.get("input") or {}).get("shape")
        if shape and tuple(shape[1:]) != size:
            raise InputError(
                f"{backend.label} takes {'×'.join(map(str, shape[1:]))} inputs but the checkpoint "
                f"{'×'.join(map(str, size))}; check compares at the checkpoint's size"
            )
        if backend.metadata.get("arch") not in (None, loaded.arch):
            raise InputError(
                f"{backend.label} is a {backend.metadata['arch']}, the checkpoint a {loaded.arch}"
            )
    checked = load_data(
        data,
        preprocessing=loaded.preprocessing,
        input_size=size,
        labels=loaded.labels,
        samples=samples,
        arch=loaded.arch,
    )
    chunks = list(torch.split(checked.inputs, max(batch_sizes)))
    expected, limit32 = reference_outputs(loaded.model, chunks, float16=False)
    limit16: float | None = None
    agreements = []
    for step, backend in enumerate(backends[1:], start=1):
        if progress is not None:
            progress("agreement", step, len(backends) - 1)
        limit = limit32
        if backend.precision == "float16":
            limit16 = limit16 or reference_outputs(loaded.model, chunks, float16=True)[1]
            limit = limit16
        actual = [_batched(backend, c, len(c)) for c in chunks]
        agreements.append(
            Agreement(
                label=backend.label,
                backend=backend.to_dict(),
                deviation=deviation(expected, actual),
                limit=limit,
                accuracy=_accuracy(torch.cat(actual), checked.targets),
            )
        )
    report = CheckReport(
        data=checked.description,
        samples=len(checked.inputs),
        reference=backends[0].to_dict(),
        reference_accuracy=_accuracy(torch.cat(expected), checked.targets),
        agreements=agreements,
    )
    if latency:
        report.latency = measure_latency(
            backends,
            size,
            batch_sizes,
            exclude_copies=exclude_copies,
            repeats=repeats,
            budget=budget,
            progress=progress,
        )
    return report


def measure_latency(
    backends: Sequence[Backend],
    input_size: Sequence[int],
    batch_sizes: Sequence[int],
    *,
    exclude_copies: bool = False,
    repeats: int = 3,
    budget: float = 0.5,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Rows of p50/p90/p99 ms, images/s and speed-up over the first backend, per backend and batch size."""
    pairs = []
    for batch in batch_sizes:
        x = torch.randn(batch, *input_size, generator=torch.Generator().manual_seed(batch))
        for backend in backends:
            pinned = _static_batch(backend)
            if pinned is not None and pinned != batch:
                continue  # exported with --static-batch: it takes no other size
            pairs.append((backend.label, batch, backend.bind(x, include_copies=not exclude_copies)))
    done = [0]

    def advance(_: int) -> None:
        done[0] += 1
        if progress is not None:
            progress("latency", done[0], len(pairs) * repeats)

    timings = time_interleaved(pairs, repeats=repeats, budget=budget, progress=advance)
    baseline = {t.batch: t.percentile(50) for t in timings if t.label == backends[0].label}
    devices = {b.label: b for b in backends}
    rows = []
    for timing in timings:
        backend = devices[timing.label]
        rows.append(
            {
                **timing.to_dict(),
                "speedup": baseline[timing.batch] / timing.percentile(50),
                "provider": backend.provider,
                "precision": backend.precision,
            }
        )
    return rows


def plot_throughput(report: CheckReport, path: str | os.PathLike[str]) -> Path:
    """A PNG bar chart of images/s per backend, grouped by batch size (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError(
            "--plot needs matplotlib: pip install 'normresnet-export[plot]' (or pip install matplotlib)"
        ) from None
    from normresnet_export._io import atomic_write

    labels = list(dict.fromkeys(row["label"] for row in report.latency))
    batches = list(dict.fromkeys(row["batch"] for row in report.latency))
    figure, axis = plt.subplots(figsize=(max(6, 1.6 * len(labels) * len(batches)), 4))
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        values = [
            next((r["images_per_s"] for r in report.latency if r["label"] == label and r["batch"] == b), 0.0)
            for b in batches
        ]
        axis.bar([j + i * width for j in range(len(batches))], values, width, label=label)
    axis.set_xticks([j + width * (len(labels) - 1) / 2 for j in range(len(batches))])
    axis.set_xticklabels([f"batch {b}" for b in batches])
    axis.set_ylabel("images / s (p50)")
    axis.set_title(f"throughput ({report.reference['provider']})")
    axis.legend(fontsize="small")
    figure.tight_layout()
    target = Path(path)
    with atomic_write(target) as handle:
        figure.savefig(handle, format="png", dpi=120)
    plt.close(figure)
    return target
