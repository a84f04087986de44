"""Import torch-resnet checkpoints: the example trainer's dict or a plain state_dict.

The example (deep-trainer) saves ``{"model": state_dict, "optimizer", "epoch", "step",
"val_metric", …}`` without a ``module.`` prefix. Architecture, width and shortcut option
live only in the run directory's name, so they are read from the tensors:

* pre-activation iff there is a ``norm`` BatchNorm; bottleneck iff blocks have ``conv3``;
* CIFAR design (3 stages) or ImageNet design (4 stages), with a 3×3 stem for "-small";
* width from the first stage's channels; number of classes from ``head`` (none: features);
* shortcut option from the projection tensors: none at all is option A, 3×3 kernels are
  "conv", a projection in every block is C, otherwise B.

Checkpoints from before torch-resnet 0.0.2 name the projection ``shortcut.0.weight``
(post-activation) or ``shortcut.weight`` (pre-activation); they are renamed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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
    recorded_metrics,
    rename,
    strip_prefix,
    tensor_dict,
)
from normresnet_export.interop.torchvision import DEPTHS as IMAGENET_DEPTHS
from normresnet_export.models import list_models, model_info
from normresnet_export.preprocess import PRESETS

_LEGACY = [
    (r"^(layers\.\d+\.\d+\.shortcut)\.0\.weight$", r"\1.0.conv.weight"),  # post-activation, before 0.0.2
    (r"^(layers\.\d+\.\d+\.shortcut)\.weight$", r"\1.conv.weight"),  # pre-activation, before 0.0.2
]
_PROJECTION = re.compile(r"^layers\.(\d+)\.(\d+)\.shortcut(?:\.0)?\.conv\.weight$")


def _shortcut_option(state: dict[str, torch.Tensor], total_blocks: int) -> str:
    projections = [tensor for key, tensor in state.items() if _PROJECTION.match(key)]
    if not projections:
        return "A"
    if any(t.shape[-1] == 3 for t in projections):
        return "conv"
    return "C" if len(projections) == total_blocks else "B"


def infer(state: dict[str, torch.Tensor]) -> tuple[str, dict[str, Any]]:
    """(registered name, builder keywords) of a torch-resnet state_dict."""
    preact = "norm.weight" in state
    stem = state.get("init_layer.weight", state.get("init_layer.0.weight"))
    if stem is None:
        raise InputError("no stem convolution (init_layer) found")
    small = stem.shape[-1] == 3
    bottleneck = "layers.0.0.conv3.weight" in state
    blocks = blocks_per_stage(state, r"^layers\.(\d+)\.(\d+)\.")
    base = 16 if len(blocks) == 3 else 64
    inner = state["layers.0.0.conv1.weight"].shape[0]  # planes * width (basic: the block's output)
    width = inner // base
    prefix = "preact_" if preact else ""
    if len(blocks) == 3:
        if len(set(blocks)) != 1:
            raise InputError(f"a CIFAR ResNet has three stages of equal length, found {blocks}")
        n = blocks[0]
        if bottleneck:
            name = f"{prefix}resnet{9 * n + 2}"
        elif n in (2, 4, 6):  # wide ResNets: depth 6n + 4
            name = f"{prefix}wide_resnet{6 * n + 4}_{width}"
        else:
            name = f"{prefix}resnet{6 * n + 2}"
    else:
        kind = "bottleneck" if bottleneck else "basic"
        depth = lookup({b: d for (k, b), d in IMAGENET_DEPTHS.items() if k == kind}, blocks, f"{kind} stages")
        name = f"{prefix}resnet{depth}" if width == 1 else f"{prefix}wide_resnet{depth}_{width}"
        name += "_small" if small else ""
    if name not in list_models(family="torch-resnet"):
        raise InputError(
            f"the tensors describe {name} (blocks {blocks}, width {width}), which is not a registered model"
        )
    num_classes = state["head.weight"].shape[0] if "head.weight" in state else 0
    return name, {"num_classes": num_classes, "shortcut": _shortcut_option(state, sum(blocks))}


def read(obj: Any, path: Path, *, arch: str | None, model_kwargs: dict[str, Any]) -> Imported:
    """A torch-resnet training checkpoint or state_dict."""
    metrics: dict[str, Any] = {}
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        state = tensor_dict(obj["model"], "the 'model' entry (a state_dict)")
        metrics = recorded_metrics(obj, {"val_metric": "val_metric", "epoch": "epoch", "step": "step"})
    else:
        state = tensor_dict(obj, "a torch-resnet state_dict")
    state = rename(strip_prefix(state), _LEGACY)
    try:
        inferred, kwargs = infer(state)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    classes = kwargs["num_classes"]
    if model_info(inferred).dataset == "imagenet":
        preset: str | None = "imagenet"
    elif classes in (10, 100):  # the example trains on CIFAR-10 or CIFAR-100, each with its own statistics
        preset = f"cifar{classes}"
    else:
        preset = None  # features only, or another data set: the normalisation is unknown
    return Imported(
        arch=reconcile("--arch", arch, inferred),
        model_kwargs={
            "num_classes": reconcile_num_classes(model_kwargs, classes),
            "shortcut": reconcile("shortcut", model_kwargs.get("shortcut"), kwargs["shortcut"]),
        },
        state_dict=state,
        metrics=metrics,
        preprocessing=PRESETS[preset] if preset else None,
    )
