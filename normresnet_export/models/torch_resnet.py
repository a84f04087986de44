"""The unified ResNets of torch-resnet: post-activation, pre-activation and wide, for CIFAR and ImageNet.

Papers: He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016) and
"Identity Mappings in Deep Residual Networks" (ECCV 2016); Zagoruyko & Komodakis, "Wide
Residual Networks" (BMVC 2016). Layout and state-dict keys follow raphaelreme/torch-resnet
0.0.4 (``init_layer``, ``layers.<stage>.<block>``, ``shortcut``, ``norm``, ``head``) so its
checkpoints map one to one.

Every network is described by a :class:`ResNetSpec`. The builders at the bottom, one
registered function per name the papers use (``resnet56``, ``preact_resnet164``,
``wide_resnet28_10``…), all delegate to :func:`_resnet` and take the same keywords:
``num_classes``, ``shortcut`` (``"A"|"B"|"C"|"conv"``, see
:mod:`normresnet_export.nn.shortcuts`), ``drop_rate`` and ``zero_init_residual``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from normresnet_export.errors import InputError
from normresnet_export.models._layers import conv1x1, conv3x3, init_conv_bn, make_head
from normresnet_export.models._registry import register_model
from normresnet_export.nn.pooling import GlobalAvgPool2d
from normresnet_export.nn.shortcuts import ShortcutOption, make_shortcut

BlockKind = Literal["basic", "bottleneck"]


@dataclass(frozen=True)
class ResNetSpec:
    """Shape of a (pre-activation) ResNet.

    Attributes:
        block: ``"basic"`` (two 3×3 convs) or ``"bottleneck"`` (1×1, 3×3, 1×1; expansion 4).
        blocks_per_stage: Number of blocks in each stage; stage 0 has stride 1, later stages 2.
        stage_widths: Base width ("planes") of each stage.
        stem_width: Output channels of the stem convolution.
        small_images: CIFAR-style stem (3×3 conv, no max-pool) instead of the ImageNet 7×7/2 + max-pool.
        width: Width multiplier (WRN): multiplies the basic block's output and the bottleneck's inner width.
    """

    block: BlockKind
    blocks_per_stage: tuple[int, ...]
    stage_widths: tuple[int, ...]
    stem_width: int
    small_images: bool
    width: int = 1


# --------------------------------------------------------------------------------------------- blocks


def _post_act_shortcut(option: str, in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """Post-activation shortcut: the shortcut module, followed by a BatchNorm iff it holds a conv."""
    shortcut = make_shortcut(option, in_channels, out_channels, stride)
    if shortcut.requires_activation:
        return nn.Sequential(shortcut, nn.BatchNorm2d(out_channels))
    return nn.Sequential(shortcut)


class BasicBlock(nn.Module):
    """Post-activation basic block: ``ReLU(BN(conv(drop(ReLU(BN(conv(x)))))) + shortcut(x))``."""

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        width: int = 1,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        out_channels = planes * width
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = _post_act_shortcut(shortcut, in_channels, out_channels, stride)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(F.relu(self.bn1(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))

    def zero_init_last(self) -> None:
        """Start the block as the identity on its branch (Goyal et al. 2017)."""
        nn.init.zeros_(self.bn2.weight)


class Bottleneck(nn.Module):
    """Post-activation bottleneck, stride on the 3×3 conv (ResNet v1.5)."""

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        width: int = 1,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if drop_rate:
            raise InputError(
                f"dropout is only defined for basic blocks, got drop_rate={drop_rate} for a bottleneck"
            )
        mid, out_channels = planes * width, planes * self.expansion
        self.conv1 = conv1x1(in_channels, mid)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = conv3x3(mid, mid, stride)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = conv1x1(mid, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = _post_act_shortcut(shortcut, in_channels, out_channels, stride)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))

    def zero_init_last(self) -> None:
        """Start the block as the identity on its branch (Goyal et al. 2017)."""
        nn.init.zeros_(self.bn3.weight)


class PreActBlock(nn.Module):
    """Pre-activation basic block: ``a = ReLU(BN(x)); conv(drop(ReLU(BN(conv(a))))) + skip``.

    The skip reads ``a`` when the shortcut holds a projection and the raw ``x`` otherwise
    (He et al. 2016b, fig. 5 of the torch-resnet README). Nothing follows the sum.
    """

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        width: int = 1,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        out_channels = planes * width
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.conv2 = conv3x3(out_channels, out_channels)
        self.shortcut = make_shortcut(shortcut, in_channels, out_channels, stride)
        self.shortcut_on_activation = bool(self.shortcut.requires_activation)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        skip = self.shortcut(a) if self.shortcut_on_activation else self.shortcut(x)
        out = self.dropout(F.relu(self.bn2(self.conv1(a))))
        return self.conv2(out) + skip

    def zero_init_last(self) -> None:
        """Start the block as the identity on its branch."""
        nn.init.zeros_(self.conv2.weight)


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck: ``a = ReLU(BN(x)); conv1×1(ReLU(BN(conv3×3(ReLU(BN(conv1×1(a))))))) + s``.

    The same block serves three families, which differ only in the shortcut: torch-resnet
    (a projection fed with ``a``, else the raw ``x``), ProcResNet's baseline (its own
    BN-ReLU-conv fed with the raw ``x``) and LeNo's pre-activation baseline (conv-BN fed
    with ``a``). Hence ``shortcut`` is passed in, with ``shortcut_on_activation``.

    Args:
        in_channels: Input channels.
        planes: Bottleneck width before ``width``; the output has ``4 * planes`` channels.
        stride: Stride of the 3×3 conv.
        shortcut: Module mapping the skip input to ``4 * planes`` channels at the output resolution.
        shortcut_on_activation: Feed the shortcut ``ReLU(bn1(x))`` instead of ``x``.
        width: Multiplier of the inner width (WRN-50-2 has 2).
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int,
        *,
        shortcut: nn.Module,
        shortcut_on_activation: bool,
        width: int = 1,
    ) -> None:
        super().__init__()
        mid, out_channels = planes * width, planes * self.expansion
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv1x1(in_channels, mid)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = conv3x3(mid, mid, stride)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = conv1x1(mid, out_channels)
        self.shortcut = shortcut
        self.shortcut_on_activation = shortcut_on_activation
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        skip = self.shortcut(a) if self.shortcut_on_activation else self.shortcut(x)
        out = F.relu(self.bn2(self.conv1(a)))
        out = F.relu(self.bn3(self.conv2(out)))
        return self.conv3(out) + skip

    def zero_init_last(self) -> None:
        """Start the block as the identity on its branch."""
        nn.init.zeros_(self.conv3.weight)


def _preact_bottleneck(
    in_channels: int,
    planes: int,
    stride: int = 1,
    *,
    shortcut: str = "B",
    width: int = 1,
    drop_rate: float = 0.0,
) -> PreActBottleneck:
    """torch-resnet's pre-activation bottleneck: the shortcut reads ``a`` iff it is a projection."""
    if drop_rate:
        raise InputError(
            f"dropout is only defined for basic blocks, got drop_rate={drop_rate} for a bottleneck"
        )
    module = make_shortcut(shortcut, in_channels, planes * PreActBottleneck.expansion, stride)
    return PreActBottleneck(
        in_channels,
        planes,
        stride,
        shortcut=module,
        shortcut_on_activation=module.requires_activation,
        width=width,
    )


BlockFactory = Callable[[int, int, int], nn.Module]


def make_stages(
    in_channels: int,
    blocks_per_stage: tuple[int, ...],
    stage_widths: tuple[int, ...],
    stage_strides: tuple[int, ...],
    make_block: BlockFactory,
) -> tuple[list[nn.Sequential], int]:
    """Build residual stages; the first block of each stage takes that stage's stride.

    Args:
        in_channels: Channels entering the first stage.
        blocks_per_stage: Blocks in each stage.
        stage_widths: ``planes`` passed to the blocks of each stage.
        stage_strides: Stride of the first block of each stage.
        make_block: ``(in_channels, planes, stride) -> block``; the block exposes ``out_channels``.

    Returns:
        The stages and the channel count after the last one.
    """
    stages = []
    for num_blocks, planes, stride in zip(blocks_per_stage, stage_widths, stage_strides, strict=True):
        blocks = []
        for index in range(num_blocks):
            block = make_block(in_channels, planes, stride if index == 0 else 1)
            in_channels = block.out_channels
            blocks.append(block)
        stages.append(nn.Sequential(*blocks))
    return stages, in_channels


def _stage_strides(spec: ResNetSpec) -> tuple[int, ...]:
    return (1,) + (2,) * (len(spec.blocks_per_stage) - 1)


# --------------------------------------------------------------------------------------------- networks


class _ResNetBase(nn.Module):
    """What the post- and pre-activation networks share: stages, head, initialisation, ``set_head``."""

    def _build_body(
        self,
        spec: ResNetSpec,
        block_factory: Callable[..., nn.Module],
        *,
        num_classes: int,
        shortcut: str,
        drop_rate: float,
        zero_init_residual: bool,
        final_norm: bool,
    ) -> None:
        make_block = functools.partial(
            block_factory, shortcut=shortcut, width=spec.width, drop_rate=drop_rate
        )
        stages, self.out_planes = make_stages(
            spec.stem_width, spec.blocks_per_stage, spec.stage_widths, _stage_strides(spec), make_block
        )
        self.layers = nn.Sequential(*stages)
        if final_norm:
            self.norm = nn.BatchNorm2d(self.out_planes)
        self.avgpool = GlobalAvgPool2d()
        self.head = make_head(self.out_planes, num_classes)
        init_conv_bn(self)
        if zero_init_residual:
            for block in self.layers.modules():
                if hasattr(block, "zero_init_last"):
                    block.zero_init_last()

    def set_head(self, head: nn.Module) -> None:
        """Replace the classifier (e.g. ``nn.Linear(model.out_planes, 5)`` for fine-tuning)."""
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


class ResNet(_ResNetBase):
    """Post-activation ResNet (He et al. 2016a): stem, stages, global average pool, ``head``.

    ``head`` is a Linear layer when ``num_classes > 0`` and the identity otherwise (the
    model then returns the ``out_planes``-wide features); :meth:`set_head` replaces it.
    """

    def __init__(
        self,
        spec: ResNetSpec,
        *,
        num_classes: int,
        shortcut: str = "B",
        drop_rate: float = 0.0,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        c0 = spec.stem_width
        if spec.small_images:
            self.init_layer = nn.Sequential(conv3x3(3, c0), nn.BatchNorm2d(c0), nn.ReLU())
        else:
            self.init_layer = nn.Sequential(
                nn.Conv2d(3, c0, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(c0),
                nn.ReLU(),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        self._build_body(
            spec,
            BasicBlock if spec.block == "basic" else Bottleneck,
            num_classes=num_classes,
            shortcut=shortcut,
            drop_rate=drop_rate,
            zero_init_residual=zero_init_residual,
            final_norm=False,
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before the head, ``[N, out_planes]``."""
        return self.avgpool(self.layers(self.init_layer(x)))


class PreActResNet(_ResNetBase):
    """Pre-activation ResNet (He et al. 2016b): stem, stages, ``norm`` + ReLU, average pool, ``head``.

    The CIFAR stem is a bare 3×3 conv (key ``init_layer.weight``) and the ImageNet stem a
    7×7/2 conv followed by a max-pool, neither with BatchNorm: the first block normalises.
    """

    def __init__(
        self,
        spec: ResNetSpec,
        *,
        num_classes: int,
        shortcut: str = "B",
        drop_rate: float = 0.0,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        c0 = spec.stem_width
        if spec.small_images:
            self.init_layer: nn.Module = conv3x3(3, c0)
        else:
            self.init_layer = nn.Sequential(
                nn.Conv2d(3, c0, 7, stride=2, padding=3, bias=False), nn.MaxPool2d(3, stride=2, padding=1)
            )
        self._build_body(
            spec,
            PreActBlock if spec.block == "basic" else _preact_bottleneck,
            num_classes=num_classes,
            shortcut=shortcut,
            drop_rate=drop_rate,
            zero_init_residual=zero_init_residual,
            final_norm=True,
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before the head, ``[N, out_planes]``."""
        x = self.layers(self.init_layer(x))
        return self.avgpool(F.relu(self.norm(x)))


# --------------------------------------------------------------------------------------------- builders

ResNetT = TypeVar("ResNetT", ResNet, PreActResNet)


def _resnet(
    network: type[ResNetT],
    spec: ResNetSpec,
    *,
    num_classes: int,
    shortcut: ShortcutOption,
    drop_rate: float,
    zero_init_residual: bool,
) -> ResNetT:
    """Build ``network`` in the shape ``spec``: the one body of every registered torch-resnet builder.

    Args:
        network: :class:`ResNet` (post-activation) or :class:`PreActResNet`.
        spec: Blocks, stages, widths and stem of the design.
        num_classes: Classifier size; 0 returns the pooled ``out_planes`` features.
        shortcut: ``"A"`` identity with zero channels, ``"B"`` 1×1 projection where the shape
            changes (the papers' default), ``"C"`` 1×1 projection in every block, ``"conv"``
            3×3 projection where the shape changes.
        drop_rate: Dropout between the two convolutions of a basic block (0.3 in the wide
            ResNets); bottlenecks refuse a non-zero rate.
        zero_init_residual: Zero the last BatchNorm (post-activation) or convolution
            (pre-activation) of every branch, so each block starts as its shortcut.
    """
    return network(
        spec,
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


def _cifar_spec(block: BlockKind, n: int, *, width: int = 1) -> ResNetSpec:
    """CIFAR layout: a 16-channel 3×3 stem, then three stages of ``n`` blocks at base widths 16, 32, 64."""
    return ResNetSpec(block, (n, n, n), (16, 32, 64), 16, small_images=True, width=width)


def _imagenet_spec(
    block: BlockKind, blocks_per_stage: tuple[int, ...], *, small_images: bool = False, width: int = 1
) -> ResNetSpec:
    """ImageNet layout: a 64-channel stem (7×7/2 + max-pool, or CIFAR's 3×3), stages at 64…512."""
    return ResNetSpec(
        block, blocks_per_stage, (64, 128, 256, 512), 64, small_images=small_images, width=width
    )


# One builder per name the papers use: post-activation, then pre-activation; CIFAR depths
# (6n + 2 with basic blocks, 9n + 2 with bottlenecks), ImageNet depths and their CIFAR-stem
# ("_small") variants, wide ResNets (6n + 4, widths 1 to 10); then the ImageNet WRN-50/101-2.


@register_model(family="torch-resnet", dataset="cifar")
def resnet20(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-20, CIFAR, basic blocks 3-3-3.

    The post-activation ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR
    2016), for 32×32 CIFAR images: a 16-channel 3×3 stem, then three stages of 3 basic blocks at
    widths 16, 32 and 64, depth 20 = 6n + 2 with n = 3 (shortcut convolutions not counted).
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 3),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def resnet32(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-32, CIFAR, basic blocks 5-5-5.

    The post-activation ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR
    2016), for 32×32 CIFAR images: a 16-channel 3×3 stem, then three stages of 5 basic blocks at
    widths 16, 32 and 64, depth 32 = 6n + 2 with n = 5 (shortcut convolutions not counted).
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 5),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def resnet44(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-44, CIFAR, basic blocks 7-7-7.

    The post-activation ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR
    2016), for 32×32 CIFAR images: a 16-channel 3×3 stem, then three stages of 7 basic blocks at
    widths 16, 32 and 64, depth 44 = 6n + 2 with n = 7 (shortcut convolutions not counted).
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 7),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def resnet56(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-56, CIFAR, basic blocks 9-9-9.

    The post-activation ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR
    2016), for 32×32 CIFAR images: a 16-channel 3×3 stem, then three stages of 9 basic blocks at
    widths 16, 32 and 64, depth 56 = 6n + 2 with n = 9 (shortcut convolutions not counted).
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 9),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def resnet110(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-110, CIFAR, basic blocks 18-18-18.

    The post-activation ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR
    2016), for 32×32 CIFAR images: a 16-channel 3×3 stem, then three stages of 18 basic blocks at
    widths 16, 32 and 64, depth 110 = 6n + 2 with n = 18 (shortcut convolutions not counted).
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 18),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def resnet164(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-164, CIFAR, bottleneck blocks 18-18-18.

    The post-activation ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR
    2016), for 32×32 CIFAR images: a 16-channel 3×3 stem, then three stages of 18 bottleneck blocks
    with inner widths 16, 32 and 64 (outputs 64, 128 and 256), depth 164 = 9n + 2 with n = 18
    (shortcut convolutions not counted).
    """
    return _resnet(
        ResNet,
        _cifar_spec("bottleneck", 18),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def resnet1001(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-1001, CIFAR, bottleneck blocks 111-111-111.

    The post-activation ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR
    2016), for 32×32 CIFAR images: a 16-channel 3×3 stem, then three stages of 111 bottleneck blocks
    with inner widths 16, 32 and 64 (outputs 64, 128 and 256), depth 1001 = 9n + 2 with n = 111
    (shortcut convolutions not counted).
    """
    return _resnet(
        ResNet,
        _cifar_spec("bottleneck", 111),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def resnet1202(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-1202, CIFAR, basic blocks 200-200-200.

    The post-activation ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR
    2016), for 32×32 CIFAR images: a 16-channel 3×3 stem, then three stages of 200 basic blocks at
    widths 16, 32 and 64, depth 1202 = 6n + 2 with n = 200 (shortcut convolutions not counted).
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 200),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="imagenet")
def resnet18(
    *,
    num_classes: int = 1000,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-18, ImageNet, basic blocks 2-2-2-2.

    The post-activation ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR
    2016), for 224×224 ImageNet images: a 64-channel 7×7/2 stem and a 3×3/2 max-pool, then four
    stages of 2, 2, 2 and 2 basic blocks at widths 64, 128, 256 and 512, 18 layers deep.
    """
    return _resnet(
        ResNet,
        _imagenet_spec("basic", (2, 2, 2, 2)),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def resnet18_small(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-18 with a CIFAR stem (3×3 conv, no max-pool), basic blocks 2-2-2-2.

    The post-activation ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR
    2016) in its ImageNet layout (four stages of 2, 2, 2 and 2 basic blocks at widths 64, 128, 256
    and 512, 18 layers deep), with a CIFAR stem for 32×32 images: a stride-1 3×3 convolution and no
    max-pool, so the last stage still sees 4×4 maps.
    """
    return _resnet(
        ResNet,
        _imagenet_spec("basic", (2, 2, 2, 2), small_images=True),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="imagenet")
def resnet34(
    *,
    num_classes: int = 1000,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-34, ImageNet, basic blocks 3-4-6-3.

    The post-activation ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR
    2016), for 224×224 ImageNet images: a 64-channel 7×7/2 stem and a 3×3/2 max-pool, then four
    stages of 3, 4, 6 and 3 basic blocks at widths 64, 128, 256 and 512, 34 layers deep.
    """
    return _resnet(
        ResNet,
        _imagenet_spec("basic", (3, 4, 6, 3)),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def resnet34_small(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-34 with a CIFAR stem (3×3 conv, no max-pool), basic blocks 3-4-6-3.

    The post-activation ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR
    2016) in its ImageNet layout (four stages of 3, 4, 6 and 3 basic blocks at widths 64, 128, 256
    and 512, 34 layers deep), with a CIFAR stem for 32×32 images: a stride-1 3×3 convolution and no
    max-pool, so the last stage still sees 4×4 maps.
    """
    return _resnet(
        ResNet,
        _imagenet_spec("basic", (3, 4, 6, 3), small_images=True),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="imagenet")
def resnet50(
    *,
    num_classes: int = 1000,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-50, ImageNet, bottleneck blocks 3-4-6-3.

    The post-activation ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR
    2016), for 224×224 ImageNet images: a 64-channel 7×7/2 stem and a 3×3/2 max-pool, then four
    stages of 3, 4, 6 and 3 bottleneck blocks with inner widths 64, 128, 256 and 512 (outputs 256 to
    2048), 50 layers deep.
    """
    return _resnet(
        ResNet,
        _imagenet_spec("bottleneck", (3, 4, 6, 3)),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def resnet50_small(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-50 with a CIFAR stem (3×3 conv, no max-pool), bottleneck blocks 3-4-6-3.

    The post-activation ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR
    2016) in its ImageNet layout (four stages of 3, 4, 6 and 3 bottleneck blocks with inner widths
    64, 128, 256 and 512 (outputs 256 to 2048), 50 layers deep), with a CIFAR stem for 32×32 images:
    a stride-1 3×3 convolution and no max-pool, so the last stage still sees 4×4 maps.
    """
    return _resnet(
        ResNet,
        _imagenet_spec("bottleneck", (3, 4, 6, 3), small_images=True),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="imagenet")
def resnet101(
    *,
    num_classes: int = 1000,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-101, ImageNet, bottleneck blocks 3-4-23-3.

    The post-activation ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR
    2016), for 224×224 ImageNet images: a 64-channel 7×7/2 stem and a 3×3/2 max-pool, then four
    stages of 3, 4, 23 and 3 bottleneck blocks with inner widths 64, 128, 256 and 512 (outputs 256
    to 2048), 101 layers deep.
    """
    return _resnet(
        ResNet,
        _imagenet_spec("bottleneck", (3, 4, 23, 3)),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def resnet101_small(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-101 with a CIFAR stem (3×3 conv, no max-pool), bottleneck blocks 3-4-23-3.

    The post-activation ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR
    2016) in its ImageNet layout (four stages of 3, 4, 23 and 3 bottleneck blocks with inner widths
    64, 128, 256 and 512 (outputs 256 to 2048), 101 layers deep), with a CIFAR stem for 32×32
    images: a stride-1 3×3 convolution and no max-pool, so the last stage still sees 4×4 maps.
    """
    return _resnet(
        ResNet,
        _imagenet_spec("bottleneck", (3, 4, 23, 3), small_images=True),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="imagenet")
def resnet152(
    *,
    num_classes: int = 1000,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-152, ImageNet, bottleneck blocks 3-8-36-3.

    The post-activation ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR
    2016), for 224×224 ImageNet images: a 64-channel 7×7/2 stem and a 3×3/2 max-pool, then four
    stages of 3, 8, 36 and 3 bottleneck blocks with inner widths 64, 128, 256 and 512 (outputs 256
    to 2048), 152 layers deep.
    """
    return _resnet(
        ResNet,
        _imagenet_spec("bottleneck", (3, 8, 36, 3)),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def resnet152_small(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-152 with a CIFAR stem (3×3 conv, no max-pool), bottleneck blocks 3-8-36-3.

    The post-activation ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR
    2016) in its ImageNet layout (four stages of 3, 8, 36 and 3 bottleneck blocks with inner widths
    64, 128, 256 and 512 (outputs 256 to 2048), 152 layers deep), with a CIFAR stem for 32×32
    images: a stride-1 3×3 convolution and no max-pool, so the last stage still sees 4×4 maps.
    """
    return _resnet(
        ResNet,
        _imagenet_spec("bottleneck", (3, 8, 36, 3), small_images=True),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="imagenet")
def resnet200(
    *,
    num_classes: int = 1000,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-200, ImageNet, bottleneck blocks 3-24-36-3.

    The post-activation ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR
    2016), for 224×224 ImageNet images: a 64-channel 7×7/2 stem and a 3×3/2 max-pool, then four
    stages of 3, 24, 36 and 3 bottleneck blocks with inner widths 64, 128, 256 and 512 (outputs 256
    to 2048), 200 layers deep.
    """
    return _resnet(
        ResNet,
        _imagenet_spec("bottleneck", (3, 24, 36, 3)),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def resnet200_small(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-200 with a CIFAR stem (3×3 conv, no max-pool), bottleneck blocks 3-24-36-3.

    The post-activation ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR
    2016) in its ImageNet layout (four stages of 3, 24, 36 and 3 bottleneck blocks with inner widths
    64, 128, 256 and 512 (outputs 256 to 2048), 200 layers deep), with a CIFAR stem for 32×32
    images: a stride-1 3×3 convolution and no max-pool, so the last stage still sees 4×4 maps.
    """
    return _resnet(
        ResNet,
        _imagenet_spec("bottleneck", (3, 24, 36, 3), small_images=True),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def wide_resnet16_1(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> ResNet:
    """wide ResNet WRN-16-1, CIFAR, dropout 0.3.

    The wide ResNet WRN-16-1 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    post-activation blocks, as torch-resnet builds it, for 32×32 CIFAR images: a 16-channel 3×3
    stem, then three stages of 2 basic blocks at widths 16, 32 and 64 (k = 1), depth 16 = 6n + 4
    with n = 2, and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 2, width=1),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def wide_resnet16_2(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> ResNet:
    """wide ResNet WRN-16-2, CIFAR, dropout 0.3.

    The wide ResNet WRN-16-2 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    post-activation blocks, as torch-resnet builds it, for 32×32 CIFAR images: a 16-channel 3×3
    stem, then three stages of 2 basic blocks at widths 32, 64 and 128 (k = 2), depth 16 = 6n + 4
    with n = 2, and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 2, width=2),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def wide_resnet16_4(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> ResNet:
    """wide ResNet WRN-16-4, CIFAR, dropout 0.3.

    The wide ResNet WRN-16-4 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    post-activation blocks, as torch-resnet builds it, for 32×32 CIFAR images: a 16-channel 3×3
    stem, then three stages of 2 basic blocks at widths 64, 128 and 256 (k = 4), depth 16 = 6n + 4
    with n = 2, and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 2, width=4),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def wide_resnet16_8(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> ResNet:
    """wide ResNet WRN-16-8, CIFAR, dropout 0.3.

    The wide ResNet WRN-16-8 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    post-activation blocks, as torch-resnet builds it, for 32×32 CIFAR images: a 16-channel 3×3
    stem, then three stages of 2 basic blocks at widths 128, 256 and 512 (k = 8), depth 16 = 6n + 4
    with n = 2, and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 2, width=8),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def wide_resnet16_10(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> ResNet:
    """wide ResNet WRN-16-10, CIFAR, dropout 0.3.

    The wide ResNet WRN-16-10 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    post-activation blocks, as torch-resnet builds it, for 32×32 CIFAR images: a 16-channel 3×3
    stem, then three stages of 2 basic blocks at widths 160, 320 and 640 (k = 10), depth 16 = 6n + 4
    with n = 2, and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 2, width=10),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def wide_resnet28_1(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> ResNet:
    """wide ResNet WRN-28-1, CIFAR, dropout 0.3.

    The wide ResNet WRN-28-1 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    post-activation blocks, as torch-resnet builds it, for 32×32 CIFAR images: a 16-channel 3×3
    stem, then three stages of 4 basic blocks at widths 16, 32 and 64 (k = 1), depth 28 = 6n + 4
    with n = 4, and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 4, width=1),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def wide_resnet28_2(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> ResNet:
    """wide ResNet WRN-28-2, CIFAR, dropout 0.3.

    The wide ResNet WRN-28-2 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    post-activation blocks, as torch-resnet builds it, for 32×32 CIFAR images: a 16-channel 3×3
    stem, then three stages of 4 basic blocks at widths 32, 64 and 128 (k = 2), depth 28 = 6n + 4
    with n = 4, and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 4, width=2),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def wide_resnet28_4(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> ResNet:
    """wide ResNet WRN-28-4, CIFAR, dropout 0.3.

    The wide ResNet WRN-28-4 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    post-activation blocks, as torch-resnet builds it, for 32×32 CIFAR images: a 16-channel 3×3
    stem, then three stages of 4 basic blocks at widths 64, 128 and 256 (k = 4), depth 28 = 6n + 4
    with n = 4, and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 4, width=4),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def wide_resnet28_8(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> ResNet:
    """wide ResNet WRN-28-8, CIFAR, dropout 0.3.

    The wide ResNet WRN-28-8 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    post-activation blocks, as torch-resnet builds it, for 32×32 CIFAR images: a 16-channel 3×3
    stem, then three stages of 4 basic blocks at widths 128, 256 and 512 (k = 8), depth 28 = 6n + 4
    with n = 4, and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 4, width=8),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def wide_resnet28_10(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> ResNet:
    """wide ResNet WRN-28-10, CIFAR, dropout 0.3.

    The wide ResNet WRN-28-10 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    post-activation blocks, as torch-resnet builds it, for 32×32 CIFAR images: a 16-channel 3×3
    stem, then three stages of 4 basic blocks at widths 160, 320 and 640 (k = 10), depth 28 = 6n + 4
    with n = 4, and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 4, width=10),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def wide_resnet40_1(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> ResNet:
    """wide ResNet WRN-40-1, CIFAR, dropout 0.3.

    The wide ResNet WRN-40-1 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    post-activation blocks, as torch-resnet builds it, for 32×32 CIFAR images: a 16-channel 3×3
    stem, then three stages of 6 basic blocks at widths 16, 32 and 64 (k = 1), depth 40 = 6n + 4
    with n = 6, and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 6, width=1),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def wide_resnet40_2(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> ResNet:
    """wide ResNet WRN-40-2, CIFAR, dropout 0.3.

    The wide ResNet WRN-40-2 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    post-activation blocks, as torch-resnet builds it, for 32×32 CIFAR images: a 16-channel 3×3
    stem, then three stages of 6 basic blocks at widths 32, 64 and 128 (k = 2), depth 40 = 6n + 4
    with n = 6, and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 6, width=2),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def wide_resnet40_4(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> ResNet:
    """wide ResNet WRN-40-4, CIFAR, dropout 0.3.

    The wide ResNet WRN-40-4 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    post-activation blocks, as torch-resnet builds it, for 32×32 CIFAR images: a 16-channel 3×3
    stem, then three stages of 6 basic blocks at widths 64, 128 and 256 (k = 4), depth 40 = 6n + 4
    with n = 6, and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 6, width=4),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def wide_resnet40_8(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> ResNet:
    """wide ResNet WRN-40-8, CIFAR, dropout 0.3.

    The wide ResNet WRN-40-8 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    post-activation blocks, as torch-resnet builds it, for 32×32 CIFAR images: a 16-channel 3×3
    stem, then three stages of 6 basic blocks at widths 128, 256 and 512 (k = 8), depth 40 = 6n + 4
    with n = 6, and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 6, width=8),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def wide_resnet40_10(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> ResNet:
    """wide ResNet WRN-40-10, CIFAR, dropout 0.3.

    The wide ResNet WRN-40-10 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    post-activation blocks, as torch-resnet builds it, for 32×32 CIFAR images: a 16-channel 3×3
    stem, then three stages of 6 basic blocks at widths 160, 320 and 640 (k = 10), depth 40 = 6n + 4
    with n = 6, and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        ResNet,
        _cifar_spec("basic", 6, width=10),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_resnet20(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """pre-activation ResNet-20, CIFAR, basic blocks 3-3-3.

    The pre-activation ResNet of He et al., "Identity Mappings in Deep Residual Networks" (ECCV
    2016), for 32×32 CIFAR images: a 16-channel 3×3 stem, then three stages of 3 basic blocks at
    widths 16, 32 and 64, depth 20 = 6n + 2 with n = 3 (shortcut convolutions not counted).
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 3),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_resnet32(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """pre-activation ResNet-32, CIFAR, basic blocks 5-5-5.

    The pre-activation ResNet of He et al., "Identity Mappings in Deep Residual Networks" (ECCV
    2016), for 32×32 CIFAR images: a 16-channel 3×3 stem, then three stages of 5 basic blocks at
    widths 16, 32 and 64, depth 32 = 6n + 2 with n = 5 (shortcut convolutions not counted).
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 5),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_resnet44(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """pre-activation ResNet-44, CIFAR, basic blocks 7-7-7.

    The pre-activation ResNet of He et al., "Identity Mappings in Deep Residual Networks" (ECCV
    2016), for 32×32 CIFAR images: a 16-channel 3×3 stem, then three stages of 7 basic blocks at
    widths 16, 32 and 64, depth 44 = 6n + 2 with n = 7 (shortcut convolutions not counted).
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 7),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_resnet56(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """pre-activation ResNet-56, CIFAR, basic blocks 9-9-9.

    The pre-activation ResNet of He et al., "Identity Mappings in Deep Residual Networks" (ECCV
    2016), for 32×32 CIFAR images: a 16-channel 3×3 stem, then three stages of 9 basic blocks at
    widths 16, 32 and 64, depth 56 = 6n + 2 with n = 9 (shortcut convolutions not counted).
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 9),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_resnet110(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """pre-activation ResNet-110, CIFAR, basic blocks 18-18-18.

    The pre-activation ResNet of He et al., "Identity Mappings in Deep Residual Networks" (ECCV
    2016), for 32×32 CIFAR images: a 16-channel 3×3 stem, then three stages of 18 basic blocks at
    widths 16, 32 and 64, depth 110 = 6n + 2 with n = 18 (shortcut convolutions not counted).
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 18),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_resnet164(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """pre-activation ResNet-164, CIFAR, bottleneck blocks 18-18-18.

    The pre-activation ResNet of He et al., "Identity Mappings in Deep Residual Networks" (ECCV
    2016), for 32×32 CIFAR images: a 16-channel 3×3 stem, then three stages of 18 bottleneck blocks
    with inner widths 16, 32 and 64 (outputs 64, 128 and 256), depth 164 = 9n + 2 with n = 18
    (shortcut convolutions not counted).
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("bottleneck", 18),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_resnet1001(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """pre-activation ResNet-1001, CIFAR, bottleneck blocks 111-111-111.

    The pre-activation ResNet of He et al., "Identity Mappings in Deep Residual Networks" (ECCV
    2016), for 32×32 CIFAR images: a 16-channel 3×3 stem, then three stages of 111 bottleneck blocks
    with inner widths 16, 32 and 64 (outputs 64, 128 and 256), depth 1001 = 9n + 2 with n = 111
    (shortcut convolutions not counted).
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("bottleneck", 111),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_resnet1202(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """pre-activation ResNet-1202, CIFAR, basic blocks 200-200-200.

    The pre-activation ResNet of He et al., "Identity Mappings in Deep Residual Networks" (ECCV
    2016), for 32×32 CIFAR images: a 16-channel 3×3 stem, then three stages of 200 basic blocks at
    widths 16, 32 and 64, depth 1202 = 6n + 2 with n = 200 (shortcut convolutions not counted).
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 200),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="imagenet")
def preact_resnet18(
    *,
    num_classes: int = 1000,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """pre-activation ResNet-18, ImageNet, basic blocks 2-2-2-2.

    The pre-activation ResNet of He et al., "Identity Mappings in Deep Residual Networks" (ECCV
    2016), for 224×224 ImageNet images: a 64-channel 7×7/2 stem and a 3×3/2 max-pool, then four
    stages of 2, 2, 2 and 2 basic blocks at widths 64, 128, 256 and 512, 18 layers deep.
    """
    return _resnet(
        PreActResNet,
        _imagenet_spec("basic", (2, 2, 2, 2)),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_resnet18_small(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """pre-activation ResNet-18 with a CIFAR stem (3×3 conv, no max-pool), basic blocks 2-2-2-2.

    The pre-activation ResNet of He et al., "Identity Mappings in Deep Residual Networks" (ECCV
    2016) in its ImageNet layout (four stages of 2, 2, 2 and 2 basic blocks at widths 64, 128, 256
    and 512, 18 layers deep), with a CIFAR stem for 32×32 images: a stride-1 3×3 convolution and no
    max-pool, so the last stage still sees 4×4 maps.
    """
    return _resnet(
        PreActResNet,
        _imagenet_spec("basic", (2, 2, 2, 2), small_images=True),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="imagenet")
def preact_resnet34(
    *,
    num_classes: int = 1000,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """pre-activation ResNet-34, ImageNet, basic blocks 3-4-6-3.

    The pre-activation ResNet of He et al., "Identity Mappings in Deep Residual Networks" (ECCV
    2016), for 224×224 ImageNet images: a 64-channel 7×7/2 stem and a 3×3/2 max-pool, then four
    stages of 3, 4, 6 and 3 basic blocks at widths 64, 128, 256 and 512, 34 layers deep.
    """
    return _resnet(
        PreActResNet,
        _imagenet_spec("basic", (3, 4, 6, 3)),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_resnet34_small(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """pre-activation ResNet-34 with a CIFAR stem (3×3 conv, no max-pool), basic blocks 3-4-6-3.

    The pre-activation ResNet of He et al., "Identity Mappings in Deep Residual Networks" (ECCV
    2016) in its ImageNet layout (four stages of 3, 4, 6 and 3 basic blocks at widths 64, 128, 256
    and 512, 34 layers deep), with a CIFAR stem for 32×32 images: a stride-1 3×3 convolution and no
    max-pool, so the last stage still sees 4×4 maps.
    """
    return _resnet(
        PreActResNet,
        _imagenet_spec("basic", (3, 4, 6, 3), small_images=True),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="imagenet")
def preact_resnet50(
    *,
    num_classes: int = 1000,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """pre-activation ResNet-50, ImageNet, bottleneck blocks 3-4-6-3.

    The pre-activation ResNet of He et al., "Identity Mappings in Deep Residual Networks" (ECCV
    2016), for 224×224 ImageNet images: a 64-channel 7×7/2 stem and a 3×3/2 max-pool, then four
    stages of 3, 4, 6 and 3 bottleneck blocks with inner widths 64, 128, 256 and 512 (outputs 256 to
    2048), 50 layers deep.
    """
    return _resnet(
        PreActResNet,
        _imagenet_spec("bottleneck", (3, 4, 6, 3)),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_resnet50_small(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """pre-activation ResNet-50 with a CIFAR stem (3×3 conv, no max-pool), bottleneck blocks 3-4-6-3.

    The pre-activation ResNet of He et al., "Identity Mappings in Deep Residual Networks" (ECCV
    2016) in its ImageNet layout (four stages of 3, 4, 6 and 3 bottleneck blocks with inner widths
    64, 128, 256 and 512 (outputs 256 to 2048), 50 layers deep), with a CIFAR stem for 32×32 images:
    a stride-1 3×3 convolution and no max-pool, so the last stage still sees 4×4 maps.
    """
    return _resnet(
        PreActResNet,
        _imagenet_spec("bottleneck", (3, 4, 6, 3), small_images=True),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="imagenet")
def preact_resnet101(
    *,
    num_classes: int = 1000,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """pre-activation ResNet-101, ImageNet, bottleneck blocks 3-4-23-3.

    The pre-activation ResNet of He et al., "Identity Mappings in Deep Residual Networks" (ECCV
    2016), for 224×224 ImageNet images: a 64-channel 7×7/2 stem and a 3×3/2 max-pool, then four
    stages of 3, 4, 23 and 3 bottleneck blocks with inner widths 64, 128, 256 and 512 (outputs 256
    to 2048), 101 layers deep.
    """
    return _resnet(
        PreActResNet,
        _imagenet_spec("bottleneck", (3, 4, 23, 3)),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_resnet101_small(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """pre-activation ResNet-101 with a CIFAR stem (3×3 conv, no max-pool), bottleneck blocks 3-4-23-3.

    The pre-activation ResNet of He et al., "Identity Mappings in Deep Residual Networks" (ECCV
    2016) in its ImageNet layout (four stages of 3, 4, 23 and 3 bottleneck blocks with inner widths
    64, 128, 256 and 512 (outputs 256 to 2048), 101 layers deep), with a CIFAR stem for 32×32
    images: a stride-1 3×3 convolution and no max-pool, so the last stage still sees 4×4 maps.
    """
    return _resnet(
        PreActResNet,
        _imagenet_spec("bottleneck", (3, 4, 23, 3), small_images=True),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="imagenet")
def preact_resnet152(
    *,
    num_classes: int = 1000,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """pre-activation ResNet-152, ImageNet, bottleneck blocks 3-8-36-3.

    The pre-activation ResNet of He et al., "Identity Mappings in Deep Residual Networks" (ECCV
    2016), for 224×224 ImageNet images: a 64-channel 7×7/2 stem and a 3×3/2 max-pool, then four
    stages of 3, 8, 36 and 3 bottleneck blocks with inner widths 64, 128, 256 and 512 (outputs 256
    to 2048), 152 layers deep.
    """
    return _resnet(
        PreActResNet,
        _imagenet_spec("bottleneck", (3, 8, 36, 3)),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_resnet152_small(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """pre-activation ResNet-152 with a CIFAR stem (3×3 conv, no max-pool), bottleneck blocks 3-8-36-3.

    The pre-activation ResNet of He et al., "Identity Mappings in Deep Residual Networks" (ECCV
    2016) in its ImageNet layout (four stages of 3, 8, 36 and 3 bottleneck blocks with inner widths
    64, 128, 256 and 512 (outputs 256 to 2048), 152 layers deep), with a CIFAR stem for 32×32
    images: a stride-1 3×3 convolution and no max-pool, so the last stage still sees 4×4 maps.
    """
    return _resnet(
        PreActResNet,
        _imagenet_spec("bottleneck", (3, 8, 36, 3), small_images=True),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="imagenet")
def preact_resnet200(
    *,
    num_classes: int = 1000,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """pre-activation ResNet-200, ImageNet, bottleneck blocks 3-24-36-3.

    The pre-activation ResNet of He et al., "Identity Mappings in Deep Residual Networks" (ECCV
    2016), for 224×224 ImageNet images: a 64-channel 7×7/2 stem and a 3×3/2 max-pool, then four
    stages of 3, 24, 36 and 3 bottleneck blocks with inner widths 64, 128, 256 and 512 (outputs 256
    to 2048), 200 layers deep.
    """
    return _resnet(
        PreActResNet,
        _imagenet_spec("bottleneck", (3, 24, 36, 3)),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_resnet200_small(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """pre-activation ResNet-200 with a CIFAR stem (3×3 conv, no max-pool), bottleneck blocks 3-24-36-3.

    The pre-activation ResNet of He et al., "Identity Mappings in Deep Residual Networks" (ECCV
    2016) in its ImageNet layout (four stages of 3, 24, 36 and 3 bottleneck blocks with inner widths
    64, 128, 256 and 512 (outputs 256 to 2048), 200 layers deep), with a CIFAR stem for 32×32
    images: a stride-1 3×3 convolution and no max-pool, so the last stage still sees 4×4 maps.
    """
    return _resnet(
        PreActResNet,
        _imagenet_spec("bottleneck", (3, 24, 36, 3), small_images=True),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_wide_resnet16_1(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """wide pre-activation ResNet WRN-16-1, CIFAR, dropout 0.3.

    The wide ResNet WRN-16-1 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    the pre-activation blocks of the paper, for 32×32 CIFAR images: a 16-channel 3×3 stem, then
    three stages of 2 basic blocks at widths 16, 32 and 64 (k = 1), depth 16 = 6n + 4 with n = 2,
    and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 2, width=1),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_wide_resnet16_2(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """wide pre-activation ResNet WRN-16-2, CIFAR, dropout 0.3.

    The wide ResNet WRN-16-2 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    the pre-activation blocks of the paper, for 32×32 CIFAR images: a 16-channel 3×3 stem, then
    three stages of 2 basic blocks at widths 32, 64 and 128 (k = 2), depth 16 = 6n + 4 with n = 2,
    and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 2, width=2),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_wide_resnet16_4(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """wide pre-activation ResNet WRN-16-4, CIFAR, dropout 0.3.

    The wide ResNet WRN-16-4 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    the pre-activation blocks of the paper, for 32×32 CIFAR images: a 16-channel 3×3 stem, then
    three stages of 2 basic blocks at widths 64, 128 and 256 (k = 4), depth 16 = 6n + 4 with n = 2,
    and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 2, width=4),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_wide_resnet16_8(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """wide pre-activation ResNet WRN-16-8, CIFAR, dropout 0.3.

    The wide ResNet WRN-16-8 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    the pre-activation blocks of the paper, for 32×32 CIFAR images: a 16-channel 3×3 stem, then
    three stages of 2 basic blocks at widths 128, 256 and 512 (k = 8), depth 16 = 6n + 4 with n = 2,
    and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 2, width=8),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_wide_resnet16_10(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """wide pre-activation ResNet WRN-16-10, CIFAR, dropout 0.3.

    The wide ResNet WRN-16-10 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    the pre-activation blocks of the paper, for 32×32 CIFAR images: a 16-channel 3×3 stem, then
    three stages of 2 basic blocks at widths 160, 320 and 640 (k = 10), depth 16 = 6n + 4 with n =
    2, and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 2, width=10),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_wide_resnet28_1(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """wide pre-activation ResNet WRN-28-1, CIFAR, dropout 0.3.

    The wide ResNet WRN-28-1 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    the pre-activation blocks of the paper, for 32×32 CIFAR images: a 16-channel 3×3 stem, then
    three stages of 4 basic blocks at widths 16, 32 and 64 (k = 1), depth 28 = 6n + 4 with n = 4,
    and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 4, width=1),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_wide_resnet28_2(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """wide pre-activation ResNet WRN-28-2, CIFAR, dropout 0.3.

    The wide ResNet WRN-28-2 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    the pre-activation blocks of the paper, for 32×32 CIFAR images: a 16-channel 3×3 stem, then
    three stages of 4 basic blocks at widths 32, 64 and 128 (k = 2), depth 28 = 6n + 4 with n = 4,
    and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 4, width=2),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_wide_resnet28_4(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """wide pre-activation ResNet WRN-28-4, CIFAR, dropout 0.3.

    The wide ResNet WRN-28-4 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    the pre-activation blocks of the paper, for 32×32 CIFAR images: a 16-channel 3×3 stem, then
    three stages of 4 basic blocks at widths 64, 128 and 256 (k = 4), depth 28 = 6n + 4 with n = 4,
    and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 4, width=4),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_wide_resnet28_8(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """wide pre-activation ResNet WRN-28-8, CIFAR, dropout 0.3.

    The wide ResNet WRN-28-8 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    the pre-activation blocks of the paper, for 32×32 CIFAR images: a 16-channel 3×3 stem, then
    three stages of 4 basic blocks at widths 128, 256 and 512 (k = 8), depth 28 = 6n + 4 with n = 4,
    and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 4, width=8),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_wide_resnet28_10(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """wide pre-activation ResNet WRN-28-10, CIFAR, dropout 0.3.

    The wide ResNet WRN-28-10 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    the pre-activation blocks of the paper, for 32×32 CIFAR images: a 16-channel 3×3 stem, then
    three stages of 4 basic blocks at widths 160, 320 and 640 (k = 10), depth 28 = 6n + 4 with n =
    4, and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 4, width=10),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_wide_resnet40_1(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """wide pre-activation ResNet WRN-40-1, CIFAR, dropout 0.3.

    The wide ResNet WRN-40-1 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    the pre-activation blocks of the paper, for 32×32 CIFAR images: a 16-channel 3×3 stem, then
    three stages of 6 basic blocks at widths 16, 32 and 64 (k = 1), depth 40 = 6n + 4 with n = 6,
    and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 6, width=1),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_wide_resnet40_2(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """wide pre-activation ResNet WRN-40-2, CIFAR, dropout 0.3.

    The wide ResNet WRN-40-2 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    the pre-activation blocks of the paper, for 32×32 CIFAR images: a 16-channel 3×3 stem, then
    three stages of 6 basic blocks at widths 32, 64 and 128 (k = 2), depth 40 = 6n + 4 with n = 6,
    and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 6, width=2),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_wide_resnet40_4(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """wide pre-activation ResNet WRN-40-4, CIFAR, dropout 0.3.

    The wide ResNet WRN-40-4 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    the pre-activation blocks of the paper, for 32×32 CIFAR images: a 16-channel 3×3 stem, then
    three stages of 6 basic blocks at widths 64, 128 and 256 (k = 4), depth 40 = 6n + 4 with n = 6,
    and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 6, width=4),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_wide_resnet40_8(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """wide pre-activation ResNet WRN-40-8, CIFAR, dropout 0.3.

    The wide ResNet WRN-40-8 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    the pre-activation blocks of the paper, for 32×32 CIFAR images: a 16-channel 3×3 stem, then
    three stages of 6 basic blocks at widths 128, 256 and 512 (k = 8), depth 40 = 6n + 4 with n = 6,
    and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 6, width=8),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="cifar")
def preact_wide_resnet40_10(
    *,
    num_classes: int = 10,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.3,
    zero_init_residual: bool = False,
) -> PreActResNet:
    """wide pre-activation ResNet WRN-40-10, CIFAR, dropout 0.3.

    The wide ResNet WRN-40-10 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), with
    the pre-activation blocks of the paper, for 32×32 CIFAR images: a 16-channel 3×3 stem, then
    three stages of 6 basic blocks at widths 160, 320 and 640 (k = 10), depth 40 = 6n + 4 with n =
    6, and dropout 0.3 between the two convolutions of each block.
    """
    return _resnet(
        PreActResNet,
        _cifar_spec("basic", 6, width=10),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="imagenet")
def wide_resnet50_2(
    *,
    num_classes: int = 1000,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """wide ResNet WRN-50-2, ImageNet, bottleneck width ×2.

    The wide ResNet WRN-50-2 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), in
    torchvision's form, for 224×224 ImageNet images: the layout of ResNet-50 (a 7×7/2 stem and a
    max-pool, then four stages of 3, 4, 6 and 3 bottleneck blocks) with the inner width of every
    bottleneck doubled (128 to 1024); the block outputs (256 to 2048) are unchanged.
    """
    return _resnet(
        ResNet,
        _imagenet_spec("bottleneck", (3, 4, 6, 3), width=2),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


@register_model(family="torch-resnet", dataset="imagenet")
def wide_resnet101_2(
    *,
    num_classes: int = 1000,
    shortcut: ShortcutOption = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> ResNet:
    """wide ResNet WRN-101-2, ImageNet, bottleneck width ×2.

    The wide ResNet WRN-101-2 of Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016), in
    torchvision's form, for 224×224 ImageNet images: the layout of ResNet-101 (a 7×7/2 stem and a
    max-pool, then four stages of 3, 4, 23 and 3 bottleneck blocks) with the inner width of every
    bottleneck doubled (128 to 1024); the block outputs (256 to 2048) are unchanged.
    """
    return _resnet(
        ResNet,
        _imagenet_spec("bottleneck", (3, 4, 23, 3), width=2),
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )
