"""Half-precision compute behind a float32 interface, shared by the exporters and the eager backend.

float16 stays opt-in and stays inside the model: callers hand in and get back float32, so a
float16 artefact is a drop-in replacement for its float32 original, and only the arithmetic
in between (weights, activations) is rounded to 11 significant bits.
"""

from __future__ import annotations

import torch
from torch import nn


class Float16Model(nn.Module):
    """A network computing in float16 behind float32 input and output.

    Args:
        inner: The network; it is converted to float16 in place (pass a copy to keep the original).
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner.half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.half()).float()
