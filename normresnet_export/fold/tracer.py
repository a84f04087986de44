"""A torch.fx tracer for the fold passes.

Two differences from ``torch.fx.Tracer``:

* Leaves: besides ``torch.nn``'s own modules, every layer with a ``fold()`` method
  (the Dirac convolutions) and our ``Scale``, ``ChannelAffine`` and ``GlobalAvgPool2d``
  stay single ``call_module`` nodes, so the passes can recognise and replace them.
* Parameter lookup: fx finds the name of a parameter used in ``forward`` by scanning
  ``named_parameters()`` each time, which is quadratic in the number of parameters;
  tracing tau-ResNet-1202 without BatchNorm (3,000 scalar offsets) took 9 s. A map
  built once makes it linear.
"""

from __future__ import annotations

from typing import Any

import torch.fx as fx
from torch import nn

from normresnet_export.nn.affine import ChannelAffine
from normresnet_export.nn.pooling import GlobalAvgPool2d
from normresnet_export.nn.scale import Scale

_LEAVES = (Scale, ChannelAffine, GlobalAvgPool2d)


class FoldTracer(fx.Tracer):
    """Symbolic tracer whose leaves are the units the fold passes work on."""

    def __init__(self) -> None:
        super().__init__()
        self._parameter_names: dict[int, str] = {}

    def trace(self, root: Any, concrete_args: Any = None) -> fx.Graph:
        if isinstance(root, nn.Module):
            # remove_duplicate=True keeps the first name of a shared parameter, as fx itself would.
            self._parameter_names = {id(p): name for name, p in root.named_parameters()}
        return super().trace(root, concrete_args)

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, _LEAVES) or callable(getattr(m, "fold", None)):
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]) -> Any:
        if isinstance(attr_val, nn.Parameter) and id(attr_val) in self._parameter_names:
            name = self._parameter_names[id(attr_val)]
            if name not in parameter_proxy_cache:
                parameter_proxy_cache[name] = self.create_proxy("get_attr", name, (), {})
            return parameter_proxy_cache[name]
        return super().getattr(attr, attr_val, parameter_proxy_cache)


def trace(model: nn.Module) -> fx.GraphModule:
    """Trace ``model`` into a GraphModule whose leaf modules are shared with ``model``."""
    graph = FoldTracer().trace(model)
    return fx.GraphModule(model, graph, class_name=type(model).__name__ + "Folded")
