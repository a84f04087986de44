"""The export contract, declared once: names, shapes, opset, metadata keys and tolerances.

Every format (ONNX, TorchScript, torch.export, Triton) follows it, so that a deployed file
alone says how to call it and how to prepare its input.
"""

from __future__ import annotations

from collections.abc import Sequence

from normresnet_export.errors import InputError
from normresnet_export.limits import MAX_BATCH, check_input_size, check_int
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
    "MIN_OPSET",
    "OUTPUT_NAME",
    "check_opset",
    "check_options",
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
#: Oldest opset either torch exporter writes (the TorchScript-based one; dynamo writes 18 on).
MIN_OPSET = 7

#: The metadata every artefact carries is :class:`~normresnet_export.metadata.ModelMetadata`;
#: ``METADATA_PREFIX`` (ONNX ``metadata_props`` keys) and ``EXTRA_FILE`` (TorchScript/pt2) are its.

#: Largest float16 value; a folded weight beyond it would become inf.
FLOAT16_MAX = 65504.0
#: Relative logit deviation allowed for a float16 artefact against the float32 model.
#: float16 keeps 11 significant bits (relative rounding ~5e-4 per operation); measured
#: deviations across the families are 2e-4 to 1.5e-3 (bench/RESULTS.md), so 1e-2 leaves room.
FLOAT16_TOLERANCE = 1e-2


def check_opset(opset: int) -> int:
    """``opset`` if an installed torch exporter can write it: ``MIN_OPSET`` to the newest ``onnx`` defines.

    Checked before anything is loaded: the TorchScript-based exporter answers an opset it does
    not know by printing its whole graph (23 KB for a resnet20), and dynamo silently writes 18.

    Raises:
        InputError: The range, with the default.
    """
    import onnx

    newest = int(onnx.defs.onnx_opset_version())
    hint = f"the default, {DEFAULT_OPSET}, runs on ONNX Runtime >= 1.14, TensorRT >= 8.6 and Triton"
    if isinstance(opset, int) and not isinstance(opset, bool) and opset > newest:
        raise InputError(
            f"--opset {opset} does not exist yet: the installed onnx {onnx.__version__} defines opsets up "
            f"to {newest}; use --opset {MIN_OPSET} to {newest} ({hint})"
        )
    return check_int("--opset", opset, low=MIN_OPSET, high=newest, hint=hint)


def check_options(
    *,
    opset: int | None = None,
    static_batch: int | None = None,
    max_batch_size: int | None = None,
    input_size: Sequence[int] | None = None,
) -> None:
    """Refuse any number an export takes outside its range, before the checkpoint is even loaded.

    ``None`` is the format's default and always fine.

    Raises:
        InputError: The option and its range.
    """
    if opset is not None:
        check_opset(opset)
    if static_batch is not None:
        check_int("--static-batch", static_batch, low=1, high=MAX_BATCH)
    if max_batch_size is not None:
        check_int("--max-batch-size", max_batch_size, low=1, high=MAX_BATCH)
    if input_size is not None:
        check_input_size(input_size, channels=True)
