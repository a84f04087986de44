"""Model zoo: one file per family, all registered in one explicit registry.

Families are imported by name (never with ``*``) so that importing this package registers
every builder exactly once.
"""

# Importing a family module registers its builders.
from normresnet_export.models import (  # noqa: F401
    diracnet,
    lenoresnet,
    procresnet,
    tau_resnet,
    torch_resnet,
)
from normresnet_export.models._catalogue import catalogue
from normresnet_export.models._counting import count_layers, count_parameters
from normresnet_export.models._registry import (
    FAMILIES,
    ModelInfo,
    create_model,
    list_models,
    model_info,
    parse_model_args,
    register_model,
)

__all__ = [
    "FAMILIES",
    "ModelInfo",
    "catalogue",
    "count_layers",
    "count_parameters",
    "create_model",
    "list_models",
    "model_info",
    "parse_model_args",
    "register_model",
]
