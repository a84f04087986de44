"""A checkpoint under torch's bfloat16 autocast: gated by check, reported, refused where it cannot pay."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app
from normresnet_export.errors import InputError
from normresnet_export.runtime import DeviceError, devices, open_model
from tests.digits_model import digits_resnet20  # noqa: F401 (a fixture)

runner = CliRunner()
NO_BF16 = devices.torch_bf16_missing_reason(torch.device("cpu"))
needs_bf16 = pytest.mark.skipif(NO_BF16 is not None, reason=f"no native bfloat16 on this CPU: {NO_BF16}")


@needs_bf16
def test_check_gates_the_folded_checkpoint_in_bf16_on_the_digits(digits_resnet20):  # noqa: F811
    done = runner.invoke(
        app,
        ["check", str(digits_resnet20), "--precision", "bf16", "--data", "digits", "--samples", "360",
         "--no-latency", "--json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    row = report["agreement"][-1]
    assert row["label"] == "eager bf16 (folded)" and row["precision"] == "bfloat16"
    assert row["gate"]["passed"] and row["deviation"]["top1_agreement"] >= 0.99
    assert abs(row["accuracy"] - report["reference_accuracy"]) <= 0.005
    # bfloat16 really rounds: the logits move, by far more than float32's error
    assert row["deviation"]["max_rel"] > 1e-4


@needs_bf16
def test_a_bf16_backend_computes_in_bf16_behind_float32(digits_resnet20):  # noqa: F811
    backend = open_model(digits_resnet20, precision="bf16", fold=True)
    reference = open_model(digits_resnet20)
    assert backend.precision == "bfloat16" and backend.metadata.precision == "float32"  # the file's
    assert "bfloat16" in backend.describe()
    size = nx.load_checkpoint(digits_resnet20).input_size
    x = torch.randn(8, *size, generator=torch.Generator().manual_seed(0))
    low, exact = backend.run(x), reference.run(x)
    assert low.dtype == torch.float32
    relative = float((low - exact).abs().max() / exact.abs().max())
    assert 1e-4 < relative < 5e-2  # bfloat16's 8-bit mantissa, not float32 and not garbage


def test_bf16_where_the_cpu_would_emulate_it_is_refused_in_one_line(digits_resnet20, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setattr(devices, "cpu_flags", lambda: {"avx2", "fma"})
    with pytest.raises(DeviceError) as refused:
        open_model(digits_resnet20, precision="bf16")
    message = str(refused.value)
    assert "\n" not in message and "AVX512-BF16 or AMX" in message and "use --precision fp32" in message
    image = tmp_path / "grey.png"
    Image.fromarray(np.full((32, 32, 3), 40, np.uint8)).save(image)
    done = runner.invoke(app, ["predict", str(digits_resnet20), str(image), "--precision", "bf16"])
    assert done.exit_code != 0 and "AVX512-BF16 or AMX" in done.stderr and "Traceback" not in done.output


def test_bf16_applies_to_checkpoints_and_openvino_only(digits_resnet20, tmp_path):  # noqa: F811
    onnx = tmp_path / "r.onnx"
    nx.export_onnx(digits_resnet20, onnx, exporter="torchscript")
    with pytest.raises(InputError, match="computed by --runtime openvino"):
        open_model(onnx, precision="bf16")
    program = tmp_path / "r.ts"
    nx.export_torchscript(digits_resnet20, program)
    with pytest.raises(InputError, match="computes in the precision it was exported in"):
        open_model(program, precision="bf16", trust_code=True)
    with pytest.raises(InputError, match="two precisions"):
        open_model(digits_resnet20, precision="bf16", fp16=True)
