"""Lower-precision compute behind a float32 interface, shared by the exporters and the eager backend.

float16 and bfloat16 stay opt-in and stay inside the model: callers hand in and get back
float32, so a low-precision model is a drop-in replacement for its float32 original, and only
the arithmetic in between is rounded (float16: weights and activations to 11 significant
bits; bfloat16 under autocast: the inputs of convolutions and matrix products to 8).
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


class BFloat16Autocast(nn.Module):
    """A network run under torch's bfloat16 autocast, behind float32 input and output.

    Autocast computes convolutions and linear layers from bfloat16 inputs (oneDNN's bfloat16
    kernels on a CPU with AVX512-BF16 or AMX) and keeps the rest, e.g. BatchNorm and the
    additions of the residual stream, in float32; the weights stay float32 in memory.

    Args:
        inner: The network (not changed).
        device_type: ``cpu`` or ``cuda``: where ``inner`` runs.
    """

    def __init__(self, inner: nn.Module, device_type: str = "cpu") -> None:
        super().__init__()
        self.inner = inner
        self.device_type = device_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=self.device_type, dtype=torch.bfloat16):
            return self.inner(x).float()
