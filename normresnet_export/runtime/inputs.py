"""The input a backend takes, read from the model itself, and whether a given image batch fits it.

A model's input is fixed when it is exported: an ONNX graph exported at 48×48 takes nothing
else, a foreign ONNX file may want float16 or a pinned batch of one, and a model trained at
32×32 gives meaningless answers on a 224×224 ImageNet crop even where its pooling lets it run.
Feeding the wrong tensor ends in the runtime's own multi-line error half-way through the work,
so ``predict`` and ``check`` compare what they will feed with what the model declares first.

What the model declares comes from the model, not from a guess: an ONNX Runtime session's
input (symbolic dimensions included, so a foreign file is covered), else the input recorded
in the file's metadata (TorchScript and ``.pt2`` exports), else, for a checkpoint, its
preprocessing's size or its architecture's design size. A file that declares nothing is not
checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from normresnet_export.errors import UnknownModelError
from normresnet_export.metadata import TensorSpec
from normresnet_export.models import model_info
from normresnet_export.runtime.base import Backend
from normresnet_export.runtime.ort_backend import OnnxRuntimeBackend

#: ONNX Runtime's element types as the numpy names the rest of the package uses.
_ONNX_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(bfloat16)": "bfloat16",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
}
#: The element type every normexport input is: preprocessed float32 images.
FED_DTYPE = "float32"


def input_specs(backend: Backend) -> list[TensorSpec]:
    """The inputs ``backend`` declares (its graph's, else its record's); empty when it declares none."""
    if isinstance(backend, OnnxRuntimeBackend):
        return [
            TensorSpec(
                arg.name,
                _ONNX_TYPES.get(arg.type, arg.type),
                tuple(d if isinstance(d, int) and d > 0 else (d or "?") for d in arg.shape),
            )
            for arg in backend.session.get_inputs()
        ]
    metadata = backend.metadata
    if metadata.input is not None:
        return [metadata.input]
    if metadata.preprocessing is not None:
        size: Sequence[int] | None = metadata.preprocessing.input_size
    else:
        try:
            size = model_info(metadata.arch).input_size if metadata.arch else None
        except UnknownModelError:  # a record naming a model this version does not have
            size = None
    return [TensorSpec("input", FED_DTYPE, ("batch", *size))] if size is not None else []


def dims(shape: Sequence[int | str]) -> str:
    """``3×48×48``: a shape in words."""
    return "×".join(map(str, shape))


@dataclass(frozen=True)
class InputMismatch:
    """What a model takes, when it is not what normexport would feed it.

    Attributes:
        takes: The model's input in words, e.g. ``"float32 inputs of batch×3×48×48"``.
        size: The (C, H, W) the model wants when only the image size differs (another
            preprocessing then fixes it; a symbolic dimension stays a name), else ``None``: the
            model takes no single float32 image batch at all.
    """

    takes: str
    size: tuple[int | str, ...] | None


def input_mismatch(backend: Backend, size: Sequence[int]) -> InputMismatch | None:
    """How float32 ``[N, *size]`` batches do not fit ``backend``; ``None`` when they fit.

    Args:
        backend: The model.
        size: One input's (C, H, W), as normexport will feed it.

    Returns:
        ``None`` when the batches fit, or when the model declares no input to compare with.
    """
    specs = input_specs(backend)
    if not specs:
        return None
    if len(specs) > 1:
        names = ", ".join(spec.name for spec in specs[:4])
        return InputMismatch(f"{len(specs)} inputs ({names})", None)
    spec = specs[0]
    shape = spec.shape
    takes = f"{spec.dtype} inputs" + (f" of {dims(shape)}" if shape is not None else "")
    if spec.dtype != FED_DTYPE:
        return InputMismatch(takes, None)
    if shape is None:
        return None
    if len(shape) != 1 + len(size):
        return InputMismatch(f"{takes} (rank {len(shape)}, not [N, C, H, W])", None)
    if any(isinstance(want, int) and want != given for want, given in zip(shape[1:], size, strict=True)):
        return InputMismatch(takes, tuple(shape[1:]))
    return None


def fixed_batch(backend: Backend) -> int | None:
    """The batch size a model's graph is fixed to without saying so in normexport metadata, else ``None``.

    An export made with ``--static-batch`` records its batch and the backends pad the last call
    to it; a foreign file with a fixed batch takes exactly that many images per call.
    """
    specs = input_specs(backend)
    first = specs[0].shape[0] if len(specs) == 1 and specs[0].shape else None
    if isinstance(first, int) and backend.metadata.static_batch is None:
        return first
    return None
