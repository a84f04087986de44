"""The measurements of ``normexport analyze``: gradient-norm ratios per block, and convolution spectra.

Both are pure functions of a model and its inputs; where the model and the data come from is
:mod:`normresnet_export.analysis.sources`' business.

* :func:`measure_gradnorm` runs one forward and backward pass of the cross-entropy loss in
  training mode (batch statistics, as in training) inside a
  :class:`~normresnet_export.nn.norm_probe.NormProbe`, and summarises, per unit, the papers'
  ratio ``‖∂L/∂x_l‖ / ‖∂L/∂x_{l+1}‖`` and the forward ratio ``‖x_{l+1}‖ / ‖x_l‖`` over the
  batch. The model is left as it was: its mode, its BatchNorm statistics and its parameters'
  ``requires_grad`` are restored, and no parameter gradient is computed (only the input
  requires grad, which is all the ratios need and saves the weight gradients' memory).
* :func:`measure_spectrum` gives the singular values of a convolution's operator on its input
  grid (the 2-D FFT of the kernel, as the Procrustes projection models it: stride-1 and
  circular), against the norm-preserving value ``sqrt(n_out / n_in)``.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import resource
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from normresnet_export.errors import InputError
from normresnet_export.nn.norm_probe import NormProbe, UnitNorms
from normresnet_export.nn.procrustes import norm_preserving_target, operator_singular_values

#: The layout of the ``--json`` documents (see :mod:`normresnet_export.analysis.schema`).
SCHEMA_VERSION = 1
#: Default tolerance of "norm-preserving": max |σ − target| / target.
DEFAULT_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Spread:
    """Mean, standard deviation, minimum and maximum of a per-sample quantity over the batch."""

    mean: float
    std: float
    min: float
    max: float

    @classmethod
    def of(cls, values: torch.Tensor) -> Spread:
        values = values.to(torch.float64)
        std = float(values.std(correction=0)) if values.numel() > 1 else 0.0
        return cls(float(values.mean()), std, float(values.min()), float(values.max()))


@dataclass(frozen=True)
class UnitRatio:
    """One unit's ratios: a residual block or a stand-alone layer between blocks.

    Attributes:
        index: Position along the main path (0: the first block).
        name: Qualified module name.
        kind: ``block`` or ``layer``.
        transition: The unit changes the stream's shape (stride 2 or a change of width).
        in_shape: One sample's input shape.
        out_shape: One sample's output shape.
        grad_ratio: ``‖∂L/∂x_l‖ / ‖∂L/∂x_{l+1}‖`` over the batch.
        forward_ratio: ``‖x_{l+1}‖ / ‖x_l‖`` over the batch.
    """

    index: int
    name: str
    kind: str
    transition: bool
    in_shape: list[int]
    out_shape: list[int]
    grad_ratio: Spread
    forward_ratio: Spread

    @classmethod
    def of(cls, index: int, unit: UnitNorms) -> UnitRatio:
        return cls(
            index,
            unit.name,
            unit.kind,
            unit.transition,
            list(unit.in_shape),
            list(unit.out_shape),
            Spread.of(unit.grad_ratio),
            Spread.of(unit.forward_ratio),
        )


@dataclass
class GradnormReport:
    """The gradient-norm ratios of one model on one batch.

    Attributes:
        model: The label shown in tables and plots (the name or the file's name).
        source: What was measured: ``architecture`` (at initialisation) or the checkpoint path.
        data: The inputs, in words.
        batch_size: Samples in the batch.
        seed: Seed of the initialisation and the random inputs.
        loss: The cross-entropy loss of the batch.
        units: Every unit along the main path, in order.
        seconds: Time of the measured forward and backward pass.
        peak_memory_mb: Peak memory: CUDA's peak allocation on a GPU, else the process's peak
            resident set (which includes everything the process held before).
    """

    model: str
    source: str
    data: str
    batch_size: int
    seed: int
    loss: float
    units: list[UnitRatio]
    seconds: float
    peak_memory_mb: float

    @property
    def transition_deviation(self) -> float:
        """Mean ``|ln r|`` of the transition units' mean gradient ratio ``r``: 0 when all are exactly 1."""
        return _mean_log_deviation([u.grad_ratio.mean for u in self.units if u.transition])

    @property
    def block_deviation(self) -> float:
        """Mean ``|ln r|`` of every unit's mean gradient ratio."""
        return _mean_log_deviation([u.grad_ratio.mean for u in self.units])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data, laid out as ``GRADNORM_SCHEMA`` describes one model."""
        data = asdict(self)
        data["transition_deviation"] = self.transition_deviation
        data["block_deviation"] = self.block_deviation
        return data


def _mean_log_deviation(ratios: Sequence[float]) -> float:
    return sum(abs(math.log(r)) for r in ratios) / len(ratios) if ratios else 0.0


def peak_memory_mb(device: torch.device) -> float:
    """CUDA's peak allocation on ``device``, else the process's peak resident set, in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB elsewhere


@contextlib.contextmanager
def _measuring(model: nn.Module) -> Iterator[None]:
    """Training mode and frozen parameters for one pass; mode, flags and buffers restored afterwards."""
    training = {module: module.training for module in model.modules()}
    flags = [(p, p.requires_grad) for p in model.parameters()]
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    try:
        model.train()
        for parameter, _ in flags:
            parameter.requires_grad_(False)
        yield
    finally:
        for module, mode in training.items():
            module.training = mode
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(buffers[name])


def measure_gradnorm(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    label: str = "model",
    source: str = "architecture",
    data: str = "",
    seed: int = 0,
    blocks: Mapping[str, nn.Module] | None = None,
) -> GradnormReport:
    """The gradient-norm and forward-norm ratios of every unit of ``model`` on one batch.

    Args:
        model: A classifier (logits out); left as it was (see the module docstring).
        inputs: The batch ``[N, C, H, W]``, already preprocessed, on the model's device.
        targets: Class indices ``[N]`` of the cross-entropy loss.
        label: Name of the model in the report.
        source: ``architecture`` or the checkpoint's path.
        data: The inputs, in words.
        seed: Recorded in the report.
        blocks: The residual blocks by name (default: found structurally).

    Raises:
        InputError: No residual blocks, a model that returns no logits, or a batch under 2
            samples (training-mode BatchNorm needs two).
    """
    if len(inputs) < 2:
        raise InputError(
            f"the batch needs at least 2 samples (BatchNorm in training mode), got {len(inputs)}"
        )
    device = inputs.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    x = inputs.detach().clone().requires_grad_(True)
    with _measuring(model), NormProbe(model, blocks) as probe:
        began = time.perf_counter()
        logits = model(x)
        if logits.dim() != 2:
            raise InputError(
                f"{label} returns {list(logits.shape)}, not logits [N, classes]; the gradient ratios "
                "need a classifier (build it with num_classes of at least 1)"
            )
        loss = F.cross_entropy(logits, targets.to(device) % logits.shape[1])
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - began
    units = [UnitRatio.of(i, unit) for i, unit in enumerate(probe.units())]
    return GradnormReport(
        model=label,
        source=source,
        data=data,
        batch_size=len(inputs),
        seed=seed,
        loss=float(loss.detach()),
        units=units,
        seconds=seconds,
        peak_memory_mb=peak_memory_mb(device),
    )


@dataclass(frozen=True)
class LayerSpectrum:
    """The singular values of one convolution's operator on its input grid.

    Attributes:
        name: Qualified module name.
        weight_shape: ``[out, in, kh, kw]``.
        stride: The layer's stride (the operator is the stride-1 one, as the projection models it).
        grid: The input's height and width the operator acts on.
        target: The norm-preserving singular value ``sqrt(out / in)``.
        min: Smallest singular value.
        mean: Mean singular value.
        max: Largest singular value.
        max_rel_dev: ``max |σ − target| / target``.
        norm_preserving: ``max_rel_dev`` is within the tolerance.
    """

    name: str
    weight_shape: list[int]
    stride: list[int]
    grid: list[int]
    target: float
    min: float
    mean: float
    max: float
    max_rel_dev: float
    norm_preserving: bool


@dataclass
class SpectrumReport:
    """The spectra of some convolutions of one model."""

    model: str
    input_size: list[int]
    tolerance: float
    layers: list[LayerSpectrum] = field(default_factory=list)

    @property
    def norm_preserving(self) -> bool:
        """Every measured layer is norm-preserving within the tolerance."""
        return all(layer.norm_preserving for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data, laid out as ``SPECTRUM_SCHEMA`` describes."""
        return {
            "schema": SCHEMA_VERSION,
            "kind": "spectrum",
            **asdict(self),
            "norm_preserving": self.norm_preserving,
        }


def layer_spectrum(name: str, conv: nn.Conv2d, grid: Sequence[int], tolerance: float) -> LayerSpectrum:
    """The spectrum of ``conv`` acting on a ``grid`` (height, width) input."""
    weight = conv.weight
    grid = (int(grid[0]), int(grid[1]))
    sigma = operator_singular_values(weight, grid)
    target = norm_preserving_target(weight)
    deviation = float((sigma - target).abs().max() / target)
    return LayerSpectrum(
        name=name,
        weight_shape=list(weight.shape),
        stride=[int(s) for s in conv.stride],
        grid=list(grid),
        target=target,
        min=float(sigma.min()),
        mean=float(sigma.mean()),
        max=float(sigma.max()),
        max_rel_dev=deviation,
        norm_preserving=deviation <= tolerance,
    )


def measure_spectrum(
    model: nn.Module,
    input_size: Sequence[int],
    *,
    layer: str | None = None,
    transitions: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    label: str = "model",
) -> SpectrumReport:
    """The operator spectra of one named convolution, or of every convolution in a transition unit.

    One forward pass (no gradients, evaluation mode, one sample of ``input_size``) finds each
    convolution's input grid and which units are transitions.

    Args:
        model: The network.
        input_size: ``(C, H, W)`` of the model's input.
        layer: A convolution's qualified name (``trans_conv1``, ``layers.1.0.conv2``).
        transitions: Every convolution of every transition unit instead (ProcResNet: its
            stand-alone transition convolutions; other families: the convs of their
            downsampling blocks).
        tolerance: Largest ``max |σ − target| / target`` still called norm-preserving.
        label: Name of the model in the report.

    Raises:
        InputError: Neither or both of ``layer`` and ``transitions``, an unknown or non-conv
            layer name, or a bad tolerance.
    """
    if (layer is None) == (not transitions):
        raise InputError("give exactly one of --layer NAME and --transitions")
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise InputError(f"--tolerance must be a positive number, got {tolerance}")
    convs = {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    if layer is not None and layer not in convs:
        close = difflib.get_close_matches(layer, list(convs), n=5, cutoff=0.6)
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else f"its convolutions include {', '.join(list(convs)[:5])}, …"
        )
        raise InputError(f"{label} has no convolution named {layer!r}; {hint}")
    grids: dict[str, list[int]] = {}

    def grid_hook(name: str) -> Any:
        def record(module: nn.Module, args: tuple[Any, ...]) -> None:
            grids.setdefault(name, list(args[0].shape[-2:]))

        return record

    handles = [conv.register_forward_pre_hook(grid_hook(name)) for name, conv in convs.items()]
    training = model.training
    probe = NormProbe(model) if transitions else None
    try:
        model.eval()
        param = next(model.parameters(), None)
        example = torch.zeros(1, *input_size, device=param.device if param is not None else "cpu")
        with torch.no_grad(), probe or contextlib.nullcontext():
            model(example)
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    if probe is not None:
        chosen = [
            name
            for unit in probe.units()
            if unit.transition
            for name in convs
            if name in grids and (name == unit.name or name.startswith(unit.name + "."))
        ]
    else:
        chosen = [layer] if layer in grids else []
        if not chosen:
            raise InputError(f"{layer!r} does not run in {label}'s forward pass")
    report = SpectrumReport(model=label, input_size=list(input_size), tolerance=tolerance)
    report.layers = [layer_spectrum(name, convs[name], grids[name], tolerance) for name in chosen]
    return report
