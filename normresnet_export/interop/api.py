"""``import_checkpoint``: bring a checkpoint of the original research code, or torchvision, into this project.

Reading never runs code from the file: everything loads with ``weights_only=True`` except
tau-ResNet's pickled models, which go through the restricted unpickler of
:mod:`~normresnet_export.files.safe_pickle`. The producer is recognised from the file's
structure when ``source`` is not given. What the file determines (architecture, number of
classes, shortcut option, tau, widths) is inferred, and an explicit value that contradicts
it is an error naming both. Every source tensor must land somewhere and every target
tensor must be filled with the right shape.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from normresnet_export._progress import stage
from normresnet_export.checkpoint import Checkpoint, check_contents, describe_mismatch, model_shapes
from normresnet_export.errors import CheckpointError, InputError, NormexportError, first_line
from normresnet_export.files.reading import PickledObjectsError, read_file
from normresnet_export.files.recognise import Recognised, recognise, recognise_safetensors
from normresnet_export.files.safe_pickle import load_restricted
from normresnet_export.interop import diracnet, leno, procresnet, tau_resnet, torch_resnet, torchvision
from normresnet_export.interop._common import Imported
from normresnet_export.models import create_model, model_info

Reader = Callable[..., Imported]

#: ``--from`` values and the readers behind them.
SOURCES: dict[str, Reader] = {
    "procresnet": procresnet.read,
    "leno": leno.read,
    "tau-resnet": tau_resnet.read,
    "torch-resnet": torch_resnet.read,
    "diracnet": diracnet.read_functional,
    "diracnet-folded": diracnet.read_folded,
    "torchvision": torchvision.read,
}


def _read(path: Path, max_bytes: int | None) -> tuple[Any, Recognised]:
    """The file's content, read safely, and what produced it."""
    try:
        obj, header = read_file(path, max_bytes=max_bytes)
    except PickledObjectsError as exc:
        if "tau-resnet" not in exc.recognised.sources:
            raise
        obj = load_restricted(path, max_bytes=max_bytes)  # refuses anything outside the scripts' classes
        return obj, exc.recognised
    if header is not None:  # safetensors: a plain state_dict, or one of ours
        return obj, recognise_safetensors(obj, header)
    return obj, recognise(obj)


def _source(source: str | None, seen: Recognised, path: Path, reads: Callable[[str], bool]) -> str:
    """The ``--from`` to read ``path`` with: the one given, or the one its structure and tensors allow.

    ``reads(candidate)`` says whether that source's reader maps the file onto a registered
    model whose every tensor it fills (a resnet18 layout is torchvision's alone: LeNo and
    tau-ResNet have no 18-layer net), so only sources that can really read it are offered.
    """
    if seen.native:  # no --from can help: there is nothing to import
        raise InputError(
            f"{path} is already {seen.description}: use it directly (export, check, predict and fold "
            "read it as it is); import is for the research codes' and torchvision's files"
        )
    if source is not None:
        if source not in SOURCES:
            raise InputError(f"unknown --from {source!r}; expected one of {', '.join(SOURCES)}")
        if seen.sources and source not in seen.sources:
            raise InputError(f"--from {source} does not fit {path}: it looks like {seen.description}")
        return source
    if len(seen.sources) == 1:
        return seen.sources[0]
    if not seen.sources:
        raise InputError(
            f"cannot tell which code wrote {path}: it looks like {seen.description}; pass --from"
        )
    fitting = [candidate for candidate in seen.sources if reads(candidate)] or list(seen.sources)
    if len(fitting) == 1:
        return fitting[0]
    layout = seen.description.split(" (", 1)[0]  # its parenthesis names every producer of the layout
    raise InputError(
        f"{path} could come from {', '.join(fitting)}: it looks like {layout}, and each of them has a "
        "model with these tensors; pass --from to say which"
    )


def _filled(expected: dict[str, torch.Tensor], imported: Imported) -> dict[str, torch.Tensor]:
    """The imported tensors, plus zeros for the counters the source format does not keep."""
    state = dict(imported.state_dict)
    for key, tensor in expected.items():
        if key not in state and key.rsplit(".", 1)[-1] in imported.fillable:
            state[key] = torch.zeros_like(tensor)
    return state


def _kwargs(imported: Imported, model_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The complete builder keywords: what the file determines, over the caller's other keywords."""
    extra = {k: v for k, v in model_kwargs.items() if k not in imported.model_kwargs}
    return model_info(imported.arch).resolve_kwargs(**{**extra, **imported.model_kwargs})


#: Keywords a file may leave to the user (a BatchNorm tau-ResNet's tau): they change no tensor's
#: shape, so a stand-in value lets :func:`_reads` ask only whether the tensors fit.
_SHAPELESS_KEYWORDS = {"tau": 1.0}


def _reads(
    source: str, obj: Any, path: Path, arch: str | None, explicit: dict[str, Any], extra: dict[str, Any]
) -> bool:
    """Whether ``source``'s reader maps ``obj`` onto a model every tensor of which it fills (shapes only)."""
    probe = {**explicit, **{k: v for k, v in _SHAPELESS_KEYWORDS.items() if explicit.get(k) is None}}
    try:
        imported = SOURCES[source](obj, path, arch=arch, model_kwargs=probe)
        expected = model_shapes(imported.arch, _kwargs(imported, extra), folded=imported.folded)
    except (NormexportError, KeyError, IndexError, AttributeError, TypeError, ValueError, RuntimeError):
        return False
    return not describe_mismatch(expected.state_dict(), _filled(expected.state_dict(), imported))


def _load_weights(model: torch.nn.Module, imported: Imported, path: Path, keep_half: bool) -> None:
    """Load the imported tensors, after checking that source and target keys match one to one."""
    expected = model.state_dict()
    state = _filled(expected, imported)  # counters the source format does not keep start at zero
    problem = describe_mismatch(expected, state)
    if problem:
        raise InputError(f"{path}: the tensors do not fit {imported.arch} ({problem})")
    if not keep_half:
        state = {k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # tensors of the right shape that cannot be copied (meta, sparse, …)
        raise CheckpointError(
            f"{path}: the tensors do not load into {imported.arch} ({first_line(exc)})"
        ) from None
    if keep_half and any(v.dtype == torch.float16 for v in imported.state_dict.values()):
        model.half()


def import_checkpoint(
    src: str | os.PathLike[str],
    *,
    source: str | None = None,
    arch: str | None = None,
    num_classes: int | None = None,
    keep_half: bool = False,
    max_bytes: int | None = None,
    **model_kwargs: Any,
) -> Checkpoint:
    """Read a checkpoint written by one of the five research codes or by torchvision.

    Args:
        src: The file.
        source: Its producer (a key of :data:`SOURCES`); recognised from the file when omitted.
        arch: The registered model to load into; inferred from the file when omitted.
        num_classes: Checked against the file's classifier when given.
        keep_half: Keep float16 tensors in float16 (default: convert to float32).
        max_bytes: The cap on the memory the file's tensors may take (default 8 GiB, or the
            environment variable ``NORMEXPORT_MAX_CHECKPOINT_BYTES``), checked before they are read.
        **model_kwargs: Other builder keywords (e.g. ``tau`` where the file does not record it).

    Returns:
        A checkpoint (not yet written anywhere: ``.save(path)`` writes it) whose model is
        in eval mode, with the preprocessing of the script that trained it.

    Raises:
        CheckpointError: Missing, damaged, oversized or unsafe file.
        InputError: Unknown or ambiguous source, contradicting options, tensors that do not fit,
            or a normexport checkpoint (which needs no import).
    """
    path = Path(src)
    stage("read")
    obj, seen = _read(path, max_bytes)
    explicit = {**model_kwargs, "num_classes": num_classes}
    chosen = _source(
        source, seen, path, lambda candidate: _reads(candidate, obj, path, arch, explicit, model_kwargs)
    )
    try:
        imported = SOURCES[chosen](obj, path, arch=arch, model_kwargs=explicit)
    except NormexportError:
        raise
    except (KeyError, IndexError) as exc:  # a required tensor is missing from the file
        raise CheckpointError(f"{path} is not a complete {chosen} checkpoint (missing {exc})") from None
    except (AttributeError, TypeError, ValueError, RuntimeError) as exc:  # an entry of the wrong kind
        raise CheckpointError(f"{path} is not a readable {chosen} checkpoint ({first_line(exc)})") from None
    stage("convert")
    kwargs = _kwargs(imported, model_kwargs)
    try:
        if imported.folded:
            model = model_shapes(imported.arch, kwargs, folded=True).to_empty(device="cpu")
        else:
            model = create_model(imported.arch, **kwargs)
    except NormexportError:
        raise
    except (TypeError, ValueError, RuntimeError, OverflowError, MemoryError) as exc:  # what the file says
        raise CheckpointError(
            f"{path}: what the file records ({kwargs}) does not build {imported.arch} ({first_line(exc)})"
        ) from None
    _load_weights(model, imported, path, keep_half)
    check_contents(model, None, int(kwargs.get("num_classes", 0)), where=str(path))  # no NaN written on
    return Checkpoint(
        model=model.eval(),
        arch=imported.arch,
        model_kwargs=kwargs,
        folded=imported.folded,
        preprocessing=imported.preprocessing,
        metrics={**imported.metrics, "imported_from": chosen},
    )
