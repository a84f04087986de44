"""Import LeNo ``main.py`` checkpoints: LeNo-ResNets and the repository's two baselines.

``main.py`` saves ``{"epoch", "arch", "state_dict", "best_acc1", "val_acc1", "optimizer"}``,
keys prefixed ``module.`` under DataParallel/DDP. The depth is not stored; it follows from
the blocks per stage. ``arch`` picks the mapping:

* ``lenoresnet`` -> ``lenoresnet{depth}`` (same key names);
* ``resnet`` (torchvision's ResNet) -> this project's ``resnet{depth}`` (torch-resnet family);
* ``preactresnet`` -> ``leno_baseline_preactresnet{depth}`` (``downsample`` is ``shortcut`` here).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from normresnet_export.errors import InputError
from normresnet_export.interop import torchvision
from normresnet_export.interop._common import (
    Imported,
    blocks_per_stage,
    lookup,
    reconcile,
    reconcile_num_classes,
    recorded_metrics,
    rename,
    strip_prefix,
    tensor_dict,
)
from normresnet_export.preprocess import PRESETS

DEPTHS = {
    (3, 4, 6, 3): 50,
    (3, 4, 23, 3): 101,
    (3, 8, 36, 3): 152,
    (3, 24, 36, 3): 200,
    (4, 45, 80, 4): 401,
    (4, 56, 102, 4): 500,
}


def preact_baseline_to_ours(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The pre-activation baseline's names -> ours (its ``downsample`` is our ``shortcut``)."""
    return rename(state, [(r"\.downsample\.", ".shortcut.")])


def _layout(state: dict[str, torch.Tensor]) -> str:
    """Which of the repository's three archs a state_dict's keys belong to."""
    if "conv1_1.weight" in state:
        return "lenoresnet"
    if "bn.weight" in state and "conv1.bias" in state:
        return "preactresnet"
    return "resnet"


def read(obj: Any, path: Path, *, arch: str | None, model_kwargs: dict[str, Any]) -> Imported:
    """A LeNo ``main.py`` checkpoint (or the bare state_dict of one of its models)."""
    metrics: dict[str, Any] = {}
    recorded = None
    if isinstance(obj, Mapping) and "state_dict" in obj:
        state = strip_prefix(tensor_dict(obj["state_dict"], "the 'state_dict' entry"))
        recorded = obj.get("arch")
        metrics = recorded_metrics(obj, {"top1": "best_acc1", "val_top1": "val_acc1", "epoch": "epoch"})
    else:
        state = strip_prefix(tensor_dict(obj, "a LeNo state_dict"))
    layout = _layout(state)
    if recorded is not None and recorded != layout:
        raise InputError(f"{path} records arch {recorded!r}, but its tensors are those of a {layout!r} model")
    depth = lookup(DEPTHS, blocks_per_stage(state, r"^layer(\d+)\.(\d+)\."), "blocks per stage")
    if layout == "lenoresnet":
        inferred, mapped = f"lenoresnet{depth}", state
    elif layout == "preactresnet":
        inferred, mapped = f"leno_baseline_preactresnet{depth}", preact_baseline_to_ours(state)
    else:
        inferred, mapped = f"resnet{depth}", torchvision.to_torch_resnet(state)
    return Imported(
        arch=reconcile("--arch", arch, inferred),
        model_kwargs={"num_classes": reconcile_num_classes(model_kwargs, state["fc.weight"].shape[0])},
        state_dict=mapped,
        metrics=metrics,
        preprocessing=PRESETS["imagenet"],
    )
