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

#: The ``source`` of a weights entry in this project's own checkpoint format (no importer needed).
NATIVE_SOURCE: str = "normexport"

#: Who wrote a pretrained-weights file of ``weights/registry.toml``: every import source, or us.
WEIGHT_SOURCES: tuple[str, ...] = (*IMPORT_SOURCES, NATIVE_SOURCE)

#: The five research families of the model registry.
FAMILIES: tuple[str, ...] = ("torch-resnet", "tau-resnet", "procresnet", "leno", "diracnet")

#: What a registered architecture is designed for (its input size follows from it).
DESIGN_DATASETS: tuple[str, ...] = ("cifar", "imagenet")

#: The data sets every command names the same way (``train --dataset``, ``check --data``,
#: ``analyze gradnorm --data``, the calibration of low-precision exports): the bundled digits,
#: CIFAR-10/100 from a local copy, an ImageNet-layout folder (``--data-dir``), any
#: class-per-directory tree, and seeded random inputs.
DATA_KINDS: tuple[str, ...] = ("digits", "cifar10", "cifar100", "imagenet", "folder:DIR", "random")

#: Data sets that ``normexport train --dataset`` reads: every kind but ``random`` (it has nothing
#: to learn). ``--dataset folder --data-dir D`` is the same as ``--dataset folder:D``.
TRAINING_DATASETS: tuple[str, ...] = tuple(kind for kind in DATA_KINDS if kind != "random")

#: What ``normexport train --optimizer`` steps with: every recipe's SGD (momentum and Nesterov as
#: the recipe says), or AdamW (decoupled weight decay, the recipe's parameter groups and
#: schedule) for a net that SGD does not get moving in a small budget — tau-ResNet without
#: BatchNorm on the digits is one.
OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")

#: How ProcResNet training projects its transition convolutions.
PROJECTION_MODES: tuple[str, ...] = ("exact", "reference")

#: Tensor element types of the KServe v2 (Open Inference) protocol that ``normexport serve`` speaks;
#: ``BYTES`` (length-prefixed strings) carries the classification extension's answers.
KSERVE_DATATYPES: tuple[str, ...] = (
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
)

#: What ``normexport analyze gradnorm`` measures: residual blocks, and the stand-alone layers
#: between two blocks on the main path (ProcResNet's transition convolutions).
ANALYSIS_UNITS: tuple[str, ...] = ("block", "layer")

#: What runs an ``.onnx`` file (``predict``, ``check``, ``serve`` ``--runtime``): ONNX Runtime, or
#: OpenVINO (the optional extra ``normresnet-export[openvino]``).
RUNTIMES: tuple[str, ...] = ("onnxruntime", "openvino")

#: The inference precision asked of a runtime (``--precision``). ``bf16`` is OpenVINO's bfloat16
#: compute for an ONNX file, or torch's bfloat16 autocast for a checkpoint, on CPUs with
#: AVX512-BF16 or AMX; float16 models are exported with ``export --fp16``.
INFERENCE_PRECISIONS: tuple[str, ...] = ("fp32", "bf16")

#: How ONNX Runtime's static quantisation picks activation ranges from the calibration data
#: (``export --int8 --calibration-method``).
CALIBRATION_METHODS: tuple[str, ...] = ("minmax", "entropy", "percentile")
