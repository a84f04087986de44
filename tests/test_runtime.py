"""Runtime backends, `normexport predict` and `normexport check`: same answers everywhere, honest devices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from PIL import Image
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app
from normresnet_export.runtime import DeviceError, open_model
from tests.helpers import randomise_for_folding

runner = CliRunner()
NO_GPU = not torch.cuda.is_available()


def _deploy(root: Path) -> None:
    """Write a resnet20 checkpoint (preprocessing, labels), its three exports and 11 images into ``root``."""
    torch.manual_seed(0)
    model = randomise_for_folding(nx.create_model("resnet20").eval())
    labels = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    checkpoint = nx.save_checkpoint(
        root / "m.pt", model, arch="resnet20", preprocessing=nx.preprocess.PRESETS["cifar10"], labels=labels
    )
    nx.export_onnx(checkpoint, root / "m.onnx", exporter="torchscript")  # the exporters have their own tests
    nx.export_torchscript(checkpoint, root / "m.ts")
    nx.export_pt2(checkpoint, root / "m.pt2")
    images = root / "images"
    (images / "nested").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(11):
        picture = Image.fromarray((rng.random((30 + i, 40, 3)) * 255).astype(np.uint8))
        picture.save(images / ("nested" if i % 3 == 0 else ".") / f"img{i:02d}.{'png' if i % 2 else 'jpg'}")


@pytest.fixture(scope="module")
def deployed(shared_artefacts) -> dict[str, Path]:
    """A resnet20 checkpoint with preprocessing and labels, and its ONNX, TorchScript and pt2 exports.

    Built once per test run (both xdist workers run tests of this module); read-only.
    """
    root = shared_artefacts.get("runtime-deployed", _deploy)
    names = {
        "checkpoint": "m.pt",
        "onnx": "m.onnx",
        "torchscript": "m.ts",
        "pt2": "m.pt2",
        "images": "images",
    }
    return {kind: root / name for kind, name in names.items()}


def test_backends_agree_and_describe_what_runs(deployed):
    x = torch.randn(7, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    reference = open_model(deployed["checkpoint"], device="cpu")
    expected = reference.run(x)
    for kind in ("onnx", "torchscript", "pt2"):
        backend = open_model(deployed[kind], device="auto", trust_code=True)
        actual = backend.run(x)
        assert (actual - expected).abs().max() <= 1e-5 * expected.abs().max(), kind
        assert backend.labels == reference.labels and backend.preprocessing == reference.preprocessing
        description = backend.describe()
        assert backend.precision in description and backend.provider in description
        if NO_GPU:  # auto never claims a GPU that is not there
            assert backend.device == "cpu"
    assert open_model(deployed["onnx"]).provider == (
        "CPUExecutionProvider" if NO_GPU else "CUDAExecutionProvider"
    )


@pytest.mark.skipif(not NO_GPU, reason="needs a machine without a usable GPU")
def test_cuda_on_a_machine_without_one_fails_with_the_reason(deployed):
    for kind in ("onnx", "torchscript", "checkpoint"):
        with pytest.raises(DeviceError, match=r"(?i)cuda was requested but .*no CUDA GPU is visible"):
            open_model(deployed[kind], device="cuda", trust_code=True)
    fallback = open_model(deployed["onnx"], device="cuda", allow_cpu_fallback=True)
    assert fallback.device == "cpu" and "CPU fallback" in fallback.describe()
    result = runner.invoke(
        app, ["predict", str(deployed["onnx"]), str(deployed["images"]), "--device", "cuda"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: cuda was requested but ONNX Runtime runs m.onnx on CPUExecutionProvider"
    )


def _top(report: dict) -> dict[str, list[str]]:
    return {Path(p["name"]).name: [t["label"] for t in p["top"]] for p in report["predictions"]}


def test_predict_gives_the_same_top_k_with_every_backend(deployed):
    reports = {}
    for kind in ("checkpoint", "onnx", "torchscript"):
        args = ["predict", str(deployed[kind]), str(deployed["images"]), "-k", "3", "-b", "4", "--json"]
        result = runner.invoke(app, [*args, "--trust-code"])  # TorchScript is a program; ours, so trusted
        assert result.exit_code == 0, result.output
        reports[kind] = json.loads(result.stdout)
    eager = reports["checkpoint"]
    assert len(eager["predictions"]) == 11 and eager["failed"] == 0
    assert all(len(p["top"]) == 3 and p["top"][0]["label"] in eager_labels() for p in eager["predictions"])
    for kind in ("onnx", "torchscript"):
        assert _top(reports[kind]) == _top(eager)
        for mine, theirs in zip(reports[kind]["predictions"], eager["predictions"], strict=True):
            assert abs(mine["top"][0]["probability"] - theirs["top"][0]["probability"]) < 1e-5
    probabilities = [t["probability"] for t in eager["predictions"][0]["top"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-9


def test_predict_runs_a_static_batch_export_on_any_number_of_images(deployed, tmp_path):
    pinned = nx.export_pt2(deployed["checkpoint"], tmp_path / "b4.pt2", static_batch=4).path
    dynamic = json.loads(
        runner.invoke(
            app,
            ["predict", str(deployed["pt2"]), str(deployed["images"]), "-b", "3", "--json", "--trust-code"],
        ).stdout
    )
    result = runner.invoke(
        app, ["predict", str(pinned), str(deployed["images"]), "-b", "3", "--json", "--trust-code"]
    )
    assert result.exit_code == 0, result.output  # 11 images in calls of 4, the last one padded
    assert _top(json.loads(result.stdout)) == _top(dynamic)


def eager_labels() -> set[str]:
    return {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}


def test_predict_reports_bad_files_and_still_predicts_the_others(deployed, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_text("not a jpeg")
    good = next(deployed["images"].glob("*.png"))
    result = runner.invoke(app, ["predict", str(deployed["onnx"]), str(good), str(bad)])
    assert result.exit_code == 1
    assert f"error: {bad}: not an image Pillow can read" in result.stderr
    assert good.name in result.stdout and "onnxruntime" in result.stdout  # the good one is still predicted
    piped = runner.invoke(
        app, ["predict", str(deployed["torchscript"]), "-", "--json", "--trust-code"], input=good.read_bytes()
    )
    assert piped.exit_code == 0, piped.output
    assert json.loads(piped.stdout)["predictions"][0]["name"] == "<stdin>"


def test_predict_refuses_to_guess_preprocessing(deployed, tmp_path):
    bare = nx.save_checkpoint(tmp_path / "bare.pt", nx.create_model("resnet20").eval(), arch="resnet20")
    image = str(next(deployed["images"].glob("*.png")))
    refused = runner.invoke(app, ["predict", str(bare), image])
    assert refused.exit_code == 2 and "carries no preprocessing" in refused.stderr
    given = runner.invoke(app, ["predict", str(bare), image, "--preprocessing", "cifar10", "--json"])
    assert given.exit_code == 0 and json.loads(given.stdout)["predictions"][0]["top"][0]["label"].isdigit()


def _corrupt(source: Path, target: Path) -> Path:
    """The ONNX file with one weight changed: the first conv's first value."""
    model = onnx.load(str(source))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    weight = next(i for i in model.graph.initializer if i.name == conv.input[1])
    values = numpy_helper.to_array(weight).copy()
    values.flat[0] += 0.5
    weight.CopyFrom(numpy_helper.from_array(values, weight.name))
    onnx.save(model, str(target))
    return target


def test_check_passes_good_artefacts_and_catches_a_corrupted_one(deployed, tmp_path):
    args = ["check", str(deployed["checkpoint"]), str(deployed["onnx"]), str(deployed["pt2"]), "--trust-code"]
    plot = tmp_path / "throughput.png"
    good = runner.invoke(
        app,
        [*args, "--samples", "40", "--batch-sizes", "1,8", "--repeats", "1", "--plot", str(plot), "--json"],
    )
    assert good.exit_code == 0, good.output
    assert Image.open(plot).format == "PNG"  # matplotlib is in the dev extras
    report = json.loads(good.stdout)
    assert report["passed"] and [a["label"] for a in report["agreement"]] == [
        "eager (folded)",
        "onnxruntime (m.onnx)",
        "torch.export (m.pt2)",
    ]
    assert all(a["deviation"]["max_rel"] <= a["limit"] <= 1e-5 for a in report["agreement"])
    timed = {(row["label"], row["batch"]) for row in report["latency"]}
    assert len(timed) == 8 and all(
        row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] for row in report["latency"]
    )
    assert {row["speedup"] for row in report["latency"] if row["label"] == "eager (unfolded)"} == {1.0}
    corrupted = _corrupt(deployed["onnx"], tmp_path / "corrupted.onnx")
    bad = runner.invoke(
        app, ["check", str(deployed["checkpoint"]), str(corrupted), "--samples", "40", "--no-latency"]
    )
    assert bad.exit_code == 1
    assert "FAIL: onnxruntime (corrupted.onnx)" in bad.stdout


def test_check_on_labelled_data_reports_accuracy(deployed, tmp_path):
    folder = tmp_path / "data"
    for label in ("cat", "dog"):
        (folder / label).mkdir(parents=True)
        for image in list(deployed["images"].rglob("*.png"))[:3]:
            (folder / label / image.name).write_bytes(image.read_bytes())
    args = ["check", str(deployed["checkpoint"]), str(deployed["onnx"]), "--data", f"folder:{folder}"]
    table = runner.invoke(app, [*args, "--no-latency"])
    assert table.exit_code == 0 and "accuracy" in table.stdout, table.output
    result = runner.invoke(app, [*args, "--no-latency", "--json"])
    report = json.loads(result.stdout)
    assert report["samples"] == 6 and report["reference_accuracy"] is not None
    assert {a["accuracy"] for a in report["agreement"]} == {report["reference_accuracy"]}
    (folder / "unicorn").mkdir()
    refused = runner.invoke(app, ["check", str(deployed["checkpoint"]), "--data", f"folder:{folder}"])
    assert refused.exit_code == 2 and "not among the model's labels" in refused.stderr


def test_check_on_the_digits_test_split(deployed):
    args = [
        "check",
        str(deployed["checkpoint"]),
        str(deployed["onnx"]),
        "--data",
        "digits",
        "--samples",
        "50",
    ]
    result = runner.invoke(app, [*args, "--no-latency", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["samples"] == 50 and report["data"].startswith("digits test split")
    assert 0.0 <= report["reference_accuracy"] <= 1.0
    assert {a["accuracy"] for a in report["agreement"]} == {report["reference_accuracy"]}


def test_run_takes_numpy_and_torch_alike_and_refuses_anything_else(deployed):
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    for kind in ("onnx", "checkpoint"):
        backend = open_model(deployed[kind], device="cpu")
        assert torch.equal(backend.run(x.numpy()), backend.run(x)), kind
        assert backend.bind(x.numpy())() is None  # for timing: runs, returns nothing
        with pytest.raises(nx.InputError, match=r"a batch is a torch.Tensor or a numpy.ndarray .* got list"):
            backend.run(x.tolist())


def test_check_with_one_backend_says_it_in_the_singular(deployed):
    args = ["check", str(deployed["checkpoint"]), "--samples", "8", "--no-latency"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "PASS: 1 backend agrees with the unfolded checkpoint" in result.stdout


@pytest.mark.parametrize(
    ("env", "threads", "expected"), [("1", None, 1), ("1", 2, 2), (None, 1, 1), ("x", 1, 1)]
)
def test_onnxruntime_threads_follow_the_option_then_omp_num_threads(
    deployed, monkeypatch, env, threads, expected
):
    if env is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", env)
    backend = open_model(deployed["onnx"], threads=threads)
    assert backend.session.get_session_options().intra_op_num_threads == expected


def test_without_either_onnxruntime_chooses(deployed, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert open_model(deployed["onnx"]).session.get_session_options().intra_op_num_threads == 0
