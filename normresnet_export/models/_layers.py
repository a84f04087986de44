"""Small constructors and initialisers shared by the model files (private plumbing)."""

from __future__ import annotations

from typing import Literal

from torch import nn

from normresnet_export.errors import InputError


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, *, bias: bool = False) -> nn.Conv2d:
    """3×3 convolution with padding 1 (bias-free unless asked)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=bias)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1, *, bias: bool = False) -> nn.Conv2d:
    """1×1 convolution without padding (bias-free unless asked)."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=bias)


def init_conv_bn(model: nn.Module, *, mode: Literal["fan_in", "fan_out"] = "fan_out") -> None:
    """He-normal initialisation of every Conv2d weight; BatchNorm weight 1 and bias 0.

    This is the initialisation torchvision, torch-resnet, LeNo and tau-ResNet share
    (``kaiming_normal_(mode="fan_out", nonlinearity="relu")``, std = sqrt(2 / (k² · C_out))).
    Linear layers keep PyTorch's default, as in those references. Tensors on the meta
    device (shape-only builds, used to count parameters) are skipped: there is nothing
    to initialise and PyTorch's meta kernels for random fills are slow.
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)) and m.weight.is_meta:
            continue
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def check_num_classes(num_classes: int) -> int:
    """Validate a classifier size (0 means: no classifier, return features)."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
        raise InputError(
            f"num_classes must be a non-negative integer (0 = features only), got {num_classes!r}"
        )
    return num_classes


def make_head(in_features: int, num_classes: int) -> nn.Module:
    """``Linear(in_features, num_classes)``, or ``Identity`` (features out) when ``num_classes == 0``."""
    return nn.Linear(in_features, num_classes) if check_num_classes(num_classes) else nn.Identity()
