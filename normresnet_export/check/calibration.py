"""Calibration data for the int8 export, from the data sources ``check`` compares on.

``--calibration`` takes what ``--data`` takes (``digits``, ``folder:DIR``, …, each prepared with
the checkpoint's own preprocessing by :func:`~normresnet_export.check.data.load_data`), and
``random:N``: N seeded random inputs. Random inputs calibrate ranges that real images never
reach, and have no classes to measure accuracy on; they are for trying the path, not for a
deployment.
"""

from __future__ import annotations

import os

from normresnet_export.check.data import load_data
from normresnet_export.checkpoint import Checkpoint, load_checkpoint
from normresnet_export.errors import InputError
from normresnet_export.export.quantize import CalibrationSet

#: Calibration inputs read when the spec does not say how many (``random:N`` does).
DEFAULT_CALIBRATION_SAMPLES = 256


def load_calibration(
    spec: str,
    checkpoint: Checkpoint | str | os.PathLike[str],
    *,
    samples: int = DEFAULT_CALIBRATION_SAMPLES,
) -> CalibrationSet:
    """The calibration inputs ``spec`` names, prepared for ``checkpoint``.

    Args:
        spec: ``random:N`` or anything ``check --data`` takes.
        checkpoint: The checkpoint to be quantised (its preprocessing, input size and labels).
        samples: How many inputs to read (``random:N`` gives its own).

    Raises:
        InputError: An unknown source, a bad ``N``, or real images for a checkpoint without
            preprocessing.
    """
    loaded = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    kind = spec
    if spec.startswith("random:"):
        count = spec[len("random:") :]
        if not count.isdigit():
            raise InputError(
                f"--calibration {spec!r}: random:N takes a whole number of inputs, e.g. random:256"
            )
        kind, samples = "random", int(count)
    data = load_data(
        kind,
        preprocessing=loaded.preprocessing,
        input_size=tuple(loaded.input_size),
        labels=loaded.labels,
        samples=samples,
    )
    return CalibrationSet(data.description, data.inputs, data.targets)
