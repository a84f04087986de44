"""Residual shortcuts: option A (identity + zero channels), B (projection when needed), C (always).

The options are those of He et al. 2016 ("Deep Residual Learning", §4.1), plus a 3×3
convolutional shortcut that torch-resnet offers. Each shortcut class says through
``requires_activation`` whether it holds weights: a pre-activation block feeds such a
shortcut its *activated* input ``ReLU(BN(x))`` and a parameter-free one the raw input, and a
post-activation block appends a BatchNorm after it.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from normresnet_export.errors import InputError

ShortcutOption = Literal["A", "B", "C", "conv"]
SHORTCUT_OPTIONS: tuple[str, ...] = ("A", "B", "C", "conv")


class IdentityShortcut(nn.Module):
    """Option A: keep every ``stride``-th pixel and append zero channels up to ``out_channels``.

    Parameter-free. With ``stride == 1`` and equal widths it is the plain identity.
    """

    requires_activation = False

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise InputError(
                f"an identity shortcut cannot reduce channels ({in_channels} -> {out_channels}); "
                "use a projection shortcut (option 'B' or 'C')"
            )
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


class ProjectionShortcut(nn.Module):
    """A bias-free ``kernel_size``×``kernel_size`` convolution (1×1: options B/C; 3×3: 'conv')."""

    requires_activation = True

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, kernel_size: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def make_shortcut(option: str, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Build the shortcut a block needs under ``option``.

    Args:
        option: ``"A"`` identity with subsampling and zero channels; ``"B"`` 1×1 projection
            only where the shape changes (the default of most papers); ``"C"`` a 1×1
            projection in every block; ``"conv"`` a 3×3 projection where the shape changes.
        in_channels: Channels entering the block.
        out_channels: Channels leaving the block.
        stride: Spatial stride of the block.

    Raises:
        InputError: Unknown option.
    """
    shape_changes = stride != 1 or in_channels != out_channels
    if option == "A":
        return IdentityShortcut(in_channels, out_channels, stride)
    if option == "B":
        if shape_changes:
            return ProjectionShortcut(in_channels, out_channels, stride)
        return IdentityShortcut(in_channels, out_channels)
    if option == "C":
        return ProjectionShortcut(in_channels, out_channels, stride)
    if option == "conv":
        if shape_changes:
            return ProjectionShortcut(in_channels, out_channels, stride, kernel_size=3)
        return IdentityShortcut(in_channels, out_channels)
    raise InputError(f"unknown shortcut option {option!r}; expected one of {', '.join(SHORTCUT_OPTIONS)}")
