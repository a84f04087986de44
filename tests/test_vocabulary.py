"""One definition per enumeration: the vocabulary module names each choice set once, the rest follow it."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from normresnet_export import vocabulary

ROOT = Path(__file__).resolve().parents[1]

VOCABULARIES = {
    name: value
    for name, value in vars(vocabulary).items()
    if name.isupper() and isinstance(value, tuple) and all(isinstance(v, str) for v in value)
}


def test_tables_are_keyed_by_the_vocabulary():
    from normresnet_export.export.dispatch import _WRITERS
    from normresnet_export.interop.api import SOURCES
    from normresnet_export.models._registry import FAMILIES, INPUT_SIZES

    assert tuple(SOURCES) == vocabulary.IMPORT_SOURCES
    assert tuple(FAMILIES) == vocabulary.FAMILIES
    assert tuple(INPUT_SIZES) == vocabulary.DESIGN_DATASETS
    assert tuple(_WRITERS) == vocabulary.FORMATS + vocabulary.LAYOUTS


def test_the_library_reexports_rather_than_restates():
    from normresnet_export.check import DATA_KINDS
    from normresnet_export.export import FORMATS
    from normresnet_export.export.onnx import EXPORTERS
    from normresnet_export.nn.procrustes import PROJECTION_MODES
    from normresnet_export.runtime import DEVICES
    from trainers.datasets import DATASETS
    from trainers.distributed import DEVICES as TRAINING_DEVICES

    assert DATA_KINDS is vocabulary.DATA_KINDS
    assert FORMATS is vocabulary.FORMATS
    assert EXPORTERS is vocabulary.EXPORTERS
    assert PROJECTION_MODES is vocabulary.PROJECTION_MODES
    assert DEVICES is vocabulary.DEVICES
    assert DATASETS is vocabulary.TRAINING_DATASETS
    assert TRAINING_DEVICES is vocabulary.TRAINING_DEVICES


def _literal_tuples(path: Path) -> list[tuple[int, tuple[str, ...]]]:
    """Tuple and list literals of two or more strings in a source file, with their line numbers.

    ``Literal[...]`` type annotations are left out: a type checker needs the values spelled out;
    :func:`test_literal_types_match_the_vocabulary` keeps those equal to the vocabulary.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_literal = {
        id(node.slice)
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript)
        and getattr(node.value, "id", getattr(node.value, "attr", "")) == "Literal"
    }
    found = []
    for node in ast.walk(tree):
        strings = (
            isinstance(node, (ast.Tuple, ast.List)) and len(node.elts) >= 2 and id(node) not in in_literal
        )
        if strings and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
            found.append((node.lineno, tuple(e.value for e in node.elts)))  # type: ignore[attr-defined]
    return found


def test_literal_types_match_the_vocabulary():
    from typing import get_args

    from normresnet_export.models._registry import Dataset
    from normresnet_export.nn.procrustes import ProjectionMode

    assert get_args(Dataset) == vocabulary.DESIGN_DATASETS
    assert get_args(ProjectionMode) == vocabulary.PROJECTION_MODES


def test_no_other_module_spells_out_a_vocabulary():
    known = {value: name for name, value in VOCABULARIES.items() if len(value) >= 2}
    files = [*(ROOT / "normresnet_export").rglob("*.py"), *(ROOT / "trainers").rglob("*.py"), ROOT / "cli.py"]
    restated = [
        f"{path.relative_to(ROOT)}:{line} spells out vocabulary.{known[values]}"
        for path in files
        if path.name != "vocabulary.py"
        for line, values in _literal_tuples(path)
        if values in known
    ]
    assert not restated, "\n".join(restated)


def test_help_and_the_vocabulary_load_no_torch():
    code = (
        "import sys\n"
        "sys.argv = ['normexport', 'export', '--help']\n"
        "import cli\n"
        "try:\n"
        "    cli.app()\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'torch' not in sys.modules, 'normexport --help loaded torch'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr
    for value in vocabulary.FORMATS + vocabulary.EXPORTERS:
        assert value in done.stdout, f"--help does not offer {value}"
