"""The published folded DiracNet layout: a folded DiracNet-18/34 as the state_dict its authors released.

The published ``diracnet18v2folded-*.pth`` / ``diracnet34v2folded-*.pth`` files are a bare
``torch.save`` of the folded ImageNet module's state_dict: ``features.conv``,
``features.group{g}.block{b}.conv`` (with biases) and ``fc``. That module has
``AvgPool2d(7)`` and ``Linear(512, 1000)`` built in and loads the file strictly, so only a
folded DiracNet-18/34 with 1000 classes can be written this way. The weights then go back to
code written for the published files.

Like every one-file format it goes through :func:`~normresnet_export.export.verify.export_one_file`:
the bytes about to be written are loaded back into a freshly built folded model of the same
architecture (strictly: every name and shape) and run against the checkpoint's model on random
inputs, within the usual limits, before they are written atomically. The file carries no
normexport metadata (the published module reads none), so the result's ``metadata`` is the
record that knows nothing, as for any foreign file.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from normresnet_export.checkpoint import Checkpoint, load_checkpoint, model_shapes
from normresnet_export.errors import InputError
from normresnet_export.export import contract
from normresnet_export.export.result import ExportResult
from normresnet_export.export.source import ExportSource
from normresnet_export.export.verify import export_one_file
from normresnet_export.interop.diracnet import (
    PUBLISHED_FOLDED_ARCHS,
    PUBLISHED_FOLDED_CLASSES,
    ours_to_published_folded,
    published_folded_to_ours,
)
from normresnet_export.metadata import ModelMetadata
from normresnet_export.vocabulary import LAYOUTS

#: The layout's name, as ``normexport export --layout`` and :func:`~normresnet_export.export.export` take it.
(LAYOUT,) = LAYOUTS  # the one layout there is


def _publishable(source: Checkpoint | str | os.PathLike[str]) -> Checkpoint:
    """The checkpoint, if the published folded module can load its weights.

    Raises:
        InputError: Not a checkpoint, not a DiracNet-18/34, not folded, or not 1000 classes.
    """
    if isinstance(source, (str, os.PathLike)):
        source = load_checkpoint(Path(source))
    if not isinstance(source, Checkpoint):
        raise InputError(
            f"the {LAYOUT} layout writes a folded checkpoint (or the path of one), "
            f"got {type(source).__name__}"
        )
    if source.arch not in PUBLISHED_FOLDED_ARCHS:
        raise InputError(
            f"the published folded layout exists for {' and '.join(PUBLISHED_FOLDED_ARCHS)} only, "
            f"not {source.arch!r}"
        )
    if not source.folded:
        raise InputError(f"{source.path or 'the checkpoint'} is not folded; fold it first (normexport fold)")
    if source.num_classes != PUBLISHED_FOLDED_CLASSES:
        raise InputError(
            f"the published folded module has {PUBLISHED_FOLDED_CLASSES} classes, "
            f"this model has {source.num_classes}"
        )
    return source


def _serialise(prepared: ExportSource) -> bytes:
    """``torch.save`` of the folded weights under the published names."""
    state = {key: tensor.detach().cpu() for key, tensor in prepared.model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(ours_to_published_folded(state), buffer)
    return buffer.getvalue()


def _loader(checkpoint: Checkpoint) -> Callable[[bytes], tuple[nn.Module, ModelMetadata]]:
    """Load written bytes, strictly, into a new folded model of the checkpoint's architecture."""

    def load(data: bytes) -> tuple[nn.Module, ModelMetadata]:
        state = published_folded_to_ours(torch.load(io.BytesIO(data), weights_only=True))
        model = model_shapes(checkpoint.arch, checkpoint.model_kwargs, folded=True).to_empty(device="cpu")
        model.load_state_dict(state)
        return model.eval(), ModelMetadata()  # the file carries no normexport metadata

    return load


def export_diracnet_layout(
    source: Checkpoint | str | os.PathLike[str], path: str | os.PathLike[str], *, check: bool = True
) -> ExportResult:
    """Write a folded DiracNet-18/34 as the published folded state_dict; check it before writing.

    Args:
        source: A folded checkpoint of ``diracnet18`` or ``diracnet34`` with 1000 classes, or its path.
        path: The ``.pth`` file to write (atomically).
        check: Load the bytes back into a folded model and compare its logits with the checkpoint's.

    Returns:
        The result: ``details`` has the tensor and byte counts, ``check`` the measured agreement.

    Raises:
        InputError: A checkpoint the published folded module cannot load.
        CheckFailedError: The written weights do not reproduce the model (nothing is written).
    """
    checkpoint = _publishable(source)
    return export_one_file(
        checkpoint,
        path,
        format=LAYOUT,
        serialise=_serialise,
        load=_loader(checkpoint),
        runtime=f"torch {torch.__version__} (the state_dict loaded into a folded {checkpoint.arch})",
        what=f"the {LAYOUT} layout export",
        # A state_dict has no batch dimension to get wrong: one batch checks the weights.
        batches=(contract.EXAMPLE_BATCH,),
        details={
            "layout": "published folded DiracNet state_dict",
            "tensors": len(checkpoint.model.state_dict()),
        },
        fold=False,
        check=check,
    )
