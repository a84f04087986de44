"""normexport: very deep norm-preserving residual networks, from training to serving.

The public surface::

    import normresnet_export as nx
    nx.list_models(family=None, pretrained=False)  # registered names (with weights only)
    nx.create_model(name, num_classes=None, **kw)  # build one
    nx.create_model(name, weights="resnet20.digits")  # or pretrained=True: the arch's default weights
    nx.list_weights(pattern=None)                  # the pretrained-weights registry, one row each
    nx.save_checkpoint(path, model, arch=..., model_kwargs=..., preprocessing=..., labels=...)
    nx.load_checkpoint(path)                       # -> Checkpoint(.model, .arch, .preprocessing, ...)
    nx.fold_model(model)                           # -> FoldResult(.model, .report)
    nx.export_onnx(checkpoint, "m.onnx")           # also export_torchscript / export_pt2 / export_triton
    nx.import_checkpoint(path, source=None, arch=None)  # research-code / torchvision files -> Checkpoint

Importing this package needs neither torchvision nor a GPU, and loads nothing heavy: each public
name is imported from the module that defines it on first use (so ``normresnet_export.vocabulary``
and ``normexport --help`` stay free of torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from normresnet_export._version import __version__

#: Each public name and the module that defines it (``(module, attribute)`` where they differ).
_PUBLIC: dict[str, tuple[str, str]] = {
    "CheckFailedError": ("normresnet_export.errors", "CheckFailedError"),
    "CheckpointError": ("normresnet_export.errors", "CheckpointError"),
    "InputError": ("normresnet_export.errors", "InputError"),
    "NormexportError": ("normresnet_export.errors", "NormexportError"),
    "UnknownModelError": ("normresnet_export.errors", "UnknownModelError"),
    "Checkpoint": ("normresnet_export.checkpoint", "Checkpoint"),
    "load_checkpoint": ("normresnet_export.checkpoint", "load_checkpoint"),
    "save_checkpoint": ("normresnet_export.checkpoint", "save_checkpoint"),
    "ExportResult": ("normresnet_export.export", "ExportResult"),
    "export_onnx": ("normresnet_export.export", "export_onnx"),
    "export_pt2": ("normresnet_export.export", "export_pt2"),
    "export_torchscript": ("normresnet_export.export", "export_torchscript"),
    "export_triton": ("normresnet_export.export", "export_triton"),
    "FoldReport": ("normresnet_export.fold", "FoldReport"),
    "FoldResult": ("normresnet_export.fold", "FoldResult"),
    "fold_model": ("normresnet_export.fold", "fold_model"),
    "IMPORT_SOURCES": ("normresnet_export.interop.api", "SOURCES"),
    "import_checkpoint": ("normresnet_export.interop.api", "import_checkpoint"),
    "FAMILIES": ("normresnet_export.models", "FAMILIES"),
    "ModelInfo": ("normresnet_export.models", "ModelInfo"),
    "count_layers": ("normresnet_export.models", "count_layers"),
    "count_parameters": ("normresnet_export.models", "count_parameters"),
    "create_model": ("normresnet_export.weights", "create_model"),
    "list_models": ("normresnet_export.weights", "list_models"),
    "list_weights": ("normresnet_export.weights", "list_weights"),
    "resolve_model_file": ("normresnet_export.weights", "resolve_model_file"),
    "WeightsEntry": ("normresnet_export.weights", "WeightsEntry"),
    "model_info": ("normresnet_export.models", "model_info"),
    "register_model": ("normresnet_export.models", "register_model"),
    "Preprocessing": ("normresnet_export.preprocess", "Preprocessing"),
}

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports on first use
    from normresnet_export import nn
    from normresnet_export.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
    from normresnet_export.errors import (
        CheckFailedError,
        CheckpointError,
        InputError,
        NormexportError,
        UnknownModelError,
    )
    from normresnet_export.export import (
        ExportResult,
        export_onnx,
        export_pt2,
        export_torchscript,
        export_triton,
    )
    from normresnet_export.fold import FoldReport, FoldResult, fold_model
    from normresnet_export.interop.api import SOURCES as IMPORT_SOURCES
    from normresnet_export.interop.api import import_checkpoint
    from normresnet_export.models import (
        FAMILIES,
        ModelInfo,
        count_layers,
        count_parameters,
        model_info,
        register_model,
    )
    from normresnet_export.preprocess import Preprocessing
    from normresnet_export.weights import (
        WeightsEntry,
        create_model,
        list_models,
        list_weights,
        resolve_model_file,
    )


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (PEP 562), then keep it here."""
    if name == "nn":
        value: Any = importlib.import_module("normresnet_export.nn")
    elif name in _PUBLIC:
        module, attribute = _PUBLIC[name]
        value = getattr(importlib.import_module(module), attribute)
    else:
        raise AttributeError(f"module 'normresnet_export' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
    "WeightsEntry",
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
    "list_weights",
    "load_checkpoint",
    "model_info",
    "nn",
    "register_model",
    "resolve_model_file",
    "save_checkpoint",
]
