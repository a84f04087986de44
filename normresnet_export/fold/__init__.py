"""The folding stage: BatchNorm, tau scales, scalar offsets and Dirac weights into plain convolutions.

``fold_model`` is the entry point; ``functional`` holds the arithmetic, ``passes`` the graph
rewrites, ``report`` what a fold did and how far it moved the logits.
"""

from normresnet_export.fold.api import (
    DEEP_LAYERS,
    FoldOptions,
    FoldResult,
    default_tolerance,
    fold_model,
    stream_bn_removed,
)
from normresnet_export.fold.report import FoldReport, FoldTolerance, Unfolded

__all__ = [
    "DEEP_LAYERS",
    "FoldOptions",
    "FoldReport",
    "FoldResult",
    "FoldTolerance",
    "Unfolded",
    "default_tolerance",
    "fold_model",
    "stream_bn_removed",
]
