"""The acceptance gate between a trained checkpoint and its deployment artefacts.

``check`` runs the unfolded checkpoint (the reference), the folded model and every exported
artefact on the same data and reports, for each: how far its logits are from the reference
(max absolute and relative error against a stated limit), top-1 agreement, task accuracy when
the data has labels, and latency per batch size (p50/p90/p99, images/s, speed-up over the
unfolded eager model), timed side by side in interleaved blocks. It fails when any artefact
disagrees: top-1 agreement below 100% or an error above the float32 (or float16) limit.

One module each: :mod:`.data` (what is compared on), :mod:`.agreement` (logits against the
reference), :mod:`.latency` (timing), :mod:`.report` (the result), :mod:`.plot` (the chart),
and :mod:`.api` (``check`` itself).
"""

from normresnet_export.check.agreement import Agreement
from normresnet_export.check.api import FOLDED, UNFOLDED, check
from normresnet_export.check.data import DATA_KINDS, CheckData, load_data
from normresnet_export.check.latency import measure_latency, parse_batch_sizes
from normresnet_export.check.plot import plot_throughput
from normresnet_export.check.report import CheckReport

__all__ = [
    "DATA_KINDS",
    "FOLDED",
    "UNFOLDED",
    "Agreement",
    "CheckData",
    "CheckReport",
    "check",
    "load_data",
    "measure_latency",
    "parse_batch_sizes",
    "plot_throughput",
]
