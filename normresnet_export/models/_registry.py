"""The model registry: one explicit table from a model name to its builder and metadata.

Every name is a documented, keyword-only function in its family's module, decorated with
:func:`register_model` (torchvision style), so ``resnet56`` can be found with grep and read
with ``help``. A duplicate name raises (as torchvision does; timm only warns, which hides
shadowed models). An unknown name raises an error that lists the closest registered
names. Keyword arguments are checked against the builder's signature *before* it runs,
so a misspelt option fails at once with the list of accepted options instead of
disappearing in a ``**kwargs`` funnel.

Parameter counts for the default keywords come from ``catalogue.json``
(:mod:`~normresnet_export.models._catalogue_file`); the code that regenerates that file
(:mod:`~normresnet_export.models._catalogue`) imports this module, never the reverse.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, Union

import torch
from torch import nn

from normresnet_export.errors import InputError, UnknownModelError, first_line
from normresnet_export.models._catalogue_file import load_catalogue
from normresnet_export.models._counting import count_layers, count_parameters
from normresnet_export.models._keywords import accepts, describe, keyword_types, parse_value

Dataset = Literal["cifar", "imagenet"]

#: A model builder: a function of keyword-only options that returns the network.
BuilderT = TypeVar("BuilderT", bound=Callable[..., nn.Module])

#: The five research families, with the paper each one implements.
FAMILIES: dict[str, str] = {
    "torch-resnet": "He et al. 2016 (ResNet, pre-activation ResNet); Zagoruyko & Komodakis 2016 (WRN), "
    "as unified by raphaelreme/torch-resnet",
    "tau-resnet": "Zhang et al., 'Convergence Theory of Learning Over-parameterized ResNet', "
    "arXiv 1903.07120",
    "procresnet": "Zaeemzadeh et al., 'Norm-Preservation: Why Residual Networks Can Become Extremely Deep?', "
    "TPAMI 2020",
    "leno": "Mahaur et al., 'Improved Residual Network Based on Norm-Preservation for Visual Recognition', "
    "Neural Networks 2022",
    "diracnet": "Zagoruyko & Komodakis, 'DiracNets: Training Very Deep Neural Networks Without "
    "Skip-Connections', arXiv 1706.00388",
}

#: The input each dataset kind is designed for (channels, height, width).
INPUT_SIZES: dict[str, tuple[int, int, int]] = {"cifar": (3, 32, 32), "imagenet": (3, 224, 224)}


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one model name.

    Attributes:
        name: The registered name (lower case, with the paper's depth number).
        family: One of :data:`FAMILIES`.
        dataset: ``"cifar"`` (32×32 designs) or ``"imagenet"`` (224×224 designs).
        builder: The keyword-only function that builds the model.
        description: One line shown by ``normexport models``.
    """

    name: str
    family: str
    dataset: Dataset
    builder: Callable[..., nn.Module]
    description: str = ""

    @property
    def input_size(self) -> tuple[int, int, int]:
        """Default input size (C, H, W) of the design."""
        return INPUT_SIZES[self.dataset]

    @property
    def default_kwargs(self) -> dict[str, Any]:
        """Every keyword the builder accepts, with its default value."""
        return {
            p.name: p.default
            for p in inspect.signature(self.builder).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }

    def resolve_kwargs(self, **kwargs: Any) -> dict[str, Any]:
        """Return the complete keyword set the builder will see: defaults overridden by ``kwargs``.

        Checkpoints store this resolved set, so a model rebuilds identically even if a
        default (say, the paper's rule for tau) changes in a later version. Each value must be
        of the type the builder annotates; text is parsed as ``--model-arg`` parses it (so the
        string ``"False"`` a file may hold is ``False``, not a truthy string).

        Raises:
            InputError: A keyword the builder does not accept, or a value not of its type.
        """
        accepted = self.default_kwargs
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise InputError(
                f"model {self.name!r} does not accept {', '.join(map(repr, unknown))}; "
                f"accepted keywords: {', '.join(sorted(accepted))}"
            )
        kinds = keyword_types(self.builder)
        typed = {key: self._typed(key, value, kinds[key]) for key, value in kwargs.items()}
        return {**accepted, **typed}

    def _typed(self, key: str, value: Any, kind: Any) -> Any:
        """``value`` if it is of type ``kind``; text parsed as ``--model-arg`` parses it; else an error."""
        if accepts(value, kind):
            return value
        if isinstance(value, str):  # e.g. the "False" a file written before keywords were typed holds
            try:
                parsed = parse_value(value, kind)
            except ValueError:
                parsed = value
            if accepts(parsed, kind):
                return parsed
        raise InputError(
            f"model {self.name!r}: {key} takes {describe(kind)}, got {value!r:.80} ({type(value).__name__})"
        )

    def parameter_count(self, **kwargs: Any) -> int:
        """Number of learnable parameters (shared ones once), for these keywords."""
        return self._counts(kwargs)[0]

    def layer_count(self, **kwargs: Any) -> int:
        """Number of Conv/Linear layers (torch-resnet's ``count_layers`` convention), for these keywords."""
        return self._counts(kwargs)[1]

    def _counts(self, kwargs: dict[str, Any]) -> tuple[int, int]:
        resolved = self.resolve_kwargs(**kwargs)
        stored = load_catalogue().get(self.name) if resolved == self.default_kwargs else None
        if stored is not None:
            return stored["parameters"], stored["layers"]
        return meta_counts(self.name, resolved)


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    name: str | None = None, *, family: str, dataset: Dataset, description: str = ""
) -> Callable[[BuilderT], BuilderT]:
    """Decorator that registers a builder under ``name`` (by default the function's own name).

    Use it on a module-level function of the family's file, so that the registered name
    is also an importable, documented function (``normresnet_export.models.resnet56``)::

        @register_model(family="torch-resnet", dataset="cifar")
        def resnet56(*, num_classes: int = 10, shortcut: ShortcutOption = "B") -> ResNet:
            \"\"\"ResNet-56, CIFAR, basic blocks 9-9-9.

            One paragraph: the design, its depth and widths, the paper, the input size.
            \"\"\"
            return _resnet(ResNet, _cifar_spec("basic", 9), num_classes=num_classes, shortcut=shortcut)

    The docstring's summary line, without its period, is the model's catalogue description.

    Args:
        name: Registry name; must be lower case and not registered yet. ``None``: the
            builder's ``__name__``.
        family: One of :data:`FAMILIES`.
        dataset: ``"cifar"`` or ``"imagenet"``.
        description: One line for the catalogue; defaults to the builder's docstring summary
            line, without its final period.

    Returns:
        A decorator that registers the builder and returns it unchanged.

    Raises:
        ValueError: Duplicate or malformed name, unknown family or dataset, or a builder
            with positional or ``**kwargs`` parameters (every option must be a named keyword).
    """
    if name is not None:
        _check_name(name)
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    if dataset not in INPUT_SIZES:
        raise ValueError(f"unknown dataset kind {dataset!r}; expected one of {', '.join(INPUT_SIZES)}")

    def decorator(builder: BuilderT) -> BuilderT:
        registered = _check_name(builder.__name__) if name is None else name
        if registered in _REGISTRY:
            raise ValueError(
                f"model {registered!r} is already registered (family {_REGISTRY[registered].family!r})"
            )
        params = inspect.signature(builder).parameters.values()
        loose = [p.name for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        if loose:
            raise ValueError(f"builder for {registered!r} must take keyword-only arguments, got {loose}")
        summary = (inspect.getdoc(builder) or "").split("\n", 1)[0].removesuffix(".")
        _REGISTRY[registered] = ModelInfo(
            name=registered,
            family=family,
            dataset=dataset,
            builder=builder,
            description=description or summary,
        )
        return builder

    return decorator


def _check_name(name: str) -> str:
    """Return ``name`` if it is a valid registry name (lower case letters, digits, ``_``)."""
    if name != name.lower() or not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"model names are lower case letters, digits and '_', got {name!r}")
    return name


def parse_model_args(pairs: list[str] | None, *, arch: str | None = None) -> dict[str, Any]:
    """``["tau=0.3", "shortcut=A"]`` as ``{"tau": 0.3, "shortcut": "A"}`` (CLI ``--model-arg``).

    Each value is parsed as the builder's annotation says (``zero_init_residual=False`` is
    ``False``, not the truthy string ``"False"``; ``true``/``false``, ``1``/``0``, ``yes``/``no``
    for a bool; ``none`` for an optional keyword). Without ``arch`` (``import`` infers it from the
    file) a key is parsed as the registered builders that take it annotate it.

    Args:
        pairs: ``KEY=VALUE`` items.
        arch: The model they are for; ``None``: any registered model.

    Raises:
        UnknownModelError: ``arch`` is not registered.
        InputError: An item without ``=``, a key given twice, a key the builder (or, without
            ``arch``, every builder) does not take (the valid keys are listed), or a value that
            does not parse as the keyword's type (what it takes is said).
    """
    defaults: dict[str, Any] = {}
    if arch is not None:
        info = model_info(arch)
        kinds, defaults = keyword_types(info.builder), info.default_kwargs
        whose = f"{arch} takes"
    else:
        kinds = _registry_keyword_types()
        whose = "the registered models take"
    parsed: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"--model-arg takes KEY=VALUE, e.g. shortcut=A; got {pair!r}")
        if key in parsed:
            raise InputError(f"--model-arg {key} is given twice; give each keyword once")
        if key not in kinds:
            close = difflib.get_close_matches(key, list(kinds), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise InputError(f"--model-arg {key}: no such keyword; {hint}{whose} {', '.join(sorted(kinds))}")
        try:
            parsed[key] = parse_value(text, kinds[key])
        except ValueError:
            default = f" ({arch}'s default: {key}={defaults[key]!r})" if key in defaults else ""
            raise InputError(
                f"--model-arg {key}={text!r:.80}: {key} takes {describe(kinds[key])}{default}"
            ) from None
    return parsed


def _registry_keyword_types() -> dict[str, Any]:
    """Every keyword any registered builder takes, typed as they annotate it (a union where they differ)."""
    found: dict[str, list[Any]] = {}
    for info in _REGISTRY.values():
        for key, kind in keyword_types(info.builder).items():
            if kind not in found.setdefault(key, []):
                found[key].append(kind)
    return {key: kinds[0] if len(kinds) == 1 else Union[tuple(kinds)] for key, kinds in found.items()}  # noqa: UP007


def _natural_key(name: str) -> list[Any]:
    """Sort key that orders ``resnet20`` before ``resnet110``."""
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


def list_models(
    pattern: str | None = None, *, family: str | None = None, dataset: Dataset | None = None
) -> list[str]:
    """Registered model names, in natural order.

    Args:
        pattern: Optional shell-style filter, e.g. ``"preact_*"`` (as in timm).
        family: Keep only this family (one of :data:`FAMILIES`).
        dataset: Keep only ``"cifar"`` or ``"imagenet"`` designs.

    Raises:
        InputError: Unknown family or dataset kind.
    """
    if family is not None and family not in FAMILIES:
        raise InputError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    if dataset is not None and dataset not in INPUT_SIZES:
        raise InputError(f"unknown dataset kind {dataset!r}; expected one of {', '.join(INPUT_SIZES)}")
    names = [
        info.name
        for info in _REGISTRY.values()
        if (family is None or info.family == family)
        and (dataset is None or info.dataset == dataset)
        and (pattern is None or fnmatch.fnmatchcase(info.name, pattern))
    ]
    return sorted(names, key=_natural_key)


def model_info(name: str) -> ModelInfo:
    """Metadata of a registered model.

    Raises:
        UnknownModelError: The name is not registered; the message lists close matches.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name.lower(), list(_REGISTRY), n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}{hint} (`normexport models` lists all {len(_REGISTRY)} names)"
        ) from None


def create_model(name: str, *, num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """Build a registered model, freshly initialised as its reference code initialises it.

    Args:
        name: A registered name (see :func:`list_models`).
        num_classes: Size of the classifier; ``None`` keeps the model's default
            (10 for CIFAR designs, 1000 for ImageNet designs).
        **kwargs: Family keywords, e.g. ``shortcut="A"`` or ``tau=0.1``; checked against the
            builder's signature.

    Returns:
        The model, in training mode (as ``torch.nn`` modules are after construction).

    Raises:
        UnknownModelError: Unknown name.
        InputError: A keyword the builder does not accept, or a value it rejects.
    """
    info = model_info(name)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    resolved = info.resolve_kwargs(**kwargs)
    try:
        model = info.builder(**resolved)
    except (ValueError, TypeError) as exc:  # a value the layers refuse (torch's Dropout(p=5), …)
        reason = first_line(exc, limit=160)
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise InputError(f"model {name!r} cannot be built with {given or 'its defaults'}: {reason}") from None
    setattr(model, _BUILT_AS, (info.name, dict(resolved)))
    return model


#: The attribute :func:`create_model` sets on every model it returns: ``(name, resolved keywords)``.
#: A plain tuple, not a dataclass, so ``torch.jit.script`` ignores it like any other Python value.
_BUILT_AS = "_normexport_built_as"


def build_record(model: nn.Module) -> tuple[str, dict[str, Any]] | None:
    """The registered name and complete keywords :func:`create_model` built ``model`` with, if it did.

    ``save_checkpoint`` reads it, so a model from ``create_model`` is saved without restating
    its arch and keywords; copies (``copy.deepcopy``, ``.to()``) keep it, and ``fold_model``
    hands it on to the folded network.
    """
    record = getattr(model, _BUILT_AS, None)
    if not (isinstance(record, tuple) and len(record) == 2):
        return None
    name, kwargs = record
    return name, dict(kwargs)


def carry_build_record(source: nn.Module, target: nn.Module) -> None:
    """Give ``target`` (a network derived from ``source``, e.g. its fold) ``source``'s build record."""
    record = build_record(source)
    if record is not None:
        setattr(target, _BUILT_AS, record)


def meta_counts(name: str, resolved_kwargs: dict[str, Any]) -> tuple[int, int]:
    """(parameters, layers) of a model built on the meta device: shapes only, no memory."""
    return _meta_counts(name, tuple(sorted(resolved_kwargs.items())))


@functools.cache
def _meta_counts(name: str, kwargs: tuple[tuple[str, Any], ...]) -> tuple[int, int]:
    with torch.device("meta"):
        model = _REGISTRY[name].builder(**dict(kwargs))
    return count_parameters(model), count_layers(model)
