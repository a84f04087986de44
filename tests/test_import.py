"""Importing the research codes' checkpoints: every on-disk format, inference, cross-checks, refusals.

Each test writes a file in the exact layout the spec describes (our own code producing that
layout), using the weights of ``refweights`` under the *original* key names. Where the
reference set has the model, the imported model must reproduce the logits the *original
code* computed on those weights (``expect/reference_logits.json``).
"""

from __future__ import annotations

import io
import json
import os
import sys
import types
import zipfile
from functools import cache
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app
from normresnet_export.export.diracnet_layout import export_diracnet_layout
from normresnet_export.nn import dirac_delta
from tests.refweights import reference_input, reference_state_dict

CASES = json.loads((Path(__file__).parent / "expect" / "reference_logits.json").read_text())
RTOL = 1e-5  # relative to the largest logit; the reference set itself agrees to ~3e-7
runner = CliRunner()


@cache
def _original_once(name: str) -> dict[str, torch.Tensor]:
    # Hashing tens of millions of values takes seconds for the ImageNet models, and several tests
    # use the same case: make each once. Tests only build new dicts from it, never change a tensor.
    case = CASES[name]
    return reference_state_dict(case["keys"], tau=case["tau"])


def _original(name: str) -> dict[str, torch.Tensor]:
    """The case's weights under the original key names (a fresh dict each call: tests edit its keys)."""
    return dict(_original_once(name))


def _assert_reproduces(checkpoint: nx.Checkpoint, name: str) -> None:
    case = CASES[name]
    with torch.no_grad():
        logits = checkpoint.model(reference_input(case["input_shape"]))
    expected = torch.tensor(case["logits"])
    error = ((logits - expected).abs().max() / expected.abs().max()).item()
    assert error <= RTOL, f"{name}: max relative logit error {error:.2e}"


def _prefixed(state: dict[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in state.items()}


# ----------------------------------------------------------------------------------------- ProcResNet


@pytest.mark.parametrize(
    ("name", "arch"),
    [("procresnet166", "procresnet166"), ("procresnet_baseline164", "procresnet_baseline164")],
)
def test_procresnet_main_py_checkpoints(tmp_path, name, arch):
    path = tmp_path / "ckpt.pth"  # results/<model>_<date>_0/ckpt.pth: DataParallel keys, test accuracy, epoch
    torch.save({"net": _prefixed(_original(name)), "acc": 93.1, "epoch": 141}, path)
    checkpoint = nx.import_checkpoint(path)
    assert checkpoint.arch == arch and checkpoint.model_kwargs["num_classes"] == 10
    assert checkpoint.metrics == {"top1": 93.1, "epoch": 141, "imported_from": "procresnet"}
    assert checkpoint.preprocessing == nx.preprocess.PRESETS["cifar-wrn"]
    _assert_reproduces(checkpoint, name)


# ----------------------------------------------------------------------------------------- LeNo


@pytest.mark.parametrize(
    ("name", "leno_arch", "arch"),
    [
        ("lenoresnet50", "lenoresnet", "lenoresnet50"),
        ("leno_preactresnet50", "preactresnet", "leno_baseline_preactresnet50"),
        ("leno_resnet50", "resnet", "resnet50"),
    ],
)
def test_leno_main_py_checkpoints(tmp_path, name, leno_arch, arch):
    path = tmp_path / "model_best.pth.tar"
    torch.save(
        {
            "epoch": 90,
            "arch": leno_arch,
            "state_dict": _prefixed(_original(name)),
            "best_acc1": torch.tensor(76.2),
            "val_acc1": torch.tensor(76.0),
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.001, "params": [0, 1]}]},
        },
        path,
    )
    checkpoint = nx.import_checkpoint(path)
    assert checkpoint.arch == arch and checkpoint.model_kwargs["num_classes"] == 10
    assert checkpoint.metrics["top1"] == pytest.approx(76.2) and checkpoint.metrics["epoch"] == 90
    _assert_reproduces(checkpoint, name)


def test_leno_half_precision_checkpoints_import_as_float32_unless_asked(tmp_path):
    half = {k: v.half() if v.is_floating_point() else v for k, v in _original("lenoresnet50").items()}
    path = tmp_path / "checkpoint.pth.tar"
    torch.save(
        {"epoch": 3, "arch": "lenoresnet", "state_dict": _prefixed(half), "best_acc1": torch.tensor(1.0)},
        path,
    )
    checkpoint = nx.import_checkpoint(path)
    assert all(p.dtype == torch.float32 for p in checkpoint.model.parameters())
    expected = nx.create_model("lenoresnet50", num_classes=10).eval()
    expected.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in half.items()})
    x = reference_input((2, 3, 64, 64))
    with torch.no_grad():
        torch.testing.assert_close(checkpoint.model(x), expected(x), rtol=0, atol=0)
    kept = nx.import_checkpoint(path, keep_half=True)
    assert all(p.dtype == torch.float16 for p in kept.model.parameters())


# ----------------------------------------------------------------------------------------- tau-ResNet


_TAU_CLASSES = {  # case -> (module path, network class, block class)
    "tau_resnet20": ("models.resnet_cifar", "ResNet", "BasicBlock"),
    "tau_resnet20_nobn": ("models.resnet_cifar_nobn", "ResNet_NoBN", "BasicBlock_NoBN"),
    "tau_resnet50": ("models.resnet_imagenet", "ResNet", "Bottleneck"),
    "tau_resnet50_nobn": ("models.resnet_imagenet_nobn", "ResNet_NoBN", "Bottleneck_NoBN"),
}


def _pickled_tau_model(name: str, monkeypatch: pytest.MonkeyPatch, tau: float | None) -> nn.Module:
    """The object tau-ResNet's scripts pickle: DataParallel(ResNet(...)) of the scripts' own classes.

    The classes are stand-ins importable under the scripts' module paths only while the
    test saves the file; the importer must read it without them.
    """
    module_path, network_name, block_name = _TAU_CLASSES[name]
    package = types.ModuleType("models")
    module = types.ModuleType(module_path)
    network_class = type(network_name, (nn.Module,), {"__module__": module_path})
    block_class = type(block_name, (nn.Module,), {"__module__": module_path})
    setattr(module, network_name, network_class)
    setattr(module, block_name, block_class)
    monkeypatch.setitem(sys.modules, "models", package)
    monkeypatch.setitem(sys.modules, module_path, module)

    state = _original(name)
    root = network_class()
    shared_tau = nn.Parameter(state["tau"].clone()) if "tau" in state else None
    containers: dict[str, nn.Module] = {"": root}

    def container(path: str) -> nn.Module:
        if path not in containers:
            parent, _, leaf = path.rpartition(".")
            kind = (
                block_class
                if leaf.isdigit() and parent.startswith("layer") and "." not in parent
                else nn.Sequential
            )
            containers[path] = kind()
            container(parent).add_module(leaf, containers[path])
        return containers[path]

    for key, tensor in state.items():
        owner, _, leaf = key.rpartition(".")
        if leaf == "tau":
            container(owner).register_parameter("tau", shared_tau)  # one parameter in every block
        elif leaf.startswith("bias") and tensor.numel() == 1 and owner.count(".") == 1:
            container(owner).register_parameter(leaf, nn.Parameter(tensor.clone()))
    for key, tensor in state.items():  # the layers themselves, from the shapes
        owner, _, leaf = key.rpartition(".")
        if leaf != "weight" or (owner in containers and not isinstance(containers[owner], nn.Sequential)):
            continue
        if tensor.dim() == 4:
            layer: nn.Module = nn.Conv2d(tensor.shape[1], tensor.shape[0], tensor.shape[2], bias=False)
        elif tensor.dim() == 2:
            layer = nn.Linear(tensor.shape[1], tensor.shape[0])
        else:
            layer = nn.BatchNorm2d(tensor.shape[0])
        parent, _, child = owner.rpartition(".")
        container(parent).add_module(child, layer)
    root.load_state_dict(state)
    if tau is not None:  # the BN variant keeps tau as a plain attribute on the network and every block
        for module in [root, *(m for m in root.modules() if isinstance(m, block_class))]:
            module.tau = tau
    return nn.DataParallel(root)


@pytest.mark.parametrize("name", sorted(_TAU_CLASSES))
def test_tau_resnet_pickled_models_import_without_their_classes(tmp_path, monkeypatch, name):
    tau = CASES[name]["tau"]
    net = _pickled_tau_model(name, monkeypatch, None if name.endswith("_nobn") else tau)
    path = tmp_path / f"{name.removeprefix('tau_')}_sess1_tau{tau:.5f}_0.ckpt"  # the scripts' file name
    torch.save({"net": net, "acc": 91.2, "epoch": 150, "rng_state": torch.get_rng_state()}, path)
    monkeypatch.undo()  # the scripts' classes are gone again, as on a user's machine
    assert "models" not in sys.modules
    checkpoint = nx.import_checkpoint(path)
    assert checkpoint.arch == name
    assert checkpoint.model_kwargs["tau"] == pytest.approx(tau)
    assert checkpoint.metrics["top1"] == 91.2
    assert "models" not in sys.modules  # nothing was imported from the file
    _assert_reproduces(checkpoint, name)


def test_tau_batchnorm_variant_without_a_recorded_tau_needs_one(tmp_path, monkeypatch):
    net = _pickled_tau_model("tau_resnet20", monkeypatch, tau=None)
    path = tmp_path / "renamed.ckpt"  # neither a tau attribute nor the scripts' file name
    torch.save({"net": net, "acc": 90.0, "epoch": 1}, path)
    monkeypatch.undo()
    with pytest.raises(nx.InputError, match=r"does not record tau.*--model-arg tau=VALUE"):
        nx.import_checkpoint(path)
    checkpoint = nx.import_checkpoint(path, tau=0.3)
    _assert_reproduces(checkpoint, "tau_resnet20")


def test_a_tau_style_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch):
    canary = tmp_path / "canary"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {canary}",))

    net = _pickled_tau_model("tau_resnet20", monkeypatch, tau=0.3)
    net.module.extra = Payload()  # a tau-ResNet checkpoint that also carries a payload
    path = tmp_path / "resnet20_1_tau0.30000_0.ckpt"
    torch.save({"net": net, "acc": 1.0, "epoch": 1}, path)
    monkeypatch.undo()
    with pytest.raises(nx.CheckpointError, match=r"refused to unpickle (posix|os|nt)\.system"):
        nx.import_checkpoint(path)
    assert not canary.exists()


def test_a_pickle_of_unknown_classes_is_refused_without_running_it(tmp_path):
    canary = tmp_path / "canary"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {canary}",))

    torch.save({"net": Payload(), "acc": 1.0, "epoch": 1}, tmp_path / "x.ckpt")
    with pytest.raises(nx.CheckpointError, match="refused to load"):
        nx.import_checkpoint(tmp_path / "x.ckpt", source="tau-resnet")
    assert not canary.exists()


# ----------------------------------------------------------------------------------------- torch-resnet

TORCH_RESNET = sorted(n for n in CASES if n.startswith("torchresnet_"))


@pytest.mark.parametrize("name", TORCH_RESNET)
def test_torch_resnet_trainer_checkpoints_are_recognised_in_full(tmp_path, name):
    """Architecture, width and shortcut option come from the tensors alone."""
    path = tmp_path / "best.ckpt"
    torch.save(
        {
            "model": _original(name),
            "optimizer": {"state": {}},
            "epoch": 160,
            "step": 62_500,
            "val_metric": 0.93,
        },
        path,
    )
    checkpoint = nx.import_checkpoint(path)
    case = CASES[name]
    assert checkpoint.arch == case["arch"]
    assert checkpoint.model_kwargs["shortcut"] == case["model_kwargs"].get("shortcut", "B")
    assert checkpoint.metrics["val_metric"] == 0.93
    _assert_reproduces(checkpoint, name)


def test_torch_resnet_plain_and_legacy_state_dicts(tmp_path):
    state = _original("torchresnet_resnet20_B")
    legacy = {k.replace("shortcut.0.conv.weight", "shortcut.0.weight"): v for k, v in state.items()}
    torch.save(legacy, tmp_path / "old.pt")  # torch-resnet < 0.0.2 named the projection shortcut.0.weight
    _assert_reproduces(nx.import_checkpoint(tmp_path / "old.pt"), "torchresnet_resnet20_B")
    pre = {
        k.replace("shortcut.conv.weight", "shortcut.weight"): v
        for k, v in _original("torchresnet_preactresnet20_C").items()
    }
    torch.save(pre, tmp_path / "old_preact.pt")
    _assert_reproduces(nx.import_checkpoint(tmp_path / "old_preact.pt"), "torchresnet_preactresnet20_C")


# ----------------------------------------------------------------------------------------- DiracNet


@cache
def _functional_once(name: str) -> dict[str, torch.Tensor]:
    case = CASES[name]
    params = reference_state_dict(case["keys"])
    for key, shape in case["keys"]:
        if key.startswith("eye"):
            params[key] = dirac_delta(shape)
    return params


def _functional(name: str) -> dict[str, torch.Tensor]:
    """The functional parameter dict as define_diracnet returns it: learnable tensors, statistics, eyes.

    Made once per case (as ``_original``); each call gives a fresh dict, since tests replace entries.
    """
    return dict(_functional_once(name))


@pytest.mark.parametrize("name", ["diracnet_cifar16_1", "diracnet18"])
def test_diracnet_train_py_checkpoints(tmp_path, name):
    path = tmp_path / "model.pt7"
    torch.save({"params": _functional(name), "epoch": 120, "optimizer": {"state": {}}}, path)
    checkpoint = nx.import_checkpoint(path)
    assert checkpoint.arch == name and checkpoint.metrics["epoch"] == 120
    _assert_reproduces(checkpoint, name)


@pytest.mark.parametrize("name", ["diracnet_cifar16_1", "diracnet18"])
def test_diracnet_published_unfolded_checkpoints(tmp_path, name):
    flat = _functional(name)
    stats = {k: v for k, v in flat.items() if k.startswith("eye") or "running" in k}
    params = {k: v for k, v in flat.items() if k not in stats}
    torch.save({"params": params, "stats": stats}, tmp_path / f"{name}-v2_checkpoint.pth")
    _assert_reproduces(nx.import_checkpoint(tmp_path / f"{name}-v2_checkpoint.pth"), name)


def test_diracnet_eye_entries_must_be_dirac_tensors(tmp_path):
    params = _functional("diracnet_cifar16_1")
    params["eye16_16_3_3"] = torch.ones(16, 16, 3, 3)
    torch.save({"params": params}, tmp_path / "bad.pt7")
    with pytest.raises(nx.InputError, match="eye16_16_3_3 is not the Dirac tensor"):
        nx.import_checkpoint(tmp_path / "bad.pt7")


class _PublishedFoldedDiracNet(nn.Module):
    """The published folded module rebuilt with nested containers (its dotted child names are refused
    by current PyTorch): the same keys, AvgPool2d(7) and Linear(512, 1000) built in."""

    def __init__(self, blocks: tuple[int, ...]) -> None:
        super().__init__()
        features: list[tuple[str, nn.Module]] = [
            ("conv", nn.Conv2d(3, 64, 7, 2, 3)),
            ("max_pool0", nn.MaxPool2d(3, 2, 1)),
        ]
        in_channels = 64
        for g, (count, width) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True)):
            group = nn.Sequential()
            for b in range(count):
                group.add_module(f"block{b}", nn.Sequential())
                group[b].add_module("relu", nn.ReLU())
                group[b].add_module("conv", nn.Conv2d(in_channels, width, 3, 1, 1))
                in_channels = width
            features.append((f"group{g}", group))
            if g < 3:
                features.append((f"max_pool{g + 1}", nn.MaxPool2d(2)))
        features += [("last_relu", nn.ReLU()), ("avg_pool", nn.AvgPool2d(7))]
        self.features = nn.Sequential()
        for child, module in features:
            self.features.add_module(child, module)
        self.fc = nn.Linear(512, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


def test_diracnet_folded_weights_flow_both_ways(tmp_path):
    unfolded = nx.import_checkpoint(_write(tmp_path / "model.pt7", {"params": _functional("diracnet18")}))
    folded = nx.fold_model(unfolded.model).model
    ours = nx.Checkpoint(model=folded, arch="diracnet18", model_kwargs=unfolded.model_kwargs, folded=True)
    exported = export_diracnet_layout(ours, tmp_path / "diracnet18v2folded-0000.pth").path
    original = _PublishedFoldedDiracNet((4, 4, 4, 4)).eval()
    original.load_state_dict(torch.load(exported, weights_only=True))  # strict: the published keys exactly
    x = torch.randn(1, 3, 224, 224)  # the published module pools with AvgPool2d(7): 224×224 only
    with torch.no_grad():
        torch.testing.assert_close(original(x), folded(x), rtol=1e-5, atol=1e-5)
    back = nx.import_checkpoint(exported)  # recognised as the published folded layout
    assert back.folded and back.arch == "diracnet18"
    with torch.no_grad():
        torch.testing.assert_close(back.model(x), folded(x), rtol=0, atol=0)
        _assert_reproduces(back, "diracnet18")  # and still the original code's logits


def _write(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


# ----------------------------------------------------------------------------------------- torchvision

torchvision = pytest.importorskip("torchvision")


@pytest.mark.parametrize(
    ("builder", "arch"),
    [("resnet18", "resnet18"), ("resnet50", "resnet50"), ("wide_resnet50_2", "wide_resnet50_2")],
)
def test_torchvision_state_dicts(tmp_path, builder, arch):
    torch.manual_seed(0)
    reference = getattr(torchvision.models, builder)(weights=None).eval()
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
    torch.save(reference.state_dict(), tmp_path / f"{builder}.pth")
    if builder == "resnet50":  # LeNo's resnet baseline and tau_resnet50 have these tensors too
        ambiguous = r"could come from torchvision, leno, tau-resnet.*pass --from"
        with pytest.raises(nx.InputError, match=ambiguous):
            nx.import_checkpoint(tmp_path / f"{builder}.pth")
    else:  # only torchvision has an 18-layer or a wide ResNet-50: no --from needed
        assert nx.import_checkpoint(tmp_path / f"{builder}.pth").metrics["imported_from"] == "torchvision"
    checkpoint = nx.import_checkpoint(tmp_path / f"{builder}.pth", source="torchvision")
    assert checkpoint.arch == arch and checkpoint.preprocessing == nx.preprocess.PRESETS["imagenet"]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(checkpoint.model(x), reference(x), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------- errors


def test_contradicting_options_name_both_values(tmp_path):
    path = _write(
        tmp_path / "ckpt.pth", {"net": _prefixed(_original("procresnet166")), "acc": 1.0, "epoch": 1}
    )
    with pytest.raises(
        nx.InputError, match="--arch 'procresnet274' contradicts the checkpoint, which has 'procresnet166'"
    ):
        nx.import_checkpoint(path, arch="procresnet274")
    with pytest.raises(nx.InputError, match="--num-classes 100 contradicts the checkpoint, which has 10"):
        nx.import_checkpoint(path, num_classes=100)
    with pytest.raises(nx.InputError, match=r"--from leno does not fit .*ProcResNet_PyTorch main\.py"):
        nx.import_checkpoint(path, source="leno")


def test_every_source_tensor_must_land_and_every_target_be_filled(tmp_path):
    state = _prefixed(_original("procresnet166"))
    extra = {**state, "module.layer1.0.bn9.weight": torch.ones(3)}
    with pytest.raises(nx.InputError, match=r"unexpected: layer1\.0\.bn9\.weight"):
        nx.import_checkpoint(_write(tmp_path / "a.pth", {"net": extra, "acc": 1.0, "epoch": 1}))
    missing = {k: v for k, v in state.items() if k != "module.layer2.3.conv2.weight"}
    with pytest.raises(nx.InputError, match=r"missing: layer2\.3\.conv2\.weight"):
        nx.import_checkpoint(_write(tmp_path / "b.pth", {"net": missing, "acc": 1.0, "epoch": 1}))
    resized = {**state, "module.linear.bias": torch.zeros(7)}
    with pytest.raises(nx.InputError, match=r"wrong shape: linear\.bias \[7\] \(expected \[10\]\)"):
        nx.import_checkpoint(_write(tmp_path / "c.pth", {"net": resized, "acc": 1.0, "epoch": 1}))


def _cuda_tagged(path: Path) -> Path:
    """Rewrite a torch.save zip so its tensors say they were saved on cuda:0 (as on a training box)."""
    raw = path.read_bytes()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith("data.pkl"):
                assert b"X\x03\x00\x00\x00cpu" in data
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            target.writestr(info, data)
    path.write_bytes(out.getvalue())
    return path


def test_tensors_saved_on_a_gpu_load_on_the_cpu(tmp_path):
    path = _write(
        tmp_path / "best.ckpt", {"model": _original("torchresnet_resnet20_A"), "epoch": 1, "step": 1}
    )
    _assert_reproduces(nx.import_checkpoint(_cuda_tagged(path)), "torchresnet_resnet20_A")


def test_cli_import_and_its_errors(tmp_path):
    path = _write(
        tmp_path / "ckpt.pth",
        {"net": _prefixed(_original("procresnet_baseline164")), "acc": 92.0, "epoch": 30},
    )
    result = runner.invoke(app, ["import", str(path), "-o", str(tmp_path / "out.pt"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["arch"] == "procresnet_baseline164" and summary["source"] == "procresnet"
    assert summary["metrics"]["top1"] == 92.0
    _assert_reproduces(nx.load_checkpoint(tmp_path / "out.pt"), "procresnet_baseline164")
    table = runner.invoke(app, ["import", str(path), "-o", str(tmp_path / "out2.pt")])
    assert "imported procresnet checkpoint as procresnet_baseline164" in table.stdout
    cut = tmp_path / "cut.pth"
    cut.write_bytes(path.read_bytes()[:5000])
    for args, message in [
        (["import", str(path), "--arch", "resnet20", "-o", "x.pt"], "contradicts the checkpoint"),
        (["import", str(path), "--num-classes", "100", "-o", "x.pt"], "--num-classes 100 contradicts"),
        (["import", str(cut), "-o", "x.pt"], "damaged or truncated"),
        (["import", str(path), "--from", "diracnet", "-o", "x.pt"], "--from diracnet does not fit"),
        (["import", str(path), "--model-arg", "tau", "-o", "x.pt"], "--model-arg takes KEY=VALUE"),
    ]:
        failed = runner.invoke(app, args)
        assert failed.exit_code == 2, (args, failed.output)
        assert (
            failed.stderr.startswith("error: ")
            and message in failed.stderr
            and failed.stderr.count("\n") == 1
        )


def test_cli_export_writes_the_published_diracnet_layout(tmp_path):
    unfolded = nx.import_checkpoint(_write(tmp_path / "model.pt7", {"params": _functional("diracnet18")}))
    unfolded.save(tmp_path / "d18.pt")
    assert (
        runner.invoke(app, ["fold", str(tmp_path / "d18.pt"), "-o", str(tmp_path / "d18f.pt")]).exit_code == 0
    )
    result = runner.invoke(
        app, ["export", str(tmp_path / "d18f.pt"), "--layout", "diracnet", "-o", str(tmp_path / "out.pth")]
    )
    assert result.exit_code == 0, result.output
    assert len(torch.load(tmp_path / "out.pth", weights_only=True)) == 36
    refused = runner.invoke(app, ["export", str(tmp_path / "d18.pt"), "--layout", "diracnet", "-o", "x.pth"])
    assert refused.exit_code == 2 and "is not folded" in refused.stderr
