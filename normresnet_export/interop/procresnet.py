"""Import ProcResNet_PyTorch ``main.py`` checkpoints (ProcResNet and its pre-activation baselines).

``main.py`` saves ``{"net": state_dict, "acc": test accuracy %, "epoch": int}`` with a
DataParallel ``module.`` prefix. The model name is not stored: ``trans_conv1`` means
ProcResNet, a shortcut conv means the baseline, and the depth follows from the blocks per
stage (9n + 4 and 9n + 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from normresnet_export.errors import InputError
from normresnet_export.interop._common import (
    Imported,
    blocks_per_stage,
    reconcile,
    reconcile_num_classes,
    recorded_metrics,
    strip_prefix,
    tensor_dict,
)
from normresnet_export.models import list_models
from normresnet_export.preprocess import PRESETS


def read(obj: Any, path: Path, *, arch: str | None, model_kwargs: dict[str, Any]) -> Imported:
    """A ``main.py`` checkpoint, or the bare state_dict of one of these models."""
    metrics: dict[str, Any] = {}
    if isinstance(obj, Mapping) and "net" in obj:
        state = tensor_dict(obj["net"], "the 'net' entry (a state_dict)")
        metrics = recorded_metrics(obj, {"top1": "acc", "epoch": "epoch"})
    else:
        state = tensor_dict(obj, "a ProcResNet state_dict")
    state = strip_prefix(state)
    blocks = blocks_per_stage(state, r"^layer(\d+)\.(\d+)\.")
    if len(blocks) != 3 or len(set(blocks)) != 1:
        raise InputError(f"{path}: expected three stages of equal length, found blocks per stage {blocks}")
    n = blocks[0]
    if "trans_conv1.weight" in state:
        inferred = f"procresnet{9 * n + 4}"
    elif "layer1.0.shortcut.2.weight" in state:
        inferred = f"procresnet_baseline{9 * n + 2}"
    else:
        raise InputError(
            f"{path}: neither a ProcResNet (trans_conv1) nor its baseline (projection shortcuts)"
        )
    if inferred not in list_models(family="procresnet"):
        raise InputError(f"{path}: {n} blocks per stage make {inferred}, which is not a registered model")
    return Imported(
        arch=reconcile("--arch", arch, inferred),
        model_kwargs={"num_classes": reconcile_num_classes(model_kwargs, state["linear.weight"].shape[0])},
        state_dict=state,
        metrics=metrics,
        preprocessing=PRESETS["cifar-wrn"],
    )
