"""Parameter and layer counts, with the conventions the spec's tables were measured with."""

from __future__ import annotations

from torch import nn


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of learnable parameters.

    Shared parameters (the single tau of a no-BN tau-ResNet, registered in every block)
    are counted once, as ``model.parameters()`` de-duplicates them. Buffers (BatchNorm
    running statistics) are not parameters and are not counted.

    Args:
        model: Any module.
        trainable_only: Count only parameters with ``requires_grad``.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_layers(model: nn.Module) -> int:
    """Number of weight layers: every convolution (1d/2d/3d, Dirac included) and every Linear.

    This is torch-resnet's ``count_layers`` convention: shortcut convolutions and the
    classifier head are counted, so the result can exceed the depth in a model's name
    (ResNet20 with projection shortcuts has 22).
    """
    return sum(isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)) for m in model.modules())
