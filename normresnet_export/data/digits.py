"""scikit-learn's bundled handwritten digits as 32×32 RGB ``uint8`` images, with one fixed split.

The 1,797 real 8×8 images (pixel values 0–16) are upsampled bilinearly to 32×32 and repeated
to three channels, so every 32×32 model takes them as they are. The split is fixed — a seeded
permutation whose first 360 images are held out — and does not move with a run's ``--seed``:
the images a digits run evaluates on, ``normexport check --data digits`` evaluates on too,
and a checkpoint's reported accuracy can be reproduced from it.

The file is read directly (``sklearn.datasets.load_digits`` reads the same
``digits.csv.gz``), because importing scikit-learn alone takes seconds.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from normresnet_export.errors import InputError

#: Class names, one per label.
LABELS: tuple[str, ...] = tuple(str(digit) for digit in range(10))
#: Held-out images: the first ``TEST_SIZE`` of the fixed permutation.
TEST_SIZE = 360
_SPLIT_SEED = 0  # fixed: the test split must not move with a run's seed
_SIDE = 32


def _csv_path() -> Path:
    spec = importlib.util.find_spec("sklearn")
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0], "datasets", "data", "digits.csv.gz") if locations else None
    if path is None or not path.is_file():
        raise InputError(
            "the digits data set ships with scikit-learn, which is not installed; "
            "install it with `pip install scikit-learn`"
        )
    return path


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits: ``uint8 [N, 3, 32, 32]`` images and ``int64`` labels, in the file's order.

    Raises:
        InputError: scikit-learn (which ships the file) is not installed.
    """
    table = np.loadtxt(_csv_path(), delimiter=",")
    images = torch.tensor(table[:, :-1], dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    images = F.interpolate(images, size=(_SIDE, _SIDE), mode="bilinear", align_corners=False)
    images = (images * 255).round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    return images, torch.tensor(table[:, -1], dtype=torch.int64)


def _split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images, labels, test indices, training indices) of the fixed split."""
    images, labels = load_digits()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(_SPLIT_SEED))
    return images, labels, order[:TEST_SIZE], order[TEST_SIZE:]


def _first(indices: torch.Tensor, limit: int | None) -> torch.Tensor:
    if limit is None:
        return indices
    if limit < 1:
        raise InputError(f"a limit on the number of digits must be at least 1, got {limit}")
    return indices[:limit]


def train_split(limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1,437 training digits (the first ``limit``): ``uint8 [N, 3, 32, 32]`` images and labels.

    Raises:
        InputError: ``limit`` below 1, or scikit-learn is not installed.
    """
    images, labels, _, train_idx = _split()
    train_idx = _first(train_idx, limit)
    return images[train_idx], labels[train_idx]


def test_split(limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out digits: uint8 [N, 3, 32, 32] images and int64 labels.

    These are the images every digits run evaluates on (and ``normexport check --data
    digits``): a checkpoint's reported accuracy is measured on them.

    Args:
        limit: Only the first ``limit`` held-out images (all 360 when ``None``).

    Raises:
        InputError: ``limit`` below 1, or scikit-learn is not installed.
    """
    images, labels, test_idx, _ = _split()
    test_idx = _first(test_idx, limit)
    return images[test_idx], labels[test_idx]


def write_digit_images(directory: str | os.PathLike[str], count: int) -> list[Path]:
    """Write the first ``count`` held-out digits as 32×32 PNG files ``<index>_label<digit>.png``.

    ``<index>`` is the image's position in the whole data set. The files are what a demo feeds
    to ``normexport predict``: real images the model never trained on.
    """
    from PIL import Image

    images, labels, test_idx, _ = _split()
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for i in test_idx[:count].tolist():
        path = target / f"{i:04d}_label{int(labels[i])}.png"
        Image.fromarray(images[i].permute(1, 2, 0).numpy()).save(path)
        written.append(path)
    return written
