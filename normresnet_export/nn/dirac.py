"""Dirac-parameterised convolutions (DiracNets v2, Zagoruyko & Komodakis, arXiv 1706.00388).

The layer's effective weight is

    W_hat[o] = alpha[o] * Delta[o] + beta[o] * V[o] / max(||V[o]||_2, 1e-12)

where ``V`` is the raw weight, the norm runs over the whole output filter ``o`` (all input
channels and taps), and ``Delta`` is the Dirac tensor: convolving with it copies input
channel ``o`` to output channel ``o`` (``torch.nn.init.dirac_``). The identity thus lives
inside the weight, which is how DiracNets train deep without skip connections, and why the
trained network folds into a plain conv: :meth:`fold` returns that plain conv.

State-dict keys are ``weight``, ``bias`` (when enabled), ``alpha`` and ``beta``. ``Delta``
is a constant and is kept out of checkpoints; a state_dict written by the reference
``diracconv.py`` also carries it as ``delta``, which is accepted after checking that it
really is the Dirac tensor of this layer.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def dirac_delta(
    shape: torch.Size | tuple[int, ...],
    groups: int = 1,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    """The Dirac tensor of a conv weight of ``shape`` = (out, in/groups, *kernel).

    Within each group, output channel ``d`` gets a single 1 at input channel ``d`` and the
    kernel centre, for ``d < min(out/groups, in/groups)``; when a layer widens the
    channels the extra outputs get no identity part. Same layout as ``nn.init.dirac_``.
    """
    out_channels, in_per_group, *kernel = shape
    out_per_group = out_channels // groups
    delta = torch.zeros(shape, dtype=dtype, device=device)
    d = torch.arange(min(out_per_group, in_per_group), device=device)
    centre = tuple(k // 2 for k in kernel)
    for g in range(groups):
        delta[(g * out_per_group + d, d, *centre)] = 1
    return delta


def dirac_weight(
    weight: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, delta: torch.Tensor
) -> torch.Tensor:
    """``alpha * delta + beta * weight / ||weight||`` per output filter (norm over its inputs and taps)."""
    per_channel = (-1,) + (1,) * (weight.dim() - 1)
    normalized = F.normalize(weight.flatten(1), dim=1).view_as(weight)
    return beta.view(per_channel) * normalized + alpha.view(per_channel) * delta


def _accept_reference_delta(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Load-time hook: accept the ``delta`` entry of reference ``diracconv.py`` state_dicts if it is Dirac.

    ``args`` are the rest of PyTorch's pre-hook arguments; the last one collects errors.
    """
    key = prefix + "delta"
    if key not in state_dict:
        return
    given, expected = state_dict.pop(key), module.delta
    if tuple(given.shape) != tuple(expected.shape) or not torch.equal(given.to(expected), expected):
        args[-1].append(
            f"{key}: expected the Dirac tensor of shape {tuple(expected.shape)}, got a tensor of shape "
            f"{tuple(given.shape)} with other values; this is not a DiracConv state_dict"
        )


class _DiracConvMixin:
    """Shared body of DiracConv1d/2d/3d; mixed in before the matching ``nn.ConvNd``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        padding: int | tuple[int, ...] | str = 0,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        # Stride is fixed to 1: the identity part must map every input pixel to one output pixel.
        super().__init__(  # type: ignore[call-arg]
            in_channels,
            out_channels,
            kernel_size,
            stride=1,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
            device=device,
            dtype=dtype,
        )
        # alpha = 1, beta = 0.1 as in the reference: the layer starts close to the identity.
        factory = {"dtype": self.weight.dtype, "device": self.weight.device}
        self.alpha = nn.Parameter(torch.ones(out_channels, **factory))
        self.beta = nn.Parameter(torch.full((out_channels,), 0.1, **factory))
        self.register_buffer("delta", dirac_delta(self.weight.shape, groups, **factory), persistent=False)
        self.register_load_state_dict_pre_hook(_accept_reference_delta)

    def dirac_weight(self) -> torch.Tensor:
        """The effective weight ``alpha * Delta + beta * normalize(V)``."""
        return dirac_weight(self.weight, self.alpha, self.beta, self.delta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.dirac_weight(), self.bias)  # type: ignore[attr-defined]

    def fold(self) -> nn.Module:
        """A plain convolution with the effective weight baked in (same bias, padding, dilation)."""
        plain = self._plain_type(
            self.weight.shape[1] * self.groups,
            self.weight.shape[0],
            tuple(self.weight.shape[2:]),
            stride=1,
            padding=self.padding,  # type: ignore[attr-defined]
            dilation=self.dilation,  # type: ignore[attr-defined]
            groups=self.groups,
            bias=self.bias is not None,
            padding_mode=self.padding_mode,  # type: ignore[attr-defined]
            device=self.weight.device,
            dtype=self.weight.dtype,
        )
        with torch.no_grad():
            plain.weight.copy_(self.dirac_weight())
            if self.bias is not None:
                plain.bias.copy_(self.bias)
        return plain


class DiracConv1d(_DiracConvMixin, nn.Conv1d):
    """1-d convolution with weight ``alpha * Delta + beta * normalize(V)`` (stride 1)."""

    _plain_type = nn.Conv1d


class DiracConv2d(_DiracConvMixin, nn.Conv2d):
    """2-d convolution with weight ``alpha * Delta + beta * normalize(V)`` (stride 1)."""

    _plain_type = nn.Conv2d


class DiracConv3d(_DiracConvMixin, nn.Conv3d):
    """3-d convolution with weight ``alpha * Delta + beta * normalize(V)`` (stride 1)."""

    _plain_type = nn.Conv3d
