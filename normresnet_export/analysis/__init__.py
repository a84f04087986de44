"""Norm-preservation diagnostics: gradient-norm ratios per residual block, and convolution spectra.

``normexport analyze gradnorm`` and ``normexport analyze spectrum``: the measurements
(:mod:`.measure`), where models and inputs come from (:mod:`.sources`), the chart
(:mod:`.plot`) and the ``--json`` layout (:mod:`.schema`).
"""

from normresnet_export.analysis.api import analyze_gradnorm, analyze_spectrum, gradnorm_document
from normresnet_export.analysis.measure import (
    GradnormReport,
    LayerSpectrum,
    SpectrumReport,
    UnitRatio,
    measure_gradnorm,
    measure_spectrum,
)
from normresnet_export.analysis.plot import gradnorm_figure, plot_gradnorm
from normresnet_export.analysis.schema import GRADNORM_SCHEMA, SPECTRUM_SCHEMA, validate

__all__ = [
    "GRADNORM_SCHEMA",
    "SPECTRUM_SCHEMA",
    "GradnormReport",
    "LayerSpectrum",
    "SpectrumReport",
    "UnitRatio",
    "analyze_gradnorm",
    "analyze_spectrum",
    "gradnorm_document",
    "gradnorm_figure",
    "measure_gradnorm",
    "measure_spectrum",
    "plot_gradnorm",
    "validate",
]
