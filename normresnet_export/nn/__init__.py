"""Reusable layers shared by the model families (one concept per file)."""

from normresnet_export.nn.affine import ChannelAffine
from normresnet_export.nn.dirac import DiracConv1d, DiracConv2d, DiracConv3d, dirac_delta, dirac_weight
from normresnet_export.nn.pooling import GlobalAvgPool2d
from normresnet_export.nn.procrustes import (
    PROJECTION_MODES,
    operator_singular_values,
    project_conv,
    projection_deviation,
)
from normresnet_export.nn.scale import Scale
from normresnet_export.nn.shortcuts import (
    SHORTCUT_OPTIONS,
    IdentityShortcut,
    ProjectionShortcut,
    make_shortcut,
)

__all__ = [
    "PROJECTION_MODES",
    "SHORTCUT_OPTIONS",
    "ChannelAffine",
    "DiracConv1d",
    "DiracConv2d",
    "DiracConv3d",
    "GlobalAvgPool2d",
    "IdentityShortcut",
    "ProjectionShortcut",
    "Scale",
    "dirac_delta",
    "dirac_weight",
    "make_shortcut",
    "operator_singular_values",
    "project_conv",
    "projection_deviation",
]
