"""Removing residual-stream BatchNorms: the identity on blocks and stages, the limits, the records.

The registry-wide fold sweep (tests/test_fold.py) runs with this pass on, so every
registered network is checked there; here are the targeted properties: single blocks and
stages of every skip kind, statistics that the identity refuses, trained weights, the
report's counts, folded checkpoints and the ONNX graph.
"""

from __future__ import annotations

import collections
import json

import onnx
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app
from normresnet_export.data.digits import load_digits
from normresnet_export.fold import fold_model, stream_bn_removed
from normresnet_export.fold import functional as Fold
from normresnet_export.fold.stream import MAX_OFFSET_RATIO
from normresnet_export.models.lenoresnet import _leno_stage
from normresnet_export.models.procresnet import ProcResNet, ProcResNetBaseline
from normresnet_export.models.torch_resnet import PreActResNet, ResNetSpec
from normresnet_export.nn import GlobalAvgPool2d
from normresnet_export.nn.shortcuts import make_shortcut
from tests.helpers import randomise_batchnorm

KEPT = "→ ChannelAffine"


class _Block(nn.Module):
    """A pre-activation block with a chosen skip, conv biases and ReLU spelling."""

    def __init__(self, cin: int, cout: int, stride: int, shortcut: str, bias: bool, relu_module: bool):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True) if relu_module else None
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=bias)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=bias)
        self.shortcut = make_shortcut(shortcut, cin, cout, stride)
        self.on_activation = self.shortcut.requires_activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In place after the BatchNorm: once the BN is gone the ReLU reads the stream itself.
        a = self.relu1(self.bn1(x)) if self.relu1 is not None else F.relu(self.bn1(x))
        skip = self.shortcut(a) if self.on_activation else self.shortcut(x)
        return self.conv2(F.relu(self.bn2(self.conv1(a)))) + skip


class _Stage(nn.Module):
    """stem conv → blocks → BN → ReLU → global pool → linear: a pre-activation network in small."""

    def __init__(self, blocks: list[tuple[int, int, str]], *, bias: bool, relu_module: bool, stem: str):
        super().__init__()
        width = blocks[0][0]
        self.stem = nn.Conv2d(3, width, 3, 1, 1, bias=bias)
        self.pool = nn.MaxPool2d(3, 2, 1) if stem == "maxpool" else None
        layers = []
        for cout, stride, shortcut in blocks:
            layers.append(_Block(width, cout, stride, shortcut, bias, relu_module))
            width = cout
        self.blocks = nn.Sequential(*layers)
        self.norm = nn.BatchNorm2d(width)
        self.avgpool = GlobalAvgPool2d()
        self.head = nn.Linear(width, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        if self.pool is not None:
            x = self.pool(x)
        return self.head(self.avgpool(F.relu(self.norm(self.blocks(x)))))


@st.composite
def stages(draw):
    """1-3 blocks; each may widen (by 2 or 4), subsample, and take skip A, B, C or a 3×3 projection."""
    width = draw(st.sampled_from([2, 4]))
    blocks = []
    for _ in range(draw(st.integers(1, 3))):
        stride = draw(st.sampled_from([1, 2]))
        cout = width + draw(st.sampled_from([0, 2, 4]))
        shortcut = draw(st.sampled_from(["A", "B", "C", "conv"]))
        blocks.append((cout, stride, shortcut))
        width = cout
    return blocks


@settings(max_examples=20, deadline=None)
@given(
    blocks=stages(),
    bias=st.booleans(),
    relu_module=st.booleans(),
    stem=st.sampled_from(["conv", "maxpool"]),
    seed=st.integers(0, 2**16),
)
def test_every_stream_batchnorm_of_a_stage_leaves_exactly(blocks, bias, relu_module, stem, seed):
    torch.manual_seed(seed)
    model = randomise_batchnorm(_Stage(blocks, bias=bias, relu_module=relu_module, stem=stem), seed=seed)
    result = fold_model(model.eval(), input_size=(3, 10, 10), seed=seed)
    report = result.report
    assert report.deviations["float64"].max_rel <= 1e-10 and report.passed, report.to_dict()
    ops = report.ops_after
    assert "BatchNorm2d" not in ops and "ChannelAffine" not in ops and "mul" not in ops
    streams = report.stream_bn_counts()
    assert streams["kept"] == 0 and streams["removed"] == len(report.stream_bn_removed)
    # what the ordinary fold leaves (a BN after a sum of a conv and a skip) the stream pass removed
    assert streams["removed"] == report.ops_before["BatchNorm2d"] - sum(
        n for pattern, n in report.folded.items() if pattern.startswith("BatchNorm2d into")
    )


def _set_channel(bn: nn.BatchNorm2d, channel: int, gamma: float, beta: float) -> None:
    with torch.no_grad():
        bn.weight[channel], bn.bias[channel] = gamma, beta


def _tiny_leno() -> nn.Module:
    """Two LeNo stages (start, first middle, middle, end; then start, first middle, end), narrow."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, 1, 1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        _leno_stage(16, 4, 4),
        _leno_stage(16, 8, 3),
        GlobalAvgPool2d(),
        nn.Linear(32, 10),
    )


def _tiny_preact(shortcut: str = "B", *, small_images: bool = True) -> nn.Module:
    spec = ResNetSpec("basic", (2, 2, 2), (4, 8, 16), 4, small_images=small_images)
    return PreActResNet(spec, num_classes=10, shortcut=shortcut)


FAMILIES = {
    "preact": lambda: _tiny_preact("B"),
    "preact_A_imagenet_stem": lambda: _tiny_preact("A", small_images=False),
    "procresnet": lambda: ProcResNet(1, num_classes=10),
    "procresnet_baseline": lambda: ProcResNetBaseline(2, num_classes=10),
    "leno": _tiny_leno,
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_negative_and_tiny_scales_keep_their_batchnorm_and_say_why(family):
    torch.manual_seed(0)
    model = randomise_batchnorm(FAMILIES[family]().eval())
    baseline = fold_model(model, check=False).report
    removed = baseline.stream_bn_removed
    assert len(removed) >= 2
    negative, tiny, tiny_centred = removed[0], removed[-1], removed[len(removed) // 2]
    bns = dict(model.named_modules())
    _set_channel(bns[negative], 0, -0.7, 0.1)  # a < 0: relu(a·x + b) is not a·relu(x + b/a)
    _set_channel(bns[tiny], 1, 1e-9, 0.2)  # b/a = 2e8: exact, but the stream would lose its digits
    _set_channel(bns[tiny_centred], 0, 1e-9, 0.0)  # b/a = -mean: as good as any other channel
    report = fold_model(model, input_size=(3, 32, 32)).report
    assert report.passed, report.to_dict()
    assert report.deviations["float64"].max_rel <= 1e-10
    refused = {u.node.split(" (")[0]: u for u in report.unfolded if "channels" in u.node}
    assert set(refused) == {negative, tiny}
    assert all("(1 of " in u.node and "a ≤ 0" in u.reason and KEPT in u.op for u in refused.values())
    assert tiny_centred in report.stream_bn_removed
    assert not {negative, tiny} & set(report.stream_bn_removed)
    counts = report.stream_bn_counts()
    assert counts["kept"] == report.ops_after["ChannelAffine"] >= baseline.stream_bn_counts()["kept"] + 2
    assert sum(counts.values()) == sum(baseline.stream_bn_counts().values())


def test_the_offset_limit_follows_the_channels_own_statistics():
    mean, var = torch.tensor([0.0, 0.0, 5.0, 0.0]), torch.tensor([1.0, 1.0, 1.0, 1.0])
    gamma, beta = torch.tensor([1.0, 1.0, 0.1, -1.0]), torch.tensor([0.0, 30.0, 2.0, 0.0])
    scale, offset, usable = Fold.stream_bn_split(
        mean, var, 0.0, gamma, beta, max_offset_ratio=MAX_OFFSET_RATIO, min_scale=1e-20
    )
    torch.testing.assert_close(offset[:3], torch.tensor([0.0, 30.0, 15.0], dtype=torch.float64))
    # |c| ≤ 16 (|mean| + std): 30 > 16 × 1 is refused, 15 ≤ 16 × 6 is not; a < 0 is never usable
    assert usable.tolist() == [True, False, True, False]
    a, b = Fold.batchnorm_affine(mean, var, 0.0, gamma, beta)
    x = torch.randn(1000, 4, dtype=torch.float64) * 3 + mean.double()
    torch.testing.assert_close(F.relu(a * x + b)[:, :3], (scale * F.relu(x + offset))[:, :3])


def test_where_the_rule_does_not_hold_the_batchnorm_stays_with_the_reason():
    class Unsafe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.branch = nn.Conv2d(4, 4, 3, padding=1)
            self.side = nn.Conv2d(4, 4, 3, padding=1)  # reads the stream itself, through zero padding

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.stem(x)
            return self.branch(F.relu(self.bn(x))) + self.side(x)

    torch.manual_seed(0)
    report = fold_model(randomise_batchnorm(Unsafe().eval()), input_size=(3, 9, 9)).report
    assert report.passed and report.deviations["float64"].max_rel <= 1e-12
    (kept,) = [u for u in report.unfolded if KEPT in u.op]
    assert kept.node == "bn" and "also feeds Conv2d (side), which needs it unshifted" in kept.reason
    features = randomise_batchnorm(_tiny_preact().eval())
    features.set_head(nn.Identity())  # the ReLU's output is the network's output: no layer takes the scale
    report = fold_model(features, input_size=(3, 9, 9)).report
    assert report.passed and report.stream_bn_counts()["kept"] == 1
    assert any(u.node == "norm" and "the network output" in u.reason for u in report.unfolded)


def test_keep_stream_bn_folds_as_before():
    torch.manual_seed(0)
    model = randomise_batchnorm(ProcResNetBaseline(1, num_classes=10).eval())
    kept = fold_model(model, keep_stream_bn=True, input_size=(3, 9, 9)).report
    removed = fold_model(model, input_size=(3, 9, 9)).report
    # every block's bn1 and shortcut BN stay; the final bn2 normalises a sum of two convs and folds
    assert kept.stream_bn_removed is None and kept.stream_bn_counts() == {"removed": 0, "kept": 6}
    assert kept.ops_after["ChannelAffine"] == 6
    assert removed.stream_bn_counts() == {"removed": 2, "kept": 4}
    reasons = {u.reason for u in removed.unfolded if KEPT in u.op}
    assert "another BatchNorm that reads the same stream carries its offset" in reasons
    assert "the stream it reads comes from relu, which cannot carry an offset" in reasons
    as_json = json.loads(json.dumps(removed.to_dict()))
    assert nx.fold.FoldReport.from_dict(as_json).to_dict() == as_json
    assert as_json["stream_bn"] == {"removed": 2, "kept": 4}


# ------------------------------------------------------------------------------------- trained


def _digits8() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1,797 digits at their own 8×8 resolution (cheap to train on), normalised."""
    images, labels = load_digits()
    images = F.interpolate(images.float() / 255.0, size=8, mode="bilinear", align_corners=False)
    return (images - 0.5) / 0.5, labels


@pytest.mark.parametrize(("family", "epochs"), [("procresnet", 2), ("leno", 3)])
def test_trained_networks_fold_to_the_same_digits(family, epochs):
    images, labels = _digits8()
    torch.manual_seed(0)
    model = FAMILIES[family]()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    train = torch.arange(1500)
    for _ in range(epochs):
        for batch in train[torch.randperm(len(train))].split(64):
            optimizer.zero_grad()
            F.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimizer.step()
    model.eval()
    result = fold_model(model, input_size=(3, 8, 8))
    assert result.report.passed and result.report.deviations["float64"].max_rel <= 1e-10
    assert result.report.stream_bn_counts()["removed"] >= 2
    with torch.no_grad():
        before, after = model(images).argmax(1), result.model(images).argmax(1)
    assert torch.equal(before, after)  # 100% top-1 agreement on all 1,797 real images
    assert (before[1500:] == labels[1500:]).float().mean() > 0.7  # and the net really learned (held-out)


# ------------------------------------------------------------------------------------- files


@pytest.fixture(scope="module")
def preact20():
    torch.manual_seed(0)
    return randomise_batchnorm(nx.create_model("preact_resnet20").eval())


def test_folded_checkpoints_record_and_rebuild_the_removed_batchnorms(tmp_path, preact20):
    x = torch.randn(2, 3, 8, 8)
    for keep in (False, True):
        result = fold_model(preact20, input_size=(3, 8, 8), keep_stream_bn=keep)
        path = nx.save_checkpoint(
            tmp_path / f"{keep}.safetensors",
            result.model,
            arch="preact_resnet20",
            folded=True,
            fold_report=result.report.to_dict(),
        )
        loaded = nx.load_checkpoint(path)
        assert stream_bn_removed(loaded.model) == ([] if keep else result.report.stream_bn_removed)
        with torch.no_grad():
            assert torch.equal(loaded.model(x), result.model(x))
    # A folded checkpoint written before the pass existed has no record: it rebuilds as it was folded.
    old = fold_model(preact20, input_size=(3, 8, 8), keep_stream_bn=True)
    path = nx.save_checkpoint(tmp_path / "old.pt", old.model, arch="preact_resnet20", folded=True)
    payload = torch.load(path, weights_only=True)
    del payload["stream_bn_removed"]
    torch.save(payload, path)
    with torch.no_grad():
        assert torch.equal(nx.load_checkpoint(path).model(x), old.model(x))
    payload["stream_bn_removed"] = ["layers.0.0.bn2"]  # not a residual-stream BatchNorm of this net
    torch.save(payload, path)
    with pytest.raises(nx.CheckpointError, match="belongs to another architecture"):
        nx.load_checkpoint(path)


def test_onnx_of_a_folded_preact_net_has_no_batchnorm_mul_or_channel_add(tmp_path):
    from normresnet_export.export import export

    torch.manual_seed(0)
    model = randomise_batchnorm(_tiny_preact("A").eval())  # option A: subsampled, zero-padded skips
    # The TorchScript exporter writes the same operators as dynamo here, in a tenth of the time.
    result = export("onnx", model, tmp_path / "m.onnx", input_size=(3, 8, 8), exporter="torchscript")
    assert result.check.passed
    graph = onnx.load(tmp_path / "m.onnx").graph
    ops = collections.Counter(node.op_type for node in graph.node)
    assert not ops.keys() & {"BatchNormalization", "Mul", "Sub", "Div"}, ops
    constants = {i.name for i in graph.initializer} | {
        n.output[0] for n in graph.node if n.op_type == "Constant"
    }
    adds = [n for n in graph.node if n.op_type == "Add"]
    assert len(adds) == 6 and not any(set(n.input) & constants for n in adds)  # the residual sums only
    assert result.metadata["fold"]["stream_bn"] == {"removed": 7, "kept": 0}


runner = CliRunner()


def test_cli_keep_stream_bn(tmp_path, preact20):
    source = nx.save_checkpoint(tmp_path / "m.pt", preact20, arch="preact_resnet20")
    for flag, kept in (([], 0), (["--keep-stream-bn"], 10)):
        result = runner.invoke(
            app, ["fold", str(source), "-o", str(tmp_path / f"f{kept}.pt"), "--json", *flag]
        )
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["stream_bn"] == {"removed": 10 - kept, "kept": kept}
        assert report["ops_after"].get("ChannelAffine", 0) == kept
    refused = runner.invoke(
        app, ["export", str(source), "-o", str(tmp_path / "m.onnx"), "--no-fold", "--keep-stream-bn"]
    )
    assert refused.exit_code == 2 and "--keep-stream-bn" in refused.stderr
