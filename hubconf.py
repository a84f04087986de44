"""torch.hub entry points: one per registered architecture, each taking ``weights=`` or ``pretrained=``.

::

    model = torch.hub.load("path/to/normexport", "resnet20", source="local", weights="resnet20.digits")
    model = torch.hub.load("path/to/normexport", "resnet50", source="local", pretrained=True)

Each entry point is :func:`normresnet_export.weights.create_model` for its name: without weights
a freshly initialised model, with weights the loaded model in eval mode. ``torch.hub.list``
lists them and ``torch.hub.help`` shows the model's description.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from normresnet_export.models import list_models, model_info
from normresnet_export.weights import create_model

#: What torch.hub checks is importable before it loads an entry point.
dependencies = ["torch", "safetensors", "httpx", "filelock", "platformdirs"]


def _entry_point(name: str) -> Callable[..., Any]:
    def build(*, weights: str | None = None, pretrained: bool = False, **kwargs: Any) -> Any:
        return create_model(name, weights=weights, pretrained=pretrained, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = (
        f"{model_info(name).description}.\n\n"
        "weights: a weights name of this model (`normexport weights list`); pretrained=True: its default "
        "weights; other keywords go to the builder."
    )
    return build


for _name in list_models():
    globals()[_name] = _entry_point(_name)
del _name
