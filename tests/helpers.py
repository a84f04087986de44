"""Small helpers shared by the tests."""

from __future__ import annotations

import struct
import zlib

import pytest
import torch
from torch import nn

import normresnet_export as nx

#: Registry members that take seconds each to build, fold and run: 400+ layers or 50M+ parameters.
SLOW_MODELS = frozenset(
    name
    for name in nx.list_models()
    if nx.model_info(name).layer_count() >= 400 or nx.model_info(name).parameter_count() >= 50_000_000
)
#: The slow members ``make test`` still sweeps: the cheapest 400+ layer net of each family that
#: has one (post- and pre-activation counted apart), so every depth-dependent path (the deep
#: nets' float32 limits, calibrated statistics, offsets over 1000 blocks) runs on every change.
DEEP_REPRESENTATIVES = frozenset(
    {"resnet1001", "preact_resnet1001", "procresnet634", "tau_resnet1202_nobn", "lenoresnet401"}
)


def registry_params(names: list[str]) -> list[object]:
    """``names`` as pytest parameters: slow members marked ``slow``, and ``full`` unless representative.

    ``make test`` leaves out ``full`` (``make test-full`` runs everything); ``-m "not slow"``
    leaves out the representatives too, for a quick loop.
    """
    params: list[object] = []
    for name in names:
        if name in DEEP_REPRESENTATIVES:
            params.append(pytest.param(name, marks=pytest.mark.slow))
        elif name in SLOW_MODELS:
            params.append(pytest.param(name, marks=[pytest.mark.slow, pytest.mark.full]))
        else:
            params.append(name)
    return params


#: The smallest square input each kind of design accepts with finite, non-constant logits, for
#: sweeps over the whole registry that only need *an* input. The CIFAR designs downsample 4×, so
#: 8×8 still leaves their last stage a 2×2 map; the ImageNet designs downsample 32×, and 32×32 is
#: the least on which DiracNet-18/34 (a max-pool between stages) keep one pixel to the end.
SMALLEST_INPUT_SIDE = {"cifar": 8, "imagenet": 32}


def smallest_input_size(name: str) -> tuple[int, int, int]:
    """(C, H, W) of the smallest input the registered model ``name`` accepts (see above)."""
    channels = nx.model_info(name).input_size[0]
    side = SMALLEST_INPUT_SIDE[nx.model_info(name).dataset]
    return (channels, side, side)


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


def randomise_for_folding(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """Make every folded quantity non-trivial: BatchNorm (see above), Dirac alpha/beta, tau and offsets.

    Folding with default values proves little (BN with mean 0 / variance 1 is the identity;
    the "outputs differ" reports about RepVGG came from exactly that blind spot).
    """
    randomise_batchnorm(model, seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("alpha", "beta") or (leaf.startswith("bias") and parameter.numel() == 1):
                parameter.copy_(
                    torch.rand(parameter.shape, generator=generator) * 0.4 + 0.8
                    if leaf == "alpha"
                    else (torch.rand(parameter.shape, generator=generator) - 0.5) * 0.4
                )
            elif leaf == "tau":
                parameter.fill_(0.37)
    return model


def png_bomb(width: int, height: int) -> bytes:
    """A PNG that declares width×height but holds almost no data (what a decompression bomb looks like)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )
