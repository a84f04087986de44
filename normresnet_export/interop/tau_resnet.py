"""Import tau-ResNet checkpoints: pickled model objects (read safely) or plain state_dicts.

The training scripts save ``{"net": model object, "acc", "epoch", "rng_state"}`` as
``<arch>_<sess>_tau<tau>_<seed>.ckpt``; a bare model object (``torch.save(net)``), a
``{"net": state_dict}`` dict and a plain state_dict are read too, in the zip layout and in the
legacy one that the scripts' PyTorch 1.0 wrote. The model object is read by
:mod:`~normresnet_export.files.safe_pickle` without importing the scripts' classes. The BN
variant keeps tau only as a plain attribute, found on the pickled model and every block, and
in the file name; the no-BN variant has it as a parameter.
Whatever is present must agree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from normresnet_export.errors import CheckpointError, InputError
from normresnet_export.files.safe_pickle import flatten, is_stand_in
from normresnet_export.interop._common import (
    Imported,
    blocks_per_stage,
    lookup,
    reconcile,
    reconcile_num_classes,
    recorded_metrics,
    strip_prefix,
    tensor_dict,
)
from normresnet_export.interop.torchvision import DEPTHS as IMAGENET_DEPTHS
from normresnet_export.preprocess import PRESETS

_CIFAR_DEPTHS = {3: 20, 5: 32, 7: 44, 9: 56, 18: 110, 200: 1202}  # blocks per stage -> depth (6n + 2)
_FILE_TAU = re.compile(r"_tau(\d+(?:\.\d+)?)_")


def _agreeing(values: list[float], source: str) -> float | None:
    if not values:
        return None
    if any(not math.isclose(v, values[0], rel_tol=1e-9) for v in values):
        raise InputError(f"the values of tau in {source} disagree: {sorted(set(values))}")
    return values[0]


def _tau(path: Path, recorded: float | None, explicit: Any) -> float:
    """tau from the pickled attribute or the file name (to its 5 decimals), checked against ``explicit``."""
    match = _FILE_TAU.search(path.name)
    from_name = float(match.group(1)) if match else None
    if recorded is not None and from_name is not None and not math.isclose(recorded, from_name, abs_tol=1e-5):
        raise InputError(f"{path}: the pickled model has tau={recorded}, the file name says tau={from_name}")
    inferred = recorded if recorded is not None else from_name
    if (
        explicit is not None
        and inferred is not None
        and not math.isclose(float(explicit), inferred, abs_tol=1e-5)
    ):
        raise InputError(f"tau {explicit!r} contradicts the checkpoint, which has {inferred!r}")
    value = explicit if explicit is not None else inferred
    if value is None:
        raise InputError(
            f"{path} does not record tau (the BatchNorm variant keeps it in the pickled model or the file "
            "name, "
            "e.g. resnet110_1_tau0.13600_0.ckpt); pass --model-arg tau=VALUE"
        )
    return float(value)


def _model_state(net: Any, path: Path) -> tuple[dict[str, Any], float | None]:
    """A pickled model's state_dict and the tau its modules record (``None`` when they do not)."""
    try:
        state, attributes = flatten(net)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return state, _agreeing(attributes.get("tau", []), str(path))


def read(obj: Any, path: Path, *, arch: str | None, model_kwargs: dict[str, Any]) -> Imported:
    """A tau-ResNet training checkpoint (pickled model), a bare pickled model, or a state_dict."""
    metrics: dict[str, Any] = {}
    recorded: float | None = None
    if is_stand_in(obj):  # torch.save(net)
        state, recorded = _model_state(obj, path)
    elif isinstance(obj, Mapping) and "net" in obj:
        net = obj["net"]
        if is_stand_in(net):
            state, recorded = _model_state(net, path)
        else:
            state = tensor_dict(net, "the 'net' entry (a model or a state_dict)")
        metrics = recorded_metrics(obj, {"top1": "acc", "epoch": "epoch"})
    else:
        state = tensor_dict(obj, "a tau-ResNet state_dict")
    state = strip_prefix(state)
    without_bn = any(key.endswith(".bias1a") for key in state)
    imagenet = state["conv1.weight"].shape[-1] == 7
    blocks = blocks_per_stage(state, r"^layer(\d+)\.(\d+)\.")
    if imagenet:
        depth = lookup(
            {b: d for (kind, b), d in IMAGENET_DEPTHS.items() if kind == "bottleneck"}, blocks, "stages"
        )
    elif len(set(blocks)) == 1 and len(blocks) == 3:
        depth = lookup(_CIFAR_DEPTHS, blocks[0], "blocks per stage")
    else:
        raise InputError(f"{path}: a CIFAR tau-ResNet has three stages of equal length, found {blocks}")
    inferred = f"tau_resnet{depth}" + ("_nobn" if without_bn else "")
    if without_bn:
        # A learned parameter: the file name holds only its initial value, so only an explicit tau is checked.
        tau = float(state["tau"].item())
        explicit = model_kwargs.get("tau")
        if explicit is not None and not math.isclose(float(explicit), tau, rel_tol=1e-6, abs_tol=1e-6):
            raise InputError(f"tau {explicit!r} contradicts the checkpoint, which has {tau!r}")
    else:
        tau = _tau(path, recorded, model_kwargs.get("tau"))
    classes = reconcile_num_classes(model_kwargs, state["fc.weight"].shape[0])
    return Imported(
        arch=reconcile("--arch", arch, inferred),
        model_kwargs={"num_classes": classes, "tau": tau},
        state_dict=state,
        metrics=metrics,
        preprocessing=PRESETS["imagenet" if imagenet else "cifar10"],
    )
