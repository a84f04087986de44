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
from pathlib import Path
from typing import Any

import torch
from torch import nn

from normresnet_export import __version__
from normresnet_export.checkpoint import Checkpoint, load_checkpoint
from normresnet_export.errors import CheckFailedError, InputError
from normresnet_export.export import contract
from normresnet_export.fold import fold_model
from normresnet_export.preprocess import Preprocessing


class Float16Model(nn.Module):
    """A half-precision network behind float32 input and output (LESSONS.md #7: fp16 stays opt-in inside)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner.half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.half()).float()


@dataclass
class ExportSource:
    """A model ready to be written in some format.

    Attributes:
        model: The network to export (eval mode).
        reference: The unfolded float32 model the written artefact is compared with.
        input_size: One input's (C, H, W).
        metadata: JSON-compatible description carried by the artefact.
        name: A name for the model (its arch), e.g. the Triton model name.
        fp16: Whether ``model`` computes in float16.
    """

    model: nn.Module
    reference: nn.Module
    input_size: tuple[int, ...]
    metadata: dict[str, Any]
    name: str
    fp16: bool

    def metadata_for(self, static_batch: int | None) -> dict[str, Any]:
        """The metadata, with the input's batch dimension pinned when the export pins it."""
        if static_batch is None:
            return self.metadata
        shape = [static_batch, *self.metadata["input"]["shape"][1:]]
        return {**self.metadata, "input": {**self.metadata["input"], "shape": shape}}

    def example(self, batch: int = contract.EXAMPLE_BATCH) -> torch.Tensor:
        """A random input batch of the exported size (fixed seed)."""
        generator = torch.Generator().manual_seed(0)
        return torch.randn(batch, *self.input_size, generator=generator)


def _checkpoint(source: Checkpoint | str | os.PathLike[str] | nn.Module) -> Checkpoint | None:
    if isinstance(source, Checkpoint):
        return source
    if isinstance(source, (str, os.PathLike)):
        return load_checkpoint(Path(source))
    if isinstance(source, nn.Module):
        return None
    raise InputError(
        f"expected a checkpoint, a checkpoint path or a torch module, got {type(source).__name__}"
    )


def _resized(preprocessing: Preprocessing | None, size: tuple[int, int]) -> Preprocessing | None:
    """The recorded preprocessing for another input size: crop to it, resize in the same ratio."""
    if preprocessing is None or tuple(preprocessing.input_size[1:]) == size:
        return preprocessing
    ratio = preprocessing.resize / preprocessing.crop
    return Preprocessing(
        input_size=(preprocessing.input_size[0], *size),
        mean=preprocessing.mean,
        std=preprocessing.std,
        resize=round(max(size) * ratio),
        crop=size[0],
        interpolation=preprocessing.interpolation,
        channel_order=preprocessing.channel_order,
    )


def _require_runs(model: nn.Module, size: tuple[int, ...]) -> None:
    """Refuse an input size the architecture cannot take (pooling left with nothing, wrong channels)."""
    try:
        with torch.no_grad():
            model(torch.zeros(1, *size))
    except RuntimeError as exc:
        reason = str(exc).splitlines()[0][:160]
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


def prepare(
    source: Checkpoint | str | os.PathLike[str] | nn.Module,
    *,
    fold: bool = True,
    input_size: Sequence[int] | None = None,
    fp16: bool = False,
) -> ExportSource:
    """Load, fold (unless ``fold=False``) and optionally convert a model for export.

    Args:
        source: A checkpoint, its path, or a bare eval-mode module (then ``input_size`` is needed
            and the metadata has no arch, preprocessing or labels).
        fold: Fold first (default). A folded checkpoint is exported as it is.
        input_size: (H, W) to export at instead of the model's size, or a full (C, H, W).
        fp16: Convert weights and compute to float16, keeping float32 input and output.

    Raises:
        InputError: Bad source or size, or weights that overflow float16.
        CheckFailedError: The fold's own check failed.
    """
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
        if len(size) != 3 or min(size) < 1:
            raise InputError(f"input size must be H W (or C H W), got {list(input_size)}")
    else:
        size = native
    if size != native:
        _require_runs(model, size)
    fold_summary = checkpoint.fold_report if checkpoint is not None and checkpoint.folded else None
    exported: nn.Module = model
    folded = bool(checkpoint is not None and checkpoint.folded)
    if fold and not folded:
        result = fold_model(model, input_size=size)
        if not result.report.passed:
            raise CheckFailedError(
                f"the fold check failed at {'×'.join(map(str, size))}: {result.report.summary()}"
            )
        exported, folded, fold_summary = result.model, True, result.report.summary()
    elif fold_summary is not None:
        fold_summary = {key: fold_summary[key] for key in ("folded", "passed") if key in fold_summary}
    if fp16:
        check_float16_range(exported)
        exported = Float16Model(copy.deepcopy(exported)).eval()
    preprocessing = _resized(checkpoint.preprocessing if checkpoint is not None else None, tuple(size[1:]))
    metadata = {
        "arch": checkpoint.arch if checkpoint is not None else None,
        "model_kwargs": checkpoint.model_kwargs if checkpoint is not None else None,
        "preprocessing": preprocessing.to_dict() if preprocessing is not None else None,
        "labels": checkpoint.labels if checkpoint is not None else None,
        "folded": folded,
        "fold": fold_summary,
        "precision": "float16" if fp16 else "float32",
        "input": {"name": contract.INPUT_NAME, "shape": [contract.BATCH_DIM, *size], "dtype": "float32"},
        "output": {"name": contract.OUTPUT_NAME, "dtype": "float32"},
        "version": __version__,
        "torch": str(torch.__version__),
    }
    return ExportSource(
        model=exported,
        reference=model,
        input_size=size,
        metadata=metadata,
        name=checkpoint.arch if checkpoint is not None else type(model).__name__.lower(),
        fp16=fp16,
    )
