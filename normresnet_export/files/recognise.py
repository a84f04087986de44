"""Recognise which research code or tool wrote a checkpoint, from its structure alone.

Pure functions over an already-loaded object (or over the class names an unsafe pickle
asks for): each research code's checkpoint has telltale keys (``arch``/``best_prec1`` dicts,
``module.`` prefixes, DiracNet's ``group0.block0.conv0`` names, torchvision's ``layer1.0``,
pickled ``models.resnet_cifar`` classes), listed with each check below. Used
to tell a user what a file is and which ``normexport import --from`` reads it, and by
the importer to pick a format when ``--from`` is omitted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

#: The ``format`` field of a normexport checkpoint. Defined here, in the low room that recognises
#: files, and imported by ``checkpoint`` (which writes it) as ``FORMAT``.
NORMEXPORT_FORMAT = "normexport.checkpoint"

#: Class paths pickled by the tau-ResNet training scripts (the whole model object is saved).
TAU_RESNET_CLASSES = frozenset(
    {
        "models.resnet_cifar.ResNet",
        "models.resnet_cifar.BasicBlock",
        "models.resnet_cifar_nobn.ResNet_NoBN",
        "models.resnet_cifar_nobn.BasicBlock_NoBN",
        "models.resnet_imagenet.ResNet",
        "models.resnet_imagenet.Bottleneck",
        "models.resnet_imagenet_nobn.ResNet_NoBN",
        "models.resnet_imagenet_nobn.Bottleneck_NoBN",
    }
)


@dataclass(frozen=True)
class Recognised:
    """What a file appears to be.

    Attributes:
        description: Human description, e.g. "a LeNo main.py checkpoint (arch 'lenoresnet')".
        sources: The ``--from`` values that can import it; empty when none can, several
            when the layout is ambiguous (a torchvision-named ResNet-50, say).
        native: It is a normexport checkpoint already (nothing to import).
    """

    description: str
    sources: tuple[str, ...] = ()
    native: bool = False

    def import_hint(self, path: str) -> str:
        """The command that imports the file, or what to do when nothing can."""
        if not self.sources:
            return "normexport cannot import it"
        if len(self.sources) == 1:
            return f"import it with `normexport import {path} --from {self.sources[0]} -o OUT.pt`"
        return f"import it with `normexport import {path} --from {{{','.join(self.sources)}}} -o OUT.pt`"


def shown(value: Any, limit: int = 60) -> str:
    """A value from a file, quoted for a one-line message: escaped, and cut at ``limit`` characters.

    Names and keys come from the file, so they may hold newlines, terminal escapes or megabytes.
    """
    text = value if isinstance(value, str) else f"<{type(value).__name__}>"
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def strip_module_prefix(keys: Iterable[Any]) -> list[str]:
    """Keys without the ``module.`` prefix that DataParallel/DDP wrappers add (others as text)."""
    names = [k if isinstance(k, str) else shown(k) for k in keys]
    return [k[len("module.") :] if k.startswith("module.") else k for k in names]


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def recognise_state_dict(state_dict: Mapping[str, Any]) -> Recognised:
    """Recognise a plain ``{name: tensor}`` mapping by its key names."""
    keys = set(strip_module_prefix(state_dict))

    def has(*names: str) -> bool:
        return all(n in keys for n in names)

    def any_endswith(suffix: str) -> bool:
        return any(k.endswith(suffix) for k in keys)

    if any(k.startswith("features.group0.block0.conv") for k in keys):
        return Recognised(
            "a folded DiracNet state_dict (published diracnet*v2folded layout)", ("diracnet-folded",)
        )
    if has("conv") or (any_endswith(".alpha") and any(k.startswith("group0.block0.") for k in keys)):
        return Recognised("a DiracNet functional parameter dict", ("diracnet",))
    if any(k.startswith("init_layer") for k in keys) and any(k.startswith("layers.") for k in keys):
        return Recognised("a torch-resnet state_dict", ("torch-resnet",))
    if has("conv1_1.weight", "conv1_2.weight"):
        return Recognised("a LeNo-ResNet state_dict", ("leno",))
    if has("trans_conv1.weight"):
        return Recognised("a ProcResNet state_dict (ProcResNet_PyTorch)", ("procresnet",))
    if has("layer1.0.shortcut.2.weight", "linear.weight"):
        return Recognised("a pre-activation ResNet baseline state_dict (ProcResNet_PyTorch)", ("procresnet",))
    if has("tau") and any_endswith(".bias1a"):
        return Recognised("a tau-ResNet (no BatchNorm) state_dict", ("tau-resnet",))
    if has("conv1.weight", "bn.weight", "fc.weight"):
        return Recognised("a pre-activation ResNet baseline state_dict (LeNo repository)", ("leno",))
    if has("conv1.weight", "layer1.0.conv1.weight", "fc.weight"):
        if "layer4.0.conv1.weight" in keys:
            return Recognised(
                "a torchvision-named ImageNet ResNet state_dict (torchvision, LeNo's resnet baseline or a "
                "tau-ResNet with BatchNorm: the layout alone cannot tell)",
                ("torchvision", "leno", "tau-resnet"),
            )
        return Recognised("a tau-ResNet CIFAR state_dict (with BatchNorm)", ("tau-resnet",))
    sample = ", ".join(shown(k) for k in sorted(keys)[:4])
    return Recognised(
        f"a state_dict of {len(keys)} tensors not from a known model family (keys: {sample}, …)"
    )


def recognise_safetensors(tensors: Mapping[str, Any], header: Mapping[str, str]) -> Recognised:
    """Recognise a safetensors file by its header metadata, else by its tensors' names."""
    if header.get("format") == NORMEXPORT_FORMAT:
        return Recognised("a normexport checkpoint (safetensors)", native=True)
    return recognise_state_dict(tensors)


def recognise(obj: Any) -> Recognised:
    """Recognise a loaded checkpoint object (the value ``torch.load`` returned)."""
    if isinstance(obj, Mapping):
        if obj.get("format") == NORMEXPORT_FORMAT:
            return Recognised("a normexport checkpoint", native=True)
        if {"net", "acc", "epoch"} <= obj.keys() and _is_tensor_dict(obj["net"]):
            # ProcResNet_PyTorch's main.py and tau-ResNet's scripts both write this dict: the weights tell.
            inner = recognise_state_dict(obj["net"])
            if "tau-resnet" in inner.sources:
                return Recognised(
                    f"a tau-ResNet training checkpoint with a state_dict ({inner.description})",
                    ("tau-resnet",),
                )
            return Recognised(
                f"a ProcResNet_PyTorch main.py checkpoint ({inner.description})", ("procresnet",)
            )
        if {"state_dict", "arch"} <= obj.keys():
            return Recognised(f"a LeNo main.py checkpoint (arch '{shown(obj['arch'])}')", ("leno",))
        if "model" in obj and _is_tensor_dict(obj["model"]) and {"optimizer", "epoch", "step"} & obj.keys():
            inner = recognise_state_dict(obj["model"])
            return Recognised(
                f"a training checkpoint with a 'model' entry ({inner.description})", inner.sources
            )
        if "params" in obj and isinstance(obj["params"], Mapping):
            layout = "published, params + stats" if "stats" in obj else "train.py model.pt7"
            return Recognised(f"a DiracNet functional checkpoint ({layout})", ("diracnet",))
        if _is_tensor_dict(obj):
            return recognise_state_dict(obj)
        keys = ", ".join(f"'{shown(k)}'" for k in list(obj)[:6])
        return Recognised(f"a dict with keys {keys} that no known format uses")
    if isinstance(obj, torch.Tensor):
        return Recognised(f"a single tensor of shape {list(obj.shape)}")
    return Recognised(f"a pickled {type(obj).__name__} object")


def recognise_unsafe_globals(globals_: Iterable[str]) -> Recognised:
    """Recognise a pickle by the classes it would instantiate (read without executing it)."""
    names = sorted(set(globals_))
    if names and set(names) & TAU_RESNET_CLASSES:
        return Recognised("a tau-ResNet training checkpoint (a pickled model object)", ("tau-resnet",))
    listed = ", ".join(shown(name) for name in names[:5]) + (", …" if len(names) > 5 else "")
    return Recognised(f"a pickle of Python objects ({listed})")
