"""Removing the BatchNorms that read the residual stream (pre-activation, Procrustes and LeNo networks).

In a pre-activation block ``a = relu(bn(x))`` no convolution precedes the BatchNorm, so the
ordinary fold cannot take it. For a channel with ``bn(x) = s * x + t`` and ``s > 0``,

    relu(s * x + t) = s * relu(x + c),    c = t / s,

and the two factors go where they are exact:

* the positive scale ``s`` moves into the input channels of every layer that reads the ReLU
  (through max/average pools, subsampling and zero padding, which commute with a positive
  per-channel scale: ``s * 0 = 0``);
* the shift ``c`` moves into the stream: the stream is carried as ``x + c`` instead of
  ``x``, so the BatchNorm is gone and the ReLU reads the stream directly. A stream is made
  by a convolution (the stem, a transition) or by a residual sum whose branch ends in one:
  that layer's bias takes ``c_l - c_{l-1}`` (what the skip already carries). Offsets pass
  through identity and subsampling skips (per channel, exact), through option-A zero
  channels (which carry offset 0), through max-pooling (``max(x + c) = max(x) + c``) and
  into unpadded convolutions and linear layers (their bias absorbs ``W · c``), the head's
  global average pool included.

Where the rule does not hold the BatchNorm stays, as the ChannelAffine it computes, with the
reason: a stream read unshifted by something else (a zero-padded convolution, a ReLU
without BatchNorm, the network output), a stream made by a ReLU (which cannot carry an
offset), a ReLU whose output reaches anything but layers, or channels whose scale is not
safely positive (:func:`~normresnet_export.fold.functional.stream_bn_split`). Nothing is
approximated.

The structure the pass produces depends on values only through that last test; folding
shape-only (meta device) therefore takes the list of removed BatchNorms a real fold
recorded (``FoldReport.stream_bn_removed``), which is how folded checkpoints rebuild.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from normresnet_export.errors import InputError
from normresnet_export.fold import functional as Fold
from normresnet_export.fold.passes import (
    _ADD,
    BATCHNORMS,
    CONVS,
    LAYERS,
    Folder,
    _describe,
    _reads_no_zero_padding,
    _statistics,
)
from normresnet_export.fold.report import Unfolded

#: A channel's offset ``|b/a|`` may be at most this multiple of the channel's own magnitude
#: ``|mean| + std`` (its running statistics). The shifted stream is then at most about this
#: much larger than the original, and so is its rounding error: 16 × 2^-24 ≈ 1e-6 relative in
#: float32, a tenth of the fold's float32 limit; in float64 16 × 2^-53 is far below 1e-10.
MAX_OFFSET_RATIO = 16.0
#: The smallest scale moved into a weight: ``W * a`` stays a normal float32 (above 1.2e-38)
#: for every weight above 1e-18, so no precision is lost to underflow.
MIN_SCALE = 1e-20

#: The report's name for a removed BatchNorm (``{}``: its class).
PATTERN = "{} on the residual stream: scale into the layers after it, shift into the stream offset"

_RELUS = (F.relu, torch.relu)
_MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_AVG_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_ADAPTIVE_AVG_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)


class PlanError(Exception):
    """The offsets could not be planned consistently: the pass leaves the graph as it was."""


@dataclass
class _Free:
    """A value whose offset is still to choose: ``handle``'s bias takes ``chosen - rest``."""

    handle: fx.Node
    rest: torch.Tensor | None


@dataclass
class _Scaled:
    """A value carried divided by ``scale`` (per channel, positive): its readers multiply it back."""

    scale: torch.Tensor


@dataclass
class _Unscaled:
    """The stream read by a removed BatchNorm: its ReLU's output will be carried divided by ``scale``."""

    scale: torch.Tensor


@dataclass
class _Candidate:
    """A BatchNorm that may leave: its ReLU, scale, stream offset and how many channels refuse."""

    relu: fx.Node
    scale: torch.Tensor
    offset: torch.Tensor
    refused: int


def _nodes(value: object) -> list[fx.Node]:
    """The graph nodes among ``value``'s (nested) arguments."""
    found: list[fx.Node] = []
    fx.node.map_arg(value, found.append)
    return found


class StreamOffsets:
    """Plans the stream offsets of one folded graph, then applies them (or nothing, on a conflict)."""

    def __init__(self, folder: Folder, removed: Collection[str] | None) -> None:
        self.folder = folder
        self.removed = None if removed is None else frozenset(removed)
        self.state: dict[fx.Node, object] = {}
        self.candidates: dict[fx.Node, _Candidate | str | None] = {}  # see candidate()
        self.reasons: dict[fx.Node, str] = {}  # BatchNorms kept, and why
        self.refused: set[fx.Node] = set()  # candidates kept for some channels' values
        self.chosen: set[fx.Node] = set()
        self.input_transform: dict[fx.Node, tuple[torch.Tensor | float, torch.Tensor | float]] = {}
        self.output_shift: dict[fx.Node, torch.Tensor] = {}
        self.kept_offset: dict[fx.Node, torch.Tensor] = {}
        targets = [n.target for n in folder.graph.nodes if n.op == "call_module"]
        # A layer called twice has one weight for two places: the pass leaves such layers alone.
        self.shared = {t for t, n in Counter(targets).items() if n > 1}

    # ------------------------------------------------------------------------------ node kinds

    def kind(self, node: fx.Node) -> str:
        """What the pass knows about ``node``: layer, bn, relu, add, delegate, offset, scale or other.

        * ``delegate``: keeps channels and commutes with a per-channel offset and a positive
          scale (max-pool, spatial subsampling), so a free offset may be chosen through it;
        * ``offset``: commutes with both but changes shape (average pools, channel padding);
        * ``scale``: commutes with a positive scale only (zero-padded average pools, spatial padding).
        """
        if node.op == "call_module":
            module = self.folder.module(node)
            if isinstance(module, (*LAYERS, BATCHNORMS)) and node.target in self.shared:
                return "other"  # one weight for two places: changing it for one would change both
            if isinstance(module, LAYERS):
                return "layer"
            if isinstance(module, BATCHNORMS):
                return "bn" if module.running_mean is not None else "other"
            if isinstance(module, nn.ReLU):
                return "relu"
            if isinstance(module, _MAX_POOLS):
                return "delegate"
            if isinstance(module, _ADAPTIVE_AVG_POOLS) or type(module).__name__ == "GlobalAvgPool2d":
                return "offset"
            if isinstance(module, _AVG_POOLS):
                if module.divisor_override is not None:
                    return "other"
                unpadded = not any(_as_tuple(module.padding)) and not module.ceil_mode
                return "offset" if unpadded or not module.count_include_pad else "scale"
            return "other"
        if node.op == "call_method" and node.target == "relu" and len(node.args) == 1:
            return "relu"
        if node.op != "call_function":
            return "other"
        if node.target in _RELUS and len(node.args) == 1 and not node.kwargs.get("inplace", False):
            return "relu"
        if node.target in _ADD and len(node.args) == 2 and not node.kwargs:
            if all(isinstance(a, fx.Node) for a in node.args):
                return "add"
            return "other"
        if node.target is operator.getitem and _spatial_slice(node.args[1]):
            return "delegate"
        if node.target is F.pad and self.channel_padding(node) is not None:
            return "offset" if self.channel_padding(node) != "spatial" else "scale"
        return "other"

    def channel_padding(self, node: fx.Node) -> tuple[int, int] | str | None:
        """``(before, after)`` channels a constant-zero ``F.pad`` adds, ``"spatial"`` if it pads only
        spatial sides, or ``None`` if it pads anything else (or the tensor's rank is unknown)."""
        pad = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad")
        mode = node.kwargs.get("mode", node.args[2] if len(node.args) > 2 else "constant")
        value = node.kwargs.get("value", node.args[3] if len(node.args) > 3 else None)
        if mode != "constant" or value not in (None, 0, 0.0) or not isinstance(pad, (tuple, list)):
            return None
        if len(pad) % 2 or not all(isinstance(p, int) and p >= 0 for p in pad):
            return None
        rank = self.rank(node.args[0])
        if rank is None or len(pad) > 2 * (rank - 1):
            return None
        spatial = 2 * (rank - 2)
        if len(pad) <= spatial:
            return "spatial"
        if any(pad[:spatial]):
            return None
        return pad[spatial], pad[spatial + 1]

    def rank(self, node: object) -> int | None:
        """The rank of the tensor ``node`` computes, where the layers before it tell (else ``None``)."""
        while isinstance(node, fx.Node):
            module = self.folder.module(node)
            if isinstance(module, CONVS):
                return module.weight.dim()
            if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
                return 4 if isinstance(module, nn.BatchNorm2d) else 5
            passes_rank = (node.op == "call_function" and node.target in (*_RELUS, *_ADD, F.pad)) or (
                isinstance(module, (nn.ReLU, *_MAX_POOLS)) or self.kind(node) == "delegate"
            )
            if not (passes_rank and node.args):
                return None
            node = node.args[0]
        return None

    # ------------------------------------------------------------------------------ structure

    def is_free(self, node: fx.Node) -> bool:
        """Whether ``node``'s offset can still be chosen through a layer's bias (see :meth:`walk`)."""
        stack = [node]
        while stack:
            current = stack.pop()
            kind = self.kind(current)
            if kind == "layer":
                return True
            if kind == "delegate" and len(current.args[0].users) == 1:
                stack.append(current.args[0])
            elif kind == "add" and current.args[0] is not current.args[1]:
                stack.extend(a for a in current.args if len(a.users) == 1)
        return False

    def offset_reader(self, node: fx.Node) -> fx.Node | None:
        """The first reader of ``node`` (through offset-carrying ops) that needs it unshifted, if any."""
        stack, seen = [node], set()
        while stack:
            current = stack.pop()
            for user in current.users:
                kind = self.kind(user)
                if kind == "bn":
                    continue  # a kept BatchNorm compensates the offset in its shift
                if kind == "layer":
                    if not _reads_no_zero_padding(self.folder.module(user)):
                        return user
                    continue  # its bias absorbs W · c
                if kind == "add":
                    other = user.args[1] if user.args[0] is current else user.args[0]
                    if other is not current and len(other.users) == 1 and self.is_free(other):
                        continue  # the other operand's layer compensates
                elif kind not in ("delegate", "offset"):
                    return user
                if user not in seen:  # the offset travels on: its readers must take it too
                    seen.add(user)
                    stack.append(user)
        return None

    def scale_reader(self, relu: fx.Node) -> fx.Node | None:
        """The first reader of ``relu`` (through scale-carrying ops) that cannot take a channel scale."""
        stack = [relu]
        while stack:
            current = stack.pop()
            for user in current.users:
                kind = self.kind(user)
                if kind == "layer" and user.args[0] is current:
                    continue
                if kind in ("delegate", "offset", "scale"):
                    stack.append(user)
                    continue
                return user
        return None

    def candidate(self, node: fx.Node) -> _Candidate | str | None:
        """The BatchNorm at ``node`` as a candidate for removal, why a BN → ReLU is not one, or ``None``.

        ``None`` (a BatchNorm that feeds no ReLU alone) leaves the reason to the ordinary fold.
        """
        if len(node.users) != 1 or self.kind(next(iter(node.users))) != "relu":
            return None
        (relu,) = node.users
        reader = self.scale_reader(relu)
        if reader is not None:
            return (
                f"its ReLU also feeds {_label(reader, self.folder.gm)}, which cannot take a per-channel scale"
            )
        scale, offset, usable = Fold.stream_bn_split(
            *_statistics(self.folder.module(node)), max_offset_ratio=MAX_OFFSET_RATIO, min_scale=MIN_SCALE
        )
        refused = 0 if self.removed is not None or usable.is_meta else int((~usable).sum())
        return _Candidate(relu, scale, offset, refused)

    # ------------------------------------------------------------------------------ planning

    def resolve(self, node: fx.Node) -> torch.Tensor | None:
        """Fix the offset ``node`` carries (choosing it now if it is free) and return it."""
        state = self.state.get(node)
        if isinstance(state, (_Scaled, _Unscaled)):
            raise PlanError(f"{node.name} carries a channel scale where an offset was expected")
        if not isinstance(state, _Free):
            return state  # type: ignore[return-value]
        wanted = self.demand(node)
        shift = Fold.add_offsets(wanted, state.rest, subtract=True)
        if shift is not None:
            self.output_shift[state.handle] = Fold.add_offsets(self.output_shift.get(state.handle), shift)
        self.state[node] = wanted
        return wanted

    def demand(self, node: fx.Node) -> torch.Tensor | None:
        """The offset a free stream should carry: that of the first removable BatchNorm reading it."""
        readers = [u for u in node.users if isinstance(self.candidates.get(u), _Candidate)]
        if self.removed is not None:
            readers = [u for u in readers if u.target in self.removed]
        else:
            self.refused.update(u for u in readers if self.candidates[u].refused)
            readers = [u for u in readers if not self.candidates[u].refused]
        if not readers:
            return None
        blocker = self.offset_reader(node)
        if blocker is not None:
            what = _label(blocker, self.folder.gm)
            why = f"the stream it reads also feeds {what}, which needs it unshifted"
            for bn in readers:
                self.reasons.setdefault(bn, why)
            return None
        chosen, *others = readers
        for bn in others:
            self.reasons.setdefault(bn, "another BatchNorm that reads the same stream carries its offset")
        self.chosen.add(chosen)
        return self.candidates[chosen].offset

    def walk(self) -> None:
        """Give every node its state in graph (topological) order; choose free offsets when read."""
        for node in self.folder.graph.nodes:
            if node.op in ("placeholder", "get_attr"):
                self.state[node] = None
                continue
            kind = self.kind(node)
            source = node.args[0] if node.args else None
            if kind == "layer":
                incoming = self.state.get(source)
                if isinstance(incoming, _Scaled):
                    self.input_transform[node] = (incoming.scale, 0.0)
                else:
                    offset = self.resolve(source)
                    if offset is not None:
                        if not _reads_no_zero_padding(self.folder.module(node)):
                            raise PlanError(f"{node.target} would read a shifted stream through zero padding")
                        self.input_transform[node] = (1.0, Fold.add_offsets(None, offset, subtract=True))
                self.state[node] = _Free(node, None)
            elif kind == "bn":
                offset = self.resolve(source)
                if node in self.chosen:
                    self.state[node] = _Unscaled(self.candidates[node].scale)
                else:
                    if offset is not None:
                        self.kept_offset[node] = offset
                    if isinstance(self.candidates.get(node), _Candidate) and not (
                        node in self.refused or node in self.reasons
                    ):
                        self.reasons[node] = (
                            f"the stream it reads comes from {_label(source, self.folder.gm)}, "
                            "which cannot carry an offset"
                        )
                    self.state[node] = None
            elif kind == "relu":
                incoming = self.state.get(source)
                if isinstance(incoming, _Unscaled):
                    self.state[node] = _Scaled(incoming.scale)
                else:
                    self.require_unshifted(source)
                    self.state[node] = None
            elif kind == "add":
                self.state[node] = self.add(node)
            elif kind == "delegate":
                incoming = self.state.get(source)
                if isinstance(incoming, _Scaled) or (isinstance(incoming, _Free) and len(source.users) == 1):
                    self.state[node] = incoming
                else:
                    self.state[node] = self.resolve(source)
            elif kind in ("offset", "scale"):
                self.state[node] = self.passing(node, kind)
            else:
                for value in _nodes((node.args, node.kwargs)):
                    self.require_unshifted(value)
                self.state[node] = None

    def require_unshifted(self, node: fx.Node) -> None:
        if isinstance(self.state.get(node), (_Scaled, _Unscaled)) or self.resolve(node) is not None:
            raise PlanError(f"{node.name} would reach an operation that needs it unshifted and unscaled")

    def add(self, node: fx.Node) -> object:
        first, second = node.args
        for handle, other in ((first, second), (second, first)):
            state = self.state.get(handle)
            if isinstance(state, _Free) and len(handle.users) == 1 and handle is not other:
                return _Free(state.handle, Fold.add_offsets(state.rest, self.resolve(other)))
        if any(isinstance(self.state.get(a), (_Scaled, _Unscaled)) for a in (first, second)):
            raise PlanError(f"{node.name} adds a channel-scaled value")
        return Fold.add_offsets(self.resolve(first), self.resolve(second))

    def passing(self, node: fx.Node, kind: str) -> object:
        """State after an op that carries a positive scale (and, for ``offset`` ops, an offset)."""
        source = node.args[0]
        incoming = self.state.get(source)
        padding = self.channel_padding(node) if node.op == "call_function" else None
        before, after = padding if isinstance(padding, tuple) else (0, 0)
        if isinstance(incoming, _Scaled):
            return _Scaled(Fold.pad_vector(incoming.scale, before, after, value=1.0))
        if isinstance(incoming, _Unscaled):
            raise PlanError(f"{node.name} reads a removed BatchNorm's stream")
        if kind == "scale":
            self.require_unshifted(source)
            return None
        return Fold.pad_vector(self.resolve(source), before, after, value=0.0)

    # ------------------------------------------------------------------------------ applying

    def apply(self) -> list[str]:
        """Rewrite the graph as planned; returns the qualified names of the BatchNorms removed."""
        folder = self.folder
        for node in sorted(set(self.input_transform) | set(self.output_shift), key=_order(folder.graph)):
            layer = folder.module(node)
            weight, bias = layer.weight, layer.bias
            if node in self.input_transform:
                scale, shift = self.input_transform[node]
                groups = getattr(layer, "groups", 1)
                weight, bias = Fold.fold_input_affine(weight, bias, scale, shift, groups=groups)
            if node in self.output_shift:
                weight, bias = Fold.fold_output_affine(weight, bias, 1.0, self.output_shift[node])
            folder.replace_layer(node, weight, bias)
        removed = []
        for node in [n for n in folder.graph.nodes if n in self.chosen]:
            removed.append(node.target)
            folder.folded[PATTERN.format(type(folder.module(node)).__name__)] += 1
            relu = self.candidates[node].relu
            if relu.op == "call_module" and folder.module(relu).inplace:
                folder.set_module(relu.target, nn.ReLU())  # in place, it would now overwrite the stream
            node.replace_all_uses_with(node.args[0])
            folder.graph.erase_node(node)
        for node in self.refused - self.chosen:
            candidate = self.candidates[node]
            folder.keep_batchnorm(
                node,
                f"channels with a scale a ≤ 0, or an offset b/a beyond {MAX_OFFSET_RATIO:g}× their own "
                "magnitude, cannot use relu(a·x + b) = a·relu(x + b/a)",
                input_offset=self.kept_offset.get(node),
                label=f"{node.target} ({candidate.refused} of {candidate.scale.numel()} channels)",
            )
        for node, reason in self.reasons.items():
            if node not in self.chosen and node not in self.refused:
                folder.keep_batchnorm(node, reason, input_offset=self.kept_offset.get(node))
        for node, candidate in self.candidates.items():
            if isinstance(candidate, str) and node not in self.reasons:
                folder.keep_batchnorm(node, candidate, input_offset=self.kept_offset.get(node))
        for node, offset in self.kept_offset.items():
            if isinstance(folder.module(node), BATCHNORMS):  # not kept above
                folder.keep_batchnorm(node, folder.why_not(node), input_offset=offset)
        return removed


def _order(graph: fx.Graph) -> Callable[[fx.Node], int]:
    """A sort key: a node's position in ``graph``."""
    position = {node: index for index, node in enumerate(graph.nodes)}
    return position.__getitem__


def _as_tuple(value: object) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _spatial_slice(index: object) -> bool:
    """Whether ``x[index]`` keeps the batch and channel dimensions whole and slices only spatial ones."""
    if not isinstance(index, tuple) or len(index) < 2:
        return False
    whole = slice(None, None, None)
    return index[0] == whole and index[1] == whole and all(isinstance(i, slice) for i in index[2:])


def _label(node: object, graph_module: fx.GraphModule) -> str:
    if isinstance(node, fx.Node) and node.op == "output":
        return "the network output"
    return _describe(node, graph_module)


def remove_stream_batchnorms(folder: Folder, *, removed: Collection[str] | None = None) -> None:
    """The residual-stream pass: remove every BatchNorm the identity allows, keep the rest with reasons.

    Args:
        folder: The graph after the ordinary folds (its BatchNorms are those no layer precedes).
        removed: The BatchNorms a previous fold removed (``FoldReport.stream_bn_removed``), to
            rebuild that fold's structure; ``None`` decides from the BatchNorms' values.

    Raises:
        InputError: ``removed`` names a BatchNorm this graph cannot remove (a record that does
            not belong to this architecture).
    """
    planner = StreamOffsets(folder, removed)
    for node in folder.graph.nodes:
        if planner.kind(node) == "bn":
            planner.candidates[node] = planner.candidate(node)
    try:
        planner.walk()
    except PlanError as exc:  # nothing was changed yet: the graph stays as the ordinary fold left it
        folder.stream_bn_removed = []
        folder.unfolded.append(
            Unfolded("residual stream", "stream offsets", f"not planned, every BatchNorm stays: {exc}")
        )
        return
    if removed is not None and {n.target for n in planner.chosen} != set(removed):
        extra = sorted(set(removed) - {n.target for n in planner.chosen})
        raise InputError(
            f"the fold record lists {len(removed)} removed residual-stream BatchNorm(s), but this network "
            f"removes {len(planner.chosen)} (e.g. {', '.join(extra[:3]) or 'none missing'}); "
            "the record belongs to another architecture"
        )
    folder.stream_bn_removed = planner.apply()
