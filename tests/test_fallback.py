"""An allowed CPU fallback is shown with its reason in every table header, not only under ``--json``.

On a machine without a usable GPU, asking for ``--device cuda --allow-cpu-fallback`` gives a
real fallback (torch's and ONNX Runtime's own reasons); the tables must name it.
"""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from cli import app
from tests.test_runtime import _deploy

runner = CliRunner()
pytestmark = pytest.mark.skipif(
    torch.cuda.is_available(), reason="needs a machine without a usable GPU, where cuda falls back"
)
CUDA = ["--device", "cuda", "--allow-cpu-fallback"]


@pytest.fixture(scope="module")
def deployed(shared_artefacts):
    return shared_artefacts.get("runtime-deployed", _deploy)


@pytest.mark.parametrize("model", ["m.pt", "m.onnx"])
def test_predict_shows_the_fallback_reason(deployed, model):
    args = ["predict", str(deployed / model), str(deployed / "images" / "img01.png"), *CUDA]
    reason = json.loads(runner.invoke(app, [*args, "--json"]).stdout)["backend"]["fallback"]
    assert reason
    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[0].endswith(f" · CPU fallback: {reason}")


def test_check_shows_every_fallback_reason(deployed):
    args = [
        "check",
        str(deployed / "m.pt"),
        str(deployed / "m.onnx"),
        *CUDA,
        "--samples",
        "4",
        "--no-latency",
    ]
    report = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    torch_reason = report["reference"]["fallback"]
    onnx_reason = next(a["fallback"] for a in report["agreement"] if a["label"].startswith("onnxruntime"))
    assert torch_reason and onnx_reason
    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert f"CPU fallback: {torch_reason}; data:" in lines[0]
    if onnx_reason != torch_reason:
        assert f"onnxruntime (m.onnx): CPU fallback: {onnx_reason}" in table.stdout
    assert "(CPU fallback)" in table.stdout  # in the agreement table's provider column
