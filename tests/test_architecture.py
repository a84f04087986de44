"""The import order of ARCHITECTURE.md, enforced: no room imports from a room to its right, no cycles.

Imports are read from the source with :mod:`ast` (nothing is imported), lazy imports inside
functions included: a lazy import that runs back up the floors is still a dependency.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "normresnet_export"

#: Floors from the bottom up; a module may import from its own room, from rooms on lower floors, and
#: from rooms on its own floor as long as the rooms of that floor import each other without a cycle.
#: Keep this and the table in ARCHITECTURE.md the same.
FLOORS: list[set[str]] = [
    {"errors", "_version", "vocabulary", "limits", "_progress"},
    {"_io", "_render", "files", "nn", "compare"},
    {"models"},
    {"fold"},
    {"checkpoint", "metadata", "data", "preprocess", "precision"},
    {"interop", "trainers", "export", "weights"},
    {"runtime"},
    {"check", "predict", "analysis", "optimize"},
    {"serve"},
    {"__init__"},  # the package's public surface, for users and the CLI only
    {"cli"},
]
FLOOR = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    files = [
        *sorted((ROOT / PACKAGE).rglob("*.py")),
        *sorted((ROOT / "trainers").rglob("*.py")),
        ROOT / "cli.py",
    ]
    return {_module_name(path): path for path in files}


def room(module: str) -> str:
    """The room of a dotted module name: ``normresnet_export.fold.passes`` is in ``fold``."""
    parts = module.split(".")
    if parts[0] == PACKAGE:
        return parts[1] if len(parts) > 1 else "__init__"
    return parts[0]


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Project modules that ``module`` imports (``from pkg import sub`` resolves to the submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return {name for name in found if name in known and name != module}


def _graph() -> dict[str, set[str]]:
    sources = _sources()
    known = set(sources)
    return {module: _imports(module, path, known) for module, path in sources.items()}


def test_every_room_has_a_floor():
    unknown = sorted({room(m) for m in _graph()} - set(FLOOR))
    assert not unknown, f"rooms without a floor: {unknown}; add them to FLOORS here and to ARCHITECTURE.md"


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Every import of ``graph`` that goes from a room to a room on a higher floor."""
    wrong = []
    for module, targets in graph.items():
        here = room(module)
        for target in targets:
            there = room(target)
            if there != here and FLOOR.get(there, 99) > FLOOR.get(here, 99):
                wrong.append(
                    f"{module} ({here}, floor {FLOOR.get(here)}) imports {target} (floor {FLOOR.get(there)})"
                )
    return sorted(wrong)


def test_no_import_runs_back_up_the_floors():
    wrong = upward(_graph())
    assert not wrong, "imports against the floor order:\n" + "\n".join(wrong)


def test_the_library_never_imports_trainers_or_the_package_surface():
    wrong = []
    for module, targets in _graph().items():
        for target in targets:
            if room(target) == "trainers" and room(module) not in ("trainers", "cli"):
                wrong.append(f"{module} imports {target}: the library never imports trainers")
            if target == PACKAGE and room(module) != "cli":
                wrong.append(
                    f"{module} imports the package __init__: import the module that defines the name"
                )
    assert not wrong, "\n".join(sorted(wrong))


def test_runtime_never_calls_back_into_export():
    wrong = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if room(module) == "runtime"
        for target in targets
        if room(target) == "export"
    ]
    assert not wrong, "\n".join(wrong)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes, or ``None`` (iterative depth-first search)."""
    state: dict[str, int] = defaultdict(int)  # 0 new, 1 on the stack, 2 done
    for start in sorted(graph):
        if state[start]:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif state[child] == 1:
                return [*path[path.index(child) :], child]
            elif state[child] == 0:
                state[child] = 1
                stack.append((child, iter(sorted(graph.get(child, ())))))
                path.append(child)
    return None


def test_no_module_import_cycles():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_room_cycles_on_one_floor():
    rooms: dict[str, set[str]] = defaultdict(set)
    for module, targets in _graph().items():
        for target in targets:
            if room(target) != room(module):
                rooms[room(module)].add(room(target))
    cycle = _cycle(dict(rooms))
    assert cycle is None, "rooms import each other in a circle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from normresnet_export.fold import functional as Fold", {"normresnet_export.fold.functional"}),
        ("from normresnet_export import __version__", {"normresnet_export"}),
        ("from normresnet_export.fold import fold_model", {"normresnet_export.fold"}),
        ("def f():\n    import trainers.loop", {"trainers.loop"}),
    ],
)
def test_the_import_reader_resolves_what_python_would(tmp_path, source, expected):
    path = tmp_path / "probe.py"
    path.write_text(source)
    known = {
        "normresnet_export",
        "normresnet_export.fold",
        "normresnet_export.fold.functional",
        "trainers.loop",
    }
    assert _imports("normresnet_export.probe", path, known) == expected


def test_the_checker_sees_a_violation():
    graph = {
        "normresnet_export.models.x": {"normresnet_export.runtime.base"},
        "normresnet_export.runtime.base": set(),
    }
    assert upward(graph) == [
        "normresnet_export.models.x (models, floor 2) imports normresnet_export.runtime.base (floor 6)"
    ]
    assert upward({"normresnet_export.runtime.base": {"normresnet_export.models.x"}}) == []
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
