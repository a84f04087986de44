"""Export: every family in every format agrees with the unfolded model; files carry their metadata."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app
from normresnet_export.export import contract, load_pt2, load_torchscript, read_metadata
from normresnet_export.export import onnx as onnx_export
from normresnet_export.metadata import ModelMetadata
from normresnet_export.runtime.loader import model_kind
from tests.helpers import randomise_for_folding

runner = CliRunner()
RTOL = 1e-5  # float32, relative to the largest logit (issue: <= 1e-5)

# One model per family (and per kind of fold), at a small size; LeNo's ImageNet design at 32×32.
FAMILY_MODELS = {
    "resnet20": {},
    "preact_resnet20": {"shortcut": "C"},
    "tau_resnet20_nobn": {},
    "procresnet166": {},
    "lenoresnet50": {},
    "diracnet_cifar16_1": {},
}


def _checkpoint(tmp_path: Path, name: str, **kwargs: object) -> Path:
    # Prepared as the fold tests prepare ordinary depths (random statistics, tau, offsets, alpha, beta),
    # where float32 reaches the 1e-5 target; bench/RESULTS.md lists the deviations of every model.
    torch.manual_seed(0)
    model = randomise_for_folding(nx.create_model(name, **kwargs).eval())
    preprocessing = nx.preprocess.PRESETS["cifar10"]
    labels = [f"class {i}" for i in range(nx.model_info(name).default_kwargs["num_classes"])]
    return nx.save_checkpoint(
        tmp_path / f"{name}.pt",
        model,
        arch=name,
        model_kwargs=kwargs,
        preprocessing=preprocessing,
        labels=labels,
    )


def _agreement(run, checkpoint: Path, batch: int = 5) -> float:
    model = nx.load_checkpoint(checkpoint).model
    x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(42))
    with torch.no_grad():
        expected = model(x)
        actual = run(x)
    assert actual.shape == expected.shape
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def _onnx_runner(path: Path):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """``prepared(name, **kwargs)``: that model's checkpoint as `_checkpoint` writes it, once per module.

    Tests only read these files; a test that lists its own folder writes its own checkpoint there.
    """
    root = tmp_path_factory.mktemp("checkpoints")
    written: dict[tuple, Path] = {}

    def get(name: str, **kwargs: object) -> Path:
        key = (name, tuple(sorted(kwargs.items())))
        if key not in written:
            folder = root / str(len(written))
            folder.mkdir()
            written[key] = _checkpoint(folder, name, **kwargs)
        return written[key]

    return get


#: The three single-file formats: how to export each, where to write it, and how to load it back.
FORMATS = {
    "onnx": (nx.export_onnx, "m.onnx", _onnx_runner),
    "torchscript": (
        nx.export_torchscript,
        "m.torchscript",
        lambda path: load_torchscript(path, trust_code=True)[0],
    ),
    "pt2": (nx.export_pt2, "m.pt2", lambda path: load_pt2(path, trust_code=True)[0]),
}


@pytest.fixture(scope="module")
def family_export(tmp_path_factory, prepared):
    """``family_export(name, fmt)``: the family model's checkpoint, the file written and the export result.

    Exporting is the expensive part of this module, and several tests read the same default exports
    (the family sweep, the metadata round trip, TorchScript without this package): each is made once,
    and only when a test asks for it.
    """
    made: dict[tuple[str, str], tuple[Path, Path, object]] = {}

    def get(name: str, fmt: str) -> tuple[Path, Path, object]:
        if (name, fmt) not in made:
            source = prepared(name, **FAMILY_MODELS[name])
            export, filename, _ = FORMATS[fmt]
            path = tmp_path_factory.mktemp(f"{name}_{fmt}") / filename
            made[name, fmt] = (source, path, export(source, path))
        return made[name, fmt]

    return get


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("name", sorted(FAMILY_MODELS))
def test_every_family_exports_to_every_format_and_agrees(family_export, name, fmt):
    # One test per (family, format), so that no single test carries three exports of a deep model.
    source, path, result = family_export(name, fmt)
    assert result.check.passed and result.check.batches == [1, 2, 7]
    assert result.check.deviation.max_rel <= RTOL
    assert result.metadata["arch"] == name and result.metadata["folded"] is True
    # Independently of the built-in check: load what was written and compare on a fresh batch.
    assert _agreement(FORMATS[fmt][2](path), source) <= RTOL


def test_onnx_file_contract(tmp_path, prepared):
    source = prepared("tau_resnet20")
    result = nx.export_onnx(source, tmp_path / "m.onnx")
    model = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["input"]  # weights are initializers, not inputs
    assert [o.name for o in model.graph.output] == ["logits"]
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch" and not batch.dim_value  # symbolic
    assert len(model.graph.initializer) > 0
    assert not {n.op_type for n in model.graph.node} & {"BatchNormalization"}  # folded
    metadata = read_metadata(model).to_dict()
    checkpoint = nx.load_checkpoint(source)
    assert metadata["preprocessing"] == checkpoint.preprocessing.to_dict()
    assert metadata["labels"] == checkpoint.labels and metadata["model_kwargs"] == checkpoint.model_kwargs
    assert metadata["version"] == nx.__version__ and metadata["onnx"]["opset"] == 18
    assert metadata["fold"]["passed"] and "Scale (tau) into the conv before it" in metadata["fold"]["folded"]
    assert result.details["ir_version"] == model.ir_version
    run = _onnx_runner(tmp_path / "m.onnx")
    for batch_size in (1, 7):
        assert run(torch.randn(batch_size, 3, 32, 32)).shape == (batch_size, 10)


def test_static_batch_and_input_size(tmp_path, prepared):
    source = prepared("resnet20")
    result = nx.export_onnx(source, tmp_path / "s.onnx", static_batch=4, input_size=(40, 40))
    model = onnx.load(str(tmp_path / "s.onnx"))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [4, 3, 40, 40]
    assert result.check.batches == [4]
    assert result.metadata["preprocessing"]["crop"] == 40
    assert result.metadata["input"]["shape"] == [4, 3, 40, 40]  # the metadata says the batch is pinned
    session = ort.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="Got invalid dimensions"):
        session.run(None, {"input": torch.randn(1, 3, 40, 40).numpy()})


def test_both_onnx_exporters_and_the_automatic_choice(tmp_path, prepared):
    source = prepared("preact_resnet20")
    for exporter in ("dynamo", "torchscript"):
        result = nx.export_onnx(source, tmp_path / f"{exporter}.onnx", exporter=exporter)
        assert result.details["exporter"] == exporter and result.check.passed
    with torch.device("meta"):
        deep = nx.create_model("resnet1202")
    assert (
        onnx_export.choose_exporter(deep, "auto", 18)[0] == "torchscript"
    )  # dynamo takes minutes at 1202 layers
    assert onnx_export.choose_exporter(nx.create_model("resnet20"), "auto", 18)[0] == "dynamo"
    assert onnx_export.choose_exporter(nx.create_model("resnet20"), "auto", 13)[0] == "torchscript"
    legacy = nx.export_onnx(source, tmp_path / "op13.onnx", opset=13)
    assert (
        legacy.details["opset"] == 13 and onnx.load(str(tmp_path / "op13.onnx")).opset_import[0].version == 13
    )


def test_an_opset_the_runtime_cannot_run_is_refused_before_writing(tmp_path, prepared):
    source = prepared("resnet20")
    with pytest.raises(
        nx.InputError, match=r"cannot run the export at opset 28 \(it supports opsets up to \d+\)"
    ):
        nx.export_onnx(source, tmp_path / "x.onnx", opset=28)
    assert not (tmp_path / "x.onnx").exists()


def test_torchscript_loads_without_this_package(family_export):
    path = family_export("diracnet_cifar16_1", "torchscript")[1]
    code = (
        "import sys, json, warnings; sys.modules['normresnet_export'] = None\n"  # importing it would fail
        "import torch\n"
        "warnings.simplefilter('ignore')\n"
        f"extra = {{'{contract.EXTRA_FILE}': ''}}\n"
        f"m = torch.jit.load({str(path)!r}, _extra_files=extra)\n"
        "y = m(torch.randn(3, 3, 32, 32))\n"
        f"print(tuple(y.shape), json.loads(extra['{contract.EXTRA_FILE}'])['arch'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(3, 10) diracnet_cifar16_1"


def test_metadata_round_trips_in_every_format(family_export):
    # The default exports of the plain resnet20 checkpoint, shared with the family sweep.
    expected = family_export("resnet20", "onnx")[2].metadata
    scripted = family_export("resnet20", "torchscript")[1]
    assert load_torchscript(scripted, trust_code=True)[1].to_dict() == {
        k: v for k, v in expected.items() if k != "onnx"
    }
    assert (
        load_pt2(family_export("resnet20", "pt2")[1], trust_code=True)[1].to_dict()["preprocessing"]
        == expected["preprocessing"]
    )


def test_metadata_from_before_the_schema_number_is_read_and_a_newer_schema_is_refused(tmp_path):
    legacy = {  # what exports wrote before the metadata carried a schema number
        "arch": "resnet20",
        "model_kwargs": {"num_classes": 10},
        "preprocessing": nx.preprocess.PRESETS["cifar10"].to_dict(),
        "labels": [f"class {i}" for i in range(10)],
        "folded": True,
        "fold": {"folded": {"BatchNorm into the conv before it": 19}, "passed": True},
        "precision": "float32",
        "input": {"name": "input", "shape": ["batch", 3, 32, 32], "dtype": "float32"},
        "output": {"name": "logits", "dtype": "float32"},
        "version": "0.1.0",
        "torch": "2.5.0",
        "onnx": {"exporter": "dynamo", "opset": 18, "ir_version": 10},
    }
    read = ModelMetadata.from_onnx_props({f"normexport.{k}": json.dumps(v) for k, v in legacy.items()})
    assert read.to_dict() == {"schema": 1, **legacy}
    assert read.preprocessing == nx.preprocess.PRESETS["cifar10"] and read.static_batch is None
    assert ModelMetadata.from_onnx_props(read.with_batch(4).to_onnx_props()).static_batch == 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated
        scripted = torch.jit.script(torch.nn.Identity())
        newer = json.dumps({**legacy, "schema": 2})
        torch.jit.save(scripted, str(tmp_path / "new.ts"), _extra_files={contract.EXTRA_FILE: newer})
    with pytest.raises(nx.InputError, match=r"new\.ts was written by a newer normexport \(metadata schema 2"):
        load_torchscript(tmp_path / "new.ts", trust_code=True)


def test_float16_exports(tmp_path, prepared):
    source = prepared("resnet20")
    for export, name in (
        (nx.export_onnx, "h.onnx"),
        (nx.export_torchscript, "h.ts"),
        (nx.export_pt2, "h.pt2"),
    ):
        result = export(source, tmp_path / name, fp16=True)
        assert result.metadata["precision"] == "float16" and result.check.float16
        assert result.check.deviation.max_rel <= contract.FLOAT16_TOLERANCE  # stated float16 tolerance: 1e-2
        assert result.check.deviation.finite
    model = onnx.load(str(tmp_path / "h.onnx"))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float32 in and out
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)


def test_float16_refuses_weights_that_overflow_and_names_the_layer(tmp_path):
    model = nx.create_model("resnet20").eval()
    with torch.no_grad():
        model.layers[1][2].conv2.weight[0, 0, 0, 0] = 1e6
    with pytest.raises(
        nx.InputError, match=r"layers\.1\.2\.conv2\.weight holds values up to 1e\+06.*float16"
    ):
        nx.export_onnx(model, tmp_path / "x.onnx", fold=False, fp16=True, input_size=(3, 32, 32))


def test_a_failed_check_or_an_interrupted_export_writes_nothing(tmp_path, monkeypatch):
    from normresnet_export.export import verify

    source = _checkpoint(tmp_path, "resnet20")
    real = verify.check_artefact

    def strict(*args, **kwargs):
        check = real(*args, **kwargs)
        return type(check)(check.runtime, check.batches, check.deviation, limit=0.0, float16=check.float16)

    for module in ("onnx", "verify"):  # verify: the torch formats' export_one_file
        monkeypatch.setattr(f"normresnet_export.export.{module}.check_artefact", strict)
    with pytest.raises(nx.CheckFailedError, match="nothing was written"):
        nx.export_onnx(source, tmp_path / "a.onnx")
    with pytest.raises(nx.CheckFailedError):
        nx.export_torchscript(source, tmp_path / "a.ts")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("normresnet_export.export.onnx.check_artefact", interrupt)
    monkeypatch.setattr("normresnet_export.export.verify.check_artefact", interrupt)
    with pytest.raises(KeyboardInterrupt):
        nx.export_onnx(source, tmp_path / "b.onnx")
    with pytest.raises(KeyboardInterrupt):
        nx.export_triton(source, tmp_path / "repo")
    with pytest.raises(KeyboardInterrupt):
        nx.export_pt2(source, tmp_path / "b.pt2")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "repo",
        "resnet20.pt",
    ]  # no file, no staging directory
    assert list((tmp_path / "repo").iterdir()) == []


# ----------------------------------------------------------------------------------------- Triton


def test_triton_repository(tmp_path, prepared):
    pytest.importorskip("tritonclient.grpc")
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    source = prepared("tau_resnet20")
    repository = tmp_path / "models"
    result = nx.export_triton(source, repository, max_batch_size=32)
    model_dir = repository / "tau_resnet20"
    assert sorted(str(p.relative_to(model_dir)) for p in model_dir.rglob("*")) == [
        "1",
        "1/model.onnx",
        "config.pbtxt",
    ]
    config = text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert (config.name, config.platform, config.max_batch_size) == ("tau_resnet20", "onnxruntime_onnx", 32)
    assert list(config.input[0].dims) == [3, 32, 32] and list(config.output[0].dims) == [10]
    assert config.HasField("dynamic_batching") and config.instance_group[0].count == 1
    assert "parsed against" in result.details["config_schema"]
    assert _agreement(_onnx_runner(model_dir / "1" / "model.onnx"), source) <= RTOL
    assert read_metadata(model_dir / "1" / "model.onnx").arch == "tau_resnet20"
    assert oct(model_dir.stat().st_mode & 0o777) != oct(0o700)  # readable by the serving user
    other = prepared("resnet20")
    nx.export_triton(other, repository)  # a second model joins the repository
    nx.export_triton(source, repository, name="tau_resnet20")  # re-exporting replaces the model directory
    assert sorted(p.name for p in repository.iterdir()) == ["resnet20", "tau_resnet20"]


def test_triton_refuses_a_directory_that_is_not_a_model_repository(tmp_path, prepared):
    source = prepared("resnet20")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    with pytest.raises(nx.InputError, match="is not a Triton model repository"):
        nx.export_triton(source, tmp_path / "notes")


# ----------------------------------------------------------------------------------------- CLI


def test_cli_export(tmp_path, prepared):
    source = prepared("diracnet_cifar16_1")
    result = runner.invoke(
        app, ["export", str(source), "--format", "onnx", "-o", str(tmp_path / "m.onnx"), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["check"]["passed"] and report["metadata"]["arch"] == "diracnet_cifar16_1"
    # Without --format, the suffix says it: .pt2 is a torch.export program.
    table = runner.invoke(app, ["export", str(source), "-o", str(tmp_path / "m.pt2")])
    assert table.exit_code == 0 and "PASS" in table.stdout and "wrote" in table.stdout
    assert model_kind(tmp_path / "m.pt2") == "pt2"  # told from the content, not the name
    for args, message in [
        (["-f", "triton", "--static-batch", "2", "-o", str(tmp_path / "r")], "static_batch does not apply"),
        (["-f", "torchscript", "--opset", "17", "-o", str(tmp_path / "x")], "opset does not apply"),
        (["-o", str(tmp_path / "x")], "cannot tell the format from the name"),
        (["-o", str(tmp_path / "x.pt")], "cannot tell the format from the name"),
        (
            ["-f", "pt2", "-o", str(tmp_path / "x.onnx")],
            "ends in .onnx, which names the onnx format, but pt2",
        ),
        (["-f", "triton", "-o", str(tmp_path / "x.pt2")], "which names the pt2 format, but triton"),
        (["-f", "onnx", "--layout", "diracnet", "-o", str(tmp_path / "x.pth")], "not both"),
        (
            ["-f", "onnx", "--opset", "28", "-o", str(tmp_path / "x.onnx")],
            "cannot run the export at opset 28",
        ),
        (
            ["-f", "onnx", "--input-size", "2", "2", "-o", str(tmp_path / "x.onnx")],
            "cannot run at input size",
        ),
        (["-f", "onnx", "--opset", "99", "-o", str(tmp_path / "x.onnx")], "opset 99 does not exist yet"),
    ]:
        failed = runner.invoke(app, ["export", str(source), *args])
        assert failed.exit_code == 2, (args, failed.output)
        assert failed.stderr.startswith("error: ") and message in failed.stderr
    garbage = tmp_path / "g.pt"
    garbage.write_bytes(os.urandom(100).replace(b"PK", b"pk").replace(b"\x80", b"\x81"))
    assert (
        runner.invoke(app, ["export", str(garbage), "-f", "onnx", "-o", str(tmp_path / "g.onnx")]).exit_code
        == 2
    )
    assert runner.invoke(app, ["export", str(source), "-f", "onnnx", "-o", "x"]).exit_code == 2
