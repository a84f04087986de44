"""The export contract, declared once: names, shapes, opset, metadata keys and tolerances.

Every format (ONNX, TorchScript, torch.export, Triton) follows it, so that a deployed file
alone says how to call it and how to prepare its input.
"""

from __future__ import annotations

from normresnet_export.metadata import EXTRA_FILE, METADATA_PREFIX

__all__ = [
    "BATCH_DIM",
    "CHECK_BATCHES",
    "DEFAULT_OPSET",
    "EXAMPLE_BATCH",
    "EXTRA_FILE",
    "FLOAT16_MAX",
    "FLOAT16_TOLERANCE",
    "INPUT_NAME",
    "METADATA_PREFIX",
    "OUTPUT_NAME",
]

#: Name of the single input: an ``[N, 3, H, W]`` float32 batch, preprocessed.
INPUT_NAME = "input"
#: Name of the single output: ``[N, num_classes]`` float32 logits.
OUTPUT_NAME = "logits"
#: Name of the symbolic batch dimension.
BATCH_DIM = "batch"
#: Batch of the example input the exporters trace with. Never 0 or 1: exporters specialise
#: those sizes and silently pin a "dynamic" batch dimension to them.
EXAMPLE_BATCH = 2
#: Batches the post-export check runs a dynamic-batch artefact on: 1, the example, and odd 7.
CHECK_BATCHES = (1, EXAMPLE_BATCH, 7)

#: Default ONNX opset. Opset 18 runs on ONNX Runtime >= 1.14, TensorRT >= 8.6 and Triton's
#: ONNX Runtime backend; both torch exporters write it (the TorchScript-based one up to 20).
DEFAULT_OPSET = 18

#: The metadata every artefact carries is :class:`~normresnet_export.metadata.ModelMetadata`;
#: ``METADATA_PREFIX`` (ONNX ``metadata_props`` keys) and ``EXTRA_FILE`` (TorchScript/pt2) are its.

#: Largest float16 value; a folded weight beyond it would become inf.
FLOAT16_MAX = 65504.0
#: Relative logit deviation allowed for a float16 artefact against the float32 model.
#: float16 keeps 11 significant bits (relative rounding ~5e-4 per operation); measured
#: deviations across the families are 2e-4 to 1.5e-3 (bench/RESULTS.md), so 1e-2 leaves room.
FLOAT16_TOLERANCE = 1e-2
