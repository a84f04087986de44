"""LeNo-ResNet: norm-preserving downsampling and start / middle / end blocks (ImageNet).

Paper: Mahaur, Mishra, Singh, "Improved Residual Network Based on Norm-Preservation for
Visual Recognition" (Neural Networks 2022). Layout and state-dict keys follow
bharatmahaur/LeNo.

A stage of N blocks (N >= 3) is: a start block that downsamples (stride 2 in the branch,
max-pool + 1×1 conv + BN on the skip, no ReLU after the sum); a *first middle block*;
middle blocks that normalise their input with ``bn0``; and an end block that adds a BN +
ReLU after the sum. Every stage has stride 2, including the first (there is no stem
max-pool), and the stem is two 3×3 convs *without* anything between them (a linear
factorisation of a 5×5/2 conv, kept as two layers for checkpoint compatibility).

**The first middle block's in-place ReLU.** The reference applies ``ReLU(inplace=True)``
to the block input and then adds "the input" as the skip; because the skip is the same
tensor, it is rectified too. Trained checkpoints depend on that, so
:class:`LeNoFirstMiddleBlock` computes it explicitly, ``z = ReLU(x); y = branch(z) + z``,
without relying on aliasing (which exporters and graph passes need not preserve).

The repository's two baselines: its ``resnet`` is torchvision's ResNet v1.5, structurally
identical to this project's ``resnet50``/``101``/``152``/``200`` (torch-resnet family), so
it maps onto those. Its ``preactresnet`` differs from every registered model (a stem conv
with bias, a BatchNorm inside the projection shortcut) and is registered as
``leno_baseline_preactresnet{50,101,152,200}``; its shortcut, named ``downsample`` in the
reference, is called ``shortcut`` here as in the other pre-activation models.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from normresnet_export.errors import InputError
from normresnet_export.models._layers import conv1x1, conv3x3, init_conv_bn, make_head
from normresnet_export.models._registry import register_model
from normresnet_export.models.torch_resnet import PreActBottleneck, make_stages
from normresnet_export.nn.pooling import GlobalAvgPool2d
from normresnet_export.nn.shortcuts import IdentityShortcut

_PLANES = (64, 128, 256, 512)

# --------------------------------------------------------------------------------------------- blocks


class _LeNoBottleneck(nn.Module):
    """The bottleneck branch shared by all four roles: ``conv3(ReLU(bn2(conv2(ReLU(bn1(conv1(x)))))))``."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, *, input_norm: bool = False) -> None:
        super().__init__()
        if input_norm:
            self.bn0 = nn.BatchNorm2d(in_channels)  # registered first: reference state-dict order
        self.conv1 = conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.out_channels = planes * self.expansion

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return self.conv3(out)


class LeNoStartBlock(_LeNoBottleneck):
    """Downsampling block: ``bn3(branch(x)) + bn(conv1×1(maxpool3/2(x)))``, no ReLU after the sum."""

    def __init__(self, in_channels: int, planes: int) -> None:
        super().__init__(in_channels, planes, stride=2)
        out_channels = planes * self.expansion
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = nn.Sequential(
            nn.MaxPool2d(3, stride=2, padding=1),
            conv1x1(in_channels, out_channels),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn3(self.branch(x)) + self.downsample(x)


class LeNoFirstMiddleBlock(_LeNoBottleneck):
    """First block after the start block: ``z = ReLU(x); branch(z) + z`` (the reference's in-place ReLU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.relu(x)
        return self.branch(z) + z


class LeNoMiddleBlock(_LeNoBottleneck):
    """Middle block: ``branch(ReLU(bn0(x))) + x``."""

    def __init__(self, in_channels: int, planes: int) -> None:
        super().__init__(in_channels, planes, input_norm=True)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch(F.relu(self.bn0(x))) + x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x)


class LeNoEndBlock(LeNoMiddleBlock):
    """End block: a middle block followed by ``ReLU(bn3(·))`` after the sum."""

    def __init__(self, in_channels: int, planes: int) -> None:
        super().__init__(in_channels, planes)
        self.bn3 = nn.BatchNorm2d(self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn3(self.residual(x)))


def _leno_stage(in_channels: int, planes: int, num_blocks: int) -> nn.Sequential:
    """start, first middle, middle × (N - 3), end."""
    if num_blocks < 3:
        raise InputError(f"a LeNo stage needs at least 3 blocks (start, middle, end), got {num_blocks}")
    out_channels = planes * _LeNoBottleneck.expansion
    blocks: list[nn.Module] = [
        LeNoStartBlock(in_channels, planes),
        LeNoFirstMiddleBlock(out_channels, planes),
    ]
    blocks += [LeNoMiddleBlock(out_channels, planes) for _ in range(num_blocks - 3)]
    blocks.append(LeNoEndBlock(out_channels, planes))
    return nn.Sequential(*blocks)


# --------------------------------------------------------------------------------------------- networks


class LeNoResNet(nn.Module):
    """LeNo-ResNet: ``conv1_1`` → ``conv1_2`` (3×3/2) → ``bn1`` → ReLU → 4 stride-2 stages → pool → ``fc``."""

    def __init__(self, blocks_per_stage: tuple[int, ...], *, num_classes: int) -> None:
        super().__init__()
        self.conv1_1 = conv3x3(3, 64)
        self.conv1_2 = conv3x3(64, 64, stride=2)
        self.bn1 = nn.BatchNorm2d(64)
        in_channels = 64
        for index, (planes, num_blocks) in enumerate(zip(_PLANES, blocks_per_stage, strict=True), start=1):
            self.add_module(f"layer{index}", _leno_stage(in_channels, planes, num_blocks))
            in_channels = planes * _LeNoBottleneck.expansion
        self.avgpool = GlobalAvgPool2d()
        self.fc = make_head(in_channels, num_classes)
        init_conv_bn(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before the classifier."""
        x = F.relu(self.bn1(self.conv1_2(self.conv1_1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


def _preact_baseline_block(in_channels: int, planes: int, stride: int) -> PreActBottleneck:
    """The baseline's bottleneck: where the shape changes, a conv + BN projection fed with the activation."""
    out_channels = planes * PreActBottleneck.expansion
    if stride != 1 or in_channels != out_channels:
        shortcut = nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))
        return PreActBottleneck(in_channels, planes, stride, shortcut=shortcut, shortcut_on_activation=True)
    return PreActBottleneck(
        in_channels,
        planes,
        stride,
        shortcut=IdentityShortcut(in_channels, out_channels),
        shortcut_on_activation=False,
    )


class LeNoPreActBaseline(nn.Module):
    """LeNo's pre-activation baseline: biased 7×7/2 stem conv, max-pool, stages, ``bn`` → ReLU → ``fc``."""

    def __init__(self, blocks_per_stage: tuple[int, ...], *, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages, out_channels = make_stages(
            64, blocks_per_stage, _PLANES, (1, 2, 2, 2), _preact_baseline_block
        )
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn = nn.BatchNorm2d(out_channels)
        self.avgpool = GlobalAvgPool2d()
        self.fc = make_head(out_channels, num_classes)
        init_conv_bn(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before the classifier."""
        x = self.maxpool(self.conv1(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(F.relu(self.bn(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


# --------------------------------------------------------------------------------------------- builders

# One LeNo-ResNet per depth (3 × blocks + 2), each up to 200 followed by the repository's
# pre-activation baseline of the same layout.


@register_model(family="leno", dataset="imagenet")
def lenoresnet50(*, num_classes: int = 1000) -> LeNoResNet:
    """LeNo-ResNet-50, ImageNet, blocks 3-4-6-3.

    The LeNo-ResNet of Mahaur et al., "Improved Residual Network Based on Norm-Preservation for
    Visual Recognition" (Neural Networks 2022), for 224×224 ImageNet images: a stem of two 3×3
    convolutions (the second with stride 2), then four stride-2 stages of 3, 4, 6 and 3 bottlenecks
    (inner widths 64 to 512, outputs 256 to 2048), each stage a start block with norm-preserving
    max-pool downsampling, middle blocks and an end block; depth 50 = 3 × blocks + 2.
    """
    return LeNoResNet((3, 4, 6, 3), num_classes=num_classes)


@register_model(family="leno", dataset="imagenet")
def leno_baseline_preactresnet50(*, num_classes: int = 1000) -> LeNoPreActBaseline:
    """pre-activation ResNet-50 baseline of LeNo (biased stem, BN in shortcut).

    The pre-activation ResNet-50 baseline of the LeNo repository (Mahaur et al., "Improved Residual
    Network Based on Norm-Preservation for Visual Recognition" (Neural Networks 2022)), for 224×224
    ImageNet images: a 7×7/2 stem convolution with bias and a 3×3/2 max-pool, then four stages of 3,
    4, 6 and 3 pre-activation bottlenecks whose projection shortcuts are a 1×1 convolution and a
    BatchNorm, fed with the activated input.
    """
    return LeNoPreActBaseline((3, 4, 6, 3), num_classes=num_classes)


@register_model(family="leno", dataset="imagenet")
def lenoresnet101(*, num_classes: int = 1000) -> LeNoResNet:
    """LeNo-ResNet-101, ImageNet, blocks 3-4-23-3.

    The LeNo-ResNet of Mahaur et al., "Improved Residual Network Based on Norm-Preservation for
    Visual Recognition" (Neural Networks 2022), for 224×224 ImageNet images: a stem of two 3×3
    convolutions (the second with stride 2), then four stride-2 stages of 3, 4, 23 and 3 bottlenecks
    (inner widths 64 to 512, outputs 256 to 2048), each stage a start block with norm-preserving
    max-pool downsampling, middle blocks and an end block; depth 101 = 3 × blocks + 2.
    """
    return LeNoResNet((3, 4, 23, 3), num_classes=num_classes)


@register_model(family="leno", dataset="imagenet")
def leno_baseline_preactresnet101(*, num_classes: int = 1000) -> LeNoPreActBaseline:
    """pre-activation ResNet-101 baseline of LeNo (biased stem, BN in shortcut).

    The pre-activation ResNet-101 baseline of the LeNo repository (Mahaur et al., "Improved Residual
    Network Based on Norm-Preservation for Visual Recognition" (Neural Networks 2022)), for 224×224
    ImageNet images: a 7×7/2 stem convolution with bias and a 3×3/2 max-pool, then four stages of 3,
    4, 23 and 3 pre-activation bottlenecks whose projection shortcuts are a 1×1 convolution and a
    BatchNorm, fed with the activated input.
    """
    return LeNoPreActBaseline((3, 4, 23, 3), num_classes=num_classes)


@register_model(family="leno", dataset="imagenet")
def lenoresnet152(*, num_classes: int = 1000) -> LeNoResNet:
    """LeNo-ResNet-152, ImageNet, blocks 3-8-36-3.

    The LeNo-ResNet of Mahaur et al., "Improved Residual Network Based on Norm-Preservation for
    Visual Recognition" (Neural Networks 2022), for 224×224 ImageNet images: a stem of two 3×3
    convolutions (the second with stride 2), then four stride-2 stages of 3, 8, 36 and 3 bottlenecks
    (inner widths 64 to 512, outputs 256 to 2048), each stage a start block with norm-preserving
    max-pool downsampling, middle blocks and an end block; depth 152 = 3 × blocks + 2.
    """
    return LeNoResNet((3, 8, 36, 3), num_classes=num_classes)


@register_model(family="leno", dataset="imagenet")
def leno_baseline_preactresnet152(*, num_classes: int = 1000) -> LeNoPreActBaseline:
    """pre-activation ResNet-152 baseline of LeNo (biased stem, BN in shortcut).

    The pre-activation ResNet-152 baseline of the LeNo repository (Mahaur et al., "Improved Residual
    Network Based on Norm-Preservation for Visual Recognition" (Neural Networks 2022)), for 224×224
    ImageNet images: a 7×7/2 stem convolution with bias and a 3×3/2 max-pool, then four stages of 3,
    8, 36 and 3 pre-activation bottlenecks whose projection shortcuts are a 1×1 convolution and a
    BatchNorm, fed with the activated input.
    """
    return LeNoPreActBaseline((3, 8, 36, 3), num_classes=num_classes)


@register_model(family="leno", dataset="imagenet")
def lenoresnet200(*, num_classes: int = 1000) -> LeNoResNet:
    """LeNo-ResNet-200, ImageNet, blocks 3-24-36-3.

    The LeNo-ResNet of Mahaur et al., "Improved Residual Network Based on Norm-Preservation for
    Visual Recognition" (Neural Networks 2022), for 224×224 ImageNet images: a stem of two 3×3
    convolutions (the second with stride 2), then four stride-2 stages of 3, 24, 36 and 3
    bottlenecks (inner widths 64 to 512, outputs 256 to 2048), each stage a start block with
    norm-preserving max-pool downsampling, middle blocks and an end block; depth 200 = 3 × blocks +
    2.
    """
    return LeNoResNet((3, 24, 36, 3), num_classes=num_classes)


@register_model(family="leno", dataset="imagenet")
def leno_baseline_preactresnet200(*, num_classes: int = 1000) -> LeNoPreActBaseline:
    """pre-activation ResNet-200 baseline of LeNo (biased stem, BN in shortcut).

    The pre-activation ResNet-200 baseline of the LeNo repository (Mahaur et al., "Improved Residual
    Network Based on Norm-Preservation for Visual Recognition" (Neural Networks 2022)), for 224×224
    ImageNet images: a 7×7/2 stem convolution with bias and a 3×3/2 max-pool, then four stages of 3,
    24, 36 and 3 pre-activation bottlenecks whose projection shortcuts are a 1×1 convolution and a
    BatchNorm, fed with the activated input.
    """
    return LeNoPreActBaseline((3, 24, 36, 3), num_classes=num_classes)


@register_model(family="leno", dataset="imagenet")
def lenoresnet401(*, num_classes: int = 1000) -> LeNoResNet:
    """LeNo-ResNet-401, ImageNet, blocks 4-45-80-4.

    The LeNo-ResNet of Mahaur et al., "Improved Residual Network Based on Norm-Preservation for
    Visual Recognition" (Neural Networks 2022), for 224×224 ImageNet images: a stem of two 3×3
    convolutions (the second with stride 2), then four stride-2 stages of 4, 45, 80 and 4
    bottlenecks (inner widths 64 to 512, outputs 256 to 2048), each stage a start block with
    norm-preserving max-pool downsampling, middle blocks and an end block; depth 401 = 3 × blocks +
    2.
    """
    return LeNoResNet((4, 45, 80, 4), num_classes=num_classes)


@register_model(family="leno", dataset="imagenet")
def lenoresnet500(*, num_classes: int = 1000) -> LeNoResNet:
    """LeNo-ResNet-500, ImageNet, blocks 4-56-102-4.

    The LeNo-ResNet of Mahaur et al., "Improved Residual Network Based on Norm-Preservation for
    Visual Recognition" (Neural Networks 2022), for 224×224 ImageNet images: a stem of two 3×3
    convolutions (the second with stride 2), then four stride-2 stages of 4, 56, 102 and 4
    bottlenecks (inner widths 64 to 512, outputs 256 to 2048), each stage a start block with
    norm-preserving max-pool downsampling, middle blocks and an end block; depth 500 = 3 × blocks +
    2.
    """
    return LeNoResNet((4, 56, 102, 4), num_classes=num_classes)
