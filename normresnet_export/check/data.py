"""The inputs ``normexport check`` compares on: seeded random tensors, the digits test split, or a folder.

Real images are prepared with the checkpoint's own preprocessing, exactly as ``predict`` would
prepare them, so a labelled source also measures task accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from normresnet_export.data import digits
from normresnet_export.errors import InputError
from normresnet_export.limits import check_int
from normresnet_export.preprocess import Preprocessing, decode_image, image_files
from normresnet_export.vocabulary import DATA_KINDS

#: The most bytes of float32 inputs ``--samples`` may ask for (2 GiB): 174,762 inputs of 3×32×32,
#: 3,566 of 3×224×224. Random inputs are allocated whole; real images are decoded whole.
MAX_INPUT_BYTES = 2**31


def max_samples(input_size: Sequence[int]) -> int:
    """The most inputs of ``input_size`` (C, H, W) that fit :data:`MAX_INPUT_BYTES` of float32."""
    return max(1, MAX_INPUT_BYTES // (4 * math.prod(input_size)))


def check_samples(samples: int, input_size: Sequence[int]) -> int:
    """``samples`` if it is from 1 to :func:`max_samples` for inputs of ``input_size``.

    Raises:
        InputError: The range, and the input size it follows from.
    """
    return check_int(
        "--samples",
        samples,
        low=1,
        high=max_samples(input_size),
        hint=f"the inputs ({'×'.join(map(str, input_size))} each) are held in memory, 2 GiB at most",
    )


@dataclass
class CheckData:
    """Inputs (already preprocessed) and, when known, their true classes."""

    description: str
    inputs: torch.Tensor
    targets: torch.Tensor | None = None


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


def _digits(preprocessing: Preprocessing, samples: int) -> CheckData:
    """The held-out digits (the split digits training evaluates on), prepared with ``preprocessing``."""
    images, targets = digits.test_split(limit=samples)
    pictures = [Image.fromarray(image.permute(1, 2, 0).numpy()) for image in images]
    inputs = torch.stack([preprocessing.apply(picture) for picture in pictures])
    return CheckData(f"digits test split ({len(pictures)} images)", inputs, targets)


def load_data(
    spec: str,
    *,
    preprocessing: Preprocessing | None,
    input_size: Sequence[int],
    labels: list[str] | None,
    samples: int,
) -> CheckData:
    """The check data: ``random`` (seeded normal inputs), ``digits`` or ``folder:DIR``.

    Raises:
        InputError: An unknown kind, ``samples`` out of range (see :func:`check_samples`), or real
            images for a model that carries no preprocessing.
    """
    check_samples(samples, input_size)
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
        return _digits(preprocessing, samples)
    return _folder(Path(spec[len("folder:") :]), preprocessing, labels, samples)
