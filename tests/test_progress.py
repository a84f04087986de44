"""Long steps say which stage they are in: on a terminal's stderr only, never under ``--json`` or in a pipe.

The stage hook itself is checked in-process; the spinner is checked end to end, with the
command's stderr a real pseudo-terminal (``pty``) and its stdout a pipe.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app
from normresnet_export._progress import listening, stage

ROOT = Path(__file__).resolve().parents[1]
#: Runs several ``normexport`` commands in one process (torch is imported once), each command's
#: stderr output followed by a marker line, so the test can tell the commands apart.
_DRIVER = """
import json, sys
from cli import app
for args in json.loads(sys.argv[1]):
    try:
        app(args, prog_name="normexport", standalone_mode=False)
    except SystemExit as exc:
        print("exit", exc.code, file=sys.__stdout__)
    sys.stderr.write("\\n@@end@@\\n")
    sys.stderr.flush()
    print("@@end@@", flush=True)
"""
_END = "@@end@@"


def test_stages_reach_the_listener_and_cost_nothing_without_one():
    stage("nobody listens")  # no listener: a no-op
    heard: list[str] = []
    torch.manual_seed(0)
    with listening(heard.append):
        nx.fold_model(nx.create_model("resnet20").eval())
    assert heard == ["trace", "fold", "verify"]
    with listening(heard.append):
        with listening(lambda _: None):  # the inner listener replaces the outer one, then gives it back
            stage("inner")
        stage("outer")
    assert heard[-1] == "outer" and "inner" not in heard


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("progress") / "m.pt"
    nx.save_checkpoint(
        path,
        nx.create_model("resnet20").eval(),
        arch="resnet20",
        preprocessing=nx.preprocess.PRESETS["cifar10"],
    )
    return path


def _run(commands: list[list[str]]) -> tuple[list[str], list[str]]:
    """Run ``normexport`` once per command in one process, stderr a pseudo-terminal, stdout a pipe.

    Returns each command's stdout and stderr (what the terminal received, escape codes included).
    """
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160"}
    env.pop("NO_COLOR", None)
    main, secondary = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal closed (EIO)
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    process = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, json.dumps(commands)],
        stdout=subprocess.PIPE,
        stderr=secondary,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        env=env,
    )
    os.close(secondary)
    stdout, _ = process.communicate(timeout=600)
    reader.join(timeout=10)
    os.close(main)
    stderr = b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")
    assert process.returncode == 0, stderr[-2000:]
    outs, errs = stdout.decode().split(_END)[:-1], stderr.split(_END)[:-1]
    assert len(outs) == len(errs) == len(commands), stderr[-2000:]
    return outs, errs


def test_a_spinner_names_the_stages_on_a_terminal_only(checkpoint, tmp_path):
    weights = tmp_path / "weights.pt"
    torch.save(nx.create_model("resnet20").state_dict(), weights)
    imported = ["import", str(weights), "--from", "torch-resnet", "--arch", "resnet20"]
    # one export (TorchScript: the same stages as ONNX, a quicker exporter), fold and import
    outs, errs = _run(
        [
            ["export", str(checkpoint), "-o", str(tmp_path / "m.ts")],
            ["fold", str(checkpoint), "-o", str(tmp_path / "f.pt")],
            [*imported, "-o", str(tmp_path / "i.pt")],
            [*imported, "-o", str(tmp_path / "k.pt"), "--json"],
        ]
    )
    export, fold, import_, import_json = errs
    for name in ("load", "trace", "fold", "verify", "export", "write"):
        assert f"exporting: {name}" in export, (name, export[-2000:])
    assert "wrote" in outs[0] and "exporting" not in outs[0]
    for name in ("load", "trace", "fold", "verify"):
        assert f"folding: {name}" in fold, (name, fold[-2000:])
    assert "importing: read" in import_ and "importing: convert" in import_, import_[-2000:]
    # --json: one JSON document on stdout and nothing at all on the terminal
    assert import_json.strip() == "" and json.loads(outs[3])["arch"] == "resnet20"


def test_nothing_is_drawn_in_a_pipe(checkpoint, tmp_path):
    runner = CliRunner()  # its stderr is not a terminal
    done = runner.invoke(app, ["fold", str(checkpoint), "-o", str(tmp_path / "f.pt")])
    assert done.exit_code == 0 and done.stderr == "", done.stderr
