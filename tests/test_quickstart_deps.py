"""The quickstart needs only the runtime dependencies: ``pip install normresnet-export`` is enough.

A fresh virtual environment per test run would take minutes, so the test simulates one: the
quickstart's library path (train on the bundled digits, export to ONNX, check against the
checkpoint on the digits, predict digit images) runs in a subprocess without site-packages whose
path holds links to the installed files of the runtime dependencies only, so a module that no
runtime dependency provides is not there, as after ``pip install normresnet-export``. The
runtime dependencies are ``[project] dependencies`` of pyproject.toml and, recursively, what
those require; the dev extra (pytest, matplotlib, tritonclient, …) gives nothing. Then every
third-party module the run imported is mapped back to its distribution and must be one of them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_distributions() -> set[str]:
    """The declared runtime dependencies and everything they require, recursively (no extras)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pending = [Requirement(text) for text in project["dependencies"]]
    found: set[str] = set()
    while pending:
        requirement = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = _normalised(requirement.name)
        if name in found:
            continue
        found.add(name)
        try:
            needs = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:  # declared for another platform, not installed here
            continue
        pending += [Requirement(text) for text in needs]
    return found


def _runtime_site(site: Path, runtime: set[str]) -> Path:
    """A site-packages of links to exactly the installed files of the runtime distributions."""
    site.mkdir()
    for dist in metadata.distributions():
        if _normalised(dist.metadata["Name"]) not in runtime:
            continue
        for top in {file.parts[0] for file in dist.files or () if file.parts[0] not in ("..", "__pycache__")}:
            source, link = Path(dist.locate_file(top)), site / top
            if source.exists() and not link.exists():
                link.symlink_to(source)
    return site


def _providers() -> dict[str, list[str]]:
    """Top-level importable names, each with the installed distributions that provide it."""
    return {
        module: [_normalised(d) for d in dists]
        for module, dists in metadata.packages_distributions().items()
        if module.isidentifier()
    }


_QUICKSTART = r"""
import json, sys
from pathlib import Path

work = Path(sys.argv[1])
present = {name.partition(".")[0] for name in sys.modules}  # the interpreter's own start-up

import normresnet_export as nx
from normresnet_export.check import check
from normresnet_export.data.digits import write_digit_images
from normresnet_export.predict import collect_inputs, predict
from normresnet_export.runtime import open_model
from trainers import TrainConfig, train

run = work / "run"
settings = {"epochs": 1, "batch_size": 16, "limit_train": 16, "limit_test": 16}
train(TrainConfig(arch="resnet20", dataset="digits", out=run, **settings))
nx.export_onnx(run / "best.pt", work / "m.onnx")
report = check(run / "best.pt", [work / "m.onnx"], data="digits", samples=8, latency=False)
assert report.passed, report.failures()
write_digit_images(work / "images", 2)
predicted = predict(open_model(str(work / "m.onnx")), collect_inputs([str(work / "images")]), top_k=1)
assert not predicted.failed
own = {"normresnet_export", "trainers", "cli", "__main__"}
imported = {name.partition(".")[0] for name in sys.modules} - present - own - set(sys.stdlib_module_names)
print(json.dumps(sorted(imported)))
"""


def test_the_quickstart_runs_on_the_runtime_dependencies_alone(tmp_path):
    runtime = runtime_distributions()
    assert "scikit-learn" in runtime  # the digits; the dev extra does not count
    site = _runtime_site(tmp_path / "site", runtime)
    assert (site / "sklearn").exists() and not (site / "pytest").exists()
    done = subprocess.run(  # -S: no site-packages, only the runtime ones and the project itself
        [sys.executable, "-S", "-c", _QUICKSTART, str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PYTHONPATH": f"{site}{os.pathsep}{ROOT}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"torch", "onnxruntime", "PIL", "numpy"} <= set(
        imported
    )  # the digits file is sklearn's: found, not imported
    providers = _providers()
    # Names no distribution installs (``__mp_main__``, ``_sysconfigdata_…``, Cython's) are the interpreter's.
    outside = {m: providers[m] for m in imported if m in providers and not set(providers[m]) & runtime}
    assert not outside, f"the quickstart imported modules no runtime dependency provides: {outside}"
