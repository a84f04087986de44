"""``fold_model``: collapse a trained network into plain convolutions, and prove it numerically.

The fold traces the model (:mod:`~normresnet_export.fold.tracer`), rewrites the graph
(:mod:`~normresnet_export.fold.passes`) and then, by default, runs the folded and the
unfolded model on the same random inputs, in float32 and in float64, to measure how far
the logits moved. A fold whose deviation exceeds the depth-aware tolerance, or that
changes a single top-1 prediction, does not pass.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import nn

from normresnet_export._progress import stage
from normresnet_export.compare import deviation, run_outputs
from normresnet_export.errors import InputError
from normresnet_export.fold.passes import Folder, detach_from
from normresnet_export.fold.report import FoldReport, FoldTolerance, count_ops
from normresnet_export.fold.stream import remove_stream_batchnorms
from normresnet_export.fold.tracer import trace
from normresnet_export.models import carry_build_record, count_layers, count_parameters

#: Networks with at least this many conv/linear layers get the deep tolerances below.
DEEP_LAYERS = 400

#: The attribute every folded network carries: the residual-stream BatchNorms its fold removed.
_STREAM_BN_REMOVED = "_normexport_stream_bn_removed"


@dataclass
class FoldResult:
    """A folded model and the account of how it was folded.

    Attributes:
        model: The folded network (a ``torch.fx.GraphModule`` in eval mode), independent of the input model.
        report: What was folded, what was not and why, parameter counts, measured deviations.
    """

    model: fx.GraphModule
    report: FoldReport


@dataclass(frozen=True)
class FoldOptions:
    """How to fold, where a caller passes ``fold=`` on to :func:`fold_model` (the exporters do).

    Attributes:
        keep_stream_bn: Keep the residual-stream BatchNorms as per-channel affines.
    """

    keep_stream_bn: bool = False


def stream_bn_removed(model: nn.Module) -> list[str]:
    """The residual-stream BatchNorms that the fold which made ``model`` removed (``[]`` for other models).

    A folded checkpoint records them, and rebuilding it (``fold_model(shapes,
    stream_bn_removed=...)``) removes exactly these, whatever the values.
    """
    removed = getattr(model, _STREAM_BN_REMOVED, ())
    return [str(name) for name in removed] if isinstance(removed, tuple) else []


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


def _fold(
    model: nn.Module, *, keep_stream_bn: bool, stream_bn_removed: Collection[str] | None
) -> tuple[fx.GraphModule, FoldReport]:
    stage("trace")
    graph_module = trace(model)
    ops_before = count_ops(graph_module)
    stage("fold")
    folder = Folder(graph_module)
    stream = functools.partial(remove_stream_batchnorms, removed=stream_bn_removed)
    folder.run(before_affines=None if keep_stream_bn else stream)
    detach_from(graph_module, model)
    graph_module.eval()
    setattr(graph_module, _STREAM_BN_REMOVED, tuple(folder.stream_bn_removed or ()))
    carry_build_record(model, graph_module)  # so save_checkpoint knows the folded model's arch
    report = FoldReport(
        ops_before=ops_before,
        ops_after=count_ops(graph_module),
        folded=dict(folder.folded),
        unfolded=folder.unfolded,
        parameters_before=count_parameters(model),
        parameters_after=count_parameters(graph_module),
        stream_bn_removed=folder.stream_bn_removed,
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
    keep_stream_bn: bool = False,
    stream_bn_removed: Collection[str] | None = None,
) -> FoldResult:
    """Fold BatchNorm, tau scales, scalar offsets and Dirac weights into plain convolutions.

    Only exact folds are made; what cannot be folded exactly is kept (eval-mode
    BatchNorms as per-channel affines) and listed in the report with the reason.
    BatchNorms that read the residual stream (pre-activation, Procrustes and LeNo
    networks) are removed where ``relu(a·x + b) = a·relu(x + b/a)`` holds exactly
    (:mod:`~normresnet_export.fold.stream`).

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
        keep_stream_bn: Keep the residual-stream BatchNorms as per-channel affines, as folds
            before that pass did (for debugging, or to compare).
        stream_bn_removed: Remove exactly these residual-stream BatchNorms (the
            ``stream_bn_removed`` of an earlier fold's report) instead of judging them by
            their values: a shape-only fold (meta device) that rebuilds a folded checkpoint
            needs it. Without it a meta fold removes every BatchNorm the structure allows.

    Returns:
        The folded model and the report; ``report.passed`` says whether the check passed.

    Raises:
        InputError: A model in training mode, or with parameters that are not float32/float64;
            a ``stream_bn_removed`` this network's structure does not allow.
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
    options = {"keep_stream_bn": keep_stream_bn, "stream_bn_removed": stream_bn_removed}
    if dtype == torch.float64 or device.type == "meta":
        folded, report = _fold(model, **options)
    else:
        # A float32 model is folded once, as a float64 copy, and the result rounded to float32
        # once: every fold step computes in float64 anyway, this skips the rounding between
        # chained steps, and the float64 check below needs exactly this fold (one trace, not two).
        reference = copy.deepcopy(model).double()
        folded, report = _fold(reference, **options)
    if not check:
        return FoldResult(folded.to(dtype), report)
    stage("verify")
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
