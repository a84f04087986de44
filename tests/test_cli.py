"""The `normexport` command line: output formats, filters, exit codes and help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app

runner = CliRunner()


def test_models_json_lists_every_model_of_every_family():
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == nx.list_models()
    assert {r["family"] for r in rows} == set(nx.FAMILIES)
    resnet20 = next(r for r in rows if r["name"] == "resnet20")
    assert resnet20["parameters"] == 272_474 and resnet20["input_size"] == [3, 32, 32]


def test_models_table_never_truncates_names(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    result = runner.invoke(app, ["models", "--family", "leno"])
    assert result.exit_code == 0
    assert "leno_baseline_preactresnet200" in result.stdout
    assert "151,932,200" in result.stdout  # lenoresnet500
    assert "…" not in result.stdout


def test_models_filters():
    result = runner.invoke(app, ["models", "preact_wide_*", "--json"])
    assert {r["name"] for r in json.loads(result.stdout)} == set(nx.list_models("preact_wide_*"))
    result = runner.invoke(app, ["models", "--kind", "imagenet", "--family", "diracnet", "--json"])
    assert [r["name"] for r in json.loads(result.stdout)] == ["diracnet18", "diracnet34"]
    result = runner.invoke(app, ["models", "nothing_like_this*"])
    assert result.exit_code == 0 and "no registered model matches" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models", "--family", "vgg"], "error: unknown family 'vgg'; expected one of torch-resnet"),
        (["models", "--kind", "mnist"], "error: unknown dataset kind 'mnist'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.strip() == result.stderr.strip().splitlines()[0]
    assert result.stderr.startswith(message)
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [["--help"], ["models", "--help"]])
def test_help_is_clean(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0
    assert "Usage" in result.stdout and "Traceback" not in result.output


def test_unknown_command_is_a_usage_error():
    result = runner.invoke(app, ["modles"])
    assert result.exit_code == 2
    assert (
        result.stderr == "error: No such command 'modles'. Did you mean 'models'?; see 'normexport --help'\n"
    )


# Typer's own usage errors (a bad choice, a missing or unknown option or argument) on every command.
USAGE_ERRORS = [
    (["models", "--json", "extra", "more"], "Got unexpected extra argument(s) (more)", "models"),
    (["train", "resnet20"], "Missing option '--dataset'", "train"),
    (["import", "x.pth"], "Missing option '--output' / '-o'", "import"),
    (["fold", "x.pt"], "Missing option '--output' / '-o'", "fold"),
    (["export", "x.pt", "-f", "tflite", "-o", "y"], "'tflite' is not one of 'onnx', 'torchscript'", "export"),
    (["predict", "m.onnx", "a.png", "--device", "gpu"], "'gpu' is not one of 'auto', 'cpu'", "predict"),
    (
        ["check", "--samples", "many"],
        "Invalid value for '--samples'",
        "check",
    ),
    (["analyze", "gradnorm", "resnet20", "--bogus"], "No such option: --bogus", "analyze gradnorm"),
    (["analyze", "spectrum"], "Missing argument 'MODEL'", "analyze spectrum"),
]


@pytest.mark.parametrize(("args", "message", "command"), USAGE_ERRORS, ids=[c for *_, c in USAGE_ERRORS])
def test_typer_usage_errors_are_one_line_in_our_format(args, message, command):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert result.stderr.rstrip().endswith(f"; see 'normexport {command} --help'")


def test_no_arguments_still_prints_the_help():
    result = runner.invoke(app, [])
    assert result.exit_code == 2 and "Usage" in result.output and "error:" not in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith(f"normexport {nx.__version__} (torch ")


def test_installed_console_script_runs():
    script = Path(sys.executable).with_name("normexport")
    done = subprocess.run(
        [str(script), "models", "--family", "procresnet", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert [r["name"] for r in json.loads(done.stdout)][:2] == ["procresnet166", "procresnet274"]
