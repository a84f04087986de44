"""A model from ``create_model`` is saved without restating its arch and keywords, folded or not."""

from __future__ import annotations

import copy

import pytest
import torch

import normresnet_export as nx


@pytest.fixture(scope="module")
def tau20():
    torch.manual_seed(0)
    return nx.create_model("tau_resnet20_nobn", tau=0.1, num_classes=100).eval()


def test_save_checkpoint_records_what_create_model_built(tmp_path, tau20):
    nx.save_checkpoint(tmp_path / "m.pt", tau20, metrics={"top1": 1.0})
    loaded = nx.load_checkpoint(tmp_path / "m.pt")
    assert loaded.arch == "tau_resnet20_nobn"
    assert loaded.model_kwargs == {"num_classes": 100, "tau": 0.1}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), tau20(x), rtol=0, atol=0)
    nx.save_checkpoint(tmp_path / "copy.safetensors", copy.deepcopy(tau20))  # a copy keeps the record
    assert nx.load_checkpoint(tmp_path / "copy.safetensors").model_kwargs["tau"] == 0.1


def test_a_folded_model_keeps_the_record(tmp_path, tau20):
    result = nx.fold_model(tau20, input_size=(3, 32, 32))
    nx.save_checkpoint(tmp_path / "f.pt", result.model, folded=True, fold_report=result.report.to_dict())
    loaded = nx.load_checkpoint(tmp_path / "f.pt")
    assert (loaded.arch, loaded.folded, loaded.model_kwargs["num_classes"]) == (
        "tau_resnet20_nobn",
        True,
        100,
    )


def test_given_arch_and_kwargs_must_agree_with_the_record(tmp_path, tau20):
    with pytest.raises(
        nx.InputError, match=r"arch='resnet56' contradicts the model, which create_model built"
    ):
        nx.save_checkpoint(tmp_path / "a.pt", tau20, arch="resnet56")
    with pytest.raises(nx.InputError, match=r"model_kwargs contradict .*tau=0\.2 \(built with 0\.1\)"):
        nx.save_checkpoint(tmp_path / "b.pt", tau20, model_kwargs={"tau": 0.2})
    nx.save_checkpoint(tmp_path / "c.pt", tau20, arch="tau_resnet20_nobn", model_kwargs={"tau": 0.1})
    assert nx.load_checkpoint(tmp_path / "c.pt").model_kwargs == {"num_classes": 100, "tau": 0.1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]  # nothing written for the refusals


def test_a_model_built_another_way_needs_its_arch(tmp_path):
    from normresnet_export.models import resnet20

    with pytest.raises(nx.InputError, match=r"save_checkpoint needs arch= .* create_model did not build"):
        nx.save_checkpoint(tmp_path / "m.pt", resnet20())
    nx.save_checkpoint(tmp_path / "m.pt", resnet20(), arch="resnet20")
    assert nx.load_checkpoint(tmp_path / "m.pt").arch == "resnet20"
