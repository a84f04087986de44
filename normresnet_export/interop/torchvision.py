"""Import torchvision ResNet / wide-ResNet state_dicts into the torch-resnet family's ImageNet models.

torchvision's names (``conv1``, ``bn1``, ``layerK.B``, ``downsample.0/1``, ``fc``) map one to
one onto torch-resnet's (``init_layer.0``, ``init_layer.1``, ``layers.K-1.B``,
``shortcut.0.conv``, ``shortcut.1``, ``head``); the networks are the same ResNet v1.5. LeNo's
``resnet`` baseline uses torchvision's names too and imports through this mapping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from normresnet_export.errors import InputError
from normresnet_export.interop._common import (
    Imported,
    blocks_per_stage,
    lookup,
    reconcile,
    reconcile_num_classes,
    rename,
    strip_prefix,
    tensor_dict,
)
from normresnet_export.preprocess import PRESETS

#: (block kind, blocks per stage) -> depth of the ImageNet designs.
DEPTHS: dict[tuple[str, tuple[int, ...]], int] = {
    ("basic", (2, 2, 2, 2)): 18,
    ("basic", (3, 4, 6, 3)): 34,
    ("bottleneck", (3, 4, 6, 3)): 50,
    ("bottleneck", (3, 4, 23, 3)): 101,
    ("bottleneck", (3, 8, 36, 3)): 152,
    ("bottleneck", (3, 24, 36, 3)): 200,
}

_RULES = [
    (r"^conv1\.", "init_layer.0."),
    (r"^bn1\.", "init_layer.1."),
    (r"^layer(\d)\.", lambda m: f"layers.{int(m.group(1)) - 1}."),
    (r"\.downsample\.0\.", ".shortcut.0.conv."),
    (r"\.downsample\.1\.", ".shortcut.1."),
    (r"^fc\.", "head."),
]


def to_torch_resnet(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision key names -> torch-resnet key names."""
    return rename(state_dict, _RULES)


def infer_arch(state_dict: dict[str, torch.Tensor]) -> str:
    """The registered name of a torchvision-named ImageNet ResNet, from its blocks and widths."""
    kind = "bottleneck" if "layer1.0.conv3.weight" in state_dict else "basic"
    blocks = blocks_per_stage(state_dict, r"^layer(\d+)\.(\d+)\.")
    depth = lookup({k[1]: v for k, v in DEPTHS.items() if k[0] == kind}, blocks, f"{kind} blocks per stage")
    width = state_dict["layer1.0.conv1.weight"].shape[0] // 64
    return f"resnet{depth}" if width == 1 else f"wide_resnet{depth}_{width}"


def read(obj: Any, path: Path, *, arch: str | None, model_kwargs: dict[str, Any]) -> Imported:
    """A torchvision ``resnetN`` / ``wide_resnetN_2`` state_dict."""
    state = strip_prefix(tensor_dict(obj, "a torchvision ResNet state_dict"))
    if "conv1.weight" not in state or "layer1.0.conv1.weight" not in state:
        raise InputError(
            f"{path} is not a torchvision ResNet state_dict (keys start {', '.join(list(state)[:4])}, …)"
        )
    num_classes = state["fc.weight"].shape[0] if "fc.weight" in state else 0
    return Imported(
        arch=reconcile("--arch", arch, infer_arch(state)),
        model_kwargs={
            "num_classes": reconcile_num_classes(model_kwargs, num_classes),
            "shortcut": reconcile(
                "shortcut", model_kwargs.get("shortcut"), "B"
            ),  # projections where shapes change
        },
        state_dict=to_torch_resnet(state),
        preprocessing=PRESETS["imagenet"],
    )
