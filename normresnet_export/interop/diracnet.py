"""Import DiracNet checkpoints (functional and folded), and name the published folded layout.

Formats:

* ``train.py``'s ``model.pt7``: ``{"params": every entry, "epoch", "optimizer"}``, a flat dict
  of learnable tensors, BatchNorm statistics and the constant ``eye<no>_<ni>_3_3`` Dirac
  tensors (one per block shape);
* the published unfolded files: ``{"params": learnable, "stats": statistics and eyes}``;
* the published folded files (``diracnet18v2folded-*.pth``): a plain state_dict of the folded
  ImageNet module, ``features.conv``, ``features.group{g}.block{b}.conv`` (with biases), ``fc``.

Functional names map onto ours as ``conv`` -> ``conv.weight``,
``group{g}.block{b}.conv`` -> ``….conv.weight``, ``….alpha``/``….beta`` -> ``….conv.alpha``/
``….conv.beta``; BatchNorm entries keep their names. The ``eye*`` entries are checked to be
the Dirac tensors our layers rebuild. The folded files import as an already folded
checkpoint: their names are ours with a ``features.`` prefix on all but the classifier
(:func:`published_folded_to_ours`; :func:`ours_to_published_folded` is the way back, which
``normexport export --layout diracnet`` writes).
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
    tensor_dict,
)
from normresnet_export.models import list_models
from normresnet_export.nn.dirac import dirac_delta
from normresnet_export.preprocess import PRESETS

IMAGENET_DEPTHS = {(4, 4, 4, 4): 18, (6, 8, 12, 6): 34}  # Dirac blocks per group -> depth
_BLOCK_CONV = re.compile(r"^group(\d+)\.block(\d+)\.conv$")
#: The published folded module keeps everything but the classifier in a ``features`` Sequential.
_FEATURES = "features."
_CLASSIFIER = "fc."
#: The models the published folded layout exists for, and its classifier's size (ImageNet, built in).
PUBLISHED_FOLDED_ARCHS = tuple(f"diracnet{depth}" for depth in IMAGENET_DEPTHS.values())
PUBLISHED_FOLDED_CLASSES = 1000


def _check_eyes(eyes: dict[str, torch.Tensor], block_shapes: set[tuple[int, ...]], path: Path) -> None:
    """Every ``eye*`` entry must be the Dirac tensor of a block conv's shape (our layers rebuild it)."""
    for key, tensor in eyes.items():
        shape = tuple(tensor.shape)
        if key != "eye" + "_".join(map(str, shape)) or shape not in block_shapes:
            raise InputError(f"{path}: entry {key} {list(shape)} matches no Dirac block of the network")
        if not torch.equal(tensor.float(), dirac_delta(shape)):
            raise InputError(f"{path}: entry {key} is not the Dirac tensor of shape {list(shape)}")


def functional_to_ours(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Functional DiracNet names -> ours (the ``eye*`` constants must be removed first)."""
    state = {}
    for key, tensor in params.items():
        if key == "conv" or _BLOCK_CONV.match(key):
            state[key + ".weight"] = tensor
        elif key.endswith((".alpha", ".beta")):
            block, leaf = key.rsplit(".", 1)
            state[f"{block}.conv.{leaf}"] = tensor
        else:
            state[key] = tensor
    return state


def _name(blocks: tuple[int, ...], widths: tuple[int, ...], imagenet: bool, path: Path) -> str:
    if imagenet:
        if widths != (64, 128, 256, 512):
            raise InputError(f"{path}: ImageNet DiracNets have widths 64/128/256/512, found {widths}")
        return f"diracnet{lookup(IMAGENET_DEPTHS, blocks, 'Dirac blocks per group')}"
    if len(blocks) != 3 or len(set(blocks)) != 1 or blocks[0] % 2:
        raise InputError(f"{path}: a CIFAR DiracNet has three groups of 2n blocks, found {blocks}")
    depth, width = 3 * blocks[0] + 4, widths[0] / 16
    name = f"diracnet_cifar{depth}_{width:g}"
    if name not in list_models(family="diracnet") or widths != (16 * width, 32 * width, 64 * width):
        raise InputError(
            f"{path}: depth {depth} and widths {widths} make {name}, which is not a registered model"
        )
    return name


def read_functional(obj: Any, path: Path, *, arch: str | None, model_kwargs: dict[str, Any]) -> Imported:
    """A functional DiracNet checkpoint: train.py's ``model.pt7`` or a published unfolded file."""
    metrics: dict[str, Any] = {}
    if isinstance(obj, Mapping) and isinstance(obj.get("params"), Mapping):
        flat = dict(tensor_dict(obj["params"], "the 'params' entry"))
        flat.update(tensor_dict(obj["stats"], "the 'stats' entry") if obj.get("stats") else {})
        metrics = recorded_metrics(obj, {"epoch": "epoch"})
    else:
        flat = tensor_dict(obj, "a DiracNet parameter dict")
    eyes = {k: v for k, v in flat.items() if k.startswith("eye")}
    params = {k: v for k, v in flat.items() if not k.startswith("eye")}
    if "conv" not in params or "fc.weight" not in params:
        raise InputError(f"{path}: a functional DiracNet has entries 'conv' and 'fc.weight'")
    groups = blocks_per_stage(params, r"^group(\d+)\.block(\d+)\.conv$")
    widths = tuple(params[f"group{g}.block0.conv"].shape[0] for g in range(len(groups)))
    imagenet = params["conv"].shape[-1] == 7
    _check_eyes(eyes, {tuple(v.shape) for k, v in params.items() if _BLOCK_CONV.match(k)}, path)
    return Imported(
        arch=reconcile("--arch", arch, _name(groups, widths, imagenet, path)),
        model_kwargs={"num_classes": reconcile_num_classes(model_kwargs, params["fc.weight"].shape[0])},
        state_dict=functional_to_ours(params),
        metrics=metrics,
        preprocessing=PRESETS["imagenet" if imagenet else "cifar-wrn"],
    )


def read_folded(obj: Any, path: Path, *, arch: str | None, model_kwargs: dict[str, Any]) -> Imported:
    """A published folded DiracNet-18/34 state_dict (``features.*`` and ``fc.*``)."""
    state = tensor_dict(obj, "a folded DiracNet state_dict")
    if "features.conv.weight" not in state:
        raise InputError(f"{path}: a folded DiracNet has 'features.conv.weight'")
    ours = published_folded_to_ours(state)
    groups = blocks_per_stage(ours, r"^group(\d+)\.block(\d+)\.conv\.weight$")
    name = f"diracnet{lookup(IMAGENET_DEPTHS, groups, 'Dirac blocks per group')}"
    return Imported(
        arch=reconcile("--arch", arch, name),
        model_kwargs={"num_classes": reconcile_num_classes(model_kwargs, state["fc.weight"].shape[0])},
        state_dict=ours,
        folded=True,
        preprocessing=PRESETS["imagenet"],
        fillable=(),
    )


def published_folded_to_ours(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Names of the published folded state_dict -> those of our folded DiracNet-18/34."""
    return {key.removeprefix(_FEATURES): tensor for key, tensor in state.items()}


def ours_to_published_folded(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Names of our folded DiracNet-18/34 -> those of the published folded state_dict."""
    return {
        (key if key.startswith(_CLASSIFIER) else _FEATURES + key): tensor for key, tensor in state.items()
    }
