"""Per-sample norms at the input and output of every residual block, in one forward and backward pass.

The norm-preservation papers argue with one quantity: the gradient-norm ratio across a block,
``‖∂L/∂x_l‖ / ‖∂L/∂x_{l+1}‖`` (``x_l`` the block's input, ``x_{l+1}`` its output), which stays
near 1 in a norm-preserving network and drifts in an ordinary one, most at the transition
(downsampling) blocks. :class:`NormProbe` measures it, and the forward ratio
``‖x_{l+1}‖ / ‖x_l‖`` beside it, on any model, while the model trains or once on a batch.

Memory: the hooks keep one float64 number per sample per tensor (its norm), never the
activation or the gradient itself, so the probe adds O(blocks × batch) numbers to what
autograd already holds; a 1000-layer network costs what its plain backward pass costs.

Blocks are found structurally, so every family (and a user's own model) is covered without a
list of classes: a *residual block* is a module that has submodules, is not itself a container
(``Sequential``, ``ModuleList``, ``ModuleDict``), is a child of an ``nn.Sequential`` (a stage)
and lies inside no other block. Every family of this package builds its stages that way
(``layer1.0``, ``layers.0.3``, ``group1.block2``, …), and the modules inside a block (its
shortcut ``Sequential`` included) are never blocks themselves. The stand-alone layers that run
*between* two blocks on the main path (ProcResNet's ``trans_conv1``/``trans_conv2``, DiracNet's
max-pools) are measured too, as *layers*. A unit whose output shape differs from its input
shape (stride 2 or a change of width) is a *transition*.

This module is pure torch (no model classes), so both the library's ``analysis`` and the
trainer's ``--log-gradnorm`` use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import torch
from torch import nn

from normresnet_export.errors import InputError
from normresnet_export.vocabulary import ANALYSIS_UNITS

BLOCK, LAYER = ANALYSIS_UNITS
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def residual_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """The model's residual blocks by qualified name, in registration order (see the module docstring)."""
    found: dict[str, nn.Module] = {}
    for parent_name, parent in model.named_modules():
        if not isinstance(parent, nn.Sequential) or _inside(parent_name, found):
            continue
        for child_name, child in parent.named_children():
            if isinstance(child, _CONTAINERS) or next(child.children(), None) is None:
                continue
            found[f"{parent_name}.{child_name}" if parent_name else child_name] = child
    return found


def _inside(name: str, blocks: Mapping[str, nn.Module]) -> bool:
    """Whether the module called ``name`` is a block or lies inside one."""
    parts = name.split(".") if name else []
    return any(".".join(parts[: i + 1]) in blocks for i in range(len(parts)))


def sample_norms(tensor: torch.Tensor) -> torch.Tensor:
    """The float64 L2 norm of each sample (dimension 0) of a batch."""
    return torch.linalg.vector_norm(tensor.detach().flatten(1), dim=1, dtype=torch.float64).cpu()


@dataclass
class UnitNorms:
    """What the probe kept of one unit: its shapes and the per-sample norms around it.

    Attributes:
        name: Qualified module name (``layer2.0``, ``trans_conv1``).
        kind: ``block`` (a residual block) or ``layer`` (a stand-alone layer between blocks).
        in_shape: One sample's input shape.
        out_shape: One sample's output shape.
        forward_in: ``‖x_l‖`` per sample.
        forward_out: ``‖x_{l+1}‖`` per sample.
        grad_in: ``‖∂L/∂x_l‖`` per sample (``None`` until a backward pass reached it).
        grad_out: ``‖∂L/∂x_{l+1}‖`` per sample (``None`` until a backward pass reached it).
    """

    name: str
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    forward_in: torch.Tensor
    forward_out: torch.Tensor
    grad_in: torch.Tensor | None = None
    grad_out: torch.Tensor | None = None

    @property
    def transition(self) -> bool:
        """Whether the unit changes the shape of the stream (a downsampling or widening unit)."""
        return self.in_shape != self.out_shape

    @property
    def forward_ratio(self) -> torch.Tensor:
        """``‖x_{l+1}‖ / ‖x_l‖`` per sample."""
        return self.forward_out / self.forward_in

    @property
    def grad_ratio(self) -> torch.Tensor:
        """``‖∂L/∂x_l‖ / ‖∂L/∂x_{l+1}‖`` per sample, the papers' ratio.

        Raises:
            InputError: No backward pass reached this unit.
        """
        if self.grad_in is None or self.grad_out is None:
            raise InputError(
                f"no gradient reached {self.name!r}; run a backward pass inside the probe, on an input "
                "that requires grad (or after a layer with parameters)"
            )
        return self.grad_in / self.grad_out


@dataclass
class NormProbe:
    """A context manager that records :class:`UnitNorms` for every unit of one forward/backward pass.

    Only the first call of each module inside the context is recorded. Use a fresh probe (or
    re-enter it) for every pass you want measured::

        with NormProbe(model) as probe:
            F.cross_entropy(model(x), y).backward()
        ratios = [unit.grad_ratio.mean() for unit in probe.units()]

    Args:
        model: The network (a ``DistributedDataParallel``'s ``.module`` works the same).
        blocks: The residual blocks by name; default :func:`residual_blocks` of ``model``.

    Raises:
        InputError: The model has no residual blocks.
    """

    model: nn.Module
    blocks: Mapping[str, nn.Module] | None = None
    _records: dict[str, UnitNorms] = field(default_factory=dict, init=False, repr=False)
    _handles: list[Any] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.blocks = dict(residual_blocks(self.model) if self.blocks is None else self.blocks)
        if not self.blocks:
            raise InputError(
                f"found no residual blocks in {type(self.model).__name__}: expected modules with submodules "
                "that are children of an nn.Sequential stage; a folded model has none, so measure the "
                "unfolded one"
            )

    def __enter__(self) -> NormProbe:
        self._records = {}
        inside = {id(m) for block in self.blocks.values() for m in block.modules()}  # type: ignore[union-attr]
        for name, module in self.blocks.items():  # type: ignore[union-attr]
            self._handles.append(module.register_forward_hook(self._hook(name, BLOCK)))
        for name, module in self.model.named_modules():
            if id(module) not in inside and next(module.children(), None) is None:
                self._handles.append(module.register_forward_hook(self._hook(name, LAYER)))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str, kind: str) -> Any:
        def record(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if name in self._records or not args:
                return
            x = args[0]
            if not (isinstance(x, torch.Tensor) and isinstance(output, torch.Tensor)) or x.dim() < 2:
                return
            if kind == LAYER and not any(r.kind == BLOCK for r in self._records.values()):
                return  # the stem: before the first block, not between two
            unit = UnitNorms(
                name, kind, tuple(x.shape[1:]), tuple(output.shape[1:]), sample_norms(x), sample_norms(output)
            )
            self._records[name] = unit
            if x.requires_grad:
                x.register_hook(lambda g: setattr(unit, "grad_in", sample_norms(g)))
            if output.requires_grad:
                output.register_hook(lambda g: setattr(unit, "grad_out", sample_norms(g)))

        return record

    def units(self) -> list[UnitNorms]:
        """The recorded units in the order they ran: every block, and the layers between blocks."""
        recorded = list(self._records.values())
        last = max((i for i, unit in enumerate(recorded) if unit.kind == BLOCK), default=-1)
        return recorded[: last + 1]
