"""The preprocessing a model was evaluated with, as typed data that travels with its weights.

A wrong mean/std, channel order or resize rule is the commonest cause of "wrong predictions
after export" in the issue trackers of the tools people export with. So the preprocessing is
recorded in every checkpoint and copied into every exported file, and nothing guesses it when it is missing.

The second half turns image files into model input: decode with Pillow (EXIF orientation
applied, any mode made RGB, decompression bombs refused before decoding), then the recorded
resize, centre crop, channel order and normalisation. The arithmetic follows torchvision's
``Resize(int)`` + ``CenterCrop`` on PIL images, so a model sees the same pixels it saw in
evaluation, without torchvision installed.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from normresnet_export.errors import InputError

INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
CHANNEL_ORDERS = ("RGB", "BGR")


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the model's input tensor.

    Resize the shorter side to ``resize`` (with ``interpolation``), centre-crop
    ``crop``×``crop``, scale to [0, 1], order the channels as ``channel_order``, then
    normalise per channel with ``mean`` and ``std``.

    Attributes:
        input_size: Model input (channels, height, width).
        mean: Per-channel mean, in [0, 1] units.
        std: Per-channel standard deviation, in [0, 1] units.
        resize: Shorter side after resizing.
        crop: Side of the centre crop; equals the input height and width.
        interpolation: ``"nearest"``, ``"bilinear"`` or ``"bicubic"``.
        channel_order: ``"RGB"`` or ``"BGR"``.
    """

    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: int
    crop: int
    interpolation: str = "bilinear"
    channel_order: str = "RGB"

    def __post_init__(self) -> None:
        if len(self.input_size) != 3:
            raise InputError(f"invalid preprocessing: input_size is [C, H, W], got {list(self.input_size)}")
        channels, height, width = self.input_size
        problems = []
        if min(self.input_size) < 1:
            problems.append(f"input_size must be positive, got {list(self.input_size)}")
        if len(self.mean) != channels or len(self.std) != channels:
            problems.append(
                f"mean and std need one value per input channel ({channels}), "
                f"got {len(self.mean)} and {len(self.std)}"
            )
        if not all(math.isfinite(s) and s > 0 for s in self.std):
            problems.append(f"std must be positive, got {list(self.std)}")
        if not all(math.isfinite(m) for m in self.mean):
            problems.append(f"mean must be finite, got {list(self.mean)}")
        if (height, width) != (self.crop, self.crop):
            problems.append(f"crop ({self.crop}) must equal the input height and width ({height}×{width})")
        if self.resize < self.crop:
            problems.append(f"resize ({self.resize}) must be at least crop ({self.crop})")
        if self.interpolation not in INTERPOLATIONS:
            problems.append(
                f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}"
            )
        if self.channel_order not in CHANNEL_ORDERS:
            problems.append(
                f"channel_order must be one of {', '.join(CHANNEL_ORDERS)}, got {self.channel_order!r}"
            )
        if problems:
            raise InputError("invalid preprocessing: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (lists instead of tuples), as stored in checkpoints and exports."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def apply(self, image: Image.Image) -> torch.Tensor:
        """The model input ``[C, H, W]`` (float32) for an RGB image.

        Resizes the shorter side to ``resize`` (the longer side in proportion, truncated, as
        torchvision does), centre-crops ``crop``×``crop``, scales to [0, 1], orders the
        channels and normalises.
        """
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        scaled_long = int(self.resize * long / short)
        size = (self.resize, scaled_long) if width <= height else (scaled_long, self.resize)
        if size != image.size:
            image = image.resize(size, _RESAMPLE[self.interpolation])
        left = round((size[0] - self.crop) / 2.0)
        top = round((size[1] - self.crop) / 2.0)
        image = image.crop((left, top, left + self.crop, top + self.crop))
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        if self.channel_order == "BGR":
            pixels = pixels[..., ::-1]
        pixels = (pixels - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))

    @classmethod
    def from_dict(cls, data: Any) -> Preprocessing:
        """Parse the dict written by :meth:`to_dict`.

        Raises:
            InputError: A missing, unknown or ill-typed field, named in the message.
        """
        if not isinstance(data, dict):
            raise InputError(f"preprocessing must be a dict, got {type(data).__name__}")
        fields = {"input_size", "mean", "std", "resize", "crop", "interpolation", "channel_order"}
        missing = sorted({"input_size", "mean", "std", "resize", "crop"} - set(data))
        unknown = sorted(set(data) - fields)
        if missing or unknown:
            raise InputError(f"invalid preprocessing: missing fields {missing}, unknown fields {unknown}")
        try:
            return cls(
                input_size=tuple(int(v) for v in data["input_size"]),  # type: ignore[arg-type]
                mean=tuple(float(v) for v in data["mean"]),
                std=tuple(float(v) for v in data["std"]),
                resize=int(data["resize"]),
                crop=int(data["crop"]),
                interpolation=str(data.get("interpolation", "bilinear")),
                channel_order=str(data.get("channel_order", "RGB")),
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"invalid preprocessing: {exc}") from None


def _cifar(mean: tuple[float, ...], std: tuple[float, ...]) -> Preprocessing:
    return Preprocessing(input_size=(3, 32, 32), mean=mean, std=std, resize=32, crop=32)


#: The evaluation transforms of the five research codes' training scripts:
#: ``cifar10``/``cifar100`` for tau-ResNet and torch-resnet, ``cifar-wrn`` (the wide-ResNet
#: statistics in 0-255 units) for ProcResNet and DiracNets, ``imagenet`` for every ImageNet
#: design (resize 256, centre crop 224).
PRESETS: dict[str, Preprocessing] = {
    "cifar10": _cifar((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": _cifar((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    "cifar-wrn": _cifar((125.3 / 255, 123.0 / 255, 113.9 / 255), (63.0 / 255, 62.1 / 255, 66.7 / 255)),
    "imagenet": Preprocessing(
        input_size=(3, 224, 224), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), resize=256, crop=224
    ),
}


def parse_preprocessing(value: str) -> Preprocessing:
    """A preset name (``cifar10``, ``imagenet``, …) or a JSON file holding a preprocessing dict."""
    if value in PRESETS:
        return PRESETS[value]
    path = Path(value)
    if not path.is_file():
        raise InputError(
            f"--preprocessing {value!r} is neither a preset ({', '.join(PRESETS)}) nor a JSON file"
        )
    import json

    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not JSON: {exc}") from None
    return Preprocessing.from_dict(data)


# --------------------------------------------------------------------------------------------- images

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}
#: File name endings of the images collected from a directory (compared lower-case).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
#: Largest image accepted, in pixels (Pillow's own warning threshold, about 89 megapixels). A
#: small file can declare a huge size and expand to gigabytes when decoded: a decompression bomb.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485


class ImageDecodeError(InputError):
    """An input that cannot be turned into an image; the message names it and says why."""


def _open(data: bytes | str | os.PathLike[str], name: str) -> Image.Image:
    """Open (header only), refusing empty files, non-images and decompression bombs before decoding."""
    if isinstance(data, bytes):
        if not data:
            raise ImageDecodeError(f"{name}: empty input (0 bytes)")
        source: Any = io.BytesIO(data)
    else:
        try:
            if os.path.getsize(data) == 0:
                raise ImageDecodeError(f"{name}: empty file (0 bytes)")
        except OSError as exc:
            raise ImageDecodeError(f"{name}: cannot read it ({exc.strerror})") from None
        source = data
    try:
        with warnings.catch_warnings():  # between 1× and 2× Pillow's limit it only warns; we refuse below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
    except Image.DecompressionBombError:
        raise ImageDecodeError(f"{name}: the image declares more pixels than Pillow allows") from None
    except (OSError, ValueError, SyntaxError) as exc:
        what = "not an image Pillow can read" if "cannot identify" in str(exc) else str(exc)
        raise ImageDecodeError(f"{name}: {what}") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageDecodeError(
            f"{name}: the image declares {width}×{height} = {width * height:,} pixels, more than the "
            f"limit of {MAX_PIXELS:,} (a decompression bomb, or an image to downscale first)"
        )
    return image


def _rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB; alpha is dropped as torchvision's image loader drops it."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        levels = np.asarray(image, dtype=np.float64) / 257.0  # 16-bit range to 8-bit
        image = Image.fromarray(np.clip(np.rint(levels), 0, 255).astype(np.uint8))
    elif mode == "F":
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 if values.size and np.nanmax(values) <= 1.0 else 1.0  # [0, 1] floats or 0-255
        image = Image.fromarray(np.clip(np.rint(np.nan_to_num(values) * scale), 0, 255).astype(np.uint8))
    elif mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image if image.mode == "RGB" else image.convert("RGB")


def decode_image(data: bytes | str | os.PathLike[str], name: str | None = None) -> Image.Image:
    """Decode an image file or its bytes to an RGB image, upright per its EXIF orientation.

    Raises:
        ImageDecodeError: Empty, truncated, not an image, or beyond :data:`MAX_PIXELS`; the
            message starts with ``name`` (default: the path, or ``<bytes>``).
    """
    name = name or (str(data) if not isinstance(data, bytes) else "<bytes>")
    image = _open(data, name)
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        return _rgb(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason or "broken data stream" in reason:
            reason = f"truncated or damaged file ({reason})"
        raise ImageDecodeError(f"{name}: {reason}") from None


def image_files(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given, and directories expanded recursively to their image files (sorted).

    Raises:
        InputError: A path that does not exist, or a directory without images.
    """
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            images = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise InputError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            found.extend(images)
        elif path.exists():
            found.append(path)
        else:
            raise InputError(f"{path} does not exist")
    return found


def load_images(
    items: Sequence[tuple[str, bytes | str | os.PathLike[str]]],
    preprocessing: Preprocessing,
    *,
    workers: int | None = None,
) -> Iterator[tuple[str, torch.Tensor | ImageDecodeError]]:
    """``(name, input tensor or the error)`` per item, in order, decoded by a thread pool.

    Pillow releases the GIL while decoding and resizing, so threads overlap the work. A file
    that fails yields its error instead of stopping the others.
    """

    def one(item: tuple[str, bytes | str | os.PathLike[str]]) -> tuple[str, torch.Tensor | ImageDecodeError]:
        name, data = item
        try:
            return name, preprocessing.apply(decode_image(data, name))
        except ImageDecodeError as exc:
            return name, exc

    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        yield from pool.map(one, items)
