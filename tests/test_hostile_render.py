"""What reaches the terminal: text from files is shown literally, and ONNX Runtime keeps quiet.

File names, class labels and the error messages quoting them come from outside. rich markup in
them (``[bold]``, ``[white on white]``) must be shown as written, and a control character (the
ESC of ``\\x1b[2J``, which clears a terminal) must never reach stdout or stderr raw. ONNX
Runtime prints an "EP Error" banner on stdout when the TensorRT provider fails to load; under
``--json`` nothing but the document may reach stdout, so that is checked through real processes
(the banner comes from outside Python's ``sys.stdout`` too).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app
from normresnet_export._render import Column, print_table, printable
from normresnet_export.runtime.ort_backend import captured_output

runner = CliRunner()
ESC = "\x1b"
CLEAR = f"{ESC}[2J"
#: Labels that rich would otherwise interpret: hidden text, a style, an emoji code, a link.
MARKUP_LABELS = [
    "[white on white]hidden[/]",
    "[bold]bold[/bold]",
    ":thumbs_up:",
    "[link=https://example.com]link[/link]",
    *[f"class {i}" for i in range(6)],
]


def _image(path: Path, seed: int = 0) -> Path:
    pixels = (np.random.default_rng(seed).random((32, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, format="PNG")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A resnet20 checkpoint whose labels are rich markup, its ONNX export, and hostile image names."""
    root = tmp_path_factory.mktemp("hostile-render")
    torch.manual_seed(0)
    checkpoint = nx.save_checkpoint(
        root / "m.pt",
        nx.create_model("resnet20").eval(),
        arch="resnet20",
        preprocessing=nx.preprocess.PRESETS["cifar10"],
        labels=MARKUP_LABELS,
    )
    images = root / "images"
    images.mkdir()
    _image(images / "[bold]x.png")
    _image(images / f"e{CLEAR}z.png", seed=1)
    (images / f"bad{ESC}[31m.png").write_bytes(b"not an image")
    onnx_file = nx.export_onnx(checkpoint, root / "m.onnx", exporter="torchscript").path
    return {"checkpoint": checkpoint, "onnx": onnx_file, "images": images}


def _one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def test_printable_escapes_every_control_character_and_keeps_the_rest():
    hostile = f"a{CLEAR}b\x9b1m\u202eevil\nnext\x7f\x00"
    shown = printable(hostile)
    assert shown == "a\\x1b[2Jb\\x9b1m\\u202eevil\\x0anext\\x7f\\x00"
    assert printable("[bold]x.png · 10×10 ünïcödé") == "[bold]x.png · 10×10 ünïcödé"


def test_a_table_shows_markup_and_escapes_literally(capsys):
    print_table([{"name": f"[bold]x{CLEAR}"}], [Column("name", "[red]header[/]")], title="[b]t")
    out = capsys.readouterr().out
    assert "[bold]x\\x1b[2J" in out and "[red]header[/]" in out and "[b]t" in out and ESC not in out


def test_predict_shows_file_names_and_labels_as_written(files):
    result = runner.invoke(app, ["predict", str(files["checkpoint"]), str(files["images"]), "-k", "10"])
    assert result.exit_code == 1  # the undecodable image
    table = result.stdout
    assert "[bold]x.png" in table
    for label in MARKUP_LABELS:
        assert label in table, label
    assert "e\\x1b[2Jz.png" in table
    assert (
        _one_line(result.stderr) == f"error: {files['images']}/bad\\x1b[31m.png: not an image Pillow can read"
    )
    assert ESC.encode() not in result.stdout_bytes + result.stderr_bytes


def test_predict_json_escapes_names_and_labels(files):
    result = runner.invoke(
        app, ["predict", str(files["onnx"]), str(files["images"]), "-k", "10", "--json", "--device", "cpu"]
    )
    assert result.exit_code == 1
    assert ESC.encode() not in result.stdout_bytes + result.stderr_bytes
    report = json.loads(result.stdout)
    names = {Path(p["name"]).name for p in report["predictions"]}
    assert names == {"[bold]x.png", f"e{CLEAR}z.png", f"bad{ESC}[31m.png"}
    predicted = next(p for p in report["predictions"] if p["top"])
    assert {entry["label"] for entry in predicted["top"]} == set(MARKUP_LABELS)


def test_an_error_quoting_a_file_name_prints_no_escape(files, tmp_path):
    image = _image(tmp_path / "fine.png")
    result = runner.invoke(app, ["predict", str(tmp_path / f"model{CLEAR}.onnx"), str(image)])
    assert result.exit_code == 2
    assert _one_line(result.stderr).startswith(f"error: {tmp_path}/model\\x1b[2J.onnx does not exist")
    assert ESC.encode() not in result.stdout_bytes + result.stderr_bytes
    folded = runner.invoke(
        app, ["fold", str(tmp_path / f"in{ESC}]0;title{ESC}\\.pt"), "-o", str(tmp_path / "o.pt")]
    )
    assert folded.exit_code == 2 and "in\\x1b]0;title\\x1b\\.pt" in _one_line(folded.stderr)
    assert ESC.encode() not in folded.stderr_bytes and not (tmp_path / "o.pt").exists()


def test_native_output_is_captured_while_a_session_is_created(capfd):
    with captured_output():
        os.write(1, b"native stdout\n")
        os.write(2, b"native stderr\n")
        print("python stdout")
    print("after")
    out, err = capfd.readouterr()
    assert out == "after\n" and err == ""


# ------------------------------------------------------------------- ONNX Runtime, real processes


def _normexport(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("normexport")
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=300)


def _reason(stderr: str) -> str:
    """The one line a failed run may leave on stderr."""
    return _one_line(stderr)


def test_tensorrt_under_json_leaves_stdout_to_the_document(files):
    image = str(next(files["images"].glob("*x.png")))
    strict = _normexport("predict", str(files["onnx"]), image, "--device", "tensorrt", "--json")
    if strict.returncode == 0:  # a machine where ONNX Runtime's TensorRT provider loads
        assert json.loads(strict.stdout)["backend"]["provider"] == "TensorrtExecutionProvider"
        assert strict.stderr == ""
    else:
        assert strict.returncode == 2 and strict.stdout == ""
        assert _reason(strict.stderr).startswith(
            "error: tensorrt was requested but ONNX Runtime runs m.onnx on"
        )
    for device in ("tensorrt", "cuda"):
        allowed = _normexport(
            "predict", str(files["onnx"]), image, "--device", device, "--allow-cpu-fallback", "--json"
        )
        assert allowed.returncode == 0, allowed.stderr
        assert allowed.stderr == ""
        report = json.loads(allowed.stdout)  # the whole of stdout is one document
        backend = report["backend"]
        assert (backend["device"] == "cpu") == (backend["fallback"] is not None), backend
        assert "\n" not in (backend["fallback"] or "")


def test_check_under_json_leaves_stdout_to_the_document(files):
    common = [str(files["checkpoint"]), str(files["onnx"]), "--samples", "4", "--no-latency", "--json"]
    allowed = _normexport("check", *common, "--device", "cuda", "--allow-cpu-fallback")
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stderr == ""
    report = json.loads(allowed.stdout)
    assert report["passed"] and {a["label"] for a in report["agreement"]} == {
        "eager (folded)",
        "onnxruntime (m.onnx)",
    }
    tensorrt = _normexport("check", *common, "--device", "tensorrt", "--allow-cpu-fallback")
    assert tensorrt.returncode == 2 and tensorrt.stdout == ""
    assert _reason(tensorrt.stderr) == (
        "error: --device tensorrt applies to ONNX models (ONNX Runtime's TensorRT provider)"
    )
