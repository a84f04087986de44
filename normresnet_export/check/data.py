"""The inputs ``normexport check`` (and ``analyze``) compares on, in the one data-set vocabulary.

``random`` is seeded normal inputs; ``digits`` the held-out digits; ``cifar10`` / ``cifar100``
the test split of a local copy (``--data-dir``, default ``./data``; ``--download`` fetches it);
``imagenet`` the ``val/`` tree of an ImageNet-layout folder; ``folder:DIR`` any
class-per-directory tree (see :mod:`normresnet_export.data.sets`). Real images are prepared with
the checkpoint's own preprocessing, exactly as ``predict`` would prepare them, and their classes
are matched to the model's labels by name, so a labelled source also measures task accuracy.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from normresnet_export.data import digits
from normresnet_export.data.cifar import read_cifar
from normresnet_export.data.sets import CIFAR_KINDS, DataSet, imagenet_split, parse_data_set
from normresnet_export.errors import InputError
from normresnet_export.limits import check_int
from normresnet_export.preprocess import Preprocessing, decode_image, image_files
from normresnet_export.vocabulary import DATA_KINDS  # noqa: F401 (re-exported by check)

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


def _class_index(classes: Sequence[str], labels: list[str] | None, source: str) -> dict[str, int]:
    """The model's output index of every class of the data: by name when the model has labels.

    Raises:
        InputError: A class that is not among the model's labels (the data is not what it learnt).
    """
    if not labels:
        return {name: i for i, name in enumerate(classes)}
    unknown = [c for c in classes if c not in labels]
    if unknown:
        raise InputError(
            f"--data {source}: classes {unknown[:3]} are not among the model's labels "
            f"({', '.join(labels[:5])}, …); check a model on the data set it was trained for"
        )
    return {name: labels.index(name) for name in classes}


def _folder(
    directory: Path, preprocessing: Preprocessing, labels: list[str] | None, samples: int, source: str
) -> CheckData:
    """A class-per-directory tree; classes are the model's labels, or the sorted directory names."""
    if not directory.is_dir():
        raise InputError(f"--data {source}: {directory} is not a directory")
    classes = sorted(d.name for d in directory.iterdir() if d.is_dir())
    if not classes:
        raise InputError(f"--data {source}: {directory} has no class directories (one directory per class)")
    index = _class_index(classes, labels, source)
    files = [(path, index[c]) for c in classes for path in image_files([directory / c])]
    step = max(1, len(files) // samples)
    chosen = files[::step][:samples]
    inputs = torch.stack([preprocessing.apply(decode_image(path)) for path, _ in chosen])
    targets = torch.tensor([target for _, target in chosen])
    return CheckData(f"folder {directory} ({len(chosen)} of {len(files)} images)", inputs, targets)


def _in_memory(
    images: torch.Tensor,
    targets: torch.Tensor,
    classes: Sequence[str],
    *,
    preprocessing: Preprocessing,
    labels: list[str] | None,
    source: str,
    description: str,
) -> CheckData:
    """``uint8 [N, 3, H, W]`` images prepared with ``preprocessing``, their classes mapped to the model's."""
    if labels and len(labels) == len(classes) and not set(classes) <= set(labels):
        # Other names, as many classes (a model trained on the same data under other names):
        # class i is output i, and the report says so.
        remap = torch.arange(len(classes))
        description += f"; classes matched by position, the model names them {', '.join(labels[:3])}, …"
    else:
        index = _class_index(classes, labels, source)
        remap = torch.tensor([index[name] for name in classes])
    pictures = [Image.fromarray(image.permute(1, 2, 0).numpy()) for image in images]
    inputs = torch.stack([preprocessing.apply(picture) for picture in pictures])
    return CheckData(description, inputs, remap[targets])


def _digits(preprocessing: Preprocessing, labels: list[str] | None, samples: int) -> CheckData:
    """The held-out digits (the split digits training evaluates on), prepared with ``preprocessing``."""
    images, targets = digits.test_split(limit=samples)
    return _in_memory(
        images,
        targets,
        digits.LABELS,
        preprocessing=preprocessing,
        labels=labels,
        source="digits",
        description=f"digits test split ({len(images)} images)",
    )


def _cifar(
    chosen: DataSet, preprocessing: Preprocessing, labels: list[str] | None, samples: int
) -> CheckData:
    """The first ``samples`` images of a CIFAR test split, prepared with ``preprocessing``."""
    split = read_cifar(chosen.kind, chosen.root, split="test", download=chosen.download)  # type: ignore[arg-type]
    count = min(samples, len(split.labels))
    return _in_memory(
        split.images[:count],
        split.labels[:count],
        split.classes,
        preprocessing=preprocessing,
        labels=labels,
        source=chosen.kind,
        description=f"{chosen.kind} test split ({count} of {len(split.labels)} images, {chosen.root})",
    )


def load_data(
    spec: str,
    *,
    preprocessing: Preprocessing | None,
    input_size: Sequence[int],
    labels: list[str] | None,
    samples: int,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    option: str = "--data",
) -> CheckData:
    """The check data named by ``spec``, one of :data:`DATA_KINDS` (see the module docstring).

    Args:
        spec: ``random``, ``digits``, ``cifar10``, ``cifar100``, ``imagenet``, ``folder:DIR``
            (or ``folder`` with ``data_dir``).
        preprocessing: The model's; real images need it.
        input_size: ``(C, H, W)`` of random inputs, and the bound on ``samples``.
        labels: The model's class names; the data's classes are matched to them by name.
        samples: How many inputs (the first of a split; evenly spread over a folder).
        data_dir: ``--data-dir``: where CIFAR is (default ``./data``), the ImageNet-layout folder.
        download: ``--download``: fetch CIFAR when the local copy is missing.
        option: The option ``spec`` came from, for the messages (``--calibration``).

    Raises:
        InputError: An unknown kind, ``samples`` out of range (see :func:`check_samples`), data
            that is missing (saying where to put it), classes the model does not know, or real
            images for a model that carries no preprocessing.
    """
    chosen = parse_data_set(spec, data_dir=data_dir, download=download, option=option)
    check_samples(samples, input_size)
    if chosen.kind == "random":
        generator = torch.Generator().manual_seed(0)
        return CheckData("random normal inputs", torch.randn(samples, *input_size, generator=generator))
    if preprocessing is None:
        raise InputError(
            f"{option} {spec} needs the model's preprocessing, and the checkpoint carries none; "
            "use --data random, or record it when saving the checkpoint"
        )
    if chosen.kind == "digits":
        return _digits(preprocessing, labels, samples)
    if chosen.kind in CIFAR_KINDS:
        return _cifar(chosen, preprocessing, labels, samples)
    root: Path = chosen.root  # type: ignore[assignment]
    if chosen.kind == "imagenet":
        return _folder(imagenet_split(root, "val"), preprocessing, labels, samples, "imagenet")
    return _folder(root, preprocessing, labels, samples, chosen.spec)
