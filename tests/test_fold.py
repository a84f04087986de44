"""The fold stage: exact across the registry, property-tested over conv configurations, true on real data."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app
from normresnet_export.fold import DEEP_LAYERS, FoldTolerance, fold_model
from normresnet_export.fold import functional as Fold
from normresnet_export.nn import DiracConv2d, Scale
from tests.helpers import (
    calibrate_batchnorm,
    randomise_batchnorm,
    randomise_for_folding,
    registry_params,
    smallest_input_size,
)

POST_ACTIVATION = {
    n
    for n in nx.list_models()
    if nx.model_info(n).family in ("torch-resnet", "tau-resnet", "diracnet") and "preact" not in n
}


def _prepared(name: str) -> nn.Module:
    """A model with every folded quantity non-trivial: BN statistics and affine, tau, offsets, alpha, beta."""
    torch.manual_seed(0)
    kwargs = {"tau": 0.37} if name.startswith("tau_") and not name.endswith("_nobn") else {}
    model = randomise_for_folding(nx.create_model(name, **kwargs).eval())
    if nx.count_layers(model) >= DEEP_LAYERS:
        # Random statistics do not normalise a 1000-layer stream, which then overflows float32
        # before any folding; a trained net's statistics match its activations, so calibrate them.
        # Calibrated at the size the sweep checks at, so the statistics match those activations.
        size = smallest_input_size(name)
        calibrate_batchnorm(model, torch.randn(8, *size, generator=torch.Generator().manual_seed(1)))
    return model


@pytest.mark.parametrize("name", registry_params(nx.list_models()))
def test_fold_is_exact_across_the_registry(name):
    model = _prepared(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # The smallest input the design accepts (8×8 for CIFAR designs, 32×32 for ImageNet ones): the
    # check's second input then has odd sides (9×9, 33×33), so every stage still has the border
    # rows where a fold that is exact only in the interior of a feature map shows its error.
    result = fold_model(model, input_size=smallest_input_size(name))
    report = result.report
    f32, f64 = report.deviations["float32"], report.deviations["float64"]
    assert report.passed, report.to_dict()
    if nx.count_layers(model) < DEEP_LAYERS:
        assert f64.max_rel <= 1e-10 and f32.max_rel <= 1e-5
    else:
        # Deep nets: float64 still proves exactness. In float32 the fold may deviate as much as
        # rounding noise allows: measured up to 2.3× the unfolded model's own float32 error
        # (resnet1001 at 32×32: 2.8e-3 against 1.2e-3; at the sweep's 8×8: 1.9e-5 against 2.8e-5),
        # so the limit is 4× that noise or 1e-4.
        assert f64.max_rel <= 1e-9
        assert f32.max_rel <= max(1e-4, 4 * report.float32_noise)
    assert f32.top1_agreement == 1.0
    ops = report.ops_after
    assert "BatchNorm2d" not in ops and not any(op.startswith("Dirac") for op in ops)
    # The residual-stream BatchNorms leave too; the ProcResNet baselines keep four (the first block
    # reads a ReLU's output, and each later shortcut BN shares its stream with the block's bn1).
    kept = 4 if name.startswith("procresnet_baseline") else 0
    assert report.stream_bn_counts()["kept"] == ops.get("ChannelAffine", 0) == kept
    if name in POST_ACTIVATION:
        assert "ChannelAffine" not in ops  # nothing but conv / ReLU / add / pool / linear
    # the input model is untouched and shares no memory with the folded one
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    ours = {t.untyped_storage().data_ptr() for t in model.state_dict().values()}
    assert not ours & {t.untyped_storage().data_ptr() for t in result.model.state_dict().values()}


@pytest.mark.parametrize(
    ("name", "kwargs", "affines", "stream_removed"),
    [
        ("lenoresnet50", {}, 12, 12),  # (N - 2) bn0 + 1 end bn3 per stage
        ("lenoresnet101", {}, 29, 29),
        ("procresnet166", {}, 55, 55),  # one bn1 per block + the head bn
        ("procresnet_baseline164", {}, 58, 54),  # + the three shortcut BNs; the stem BN folds
        ("preact_resnet20", {}, 10, 10),  # every block's bn1 + norm
        ("preact_resnet164", {}, 54, 54),  # the stem conv feeds only block 0's bn1: that one folds
        ("preact_resnet110", {"shortcut": "C"}, 0, 0),  # every BN normalises a sum of two convs
        ("leno_baseline_preactresnet50", {}, 17, 17),
    ],
)
def test_only_the_batchnorms_the_spec_calls_unfoldable_remain(name, kwargs, affines, stream_removed):
    """``affines``: the BatchNorms no conv precedes (kept with ``keep_stream_bn``); most of them leave."""
    model = randomise_for_folding(nx.create_model(name, **kwargs).eval())
    kept = fold_model(model, check=False, keep_stream_bn=True).report
    assert kept.ops_after.get("ChannelAffine", 0) == affines and kept.stream_bn_removed is None
    assert all("→ ChannelAffine" in u.op and u.reason for u in kept.unfolded if "BatchNorm" in u.op)
    report = fold_model(model, check=False).report
    assert len(report.stream_bn_removed) == stream_removed
    assert report.ops_after.get("ChannelAffine", 0) == affines - stream_removed


def test_folded_diracnets_are_plain_chains_with_the_published_parameter_counts():
    for name, params in (("diracnet18", 11_511_784), ("diracnet34", 21_616_232)):  # folded DiracNet sizes
        report = fold_model(randomise_for_folding(nx.create_model(name).eval()), check=False).report
        assert report.parameters_after == params
        assert set(report.ops_after) == {"Conv2d", "GlobalAvgPool2d", "Linear", "MaxPool2d", "relu"}


def test_report_explains_what_stayed():
    leno = fold_model(nx.create_model("lenoresnet50").eval(), check=False, keep_stream_bn=True).report
    reasons = {u.reason for u in leno.unfolded}
    assert "two convolutions in a row: merging them is not exact across zero padding" in reasons
    assert "it follows a residual addition, not a convolution" in reasons
    nobn = fold_model(nx.create_model("tau_resnet20_nobn").eval(), check=False).report
    assert (
        sum(u.op == "add (scalar offset)" for u in nobn.unfolded) == 18
    )  # bias1a, bias2a before padded 3×3 convs
    assert nobn.folded["scalar multiplier into the conv before it"] == 9  # tau, once per block
    as_json = json.loads(json.dumps(leno.to_dict()))
    assert nx.fold.FoldReport.from_dict(as_json).to_dict() == as_json


def test_fold_refuses_training_mode_and_half_precision():
    with pytest.raises(nx.InputError, match="eval mode"):
        fold_model(nx.create_model("resnet20"))
    with pytest.raises(nx.InputError, match="float32 or float64"):
        fold_model(nx.create_model("resnet20").eval().half())


def test_a_fold_that_overflows_or_moves_logits_does_not_pass():
    model = nx.create_model("resnet20").eval()
    strict = fold_model(model, tolerance=FoldTolerance(float32=0.0, float64=0.0, noise_factor=0.0)).report
    assert not strict.passed
    with torch.no_grad():
        model.head.weight.fill_(float("inf"))
    overflow = fold_model(model).report
    assert not overflow.passed and not overflow.deviations["float32"].finite
    assert json.loads(json.dumps(overflow.to_dict()))["deviations"]["float32"]["max_rel"] is None


# ------------------------------------------------------------------------------------- properties

CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
BNS = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


@st.composite
def conv_configs(draw):
    dims = draw(st.sampled_from([1, 2, 3]))
    groups = draw(st.sampled_from([1, 2, 4]))
    return {
        "dims": dims,
        "groups": groups,
        "in_channels": groups * draw(st.integers(1, 3)),
        "out_channels": groups * draw(st.integers(1, 3)),
        "kernel_size": draw(st.integers(1, 3)),
        "stride": draw(st.integers(1, 2)),
        "padding": draw(st.integers(0, 2)),
        "dilation": draw(st.integers(1, 2)),
        "bias": draw(st.booleans()),
    }


def _randomise_bn(bn: nn.Module, *, eps: float, tiny_variance: bool, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    bn.eps = eps
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=generator))
        variance = torch.rand(bn.num_features, generator=generator)
        bn.running_var.copy_(variance * 1e-7 if tiny_variance else variance + 0.1)
        if bn.affine:
            bn.weight.copy_(torch.randn(bn.num_features, generator=generator))
            bn.bias.copy_(torch.randn(bn.num_features, generator=generator))


@settings(max_examples=60, deadline=None)
@given(
    config=conv_configs(),
    eps=st.sampled_from([1e-5, 1e-3, 1e-1]),
    tiny_variance=st.booleans(),
    affine=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_conv_then_batchnorm_folds_exactly_for_any_configuration(config, eps, tiny_variance, affine, seed):
    dims = config.pop("dims")
    torch.manual_seed(seed)
    conv = CONVS[dims](**config)
    bn = BNS[dims](config["out_channels"], affine=affine)
    _randomise_bn(bn, eps=eps, tiny_variance=tiny_variance, seed=seed)
    model = nn.Sequential(conv, bn).eval()
    result = fold_model(model, input_size=(config["in_channels"], *([9] * dims)), seed=seed)
    report = result.report
    assert report.ops_after == {type(conv).__name__: 1}
    assert result.model.get_submodule("0").bias is not None  # the folded conv always carries a bias
    assert report.deviations["float64"].max_rel <= 1e-12
    assert report.passed


@settings(max_examples=40, deadline=None)
@given(config=conv_configs(), eps=st.sampled_from([1e-5, 1e-2]), seed=st.integers(0, 2**16))
def test_batchnorm_before_a_conv_folds_only_where_no_padding_is_read(config, eps, seed):
    dims = config.pop("dims")
    torch.manual_seed(seed)
    bn = BNS[dims](config["in_channels"])
    _randomise_bn(bn, eps=eps, tiny_variance=False, seed=seed)
    conv = CONVS[dims](**config)
    model = nn.Sequential(bn, conv).eval()
    report = fold_model(model, input_size=(config["in_channels"], *([9] * dims)), seed=seed).report
    if config["padding"] == 0:
        assert report.ops_after == {type(conv).__name__: 1}
    else:  # the padded zeros would not be shifted: keep the BN, as an exact per-channel affine
        assert report.ops_after == {"ChannelAffine": 1, type(conv).__name__: 1}
        assert "zero-padded conv" in report.unfolded[0].reason
    assert report.deviations["float64"].max_rel <= 1e-12 and report.passed


@settings(max_examples=25, deadline=None)
@given(
    features=st.integers(1, 12), outputs=st.integers(1, 12), bias=st.booleans(), seed=st.integers(0, 2**16)
)
def test_linear_then_batchnorm1d(features, outputs, bias, seed):
    torch.manual_seed(seed)
    bn = nn.BatchNorm1d(outputs)
    _randomise_bn(bn, eps=1e-5, tiny_variance=False, seed=seed)
    report = fold_model(
        nn.Sequential(nn.Linear(features, outputs, bias=bias), bn).eval(), input_size=(features,)
    ).report
    assert report.ops_after == {"Linear": 1} and report.passed


def test_fold_bn_matches_pytorchs_own_fusion():
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    torch.manual_seed(0)
    conv, bn = nn.Conv2d(4, 6, 3, groups=2), nn.BatchNorm2d(6)
    _randomise_bn(bn, eps=1e-3, tiny_variance=False, seed=0)
    ours = Fold.fold_bn(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)
    theirs = fuse_conv_bn_weights(
        conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
    )
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b.detach(), rtol=1e-6, atol=1e-6)


class _Patterns(nn.Module):
    """The smaller patterns: Dirac weights, BN after a sum of convs, tau, scalar offsets, zero channels."""

    def __init__(self) -> None:
        super().__init__()
        self.dirac = DiracConv2d(4, 4, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(4)
        self.a, self.b = nn.Conv2d(4, 6, 3, padding=1), nn.Conv2d(4, 6, 1)
        self.bn = nn.BatchNorm2d(6)
        self.c = nn.Conv2d(6, 6, 3, padding=1)
        self.tau = Scale(0.3)
        self.offset = nn.Parameter(torch.tensor([0.25]))
        self.d = nn.Conv2d(6, 3, 1)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn0(self.dirac(x)))
        x = F.relu(self.bn(self.a(x) + self.b(x)))
        x = self.tau(self.c(self.drop(x))) + self.offset
        return F.pad(self.d(x + self.offset), (0, 0, 0, 0, 1, 2))


def test_the_smaller_patterns_fold_into_the_five_convs():
    torch.manual_seed(0)
    model = _Patterns().eval()
    randomise_batchnorm(model)
    with torch.no_grad():
        model.dirac.alpha.uniform_(0.5, 1.5)
        model.dirac.beta.uniform_(-0.5, 0.5)
    result = fold_model(model, input_size=(4, 10, 10))
    assert result.report.ops_after == {"Conv2d": 5, "add": 1, "relu": 2}  # a + b stays a sum
    assert result.model.get_submodule("d").out_channels == 6  # the zero channels became conv outputs
    assert result.report.deviations["float64"].max_rel <= 1e-12 and result.report.passed


# ------------------------------------------------------------------------------------- real data


@pytest.mark.parametrize("name", ["preact_resnet20", "diracnet_cifar16_1"])
def test_folded_model_predicts_the_same_digits(name):
    # The shipped digits-trained weights: trained statistics, and the same on every CPU (a short
    # training run here learnt more or less depending on the CPU's float32 kernels).
    from normresnet_export.data import digits

    checkpoint = nx.load_checkpoint(nx.resolve_model_file(f"{name}.digits"))
    model, prep = checkpoint.model.eval(), checkpoint.preprocessing
    assert prep is not None and prep.input_size == (3, 32, 32)
    mean, std = torch.tensor(prep.mean).view(1, 3, 1, 1), torch.tensor(prep.std).view(1, 3, 1, 1)

    def normalised(raw: torch.Tensor) -> torch.Tensor:  # uint8 digits at 32×32: only the normalisation
        return (raw.float() / 255 - mean) / std

    images = normalised(digits.load_digits()[0])
    test_images, test_labels = digits.test_split()
    result = fold_model(model, input_size=(3, 32, 32))
    folded = result.model
    if name.startswith("preact"):  # trained statistics: the residual-stream BatchNorms leave too
        assert result.report.stream_bn_counts() == {"removed": 10, "kept": 0}
    with torch.no_grad():
        before, after = model(images).argmax(1), folded(images).argmax(1)
        held_out = model(normalised(test_images)).argmax(1)
    assert torch.equal(before, after)  # 100% top-1 agreement on all 1,797 real images
    assert (held_out == test_labels).float().mean() > 0.9  # and the net really learned (held-out)


# ------------------------------------------------------------------------------------- checkpoints and CLI


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_folded_checkpoints_rebuild_the_folded_network(tmp_path, suffix):
    model = randomise_for_folding(nx.create_model("tau_resnet20_nobn").eval())
    result = fold_model(model)
    path = nx.save_checkpoint(
        tmp_path / f"f{suffix}",
        result.model,
        arch="tau_resnet20_nobn",
        folded=True,
        fold_report=result.report.to_dict(),
    )
    loaded = nx.load_checkpoint(path)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), result.model(x))
    assert loaded.folded and not loaded.model.training
    assert loaded.fold_report["passed"] is True
    assert set(loaded.model.state_dict()) == set(result.model.state_dict())
    again = nx.load_checkpoint(loaded.save(tmp_path / f"again{suffix}"))  # a loaded folded model re-saves
    with torch.no_grad():
        assert torch.equal(again.model(x), result.model(x))
    assert again.fold_report == loaded.fold_report and again.input_size == (3, 32, 32)


def test_saving_folded_and_unfolded_models_under_the_wrong_flag_is_refused(tmp_path):
    model = nx.create_model("resnet20").eval()
    with pytest.raises(nx.InputError, match="folded=True for a model returned by fold_model"):
        nx.save_checkpoint(tmp_path / "a.pt", fold_model(model, check=False).model, arch="resnet20")
    with pytest.raises(nx.InputError, match="the folded model is not what arch"):
        nx.save_checkpoint(tmp_path / "b.pt", model, arch="resnet20", folded=True)
    assert not any(tmp_path.iterdir())


runner = CliRunner()


def test_cli_fold_writes_a_folded_checkpoint_and_reports(tmp_path):
    source = nx.save_checkpoint(
        tmp_path / "m.pt",
        randomise_for_folding(nx.create_model("procresnet166").eval()),
        arch="procresnet166",
    )
    result = runner.invoke(app, ["fold", str(source), "-o", str(tmp_path / "f.pt"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] and report["output"] == str(tmp_path / "f.pt")
    assert "ChannelAffine" not in report["ops_after"] and "BatchNorm2d" not in report["ops_after"]
    assert report["stream_bn"] == {"removed": 55, "kept": 0}
    assert math.isclose(report["limits"]["float32"], 1e-5)
    assert nx.load_checkpoint(tmp_path / "f.pt").folded
    table = runner.invoke(app, ["fold", str(source), "-o", str(tmp_path / "g.pt"), "--keep-stream-bn"])
    assert table.exit_code == 0 and "PASS" in table.stdout and "kept" in table.stdout


def test_cli_fold_exits_1_and_writes_nothing_when_the_check_fails(tmp_path, monkeypatch):
    from normresnet_export.fold import api

    source = nx.save_checkpoint(tmp_path / "m.pt", nx.create_model("resnet20").eval(), arch="resnet20")
    monkeypatch.setattr(api, "default_tolerance", lambda model: FoldTolerance(0.0, 0.0, noise_factor=0.0))
    result = runner.invoke(app, ["fold", str(source), "-o", str(tmp_path / "f.pt")])
    assert result.exit_code == 1 and "FAIL" in result.stdout
    assert not (tmp_path / "f.pt").exists()


def test_cli_fold_bad_input_is_exit_2(tmp_path):
    result = runner.invoke(app, ["fold", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "f.pt")])
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and "no such file" in result.stderr
