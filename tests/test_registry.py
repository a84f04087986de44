"""The registry: names, lookup errors, keyword checking, and the cached catalogue."""

from __future__ import annotations

import ast
import importlib
import inspect
import math
from pathlib import Path

import pytest
import torch

import normresnet_export as nx
from normresnet_export.models import _catalogue, _catalogue_file, _registry
from normresnet_export.models.tau_resnet import default_tau

#: The module that holds each family's builders.
FAMILY_MODULES = {
    "torch-resnet": "normresnet_export.models.torch_resnet",
    "tau-resnet": "normresnet_export.models.tau_resnet",
    "procresnet": "normresnet_export.models.procresnet",
    "leno": "normresnet_export.models.lenoresnet",
    "diracnet": "normresnet_export.models.diracnet",
}


def _design_names() -> set[str]:
    """Every name the design calls for: the depths and widths each family's paper and reference code use."""
    names: set[str] = set()
    for prefix in ("", "preact_"):
        names |= {
            f"{prefix}resnet{d}" for d in (20, 32, 44, 56, 110, 164, 1001, 1202, 18, 34, 50, 101, 152, 200)
        }
        names |= {f"{prefix}resnet{d}_small" for d in (18, 34, 50, 101, 152, 200)}
        names |= {f"{prefix}wide_resnet{d}_{k}" for d in (16, 28, 40) for k in (1, 2, 4, 8, 10)}
    names |= {"wide_resnet50_2", "wide_resnet101_2"}
    names |= {f"tau_resnet{d}{s}" for d in (20, 32, 44, 56, 110, 1202, 50, 101, 152) for s in ("", "_nobn")}
    names |= {f"procresnet{d}" for d in (166, 274, 634, 1003)}
    names |= {f"procresnet_baseline{d}" for d in (164, 272, 632, 1001)}
    names |= {f"lenoresnet{d}" for d in (50, 101, 152, 200, 401, 500)}
    names |= {f"leno_baseline_preactresnet{d}" for d in (50, 101, 152, 200)}
    names |= {"diracnet18", "diracnet34"}
    widths = {16: (1, 2, 4), 28: (1, 2, 4), 34: (1, 2), 40: (1, 2, 4)}
    names |= {f"diracnet_cifar{d}_{w}" for d, ws in widths.items() for w in ws}
    return names


def test_registry_holds_exactly_the_designed_names():
    assert set(nx.list_models()) == _design_names()


def test_list_models_filters_and_orders_naturally():
    assert nx.list_models("tau_resnet*", dataset="imagenet") == [
        "tau_resnet50",
        "tau_resnet50_nobn",
        "tau_resnet101",
        "tau_resnet101_nobn",
        "tau_resnet152",
        "tau_resnet152_nobn",
    ]
    assert nx.list_models(family="procresnet")[:2] == ["procresnet166", "procresnet274"]
    assert all(nx.model_info(n).family == "diracnet" for n in nx.list_models(family="diracnet"))
    with pytest.raises(nx.InputError, match=r"unknown family 'resnet'.*torch-resnet"):
        nx.list_models(family="resnet")


def test_unknown_name_suggests_close_matches():
    with pytest.raises(nx.UnknownModelError, match=r"did you mean .*\bresnet20\b"):
        nx.create_model("resnt20")
    with pytest.raises(nx.UnknownModelError, match="normexport models"):
        nx.model_info("no_such_model_at_all")


def test_unknown_keyword_fails_before_building_and_lists_accepted_ones():
    with pytest.raises(nx.InputError, match=r"does not accept 'shortcutt'.*accepted keywords: .*shortcut"):
        nx.create_model("resnet20", shortcutt="A")


def test_family_values_are_validated_with_clear_errors():
    with pytest.raises(nx.InputError, match="unknown shortcut option 'D'"):
        nx.create_model("resnet20", shortcut="D")
    with pytest.raises(nx.InputError, match="tau must be a positive number"):
        nx.create_model("tau_resnet20", tau=-1.0)
    with pytest.raises(nx.InputError, match="num_classes must be a non-negative integer"):
        nx.create_model("diracnet18", num_classes=-3)
    with pytest.raises(nx.InputError, match="dropout is only defined for basic blocks"):
        nx.create_model("resnet164", drop_rate=0.1)


def test_duplicate_and_malformed_registrations_are_refused():
    def builder(*, num_classes: int = 10) -> torch.nn.Module:
        return torch.nn.Linear(1, num_classes)

    with pytest.raises(ValueError, match="already registered"):
        nx.register_model("resnet20", family="torch-resnet", dataset="cifar")(builder)
    with pytest.raises(ValueError, match="lower case"):
        nx.register_model("ResNet20", family="torch-resnet", dataset="cifar")
    with pytest.raises(ValueError, match="unknown family"):
        nx.register_model("x_model", family="timm", dataset="cifar")
    with pytest.raises(ValueError, match="keyword-only"):
        nx.register_model("positional_model", family="torch-resnet", dataset="cifar")(
            lambda num_classes=10: None
        )
    assert "positional_model" not in nx.list_models()


def test_resolve_kwargs_fills_every_default():
    info = nx.model_info("tau_resnet110")
    assert info.resolve_kwargs() == {"num_classes": 10, "tau": pytest.approx(1 / math.sqrt(54))}
    assert info.resolve_kwargs(tau=0.5)["tau"] == 0.5
    assert nx.model_info("wide_resnet28_10").default_kwargs["drop_rate"] == 0.3


@pytest.mark.parametrize(
    ("name", "tau"),
    [
        ("tau_resnet20", 1 / 3),
        ("tau_resnet110", 0.136),
        ("tau_resnet1202_nobn", 0.0408),
        ("tau_resnet50", 0.816),
        ("tau_resnet101", 0.417),
        ("tau_resnet152_nobn", 1 / 3),
    ],
)
def test_default_tau_follows_the_paper(name, tau):
    """CIFAR: 1/sqrt(total blocks); ImageNet: 2/sqrt(largest stage) (README of tau-ResNet)."""
    assert nx.model_info(name).default_kwargs["tau"] == pytest.approx(tau, abs=5e-4)


def test_num_classes_zero_returns_features_and_head_is_replaceable():
    model = nx.create_model("resnet18_small", num_classes=0).eval()
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, model.out_planes)
    model.set_head(torch.nn.Linear(model.out_planes, 5))
    assert model(x).shape == (2, 5)
    assert nx.create_model("tau_resnet20", num_classes=0).eval()(x).shape == (2, 64)
    assert nx.create_model("diracnet_cifar16_1", num_classes=0).eval()(x).shape == (2, 64)


def test_catalogue_file_matches_the_builders():
    """catalogue.json caches counts for `normexport models`; it must equal a fresh build of every model."""
    stale = {
        name: (_catalogue_file.load_catalogue().get(name), fresh)
        for name, fresh in _catalogue.compute_catalogue().items()
        if _catalogue_file.load_catalogue().get(name) != fresh
    }
    assert not stale, (
        f"normresnet_export/models/catalogue.json is stale for {sorted(stale)}; run `make catalogue`"
    )


def test_catalogue_rows_describe_each_model():
    rows = nx.models.catalogue(family="diracnet", dataset="imagenet")
    assert [r["name"] for r in rows] == ["diracnet18", "diracnet34"]
    assert rows[0] == {
        "name": "diracnet18",
        "family": "diracnet",
        "dataset": "imagenet",
        "input_size": [3, 224, 224],
        "num_classes": 1000,
        "parameters": 11_523_368,
        "layers": 18,
        "description": rows[0]["description"],
    }
    assert "DiracNet-18" in rows[0]["description"]


def test_meta_counts_do_not_allocate_or_initialise():
    """Counting builds on the meta device: even the 150M-parameter LeNo-500 costs no memory."""
    params, layers = _registry.meta_counts("lenoresnet500", nx.model_info("lenoresnet500").resolve_kwargs())
    assert (params, layers) == (151_932_200, 505)


def test_every_name_is_a_documented_builder_of_its_family_module():
    """``resnet56`` is a real, documented function in its family's file, re-exported by the package."""
    problems = []
    for name in nx.list_models():
        info = nx.model_info(name)
        module = importlib.import_module(FAMILY_MODULES[info.family])
        builder = info.builder
        doc = inspect.getdoc(builder) or ""
        checks = {
            "is not a plain function": inspect.isfunction(builder),
            "is not named after the model": builder.__qualname__ == name,
            f"is not module-level in {module.__name__}": getattr(module, name, None) is builder,
            "is not normresnet_export.models.<name>": getattr(nx.models, name, None) is builder,
            "is not in normresnet_export.models.__all__": name in nx.models.__all__,
            "has no summary line and paragraph": len(doc.split("\n\n")) >= 2,
            "summary line is not the description": doc.split("\n", 1)[0] == f"{info.description}.",
        }
        problems += [f"{name} {what}" for what, ok in checks.items() if not ok]
    assert not problems, "\n".join(problems)


def test_a_builder_is_registered_under_its_own_name_by_default():
    def my_test_only_model(*, num_classes: int = 3) -> torch.nn.Module:
        """A test model."""
        return torch.nn.Linear(1, num_classes)

    try:
        assert (
            nx.register_model(family="torch-resnet", dataset="cifar")(my_test_only_model)
            is my_test_only_model
        )
        info = nx.model_info("my_test_only_model")
        assert (info.builder, info.description, info.default_kwargs) == (
            my_test_only_model,
            "A test model",
            {"num_classes": 3},
        )
        with pytest.raises(ValueError, match="already registered"):
            nx.register_model(family="torch-resnet", dataset="cifar")(my_test_only_model)
    finally:
        _registry._REGISTRY.pop("my_test_only_model", None)


@pytest.mark.parametrize("name", nx.list_models(family="tau-resnet"))
def test_every_tau_default_is_the_papers_rule(name):
    """The written-out ``tau`` defaults equal :func:`default_tau` of the blocks the model really has."""
    with torch.device("meta"):
        model = nx.create_model(name)
    blocks = tuple(len(stage) for key, stage in model.named_children() if key.startswith("layer"))
    imagenet = nx.model_info(name).dataset == "imagenet"
    assert nx.model_info(name).default_kwargs["tau"] == default_tau(blocks, imagenet=imagenet)


def test_imports_inside_the_models_package_go_one_way():
    """No cycle among ``normresnet_export/models/*.py`` (function-level imports included)."""
    package = Path(nx.models.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        if path.stem == "__init__":
            continue
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
                imported |= {f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
        prefix = "normresnet_export.models."
        graph[path.stem] = {m.removeprefix(prefix) for m in imported if m.startswith(prefix)} - {path.stem}
    graph = {module: deps & set(graph) for module, deps in graph.items()}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        return any(d == target or (d not in seen and reaches(d, target, seen | {d})) for d in graph[start])

    cyclic = sorted(module for module in graph if reaches(module, module, set()))
    assert not cyclic, f"import cycle among normresnet_export.models modules: {cyclic}"
