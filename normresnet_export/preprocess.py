"""The preprocessing a model was evaluated with, as typed data that travels with its weights.

A wrong mean/std, channel order or resize rule is the commonest cause of "wrong predictions
after export" (LESSONS.md #11). So the preprocessing is recorded in every checkpoint and
copied into every exported file, and nothing guesses it when it is missing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

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


#: The evaluation transforms of the reference training scripts (``shared/spec/ARCHITECTURES.md``):
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
