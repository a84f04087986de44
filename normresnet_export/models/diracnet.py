"""DiracNets v2: plain (skip-free) networks whose 3×3 convs carry the identity in their weight.

Paper: Zagoruyko & Komodakis, "DiracNets: Training Very Deep Neural Networks Without
Skip-Connections" (arXiv 1706.00388); layout from szagoruyko/diracnets. Every block is
``BN(DiracConv3×3(ReLU(x)))`` with the weight ``alpha * Delta + beta * normalize(V)``
(:class:`~normresnet_export.nn.dirac.DiracConv2d`), so a trained network folds into a
VGG-like chain of conv + ReLU.

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
from normresnet_export.models._registry import register_model
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
        # The reference's init: He-normal fan-in convs and fc, BN gamma ~ U[0, 1), fc bias 0;
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


# --------------------------------------------------------------------------------------------- builders


def cifar_design(depth: int, width: float) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Blocks per group and widths of the CIFAR DiracNet of ``depth`` and ``width`` (reference rule)."""
    if depth < 10 or (depth - 4) % 6:
        raise InputError(f"CIFAR DiracNet depth must be 6n + 4 with n >= 1, got {depth}")
    n = (depth - 4) // 6
    return (2 * n,) * 3, (int(16 * width), int(32 * width), int(64 * width))


# One builder per design the reference reports: the ImageNet DiracNet-18/34 (ResNet layouts,
# each residual unit two Dirac blocks), then the CIFAR depths at their reported widths.


@register_model(family="diracnet", dataset="imagenet")
def diracnet18(*, num_classes: int = 1000) -> DiracNet:
    """DiracNet-18 v2, ImageNet, Dirac blocks 4-4-4-4.

    The DiracNet v2 of Zagoruyko & Komodakis, "DiracNets: Training Very Deep Neural Networks Without
    Skip-Connections" (arXiv 1706.00388), for 224×224 ImageNet images: a plain chain without skip
    connections, a 7×7/2 stem and a 3×3/2 max-pool, then four groups of 4, 4, 4 and 4 Dirac blocks
    at widths 64, 128, 256 and 512 with 2×2 max-pools between them, 18 layers deep (the layout of
    ResNet-18, each residual unit two Dirac blocks). Every block is ``BN(DiracConv3×3(ReLU(x)))``,
    so a trained network folds into a VGG-like chain of conv + ReLU.
    """
    return DiracNet((4, 4, 4, 4), (64, 128, 256, 512), num_classes=num_classes, imagenet=True)


@register_model(family="diracnet", dataset="imagenet")
def diracnet34(*, num_classes: int = 1000) -> DiracNet:
    """DiracNet-34 v2, ImageNet, Dirac blocks 6-8-12-6.

    The DiracNet v2 of Zagoruyko & Komodakis, "DiracNets: Training Very Deep Neural Networks Without
    Skip-Connections" (arXiv 1706.00388), for 224×224 ImageNet images: a plain chain without skip
    connections, a 7×7/2 stem and a 3×3/2 max-pool, then four groups of 6, 8, 12 and 6 Dirac blocks
    at widths 64, 128, 256 and 512 with 2×2 max-pools between them, 34 layers deep (the layout of
    ResNet-34, each residual unit two Dirac blocks). Every block is ``BN(DiracConv3×3(ReLU(x)))``,
    so a trained network folds into a VGG-like chain of conv + ReLU.
    """
    return DiracNet((6, 8, 12, 6), (64, 128, 256, 512), num_classes=num_classes, imagenet=True)


@register_model(family="diracnet", dataset="cifar")
def diracnet_cifar16_1(*, num_classes: int = 10) -> DiracNet:
    """DiracNet-16-1 v2, CIFAR, 4 Dirac blocks per group.

    The DiracNet v2 of Zagoruyko & Komodakis, "DiracNets: Training Very Deep Neural Networks Without
    Skip-Connections" (arXiv 1706.00388), for 32×32 CIFAR images: a plain chain without skip
    connections, a 3×3 stem, then three groups of 4 Dirac blocks at widths 16, 32 and 64 with 2×2
    max-pools between them; depth 16 = 6n + 4 with n = 2 and width 1, as the reference names it.
    Every block is ``BN(DiracConv3×3(ReLU(x)))``, so a trained network folds into a VGG-like chain
    of conv + ReLU.
    """
    return DiracNet(*cifar_design(16, 1), num_classes=num_classes, imagenet=False)


@register_model(family="diracnet", dataset="cifar")
def diracnet_cifar16_2(*, num_classes: int = 10) -> DiracNet:
    """DiracNet-16-2 v2, CIFAR, 4 Dirac blocks per group.

    The DiracNet v2 of Zagoruyko & Komodakis, "DiracNets: Training Very Deep Neural Networks Without
    Skip-Connections" (arXiv 1706.00388), for 32×32 CIFAR images: a plain chain without skip
    connections, a 3×3 stem, then three groups of 4 Dirac blocks at widths 32, 64 and 128 with 2×2
    max-pools between them; depth 16 = 6n + 4 with n = 2 and width 2, as the reference names it.
    Every block is ``BN(DiracConv3×3(ReLU(x)))``, so a trained network folds into a VGG-like chain
    of conv + ReLU.
    """
    return DiracNet(*cifar_design(16, 2), num_classes=num_classes, imagenet=False)


@register_model(family="diracnet", dataset="cifar")
def diracnet_cifar16_4(*, num_classes: int = 10) -> DiracNet:
    """DiracNet-16-4 v2, CIFAR, 4 Dirac blocks per group.

    The DiracNet v2 of Zagoruyko & Komodakis, "DiracNets: Training Very Deep Neural Networks Without
    Skip-Connections" (arXiv 1706.00388), for 32×32 CIFAR images: a plain chain without skip
    connections, a 3×3 stem, then three groups of 4 Dirac blocks at widths 64, 128 and 256 with 2×2
    max-pools between them; depth 16 = 6n + 4 with n = 2 and width 4, as the reference names it.
    Every block is ``BN(DiracConv3×3(ReLU(x)))``, so a trained network folds into a VGG-like chain
    of conv + ReLU.
    """
    return DiracNet(*cifar_design(16, 4), num_classes=num_classes, imagenet=False)


@register_model(family="diracnet", dataset="cifar")
def diracnet_cifar28_1(*, num_classes: int = 10) -> DiracNet:
    """DiracNet-28-1 v2, CIFAR, 8 Dirac blocks per group.

    The DiracNet v2 of Zagoruyko & Komodakis, "DiracNets: Training Very Deep Neural Networks Without
    Skip-Connections" (arXiv 1706.00388), for 32×32 CIFAR images: a plain chain without skip
    connections, a 3×3 stem, then three groups of 8 Dirac blocks at widths 16, 32 and 64 with 2×2
    max-pools between them; depth 28 = 6n + 4 with n = 4 and width 1, as the reference names it.
    Every block is ``BN(DiracConv3×3(ReLU(x)))``, so a trained network folds into a VGG-like chain
    of conv + ReLU.
    """
    return DiracNet(*cifar_design(28, 1), num_classes=num_classes, imagenet=False)


@register_model(family="diracnet", dataset="cifar")
def diracnet_cifar28_2(*, num_classes: int = 10) -> DiracNet:
    """DiracNet-28-2 v2, CIFAR, 8 Dirac blocks per group.

    The DiracNet v2 of Zagoruyko & Komodakis, "DiracNets: Training Very Deep Neural Networks Without
    Skip-Connections" (arXiv 1706.00388), for 32×32 CIFAR images: a plain chain without skip
    connections, a 3×3 stem, then three groups of 8 Dirac blocks at widths 32, 64 and 128 with 2×2
    max-pools between them; depth 28 = 6n + 4 with n = 4 and width 2, as the reference names it.
    Every block is ``BN(DiracConv3×3(ReLU(x)))``, so a trained network folds into a VGG-like chain
    of conv + ReLU.
    """
    return DiracNet(*cifar_design(28, 2), num_classes=num_classes, imagenet=False)


@register_model(family="diracnet", dataset="cifar")
def diracnet_cifar28_4(*, num_classes: int = 10) -> DiracNet:
    """DiracNet-28-4 v2, CIFAR, 8 Dirac blocks per group.

    The DiracNet v2 of Zagoruyko & Komodakis, "DiracNets: Training Very Deep Neural Networks Without
    Skip-Connections" (arXiv 1706.00388), for 32×32 CIFAR images: a plain chain without skip
    connections, a 3×3 stem, then three groups of 8 Dirac blocks at widths 64, 128 and 256 with 2×2
    max-pools between them; depth 28 = 6n + 4 with n = 4 and width 4, as the reference names it.
    Every block is ``BN(DiracConv3×3(ReLU(x)))``, so a trained network folds into a VGG-like chain
    of conv + ReLU.
    """
    return DiracNet(*cifar_design(28, 4), num_classes=num_classes, imagenet=False)


@register_model(family="diracnet", dataset="cifar")
def diracnet_cifar34_1(*, num_classes: int = 10) -> DiracNet:
    """DiracNet-34-1 v2, CIFAR, 10 Dirac blocks per group.

    The DiracNet v2 of Zagoruyko & Komodakis, "DiracNets: Training Very Deep Neural Networks Without
    Skip-Connections" (arXiv 1706.00388), for 32×32 CIFAR images: a plain chain without skip
    connections, a 3×3 stem, then three groups of 10 Dirac blocks at widths 16, 32 and 64 with 2×2
    max-pools between them; depth 34 = 6n + 4 with n = 5 and width 1, as the reference names it.
    Every block is ``BN(DiracConv3×3(ReLU(x)))``, so a trained network folds into a VGG-like chain
    of conv + ReLU.
    """
    return DiracNet(*cifar_design(34, 1), num_classes=num_classes, imagenet=False)


@register_model(family="diracnet", dataset="cifar")
def diracnet_cifar34_2(*, num_classes: int = 10) -> DiracNet:
    """DiracNet-34-2 v2, CIFAR, 10 Dirac blocks per group.

    The DiracNet v2 of Zagoruyko & Komodakis, "DiracNets: Training Very Deep Neural Networks Without
    Skip-Connections" (arXiv 1706.00388), for 32×32 CIFAR images: a plain chain without skip
    connections, a 3×3 stem, then three groups of 10 Dirac blocks at widths 32, 64 and 128 with 2×2
    max-pools between them; depth 34 = 6n + 4 with n = 5 and width 2, as the reference names it.
    Every block is ``BN(DiracConv3×3(ReLU(x)))``, so a trained network folds into a VGG-like chain
    of conv + ReLU.
    """
    return DiracNet(*cifar_design(34, 2), num_classes=num_classes, imagenet=False)


@register_model(family="diracnet", dataset="cifar")
def diracnet_cifar40_1(*, num_classes: int = 10) -> DiracNet:
    """DiracNet-40-1 v2, CIFAR, 12 Dirac blocks per group.

    The DiracNet v2 of Zagoruyko & Komodakis, "DiracNets: Training Very Deep Neural Networks Without
    Skip-Connections" (arXiv 1706.00388), for 32×32 CIFAR images: a plain chain without skip
    connections, a 3×3 stem, then three groups of 12 Dirac blocks at widths 16, 32 and 64 with 2×2
    max-pools between them; depth 40 = 6n + 4 with n = 6 and width 1, as the reference names it.
    Every block is ``BN(DiracConv3×3(ReLU(x)))``, so a trained network folds into a VGG-like chain
    of conv + ReLU.
    """
    return DiracNet(*cifar_design(40, 1), num_classes=num_classes, imagenet=False)


@register_model(family="diracnet", dataset="cifar")
def diracnet_cifar40_2(*, num_classes: int = 10) -> DiracNet:
    """DiracNet-40-2 v2, CIFAR, 12 Dirac blocks per group.

    The DiracNet v2 of Zagoruyko & Komodakis, "DiracNets: Training Very Deep Neural Networks Without
    Skip-Connections" (arXiv 1706.00388), for 32×32 CIFAR images: a plain chain without skip
    connections, a 3×3 stem, then three groups of 12 Dirac blocks at widths 32, 64 and 128 with 2×2
    max-pools between them; depth 40 = 6n + 4 with n = 6 and width 2, as the reference names it.
    Every block is ``BN(DiracConv3×3(ReLU(x)))``, so a trained network folds into a VGG-like chain
    of conv + ReLU.
    """
    return DiracNet(*cifar_design(40, 2), num_classes=num_classes, imagenet=False)


@register_model(family="diracnet", dataset="cifar")
def diracnet_cifar40_4(*, num_classes: int = 10) -> DiracNet:
    """DiracNet-40-4 v2, CIFAR, 12 Dirac blocks per group.

    The DiracNet v2 of Zagoruyko & Komodakis, "DiracNets: Training Very Deep Neural Networks Without
    Skip-Connections" (arXiv 1706.00388), for 32×32 CIFAR images: a plain chain without skip
    connections, a 3×3 stem, then three groups of 12 Dirac blocks at widths 64, 128 and 256 with 2×2
    max-pools between them; depth 40 = 6n + 4 with n = 6 and width 4, as the reference names it.
    Every block is ``BN(DiracConv3×3(ReLU(x)))``, so a trained network folds into a VGG-like chain
    of conv + ReLU.
    """
    return DiracNet(*cifar_design(40, 4), num_classes=num_classes, imagenet=False)
