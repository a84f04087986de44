"""DiracNets v2: plain (skip-free) networks whose 3×3 convs carry the identity in their weight.

Paper: Zagoruyko & Komodakis, "DiracNets: Training Very Deep Neural Networks Without
Skip-Connections" (arXiv 1706.00388); layout from szagoruyko/diracnets
(``shared/spec/ARCHITECTURES.md`` §5). Every block is ``BN(DiracConv3×3(ReLU(x)))`` with
the weight ``alpha * Delta + beta * normalize(V)`` (:class:`~normresnet_export.nn.dirac.DiracConv2d`),
so a trained network folds into a VGG-like chain of conv + ReLU.

State-dict keys mirror the reference's functional parameter dict: its ``conv``, ``bn.*``,
``group{g}.block{b}.conv``, ``.alpha``, ``.beta``, ``.bn.*`` and ``fc.*`` become our
``conv.weight``, ``bn.*``, ``group{g}.block{b}.conv.weight`` / ``.conv.alpha`` /
``.conv.beta``, ``group{g}.block{b}.bn.*`` and ``fc.*``; its ``eye*`` entries are the
constant Dirac tensors, rebuilt by each layer. (BatchNorm here also tracks
``num_batches_tracked``, which the functional format lacks.)

* CIFAR (``diracnet_cifar{depth}_{width}``): 3×3 stem → BN → ReLU → three groups of
  ``2n`` blocks (n = (depth - 4) / 6) with 2×2 max-pools between them → ReLU → pool → fc;
  widths ``int(16w)``, ``int(32w)``, ``int(64w)``.
* ImageNet (``diracnet18``/``34``): 7×7/2 stem → BN (no ReLU: the first block's ReLU
  provides it) → 3/2 max-pool → four groups with 2×2 max-pools between → ReLU → pool → fc.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from normresnet_export.errors import InputError
from normresnet_export.models._layers import make_head
from normresnet_export.models._registry import register_partial
from normresnet_export.nn.dirac import DiracConv2d
from normresnet_export.nn.pooling import GlobalAvgPool2d


class DiracBlock(nn.Module):
    """``BN(DiracConv3×3(ReLU(x)))``: no skip connection, the identity lives in the weight."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = DiracConv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(F.relu(x)))


class DiracNet(nn.Sequential):
    """A DiracNet (v2), CIFAR or ImageNet design: a plain chain, hence an ``nn.Sequential``.

    Children: ``conv``, ``bn``, then ``relu0`` (CIFAR) or ``pool0`` (ImageNet 3/2 max-pool),
    ``group0``, ``pool1``, ``group1``, … (2×2 max-pools between groups), ``relu``,
    ``avgpool``, ``fc``.

    Args:
        blocks_per_group: Dirac blocks in each group.
        widths: Channels of each group (the stem outputs ``widths[0]``).
        num_classes: Classifier size (0: return pooled features).
        imagenet: ImageNet stem (7×7/2 conv + 3/2 max-pool) instead of the CIFAR 3×3 stem.
    """

    def __init__(
        self, blocks_per_group: tuple[int, ...], widths: tuple[int, ...], *, num_classes: int, imagenet: bool
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if imagenet:
            layers["conv"] = nn.Conv2d(3, widths[0], 7, stride=2, padding=3, bias=False)
            layers["bn"] = nn.BatchNorm2d(widths[0])
            # No ReLU here: the first block's ReLU provides it (ReLU commutes with max-pool).
            layers["pool0"] = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            layers["conv"] = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
            layers["bn"] = nn.BatchNorm2d(widths[0])
            layers["relu0"] = nn.ReLU()
        in_channels = widths[0]
        for g, (num_blocks, width) in enumerate(zip(blocks_per_group, widths, strict=True)):
            if g > 0:
                layers[f"pool{g}"] = nn.MaxPool2d(2)
            blocks: OrderedDict[str, nn.Module] = OrderedDict()
            for b in range(num_blocks):
                blocks[f"block{b}"] = DiracBlock(in_channels, width)
                in_channels = width
            layers[f"group{g}"] = nn.Sequential(blocks)
        layers["relu"] = nn.ReLU()
        layers["avgpool"] = GlobalAvgPool2d()
        layers["fc"] = make_head(in_channels, num_classes)
        super().__init__(layers)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # Reference init (spec §5.4): He-normal fan-in convs and fc, BN gamma ~ U[0, 1), fc bias 0;
        # alpha = 1 and beta = 0.1 come from DiracConv2d itself.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)) and m.weight.is_meta:
                continue
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before the classifier."""
        for module in list(self)[:-1]:
            x = module(x)
        return x


def _diracnet(
    blocks_per_group: tuple[int, ...], widths: tuple[int, ...], imagenet: bool, *, num_classes: int
) -> DiracNet:
    """Build a DiracNet; the registered builders are partials of this."""
    return DiracNet(blocks_per_group, widths, num_classes=num_classes, imagenet=imagenet)


def cifar_design(depth: int, width: float) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Blocks per group and widths of the CIFAR DiracNet of ``depth`` and ``width`` (reference rule)."""
    if depth < 10 or (depth - 4) % 6:
        raise InputError(f"CIFAR DiracNet depth must be 6n + 4 with n >= 1, got {depth}")
    n = (depth - 4) // 6
    return (2 * n,) * 3, (int(16 * width), int(32 * width), int(64 * width))


_IMAGENET = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}  # ResNet layouts; each unit is two Dirac blocks
_CIFAR = {16: (1, 2, 4), 28: (1, 2, 4), 34: (1, 2), 40: (1, 2, 4)}  # the widths the reference reports

for _depth, _units in _IMAGENET.items():
    _blocks = tuple(2 * u for u in _units)
    register_partial(
        f"diracnet{_depth}",
        _diracnet,
        _blocks,
        (64, 128, 256, 512),
        True,
        family="diracnet",
        dataset="imagenet",
        description=f"DiracNet-{_depth} v2, ImageNet, Dirac blocks {'-'.join(map(str, _blocks))}",
        num_classes=1000,
    )

for _depth, _widths in _CIFAR.items():
    for _width in _widths:
        _blocks, _channels = cifar_design(_depth, _width)
        register_partial(
            f"diracnet_cifar{_depth}_{_width}",
            _diracnet,
            _blocks,
            _channels,
            False,
            family="diracnet",
            dataset="cifar",
            description=f"DiracNet-{_depth}-{_width} v2, CIFAR, {_blocks[0]} Dirac blocks per group",
            num_classes=10,
        )
