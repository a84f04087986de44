"""What ``normexport analyze`` measures: a model (by architecture name or checkpoint) and its inputs.

MODEL is a registered architecture name, built at initialisation with the run's seed, or a
normexport checkpoint (``--at-init`` rebuilds its architecture freshly initialised instead of
loading the weights). No pretrained weights are published under a name yet, so any other name
is refused with the registry's close matches.

The inputs are prepared as the model expects them: with the checkpoint's recorded
preprocessing, or, for an architecture name, at its design size with plain normalisation
(mean 0.5, std 0.5 per channel). ``digits`` and ``folder:DIR`` are read as ``normexport
check`` reads them; ``random`` is seeded standard-normal inputs with seeded random labels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from normresnet_export import limits
from normresnet_export.check.data import load_data
from normresnet_export.checkpoint import load_checkpoint
from normresnet_export.data.sets import parse_data_set
from normresnet_export.errors import InputError, UnknownModelError
from normresnet_export.limits import MAX_BATCH, MAX_SEED, check_int
from normresnet_export.models import create_model, model_info
from normresnet_export.preprocess import Preprocessing

#: Plain normalisation for an architecture without recorded preprocessing: [0, 1] → [-1, 1].
_PLAIN_MEAN, _PLAIN_STD = 0.5, 0.5
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".safetensors")


@dataclass
class AnalysedModel:
    """A model ready to be measured.

    Attributes:
        label: Its name in reports and plots (the architecture name, or the file's stem).
        source: ``architecture`` or the checkpoint's path.
        model: The network.
        preprocessing: How images become its inputs.
        labels: Class names of a checkpoint, or ``None``.
    """

    label: str
    source: str
    model: nn.Module
    preprocessing: Preprocessing
    labels: list[str] | None = None

    @property
    def input_size(self) -> tuple[int, int, int]:
        """Model input ``(C, H, W)``."""
        return self.preprocessing.input_size


def plain_preprocessing(input_size: tuple[int, int, int]) -> Preprocessing:
    """The design size with plain normalisation, for a model that records no preprocessing."""
    channels, height, _ = input_size
    return Preprocessing(
        input_size=input_size,
        mean=(_PLAIN_MEAN,) * channels,
        std=(_PLAIN_STD,) * channels,
        resize=height,
        crop=height,
    )


def _looks_like_a_file(spec: str) -> bool:
    return spec.lower().endswith(_CHECKPOINT_SUFFIXES) or "/" in spec or "\\" in spec


def load_analysed_model(spec: str, *, seed: int = 0, at_init: bool = False) -> AnalysedModel:
    """Resolve MODEL: a checkpoint file, else a registered architecture built at initialisation.

    Args:
        spec: A checkpoint path or a registered architecture name.
        seed: Seed of the initialisation (``torch.manual_seed`` just before building).
        at_init: For a checkpoint: rebuild its architecture freshly initialised.

    Raises:
        UnknownModelError: Neither a file nor a registered name (close names are suggested).
        CheckpointError: A file that is not a readable checkpoint.
    """
    path = Path(spec)
    if path.is_file():
        checkpoint = load_checkpoint(path)
        preprocessing = checkpoint.preprocessing or plain_preprocessing(checkpoint.input_size)  # type: ignore[arg-type]
        model = checkpoint.model
        if at_init:
            torch.manual_seed(seed)
            model = create_model(checkpoint.arch, **checkpoint.model_kwargs)
        return AnalysedModel(path.stem, str(path), model, preprocessing, checkpoint.labels)
    if _looks_like_a_file(spec):
        raise InputError(f"no such checkpoint file: {spec}; give a checkpoint path or an architecture name")
    try:
        info = model_info(spec)
    except UnknownModelError as exc:
        raise UnknownModelError(
            f"{exc}; MODEL is an architecture name or a checkpoint file (no pretrained names exist yet)"
        ) from None
    torch.manual_seed(seed)
    return AnalysedModel(spec, "architecture", create_model(spec), plain_preprocessing(info.input_size))


@dataclass
class Batch:
    """The inputs of one measurement, with their classes."""

    description: str
    inputs: torch.Tensor
    targets: torch.Tensor


def check_batch_size(batch_size: int) -> int:
    """``batch_size`` if it is from 2 (BatchNorm in training mode needs two samples) to ``MAX_BATCH``.

    Raises:
        InputError: The range.
    """
    return check_int(
        "--batch-size",
        batch_size,
        low=2,
        high=MAX_BATCH,
        hint="BatchNorm in training mode needs at least 2 samples",
    )


def check_seed(seed: int) -> int:
    """``seed`` if it is one NumPy, Python and torch all take (0 to ``MAX_SEED``).

    Raises:
        InputError: The range.
    """
    return check_int("--seed", seed, low=0, high=MAX_SEED)


def check_input_size(input_size: Sequence[int] | None) -> tuple[int, int] | None:
    """``input_size`` as ``(H, W)`` if it is two sides from 1 to ``MAX_INPUT_SIDE`` (``None``: the model's).

    The spectrum is a singular value decomposition per frequency of the H×W grid, so the side
    is bounded before the model is even built.

    Raises:
        InputError: Not two integers in the range.
    """
    if input_size is None:
        return None
    height, width = limits.check_input_size(input_size)
    return height, width


def load_batch(
    spec: str,
    model: AnalysedModel,
    *,
    batch_size: int,
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
) -> Batch:
    """One batch for ``model``: ``random`` (seeded) or a data set as ``check`` reads it.

    ``data_dir`` and ``download`` are ``--data-dir`` and ``--download`` (see
    :func:`normresnet_export.data.sets.parse_data_set`).

    Raises:
        InputError: An unknown kind, data that is missing or malformed, or a batch size out of
            range (see :func:`check_batch_size`).
    """
    check_batch_size(batch_size)
    if parse_data_set(spec, data_dir=data_dir, download=download).kind == "random":
        generator = torch.Generator().manual_seed(seed)
        inputs = torch.randn(batch_size, *model.input_size, generator=generator)
        targets = torch.randint(0, 10, (batch_size,), generator=generator)
        return Batch(f"random normal inputs (seed {seed})", inputs, targets)
    data = load_data(
        spec,
        preprocessing=model.preprocessing,
        input_size=model.input_size,
        labels=model.labels,
        samples=batch_size,
        data_dir=data_dir,
        download=download,
    )
    if data.targets is None:  # every labelled kind has targets; kept for a source that has none
        data.targets = torch.zeros(len(data.inputs), dtype=torch.int64)
    return Batch(data.description, data.inputs, data.targets)
