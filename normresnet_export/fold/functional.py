"""Folding arithmetic: pure tensor functions, each written once.

Every function computes in float64 and returns tensors in the dtype (and on the device)
of the weight it was given. Rounding the folded weight once, instead of compounding
float32 errors through a 1000-layer stack, is what keeps folded logits within 1e-5 of
the original. Weights follow PyTorch's layouts: ``[out, in/groups, *kernel]``
for convolutions, ``[out, in]`` for Linear. Transposed convolutions are not handled.

On the meta device (shape-only folds, used to rebuild folded checkpoints) the functions
return empty tensors of the right shapes: meta tensors carry no values, and PyTorch
evaluates meta arithmetic through slow Python decompositions (8 s for resnet1202).
"""

from __future__ import annotations

import torch

from normresnet_export.nn.dirac import dirac_weight

__all__ = [
    "add_offsets",
    "batchnorm_affine",
    "dirac_weight",
    "fold_bn",
    "fold_input_affine",
    "fold_output_affine",
    "pad_output_channels",
    "pad_vector",
    "shifted_batchnorm_affine",
    "stream_bn_split",
]


def _shapes_only(weight: torch.Tensor, out_channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Empty (meta) weight and bias of the shapes a fold returns."""
    shape = (out_channels, *weight.shape[1:])
    return (
        torch.empty(shape, dtype=weight.dtype, device=weight.device),
        torch.empty(out_channels, dtype=weight.dtype, device=weight.device),
    )


def _per_channel(value: torch.Tensor | float, channels: int, like: torch.Tensor) -> torch.Tensor:
    """``value`` as a float64 vector of ``channels`` entries (a scalar is broadcast)."""
    tensor = torch.as_tensor(value, dtype=torch.float64, device=like.device).flatten()
    return tensor.expand(channels) if tensor.numel() == 1 else tensor


def batchnorm_affine(
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    eps: float,
    gamma: torch.Tensor | None = None,
    beta: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel map ``y = scale * x + shift`` of an eval-mode BatchNorm, in float64.

    ``scale = gamma / sqrt(var + eps)`` and ``shift = beta - mean * scale``; a BatchNorm
    without affine parameters has ``gamma = 1`` and ``beta = 0``.
    """
    if running_var.is_meta:
        empty = torch.empty(running_var.shape, dtype=torch.float64, device=running_var.device)
        return empty, empty
    scale = 1.0 / torch.sqrt(running_var.double() + eps)
    if gamma is not None:
        scale = scale * gamma.double()
    shift = -running_mean.double() * scale
    if beta is not None:
        shift = shift + beta.double()
    return scale, shift


def fold_output_affine(
    weight: torch.Tensor, bias: torch.Tensor | None, scale: torch.Tensor | float, shift: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge ``y -> scale * y + shift`` applied to a conv/linear output into its weight and bias.

    Exact for any stride, padding, dilation and groups, because it acts on the output.
    The result always has a bias (a dropped or double-counted conv bias is the classic
    folding bug).

    Args:
        weight: ``[out, ...]`` weight of the conv or linear layer.
        bias: Its bias, or ``None``.
        scale: Per-output-channel (``[out]``) or scalar multiplier.
        shift: Per-output-channel or scalar offset.
    """
    out_channels = weight.shape[0]
    if weight.is_meta:
        return _shapes_only(weight, out_channels)
    s = _per_channel(scale, out_channels, weight)
    t = _per_channel(shift, out_channels, weight)
    w = weight.double() * s.view((-1,) + (1,) * (weight.dim() - 1))
    b = (bias.double() if bias is not None else torch.zeros_like(s)) * s + t
    return w.to(weight.dtype), b.to(weight.dtype)


def fold_bn(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    eps: float,
    gamma: torch.Tensor | None,
    beta: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold a BatchNorm that directly follows a conv/linear layer into that layer.

    ``bn(conv(x)) = scale * conv(x) + shift`` with the BatchNorm's float64 affine
    (:func:`batchnorm_affine`), merged into the weight and bias by :func:`fold_output_affine`.
    """
    return fold_output_affine(weight, bias, *batchnorm_affine(running_mean, running_var, eps, gamma, beta))


def fold_input_affine(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    scale: torch.Tensor | float,
    shift: torch.Tensor | float,
    *,
    groups: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge ``x -> scale * x + shift`` applied to a conv/linear *input* into its weight and bias.

    ``W'[o, i] = W[o, i] * scale[i]`` and ``b'[o] = b[o] + sum_{i, taps} W[o, i] * shift[i]``.
    Exact only when every output reads real inputs: a Linear layer, or a convolution
    without padding. With zero padding the padded zeros would not be shifted, so the
    border outputs would change; callers must check that.

    Args:
        weight: ``[out, in/groups, ...]`` (conv) or ``[out, in]`` (linear).
        bias: Its bias, or ``None``.
        scale: Per-input-channel (``[in]``) or scalar multiplier.
        shift: Per-input-channel or scalar offset.
        groups: The convolution's groups.
    """
    out_channels, in_per_group = weight.shape[0], weight.shape[1]
    if weight.is_meta:
        return _shapes_only(weight, out_channels)
    out_per_group = out_channels // groups
    s = _per_channel(scale, in_per_group * groups, weight).view(groups, in_per_group)
    t = _per_channel(shift, in_per_group * groups, weight).view(groups, in_per_group)
    # Row o of the weight reads the input channels of its group g = o // out_per_group.
    s_rows = s.repeat_interleave(out_per_group, dim=0)
    t_rows = t.repeat_interleave(out_per_group, dim=0)
    w64 = weight.double()
    taps = w64.flatten(2).sum(2) if w64.dim() > 2 else w64
    b = (
        bias.double()
        if bias is not None
        else torch.zeros(out_channels, dtype=torch.float64, device=weight.device)
    )
    b = b + (taps * t_rows).sum(1)
    w = w64 * s_rows.view(s_rows.shape + (1,) * (weight.dim() - 2))
    return w.to(weight.dtype), b.to(weight.dtype)


def pad_output_channels(
    weight: torch.Tensor, bias: torch.Tensor | None, before: int, after: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Give a conv/linear layer ``before`` leading and ``after`` trailing output channels that are zero.

    This absorbs a zero channel-padding of the layer's output (option-A shortcuts,
    tau-ResNet's downsampling skip) into the layer itself.
    """
    if weight.is_meta:
        return _shapes_only(weight, before + weight.shape[0] + after)
    factory = {"dtype": weight.dtype, "device": weight.device}
    rows = tuple(weight.shape[1:])
    b = bias if bias is not None else torch.zeros(weight.shape[0], **factory)
    padded_weight = torch.cat(
        [torch.zeros(before, *rows, **factory), weight, torch.zeros(after, *rows, **factory)]
    )
    padded_bias = torch.cat([torch.zeros(before, **factory), b, torch.zeros(after, **factory)])
    return padded_weight, padded_bias


def stream_bn_split(
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    eps: float,
    gamma: torch.Tensor | None,
    beta: torch.Tensor | None,
    *,
    max_offset_ratio: float,
    min_scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split an eval-mode BatchNorm ``a * x + b`` in front of a ReLU into a scale and a stream offset.

    For ``a > 0``, ``relu(a * x + b) = a * relu(x + c)`` with ``c = b / a``: the scale ``a``
    can move into the layers that read the ReLU and the offset ``c`` into the stream ``x``.
    The identity is exact for every ``a > 0``, but ``x + c`` is then what the stream carries
    and rounds; a channel may use it only where that costs no precision:

    * ``a >= min_scale`` (and finite), so that ``a`` moved into a weight stays a normal float;
    * ``|c| <= max_offset_ratio * (|mean| + sqrt(var + eps))``: the running statistics
      describe ``x`` itself, so this bounds the shifted stream's magnitude, and with it its
      rounding error, to a small multiple of the unshifted stream's.

    Returns:
        ``(a, c, usable)`` in float64: the scale, the offset and a boolean mask of the channels
        that may use the identity. On the meta device every channel is reported usable (there
        are no values to judge; the caller decides from a recorded plan).
    """
    scale, shift = batchnorm_affine(running_mean, running_var, eps, gamma, beta)
    if scale.is_meta:
        return scale, shift, torch.ones(scale.shape, dtype=torch.bool, device=scale.device)
    offset = shift / scale
    magnitude = running_mean.double().abs() + torch.sqrt(running_var.double() + eps)
    usable = (
        torch.isfinite(scale)
        & torch.isfinite(offset)
        & (scale >= min_scale)
        & (offset.abs() <= max_offset_ratio * magnitude)
    )
    return scale, offset, usable


def add_offsets(
    first: torch.Tensor | None, second: torch.Tensor | None, *, subtract: bool = False
) -> torch.Tensor | None:
    """``first + second`` (or ``first - second``) of two per-channel float64 offsets, ``None`` being zero.

    On the meta device the result is an empty vector of the same shape (no arithmetic).
    """
    if second is None:
        return first
    if second.is_meta or (first is not None and first.is_meta):
        return torch.empty(second.shape, dtype=torch.float64, device="meta")
    second = -second.double() if subtract else second.double()
    return second if first is None else first.double() + second


def pad_vector(vector: torch.Tensor | None, before: int, after: int, *, value: float) -> torch.Tensor | None:
    """A per-channel vector for a tensor that gained ``before`` leading and ``after`` trailing channels.

    The new channels get ``value``: 0 for an offset (the padded channels are zeros, which
    carry no offset), 1 for a scale.
    """
    if vector is None or (before == 0 and after == 0):
        return vector
    factory = {"dtype": vector.dtype, "device": vector.device}
    return torch.cat(
        [torch.full((before,), value, **factory), vector, torch.full((after,), value, **factory)]
    )


def shifted_batchnorm_affine(
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    eps: float,
    gamma: torch.Tensor | None,
    beta: torch.Tensor | None,
    input_offset: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The affine ``(scale, shift)`` of a BatchNorm whose input now carries ``+ input_offset``.

    ``a * x + b = a * (x + c) + (b - a * c)``, so the kept BatchNorm reads the shifted stream
    and still computes what it did.
    """
    scale, shift = batchnorm_affine(running_mean, running_var, eps, gamma, beta)
    if input_offset is None or scale.is_meta:
        return scale, shift
    return scale, shift - scale * input_offset.double()
