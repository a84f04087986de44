"""What every importer shares: the result type, explicit-versus-inferred checks, key plumbing."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from normresnet_export.errors import InputError
from normresnet_export.preprocess import Preprocessing


@dataclass
class Imported:
    """What an importer read from a file, translated to this project's terms.

    Attributes:
        arch: The registered model the weights belong to.
        model_kwargs: Builder keywords the file determines (num_classes, shortcut, tau, …).
        state_dict: The weights under our key names.
        folded: The weights are those of the folded network.
        metrics: What the file recorded about training (accuracy, epoch).
        preprocessing: The evaluation transform of the script that trained it.
        fillable: Target keys the source format does not have and that may start at zero
            (``num_batches_tracked`` of the functional DiracNet, say).
    """

    arch: str
    model_kwargs: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    folded: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)
    preprocessing: Preprocessing | None = None
    fillable: tuple[str, ...] = ("num_batches_tracked",)


def reconcile(option: str, explicit: Any, inferred: Any) -> Any:
    """The value of ``option``: inferred from the file, unless the user gave one, which must then agree.

    Raises:
        InputError: Both are known and differ (the message names both).
    """
    if explicit is not None and inferred is not None and explicit != inferred:
        raise InputError(f"{option} {explicit!r} contradicts the checkpoint, which has {inferred!r}")
    return explicit if explicit is not None else inferred


def reconcile_num_classes(model_kwargs: Mapping[str, Any], classifier_rows: int) -> int:
    """The number of classes: the rows of the file's classifier, which an explicit one must match.

    Every importer reads it the same way, so ``--num-classes`` is checked the same way everywhere.

    Args:
        model_kwargs: The builder keywords the user gave (``num_classes`` may be ``None``).
        classifier_rows: Output rows of the file's final linear layer (0 for a features-only model).

    Raises:
        InputError: ``--num-classes N contradicts the checkpoint, which has M``.
    """
    return reconcile("--num-classes", model_kwargs.get("num_classes"), classifier_rows)


def strip_prefix(state_dict: Mapping[str, Any], prefix: str = "module.") -> dict[str, Any]:
    """Remove ``prefix`` (DataParallel/DDP's ``module.``) from the keys that have it."""
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state_dict.items()}


def rename(state_dict: Mapping[str, Any], rules: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Apply regular-expression rules (pattern, replacement) to every key, in order."""
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    out = {}
    for key, value in state_dict.items():
        for pattern, replacement in compiled:
            key = pattern.sub(replacement, key)
        out[key] = value
    return out


def blocks_per_stage(keys: Iterable[str], pattern: str) -> tuple[int, ...]:
    """Blocks in each stage, from keys like ``layer2.3.conv1.weight`` (``pattern``: stage, block)."""
    regex = re.compile(pattern)
    stages: dict[int, int] = {}
    for key in keys:
        match = regex.match(key)
        if match:
            stage, block = int(match.group(1)), int(match.group(2))
            stages[stage] = max(stages.get(stage, 0), block + 1)
    return tuple(stages[s] for s in sorted(stages))


def tensor_dict(obj: Any, what: str) -> dict[str, torch.Tensor]:
    """``obj`` as a ``{name: tensor}`` dict, or a clear error naming ``what`` was expected."""
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"expected {what} (a dict of tensors), found {type(obj).__name__}")
    return dict(obj)


def lookup(table: Mapping[Any, str], key: Any, what: str) -> str:
    """``table[key]`` or an error listing what the registry has."""
    try:
        return table[key]
    except KeyError:
        known = ", ".join(f"{k} -> {v}" for k, v in table.items())
        raise InputError(f"no registered model has {what} {key} (known: {known})") from None


def number(value: Any) -> float | int | None:
    """A recorded metric (Python number, NumPy scalar or 0-d tensor) as a Python number."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    try:
        return (
            value.item() if hasattr(value, "item") else (value if isinstance(value, (int, float)) else None)
        )
    except (TypeError, ValueError):
        return None


def recorded_metrics(obj: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """The numbers a training checkpoint recorded, renamed: ``names`` maps our metric to the file's key."""
    values = {ours: number(obj.get(theirs)) for ours, theirs in names.items()}
    return {name: value for name, value in values.items() if value is not None}
