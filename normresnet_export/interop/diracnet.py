"""Import DiracNet checkpoints (functional and folded), and write the published folded layout back.

Formats (``shared/spec/ARCHITECTURES.md`` §5.6, §5.7):

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
checkpoint: their names are ours with a ``features.`` prefix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from normresnet_export._io import atomic_write
from normresnet_export.checkpoint import Checkpoint
from normresnet_export.errors import InputError
from normresnet_export.interop._common import (
    Imported,
    blocks_per_stage,
    lookup,
    reconcile,
    recorded_metrics,
    tensor_dict,
)
from normresnet_export.models import list_models
from normresnet_export.nn.dirac import dirac_delta
from normresnet_export.preprocess import PRESETS

IMAGENET_DEPTHS = {(4, 4, 4, 4): 18, (6, 8, 12, 6): 34}  # Dirac blocks per group -> depth
_BLOCK_CONV = re.compile(r"^group(\d+)\.block(\d+)\.conv$")


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
        model_kwargs={
            "num_classes": reconcile(
                "--num-classes", model_kwargs.get("num_classes"), params["fc.weight"].shape[0]
            )
        },
        state_dict=functional_to_ours(params),
        metrics=metrics,
        preprocessing=PRESETS["imagenet" if imagenet else "cifar-wrn"],
    )


def read_folded(obj: Any, path: Path, *, arch: str | None, model_kwargs: dict[str, Any]) -> Imported:
    """A published folded DiracNet-18/34 state_dict (``features.*`` and ``fc.*``)."""
    state = tensor_dict(obj, "a folded DiracNet state_dict")
    if "features.conv.weight" not in state:
        raise InputError(f"{path}: a folded DiracNet has 'features.conv.weight'")
    ours = {k.removeprefix("features."): v for k, v in state.items()}
    groups = blocks_per_stage(ours, r"^group(\d+)\.block(\d+)\.conv\.weight$")
    name = f"diracnet{lookup(IMAGENET_DEPTHS, groups, 'Dirac blocks per group')}"
    return Imported(
        arch=reconcile("--arch", arch, name),
        model_kwargs={
            "num_classes": reconcile(
                "--num-classes", model_kwargs.get("num_classes"), state["fc.weight"].shape[0]
            )
        },
        state_dict=ours,
        folded=True,
        preprocessing=PRESETS["imagenet"],
        fillable=(),
    )


def write_folded_layout(checkpoint: Checkpoint, path: str | os.PathLike[str]) -> Path:
    """Write a folded DiracNet-18/34 in the published folded layout (``torch.save`` of a plain state_dict).

    The original folded ``DiracNet`` module (``diracnet.py``, ``AvgPool2d(7)`` and
    ``Linear(512, 1000)`` built in) loads the result strictly, so weights folded here can go
    back to code written for the published files.

    Raises:
        InputError: Not a folded checkpoint, or not an ImageNet DiracNet with 1000 classes.
    """
    if checkpoint.arch not in ("diracnet18", "diracnet34"):
        raise InputError(
            f"the published folded layout exists for diracnet18 and diracnet34 only, not {checkpoint.arch!r}"
        )
    if not checkpoint.folded:
        raise InputError(
            f"{checkpoint.path or 'the checkpoint'} is not folded; fold it first (normexport fold)"
        )
    if checkpoint.num_classes != 1000:
        raise InputError(
            f"the published folded module has 1000 classes, this model has {checkpoint.num_classes}"
        )
    state = {
        (key if key.startswith("fc.") else f"features.{key}"): tensor.detach().cpu()
        for key, tensor in checkpoint.model.state_dict().items()
    }
    path = Path(path)
    with atomic_write(path) as handle:
        torch.save(state, handle)
    return path
