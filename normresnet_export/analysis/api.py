"""``analyze``: resolve each MODEL and its inputs, measure, and gather the reports.

The two entry points of ``normexport analyze``: :func:`analyze_gradnorm` (several models side by
side on the same images) and :func:`analyze_spectrum` (one model's convolutions).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from normresnet_export._io import check_output
from normresnet_export.analysis.measure import (
    DEFAULT_TOLERANCE,
    SCHEMA_VERSION,
    GradnormReport,
    SpectrumReport,
    measure_gradnorm,
    measure_spectrum,
)
from normresnet_export.analysis.plot import plot_gradnorm
from normresnet_export.analysis.sources import (
    check_batch_size,
    check_input_size,
    check_seed,
    load_analysed_model,
    load_batch,
)
from normresnet_export.data.sets import parse_data_set
from normresnet_export.errors import InputError
from normresnet_export.limits import check_float


def analyze_gradnorm(
    models: Sequence[str],
    *,
    data: str = "digits",
    batch_size: int = 8,
    at_init: bool = False,
    seed: int = 0,
    plot: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
) -> list[GradnormReport]:
    """The gradient-norm ratios of every residual block of each model, on one batch each.

    Every model sees the same images (the same digits, the same folder files, or the same
    seeded random inputs), each prepared with its own preprocessing.

    Args:
        models: Architecture names (built at initialisation with ``seed``) or checkpoint paths.
        data: ``digits``, ``cifar10``, ``cifar100``, ``imagenet``, ``folder:DIR`` or ``random``.
        batch_size: Samples in the batch (2 to ``limits.MAX_BATCH``).
        at_init: Measure checkpoints' architectures freshly initialised instead of their weights.
        seed: Seed of the initialisation and of the random inputs.
        plot: Write the chart (:func:`~normresnet_export.analysis.plot.plot_gradnorm`) here; the
            path is checked before anything is measured, so a bad one fails at once.
        data_dir: ``--data-dir``: where CIFAR is (default ``./data``), the ImageNet-layout folder.
        download: ``--download``: fetch CIFAR when the local copy is missing.

    Raises:
        InputError: No model, a batch size or seed out of range (checked before any model is
            built), an unknown model or data kind, a model without residual blocks, or
            a plot path refused by :func:`normresnet_export._io.check_output` (a missing
            directory, a link, a non-file, one of the checkpoints).
    """
    if not models:
        raise InputError("give at least one MODEL (an architecture name or a checkpoint)")
    check_batch_size(batch_size)  # every number, before a model is built
    check_seed(seed)
    parse_data_set(data, data_dir=data_dir, download=download)  # a bad spelling fails before any model
    if plot is not None:
        check_output(plot, inputs=[spec for spec in models if Path(spec).is_file()])
    reports = []
    for spec in models:
        analysed = load_analysed_model(spec, seed=seed, at_init=at_init)
        batch = load_batch(
            data, analysed, batch_size=batch_size, seed=seed, data_dir=data_dir, download=download
        )
        reports.append(
            measure_gradnorm(
                analysed.model,
                batch.inputs,
                batch.targets,
                label=analysed.label,
                source=analysed.source,
                data=batch.description,
                seed=seed,
            )
        )
    if plot is not None:
        plot_gradnorm(reports, plot)
    return reports


def gradnorm_document(reports: Sequence[GradnormReport]) -> dict[str, Any]:
    """The ``--json`` document of :func:`analyze_gradnorm` (``GRADNORM_SCHEMA``)."""
    return {"schema": SCHEMA_VERSION, "kind": "gradnorm", "models": [r.to_dict() for r in reports]}


def analyze_spectrum(
    model: str,
    *,
    layer: str | None = None,
    transitions: bool = False,
    input_size: Sequence[int] | None = None,
    tolerance: float | None = None,
    seed: int = 0,
) -> SpectrumReport:
    """The operator spectra of one convolution (``layer``) or of every transition convolution.

    Args:
        model: An architecture name (built at initialisation) or a checkpoint path.
        layer: A convolution's qualified name.
        transitions: Every convolution of every transition unit instead.
        input_size: ``(H, W)`` of the input; default the model's design (or recorded) size.
        tolerance: Largest ``max |σ − target| / target`` still called norm-preserving
            (default ``DEFAULT_TOLERANCE``, 1e-3).
        seed: Seed of the initialisation of an architecture name.

    Raises:
        InputError: An unknown model or layer, neither/both of ``layer`` and ``transitions``, or a
            number out of its range (sides 1 to ``MAX_INPUT_SIDE``, tolerance at least 0, seed).
    """
    wanted = check_input_size(input_size)  # every number, before the model is built
    if tolerance is not None:
        check_float("--tolerance", tolerance, low=0.0, hint=f"the default is {DEFAULT_TOLERANCE:g}")
    check_seed(seed)
    analysed = load_analysed_model(model, seed=seed)
    channels, *design = analysed.input_size
    size = wanted if wanted is not None else tuple(design)
    return measure_spectrum(
        analysed.model,
        (channels, *size),
        layer=layer,
        transitions=transitions,
        tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance,
        label=analysed.label,
    )
