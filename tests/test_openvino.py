"""The OpenVINO runtime: precision always explicit and read back, fp32 exact, bf16 gated, honest refusals."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app
from normresnet_export.check.calibration import load_calibration
from normresnet_export.checkpoint import load_checkpoint
from normresnet_export.errors import InputError
from normresnet_export.export.verify import reference_outputs
from normresnet_export.runtime import DeviceError, open_model
from normresnet_export.runtime.openvino_backend import bf16_missing_reason, openvino_missing_reason
from tests.digits_model import digits_resnet20  # noqa: F401 (a fixture)

runner = CliRunner()
NO_OPENVINO = openvino_missing_reason()
needs_openvino = pytest.mark.skipif(
    NO_OPENVINO is not None, reason=f"OpenVINO is not installed ({NO_OPENVINO})"
)
NO_BF16 = bf16_missing_reason()


@pytest.fixture(scope="module")
def folded_onnx(digits_resnet20, tmp_path_factory) -> Path:  # noqa: F811
    """The digits resnet20, folded and exported to float32 ONNX."""
    path = tmp_path_factory.mktemp("openvino") / "resnet20.onnx"
    nx.export_onnx(digits_resnet20, path, exporter="torchscript")  # the exporters have their own tests
    return path


@needs_openvino
def test_openvino_fp32_agrees_with_eager_within_the_float32_limit(folded_onnx, digits_resnet20):  # noqa: F811
    backend = open_model(folded_onnx, runtime="openvino", threads=2)
    # The hint was set, and what the compiled model reads back is what is reported.
    assert str(backend.compiled.get_property("INFERENCE_PRECISION_HINT")) in ("<Type: 'float32'>", "f32")
    assert backend.precision == backend.inference_precision == "float32"
    assert (
        backend.describe().startswith("openvino (resnet20.onnx): openvino ")
        and "float32" in backend.describe()
    )
    assert backend.to_dict()["inference_precision"] == "float32" and backend.labels == [
        str(d) for d in range(10)
    ]
    x = load_calibration("digits", digits_resnet20, samples=48).inputs
    expected, limit = reference_outputs(load_checkpoint(digits_resnet20).model, [x[:1], x[1:]], float16=False)
    for inputs, reference in zip([x[:1], x[1:]], expected, strict=True):  # batch 1 and 47: dynamic batch
        actual = backend.run(inputs)
        assert (actual - reference).abs().max() <= limit * reference.abs().max()
        assert (actual.argmax(1) == reference.argmax(1)).all()


@needs_openvino
@pytest.mark.skipif(NO_BF16 is None, reason="this CPU computes bf16 (the refusal is for CPUs that cannot)")
def test_bf16_on_a_cpu_without_it_is_refused_with_the_reason(folded_onnx):
    with pytest.raises(DeviceError) as refused:
        open_model(folded_onnx, runtime="openvino", precision="bf16")
    message = str(refused.value)
    assert "\n" not in message and "AVX512-BF16 or AMX" in message and "use --precision fp32" in message


@needs_openvino
@pytest.mark.skipif(NO_BF16 is not None, reason=f"no bfloat16 on this CPU: {NO_BF16}")
def test_bf16_agrees_on_99_percent_of_the_digits(folded_onnx, digits_resnet20):  # noqa: F811
    done = runner.invoke(
        app,
        ["check", str(digits_resnet20), str(folded_onnx), "--runtime", "openvino", "--precision", "bf16",
         "--data", "digits", "--samples", "360", "--no-latency", "--json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    row = json.loads(done.stdout)["agreement"][-1]
    assert row["backend"] == "openvino" and row["precision"] == row["inference_precision"] == "bfloat16"
    assert row["gate"]["passed"] and row["deviation"]["top1_agreement"] >= 0.99


@needs_openvino
def test_predict_and_check_take_the_openvino_runtime(folded_onnx, digits_resnet20, tmp_path):  # noqa: F811
    image = tmp_path / "seven.png"
    Image.fromarray(np.full((32, 32, 3), 40, np.uint8)).save(image)
    answers = {}
    for runtime in ("onnxruntime", "openvino"):
        done = runner.invoke(app, ["predict", str(folded_onnx), str(image), "--runtime", runtime, "--json"])
        assert done.exit_code == 0, done.output
        answers[runtime] = json.loads(done.stdout)
    assert answers["openvino"]["backend"]["backend"] == "openvino"
    top = [a["predictions"][0]["top"][0]["label"] for a in answers.values()]
    assert top[0] == top[1]
    done = runner.invoke(
        app,
        ["check", str(digits_resnet20), str(folded_onnx), "--runtime", "openvino", "--data", "digits",
         "--samples", "32", "--batch-sizes", "8", "--repeats", "1", "--json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["agreement"][-1]["backend"] == "openvino" and report["agreement"][-1]["gate"] is None
    assert any(row["label"].startswith("openvino") for row in report["latency"])


def test_refusals_are_one_line(folded_onnx, digits_resnet20, monkeypatch):  # noqa: F811
    with pytest.raises(
        InputError, match=r"--precision bf16 for an \.onnx file is computed by --runtime openvino"
    ):
        open_model(folded_onnx, precision="bf16")
    with pytest.raises(InputError, match="--runtime openvino runs ONNX files, and this is a checkpoint"):
        open_model(digits_resnet20, runtime="openvino")
    done = runner.invoke(app, ["predict", str(folded_onnx), "x.png", "--runtime", "tensorflow"])
    assert done.exit_code == 2 and done.stderr.count("\n") == 1
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if the extra were not installed
    with pytest.raises(InputError) as missing:
        open_model(folded_onnx, runtime="openvino")
    assert str(missing.value) == (
        "the OpenVINO runtime is not installed; pip install 'normresnet-export[openvino]'"
    )


@needs_openvino
def test_openvino_threads_follow_omp_num_threads_unless_given(folded_onnx, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert open_model(folded_onnx, runtime="openvino").compiled.get_property("INFERENCE_NUM_THREADS") == 1
    given = open_model(folded_onnx, runtime="openvino", threads=2)
    assert given.compiled.get_property("INFERENCE_NUM_THREADS") == 2
