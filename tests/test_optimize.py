"""`normexport optimize`: every candidate built, gated and timed; the fastest that passes written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from normresnet_export.check.calibration import load_calibration
from normresnet_export.checkpoint import load_checkpoint
from normresnet_export.optimize import Candidate, OptimizeReport, print_optimize_report
from normresnet_export.optimize.api import CANDIDATES
from normresnet_export.optimize.report import STATUSES
from normresnet_export.runtime import open_model
from normresnet_export.runtime.openvino_backend import bf16_missing_reason, openvino_missing_reason
from tests.digits_model import digits_resnet20  # noqa: F401 (a fixture)

runner = CliRunner()


@pytest.fixture(scope="module")
def optimized(digits_resnet20, tmp_path_factory) -> tuple[Path, dict]:  # noqa: F811
    """``optimize --json`` on the digits resnet20 (one timing block, batch 8): directory and document."""
    out = tmp_path_factory.mktemp("optimize") / "deploy"
    done = runner.invoke(
        app,
        ["optimize", str(digits_resnet20), "-o", str(out), "--samples", "256", "--batch-size", "8",
         "--repeats", "1", "--threads", "2", "--json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    return out, json.loads(done.stdout)  # json.loads fails unless stdout is exactly one document


def test_optimize_writes_the_fastest_passing_candidate_and_its_table(optimized, digits_resnet20):  # noqa: F811
    out, document = optimized
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "optimize.json"]
    assert json.loads((out / "optimize.json").read_text()) == document
    rows = {c["name"]: c for c in document["candidates"]}
    assert [(c["runtime"], c["precision"], c["model"]) for c in document["candidates"]] == list(CANDIDATES)
    assert all(c["status"] in STATUSES for c in rows.values())
    chosen = [c for c in rows.values() if c["status"] == "chosen"]
    assert len(chosen) == 1 and chosen[0]["name"] == document["chosen"]
    timed = [c for c in rows.values() if c["status"] in ("chosen", "slower")]
    assert chosen[0]["timing"]["p50_ms"] == min(c["timing"]["p50_ms"] for c in timed)
    for row in rows.values():  # every candidate that is not the chosen one says why
        assert row["status"] == "chosen" or row["reason"]
        if row["status"] in ("chosen", "slower"):
            assert row["gate"]["passed"] and row["gate"]["top1_agreement"] >= 0.99
    assert rows["onnxruntime fp32"]["status"] in ("chosen", "slower")  # exact float32 always passes
    assert rows["onnxruntime fp32"]["speedup"] == pytest.approx(1.0)
    if openvino_missing_reason() is not None:
        assert (
            rows["openvino fp32"]["status"] == "unavailable"
            and "pip install" in rows["openvino fp32"]["reason"]
        )
    if bf16_missing_reason() is not None:
        assert rows["openvino bf16"]["status"] == "unavailable" and rows["openvino bf16"]["reason"]
    # The written model runs as the report says, and agrees with the checkpoint on held-out digits.
    backend = open_model(out / "model.onnx", runtime=document["runtime"], precision=document["precision"])
    x = load_calibration("digits", digits_resnet20, samples=64).inputs[1::2]
    reference = load_checkpoint(digits_resnet20).model(x).argmax(1)
    assert (backend.run(x).argmax(1) == reference).double().mean().item() >= 0.96
    assert document["command"].endswith(
        f"--runtime {document['runtime']} --precision {document['precision']}"
    )


def test_the_table_lists_every_candidate(optimized, capsys):
    _, document = optimized
    fields = {
        k: document[k] for k in ("checkpoint", "data", "samples", "batch_size", "threads", "output", "files")
    }
    report = OptimizeReport(**fields, candidates=[Candidate(**c) for c in document["candidates"]])
    print_optimize_report(report)
    shown = capsys.readouterr().out
    for candidate in document["candidates"]:
        assert candidate["name"] in shown
    assert f"wrote {document['output']}/model.onnx ({document['chosen']})" in shown


def test_optimize_refuses_bad_options_before_any_work(digits_resnet20, tmp_path):  # noqa: F811
    for args, expected in (
        (["--batch-size", "0"], "--batch-size"),
        (["--data", "random:x"], "random:N"),
        (["--min-agreement", "120"], "--min-agreement"),
    ):
        done = runner.invoke(app, ["optimize", str(digits_resnet20), "-o", str(tmp_path / "d"), *args])
        assert done.exit_code == 2 and expected in done.stderr and done.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
