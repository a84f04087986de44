"""`export --int8`: ONNX Runtime's static QDQ quantisation of the folded model, written only if it passes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cli import app
from normresnet_export.check.calibration import load_calibration
from normresnet_export.checkpoint import load_checkpoint
from normresnet_export.errors import InputError
from normresnet_export.export.gate import Gate
from normresnet_export.export.quantize import METHODS, CalibrationSet
from normresnet_export.runtime import open_model
from normresnet_export.runtime.openvino_backend import openvino_missing_reason
from normresnet_export.vocabulary import CALIBRATION_METHODS
from tests.digits_model import digits_resnet20  # noqa: F401 (a fixture)

runner = CliRunner()


@pytest.fixture(scope="module")
def int8_export(digits_resnet20, tmp_path_factory) -> tuple[Path, dict]:  # noqa: F811
    """The digits resnet20 exported with --int8 --calibration digits, and the --json document."""
    path = tmp_path_factory.mktemp("int8") / "resnet20.int8.onnx"
    arguments = ["export", str(digits_resnet20), "-o", str(path), "--int8", "--calibration", "digits"]
    done = runner.invoke(app, [*arguments, "--json", "--exporter", "torchscript"])
    assert done.exit_code == 0, done.output
    return path, json.loads(done.stdout)


def test_int8_export_passes_the_gate_and_is_smaller_than_float32(int8_export):
    path, document = int8_export
    details = document["details"]
    assert details["gate"]["passed"] and details["gate"]["deviation"]["top1_agreement"] >= 0.99
    assert details["gate"]["accuracy_drop"] <= 0.005
    assert details["gate"]["samples"] == 128  # the held-out half of 256 digits
    assert details["quantization"]["calibration_inputs"] == 128 and details["quantization"]["format"] == "QDQ"
    # int8 weights: well under half the float32 file (a quarter, plus scales and the graph).
    assert path.stat().st_size == details["int8_bytes"] < 0.5 * details["float32_bytes"]
    assert document["metadata"]["precision"] == "int8" and document["metadata"]["folded"]
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_the_int8_model_runs_in_onnxruntime_and_openvino_and_check_gates_it(int8_export, digits_resnet20):  # noqa: F811
    path, _ = int8_export
    backend = open_model(path, device="cpu")
    assert backend.precision == "int8" and "int8" in backend.describe()
    if openvino_missing_reason() is None:
        openvino = open_model(path, runtime="openvino")
        assert openvino.precision == "int8" and openvino.inference_precision == "float32"
        x = load_calibration("digits", digits_resnet20, samples=32).inputs
        agree = (openvino.run(x).argmax(1) == backend.run(x).argmax(1)).double().mean().item()
        assert agree >= 0.95
    done = runner.invoke(
        app,
        ["check", str(digits_resnet20), str(path), "--data", "digits", "--samples", "200",
         "--no-latency", "--json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    row = json.loads(done.stdout)["agreement"][-1]
    assert row["precision"] == "int8" and row["gate"]["passed"] and row["passed"]
    # The logits are not float32-exact, and check does not pretend they are: the gate judges them.
    assert row["deviation"]["max_rel"] > row["limit"]


def test_constant_calibration_images_fail_the_gate_and_write_nothing(digits_resnet20, tmp_path):  # noqa: F811
    folder = tmp_path / "constant"
    for digit in range(10):
        (folder / str(digit)).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(folder / str(digit) / f"{i}.png")
    out = tmp_path / "out" / "m.onnx"
    out.parent.mkdir()
    done = runner.invoke(
        app,
        ["export", str(digits_resnet20), "-o", str(out), "--int8", "--calibration", f"folder:{folder}",
         "--gate-data", "digits", "--exporter", "torchscript"],
    )  # fmt: skip
    assert done.exit_code == 1, done.output
    message = done.stderr.strip()
    assert (
        message.count("\n") == 0 and "fails the accuracy gate" in message and "nothing was written" in message
    )
    assert list(out.parent.iterdir()) == []


def test_int8_options_that_cannot_apply_are_refused(digits_resnet20, tmp_path):  # noqa: F811
    base = ["export", str(digits_resnet20), "--int8"]
    cases = {
        "use --format onnx": [*base, "-o", str(tmp_path / "m.pt2"), "--calibration", "random:16"],
        "needs calibration data": [*base, "-o", str(tmp_path / "m.onnx")],
        "does not apply to --int8": [
            *base,
            "-o",
            str(tmp_path / "m.onnx"),
            "--fp16",
            "--calibration",
            "random:16",
        ],
        "random:N takes a whole number": [*base, "-o", str(tmp_path / "m.onnx"), "--calibration", "random:x"],
        "add --int8": [
            "export",
            str(digits_resnet20),
            "-o",
            str(tmp_path / "m.onnx"),
            "--calibration",
            "random:16",
        ],
    }
    for expected, args in cases.items():
        done = runner.invoke(app, args)
        assert done.exit_code == 2, (expected, done.output)
        assert expected in done.stderr and done.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_the_gate_counts_agreement_and_accuracy():
    torch.manual_seed(0)
    expected = torch.randn(200, 10)
    targets = expected.argmax(1)
    flipped = expected.clone()
    flipped[:2] = flipped[:2].roll(1, dims=1)  # 2 of 200 change class: 99% agreement, 1 point less accurate
    result = Gate().judge(expected, flipped, targets)
    assert result.deviation.top1_agreement == pytest.approx(0.99) and result.accuracy_drop == pytest.approx(
        0.01
    )
    assert not result.passed and "FAIL" in result.verdict()
    assert Gate(max_accuracy_drop=0.01).judge(expected, flipped, targets).passed
    assert Gate(min_agreement=0.995, max_accuracy_drop=0.01).judge(expected, flipped, None).passed is False
    assert Gate().judge(expected, flipped, None).passed  # unlabelled: agreement alone
    assert Gate.from_percent(min_agreement=99, max_accuracy_drop=0.5) == Gate()
    with pytest.raises(InputError, match="--min-agreement is in percent"):
        Gate.from_percent(min_agreement=101)


def test_calibration_split_and_methods(digits_resnet20):  # noqa: F811
    assert tuple(METHODS) == CALIBRATION_METHODS
    data = load_calibration("random:10", digits_resnet20)
    assert data.inputs.shape == (10, *load_checkpoint(digits_resnet20).input_size) and data.targets is None
    labelled = CalibrationSet("x", torch.arange(10.0).view(10, 1), torch.arange(10))
    first, second = labelled.split()
    assert first.inputs.flatten().tolist() == [0, 2, 4, 6, 8] and second.targets.tolist() == [1, 3, 5, 7, 9]
