"""Graph passes that fold BatchNorm, scales, offsets and re-parameterised weights into convolutions.

Each pass rewrites a ``torch.fx`` graph traced by :class:`~normresnet_export.fold.tracer.FoldTracer`
and only applies a fold that is exact for every input: a fold that would change some
outputs (an affine in front of a zero-padded convolution changes the border, for instance)
is left in place and recorded with its reason. The passes are purely structural — they
never look at weight *values* to decide — so running them on a shape-only (meta device)
model gives the same module tree; that is how folded checkpoints are rebuilt.

Patterns:

* identity and dropout modules are removed (eval semantics);
* a layer with a ``fold()`` method (Dirac convolutions) becomes the plain layer it returns;
* conv/linear → BatchNorm, conv → ``Scale`` (tau), conv → ``* c`` and conv → ``+ c`` for a
  scalar ``c`` merge into the conv's weight and bias;
* ``conv_a + conv_b`` → BatchNorm (pre-activation nets with projection shortcuts in every
  block) merges into both convs;
* BatchNorm / scalar offset → conv *without padding* (or linear) merges into that conv;
* conv → zero channel padding (option-A and tau-ResNet skips) becomes extra zero outputs;
* a stride-s ``AvgPool2d(1)`` in front of a BatchNorm becomes a 1×1/s conv so the BN folds;
* every remaining eval-mode BatchNorm becomes a :class:`~normresnet_export.nn.affine.ChannelAffine`.
"""

from __future__ import annotations

import copy
import operator
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from normresnet_export.fold import functional as Fold
from normresnet_export.fold.report import Unfolded
from normresnet_export.nn.affine import ChannelAffine
from normresnet_export.nn.scale import Scale

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
LAYERS = (*CONVS, nn.Linear)
BATCHNORMS = nn.modules.batchnorm._BatchNorm
_ADD = (operator.add, torch.add)
_MUL = (operator.mul, torch.mul)


def _rebuild(layer: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> nn.Module:
    """A new conv/linear layer like ``layer`` (same stride, padding, …) with the given weight and a bias.

    The layer is built on the meta device and then given copies of ``weight`` and ``bias``:
    building it for real would draw a random initialisation only to overwrite it, which cost
    a quarter of the whole fold of a wide network.
    """
    with torch.device("meta"):
        if isinstance(layer, nn.Linear):
            new: nn.Module = nn.Linear(weight.shape[1], weight.shape[0], bias=True)
        else:
            new = type(layer)(
                weight.shape[1] * layer.groups,
                weight.shape[0],
                tuple(weight.shape[2:]),
                stride=layer.stride,
                padding=layer.padding,
                dilation=layer.dilation,
                groups=layer.groups,
                bias=True,
                padding_mode=layer.padding_mode,
            )
    new.weight = nn.Parameter(weight.detach().clone(), requires_grad=layer.weight.requires_grad)
    new.bias = nn.Parameter(bias.detach().clone(), requires_grad=layer.weight.requires_grad)
    return new


def _reads_no_zero_padding(layer: nn.Module) -> bool:
    """Whether every output of ``layer`` reads only real inputs (so an input affine folds exactly).

    Linear layers and unpadded convs qualify; so do convs with reflect/replicate/circular
    padding, whose padded values are copies of real ones and move with them.
    """
    if isinstance(layer, nn.Linear):
        return True
    if layer.padding_mode != "zeros":
        return True
    if isinstance(layer.padding, str):
        return layer.padding == "valid" or all(k == 1 for k in layer.kernel_size)
    return all(p == 0 for p in layer.padding)


def _statistics(
    bn: nn.Module,
) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor | None, torch.Tensor | None]:
    """An eval-mode BatchNorm's ``(running_mean, running_var, eps, gamma, beta)``.

    These are the arguments of :func:`~normresnet_export.fold.functional.batchnorm_affine` and
    :func:`~normresnet_export.fold.functional.fold_bn`, which do the arithmetic; a BatchNorm
    without affine parameters has no gamma and beta.
    """
    gamma, beta = (bn.weight, bn.bias) if bn.affine else (None, None)
    return bn.running_mean, bn.running_var, bn.eps, gamma, beta


def _set_module(graph_module: fx.GraphModule, target: str, module: nn.Module) -> None:
    parent, _, name = target.rpartition(".")
    setattr(graph_module.get_submodule(parent) if parent else graph_module, name, module)


def _describe(node: Any, graph_module: fx.GraphModule) -> str:
    if not isinstance(node, fx.Node):
        return "a constant"
    if node.op == "call_module":
        return f"{type(graph_module.get_submodule(node.target)).__name__} ({node.target})"
    if node.op == "call_function" and node.target in _ADD:
        return "a residual addition"
    if node.op == "placeholder":
        return "the network input"
    return f"{getattr(node.target, '__name__', node.target)}"


class Folder:
    """Runs the passes on one GraphModule and records what it folded and what it could not."""

    def __init__(self, graph_module: fx.GraphModule) -> None:
        self.gm = graph_module
        self.graph = graph_module.graph
        self.folded: Counter[str] = Counter()
        self.unfolded: list[Unfolded] = []
        #: The residual-stream BatchNorms removed (``None``: that pass did not run).
        self.stream_bn_removed: list[str] | None = None
        # get_submodule walks the dotted path on every call; 1000-layer nets make tens of thousands.
        self.modules = dict(graph_module.named_modules())
        self.rebuilt: set[str] = set()  # layers this fold built anew, which it may change in place

    # ----------------------------------------------------------------------------------- helpers

    def module(self, node: Any) -> nn.Module | None:
        if isinstance(node, fx.Node) and node.op == "call_module":
            return self.modules[node.target]
        return None

    def set_module(self, target: str, module: nn.Module) -> None:
        _set_module(self.gm, target, module)
        self.modules[target] = module

    def sole_user_is(self, node: fx.Node, user: fx.Node) -> bool:
        return len(node.users) == 1 and user in node.users

    def layer_with_sole_user(self, node: Any, user: fx.Node) -> nn.Module | None:
        """The conv/linear module computed by ``node`` if ``user`` is the only consumer of its output."""
        layer = self.module(node)
        return layer if isinstance(layer, LAYERS) and self.sole_user_is(node, user) else None

    def scalar(self, value: Any) -> torch.Tensor | float | None:
        """``value`` if it is a Python number or a one-element parameter/buffer read by ``get_attr``."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, fx.Node) and value.op == "get_attr":
            tensor = operator.attrgetter(value.target)(self.gm)
            if isinstance(tensor, torch.Tensor) and tensor.numel() == 1:
                return tensor.detach()
        return None

    def replace_layer(self, node: fx.Node, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Give the layer at ``node`` a new weight and bias, in a new module the first time.

        The first fold of a layer builds a new module (the traced one is shared with the input
        model, which must not change); later folds of it that keep its shape replace that
        module's tensors.
        """
        layer = self.module(node)
        if node.target in self.rebuilt and weight.shape == layer.weight.shape:
            requires_grad = layer.weight.requires_grad
            layer.weight = nn.Parameter(weight.detach().clone(), requires_grad=requires_grad)
            layer.bias = nn.Parameter(bias.detach().clone(), requires_grad=requires_grad)
            return
        self.set_module(node.target, _rebuild(layer, weight, bias))
        self.rebuilt.add(node.target)

    def absorb(self, node: fx.Node, into: fx.Node, pattern: str) -> None:
        """Replace ``node`` (now folded into ``into``) by ``into`` and drop it from the graph."""
        node.replace_all_uses_with(into)
        self.graph.erase_node(node)
        self.folded[pattern] += 1

    # ----------------------------------------------------------------------------------- passes

    def remove_identities(self) -> None:
        for node in list(self.graph.nodes):
            module = self.module(node)
            if isinstance(module, (nn.Identity, nn.modules.dropout._DropoutNd)):
                kind = "dropout" if isinstance(module, nn.modules.dropout._DropoutNd) else "identity"
                self.absorb(node, node.args[0], f"{kind} removed")

    def fold_reparameterised_layers(self) -> None:
        """A layer with a ``fold()`` method (a Dirac convolution) becomes the plain layer it returns."""
        for node in self.graph.nodes:
            module = self.module(node)
            if callable(getattr(module, "fold", None)):
                plain = module.fold()
                self.set_module(node.target, plain)
                self.folded[
                    f"{type(module).__name__} weight re-parameterisation → {type(plain).__name__}"
                ] += 1

    def subsampling_pools_to_convs(self) -> None:
        """A stride-s ``AvgPool2d(1)`` feeding only a BatchNorm becomes a 1×1/s identity conv (for the BN)."""
        for node in self.graph.nodes:
            pool = self.module(node)
            if not isinstance(pool, nn.AvgPool2d) or len(node.users) != 1:
                continue
            (user,) = node.users
            bn = self.module(user)
            kernel = pool.kernel_size if isinstance(pool.kernel_size, tuple) else (pool.kernel_size,) * 2
            padding = pool.padding if isinstance(pool.padding, tuple) else (pool.padding,) * 2
            if kernel != (1, 1) or padding != (0, 0) or pool.ceil_mode or not isinstance(bn, BATCHNORMS):
                continue
            channels = bn.num_features
            factory = {"device": bn.running_mean.device, "dtype": bn.running_mean.dtype}
            conv = nn.Conv2d(channels, channels, 1, stride=pool.stride, bias=False, **factory)
            if not conv.weight.is_meta:
                with torch.no_grad():
                    conv.weight.copy_(torch.eye(channels, **factory).view(channels, channels, 1, 1))
            self.set_module(node.target, conv)
            self.folded["subsampling AvgPool2d(1) → 1×1 conv (absorbs the BatchNorm after it)"] += 1

    def fold_batchnorm_into_layer(self) -> bool:
        changed = False
        for node in list(self.graph.nodes):
            bn = self.module(node)
            if not isinstance(bn, BATCHNORMS) or bn.running_mean is None:
                continue
            source = node.args[0]
            layer = self.layer_with_sole_user(source, node)
            if layer is not None:
                self.replace_layer(source, *Fold.fold_bn(layer.weight, layer.bias, *_statistics(bn)))
                self.absorb(node, source, f"{type(bn).__name__} into the {type(layer).__name__} before it")
                changed = True
            elif self.is_sum_of_two_layers(source, node):
                # scale * (a + b) + shift: the shift goes into one of the two convs only.
                scale, shift = Fold.batchnorm_affine(*_statistics(bn))
                first, second = source.args
                self.replace_layer(
                    first,
                    *Fold.fold_output_affine(
                        self.module(first).weight, self.module(first).bias, scale, shift
                    ),
                )
                self.replace_layer(
                    second,
                    *Fold.fold_output_affine(
                        self.module(second).weight, self.module(second).bias, scale, 0.0
                    ),
                )
                self.absorb(node, source, f"{type(bn).__name__} into the two convs whose sum it normalises")
                changed = True
        return changed

    def is_sum_of_two_layers(self, source: Any, bn_node: fx.Node) -> bool:
        if not (isinstance(source, fx.Node) and source.op == "call_function" and source.target in _ADD):
            return False
        if len(source.args) != 2 or source.kwargs or not self.sole_user_is(source, bn_node):
            return False
        first, second = source.args
        return first is not second and all(
            self.layer_with_sole_user(a, source) is not None for a in source.args
        )

    def fold_output_scalars(self) -> bool:
        """conv → ``Scale`` / ``* c`` / ``+ c`` with a scalar ``c``: into the conv's weight and bias."""
        changed = False
        for node in list(self.graph.nodes):
            module = self.module(node)
            if isinstance(module, Scale):
                pairs = [(node.args[0], module.value)]
                kind, pattern = "mul", "Scale (tau) into the conv before it"
            elif (
                node.op == "call_function"
                and (node.target in _MUL or node.target in _ADD)
                and len(node.args) == 2
            ):
                pairs = [(node.args[0], self.scalar(node.args[1])), (node.args[1], self.scalar(node.args[0]))]
                kind = "mul" if node.target in _MUL else "add"
                pattern = (
                    "scalar multiplier into the conv before it"
                    if kind == "mul"
                    else "scalar offset into the conv before it"
                )
            else:
                continue
            for source, value in pairs:
                layer = self.layer_with_sole_user(source, node)
                if layer is None or value is None:
                    continue
                scale, shift = (value, 0.0) if kind == "mul" else (1.0, value)
                self.replace_layer(source, *Fold.fold_output_affine(layer.weight, layer.bias, scale, shift))
                self.absorb(node, source, pattern)
                changed = True
                break
        return changed

    def fold_input_affines(self) -> bool:
        """BatchNorm / ChannelAffine / ``+ c`` feeding only an unpadded conv or a linear: into that layer."""
        changed = False
        for node in list(self.graph.nodes):
            layer = self.module(node)
            if not isinstance(layer, LAYERS) or not node.args:
                continue
            source = node.args[0]
            affine = self.input_affine(source)
            if affine is None or not self.sole_user_is(source, node) or not _reads_no_zero_padding(layer):
                continue
            scale, shift, origin, what = affine
            groups = getattr(layer, "groups", 1)
            self.replace_layer(
                node, *Fold.fold_input_affine(layer.weight, layer.bias, scale, shift, groups=groups)
            )
            node.args = (origin, *node.args[1:])
            self.graph.erase_node(source)
            self.folded[f"{what} into the unpadded {type(layer).__name__} after it"] += 1
            changed = True
        return changed

    def input_affine(self, node: Any) -> tuple[Any, Any, fx.Node, str] | None:
        """(scale, shift, input, description) if ``node`` computes a per-channel affine of its input."""
        module = self.module(node)
        if isinstance(module, BATCHNORMS) and module.running_mean is not None:
            scale, shift = Fold.batchnorm_affine(*_statistics(module))
            return scale, shift, node.args[0], type(module).__name__
        if isinstance(module, ChannelAffine):
            return module.weight, module.bias, node.args[0], "ChannelAffine"
        if (
            isinstance(node, fx.Node)
            and node.op == "call_function"
            and node.target in _ADD
            and len(node.args) == 2
        ):
            for origin, other in ((node.args[0], node.args[1]), (node.args[1], node.args[0])):
                value = self.scalar(other)
                if value is not None and isinstance(origin, fx.Node):
                    return 1.0, value, origin, "scalar offset"
        return None

    def fold_channel_padding(self) -> bool:
        """conv → ``F.pad`` that only appends zero channels: the conv gets those channels as zero outputs."""
        changed = False
        for node in list(self.graph.nodes):
            if node.op != "call_function" or node.target is not F.pad:
                continue
            source, pad = node.args[0], node.args[1] if len(node.args) > 1 else node.kwargs.get("pad")
            layer = self.layer_with_sole_user(source, node)
            mode = node.kwargs.get("mode", node.args[2] if len(node.args) > 2 else "constant")
            value = node.kwargs.get("value", node.args[3] if len(node.args) > 3 else None)
            if not isinstance(layer, CONVS) or mode != "constant" or value not in (None, 0, 0.0):
                continue
            spatial = 2 * (layer.weight.dim() - 2)
            if (
                not isinstance(pad, (tuple, list))
                or len(pad) != spatial + 2
                or any(pad[:spatial])
                or min(pad) < 0
            ):
                continue
            before, after = pad[spatial], pad[spatial + 1]
            self.replace_layer(source, *Fold.pad_output_channels(layer.weight, layer.bias, before, after))
            self.absorb(node, source, "zero channel padding into the conv before it")
            changed = True
        return changed

    def batchnorms_to_affines(self) -> None:
        """Every BatchNorm left becomes a ChannelAffine (exact), with the reason it could not fold."""
        for node in self.graph.nodes:
            bn = self.module(node)
            if not isinstance(bn, BATCHNORMS):
                continue
            if bn.running_mean is None:
                self.unfolded.append(
                    Unfolded(
                        node.target,
                        type(bn).__name__,
                        "normalises with batch statistics (track_running_stats=False)",
                    )
                )
                continue
            self.keep_batchnorm(node, self.why_not(node))

    def keep_batchnorm(
        self,
        node: fx.Node,
        reason: str,
        *,
        input_offset: torch.Tensor | None = None,
        label: str | None = None,
    ) -> None:
        """Replace an eval-mode BatchNorm by the ChannelAffine it computes, and record why it stayed.

        Args:
            node: The BatchNorm's node.
            reason: Why it could not be folded.
            input_offset: A per-channel offset its input now carries (the residual-stream pass
                shifts streams); the affine's shift compensates it exactly.
            label: What the report names (default: the module's qualified name).
        """
        bn = self.module(node)
        scale, shift = Fold.shifted_batchnorm_affine(*_statistics(bn), input_offset)
        dtype = bn.running_mean.dtype
        affine = ChannelAffine(bn.num_features, device=bn.running_mean.device, dtype=dtype)
        if not scale.is_meta:
            with torch.no_grad():
                affine.weight.copy_(scale.to(dtype))
                affine.bias.copy_(shift.to(dtype))
        self.set_module(node.target, affine)
        self.unfolded.append(Unfolded(label or node.target, f"{type(bn).__name__} → ChannelAffine", reason))

    def why_not(self, node: fx.Node) -> str:
        source = node.args[0]
        if self.module(source) is not None and isinstance(self.module(source), LAYERS):
            return f"its input also feeds {len(source.users) - 1} other consumer(s) (a skip connection)"
        if len(node.users) == 1:
            (user,) = node.users
            consumer = self.module(user)
            if isinstance(consumer, CONVS) and not _reads_no_zero_padding(consumer):
                return "it feeds a zero-padded conv, whose border outputs would change"
        return f"it follows {_describe(source, self.gm)}, not a convolution"

    def report_leftovers(self) -> None:
        """Record the other exact-fold obstacles: offsets before padded convs, consecutive convs."""
        for node in self.graph.nodes:
            layer = self.module(node)
            if not isinstance(layer, CONVS) or not node.args:
                continue
            source = node.args[0]
            affine = self.input_affine(source)
            if affine is not None and affine[3] == "scalar offset":
                self.unfolded.append(
                    Unfolded(
                        f"{source.name} → {node.target}",
                        "add (scalar offset)",
                        "added before a zero-padded conv, whose border outputs would change",
                    )
                )
            elif self.layer_with_sole_user(source, node) is not None:
                self.unfolded.append(
                    Unfolded(
                        f"{source.target} → {node.target}",
                        f"{type(layer).__name__} after a conv",
                        "two convolutions in a row: merging them is not exact across zero padding",
                    )
                )

    def run(self, before_affines: Callable[[Folder], None] | None = None) -> None:
        """Run every pass; ``before_affines`` (the residual-stream pass) runs on the folded graph
        just before the BatchNorms left are turned into ChannelAffines."""
        self.remove_identities()
        self.fold_reparameterised_layers()
        self.subsampling_pools_to_convs()
        passes = (
            self.fold_batchnorm_into_layer,
            self.fold_output_scalars,
            self.fold_channel_padding,
            self.fold_input_affines,
        )
        while any([fold() for fold in passes]):  # a list, so every pass runs each round
            pass
        if before_affines is not None:
            before_affines(self)
        self.batchnorms_to_affines()
        self.report_leftovers()
        self.graph.eliminate_dead_code()
        self.graph.lint()
        _prune(self.gm)
        self.gm.recompile()


def _prune(graph_module: fx.GraphModule) -> None:
    """Delete modules, parameters and buffers no node uses any more (folded BNs, tau, offsets)."""
    graph_module.delete_all_unused_submodules()
    used = {n.target for n in graph_module.graph.nodes if n.op in ("get_attr", "call_module")}

    def in_use(name: str) -> bool:
        """``name`` itself, or a module it belongs to, is used by a node."""
        parts = name.split(".")
        return any(".".join(parts[:end]) in used for end in range(1, len(parts) + 1))

    for kind in ("parameters", "buffers"):
        for name, _ in list(getattr(graph_module, f"named_{kind}")(remove_duplicate=False)):
            if in_use(name):
                continue
            owner, _, leaf = name.rpartition(".")
            delattr(graph_module.get_submodule(owner) if owner else graph_module, leaf)
    graph_module.delete_all_unused_submodules()


def detach_from(graph_module: fx.GraphModule, original: nn.Module) -> None:
    """Give ``graph_module`` its own copies of every module and tensor it still shares with ``original``.

    Tracing shares leaf modules with the traced model; the passes replace the ones they
    fold. Copying only the rest keeps a fold's peak memory near twice the model's.
    """
    originals = {id(m) for m in original.modules()} | {id(t) for t in original.parameters()}
    originals |= {id(t) for t in original.buffers()}
    for node in graph_module.graph.nodes:
        if node.op == "call_module":
            module = graph_module.get_submodule(node.target)
            if id(module) in originals:
                _set_module(graph_module, node.target, copy.deepcopy(module))
        elif node.op == "get_attr":
            value = operator.attrgetter(node.target)(graph_module)
            if id(value) in originals:
                owner, _, leaf = node.target.rpartition(".")
                clone = (
                    nn.Parameter(value.detach().clone(), value.requires_grad)
                    if isinstance(value, nn.Parameter)
                    else value.clone()
                )
                setattr(graph_module.get_submodule(owner) if owner else graph_module, leaf, clone)
