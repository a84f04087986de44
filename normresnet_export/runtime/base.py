"""The one interface every inference backend offers: ``run(batch) -> logits``, plus what it runs on.

A backend is a loaded model (eager PyTorch, TorchScript, torch.export or ONNX Runtime) bound to
a device. Reports print :meth:`Backend.describe` so that a number is never shown without the
runtime, the *active* device or provider, and the precision that produced it: a GPU runtime
silently running on the CPU (a missing CUDA library, a CPU-only build) otherwise passes for a
GPU number.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from normresnet_export.errors import InputError
from normresnet_export.metadata import ModelMetadata
from normresnet_export.preprocess import Preprocessing


def as_batch(batch: Any) -> torch.Tensor:
    """A batch as a tensor, from a torch tensor or a NumPy array alike (ONNX Runtime users hold NumPy).

    Raises:
        InputError: Anything else, naming what was given.
    """
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, np.ndarray):
        return torch.from_numpy(batch if batch.flags.writeable else batch.copy())
    raise InputError(
        f"a batch is a torch.Tensor or a numpy.ndarray of shape [N, C, H, W], got {type(batch).__name__}"
    )


class DeviceError(InputError):
    """The requested device cannot be used (no GPU, missing CUDA libraries, a CPU-only runtime)."""


class OutputError(InputError):
    """A model whose outputs cannot be read as class scores: not finite, or not one per label."""


def _declared_classes(metadata: ModelMetadata) -> int | None:
    """How many classes the model's record says it returns (its output shape, else ``num_classes``)."""
    shape = metadata.output.shape if metadata.output is not None else None
    if shape and len(shape) == 2 and isinstance(shape[1], int):
        return shape[1]
    classes = (metadata.model_kwargs or {}).get("num_classes")
    return classes if isinstance(classes, int) and not isinstance(classes, bool) and classes > 0 else None


class Backend(ABC):
    """A model ready to run, with the facts a report needs.

    Attributes:
        name: What runs the model: ``"eager"``, ``"torchscript"``, ``"torch.export"``, ``"onnxruntime"``
            or ``"openvino"``.
        label: A short human name for tables, e.g. ``"onnxruntime (folded.onnx)"``.
        device: The device it actually runs on: ``"cpu"`` or ``"cuda:0"``.
        provider: The active execution provider or torch device description.
        precision: ``"float32"``, ``"float16"``, ``"bfloat16"`` (OpenVINO) or ``"int8"`` (a quantised
            model): the compute; input and output are float32.
        metadata: What the model file carries: arch, preprocessing, labels, fold record, …
            (for a checkpoint, what an export of it would carry).
        fallback: Why the backend runs on CPU although a GPU was asked for (only with
            ``allow_cpu_fallback``); ``None`` otherwise.
    """

    name: str
    label: str
    device: str
    provider: str
    precision: str
    metadata: ModelMetadata
    fallback: str | None = None

    @abstractmethod
    def run(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits (float32, CPU) for a preprocessed float32 ``[N, C, H, W]`` batch.

        ``batch`` may be a torch tensor or a NumPy array (:func:`as_batch`).
        """

    def run_in_batches(self, inputs: torch.Tensor, batch: int) -> torch.Tensor:
        """Logits for any number of ``inputs``, in calls of ``batch`` rows.

        A model exported with a pinned batch size (``--static-batch``) takes no other size: its
        size wins, and the last call is padded with zeros, whose rows are dropped again.
        """
        pinned = self.metadata.static_batch
        size = pinned or batch
        outputs = []
        for start in range(0, len(inputs), size):
            piece = inputs[start : start + size]
            missing = size - len(piece) if pinned else 0
            if missing:
                piece = torch.cat([piece, piece.new_zeros(missing, *piece.shape[1:])])
            outputs.append(self.run(piece)[: size - missing])
        return torch.cat(outputs)

    @abstractmethod
    def bind(self, batch: torch.Tensor, *, include_copies: bool = True) -> Callable[[], None]:
        """A zero-argument call that runs ``batch`` once, waits for the device, and returns ``None``.

        For timing: the call returns nothing so that the timer measures the run, not the reading
        of its output (use :meth:`run` for the logits). With ``include_copies=False`` the input
        already sits on the device and the output stays there (ONNX Runtime I/O binding, a CUDA
        tensor for torch), so the timer measures compute, not host-device copies. On CPU both
        are the same.
        """

    def check_labels(self, classes: int | None = None) -> None:
        """Refuse a model whose labels are not one per output class.

        Called when a backend is opened (with the width its graph declares, or the record's
        ``num_classes``) and on every output: a model whose labels are too few or too many would
        otherwise name some classes and number the others, or name them wrongly.

        Args:
            classes: The output width; ``None``: what the model's record declares.

        Raises:
            OutputError: The labels do not match, naming both counts.
        """
        labels = self.metadata.labels
        classes = _declared_classes(self.metadata) if classes is None else classes
        if labels is not None and classes is not None and len(labels) != classes:
            raise OutputError(
                f"{self.label}: the model carries {len(labels)} labels but returns {classes} classes; "
                "re-export it from a checkpoint with one label per class (or none)"
            )

    def check_outputs(self, logits: torch.Tensor, names: Sequence[str] | None = None) -> torch.Tensor:
        """``logits`` when they can be read as class scores; otherwise a one-line error.

        A NaN or inf logit makes every probability of its row NaN, and a table of ``nan`` is
        not an answer: the weights are damaged (a diverged training exported) or a float16
        model overflows. The error names the inputs affected, by ``names`` or by position.

        Raises:
            OutputError: A non-finite value, or an output width that does not match the labels.
        """
        self.check_labels(logits.shape[1] if logits.dim() == 2 else None)
        bad = (~torch.isfinite(logits.reshape(len(logits), -1))).any(dim=1).nonzero().flatten().tolist()
        if bad:
            which = [names[i] for i in bad] if names is not None else [f"input {i}" for i in bad]
            shown = ", ".join(which[:3]) + (", …" if len(which) > 3 else "")
            raise OutputError(
                f"{self.label} returned non-finite scores (NaN or inf) for {len(bad)} of {len(logits)} "
                f"inputs ({shown}); its weights are not finite or its {self.precision} compute "
                "overflows: export it again from a finite float32 checkpoint"
            )
        return logits

    @property
    def preprocessing(self) -> Preprocessing | None:
        """The preprocessing the model carries, or ``None`` when the file has none."""
        return self.metadata.preprocessing

    @property
    def labels(self) -> list[str] | None:
        """Class names the model carries, or ``None``."""
        return list(self.metadata.labels) if self.metadata.labels is not None else None

    def runtime_version(self) -> str:
        """The runtime and its version, e.g. ``"torch 2.15.0"``."""
        return f"torch {torch.__version__}"

    def describe(self) -> str:
        """One line: runtime and version, active device/provider and precision (and any fallback)."""
        text = f"{self.label}: {self.runtime_version()} · {self.provider} · {self.precision}"
        return text + (f" · CPU fallback: {self.fallback}" if self.fallback else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible description for ``--json`` reports."""
        return {
            "backend": self.name,
            "label": self.label,
            "runtime": self.runtime_version(),
            "device": self.device,
            "provider": self.provider,
            "precision": self.precision,
            "fallback": self.fallback,
        }
