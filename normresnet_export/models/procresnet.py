"""Procrustes ResNets and their pre-activation baselines (CIFAR).

Paper: Zaeemzadeh, Rahnavard, Shah, "Norm-Preservation: Why Residual Networks Can Become
Extremely Deep?" (TPAMI 2020, arXiv 1805.07477). Layout and state-dict keys follow
zaeemzadeh/ProcResNet_PyTorch.

A ProcResNet keeps every skip an exact identity: its three stages of pre-activation
bottlenecks have no shortcut convolutions, and all changes of width or resolution happen
in three stand-alone convolutions on the stream (the stem ``conv1`` and the transitions
``trans_conv1``/``trans_conv2``). During training those three are periodically projected
onto norm-preserving operators (the Procrustes step): :meth:`ProcResNet.regularized_convs` names
them and :meth:`ProcResNet.regularize_convs` projects them (maths in ``nn/procrustes.py``).

The baseline (``procresnet_baseline*``) is the same repository's classic pre-activation
ResNet with projection shortcuts, whose shortcut has its *own* BN + ReLU on the raw block
input, and whose stem is normalised twice (stem BN + ReLU, then the first block's BN +
ReLU) — reproduced as is, since trained checkpoints depend on it.

Name depths: ProcResNet ``9n + 4`` (branch convs, stem, two transitions, linear);
baseline ``9n + 2`` (shortcut convs not counted).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from normresnet_export.errors import InputError
from normresnet_export.models._layers import conv1x1, conv3x3, make_head
from normresnet_export.models._registry import register_model
from normresnet_export.models.torch_resnet import PreActBottleneck, make_stages
from normresnet_export.nn.pooling import GlobalAvgPool2d
from normresnet_export.nn.procrustes import ProjectionMode, project_conv
from normresnet_export.nn.shortcuts import IdentityShortcut

_PLANES = (16, 32, 64)


def _bottleneck(in_channels: int, planes: int, stride: int) -> PreActBottleneck:
    """The repository's pre-activation bottleneck; a projection gets its own BN-ReLU on the raw input."""
    out_channels = planes * PreActBottleneck.expansion
    if stride != 1 or in_channels != out_channels:
        shortcut: nn.Module = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.ReLU(), conv1x1(in_channels, out_channels, stride)
        )
    else:
        shortcut = IdentityShortcut(in_channels, out_channels)
    return PreActBottleneck(in_channels, planes, stride, shortcut=shortcut, shortcut_on_activation=False)


class ProcResNet(nn.Module):
    """ProcResNet: identity skips only; width and resolution change in three stand-alone convs.

    ``conv1`` (3→64) → ``layer1`` → ``trans_conv1`` (1×1/2, 64→128) → ``layer2`` →
    ``trans_conv2`` (1×1/2, 128→256) → ``layer3`` → ``bn`` → ReLU → pool → ``linear``. No
    BatchNorm follows the stem or the transitions: they write straight onto the stream.
    """

    def __init__(self, blocks_per_stage: int, *, num_classes: int) -> None:
        super().__init__()
        n = blocks_per_stage
        self.conv1 = conv3x3(3, 64)
        self.layer1 = make_stages(64, (n,), (16,), (1,), _bottleneck)[0][0]
        self.trans_conv1 = conv1x1(64, 128, stride=2)
        self.layer2 = make_stages(128, (n,), (32,), (1,), _bottleneck)[0][0]
        self.trans_conv2 = conv1x1(128, 256, stride=2)
        self.layer3 = make_stages(256, (n,), (64,), (1,), _bottleneck)[0][0]
        self.bn = nn.BatchNorm2d(256)
        self.avgpool = GlobalAvgPool2d()
        self.linear = make_head(256, num_classes)

    #: FFT grid of each projected conv, as the reference hard-codes them: the stem's input
    #: size and the transitions' *output* sizes (immaterial for 1×1 kernels).
    PROCRUSTES_GRIDS: ClassVar[dict[str, tuple[int, int]]] = {
        "conv1": (32, 32),
        "trans_conv1": (16, 16),
        "trans_conv2": (8, 8),
    }

    def regularized_convs(self) -> dict[str, nn.Conv2d]:
        """The three convolutions the Procrustes step projects, by state-dict name."""
        return {"conv1": self.conv1, "trans_conv1": self.trans_conv1, "trans_conv2": self.trans_conv2}

    @torch.no_grad()
    def regularize_convs(
        self, p: float = 1.0, mode: ProjectionMode = "exact", generator: torch.Generator | None = None
    ) -> bool:
        """With probability ``p``, project the three regularised convs to be norm-preserving.

        Every singular value of each conv's operator is set to ``sqrt(n_out/n_in)``
        (``normresnet_export.nn.procrustes``). As in the reference, one uniform number ``u``
        is drawn on every call and the projection happens when ``u <= p``, always for all
        three layers together; unlike the reference, ``u`` comes from ``generator`` (or
        torch's default generator), never from NumPy's unseeded global state, so a run is
        reproducible. Momentum buffers are left alone, as in the reference.

        Args:
            p: Probability of projecting (the reference's ``regul_freq``), in [0, 1].
            mode: ``"exact"`` (per-frequency SVD, then crop) or ``"reference"`` (the original
                algorithm, sign quirk included, to reproduce published numbers).
            generator: Source of ``u``; a CPU ``torch.Generator``.

        Returns:
            Whether the weights were projected.
        """
        if not 0.0 <= p <= 1.0:
            raise InputError(f"the projection probability p must be in [0, 1], got {p}")
        u = float(torch.rand((), generator=generator))
        if u > p:
            return False
        for name, conv in self.regularized_convs().items():
            conv.weight.copy_(project_conv(conv.weight, self.PROCRUSTES_GRIDS[name], mode=mode))
        return True

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before the classifier."""
        x = self.layer1(self.conv1(x))
        x = self.layer2(self.trans_conv1(x))
        x = self.layer3(self.trans_conv2(x))
        return self.avgpool(F.relu(self.bn(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.forward_features(x))


class ProcResNetBaseline(nn.Module):
    """Baseline pre-activation ResNet: ``conv1`` → ``bn1`` → ReLU → stages → ``bn2`` → ReLU → ``linear``."""

    def __init__(self, blocks_per_stage: int, *, num_classes: int) -> None:
        super().__init__()
        n = blocks_per_stage
        self.conv1 = conv3x3(3, 16)
        self.bn1 = nn.BatchNorm2d(16)
        stages, out_channels = make_stages(16, (n, n, n), _PLANES, (1, 2, 2), _bottleneck)
        self.layer1, self.layer2, self.layer3 = stages
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.avgpool = GlobalAvgPool2d()
        self.linear = make_head(out_channels, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before the classifier."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.avgpool(F.relu(self.bn2(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.forward_features(x))


# --------------------------------------------------------------------------------------------- builders

# One builder per depth the paper reports (n = 18, 30, 70, 111), each followed by its
# baseline. Weights keep PyTorch's default initialisation: the reference defines an init
# helper but never calls it, and trained checkpoints were made that way.


@register_model(family="procresnet", dataset="cifar")
def procresnet166(*, num_classes: int = 10) -> ProcResNet:
    """ProcResNet-166, CIFAR, 18 bottlenecks per stage, identity skips only.

    The ProcResNet of Zaeemzadeh et al., "Norm-Preservation: Why Residual Networks Can Become
    Extremely Deep?" (TPAMI 2020), for 32×32 CIFAR images: a 64-channel 3×3 stem, then three stages
    of 18 pre-activation bottlenecks (outputs 64, 128 and 256) joined by two 1×1/2 transition
    convolutions, every skip an exact identity; depth 166 = 9n + 4 with n = 18. The stem and the
    transitions are the convolutions the Procrustes step keeps norm-preserving.
    """
    return ProcResNet(18, num_classes=num_classes)


@register_model(family="procresnet", dataset="cifar")
def procresnet_baseline164(*, num_classes: int = 10) -> ProcResNetBaseline:
    """pre-activation ResNet-164 baseline of the ProcResNet paper, CIFAR.

    The pre-activation ResNet-164 baseline of Zaeemzadeh et al., "Norm-Preservation: Why Residual
    Networks Can Become Extremely Deep?" (TPAMI 2020), for 32×32 CIFAR images: a 16-channel 3×3 stem
    with BatchNorm and ReLU, then three stages of 18 bottlenecks with inner widths 16, 32 and 64
    (outputs 64, 128 and 256) whose projection shortcuts have their own BatchNorm and ReLU; depth
    164 = 9n + 2 with n = 18 (shortcut convolutions not counted).
    """
    return ProcResNetBaseline(18, num_classes=num_classes)


@register_model(family="procresnet", dataset="cifar")
def procresnet274(*, num_classes: int = 10) -> ProcResNet:
    """ProcResNet-274, CIFAR, 30 bottlenecks per stage, identity skips only.

    The ProcResNet of Zaeemzadeh et al., "Norm-Preservation: Why Residual Networks Can Become
    Extremely Deep?" (TPAMI 2020), for 32×32 CIFAR images: a 64-channel 3×3 stem, then three stages
    of 30 pre-activation bottlenecks (outputs 64, 128 and 256) joined by two 1×1/2 transition
    convolutions, every skip an exact identity; depth 274 = 9n + 4 with n = 30. The stem and the
    transitions are the convolutions the Procrustes step keeps norm-preserving.
    """
    return ProcResNet(30, num_classes=num_classes)


@register_model(family="procresnet", dataset="cifar")
def procresnet_baseline272(*, num_classes: int = 10) -> ProcResNetBaseline:
    """pre-activation ResNet-272 baseline of the ProcResNet paper, CIFAR.

    The pre-activation ResNet-272 baseline of Zaeemzadeh et al., "Norm-Preservation: Why Residual
    Networks Can Become Extremely Deep?" (TPAMI 2020), for 32×32 CIFAR images: a 16-channel 3×3 stem
    with BatchNorm and ReLU, then three stages of 30 bottlenecks with inner widths 16, 32 and 64
    (outputs 64, 128 and 256) whose projection shortcuts have their own BatchNorm and ReLU; depth
    272 = 9n + 2 with n = 30 (shortcut convolutions not counted).
    """
    return ProcResNetBaseline(30, num_classes=num_classes)


@register_model(family="procresnet", dataset="cifar")
def procresnet634(*, num_classes: int = 10) -> ProcResNet:
    """ProcResNet-634, CIFAR, 70 bottlenecks per stage, identity skips only.

    The ProcResNet of Zaeemzadeh et al., "Norm-Preservation: Why Residual Networks Can Become
    Extremely Deep?" (TPAMI 2020), for 32×32 CIFAR images: a 64-channel 3×3 stem, then three stages
    of 70 pre-activation bottlenecks (outputs 64, 128 and 256) joined by two 1×1/2 transition
    convolutions, every skip an exact identity; depth 634 = 9n + 4 with n = 70. The stem and the
    transitions are the convolutions the Procrustes step keeps norm-preserving.
    """
    return ProcResNet(70, num_classes=num_classes)


@register_model(family="procresnet", dataset="cifar")
def procresnet_baseline632(*, num_classes: int = 10) -> ProcResNetBaseline:
    """pre-activation ResNet-632 baseline of the ProcResNet paper, CIFAR.

    The pre-activation ResNet-632 baseline of Zaeemzadeh et al., "Norm-Preservation: Why Residual
    Networks Can Become Extremely Deep?" (TPAMI 2020), for 32×32 CIFAR images: a 16-channel 3×3 stem
    with BatchNorm and ReLU, then three stages of 70 bottlenecks with inner widths 16, 32 and 64
    (outputs 64, 128 and 256) whose projection shortcuts have their own BatchNorm and ReLU; depth
    632 = 9n + 2 with n = 70 (shortcut convolutions not counted).
    """
    return ProcResNetBaseline(70, num_classes=num_classes)


@register_model(family="procresnet", dataset="cifar")
def procresnet1003(*, num_classes: int = 10) -> ProcResNet:
    """ProcResNet-1003, CIFAR, 111 bottlenecks per stage, identity skips only.

    The ProcResNet of Zaeemzadeh et al., "Norm-Preservation: Why Residual Networks Can Become
    Extremely Deep?" (TPAMI 2020), for 32×32 CIFAR images: a 64-channel 3×3 stem, then three stages
    of 111 pre-activation bottlenecks (outputs 64, 128 and 256) joined by two 1×1/2 transition
    convolutions, every skip an exact identity; depth 1003 = 9n + 4 with n = 111. The stem and the
    transitions are the convolutions the Procrustes step keeps norm-preserving.
    """
    return ProcResNet(111, num_classes=num_classes)


@register_model(family="procresnet", dataset="cifar")
def procresnet_baseline1001(*, num_classes: int = 10) -> ProcResNetBaseline:
    """pre-activation ResNet-1001 baseline of the ProcResNet paper, CIFAR.

    The pre-activation ResNet-1001 baseline of Zaeemzadeh et al., "Norm-Preservation: Why Residual
    Networks Can Become Extremely Deep?" (TPAMI 2020), for 32×32 CIFAR images: a 16-channel 3×3 stem
    with BatchNorm and ReLU, then three stages of 111 bottlenecks with inner widths 16, 32 and 64
    (outputs 64, 128 and 256) whose projection shortcuts have their own BatchNorm and ReLU; depth
    1001 = 9n + 2 with n = 111 (shortcut convolutions not counted).
    """
    return ProcResNetBaseline(111, num_classes=num_classes)
