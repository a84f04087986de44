"""normexport: very deep norm-preserving residual networks, from training to serving.

The public surface::

    import normresnet_export as nx
    nx.list_models(family=None)                    # registered names
    nx.create_model(name, num_classes=None, **kw)  # build one
    nx.save_checkpoint(path, model, arch=..., model_kwargs=..., preprocessing=..., labels=...)
    nx.load_checkpoint(path)                       # -> Checkpoint(.model, .arch, .preprocessing, ...)
    nx.fold_model(model)                           # -> FoldResult(.model, .report)
    nx.export_onnx(checkpoint, "m.onnx")           # also export_torchscript / export_pt2 / export_triton
    nx.import_checkpoint(path, source=None, arch=None)  # research-code / torchvision files -> Checkpoint

Importing this package needs neither torchvision nor a GPU.
"""

from __future__ import annotations

from normresnet_export import nn
from normresnet_export._version import __version__
from normresnet_export.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from normresnet_export.errors import (
    CheckFailedError,
    CheckpointError,
    InputError,
    NormexportError,
    UnknownModelError,
)
from normresnet_export.export import ExportResult, export_onnx, export_pt2, export_torchscript, export_triton
from normresnet_export.fold import FoldReport, FoldResult, fold_model
from normresnet_export.interop.api import SOURCES as IMPORT_SOURCES
from normresnet_export.interop.api import import_checkpoint
from normresnet_export.models import (
    FAMILIES,
    ModelInfo,
    count_layers,
    count_parameters,
    create_model,
    list_models,
    model_info,
    register_model,
)
from normresnet_export.preprocess import Preprocessing

__all__ = [
    "FAMILIES",
    "IMPORT_SOURCES",
    "CheckFailedError",
    "Checkpoint",
    "CheckpointError",
    "ExportResult",
    "FoldReport",
    "FoldResult",
    "InputError",
    "ModelInfo",
    "NormexportError",
    "Preprocessing",
    "UnknownModelError",
    "__version__",
    "count_layers",
    "count_parameters",
    "create_model",
    "export_onnx",
    "export_pt2",
    "export_torchscript",
    "export_triton",
    "fold_model",
    "import_checkpoint",
    "list_models",
    "load_checkpoint",
    "model_info",
    "nn",
    "register_model",
    "save_checkpoint",
]
