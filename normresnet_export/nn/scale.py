"""A fixed scalar multiplier on the residual branch (tau-ResNet's tau).

Zhang et al. (arXiv 1903.07120) scale every residual branch by tau ~ 1/sqrt(L) so that a
deep ResNet trains without relying on BatchNorm. In the BatchNorm variant tau is a plain
number, not a parameter, so it never appears in a state_dict; it travels in a
checkpoint's ``model_kwargs`` instead. Keeping it in its own module lets the fold stage
find it as ``conv -> BN -> Scale`` and multiply it into the conv.
"""

from __future__ import annotations

import torch
from torch import nn


class Scale(nn.Module):
    """Multiply the input by a constant ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = float(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.value

    def extra_repr(self) -> str:
        return f"value={self.value!r}"
