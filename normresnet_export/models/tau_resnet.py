"""tau-ResNet: post-activation ResNets whose residual branch is scaled by tau, with and without BatchNorm.

Paper: Zhang, Yu, Wang, Gu, "Convergence Theory of Learning Over-parameterized ResNet: A
Full Characterization" (arXiv 1903.07120). Layout and state-dict keys follow
dayu11/tau-ResNet: CIFAR nets use ``conv1``, ``bn1``, ``layer1..3``, ``fc``; the ImageNet
BN nets use exactly torchvision's ResNet keys, so torchvision weights load into them
(with tau = 1 they *are* torchvision's ResNets).

tau defaults to the paper's rule: ``1/sqrt(L)`` on CIFAR with L the total number of
residual blocks (resnet110: L = 54, tau = 0.136), ``2/sqrt(L)`` on ImageNet with L the
largest number of blocks in one stage (resnet101: L = 23, tau = 0.417).

* BN variant: tau is a plain number (:class:`~normresnet_export.nn.scale.Scale`), not in
  the state_dict; checkpoints record it in ``model_kwargs``.
* no-BN variant (``*_nobn``): Fixup-style scalar offsets ``bias1a``... and a *single* tau
  parameter, created on the network and registered in every block, so the state_dict
  holds ``tau`` and ``layerK.B.tau`` for every block, all one tensor. Loading accepts a
  state_dict with only the top-level ``tau`` and refuses one whose tau entries disagree.
"""

from __future__ import annotations

import functools
import math
import re
from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from normresnet_export.errors import InputError
from normresnet_export.models._layers import conv1x1, conv3x3, init_conv_bn, make_head
from normresnet_export.models._registry import register_model
from normresnet_export.models.torch_resnet import make_stages
from normresnet_export.nn.pooling import GlobalAvgPool2d
from normresnet_export.nn.scale import Scale

# --------------------------------------------------------------------------------------------- blocks


class TauBasicBlock(nn.Module):
    """CIFAR block: ``ReLU(tau * BN(conv(ReLU(BN(conv(x))))) + skip)``.

    Where the block halves the resolution, the skip is ``x[:, :, ::2, ::2]`` (an
    ``AvgPool2d(1, 2)``), a BatchNorm over the *input* channels, then zero channels up to
    the output width (keys ``downsample.1.*``).
    """

    def __init__(self, in_channels: int, planes: int, stride: int, *, tau: float) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.scale = Scale(tau)
        if stride != 1:
            if planes != 2 * in_channels:
                raise InputError(
                    f"a tau-ResNet downsampling block doubles the width, got {in_channels} -> {planes}"
                )
            self.downsample: nn.Module = nn.Sequential(
                nn.AvgPool2d(1, stride=stride), nn.BatchNorm2d(in_channels)
            )
        else:
            self.downsample = nn.Identity()
        self.extra_channels = planes - in_channels
        self.out_channels = planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.scale(self.bn2(self.conv2(out)))
        skip = self.downsample(x)
        if self.extra_channels:
            skip = F.pad(skip, (0, 0, 0, 0, 0, self.extra_channels))
        return F.relu(out + skip)


class TauBasicBlockNoBN(nn.Module):
    """CIFAR block without BatchNorm: scalar offsets around each conv, shared tau.

    ``h = conv1(x + b1a); h = ReLU(h + b1b); h = conv2(h + b2a) + b2b; y = ReLU(tau * h + skip)``,
    the skip being the identity or, where the resolution halves, ``x[:, :, ::2, ::2]``
    followed by zero channels.
    """

    def __init__(self, in_channels: int, planes: int, stride: int, *, tau: nn.Parameter) -> None:
        super().__init__()
        self.tau = tau
        for name in ("bias1a", "bias1b", "bias2a", "bias2b"):
            self.register_parameter(name, nn.Parameter(torch.zeros(1)))
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.conv2 = conv3x3(planes, planes)
        self.downsample: nn.Module = nn.AvgPool2d(1, stride=stride) if stride != 1 else nn.Identity()
        self.extra_channels = planes - in_channels
        self.out_channels = planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv1(x + self.bias1a) + self.bias1b)
        out = self.conv2(out + self.bias2a) + self.bias2b
        skip = self.downsample(x)
        if self.extra_channels:
            skip = F.pad(skip, (0, 0, 0, 0, 0, self.extra_channels))
        return F.relu(self.tau * out + skip)


class TauBottleneck(nn.Module):
    """ImageNet block (torchvision's v1.5 bottleneck) with ``tau`` after the last BatchNorm."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int, *, tau: float) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.scale = Scale(tau)
        if stride != 1 or in_channels != out_channels:
            self.downsample: nn.Module = nn.Sequential(
                conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels)
            )
        else:
            self.downsample = nn.Identity()
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.scale(self.bn3(self.conv3(out)))
        return F.relu(out + self.downsample(x))


class TauBottleneckNoBN(nn.Module):
    """ImageNet bottleneck without BatchNorm: six scalar offsets, shared tau, bias-free projection skip."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int, *, tau: nn.Parameter) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.tau = tau
        for name in ("bias1a", "bias1b", "bias2a", "bias2b", "bias3a", "bias3b"):
            self.register_parameter(name, nn.Parameter(torch.zeros(1)))
        self.conv1 = conv1x1(in_channels, planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.conv3 = conv1x1(planes, out_channels)
        if stride != 1 or in_channels != out_channels:
            self.downsample: nn.Module = nn.Sequential(conv1x1(in_channels, out_channels, stride))
        else:
            self.downsample = nn.Identity()
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv1(x + self.bias1a) + self.bias1b)
        out = F.relu(self.conv2(out + self.bias2a) + self.bias2b)
        out = self.conv3(out + self.bias3a) + self.bias3b
        return F.relu(self.tau * out + self.downsample(x))


# --------------------------------------------------------------------------------------------- networks


class TauResNet(nn.Sequential):
    """A tau-ResNet, CIFAR or ImageNet design, with or without BatchNorm.

    The network is a chain (stem, stages, pool, classifier), so it is an ``nn.Sequential``
    whose children carry the reference names (``conv1``, ``bn1``, ``layer1``…, ``fc``);
    modules a variant lacks (``bn1`` without BatchNorm, ``maxpool`` on CIFAR) are absent.

    Args:
        blocks_per_stage: Blocks in each stage (3 stages on CIFAR, 4 on ImageNet).
        tau: Residual scale.
        num_classes: Classifier size (0: return pooled features).
        imagenet: ImageNet design (7×7/2 stem, max-pool, bottlenecks) instead of CIFAR
            (3×3 stem, basic blocks, widths 16/32/64).
        batch_norm: With BatchNorm (tau a constant) or without (offsets, tau a parameter).
    """

    def __init__(
        self,
        blocks_per_stage: tuple[int, ...],
        *,
        tau: float,
        num_classes: int,
        imagenet: bool,
        batch_norm: bool,
    ) -> None:
        if not isinstance(tau, (int, float)) or isinstance(tau, bool) or not math.isfinite(tau) or tau <= 0:
            raise InputError(f"tau must be a positive number, got {tau!r}")
        # Without BatchNorm, one tau parameter lives on the network and in every block (reference layout).
        shared_tau = None if batch_norm else nn.Parameter(torch.tensor([float(tau)]))
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if imagenet:
            layers["conv1"] = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
            block: Any = TauBottleneck if batch_norm else TauBottleneckNoBN
            stem_width, widths, strides = 64, (64, 128, 256, 512), (1, 2, 2, 2)
        else:
            layers["conv1"] = conv3x3(3, 16)
            block = TauBasicBlock if batch_norm else TauBasicBlockNoBN
            stem_width, widths, strides = 16, (16, 32, 64), (1, 2, 2)
        if batch_norm:
            layers["bn1"] = nn.BatchNorm2d(stem_width)
        layers["relu"] = nn.ReLU()
        if imagenet:
            layers["maxpool"] = nn.MaxPool2d(3, stride=2, padding=1)
        stages, out_channels = make_stages(
            stem_width,
            blocks_per_stage,
            widths,
            strides,
            functools.partial(block, tau=float(tau) if batch_norm else shared_tau),
        )
        for index, stage in enumerate(stages, start=1):
            layers[f"layer{index}"] = stage
        layers["avgpool"] = GlobalAvgPool2d()
        layers["fc"] = make_head(out_channels, num_classes)
        super().__init__(layers)
        if shared_tau is not None:
            self.tau = shared_tau
            self.register_load_state_dict_pre_hook(_reconcile_shared_tau)
        init_conv_bn(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before the classifier."""
        for module in list(self)[:-1]:
            x = module(x)
        return x


def _reconcile_shared_tau(model: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Load-time hook: fill every ``…tau`` key of the no-BN model from the ones given, if they agree.

    The reference stores the one shared tau under the top-level key and once per block.
    A strict load would call a file with only the top-level key incomplete, and a file
    whose copies disagree would load whichever came last. Both are resolved here.
    ``args`` are the rest of PyTorch's pre-hook arguments; the last one collects errors.
    """
    error_msgs: list[str] = args[-1]
    pattern = re.compile(re.escape(prefix) + r"(layer\d+\.\d+\.)?tau")
    given = {k: v for k, v in state_dict.items() if pattern.fullmatch(k)}
    if not given:
        return
    first_key, first = next(iter(given.items()))
    for key, value in given.items():
        if value.shape != first.shape or not torch.equal(value, first):
            error_msgs.append(
                f"tau: the shared tau must have one value, but {first_key}={first.flatten().tolist()} "
                f"and {key}={value.flatten().tolist()}"
            )
            return
    for name, _ in model.named_parameters(remove_duplicate=False):
        if name == "tau" or name.endswith(".tau"):
            state_dict.setdefault(prefix + name, first)


# --------------------------------------------------------------------------------------------- builders


def default_tau(blocks_per_stage: tuple[int, ...], *, imagenet: bool) -> float:
    """The paper's tau: ``1/sqrt(sum of blocks)`` on CIFAR, ``2/sqrt(max blocks per stage)`` on ImageNet.

    Every registered builder's ``tau`` default is this rule, written out in its signature
    (``tau_resnet110``: ``1 / math.sqrt(54)``); use it for a depth of your own.
    """
    if imagenet:
        return 2.0 / math.sqrt(max(blocks_per_stage))
    return 1.0 / math.sqrt(sum(blocks_per_stage))


# One builder per depth, with BatchNorm and without (``_nobn``): CIFAR 6n + 2, then the ImageNet ones.


@register_model(family="tau-resnet", dataset="cifar")
def tau_resnet20(*, num_classes: int = 10, tau: float = 1 / math.sqrt(9)) -> TauResNet:
    """tau-ResNet-20 with BatchNorm, cifar, blocks 3-3-3, default tau 0.333.

    The tau-ResNet of Zhang et al., "Convergence Theory of Learning Over-parameterized ResNet: A
    Full Characterization" (arXiv 1903.07120), with BatchNorm, for 32×32 CIFAR images: a
    post-activation ResNet-20 (a 3×3 stem, then three stages of 3 basic blocks at widths 16, 32 and
    64) whose residual branches are scaled by the constant ``tau``. The default is the paper's
    1/sqrt(L) for L = 9 residual blocks.
    """
    return TauResNet((3, 3, 3), tau=tau, num_classes=num_classes, imagenet=False, batch_norm=True)


@register_model(family="tau-resnet", dataset="cifar")
def tau_resnet20_nobn(*, num_classes: int = 10, tau: float = 1 / math.sqrt(9)) -> TauResNet:
    """tau-ResNet-20 without BatchNorm, cifar, blocks 3-3-3, default tau 0.333.

    The tau-ResNet of Zhang et al., "Convergence Theory of Learning Over-parameterized ResNet: A
    Full Characterization" (arXiv 1903.07120), without BatchNorm, for 32×32 CIFAR images: a
    post-activation ResNet-20 (a 3×3 stem, then three stages of 3 basic blocks at widths 16, 32 and
    64) with scalar offsets around every convolution instead of BatchNorm, and one learnable
    ``tau``, shared by every block, scaling the residual branches. It starts at the paper's
    1/sqrt(L) for L = 9 residual blocks.
    """
    return TauResNet((3, 3, 3), tau=tau, num_classes=num_classes, imagenet=False, batch_norm=False)


@register_model(family="tau-resnet", dataset="cifar")
def tau_resnet32(*, num_classes: int = 10, tau: float = 1 / math.sqrt(15)) -> TauResNet:
    """tau-ResNet-32 with BatchNorm, cifar, blocks 5-5-5, default tau 0.258.

    The tau-ResNet of Zhang et al., "Convergence Theory of Learning Over-parameterized ResNet: A
    Full Characterization" (arXiv 1903.07120), with BatchNorm, for 32×32 CIFAR images: a
    post-activation ResNet-32 (a 3×3 stem, then three stages of 5 basic blocks at widths 16, 32 and
    64) whose residual branches are scaled by the constant ``tau``. The default is the paper's
    1/sqrt(L) for L = 15 residual blocks.
    """
    return TauResNet((5, 5, 5), tau=tau, num_classes=num_classes, imagenet=False, batch_norm=True)


@register_model(family="tau-resnet", dataset="cifar")
def tau_resnet32_nobn(*, num_classes: int = 10, tau: float = 1 / math.sqrt(15)) -> TauResNet:
    """tau-ResNet-32 without BatchNorm, cifar, blocks 5-5-5, default tau 0.258.

    The tau-ResNet of Zhang et al., "Convergence Theory of Learning Over-parameterized ResNet: A
    Full Characterization" (arXiv 1903.07120), without BatchNorm, for 32×32 CIFAR images: a
    post-activation ResNet-32 (a 3×3 stem, then three stages of 5 basic blocks at widths 16, 32 and
    64) with scalar offsets around every convolution instead of BatchNorm, and one learnable
    ``tau``, shared by every block, scaling the residual branches. It starts at the paper's
    1/sqrt(L) for L = 15 residual blocks.
    """
    return TauResNet((5, 5, 5), tau=tau, num_classes=num_classes, imagenet=False, batch_norm=False)


@register_model(family="tau-resnet", dataset="cifar")
def tau_resnet44(*, num_classes: int = 10, tau: float = 1 / math.sqrt(21)) -> TauResNet:
    """tau-ResNet-44 with BatchNorm, cifar, blocks 7-7-7, default tau 0.218.

    The tau-ResNet of Zhang et al., "Convergence Theory of Learning Over-parameterized ResNet: A
    Full Characterization" (arXiv 1903.07120), with BatchNorm, for 32×32 CIFAR images: a
    post-activation ResNet-44 (a 3×3 stem, then three stages of 7 basic blocks at widths 16, 32 and
    64) whose residual branches are scaled by the constant ``tau``. The default is the paper's
    1/sqrt(L) for L = 21 residual blocks.
    """
    return TauResNet((7, 7, 7), tau=tau, num_classes=num_classes, imagenet=False, batch_norm=True)


@register_model(family="tau-resnet", dataset="cifar")
def tau_resnet44_nobn(*, num_classes: int = 10, tau: float = 1 / math.sqrt(21)) -> TauResNet:
    """tau-ResNet-44 without BatchNorm, cifar, blocks 7-7-7, default tau 0.218.

    The tau-ResNet of Zhang et al., "Convergence Theory of Learning Over-parameterized ResNet: A
    Full Characterization" (arXiv 1903.07120), without BatchNorm, for 32×32 CIFAR images: a
    post-activation ResNet-44 (a 3×3 stem, then three stages of 7 basic blocks at widths 16, 32 and
    64) with scalar offsets around every convolution instead of BatchNorm, and one learnable
    ``tau``, shared by every block, scaling the residual branches. It starts at the paper's
    1/sqrt(L) for L = 21 residual blocks.
    """
    return TauResNet((7, 7, 7), tau=tau, num_classes=num_classes, imagenet=False, batch_norm=False)


@register_model(family="tau-resnet", dataset="cifar")
def tau_resnet56(*, num_classes: int = 10, tau: float = 1 / math.sqrt(27)) -> TauResNet:
    """tau-ResNet-56 with BatchNorm, cifar, blocks 9-9-9, default tau 0.192.

    The tau-ResNet of Zhang et al., "Convergence Theory of Learning Over-parameterized ResNet: A
    Full Characterization" (arXiv 1903.07120), with BatchNorm, for 32×32 CIFAR images: a
    post-activation ResNet-56 (a 3×3 stem, then three stages of 9 basic blocks at widths 16, 32 and
    64) whose residual branches are scaled by the constant ``tau``. The default is the paper's
    1/sqrt(L) for L = 27 residual blocks.
    """
    return TauResNet((9, 9, 9), tau=tau, num_classes=num_classes, imagenet=False, batch_norm=True)


@register_model(family="tau-resnet", dataset="cifar")
def tau_resnet56_nobn(*, num_classes: int = 10, tau: float = 1 / math.sqrt(27)) -> TauResNet:
    """tau-ResNet-56 without BatchNorm, cifar, blocks 9-9-9, default tau 0.192.

    The tau-ResNet of Zhang et al., "Convergence Theory of Learning Over-parameterized ResNet: A
    Full Characterization" (arXiv 1903.07120), without BatchNorm, for 32×32 CIFAR images: a
    post-activation ResNet-56 (a 3×3 stem, then three stages of 9 basic blocks at widths 16, 32 and
    64) with scalar offsets around every convolution instead of BatchNorm, and one learnable
    ``tau``, shared by every block, scaling the residual branches. It starts at the paper's
    1/sqrt(L) for L = 27 residual blocks.
    """
    return TauResNet((9, 9, 9), tau=tau, num_classes=num_classes, imagenet=False, batch_norm=False)


@register_model(family="tau-resnet", dataset="cifar")
def tau_resnet110(*, num_classes: int = 10, tau: float = 1 / math.sqrt(54)) -> TauResNet:
    """tau-ResNet-110 with BatchNorm, cifar, blocks 18-18-18, default tau 0.136.

    The tau-ResNet of Zhang et al., "Convergence Theory of Learning Over-parameterized ResNet: A
    Full Characterization" (arXiv 1903.07120), with BatchNorm, for 32×32 CIFAR images: a
    post-activation ResNet-110 (a 3×3 stem, then three stages of 18 basic blocks at widths 16, 32
    and 64) whose residual branches are scaled by the constant ``tau``. The default is the paper's
    1/sqrt(L) for L = 54 residual blocks.
    """
    return TauResNet((18, 18, 18), tau=tau, num_classes=num_classes, imagenet=False, batch_norm=True)


@register_model(family="tau-resnet", dataset="cifar")
def tau_resnet110_nobn(*, num_classes: int = 10, tau: float = 1 / math.sqrt(54)) -> TauResNet:
    """tau-ResNet-110 without BatchNorm, cifar, blocks 18-18-18, default tau 0.136.

    The tau-ResNet of Zhang et al., "Convergence Theory of Learning Over-parameterized ResNet: A
    Full Characterization" (arXiv 1903.07120), without BatchNorm, for 32×32 CIFAR images: a
    post-activation ResNet-110 (a 3×3 stem, then three stages of 18 basic blocks at widths 16, 32
    and 64) with scalar offsets around every convolution instead of BatchNorm, and one learnable
    ``tau``, shared by every block, scaling the residual branches. It starts at the paper's
    1/sqrt(L) for L = 54 residual blocks.
    """
    return TauResNet((18, 18, 18), tau=tau, num_classes=num_classes, imagenet=False, batch_norm=False)


@register_model(family="tau-resnet", dataset="cifar")
def tau_resnet1202(*, num_classes: int = 10, tau: float = 1 / math.sqrt(600)) -> TauResNet:
    """tau-ResNet-1202 with BatchNorm, cifar, blocks 200-200-200, default tau 0.041.

    The tau-ResNet of Zhang et al., "Convergence Theory of Learning Over-parameterized ResNet: A
    Full Characterization" (arXiv 1903.07120), with BatchNorm, for 32×32 CIFAR images: a
    post-activation ResNet-1202 (a 3×3 stem, then three stages of 200 basic blocks at widths 16, 32
    and 64) whose residual branches are scaled by the constant ``tau``. The default is the paper's
    1/sqrt(L) for L = 600 residual blocks.
    """
    return TauResNet((200, 200, 200), tau=tau, num_classes=num_classes, imagenet=False, batch_norm=True)


@register_model(family="tau-resnet", dataset="cifar")
def tau_resnet1202_nobn(*, num_classes: int = 10, tau: float = 1 / math.sqrt(600)) -> TauResNet:
    """tau-ResNet-1202 without BatchNorm, cifar, blocks 200-200-200, default tau 0.041.

    The tau-ResNet of Zhang et al., "Convergence Theory of Learning Over-parameterized ResNet: A
    Full Characterization" (arXiv 1903.07120), without BatchNorm, for 32×32 CIFAR images: a
    post-activation ResNet-1202 (a 3×3 stem, then three stages of 200 basic blocks at widths 16, 32
    and 64) with scalar offsets around every convolution instead of BatchNorm, and one learnable
    ``tau``, shared by every block, scaling the residual branches. It starts at the paper's
    1/sqrt(L) for L = 600 residual blocks.
    """
    return TauResNet((200, 200, 200), tau=tau, num_classes=num_classes, imagenet=False, batch_norm=False)


@register_model(family="tau-resnet", dataset="imagenet")
def tau_resnet50(*, num_classes: int = 1000, tau: float = 2 / math.sqrt(6)) -> TauResNet:
    """tau-ResNet-50 with BatchNorm, imagenet, blocks 3-4-6-3, default tau 0.816.

    The tau-ResNet of Zhang et al., "Convergence Theory of Learning Over-parameterized ResNet: A
    Full Characterization" (arXiv 1903.07120), with BatchNorm, for 224×224 ImageNet images:
    torchvision's ResNet-50 (four stages of 3, 4, 6 and 3 bottleneck blocks, with its state-dict
    keys) whose residual branches are scaled by the constant ``tau``; with tau = 1 it is that
    ResNet. The default is the paper's 2/sqrt(L) for L = 6 blocks in the longest stage.
    """
    return TauResNet((3, 4, 6, 3), tau=tau, num_classes=num_classes, imagenet=True, batch_norm=True)


@register_model(family="tau-resnet", dataset="imagenet")
def tau_resnet50_nobn(*, num_classes: int = 1000, tau: float = 2 / math.sqrt(6)) -> TauResNet:
    """tau-ResNet-50 without BatchNorm, imagenet, blocks 3-4-6-3, default tau 0.816.

    The tau-ResNet of Zhang et al., "Convergence Theory of Learning Over-parameterized ResNet: A
    Full Characterization" (arXiv 1903.07120), without BatchNorm, for 224×224 ImageNet images: the
    layout of torchvision's ResNet-50 (four stages of 3, 4, 6 and 3 bottleneck blocks) with scalar
    offsets around every convolution instead of BatchNorm, and one learnable ``tau``, shared by
    every block, scaling the residual branches. It starts at the paper's 2/sqrt(L) for L = 6 blocks
    in the longest stage.
    """
    return TauResNet((3, 4, 6, 3), tau=tau, num_classes=num_classes, imagenet=True, batch_norm=False)


@register_model(family="tau-resnet", dataset="imagenet")
def tau_resnet101(*, num_classes: int = 1000, tau: float = 2 / math.sqrt(23)) -> TauResNet:
    """tau-ResNet-101 with BatchNorm, imagenet, blocks 3-4-23-3, default tau 0.417.

    The tau-ResNet of Zhang et al., "Convergence Theory of Learning Over-parameterized ResNet: A
    Full Characterization" (arXiv 1903.07120), with BatchNorm, for 224×224 ImageNet images:
    torchvision's ResNet-101 (four stages of 3, 4, 23 and 3 bottleneck blocks, with its state-dict
    keys) whose residual branches are scaled by the constant ``tau``; with tau = 1 it is that
    ResNet. The default is the paper's 2/sqrt(L) for L = 23 blocks in the longest stage.
    """
    return TauResNet((3, 4, 23, 3), tau=tau, num_classes=num_classes, imagenet=True, batch_norm=True)


@register_model(family="tau-resnet", dataset="imagenet")
def tau_resnet101_nobn(*, num_classes: int = 1000, tau: float = 2 / math.sqrt(23)) -> TauResNet:
    """tau-ResNet-101 without BatchNorm, imagenet, blocks 3-4-23-3, default tau 0.417.

    The tau-ResNet of Zhang et al., "Convergence Theory of Learning Over-parameterized ResNet: A
    Full Characterization" (arXiv 1903.07120), without BatchNorm, for 224×224 ImageNet images: the
    layout of torchvision's ResNet-101 (four stages of 3, 4, 23 and 3 bottleneck blocks) with scalar
    offsets around every convolution instead of BatchNorm, and one learnable ``tau``, shared by
    every block, scaling the residual branches. It starts at the paper's 2/sqrt(L) for L = 23 blocks
    in the longest stage.
    """
    return TauResNet((3, 4, 23, 3), tau=tau, num_classes=num_classes, imagenet=True, batch_norm=False)


@register_model(family="tau-resnet", dataset="imagenet")
def tau_resnet152(*, num_classes: int = 1000, tau: float = 2 / math.sqrt(36)) -> TauResNet:
    """tau-ResNet-152 with BatchNorm, imagenet, blocks 3-8-36-3, default tau 0.333.

    The tau-ResNet of Zhang et al., "Convergence Theory of Learning Over-parameterized ResNet: A
    Full Characterization" (arXiv 1903.07120), with BatchNorm, for 224×224 ImageNet images:
    torchvision's ResNet-152 (four stages of 3, 8, 36 and 3 bottleneck blocks, with its state-dict
    keys) whose residual branches are scaled by the constant ``tau``; with tau = 1 it is that
    ResNet. The default is the paper's 2/sqrt(L) for L = 36 blocks in the longest stage.
    """
    return TauResNet((3, 8, 36, 3), tau=tau, num_classes=num_classes, imagenet=True, batch_norm=True)


@register_model(family="tau-resnet", dataset="imagenet")
def tau_resnet152_nobn(*, num_classes: int = 1000, tau: float = 2 / math.sqrt(36)) -> TauResNet:
    """tau-ResNet-152 without BatchNorm, imagenet, blocks 3-8-36-3, default tau 0.333.

    The tau-ResNet of Zhang et al., "Convergence Theory of Learning Over-parameterized ResNet: A
    Full Characterization" (arXiv 1903.07120), without BatchNorm, for 224×224 ImageNet images: the
    layout of torchvision's ResNet-152 (four stages of 3, 8, 36 and 3 bottleneck blocks) with scalar
    offsets around every convolution instead of BatchNorm, and one learnable ``tau``, shared by
    every block, scaling the residual branches. It starts at the paper's 2/sqrt(L) for L = 36 blocks
    in the longest stage.
    """
    return TauResNet((3, 8, 36, 3), tau=tau, num_classes=num_classes, imagenet=True, batch_norm=False)
