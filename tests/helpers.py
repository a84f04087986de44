"""Small helpers shared by the tests."""

from __future__ import annotations

import torch
from torch import nn


def calibrate_batchnorm(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Set BatchNorm running statistics from one batch, then switch to eval mode.

    Fresh statistics (mean 0, variance 1) make eval-mode BatchNorm a no-op, and the
    activations of an untrained very deep ResNet then overflow in eval mode, exactly as
    in the reference code. One batch of statistics gives every model sane outputs.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: after one batch, that batch's statistics
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


def randomise_batchnorm(module: nn.Module, *, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters (shifts ~ N(0, 0.2), scales in [0.5, 1.5))."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=generator) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=generator) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=generator) * 0.2)
    return module
