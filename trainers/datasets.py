"""The data sets ``normexport train`` reads: digits, CIFAR-10/100, ImageNet folders, any image folder.

* ``digits``: scikit-learn's bundled handwritten digits (``normresnet_export.data.digits``:
  1,797 real images as 32×32 RGB, no download, a fixed split of 1,437 training and 360 test
  images). It makes every family trainable, and checkable, on a machine without data.
* ``cifar10`` / ``cifar100``: the python batches of a local copy in ``--data-dir`` (default
  ``./data``), read by ``normresnet_export.data.cifar``; nothing is fetched unless
  ``--download`` is given.
* ``imagenet``: ``DATA_DIR/train`` and ``DATA_DIR/val``, one directory per class.
* ``folder:DIR`` (or ``folder`` with ``--data-dir DIR``): any class-per-directory tree; with
  ``train/`` and ``val/`` (or ``test/``) sub-trees those are used, otherwise a fixed 90/10
  split of the whole tree.

The name is resolved as every command resolves it (``normresnet_export.data.sets``).

Small data sets (digits, CIFAR) live in memory as ``uint8`` tensors and are augmented with
the recipe's random crop (+ flip; digits are not mirror-symmetric, so no flip for them).
Folders are decoded with PIL in the loader's workers and augmented ImageNet-style
(random-resized crop + flip) at the model's design input size. All augmentation is seeded per
sample (``trainers.transforms``).

Normalisation: CIFAR uses the recipe's statistics (the reference's), or the data set's own
when the recipe names none; digits its own (measured on its training split); folders the
ImageNet statistics.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from normresnet_export.data import digits
from normresnet_export.data.cifar import read_cifar
from normresnet_export.data.sets import CIFAR_KINDS, parse_data_set
from normresnet_export.errors import InputError
from normresnet_export.preprocess import PRESETS, Preprocessing
from normresnet_export.vocabulary import TRAINING_DATASETS
from trainers.recipes import Recipe
from trainers.transforms import CropFlip, sample_seed

DATASETS = TRAINING_DATASETS

_FOLDER_TEST_FRACTION = 0.1
_SPLIT_SEED = 0  # fixed: the test split must not move with --seed


class TensorImages(Dataset):
    """In-memory ``uint8`` images ``[N, C, H, W]`` with integer labels.

    An item key is ``index`` (no augmentation) or ``(index, epoch)``: then the image is
    augmented with the randomness of ``sample_seed(seed, epoch, index)``. With augmentation
    the images are stored padded once, so a crop costs a view, not a copy.
    """

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, *, augment: CropFlip | None = None, seed: int = 0
    ) -> None:
        self.images = augment.pad(images) if augment is not None else images
        self.labels = labels
        self.augment = augment
        self.seed = seed

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, epoch = key if isinstance(key, tuple) else (key, None)
        image = self.images[index]
        if self.augment is not None:
            if epoch is None:  # un-augmented: the centre of the padded image
                p = self.augment.padding
                return image[:, p : image.shape[-2] - p, p : image.shape[-1] - p], int(self.labels[index])
            image = self.augment.crop(image, sample_seed(self.seed, epoch, index))
        return image, int(self.labels[index])


class FolderImages(Dataset):
    """Image files decoded with PIL and transformed with a torchvision transform to ``uint8`` tensors.

    With a key ``(index, epoch)`` the transform runs under a forked global RNG seeded by
    ``(seed, epoch, index)``: torchvision's random transforms draw from the global RNG, and
    this makes their draws a function of the sample alone (and leaves the caller's RNG as it was).
    """

    def __init__(self, samples: Sequence[tuple[str, int]], transform: Callable[[Any], Any], *, seed: int = 0):
        self.samples = list(samples)
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        from torchvision.datasets.folder import default_loader

        index, epoch = key if isinstance(key, tuple) else (key, None)
        path, label = self.samples[index]
        image = default_loader(path)
        if epoch is None:
            return self.transform(image), label
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(self.seed, epoch, index))
            return self.transform(image), label


@dataclass
class DataSource:
    """A training and a test set with what the trainer and the checkpoint need to know about them.

    Attributes:
        name: The ``--dataset`` value.
        train: Items ``(uint8 image [C, H, W], label)``, keyed by ``(index, epoch)``.
        test: Items keyed by ``index``, never augmented.
        labels: Class names, one per class index.
        mean: Per-channel mean in [0, 1] units, applied on the device.
        std: Per-channel standard deviation.
        preprocessing: The evaluation preprocessing, recorded in checkpoints.
        augmentation: One line describing the training augmentation.
        root: Where the data was read from (``None`` for bundled data).
    """

    name: str
    train: Dataset
    test: Dataset
    labels: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    preprocessing: Preprocessing
    augmentation: str
    root: str | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.labels)

    @property
    def num_train(self) -> int:
        """Training images (after ``limit_train``)."""
        return len(self.train)  # type: ignore[arg-type]

    @property
    def num_test(self) -> int:
        """Test images (after ``limit_test``)."""
        return len(self.test)  # type: ignore[arg-type]


def _limit(count: int, limit: int | None) -> int:
    return count if limit is None else min(count, limit)


def _small_preprocessing(mean: tuple[float, ...], std: tuple[float, ...]) -> Preprocessing:
    return Preprocessing(input_size=(3, 32, 32), mean=mean, std=std, resize=32, crop=32)


def _digits(recipe: Recipe, seed: int, limit_train: int | None, limit_test: int | None) -> DataSource:
    images, labels = digits.train_split()
    # One grey value repeated over RGB: one statistic for all three channels, over the whole split.
    pixels = images.float() / 255
    mean, std = (round(float(pixels.mean()), 4),) * 3, (round(float(pixels.std()), 4),) * 3
    count = _limit(len(labels), limit_train)
    augment = CropFlip(padding=4, mode=recipe.padding, flip=False)
    return DataSource(
        name="digits",
        train=TensorImages(images[:count], labels[:count], augment=augment, seed=seed),
        test=TensorImages(*digits.test_split(limit_test)),
        labels=list(digits.LABELS),
        mean=mean,
        std=std,
        preprocessing=_small_preprocessing(mean, std),
        augmentation=augment.describe(),
    )


def _cifar(
    name: str,
    root: Path,
    download: bool,
    recipe: Recipe,
    seed: int,
    limit_train: int | None,
    limit_test: int | None,
) -> DataSource:
    train = read_cifar(name, root, split="train", download=download)
    test = read_cifar(name, root, split="test", download=download)

    def tensors(split: Any, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        n = _limit(len(split.labels), limit)
        return split.images[:n], split.labels[:n]

    preset = PRESETS[recipe.normalization or name]
    augment = CropFlip(padding=4, mode=recipe.padding, flip=True)
    train_images, train_labels = tensors(train, limit_train)
    test_images, test_labels = tensors(test, limit_test)
    return DataSource(
        name=name,
        train=TensorImages(train_images, train_labels, augment=augment, seed=seed),
        test=TensorImages(test_images, test_labels),
        labels=list(train.classes),
        mean=preset.mean,
        std=preset.std,
        preprocessing=_small_preprocessing(preset.mean, preset.std),
        augmentation=augment.describe(),
        root=str(root),
    )


def _image_folder(path: Path) -> tuple[list[tuple[str, int]], list[str]]:
    from torchvision.datasets import ImageFolder

    try:
        folder = ImageFolder(str(path))
    except (FileNotFoundError, OSError) as exc:
        raise InputError(
            f"{path} is not a class-per-directory image tree ({exc}); expected {path}/<class>/<image files>"
        ) from None
    return list(folder.samples), list(folder.classes)


def _split_roots(root: Path, dataset: str) -> tuple[Path, Path] | None:
    if (root / "train").is_dir():
        for name in ("val", "test"):
            if (root / name).is_dir():
                return root / "train", root / name
    if dataset == "imagenet":
        raise InputError(
            f"{root} does not hold an ImageNet-style split: expected {root}/train/<class>/… and "
            f"{root}/val/<class>/…; use --dataset folder for a single class-per-directory tree"
        )
    return None


def _folders(
    dataset: str,
    root: Path,
    input_size: int,
    seed: int,
    limit_train: int | None,
    limit_test: int | None,
) -> DataSource:
    from torchvision import transforms as T

    split = _split_roots(root, dataset)
    if split is not None:
        train_samples, classes = _image_folder(split[0])
        test_samples, test_classes = _image_folder(split[1])
        if test_classes != classes:
            raise InputError(
                f"the classes of {split[1]} ({len(test_classes)}) differ from those of {split[0]} "
                f"({len(classes)}); both need the same class directories"
            )
    else:
        samples, classes = _image_folder(root)
        if len(samples) < 2:
            raise InputError(f"{root} holds {len(samples)} image(s); training needs at least two")
        order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(_SPLIT_SEED)).tolist()
        n_test = max(1, round(len(samples) * _FOLDER_TEST_FRACTION))
        test_samples = [samples[i] for i in sorted(order[:n_test])]
        train_samples = [samples[i] for i in sorted(order[n_test:])]
    train_samples = train_samples[: _limit(len(train_samples), limit_train)]
    test_samples = test_samples[: _limit(len(test_samples), limit_test)]
    resize = round(input_size * 256 / 224)
    preset = PRESETS["imagenet"]
    train_tf = T.Compose([T.RandomResizedCrop(input_size), T.RandomHorizontalFlip(), T.PILToTensor()])
    test_tf = T.Compose([T.Resize(resize), T.CenterCrop(input_size), T.PILToTensor()])
    return DataSource(
        name=dataset,
        train=FolderImages(train_samples, train_tf, seed=seed),
        test=FolderImages(test_samples, test_tf),
        labels=classes,
        mean=preset.mean,
        std=preset.std,
        preprocessing=Preprocessing(
            input_size=(3, input_size, input_size),
            mean=preset.mean,
            std=preset.std,
            resize=resize,
            crop=input_size,
        ),
        augmentation=f"random-resized crop to {input_size} + horizontal flip",
        root=str(root),
    )


def load_data(
    dataset: str,
    *,
    recipe: Recipe,
    input_size: int,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    seed: int = 0,
    limit_train: int | None = None,
    limit_test: int | None = None,
) -> DataSource:
    """Open a data set for training.

    Args:
        dataset: One of :data:`DATASETS` (or ``folder`` with ``data_dir``).
        recipe: The training recipe (its crop padding and normalisation for small data sets).
        input_size: The model's design input side (folders are cropped to it; digits and CIFAR are 32).
        data_dir: Where the data lives (CIFAR default ``./data``; required for folders).
        download: Fetch CIFAR if it is missing.
        seed: Seed of the per-sample augmentation.
        limit_train: Use only the first N training images (smoke runs).
        limit_test: Use only the first N test images.

    Raises:
        InputError: Unknown data set, missing or malformed data directory, CIFAR missing without
            ``--download``.
    """
    chosen = parse_data_set(dataset, data_dir=data_dir, download=download, option="--dataset", kinds=DATASETS)
    for name, limit in (("limit_train", limit_train), ("limit_test", limit_test)):
        if limit is not None and limit < 1:
            raise InputError(f"{name} must be at least 1, got {limit}")
    if chosen.kind == "digits":
        return _digits(recipe, seed, limit_train, limit_test)
    root: Path = chosen.root  # type: ignore[assignment]
    if chosen.kind in CIFAR_KINDS:
        return _cifar(chosen.kind, root, download, recipe, seed, limit_train, limit_test)
    if not root.is_dir():
        raise InputError(f"data directory {root} does not exist (or is not a directory)")
    return _folders(chosen.kind, root, input_size, seed, limit_train, limit_test)
