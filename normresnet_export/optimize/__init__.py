"""``normexport optimize``: build every deployment candidate, gate each, time each, keep the fastest.

The candidates are the folded model in ONNX Runtime (float32), in OpenVINO at float32 and at
bfloat16, ONNX Runtime's static int8 quantisation of it, and OpenVINO running that int8 model.
Each is gated on held-out data against the unfolded float32 checkpoint (float32 ones must be
exact, low-precision ones pass :mod:`~normresnet_export.export.gate`), the ones that pass are
timed side by side on this host, and the fastest is written with a table of all of them. A
candidate that cannot be built here (OpenVINO missing, a CPU without bfloat16) is listed with
the reason, never dropped silently.
"""

from normresnet_export.optimize.api import optimize
from normresnet_export.optimize.report import Candidate, OptimizeReport, print_optimize_report

__all__ = ["Candidate", "OptimizeReport", "optimize", "print_optimize_report"]
