"""Classify images with any model file: top-k labels and probabilities per image.

The model's own metadata says how to prepare an image (a guessed normalisation gives confident,
wrong answers without any error); a model without it is refused unless a preprocessing is
given. A file that cannot be decoded gets an error entry that names it and the reason, and the
others are still predicted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

import torch

from normresnet_export.errors import InputError
from normresnet_export.limits import MAX_BATCH, check_int
from normresnet_export.preprocess import Preprocessing, image_files, load_images
from normresnet_export.runtime.base import Backend
from normresnet_export.runtime.devices import check_threads
from normresnet_export.runtime.inputs import dims, fixed_batch, input_mismatch

#: The name standard input gets in reports.
STDIN_NAME = "<stdin>"


@dataclass
class Prediction:
    """One image's result: the top classes, or why it could not be read.

    Attributes:
        name: The file (or ``<stdin>``).
        top: ``[{"label", "index", "probability"}]``, most probable first; empty on error.
        error: Why the image could not be decoded, or ``None``.
    """

    name: str
    top: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


@dataclass
class PredictReport:
    """Every image's prediction, and what produced them."""

    backend: dict[str, Any]
    preprocessing: dict[str, Any]
    predictions: list[Prediction]

    @property
    def failed(self) -> int:
        """How many inputs could not be decoded."""
        return sum(p.error is not None for p in self.predictions)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (``normexport predict --json``)."""
        return {
            "backend": self.backend,
            "preprocessing": self.preprocessing,
            "predictions": [asdict(p) for p in self.predictions],
            "failed": self.failed,
        }


def collect_inputs(
    inputs: Sequence[str], stdin: BinaryIO | None = None
) -> list[tuple[str, bytes | str | os.PathLike[str]]]:
    """``(name, path or bytes)`` per image: files, directories (recursive) and ``-`` for standard input."""
    if not inputs:
        raise InputError("give at least one image, directory, or - for standard input")
    items: list[tuple[str, bytes | str | os.PathLike[str]]] = []
    for item in inputs:
        if item == "-":
            if stdin is None:
                raise InputError("- reads an image from standard input, but none is available")
            items.append((STDIN_NAME, stdin.read()))
        else:
            items.extend((str(path), path) for path in image_files([item]))
    return items


def check_options(*, top_k: int, batch_size: int, workers: int | None) -> None:
    """Refuse a ``--top-k``, ``--batch-size`` or ``--workers`` outside its range, before a model is opened.

    ``--workers`` counts decoding threads, so 0 is refused rather than read as "the default"
    (``None`` is the default: up to 8).

    Raises:
        InputError: The option and its range.
    """
    check_int("--top-k", top_k, low=1)
    check_int("--batch-size", batch_size, low=1, high=MAX_BATCH)
    check_threads(workers, option="--workers")


def resolve_preprocessing(backend: Backend, override: Preprocessing | None) -> Preprocessing:
    """The preprocessing to use: the override, else the model's own; never a guess.

    Raises:
        InputError: No preprocessing known, or one whose images the model does not take (an
            ONNX file exported at 48×48 given ``cifar10``'s 32×32), naming both.
    """
    chosen = override if override is not None else backend.preprocessing
    if chosen is None:
        raise InputError(
            f"{backend.label} carries no preprocessing, and normexport does not guess it; pass "
            "--preprocessing with a preset (cifar10, cifar100, cifar-wrn, imagenet) or a JSON file"
        )
    mismatch = input_mismatch(backend, chosen.input_size)
    if mismatch is not None:
        source = "the --preprocessing given" if override is not None else "its own preprocessing"
        if mismatch.size is None:
            fix = "normexport feeds one float32 [N, C, H, W] image batch; export the model with normexport"
        elif override is None:
            fix = "its metadata contradicts its graph; export it again"
        else:
            fix = f'pass a --preprocessing JSON file whose "input_size" is {list(mismatch.size)}'
            if backend.preprocessing is not None:
                fix += ", or leave --preprocessing out to use the model's own"
        raise InputError(
            f"{backend.label} takes {mismatch.takes}, but {source} makes float32 images of "
            f"{dims(chosen.input_size)}; {fix}"
        )
    return chosen


def predict(
    backend: Backend,
    items: Sequence[tuple[str, bytes | str | os.PathLike[str]]],
    *,
    top_k: int = 5,
    batch_size: int = 32,
    preprocessing: Preprocessing | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> PredictReport:
    """Top-``top_k`` classes of every item.

    Args:
        backend: The model (see :func:`~normresnet_export.runtime.open_model`).
        items: ``(name, path or bytes)`` pairs, e.g. from :func:`collect_inputs`.
        top_k: Classes per image (capped at the number of classes).
        batch_size: Images per model call.
        preprocessing: Override the model's recorded preprocessing.
        workers: Decoding threads (1 to 4 per core; ``None``: up to 8).
        progress: Called with the number of images finished after each batch.

    Raises:
        InputError: Bad ``top_k``/``batch_size``/``workers`` (see :func:`check_options`), no
            preprocessing known, or one whose images the model does not take.
        OutputError: The model returns non-finite scores (``runtime.base.OutputError``).
    """
    check_options(top_k=top_k, batch_size=batch_size, workers=workers)
    chosen = resolve_preprocessing(backend, preprocessing)
    pinned = fixed_batch(backend)
    if pinned is not None and pinned != batch_size:
        raise InputError(f"{backend.label} takes batches of exactly {pinned}; pass --batch-size {pinned}")
    labels = backend.labels
    results: list[Prediction] = []
    pending: list[tuple[int, torch.Tensor]] = []

    def flush() -> None:
        if not pending:
            return
        logits = backend.run_in_batches(torch.stack([tensor for _, tensor in pending]), len(pending))
        backend.check_outputs(logits, [results[slot].name for slot, _ in pending])  # no nan tables
        probabilities = torch.softmax(logits.double(), dim=1)
        values, indices = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
        for (slot, _), row_values, row_indices in zip(pending, values, indices, strict=True):
            results[slot].top = [
                {
                    "label": labels[i] if labels and i < len(labels) else str(i),
                    "index": i,
                    "probability": float(v),
                }
                for v, i in zip(row_values.tolist(), row_indices.tolist(), strict=True)
            ]
        if progress is not None:
            progress(len(pending))
        pending.clear()

    for name, loaded in load_images(items, chosen, workers=workers):
        results.append(Prediction(name=name))
        if isinstance(loaded, Exception):
            results[-1].error = str(loaded)
            if progress is not None:
                progress(1)
            continue
        pending.append((len(results) - 1, loaded))
        if len(pending) == batch_size:
            flush()
    flush()
    return PredictReport(backend=backend.to_dict(), preprocessing=chosen.to_dict(), predictions=results)
