"""Export: ONNX, TorchScript, torch.export (.pt2) and Triton model repositories that agree with the model.

Every format folds first (unless asked not to), carries the same metadata
(:class:`~normresnet_export.metadata.ModelMetadata`: arch, preprocessing, labels, fold
record, versions), is checked by running it before anything is written, and is written
atomically. The contract (names, batch, opset, tolerances) is in
:mod:`~normresnet_export.export.contract`.
"""

from normresnet_export.export.dispatch import FORMATS, export
from normresnet_export.export.onnx import export_onnx, read_metadata
from normresnet_export.export.pt2 import export_pt2
from normresnet_export.export.result import ExportCheck, ExportResult
from normresnet_export.export.torchscript import export_torchscript
from normresnet_export.export.triton import export_triton
from normresnet_export.metadata import load_pt2, load_torchscript

__all__ = [
    "FORMATS",
    "ExportCheck",
    "ExportResult",
    "export",
    "export_onnx",
    "export_pt2",
    "export_torchscript",
    "export_triton",
    "load_pt2",
    "load_torchscript",
    "read_metadata",
]
