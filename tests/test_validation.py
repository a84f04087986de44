"""Every number and typed option is checked before any work, and a model is fed only what it takes.

Each hostile value here once did harm further in: ``check --repeats 0`` failed only after the
agreement had run, ``--batch-sizes 100000000`` asked the allocator for a terabyte, ``--threads
100000`` crashed the process, ``export --opset -1`` printed the exporter's whole graph,
``--model-arg zero_init_residual=False`` became the truthy string ``"False"``, an ONNX file
exported at 48×48 given 32×32 images ended in ONNX Runtime's traceback, and a ``last.pt`` copied
from another run silently became the run. Now each ends in exit code 2 and one line that names
the option or file, says what it takes, and writes nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app
from normresnet_export.check import api as check_api
from normresnet_export.export import contract
from normresnet_export.limits import MAX_BATCH, check_float, check_int, thread_limit
from normresnet_export.models import parse_model_args
from normresnet_export.models._keywords import parse_value
from normresnet_export.predict import predict
from normresnet_export.runtime import open_model

runner = CliRunner()
LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _refused(args: list[str], *, expect: str) -> str:
    """Run the CLI; assert exit code 2, one ``error:`` line holding ``expect``, no traceback; the line."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (args, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
    assert expect in lines[0], (args, lines[0])
    assert "Traceback" not in result.output and result.stdout == "", (args, result.stdout[:300])
    return lines[0]


# ---------------------------------------------------------------------------------------- artefacts


def _foreign_onnx(
    path: Path, *, side: int = 40, dtype: int = TensorProto.FLOAT, batch: int | str = "N"
) -> Path:
    """An ONNX classifier written by another tool: no normexport metadata, input ``[batch, 3, side, side]``.

    Global average pooling and a 3×10 matrix: it runs on any size, so only its declared input
    says what it takes (as in a real foreign file exported at a fixed size).
    """
    weight = numpy_helper.from_array(np.linspace(-1, 1, 30, dtype=np.float32).reshape(3, 10), "w")
    nodes = [
        *(
            [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT)]
            if dtype != TensorProto.FLOAT
            else []
        ),
        helper.make_node("GlobalAveragePool", ["xf" if dtype != TensorProto.FLOAT else "x"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "foreign",
        [helper.make_tensor_value_info("x", dtype, [batch, 3, side, side])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A resnet20 checkpoint (CIFAR-10 preprocessing), its ONNX exports at 32×32 and 48×48, images."""
    root = tmp_path_factory.mktemp("validation")
    torch.manual_seed(0)
    model = nx.create_model("resnet20").eval()
    checkpoint = nx.save_checkpoint(
        root / "m.pt", model, arch="resnet20", preprocessing=nx.preprocess.PRESETS["cifar10"], labels=LABELS
    )
    found = {"checkpoint": checkpoint, "root": root}
    found["onnx32"] = nx.export_onnx(checkpoint, root / "m32.onnx", exporter="torchscript").path
    found["onnx48"] = nx.export_onnx(
        checkpoint, root / "m48.onnx", input_size=(48, 48), exporter="torchscript"
    ).path
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((36, 40, 3)) * 255).astype(np.uint8)).save(images / f"img{i}.png")
    found["images"] = images
    return found


# ------------------------------------------------------ item 6: the model's input against what is fed


def test_predict_refuses_a_preprocessing_the_onnx_model_does_not_take(files):
    line = _refused(
        ["predict", str(files["onnx48"]), str(files["images"]), "--preprocessing", "cifar10"],
        expect="takes float32 inputs of batch×3×48×48, but the --preprocessing given makes float32 images of "
        "3×32×32",
    )
    assert '"input_size" is [3, 48, 48]' in line and "leave --preprocessing out" in line
    _refused(
        ["predict", str(files["onnx32"]), str(files["images"]), "--preprocessing", "imagenet"],
        expect="takes float32 inputs of batch×3×32×32, but the --preprocessing given makes float32 images of "
        "3×224×224",
    )
    # Its own preprocessing (recorded at 48×48 by the export) fits.
    assert (
        runner.invoke(app, ["predict", str(files["onnx48"]), str(files["images"]), "--json"]).exit_code == 0
    )


def test_predict_refuses_imagenet_preprocessing_for_a_cifar_checkpoint(files):
    _refused(
        ["predict", str(files["checkpoint"]), str(files["images"]), "--preprocessing", "imagenet"],
        expect="takes float32 inputs of batch×3×32×32, but the --preprocessing given makes float32 images of "
        "3×224×224",
    )


def test_a_foreign_onnx_file_is_checked_against_its_own_graph(files, tmp_path):
    sized = _foreign_onnx(tmp_path / "foreign40.onnx")
    line = _refused(
        ["predict", str(sized), str(files["images"]), "--preprocessing", "cifar10"],
        expect="onnxruntime (foreign40.onnx) takes float32 inputs of N×3×40×40",
    )
    assert '"input_size" is [3, 40, 40]' in line
    half = _foreign_onnx(tmp_path / "half.onnx", side=32, dtype=TensorProto.FLOAT16)
    _refused(
        ["predict", str(half), str(files["images"]), "--preprocessing", "cifar10"],
        expect="takes float16 inputs of N×3×32×32, but the --preprocessing given makes float32 images",
    )
    single = _foreign_onnx(tmp_path / "single.onnx", side=32, batch=1)
    _refused(
        ["predict", str(single), str(files["images"]), "--preprocessing", "cifar10"],
        expect="takes batches of exactly 1; pass --batch-size 1",
    )
    fits = runner.invoke(
        app, ["predict", str(single), str(files["images"]), "--preprocessing", "cifar10", "-b", "1", "--json"]
    )
    assert fits.exit_code == 0, fits.output
    assert len(json.loads(fits.stdout)["predictions"]) == 3


def test_check_refuses_an_artefact_of_another_input_before_comparing(files, tmp_path, monkeypatch):
    foreign = _foreign_onnx(tmp_path / "foreign40.onnx")
    monkeypatch.setattr(check_api, "agreements", _never("the agreement"))
    _refused(
        ["check", str(files["checkpoint"]), str(foreign), "--no-latency", "--samples", "4"],
        expect="takes float32 inputs of N×3×40×40, but the checkpoint takes float32 inputs of 3×32×32",
    )
    _refused(
        ["check", str(files["checkpoint"]), str(files["onnx48"]), "--no-latency", "--samples", "4"],
        expect="takes float32 inputs of batch×3×48×48, but the checkpoint takes float32 inputs of 3×32×32",
    )


# --------------------------------------------------------- item 7: every number before any work


def _never(what: str):
    def fail(*args, **kwargs):
        raise AssertionError(f"{what} ran although an option was out of range")

    return fail


@pytest.mark.parametrize(
    ("options", "expect"),
    [
        (["--repeats", "0"], "--repeats must be an integer from 1 to 100, got 0"),
        (["--repeats", "-1"], "--repeats must be an integer from 1 to 100, got -1"),
        (
            ["--batch-sizes", "100000000"],
            f"--batch-sizes must be an integer from 1 to {MAX_BATCH}, got 100000000",
        ),
        (["--batch-sizes", "0,32"], "--batch-sizes must be an integer from 1 to"),
        (["--samples", "0"], "--samples must be an integer from 1 to 174762, got 0"),
        (["--samples", "1000000000"], "--samples must be an integer from 1 to 174762"),
        (["--threads", "100000"], f"--threads must be an integer from 1 to {thread_limit()}, got 100000"),
        (["--threads", "0"], "--threads must be an integer from 1 to"),
    ],
)
def test_check_refuses_numbers_out_of_range_before_opening_anything(files, monkeypatch, options, expect):
    monkeypatch.setattr(check_api, "open_model", _never("opening a model"))
    _refused(["check", str(files["checkpoint"]), str(files["onnx32"]), *options], expect=expect)


def test_the_python_api_refuses_the_same_numbers(files, monkeypatch):
    monkeypatch.setattr(check_api, "open_model", _never("opening a model"))
    with pytest.raises(nx.InputError, match=r"^--repeats must be an integer from 1 to 100, got 0$"):
        check_api.check(files["checkpoint"], [files["onnx32"]], repeats=0)
    with pytest.raises(nx.InputError, match=r"^budget must be a finite number greater than 0"):
        check_api.check(files["checkpoint"], budget=float("nan"))
    with pytest.raises(nx.InputError, match="--threads must be an integer"):
        open_model(files["checkpoint"], threads=100_000)
    with pytest.raises(nx.InputError, match=r"--opset must be an integer from 7 to \d+, got -1"):
        nx.export_onnx(files["checkpoint"], files["root"] / "never.onnx", opset=-1)
    assert not (files["root"] / "never.onnx").exists()
    backend = open_model(files["onnx32"])
    for options, expect in [
        ({"top_k": 0}, "--top-k must be an integer of at least 1, got 0"),
        ({"batch_size": 10**8}, f"--batch-size must be an integer from 1 to {MAX_BATCH}"),
        ({"workers": 0}, "--workers must be an integer from 1 to"),
        ({"workers": 2.5}, "--workers must be an integer from 1 to"),
    ]:
        with pytest.raises(nx.InputError, match=expect):
            predict(backend, [], **options)


@pytest.mark.parametrize(
    ("options", "expect"),
    [
        (["--opset", "-1"], "--opset must be an integer from 7 to"),
        (["--opset", "6"], "--opset must be an integer from 7 to"),
        (["--static-batch", "0"], f"--static-batch must be an integer from 1 to {MAX_BATCH}, got 0"),
        (["--static-batch", "100000000"], "--static-batch must be an integer from 1 to"),
        (["--input-size", "0", "32"], "each --input-size side must be an integer from 1 to 1024, got 0"),
        (["--input-size", "100000", "100000"], "each --input-size side must be an integer from 1 to 1024"),
    ],
)
def test_export_refuses_numbers_out_of_range_before_loading(files, tmp_path, monkeypatch, options, expect):
    from normresnet_export.export import source

    monkeypatch.setattr(source, "load_checkpoint", _never("loading the checkpoint"))
    output = tmp_path / "m.onnx"
    _refused(["export", str(files["checkpoint"]), "-f", "onnx", "-o", str(output), *options], expect=expect)
    assert list(tmp_path.iterdir()) == []


def test_triton_max_batch_size_is_bounded(files, tmp_path):
    _refused(
        [
            "export",
            str(files["checkpoint"]),
            "-f",
            "triton",
            "-o",
            str(tmp_path / "repo"),
            "--max-batch-size",
            "0",
        ],
        expect="--max-batch-size must be an integer from 1 to",
    )
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize(
    ("options", "expect"),
    [
        (["--workers", "-1"], "--workers must be an integer from 1 to"),
        (["--workers", "0"], "--workers must be an integer from 1 to"),
        (["--workers", "100000"], "--workers must be an integer from 1 to"),
        (["--top-k", "0"], "--top-k must be an integer of at least 1, got 0"),
        (["--batch-size", "100000000"], f"--batch-size must be an integer from 1 to {MAX_BATCH}"),
        (["--threads", "100000"], "--threads must be an integer from 1 to"),
    ],
)
def test_predict_refuses_numbers_out_of_range_before_opening_the_model(files, options, expect):
    missing = files["root"] / "no-such-model.onnx"  # opening it would be the error, were it reached first
    _refused(["predict", str(missing), str(files["images"]), *options], expect=expect)


_TRAIN = [
    "train",
    "resnet20",
    "--dataset",
    "digits",
    "--limit-train",
    "8",
    "--limit-test",
    "4",
    "--epochs",
    "1",
]


@pytest.mark.parametrize(
    ("options", "expect"),
    [
        (["--model-arg", "drop_rate=abc"], "--model-arg drop_rate='abc': drop_rate takes a finite number"),
        (["--model-arg", "drop_rate=5"], "cannot be built with drop_rate=5.0: dropout probability"),
        (["--model-arg", "zero_init_residual=maybe"], "zero_init_residual takes true or false"),
        (["--model-arg", "shortcut=D"], "shortcut takes one of 'A', 'B', 'C', 'conv'"),
        (
            ["--model-arg", "colour=red"],
            "--model-arg colour: no such keyword; resnet20 takes drop_rate, num_classes",
        ),
        (["--model-arg", "shortcut=A", "--model-arg", "shortcut=B"], "--model-arg shortcut is given twice"),
        (["--seed", "18446744073709551616"], "--seed must be an integer from 0 to 4294967295"),
        (["--seed", "-1"], "--seed must be an integer from 0 to 4294967295, got -1"),
        (["--workers", "100000"], "--workers must be an integer from 0 to"),
        (["--batch-size", "100000000"], f"--batch-size must be an integer from 1 to {MAX_BATCH}"),
    ],
)
def test_train_refuses_bad_numbers_and_model_arguments_before_any_work(tmp_path, options, expect):
    run = tmp_path / "run"
    _refused([*_TRAIN, "--out", str(run), *options], expect=expect)
    assert not run.exists()


def test_import_parses_model_arguments_as_the_registry_types_them(tmp_path):
    missing = tmp_path / "never-read.pth"  # the value is refused before the file is looked at
    _refused(
        ["import", str(missing), "-o", str(tmp_path / "x.pt"), "--model-arg", "tau=abc"],
        expect="--model-arg tau='abc': tau takes a finite number",
    )
    _refused(
        [
            "import",
            str(missing),
            "-o",
            str(tmp_path / "x.pt"),
            "--arch",
            "resnet20",
            "--model-arg",
            "tau=0.1",
        ],
        expect="--model-arg tau: no such keyword; resnet20 takes",
    )
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (
            ["gradnorm", "resnet20", "--data", "random", "--batch-size", "100000000"],
            "--batch-size must be an integer from 2",
        ),
        (
            ["gradnorm", "resnet20", "--data", "random", "--batch-size", "1"],
            "--batch-size must be an integer from 2",
        ),
        (["gradnorm", "resnet20", "--seed", "-1"], "--seed must be an integer from 0 to 4294967295, got -1"),
        (
            ["spectrum", "resnet20", "--transitions", "--input-size", "100000", "100000"],
            "each --input-size side",
        ),
        (
            ["spectrum", "resnet20", "--transitions", "--tolerance", "-1"],
            "--tolerance must be a finite number of at least 0",
        ),
        (
            ["spectrum", "resnet20", "--transitions", "--tolerance", "nan"],
            "--tolerance must be a finite number",
        ),
    ],
)
def test_analyze_refuses_numbers_out_of_range_before_building(monkeypatch, args, expect):
    from normresnet_export.analysis import api

    monkeypatch.setattr(api, "load_analysed_model", _never("building the model"))
    _refused(["analyze", *args], expect=expect)


def test_the_range_checks_themselves():
    assert check_int("--n", np.int64(3), low=1) == 3 and type(check_int("--n", np.int64(3), low=1)) is int
    for value in (True, 2.0, "2", None):
        with pytest.raises(nx.InputError, match="--n must be an integer from 1 to 4"):
            check_int("--n", value, low=1, high=4)
    assert check_float("--x", 0, low=0) == 0.0
    for value in (float("inf"), float("nan"), -0.5, "1"):
        with pytest.raises(nx.InputError, match="--x must be a finite number of at least 0"):
            check_float("--x", value, low=0)
    assert contract.check_opset(contract.DEFAULT_OPSET) == contract.DEFAULT_OPSET
    with pytest.raises(nx.InputError, match="--opset 99 does not exist yet"):
        contract.check_opset(99)


# ----------------------------------------------- item 8: --model-arg values parsed as the builder types them


def test_model_args_are_parsed_against_the_builders_annotations():
    parsed = parse_model_args(
        ["zero_init_residual=False", "drop_rate=0.3", "shortcut=A", "num_classes=7"], arch="resnet20"
    )
    assert parsed == {"zero_init_residual": False, "drop_rate": 0.3, "shortcut": "A", "num_classes": 7}
    assert type(parsed["zero_init_residual"]) is bool and type(parsed["num_classes"]) is int
    for spelling, value in [("true", True), ("Yes", True), ("1", True), ("off", False), ("FALSE", False)]:
        assert (
            parse_model_args([f"zero_init_residual={spelling}"], arch="resnet20")["zero_init_residual"]
            is value
        )
    assert parse_model_args(["tau=0.136"]) == {"tau": 0.136}  # import: typed as the registry types tau
    with pytest.raises(
        nx.InputError, match=r"num_classes takes an integer \(resnet20's default: num_classes=10\)"
    ):
        parse_model_args(["num_classes=2.5"], arch="resnet20")
    # Optional and enum annotations (none of today's builders use them, so the parser is shown directly).
    assert parse_value("none", int | None) is None and parse_value("3", int | None) == 3
    with pytest.raises(ValueError):
        parse_value("inf", float)


def test_create_model_checks_value_types_for_python_callers():
    info = nx.model_info("resnet20")
    # Text reads as --model-arg reads it: the "False" a config.json of the old parsing holds is False.
    assert info.resolve_kwargs(zero_init_residual="False")["zero_init_residual"] is False
    with pytest.raises(nx.InputError, match=r"zero_init_residual takes true or false, got 'maybe' \(str\)"):
        nx.create_model("resnet20", zero_init_residual="maybe")
    with pytest.raises(nx.InputError, match=r"zero_init_residual takes true or false, got 1 \(int\)"):
        nx.create_model("resnet20", zero_init_residual=1)
    with pytest.raises(nx.InputError, match="drop_rate takes a finite number, got nan"):
        nx.create_model("resnet20", drop_rate=float("nan"))
    assert nx.model_info("tau_resnet20").resolve_kwargs(tau=1)["tau"] == 1  # an int is a fine float
    assert isinstance(nx.create_model("tau_resnet20", tau=1), torch.nn.Module)


def test_zero_init_residual_false_reaches_the_model_and_config_json(tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(
        app, [*_TRAIN, "--batch-size", "4", "--out", str(run), "--model-arg", "zero_init_residual=False"]
    )
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["model_kwargs"]["zero_init_residual"] is False
    assert nx.load_checkpoint(run / "last.pt").model_kwargs["zero_init_residual"] is False


# ------------------------------------------------------------------ item 12: threads bounded by the CPU


def test_threads_are_bounded_by_the_cpu(files):
    _refused(
        ["predict", str(files["checkpoint"]), str(files["images"]), "--threads", "100000"],
        expect=f"--threads must be an integer from 1 to {thread_limit()}, got 100000; this process may use",
    )
    with pytest.raises(nx.InputError, match="--threads must be an integer"):
        open_model(files["onnx32"], threads=512 * thread_limit())
    previous = torch.get_num_threads()
    try:
        assert open_model(files["checkpoint"], threads=thread_limit()).device == "cpu"
    finally:
        torch.set_num_threads(previous)


# ------------------------------------------------------- minor: --workers 0, and --resume of another run


def test_train_workers_zero_loads_in_the_main_process(tmp_path):
    from trainers import TrainConfig
    from trainers.distributed import Topology
    from trainers.settings import resolve_settings

    data = tmp_path / "shapes"
    for label in ("red", "blue"):
        (data / label).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (36, 36), (200, 30, 30) if label == "red" else (30, 30, 200)).save(
                data / label / f"{i}.png"
            )
    request = {"arch": "resnet20", "dataset": "folder", "data_dir": data, "progress": False}
    default = resolve_settings(TrainConfig(**request, out=tmp_path / "a"), Topology())
    honoured = resolve_settings(TrainConfig(**request, out=tmp_path / "b", workers=0), Topology())
    assert default.workers > 0 and honoured.workers == 0 and honoured.record()["workers"] == 0


def _train(run: Path, *options: str) -> None:
    result = runner.invoke(app, [*_TRAIN, "--batch-size", "4", "--out", str(run), *options])
    assert result.exit_code == 0, result.output


def test_resume_refuses_a_last_pt_of_another_run(tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    _train(ours)
    _train(theirs, "--seed", "7", "--lr", "0.05")
    shutil.copy(theirs / "last.pt", ours / "last.pt")
    before = (ours / "config.json").read_bytes()
    line = _refused(
        [*_TRAIN, "--batch-size", "4", "--out", str(ours), "--resume", "--epochs", "2"],
        expect=f"--resume: {ours / 'last.pt'} belongs to another run than {ours / 'config.json'}",
    )
    assert (
        "seed 7 in last.pt vs 666 in config.json" in line
        and "lr 0.05 in last.pt vs 0.1 in config.json" in line
    )
    assert (ours / "config.json").read_bytes() == before  # not rewritten
    other = tmp_path / "other"
    result = runner.invoke(
        app, ["train", "tau_resnet20", *_TRAIN[2:], "--batch-size", "4", "--out", str(other)]
    )
    assert result.exit_code == 0, result.output
    shutil.copy(other / "last.pt", ours / "last.pt")
    _refused(
        [*_TRAIN, "--batch-size", "4", "--out", str(ours), "--resume"],
        expect=f"{ours / 'last.pt'} is a checkpoint of 'tau_resnet20' but {ours / 'config.json'} a run of "
        "'resnet20'",
    )
    assert (ours / "config.json").read_bytes() == before
