"""Import from torchvision: only sources that have the file's network are offered, and no empty lines."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app

torchvision = pytest.importorskip("torchvision")
runner = CliRunner()


def test_a_resnet18_is_torchvision_s_alone_and_its_import_prints_no_empty_line(tmp_path):
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    result = runner.invoke(app, ["import", str(tmp_path / "r18.pth"), "-o", str(tmp_path / "r18.pt")])
    assert result.exit_code == 0, result.output  # LeNo and tau-ResNet have no 18-layer net: no --from
    lines = result.stdout.splitlines()
    assert lines[0].startswith("imported torchvision checkpoint as resnet18(")
    assert not any(line.strip() == "recorded:" for line in lines), (
        result.stdout
    )  # a state_dict records nothing
    assert nx.load_checkpoint(tmp_path / "r18.pt").arch == "resnet18"


def test_the_ambiguity_error_offers_only_sources_with_that_network(tmp_path):
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), tmp_path / "r50.pth")
    with pytest.raises(nx.InputError) as ambiguous:
        nx.import_checkpoint(tmp_path / "r50.pth")
    assert "could come from torchvision, leno, tau-resnet" in str(ambiguous.value)
    # --arch narrows it: tau-ResNet's 50-layer net is tau_resnet50, not resnet50
    with pytest.raises(nx.InputError, match=r"could come from torchvision, leno: "):
        nx.import_checkpoint(tmp_path / "r50.pth", arch="resnet50")
