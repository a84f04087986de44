"""The unified ResNets of torch-resnet: post-activation, pre-activation and wide, for CIFAR and ImageNet.

Papers: He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016) and
"Identity Mappings in Deep Residual Networks" (ECCV 2016); Zagoruyko & Komodakis, "Wide
Residual Networks" (BMVC 2016). Layout and state-dict keys follow raphaelreme/torch-resnet
0.0.4 (``init_layer``, ``layers.<stage>.<block>``, ``shortcut``, ``norm``, ``head``) so its
checkpoints map one to one; see ``shared/spec/ARCHITECTURES.md`` §4.

Every network is described by a :class:`ResNetSpec`; the builders at the bottom register
one name per depth the papers use. Shortcut options (``shortcut="A"|"B"|"C"|"conv"``) are
in :mod:`normresnet_export.nn.shortcuts`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from normresnet_export.errors import InputError
from normresnet_export.models._layers import conv1x1, conv3x3, init_conv_bn, make_head
from normresnet_export.models._registry import Dataset, register_partial
from normresnet_export.nn.pooling import GlobalAvgPool2d
from normresnet_export.nn.shortcuts import make_shortcut

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


def _resnet(
    spec: ResNetSpec,
    preact: bool,
    *,
    num_classes: int,
    shortcut: str = "B",
    drop_rate: float = 0.0,
    zero_init_residual: bool = False,
) -> nn.Module:
    """Build a (pre-activation) ResNet of ``spec``; the registered builders are partials of this."""
    network = PreActResNet if preact else ResNet
    return network(
        spec,
        num_classes=num_classes,
        shortcut=shortcut,
        drop_rate=drop_rate,
        zero_init_residual=zero_init_residual,
    )


_CIFAR_WIDTHS = (16, 32, 64)
_IMAGENET_WIDTHS = (64, 128, 256, 512)

#: CIFAR depths: 6n + 2 with basic blocks, 9n + 2 with bottlenecks (shortcut convs not counted).
_CIFAR_DEPTHS: dict[int, tuple[BlockKind, int]] = {
    20: ("basic", 3),
    32: ("basic", 5),
    44: ("basic", 7),
    56: ("basic", 9),
    110: ("basic", 18),
    164: ("bottleneck", 18),
    1001: ("bottleneck", 111),
    1202: ("basic", 200),
}
_IMAGENET_DEPTHS: dict[int, tuple[BlockKind, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
#: Wide ResNets (CIFAR): depth 6n + 4 and the widths the WRN paper reports.
_WRN_DEPTHS = {16: 2, 28: 4, 40: 6}
_WRN_WIDTHS = (1, 2, 4, 8, 10)


def _register(
    name: str, spec: ResNetSpec, preact: bool, dataset: Dataset, description: str, **defaults: object
) -> None:
    defaults.setdefault("num_classes", 10 if dataset == "cifar" else 1000)
    register_partial(
        name,
        _resnet,
        spec,
        preact,
        family="torch-resnet",
        dataset=dataset,
        description=description,
        **defaults,
    )


def _register_all() -> None:
    for preact, prefix, kind in ((False, "", "ResNet"), (True, "preact_", "pre-activation ResNet")):
        for depth, (block, n) in _CIFAR_DEPTHS.items():
            spec = ResNetSpec(block, (n, n, n), _CIFAR_WIDTHS, 16, small_images=True)
            _register(
                f"{prefix}resnet{depth}",
                spec,
                preact,
                "cifar",
                f"{kind}-{depth}, CIFAR, {block} blocks {n}-{n}-{n}",
            )
        for depth, (block, blocks) in _IMAGENET_DEPTHS.items():
            layout = "-".join(map(str, blocks))
            spec = ResNetSpec(block, blocks, _IMAGENET_WIDTHS, 64, small_images=False)
            _register(
                f"{prefix}resnet{depth}",
                spec,
                preact,
                "imagenet",
                f"{kind}-{depth}, ImageNet, {block} blocks {layout}",
            )
            small = ResNetSpec(block, blocks, _IMAGENET_WIDTHS, 64, small_images=True)
            _register(
                f"{prefix}resnet{depth}_small",
                small,
                preact,
                "cifar",
                f"{kind}-{depth} with a CIFAR stem (3×3 conv, no max-pool), {block} blocks {layout}",
            )
        for depth, n in _WRN_DEPTHS.items():
            for width in _WRN_WIDTHS:
                spec = ResNetSpec("basic", (n, n, n), _CIFAR_WIDTHS, 16, small_images=True, width=width)
                _register(
                    f"{prefix}wide_resnet{depth}_{width}",
                    spec,
                    preact,
                    "cifar",
                    f"wide {kind} WRN-{depth}-{width}, CIFAR, dropout 0.3",
                    drop_rate=0.3,
                )
    for depth in (50, 101):
        spec = ResNetSpec(
            "bottleneck", _IMAGENET_DEPTHS[depth][1], _IMAGENET_WIDTHS, 64, small_images=False, width=2
        )
        _register(
            f"wide_resnet{depth}_2",
            spec,
            False,
            "imagenet",
            f"wide ResNet WRN-{depth}-2, ImageNet, bottleneck width ×2",
        )


_register_all()
