"""What an output path may do: become that output, and nothing else.

No writer (fold, export in every format, import, the plots, train) replaces one of its inputs, a
link, a device node, a FIFO or a directory, or creates directories it was not asked for; bad
paths fail before any work. Staging areas carry their writer's host and pid: a killed writer's
are removed (and reported) by the next write there, a live one's are left alone, and no loader
ever serves one as a model.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch
from onnx import TensorProto, helper
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app
from normresnet_export import _io
from normresnet_export.runtime import open_model

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def _refused(result, *needles: str) -> str:
    """Exit code 2 and one ``error:`` line (no traceback) holding every needle; the line."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    model = nx.create_model("resnet20").eval()
    return nx.save_checkpoint(
        tmp_path / "in.pt", model, arch="resnet20", preprocessing=nx.preprocess.PRESETS["cifar10"]
    )


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped (a killed writer's, as far as a name tells)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _staging(directory: Path, name: str, pid: int, *, host: str | None = None, suffix: str = "tmp") -> Path:
    return directory / f".{name}.normexport-{host or _io._host()}-{pid}-abcd1234.{suffix}"


# ------------------------------------------------------------------------------- inputs are kept


def test_fold_refuses_to_write_over_its_input_even_through_a_hard_link(tmp_path, checkpoint):
    before = checkpoint.read_bytes()
    os.link(checkpoint, tmp_path / "link.pt")
    _refused(runner.invoke(app, ["fold", str(checkpoint), "-o", str(checkpoint)]), str(checkpoint), "input")
    line = _refused(runner.invoke(app, ["fold", str(checkpoint), "-o", str(tmp_path / "link.pt")]), "link.pt")
    assert "same file as the input" in line
    assert checkpoint.read_bytes() == before and not nx.load_checkpoint(checkpoint).folded


@pytest.mark.parametrize("format_", ["torchscript", "onnx", "pt2", "triton"])
def test_export_refuses_to_replace_the_checkpoint_it_exports(tmp_path, checkpoint, format_):
    before = checkpoint.read_bytes()
    output = checkpoint if format_ != "triton" else tmp_path
    if format_ == "triton":  # the checkpoint inside the model directory the export would replace
        (tmp_path / "resnet20").mkdir()
        (tmp_path / "resnet20" / "config.pbtxt").write_text('name: "resnet20"\n')
        checkpoint = checkpoint.rename(tmp_path / "resnet20" / "in.pt")
    result = runner.invoke(app, ["export", str(checkpoint), "-f", format_, "-o", str(output)])
    _refused(result, str(checkpoint))
    assert checkpoint.read_bytes() == before


def test_import_refuses_to_write_over_its_source(tmp_path):
    source = tmp_path / "src.pt"
    torch.save(nx.create_model("resnet20").state_dict(), source)  # a torch-resnet style state_dict
    before = source.read_bytes()
    _refused(runner.invoke(app, ["import", str(source), "-o", str(source)]), str(source), "input")
    assert source.read_bytes() == before


# ------------------------------------------------------------------ links, devices, FIFOs, dirs


def _targets(tmp_path: Path) -> dict[str, Path]:
    """Existing things at an output path that a writer must leave as they are."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    targets = {
        "a link": tmp_path / "link.pt",
        "a FIFO": tmp_path / "fifo.pt",
        "a directory": tmp_path / "dir.pt",
    }
    targets["a link"].symlink_to(victim)
    os.mkfifo(targets["a FIFO"])
    targets["a directory"].mkdir()
    try:  # a character device like /dev/null (root only); replacing /dev/null itself is what was seen
        os.mknod(tmp_path / "null.pt", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        targets["a device"] = tmp_path / "null.pt"
    except (PermissionError, OSError):
        pass
    return targets


def _kind(path: Path) -> str:
    mode = path.lstat().st_mode
    return {stat.S_IFLNK: "link", stat.S_IFIFO: "fifo", stat.S_IFDIR: "dir", stat.S_IFCHR: "device"}.get(
        stat.S_IFMT(mode), "file"
    )


@pytest.mark.parametrize(
    "command",
    [
        ["fold", "{checkpoint}", "-o", "{target}"],
        ["export", "{checkpoint}", "-f", "torchscript", "--no-check", "-o", "{target}"],
        ["export", "{checkpoint}", "-f", "onnx", "--no-check", "-o", "{target}"],
    ],
)
def test_no_writer_replaces_a_link_a_device_a_fifo_or_a_directory(tmp_path, checkpoint, command):
    for what, target in _targets(tmp_path).items():
        kind = _kind(target)
        args = [part.format(checkpoint=checkpoint, target=target) for part in command]
        _refused(runner.invoke(app, args), str(target))
        assert _kind(target) == kind, what
    assert (tmp_path / "victim.txt").read_text() == "keep me"


def test_a_triton_model_directory_that_is_a_link_is_refused(tmp_path, checkpoint):
    (tmp_path / "elsewhere").mkdir()  # a model directory outside the repository, linked into it
    (tmp_path / "elsewhere" / "config.pbtxt").write_text('name: "resnet20"\n')
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "resnet20").symlink_to(tmp_path / "elsewhere")
    result = runner.invoke(app, ["export", str(checkpoint), "-f", "triton", "-o", str(tmp_path / "repo")])
    _refused(result, "symbolic link")
    assert (tmp_path / "repo" / "resnet20").is_symlink()
    assert [p.name for p in (tmp_path / "elsewhere").iterdir()] == ["config.pbtxt"]


# --------------------------------------------------------------- no directories made on the side


@pytest.mark.parametrize(
    "command",
    [
        ["fold", "{checkpoint}", "-o", "{missing}/sub/out.pt"],
        ["export", "{checkpoint}", "-f", "onnx", "-o", "{missing}/out.onnx"],
        ["export", "{checkpoint}", "-f", "torchscript", "-o", "{missing}/out.ts"],
        ["export", "{checkpoint}", "-f", "triton", "-o", "{missing}/repo"],
        ["check", "{checkpoint}", "--plot", "{missing}/plot.png"],
        ["analyze", "gradnorm", "{checkpoint}", "--plot", "{missing}/plot.png"],
        ["train", "resnet20", "--dataset", "digits", "--limit-train", "8", "--out", "{missing}/run"],
    ],
)
def test_missing_parent_directories_are_named_not_created(tmp_path, checkpoint, command):
    missing = tmp_path / "missing"
    args = [part.format(checkpoint=checkpoint, missing=missing) for part in command]
    _refused(runner.invoke(app, args), str(missing), "does not exist", "create it first")
    assert not missing.exists()


def test_check_and_analyze_validate_the_plot_path_before_any_work(tmp_path, checkpoint, monkeypatch):
    from normresnet_export.analysis import api as analysis_api
    from normresnet_export.check import api as check_api

    def no_work(*args, **kwargs):
        raise AssertionError("the run started before the plot path was checked")

    monkeypatch.setattr(check_api, "open_model", no_work)
    monkeypatch.setattr(analysis_api, "measure_gradnorm", no_work)
    (tmp_path / "plots").mkdir()
    for plot in (tmp_path / "plots", checkpoint):  # a directory; the checkpoint itself
        _refused(runner.invoke(app, ["check", str(checkpoint), "--plot", str(plot)]), str(plot))
        _refused(runner.invoke(app, ["analyze", "gradnorm", str(checkpoint), "--plot", str(plot)]), str(plot))
    no_timing = runner.invoke(
        app, ["check", str(checkpoint), "--no-latency", "--plot", str(tmp_path / "p.png")]
    )
    _refused(no_timing, "--no-latency")


# ----------------------------------------------------------------------- staging and leftovers


def test_staging_names_carry_the_writers_host_and_pid(tmp_path):
    with _io.atomic_write(tmp_path / "out.bin") as handle:
        handle.write(b"x")
        (staged,) = [p for p in tmp_path.iterdir() if p.name != "out.bin"]
    assert _io.is_staging_name(staged.name)
    assert f".out.bin.normexport-{_io._host()}-{os.getpid()}-" in staged.name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_a_killed_writers_leftovers_are_removed_and_a_live_ones_kept(tmp_path, caplog):
    dead = _dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale_file = _staging(tmp_path, "out.pt", dead)
        stale_file.write_bytes(b"half a checkpoint")
        stale_dir = _staging(tmp_path, "m.onnx", dead)
        (stale_dir / "1").mkdir(parents=True)
        live_file = _staging(tmp_path, "out.pt", live.pid)
        live_file.write_bytes(b"being written")
        foreign = _staging(tmp_path, "out.pt", dead, host="otherhost")
        foreign.write_bytes(b"another machine's")
        with caplog.at_level(logging.WARNING, logger="normresnet_export"):
            nx.save_checkpoint(tmp_path / "out.pt", nx.create_model("resnet20").eval(), arch="resnet20")
    finally:
        live.kill()
        live.wait()
    assert not stale_file.exists() and not stale_dir.exists()
    assert live_file.exists() and foreign.exists()  # a live writer's, and one this host cannot judge
    notes = [r.getMessage() for r in caplog.records if "stale staging" in r.getMessage()]
    assert len(notes) == 2 and all(f"(pid {dead})" in note for note in notes)
    assert any(str(stale_file) in note for note in notes)


def test_export_lists_the_removed_leftovers_in_its_json(tmp_path, checkpoint):
    stale = _staging(tmp_path, "m.ts", _dead_pid())
    stale.write_bytes(b"x")
    args = [
        "export",
        str(checkpoint),
        "-f",
        "torchscript",
        "--no-check",
        "-o",
        str(tmp_path / "m.ts"),
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["details"]["removed_stale"] == [str(stale)]
    assert not stale.exists()


def test_the_cli_says_on_stderr_which_leftover_it_removed(tmp_path, checkpoint):
    dead = _dead_pid()
    stale = _staging(tmp_path, "out.pt", dead)
    stale.write_bytes(b"half a checkpoint")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from cli import app; app()",
            "fold",
            str(checkpoint),
            "-o",
            str(tmp_path / "out.pt"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if "stale staging" in line]
    assert notes == [f"note: removed the stale staging file {stale}, left by a killed run (pid {dead})"]
    assert not stale.exists() and nx.load_checkpoint(tmp_path / "out.pt").folded


def test_a_writer_killed_mid_write_leaves_a_leftover_the_next_write_removes(tmp_path):
    target = tmp_path / "out.bin"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from normresnet_export._io import atomic_write\n"
            "with atomic_write(sys.argv[1]) as handle:\n"
            "    handle.write(b'half')\n"
            "    print('writing', flush=True)\n"
            "    time.sleep(60)\n",
            str(target),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert writer.stdout.readline().strip() == "writing"
    finally:
        writer.kill()  # SIGKILL: no cleanup runs
        writer.wait()
    (left,) = list(tmp_path.iterdir())
    assert f"-{writer.pid}-" in left.name and not target.exists()
    with _io.atomic_write(target) as handle:
        handle.write(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"] and target.read_bytes() == b"whole"


def _tiny_onnx(path: Path) -> None:
    """A valid one-node ONNX model (never run here: a staging area must be refused before that)."""
    node = helper.make_node("Flatten", ["input"], ["logits"])
    graph = helper.make_graph(
        [node],
        "orphan",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3072])],
    )
    onnx.save(helper.make_model(graph), str(path))


def test_an_orphan_triton_staging_directory_is_never_served(tmp_path):
    repository = tmp_path / "repo"
    orphan = _staging(repository, "resnet20", _dead_pid())  # what a SIGKILL during export left
    (orphan / "1").mkdir(parents=True)
    (orphan / "config.pbtxt").write_text('name: "resnet20"\nplatform: "onnxruntime_onnx"\n')
    _tiny_onnx(orphan / "1" / "model.onnx")
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(image)
    result = runner.invoke(app, ["predict", str(repository), str(image), "--preprocessing", "cifar10"])
    _refused(result, str(repository), "not a Triton model directory")
    for inside in (orphan, orphan / "1" / "model.onnx"):
        with pytest.raises(nx.InputError, match="staging area of a write that never finished"):
            open_model(inside)
