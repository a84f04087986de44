"""Layer semantics the spec pins down: Dirac weights, shortcut options, shared tau, LeNo's block roles."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import normresnet_export as nx
from normresnet_export.models.lenoresnet import (
    LeNoEndBlock,
    LeNoFirstMiddleBlock,
    LeNoMiddleBlock,
    LeNoStartBlock,
    _leno_stage,
)
from normresnet_export.models.torch_resnet import BasicBlock, PreActBlock
from normresnet_export.nn import (
    DiracConv1d,
    DiracConv2d,
    DiracConv3d,
    GlobalAvgPool2d,
    IdentityShortcut,
    ProjectionShortcut,
    Scale,
    make_shortcut,
)
from tests.helpers import randomise_batchnorm

DIRAC = {1: DiracConv1d, 2: DiracConv2d, 3: DiracConv3d}
CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


# ----------------------------------------------------------------------------------------- Dirac


def _randomise(conv: nn.Module) -> None:
    with torch.no_grad():
        for p in conv.parameters():
            p.normal_()


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 2])
def test_dirac_weight_is_alpha_delta_plus_beta_normalised_filter(dims, groups):
    torch.manual_seed(dims * 10 + groups)
    conv = DIRAC[dims](4, 6, 3, padding=1, groups=groups)
    _randomise(conv)
    v = conv.weight.detach()
    delta = torch.zeros_like(v)
    nn.init.dirac_(delta, groups)
    shape = (-1,) + (1,) * dims + (1,)
    expected = (
        conv.beta.view(shape) * v / v.flatten(1).norm(dim=1).view(shape) + conv.alpha.view(shape) * delta
    )
    torch.testing.assert_close(conv.dirac_weight(), expected)
    x = torch.randn(2, 4, *(5,) * dims)
    reference = CONV[dims](x, expected, conv.bias, padding=1, groups=groups)
    torch.testing.assert_close(conv(x), reference)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_dirac_identity_part_copies_channels_and_leaves_extra_outputs_empty(dims):
    conv = DIRAC[dims](3, 5, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.beta.zero_()
    x = torch.randn(2, 3, *(6,) * dims)
    y = conv(x)
    assert torch.equal(y[:, :3], x)
    assert torch.equal(y[:, 3:], torch.zeros_like(y[:, 3:]))


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_dirac_fold_returns_an_exact_plain_conv(dims):
    torch.manual_seed(dims)
    conv = DIRAC[dims](4, 4, 3, padding=2, dilation=2, groups=2)
    _randomise(conv)
    plain = conv.fold()
    assert type(plain) is {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
    assert set(plain.state_dict()) == {"weight", "bias"}
    x = torch.randn(2, 4, *(7,) * dims)
    torch.testing.assert_close(plain(x), conv(x), rtol=0, atol=0)


def test_dirac_defaults_and_state_dict_keys():
    conv = DiracConv2d(8, 8, 3, padding=1)
    assert torch.equal(conv.alpha, torch.ones(8))
    assert torch.allclose(conv.beta, torch.full((8,), 0.1))
    assert list(conv.state_dict()) == ["weight", "bias", "alpha", "beta"]  # Delta is a constant, not saved
    with pytest.raises(TypeError):
        DiracConv2d(8, 8, 3, stride=2)  # the identity part needs stride 1


def test_dirac_accepts_the_reference_delta_key_only_when_it_is_the_dirac_tensor():
    conv = DiracConv2d(4, 6, 3, padding=1)
    state = {k: v.clone() for k, v in conv.state_dict().items()}
    delta = torch.zeros(6, 4, 3, 3)
    nn.init.dirac_(delta)
    conv.load_state_dict({**state, "delta": delta})  # reference diracconv.py layout
    with pytest.raises(RuntimeError, match="expected the Dirac tensor"):
        conv.load_state_dict({**state, "delta": torch.ones(6, 4, 3, 3)})


def test_dirac_builds_on_the_meta_device():
    with torch.device("meta"):
        conv = DiracConv2d(4, 4, 3)
    assert conv.delta.is_meta and conv.weight.is_meta


# ----------------------------------------------------------------------------------------- shortcuts


def test_option_a_subsamples_and_appends_zero_channels():
    x = torch.randn(2, 3, 7, 7)
    y = IdentityShortcut(3, 5, stride=2)(x)
    assert y.shape == (2, 5, 4, 4)
    assert torch.equal(y[:, :3], x[:, :, ::2, ::2])
    assert torch.equal(y[:, 3:], torch.zeros(2, 2, 4, 4))
    with pytest.raises(nx.InputError, match="cannot reduce channels"):
        IdentityShortcut(5, 3)


@pytest.mark.parametrize(
    ("option", "in_channels", "out_channels", "stride", "kind", "kernel"),
    [
        ("A", 16, 32, 2, IdentityShortcut, None),
        ("B", 16, 16, 1, IdentityShortcut, None),
        ("B", 16, 32, 2, ProjectionShortcut, 1),
        ("C", 16, 16, 1, ProjectionShortcut, 1),
        ("conv", 16, 16, 1, IdentityShortcut, None),
        ("conv", 16, 32, 2, ProjectionShortcut, 3),
    ],
)
def test_shortcut_options(option, in_channels, out_channels, stride, kind, kernel):
    shortcut = make_shortcut(option, in_channels, out_channels, stride)
    assert type(shortcut) is kind
    assert shortcut.requires_activation == (kind is ProjectionShortcut)
    if kernel:
        assert shortcut.conv.kernel_size == (kernel, kernel) and shortcut.conv.bias is None
    y = shortcut(torch.randn(1, in_channels, 8, 8))
    assert y.shape == (1, out_channels, 8 // stride, 8 // stride)


def test_preact_block_feeds_a_projection_the_activation_and_an_identity_the_raw_input():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 6)
    for shortcut, expected_on_activation in (("A", False), ("C", True)):
        block = PreActBlock(8, 8, 1, shortcut=shortcut).eval()
        randomise_batchnorm(block)
        a = F.relu(block.bn1(x))
        branch = block.conv2(F.relu(block.bn2(block.conv1(a))))
        skip = block.shortcut(a if expected_on_activation else x)
        torch.testing.assert_close(block(x), branch + skip)


def test_zero_init_residual_silences_each_branch():
    post = nx.create_model("resnet20", zero_init_residual=True)
    assert all(
        torch.equal(m.bn2.weight, torch.zeros_like(m.bn2.weight))
        for m in post.modules()
        if isinstance(m, BasicBlock)
    )
    pre = nx.create_model("preact_resnet20", shortcut="A", zero_init_residual=True).eval()
    block = pre.layers[0][1]
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(block(x), x)  # identity skip + silent branch


def test_scale_and_global_pool():
    x = torch.randn(2, 3, 4, 5)
    assert torch.equal(Scale(0.25)(x), x * 0.25)
    assert "value=0.25" in repr(Scale(0.25))
    torch.testing.assert_close(GlobalAvgPool2d()(x), x.mean((2, 3)))


# ----------------------------------------------------------------------------------------- tau-ResNet


def test_no_bn_tau_is_one_parameter_registered_in_every_block():
    model = nx.create_model("tau_resnet20_nobn", tau=0.25)
    state = model.state_dict()
    tau_keys = [k for k in state if k == "tau" or k.endswith(".tau")]
    assert len(tau_keys) == 10  # the network + 9 blocks, as in the reference state_dict
    assert len({state[k].data_ptr() for k in tau_keys}) == 1
    assert all(block.tau is model.tau for block in model.modules() if hasattr(block, "bias1a"))
    assert sum(p.numel() == 1 and p is model.tau for p in model.parameters()) == 1


def test_no_bn_tau_loads_from_the_top_level_key_alone_and_refuses_disagreeing_copies():
    source = nx.create_model("tau_resnet20_nobn", tau=0.5)
    only_top = {k: v for k, v in source.state_dict().items() if not k.endswith(".tau")}
    target = nx.create_model("tau_resnet20_nobn", tau=0.1)
    target.load_state_dict(only_top)  # strict: the per-block keys are filled from the top-level one
    assert target.tau.item() == 0.5
    disagreeing = dict(source.state_dict())
    disagreeing["layer2.1.tau"] = torch.tensor([0.7])
    with pytest.raises(RuntimeError, match="shared tau must have one value"):
        target.load_state_dict(disagreeing)


def test_tau_scales_the_residual_branch():
    torch.manual_seed(0)
    model = nx.create_model("tau_resnet20", tau=0.3).eval()
    randomise_batchnorm(model)
    block = model.layer2[0]
    x = torch.randn(2, 16, 8, 8)
    branch = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))
    skip = F.pad(block.downsample[1](x[:, :, ::2, ::2]), (0, 0, 0, 0, 0, 16))  # subsample, BN, zero channels
    torch.testing.assert_close(block(x), F.relu(0.3 * branch + skip))


# ----------------------------------------------------------------------------------------- LeNo


def test_leno_first_middle_block_rectifies_the_skip_as_the_in_place_reference_does():
    torch.manual_seed(0)
    block = LeNoFirstMiddleBlock(32, 8).eval()
    randomise_batchnorm(block)
    x = torch.randn(2, 32, 6, 6)
    original = x.clone()
    z = F.relu(x)
    torch.testing.assert_close(block(x), block.branch(z) + z)
    assert torch.equal(x, original)  # ours does not mutate its input


def test_leno_stage_roles():
    stage = _leno_stage(64, 16, 5)
    assert [type(b) for b in stage] == [
        LeNoStartBlock,
        LeNoFirstMiddleBlock,
        LeNoMiddleBlock,
        LeNoMiddleBlock,
        LeNoEndBlock,
    ]
    assert not hasattr(stage[1], "bn0") and hasattr(stage[2], "bn0") and hasattr(stage[4], "bn3")
    with pytest.raises(nx.InputError, match="at least 3 blocks"):
        _leno_stage(64, 16, 2)
    torch.manual_seed(0)
    end = stage[4].eval()
    randomise_batchnorm(end)
    x = torch.randn(1, 64, 4, 4)
    torch.testing.assert_close(end(x), F.relu(end.bn3(end.branch(F.relu(end.bn0(x))) + x)))


# ----------------------------------------------------------------------------------------- ProcResNet


def test_procresnet_skips_are_identities_and_the_transitions_carry_all_shape_changes():
    model = nx.create_model("procresnet166")
    assert set(model.regularized_convs()) == {"conv1", "trans_conv1", "trans_conv2"}
    blocks = [m for stage in (model.layer1, model.layer2, model.layer3) for m in stage]
    assert all(type(b.shortcut) is IdentityShortcut and b.shortcut.extra_channels == 0 for b in blocks)
    baseline = nx.create_model("procresnet_baseline164")
    first = baseline.layer1[0].shortcut
    assert [type(m) for m in first] == [
        nn.BatchNorm2d,
        nn.ReLU,
        nn.Conv2d,
    ]  # its own BN-ReLU on the raw input
    assert baseline.layer1[0].shortcut_on_activation is False


def test_diracnet_is_a_plain_chain_without_skips():
    model = nx.create_model("diracnet_cifar16_1").eval()
    randomise_batchnorm(model)
    block = model.group1.block0
    x = torch.randn(2, 16, 16, 16)
    torch.testing.assert_close(block(x), block.bn(block.conv(F.relu(x))))
    assert [n for n, _ in model.named_children()] == [
        "conv",
        "bn",
        "relu0",
        "group0",
        "pool1",
        "group1",
        "pool2",
        "group2",
        "relu",
        "avgpool",
        "fc",
    ]
