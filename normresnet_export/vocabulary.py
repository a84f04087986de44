"""The fixed vocabularies a user chooses from, each defined once.

Devices, formats, exporters, import sources, families and data-set kinds are named here and
nowhere else: the library's modules import their tuple from this module, and the command line
builds its choices and help texts from the same tuples. This module imports nothing, so the
CLI can offer the choices (``normexport --help``) without loading torch.

Tables that attach behaviour or text to each name (the importers by source, the papers by
family) are keyed by these names; a test checks that they cover exactly these names.
"""

from __future__ import annotations

#: Where inference runs: ``auto`` takes a GPU only when it is really usable; ``tensorrt`` is
#: ONNX Runtime's TensorRT execution provider (ONNX models only).
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "tensorrt")

#: Where training runs: torch's devices, i.e. the inference devices without ONNX Runtime's TensorRT.
TRAINING_DEVICES: tuple[str, ...] = tuple(device for device in DEVICES if device != "tensorrt")

#: Deployment formats of ``normexport export --format``.
FORMATS: tuple[str, ...] = ("onnx", "torchscript", "pt2", "triton")

#: Weight layouts of other projects that ``normexport export --layout`` writes.
LAYOUTS: tuple[str, ...] = ("diracnet",)

#: torch's ONNX exporters; ``auto`` chooses by depth and opset.
EXPORTERS: tuple[str, ...] = ("auto", "dynamo", "torchscript")

#: Who wrote a checkpoint that ``normexport import --from`` reads.
IMPORT_SOURCES: tuple[str, ...] = (
    "procresnet",
    "leno",
    "tau-resnet",
    "torch-resnet",
    "diracnet",
    "diracnet-folded",
    "torchvision",
)

#: The five research families of the model registry.
FAMILIES: tuple[str, ...] = ("torch-resnet", "tau-resnet", "procresnet", "leno", "diracnet")

#: What a registered architecture is designed for (its input size follows from it).
DESIGN_DATASETS: tuple[str, ...] = ("cifar", "imagenet")

#: Data that ``normexport check --data`` compares on.
DATA_KINDS: tuple[str, ...] = ("random", "digits", "folder:DIR")

#: Data sets that ``normexport train --dataset`` reads.
TRAINING_DATASETS: tuple[str, ...] = ("digits", "cifar10", "cifar100", "imagenet", "folder")

#: How ProcResNet training projects its transition convolutions.
PROJECTION_MODES: tuple[str, ...] = ("exact", "reference")

#: What ``normexport analyze gradnorm`` measures: residual blocks, and the stand-alone layers
#: between two blocks on the main path (ProcResNet's transition convolutions).
ANALYSIS_UNITS: tuple[str, ...] = ("block", "layer")
