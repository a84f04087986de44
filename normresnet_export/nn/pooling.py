"""Global average pooling to a ``[N, C]`` feature vector.

The reference models pool with different spellings (adaptive pooling, a kernel equal to
the last map dimension, a hard-coded ``AvgPool2d(8)``/``(7)``); on the square inputs they
were designed for these are the same operation. We use one global mean everywhere, which
also lets the exported models accept other input sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GlobalAvgPool2d(nn.Module):
    """Average over height and width, then flatten: ``[N, C, H, W] -> [N, C]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, 1).flatten(1)
