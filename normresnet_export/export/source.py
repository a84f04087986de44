"""What every export does before writing a format: load, fold, convert, describe.

:func:`prepare` turns a checkpoint (or a bare model) into an :class:`ExportSource`: the
network to export (folded by default, optionally float16 with float32 input and output),
the unfolded float32 model the check compares against, and the metadata every artefact
carries.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from normresnet_export._progress import stage
from normresnet_export.checkpoint import Checkpoint, load_checkpoint
from normresnet_export.errors import CheckFailedError, InputError, first_line
from normresnet_export.export import contract
from normresnet_export.fold import FoldOptions, FoldReport, fold_model
from normresnet_export.limits import check_input_size
from normresnet_export.metadata import ModelMetadata, TensorSpec
from normresnet_export.precision import Float16Model


@dataclass
class ExportSource:
    """A model ready to be written in some format.

    Attributes:
        model: The network to export (eval mode).
        reference: The unfolded float32 model the written artefact is compared with.
        input_size: One input's (C, H, W).
        metadata: What the artefact carries (its input batch dynamic; a format that pins the
            batch writes ``metadata.with_batch(n)``).
        name: A name for the model (its arch), e.g. the Triton model name.
        fp16: Whether ``model`` computes in float16.
    """

    model: nn.Module
    reference: nn.Module
    input_size: tuple[int, ...]
    metadata: ModelMetadata
    name: str
    fp16: bool

    def example(self, batch: int = contract.EXAMPLE_BATCH) -> torch.Tensor:
        """A random input batch of the exported size (fixed seed)."""
        generator = torch.Generator().manual_seed(0)
        return torch.randn(batch, *self.input_size, generator=generator)


def _checkpoint(source: Checkpoint | str | os.PathLike[str] | nn.Module) -> Checkpoint | None:
    if isinstance(source, Checkpoint):
        return source
    if isinstance(source, (str, os.PathLike)):
        from normresnet_export.weights import resolve_model_file

        return load_checkpoint(resolve_model_file(source))
    if isinstance(source, nn.Module):
        return None
    raise InputError(
        f"expected a checkpoint, a checkpoint path or a torch module, got {type(source).__name__}"
    )


def _require_runs(model: nn.Module, size: tuple[int, ...]) -> None:
    """Refuse an input size the architecture cannot take (pooling left with nothing, wrong channels)."""
    try:
        with torch.no_grad():
            model(torch.zeros(1, *size))
    except RuntimeError as exc:
        reason = first_line(exc, limit=160)
        raise InputError(
            f"the model cannot run at input size {'×'.join(map(str, size))} ({reason}); "
            "choose a larger --input-size"
        ) from None


def check_float16_range(model: nn.Module) -> None:
    """Refuse a model whose weights overflow float16 (folding can grow them), naming the layer."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and tensor.numel():
            peak = tensor.detach().abs().max().item()
            if peak > contract.FLOAT16_MAX:
                raise InputError(
                    f"{name} holds values up to {peak:.3g}, beyond float16's {contract.FLOAT16_MAX:g}; "
                    "it would become inf in float16; export in float32"
                )


class FoldCheckError(CheckFailedError):
    """The fold's own check failed, so nothing was exported; ``report`` holds what it measured."""

    def __init__(self, message: str, report: FoldReport) -> None:
        super().__init__(message)
        self.report = report

    def to_dict(self) -> dict[str, Any]:
        """What ``export --json`` prints for it: the sentence and the whole fold report."""
        return {"passed": False, "error": str(self), "fold": self.report.to_dict()}


def fold_failure(report: FoldReport) -> str:
    """The one line an export says when the fold check failed: what went wrong, and what to do."""
    size = "×".join(map(str, report.input_size or ()))
    if report.reference_overflowed:
        advice = (
            "export a trained checkpoint (an untrained very deep net can overflow in eval mode), or pass "
            "--no-check to export it anyway, marked unverified in its metadata"
        )
    else:
        advice = "export it unfolded with --no-fold, or pass --no-check to export it unverified"
    return f"the fold check failed at {size}: {report.failure()}; nothing was written; {advice}"


def prepare(
    source: Checkpoint | str | os.PathLike[str] | nn.Module,
    *,
    fold: bool | FoldOptions = True,
    input_size: Sequence[int] | None = None,
    fp16: bool = False,
    check: bool = True,
) -> ExportSource:
    """Load, fold (unless ``fold=False``) and optionally convert a model for export.

    Args:
        source: A checkpoint, its path, or a bare eval-mode module (then ``input_size`` is needed
            and the metadata has no arch, preprocessing or labels).
        fold: Fold first (default); a :class:`~normresnet_export.fold.FoldOptions` says how
            (``keep_stream_bn``). A folded checkpoint is exported as it is.
        input_size: (H, W) to export at instead of the model's size, or a full (C, H, W).
        fp16: Convert weights and compute to float16, keeping float32 input and output.
        check: Check the fold numerically (the export's own check follows it); without it the
            metadata records the artefact as unverified.

    Raises:
        InputError: Bad source, a size that is not H W (or C H W) with sides from 1 to
            ``limits.MAX_INPUT_SIDE``, or weights that overflow float16.
        FoldCheckError: The fold's own check failed.
    """
    if input_size is not None:
        input_size = check_input_size(input_size, channels=True)  # before the checkpoint is loaded
    stage("load")
    checkpoint = _checkpoint(source)
    model = checkpoint.model if checkpoint is not None else source
    if model.training:
        raise InputError("export needs a model in eval mode; call model.eval()")
    if checkpoint is None and input_size is None:
        raise InputError("exporting a bare module needs input_size=(C, H, W)")
    native = tuple(checkpoint.input_size) if checkpoint is not None else tuple(input_size)  # type: ignore[arg-type]
    if input_size is not None:
        size = tuple(int(v) for v in input_size)
        size = size if len(size) == 3 else (native[0], *size)
    else:
        size = native
    if size != native:
        _require_runs(model, size)
    exported: nn.Module = model
    fold_record = None
    if fold and not (checkpoint is not None and checkpoint.folded):
        options = fold if isinstance(fold, FoldOptions) else FoldOptions()
        result = fold_model(model, input_size=size, check=check, keep_stream_bn=options.keep_stream_bn)
        if not result.report.passed:
            raise FoldCheckError(fold_failure(result.report), result.report)
        exported, fold_record = result.model, result.report.to_compact_dict()
    if fp16:
        check_float16_range(exported)
        exported = Float16Model(copy.deepcopy(exported)).eval()
    metadata = ModelMetadata.from_checkpoint(
        checkpoint,
        fold=fold_record,
        precision="float16" if fp16 else "float32",
        input_size=size,
        input=TensorSpec(contract.INPUT_NAME, "float32", (contract.BATCH_DIM, *size)),
        output=TensorSpec(contract.OUTPUT_NAME, "float32"),
        verified=check,
    )
    return ExportSource(
        model=exported,
        reference=model,
        input_size=size,
        metadata=metadata,
        name=checkpoint.arch if checkpoint is not None else type(model).__name__.lower(),
        fp16=fp16,
    )
