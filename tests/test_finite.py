"""Models that would answer wrongly without an error: non-finite weights, labels not one per class.

A checkpoint with a NaN weight used to predict ``nan`` probabilities with exit code 0, and one
with 3 labels for 10 classes a mix of names and bare indices (``fold`` refused it only after
folding). Both are refused when the model is loaded; for exported models, non-finite outputs
are an error in ``predict``, and labels that do not match the output are refused when the
model is opened (ONNX metadata, TorchScript and ``.pt2`` extra files).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from torch import nn
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app
from normresnet_export.checkpoint import load_checkpoint
from normresnet_export.errors import CheckpointError
from normresnet_export.metadata import ModelMetadata, TensorSpec
from normresnet_export.runtime import open_model
from normresnet_export.runtime.base import OutputError

runner = CliRunner()
LABELS = [f"class {i}" for i in range(10)]
CIFAR = nx.preprocess.PRESETS["cifar10"]
SIZE = (3, 32, 32)


def _one_line(result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, Path]:
    """A finite resnet20 checkpoint with ten labels, and an image."""
    root = tmp_path_factory.mktemp("finite")
    torch.manual_seed(0)
    checkpoint = nx.save_checkpoint(
        root / "good.pt",
        nx.create_model("resnet20").eval(),
        arch="resnet20",
        preprocessing=CIFAR,
        labels=LABELS,
    )
    pixels = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(root / "image.png")
    return {"checkpoint": checkpoint, "image": root / "image.png"}


def _edited(source: Path, target: Path, edit) -> Path:
    """``source`` with its payload changed by ``edit`` (written as a file would arrive, not by save)."""
    payload = torch.load(source, weights_only=True)
    edit(payload)
    torch.save(payload, target)
    return target


def _poisoned(payload: dict) -> None:
    state = payload["state_dict"]
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first].view(-1)[3] = float("nan")
    variance = next(k for k in state if k.endswith("running_var"))
    state[variance][0] = float("inf")


# ------------------------------------------------------------------------------------ checkpoints


def test_a_checkpoint_with_non_finite_weights_is_refused_by_every_command(good, tmp_path):
    bad = _edited(good["checkpoint"], tmp_path / "nan.pt", _poisoned)
    first = next(
        k for k, v in torch.load(bad, weights_only=True)["state_dict"].items() if v.is_floating_point()
    )
    with pytest.raises(
        CheckpointError, match=rf"tensor '{first}' holds 1 non-finite values .* \(and 1 more tensors\)"
    ):
        load_checkpoint(bad)
    commands = {
        "predict": ["predict", str(bad), str(good["image"])],
        "fold": ["fold", str(bad), "-o", str(tmp_path / "folded.pt")],
        "export": ["export", str(bad), "--format", "onnx", "-o", str(tmp_path / "out.onnx")],
        "check": ["check", str(bad), "--samples", "4", "--no-latency"],
    }
    for name, args in commands.items():
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (name, result.output)
        line = _one_line(result)
        assert line.startswith(f"error: {bad}: tensor '{first}' holds 1 non-finite values (NaN or inf)"), name
        assert "use an earlier checkpoint or train again" in line and result.stdout == "", name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.pt"]


def test_labels_that_are_not_one_per_class_are_refused_before_any_fold_work(good, tmp_path, monkeypatch):
    def three(payload: dict) -> None:
        payload["labels"] = LABELS[:3]

    bad = _edited(good["checkpoint"], tmp_path / "labels.pt", three)
    with pytest.raises(CheckpointError, match="field 'labels' has 3 entries for a model with 10 classes"):
        load_checkpoint(bad)

    def no_fold(*args, **kwargs):
        raise AssertionError("the fold ran before the checkpoint was refused")

    monkeypatch.setattr("normresnet_export.checkpoint.fold_model", no_fold)
    result = runner.invoke(app, ["fold", str(bad), "-o", str(tmp_path / "folded.pt")])
    assert result.exit_code == 2, result.output
    assert _one_line(result) == (
        f"error: {bad}: field 'labels' has 3 entries for a model with 10 classes; save the checkpoint "
        "again with one label per class (or none)"
    )
    predicted = runner.invoke(app, ["predict", str(bad), str(good["image"])])
    assert predicted.exit_code == 2 and "field 'labels' has 3 entries" in _one_line(predicted)
    assert not (tmp_path / "folded.pt").exists()


def test_a_loaded_checkpoint_with_wrong_labels_is_refused_by_the_backend(good):
    checkpoint = load_checkpoint(good["checkpoint"])
    checkpoint.labels = LABELS[:4]
    with pytest.raises(OutputError, match="carries 4 labels but returns 10 classes"):
        open_model(checkpoint, device="cpu")


# ------------------------------------------------------------------------------------ exported models


def _metadata(labels: list[str], **fields) -> ModelMetadata:
    return ModelMetadata(
        preprocessing=CIFAR,
        labels=tuple(labels),
        input=TensorSpec("input", "float32", ("batch", *SIZE)),
        output=TensorSpec("logits", "float32"),
        **fields,
    )


def _onnx(path: Path, *, labels: list[str], nan: bool = False) -> Path:
    """A linear classifier as an ONNX file with normexport metadata (no export needed to test reading)."""
    weight = np.random.default_rng(0).standard_normal((10, int(np.prod(SIZE)))).astype(np.float32) * 0.01
    if nan:
        weight[2, 5] = np.nan
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"]),
            helper.make_node("Gemm", ["flat", "W"], ["logits"], transB=1),
        ],
        "linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", *SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(weight, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, _metadata(labels).to_onnx_props())
    onnx.save(model, str(path))
    return path


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(int(np.prod(SIZE)), 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def test_an_onnx_model_with_non_finite_outputs_is_an_error_not_a_nan_table(good, tmp_path):
    fine = _onnx(tmp_path / "fine.onnx", labels=LABELS)
    assert runner.invoke(app, ["predict", str(fine), str(good["image"]), "--json"]).exit_code == 0
    bad = _onnx(tmp_path / "nan.onnx", labels=LABELS, nan=True)
    for extra in ([], ["--json"]):
        result = runner.invoke(app, ["predict", str(bad), str(good["image"]), *extra])
        assert result.exit_code == 2, result.output
        assert result.stdout == ""
        assert _one_line(result) == (
            f"error: onnxruntime (nan.onnx) returned non-finite scores (NaN or inf) for 1 of 1 inputs "
            f"({good['image']}); its weights are not finite or its float32 compute overflows: export it "
            "again from a finite float32 checkpoint"
        )
    # check is the gate: a non-finite artefact is a failed row beside the others (exit code 1).
    checked = runner.invoke(
        app, ["check", str(good["checkpoint"]), str(bad), "--samples", "4", "--no-latency"]
    )
    assert checked.exit_code == 1, checked.output
    assert "FAIL: onnxruntime (nan.onnx): non-finite" in checked.stdout


def test_onnx_metadata_labels_that_do_not_match_the_output_are_refused_on_opening(good, tmp_path):
    bad = _onnx(tmp_path / "labels.onnx", labels=LABELS[:3])
    with pytest.raises(
        OutputError, match=r"onnxruntime \(labels.onnx\): the model carries 3 labels but returns 10"
    ):
        open_model(bad, device="cpu")
    result = runner.invoke(app, ["predict", str(bad), str(good["image"])])
    assert result.exit_code == 2 and result.stdout == ""
    assert "carries 3 labels but returns 10 classes" in _one_line(result)


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")  # writing the TorchScript file
def test_torchscript_and_pt2_labels_are_checked_on_opening_and_on_every_output(good, tmp_path):
    module = _Linear().eval()
    declared = _metadata(LABELS[:3], model_kwargs={"num_classes": 10})
    undeclared = _metadata(LABELS[:3])
    script = tmp_path / "declared.ts"
    torch.jit.save(torch.jit.script(module), str(script), _extra_files=declared.to_extra_files())
    program = tmp_path / "declared.pt2"
    exported = torch.export.export(module, (torch.zeros(2, *SIZE),))
    torch.export.save(exported, str(program), extra_files=declared.to_extra_files())
    for path in (script, program):
        with pytest.raises(OutputError, match="carries 3 labels but returns 10 classes"):
            open_model(path, device="cpu", trust_code=True)
    # A record that does not say how many classes: the first output says it, before any table.
    silent = tmp_path / "undeclared.ts"
    torch.jit.save(torch.jit.script(module), str(silent), _extra_files=undeclared.to_extra_files())
    assert open_model(silent, device="cpu", trust_code=True).labels == LABELS[:3]
    result = runner.invoke(app, ["predict", str(silent), str(good["image"]), "--trust-code", "--json"])
    assert result.exit_code == 2 and result.stdout == ""
    assert "torchscript (undeclared.ts): the model carries 3 labels but returns 10 classes" in _one_line(
        result
    )


def test_an_imported_checkpoint_with_non_finite_weights_is_refused_and_nothing_written(tmp_path):
    from tests.test_import import _original, _prefixed

    state = _prefixed(_original("procresnet166"))  # ProcResNet main.py's layout: DataParallel keys
    name = next(k for k, v in state.items() if v.is_floating_point() and v.dim() == 4)
    state[name] = state[name].clone()
    state[name][0, 0, 0, 0] = float("nan")
    path = tmp_path / "ckpt.pth"
    torch.save({"net": state, "acc": 93.1, "epoch": 141}, path)
    with pytest.raises(CheckpointError, match=r"non-finite values \(NaN or inf\)"):
        nx.import_checkpoint(path)
    result = runner.invoke(app, ["import", str(path), "-o", str(tmp_path / "out.pt")])
    assert result.exit_code == 2 and "non-finite" in _one_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pth"]
