"""A failed check says in words what went wrong and what to do, shows its table, and a dict only under --json.

The overflowing model is cheap: a resnet20 whose convolution weights are scaled by 1e6 gives
finite float64 logits but inf in float32, as an untrained resnet1202 does in eval mode.
"""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app
from normresnet_export.compare import Deviation, shortfall
from normresnet_export.export.onnx import read_metadata
from normresnet_export.export.result import ExportCheck
from normresnet_export.export.verify import ExportCheckError, require
from normresnet_export.fold import fold_model

runner = CliRunner()


@pytest.fixture(scope="module")
def overflowing(tmp_path_factory):
    """A checkpoint whose unfolded model itself overflows float32 on inputs of its size."""
    torch.manual_seed(0)
    model = nx.create_model("resnet20").eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.mul_(1e6)
        assert not model(torch.randn(2, 3, 32, 32)).isfinite().all()
    return nx.save_checkpoint(tmp_path_factory.mktemp("overflow") / "huge.pt", model)


def test_export_of_an_overflowing_model_says_why_and_what_to_do(tmp_path, overflowing):
    result = runner.invoke(app, ["export", str(overflowing), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(
        "error: the fold check failed at 3×32×32: "
    )
    assert "the unfolded model itself gives non-finite float32 outputs" in result.stderr
    assert "a trained checkpoint" in result.stderr and "--no-check" in result.stderr
    assert "folded vs. unfolded logits (3×32×32)" in result.stdout and "inf/NaN" in result.stdout
    assert "{" not in result.output  # no Python dict anywhere
    assert not (tmp_path / "m.onnx").exists()


def test_under_json_the_failure_is_one_document(tmp_path, overflowing):
    result = runner.invoke(app, ["export", str(overflowing), "-o", str(tmp_path / "m.onnx"), "--json"])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["passed"] is False and document["error"] in result.stderr
    assert document["fold"]["deviations"]["float32"]["reference_finite"] is False


def test_no_check_exports_anyway_and_the_metadata_says_unverified(tmp_path, overflowing):
    target = tmp_path / "m.onnx"
    args = ["export", str(overflowing), "-o", str(target), "--exporter", "torchscript", "--no-check"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "not checked (--no-check): its metadata records it as unverified" in result.stdout
    metadata = read_metadata(target)
    assert metadata.verified is False
    assert metadata.fold["checked"] is False and metadata.fold["passed"] is None  # no pass it never had
    unchecked = fold_model(nx.load_checkpoint(overflowing).model, check=False).report
    assert unchecked.passed and unchecked.to_dict()["passed"] is None  # callers go on; records do not claim


def test_fold_of_an_overflowing_model_fails_in_words(tmp_path, overflowing):
    result = runner.invoke(app, ["fold", str(overflowing), "-o", str(tmp_path / "f.pt")])
    assert result.exit_code == 1
    verdict = result.stdout.strip().splitlines()[-1]
    assert verdict.startswith("FAIL: the unfolded model itself gives non-finite float32 outputs"), verdict
    assert verdict.endswith("nothing was written") and not (tmp_path / "f.pt").exists()


def test_a_failed_export_check_is_a_sentence_with_its_numbers():
    check = ExportCheck(
        runtime="onnxruntime", batches=[1, 2], deviation=Deviation(0.02, 0.01, 1.0), limit=1e-5
    )
    with pytest.raises(ExportCheckError) as failed:
        require(check, "the ONNX export")
    message = str(failed.value)
    assert message == (
        "the ONNX export does not agree with the model: it differs from the unfolded model by up to "
        "1.00e-02 of its largest logit (max |Δ| 2.00e-02), above the limit of 1.0e-05; nothing was written"
    )
    assert failed.value.to_dict()["check"]["passed"] is False


@pytest.mark.parametrize(
    ("found", "limit", "words"),
    [
        (Deviation(None, None, 1.0, finite=False, reference_finite=False), 1e-5, "B itself gives non-finite"),
        (Deviation(None, None, 0.5, finite=False), 1e-5, "A gives non-finite outputs (inf or NaN) where B"),
        (Deviation(1.0, 1e-3, 1.0), 1e-5, "A differs from B by up to 1.00e-03 of its largest logit"),
        (Deviation(1e-9, 1e-9, 0.75), 1e-5, "A picks another top-1 class than B on 25% of the inputs"),
    ],
)
def test_shortfall_names_the_first_reason(found, limit, words):
    assert words in shortfall(found, limit, model="A", reference="B")
    assert shortfall(Deviation(1e-9, 1e-9, 1.0), 1e-5, model="A", reference="B") is None
