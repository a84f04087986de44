"""TorchScript and torch.export files are programs: nothing loads one unless told the file is trusted.

Each crafted file here does what a hostile "model.pt" could: calling it (TorchScript) or running
its graph (``.pt2``) creates a canary file on disk through ``torch.from_file(..., shared=True)``.
Without ``--trust-code`` / ``trust_code=True`` the canary must stay absent and the command must
end with one line naming the file and the opt-in; with it, the program runs.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app
from normresnet_export.metadata import load_pt2, load_torchscript
from normresnet_export.runtime import open_model

runner = CliRunner()


class Canary(torch.nn.Module):
    """Ten "logits" per image; calling it creates (and writes into) the file at ``path``."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mapped = torch.from_file(self.path, True, 8, dtype=torch.uint8)  # shared: creates the file
        mapped.fill_(65)
        return x.flatten(1)[:, :10] + mapped.sum().float() * 0


def _torchscript(folder: Path) -> tuple[Path, Path]:
    """A TorchScript program named like a checkpoint, and the canary its forward creates."""
    canary = folder / "canary-torchscript"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated
        torch.jit.save(torch.jit.script(Canary(str(canary))), str(folder / "model.pt"))
    assert not canary.exists()
    return folder / "model.pt", canary


def _pt2(folder: Path) -> tuple[Path, Path]:
    """A ``.pt2`` program whose graph calls ``aten.from_file`` on the canary's path.

    torch.export cannot trace ``from_file`` (it has no fake kernel), so the node is written into
    an exported graph by hand, as an attacker would.
    """

    class Head(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, :10] * 2

    canary = folder / "canary-pt2"
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(Head(), (torch.zeros(2, 3, 32, 32),), dynamic_shapes=({0: batch},))
    graph = program.graph_module.graph
    double = next(n for n in graph.nodes if n.target == torch.ops.aten.mul.Tensor)
    with graph.inserting_before(double):
        mapped = graph.call_function(
            torch.ops.aten.from_file.default, (str(canary), True, 8), {"dtype": torch.uint8}
        )
        mapped.meta["val"] = torch.empty(8, dtype=torch.uint8)
        total = graph.call_function(torch.ops.aten.sum.default, (mapped,))
        total.meta["val"] = torch.empty((), dtype=torch.int64)
        shifted = graph.call_function(torch.ops.aten.add.Tensor, (double.args[0], total))
        shifted.meta["val"] = double.args[0].meta["val"]
    double.args = (shifted, *double.args[1:])
    program.graph_module.recompile()
    torch.export.save(program, str(folder / "model.pt2"))
    assert not canary.exists()
    return folder / "model.pt2", canary


PROGRAMS = {"torchscript": _torchscript, "pt2": _pt2}


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "image.png"
    Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)).save(path)
    return path


def _one_error_line(stderr: str, path: Path) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and str(path) in lines[0] and "--trust-code" in lines[0]
    assert "Traceback" not in stderr


@pytest.mark.parametrize("kind", sorted(PROGRAMS))
def test_predict_runs_a_program_only_with_trust_code(tmp_path, image, kind):
    program, canary = PROGRAMS[kind](tmp_path)
    args = ["predict", str(program), str(image), "--preprocessing", "cifar10", "--json"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2
    _one_error_line(refused.stderr, program)
    assert refused.stdout == "" and not canary.exists()
    trusted = runner.invoke(app, [*args, "--trust-code"])
    assert trusted.exit_code == 0, trusted.output
    assert canary.exists()  # the program ran: that is what --trust-code allows


@pytest.mark.parametrize("kind", sorted(PROGRAMS))
def test_check_refuses_an_untrusted_program_before_running_anything(tmp_path, kind):
    program, canary = PROGRAMS[kind](tmp_path)
    reference = nx.save_checkpoint(tmp_path / "ref.pt", nx.create_model("resnet20").eval(), arch="resnet20")
    refused = runner.invoke(app, ["check", str(reference), str(program), "--no-latency", "--samples", "4"])
    assert refused.exit_code == 2
    _one_error_line(refused.stderr, program)
    assert not canary.exists()


@pytest.mark.parametrize("kind", sorted(PROGRAMS))
def test_the_python_api_refuses_programs_unless_trusted(tmp_path, kind):
    program, canary = PROGRAMS[kind](tmp_path)
    load = load_torchscript if kind == "torchscript" else load_pt2
    for refuse in (lambda: open_model(program), lambda: load(program), lambda: load(program.read_bytes())):
        with pytest.raises(nx.InputError, match="--trust-code"):
            refuse()
    assert not canary.exists()
    backend = open_model(program, trust_code=True)
    backend.run(torch.zeros(2, 3, 32, 32))
    assert canary.exists()


def test_analyze_reads_checkpoints_only_and_never_runs_a_program(tmp_path):
    program, canary = _torchscript(tmp_path)
    result = runner.invoke(app, ["analyze", "gradnorm", str(program), "--data", "random"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1 and str(program) in result.stderr
    assert not canary.exists()
