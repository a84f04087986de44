"""Every registered model builds, trains a step's forward pass and runs in eval mode; the families script."""

from __future__ import annotations

import warnings

import pytest
import torch

import normresnet_export as nx
from tests.helpers import calibrate_batchnorm, registry_params, smallest_input_size


@pytest.mark.parametrize("name", registry_params(nx.list_models()))
def test_forward_in_train_and_eval_mode(name):
    info = nx.model_info(name)
    torch.manual_seed(0)
    model = nx.create_model(name)
    assert model.training
    x = torch.randn(2, *smallest_input_size(name))  # CIFAR designs 8×8, ImageNet ones 32×32
    calibrate_batchnorm(model, x)  # fresh statistics overflow 1000-layer nets in eval mode
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (2, info.default_kwargs["num_classes"])
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    assert logits.std() > 0  # not a constant (dead) network


def test_imagenet_designs_run_at_their_full_size():
    model = nx.create_model("resnet18").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


SCRIPTABLE = [
    ("resnet20", {"shortcut": "A"}),
    ("preact_resnet164", {"shortcut": "C"}),
    ("wide_resnet16_2", {}),
    ("resnet18_small", {"shortcut": "conv"}),
    ("tau_resnet20", {}),
    ("tau_resnet20_nobn", {}),
    ("tau_resnet50_nobn", {}),
    ("procresnet166", {}),
    ("procresnet_baseline164", {}),
    ("lenoresnet50", {}),
    ("leno_baseline_preactresnet50", {}),
    ("diracnet_cifar16_1", {}),
    ("diracnet18", {}),
]


@pytest.mark.parametrize(("name", "kwargs"), SCRIPTABLE, ids=[n for n, _ in SCRIPTABLE])
def test_models_script_with_torchscript(name, kwargs):
    """Unlike several reference implementations, every family compiles with torch.jit.script."""
    model = nx.create_model(name, **kwargs).eval()
    x = torch.randn(2, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream and says so
        scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x), rtol=0, atol=0)


def test_construction_is_deterministic_under_a_seed():
    torch.manual_seed(3)
    first = nx.create_model("diracnet_cifar16_1").state_dict()
    torch.manual_seed(3)
    second = nx.create_model("diracnet_cifar16_1").state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
