"""``fold_model``: collapse a trained network into plain convolutions, and prove it numerically.

The fold traces the model (:mod:`~normresnet_export.fold.tracer`), rewrites the graph
(:mod:`~normresnet_export.fold.passes`) and then, by default, runs the folded and the
unfolded model on the same random inputs, in float32 and in float64, to measure how far
the logits moved. A fold whose deviation exceeds the depth-aware tolerance, or that
changes a single top-1 prediction, does not pass.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import nn

from normresnet_export.compare import deviation, run_outputs
from normresnet_export.errors import InputError
from normresnet_export.fold.passes import Folder, detach_from
from normresnet_export.fold.report import FoldReport, FoldTolerance, count_ops
from normresnet_export.fold.tracer import trace
from normresnet_export.models import count_layers, count_parameters

#: Networks with at least this many conv/linear layers get the deep tolerances below.
DEEP_LAYERS = 400


@dataclass
class FoldResult:
    """A folded model and the account of how it was folded.

    Attributes:
        model: The folded network (a ``torch.fx.GraphModule`` in eval mode), independent of the input model.
        report: What was folded, what was not and why, parameter counts, measured deviations.
    """

    model: fx.GraphModule
    report: FoldReport


def default_tolerance(model: nn.Module) -> FoldTolerance:
    """Acceptable relative logit deviation for a fold of ``model``, by depth.

    float64 proves exactness: a fold computed in float64 reproduces the float64 model to
    at most 1.1e-14 at ordinary depths and 1.4e-10 for the deep nets (measured across the
    registry, ``bench/RESULTS.md``), within the limits of 1e-10 and 1e-9.
    float32 measures practical drift, which is float32 rounding noise, not fold error:
    1e-5 (1e-4 from ``DEEP_LAYERS`` layers on, where hundreds of residual blocks compound
    the noise), relaxed to a multiple of the unfolded model's own float32 error where that
    is larger (see :class:`~normresnet_export.fold.report.FoldTolerance`).
    """
    if count_layers(model) >= DEEP_LAYERS:
        return FoldTolerance(float32=1e-4, float64=1e-9)
    return FoldTolerance(float32=1e-5, float64=1e-10)


def _fold(model: nn.Module) -> tuple[fx.GraphModule, FoldReport]:
    graph_module = trace(model)
    ops_before = count_ops(graph_module)
    folder = Folder(graph_module)
    folder.run()
    detach_from(graph_module, model)
    graph_module.eval()
    report = FoldReport(
        ops_before=ops_before,
        ops_after=count_ops(graph_module),
        folded=dict(folder.folded),
        unfolded=folder.unfolded,
        parameters_before=count_parameters(model),
        parameters_after=count_parameters(graph_module),
    )
    return graph_module, report


def check_inputs(
    input_size: Sequence[int], *, dtype: torch.dtype, device: torch.device, seed: int = 0
) -> list[torch.Tensor]:
    """A batch of two at ``input_size`` (C, *spatial) and one input whose spatial sizes are odd.

    The odd size matters: folds that are only exact in the interior of a feature map
    (an affine in front of a zero-padded conv) show their error on the border rows.
    """
    generator = torch.Generator().manual_seed(seed)
    channels, *spatial = input_size
    batch = torch.randn(2, channels, *spatial, generator=generator)
    odd = torch.randn(1, channels, *(size | 1 for size in spatial), generator=generator)
    return [x.to(device=device, dtype=dtype) for x in (batch, odd)]


def fold_model(
    model: nn.Module,
    *,
    input_size: Sequence[int] | None = None,
    check: bool = True,
    tolerance: FoldTolerance | None = None,
    seed: int = 0,
) -> FoldResult:
    """Fold BatchNorm, tau scales, scalar offsets and Dirac weights into plain convolutions.

    Only exact folds are made; what cannot be folded exactly is kept (eval-mode
    BatchNorms as per-channel affines) and listed in the report with the reason.

    Args:
        model: A model in eval mode, float32 or float64. It is not modified.
        input_size: Size of one check input without the batch dimension, (C, H, W) for
            images; default (3, 32, 32), which every registered model accepts. Pass the
            model's own size to check at full size.
        check: Measure the deviation of the logits in float32 and float64 (the fold of a
            float32 model is computed on a float64 copy and rounded to float32 once).
            Without it the fold is purely structural, which also works for a model on the
            meta device.
        tolerance: Limits on the relative deviation; default :func:`default_tolerance`.
        seed: Seed of the random check inputs.

    Returns:
        The folded model and the report; ``report.passed`` says whether the check passed.

    Raises:
        InputError: A model in training mode, or with parameters that are not float32/float64.
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"fold_model needs a torch.nn.Module, got {type(model).__name__}")
    if model.training:
        raise InputError(
            "fold_model needs a model in eval mode (folding uses BatchNorm's running statistics); "
            "call model.eval()"
        )
    parameter = next(model.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    if dtype not in (torch.float32, torch.float64):
        raise InputError(
            f"fold a float32 or float64 model (got {dtype}); convert to half precision after folding"
        )
    device = parameter.device if parameter is not None else torch.device("cpu")
    if dtype == torch.float64 or device.type == "meta":
        folded, report = _fold(model)
    else:
        # A float32 model is folded once, as a float64 copy, and the result rounded to float32
        # once: every fold step computes in float64 anyway, this skips the rounding between
        # chained steps, and the float64 check below needs exactly this fold (one trace, not two).
        reference = copy.deepcopy(model).double()
        folded, report = _fold(reference)
    if not check:
        return FoldResult(folded.to(dtype), report)
    report.input_size = tuple(input_size or (3, 32, 32))
    report.tolerance = tolerance or default_tolerance(model)
    inputs = check_inputs(report.input_size, dtype=dtype, device=device, seed=seed)
    if dtype == torch.float64:
        report.deviations["float64"] = deviation(run_outputs(model, inputs), run_outputs(folded, inputs))
        return FoldResult(folded, report)
    inputs64 = [x.double() for x in inputs]
    expected64 = run_outputs(reference, inputs64)
    deviation64 = deviation(expected64, run_outputs(folded, inputs64))
    del reference
    folded = folded.to(dtype)
    expected = run_outputs(model, inputs)
    report.deviations["float32"] = deviation(expected, run_outputs(folded, inputs))
    report.deviations["float64"] = deviation64
    report.float32_noise = deviation(expected64, expected).max_rel
    return FoldResult(folded, report)
