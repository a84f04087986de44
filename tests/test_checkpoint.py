"""The checkpoint format: exact round trips, atomic writes, and clear refusals of everything else."""

from __future__ import annotations

import json
import os
import sys
import types
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import normresnet_export as nx
from normresnet_export import checkpoint as checkpoint_module
from tests.helpers import calibrate_batchnorm

CIFAR_PRE = nx.Preprocessing(
    input_size=(3, 32, 32), mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010), resize=32, crop=32
)
LABELS = [f"class{i}" for i in range(10)]


def _trained_like(name: str, **kwargs: object) -> nn.Module:
    """A model whose parameters and statistics are not the init values, with finite outputs."""
    torch.manual_seed(0)
    model = nx.create_model(name, **kwargs)
    with torch.no_grad():
        for tensor in model.parameters():
            tensor.add_(torch.rand_like(tensor) * 0.01)
    return calibrate_batchnorm(model, torch.randn(4, 3, 32, 32))


ROUND_TRIP = [
    ("resnet20", {"shortcut": "A"}),
    ("preact_resnet20", {"shortcut": "C"}),
    ("tau_resnet20", {"tau": 0.2}),
    ("tau_resnet20_nobn", {}),
    ("procresnet166", {}),
    ("diracnet_cifar16_1", {}),
]


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize(("name", "kwargs"), ROUND_TRIP, ids=[n for n, _ in ROUND_TRIP])
def test_round_trip_is_bit_exact(tmp_path, suffix, name, kwargs):
    model = _trained_like(name, **kwargs)
    path = nx.save_checkpoint(
        tmp_path / f"model{suffix}",
        model,
        arch=name,
        model_kwargs=kwargs,
        preprocessing=CIFAR_PRE,
        labels=LABELS,
        metrics={"top1": 91.5, "epoch": 3},
    )
    loaded = nx.load_checkpoint(path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        assert torch.isfinite(expected).all()
        assert torch.equal(loaded.model(x), expected)
    assert not loaded.model.training
    assert loaded.arch == name
    assert loaded.model_kwargs == nx.model_info(name).resolve_kwargs(**kwargs)
    assert loaded.preprocessing == CIFAR_PRE
    assert loaded.labels == LABELS
    assert loaded.metrics == {"top1": 91.5, "epoch": 3}
    assert loaded.versions["torch"] == torch.__version__
    assert loaded.num_classes == 10 and loaded.folded is False


def test_pt_file_is_a_plain_weights_only_dict_with_the_documented_fields(tmp_path):
    model = _trained_like("resnet20")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    train_state = {"optimizer": optimizer.state_dict(), "epoch": 4, "rng": torch.get_rng_state()}
    path = nx.save_checkpoint(tmp_path / "m.pt", model, arch="resnet20", train_state=train_state)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {
        "format",
        "version",
        "arch",
        "model_kwargs",
        "folded",
        "state_dict",
        "preprocessing",
        "labels",
        "metrics",
        "train_state",
        "versions",
        "fold_report",
    }
    assert raw["format"] == "normexport.checkpoint" and raw["version"] == 1
    assert raw["model_kwargs"] == {
        "num_classes": 10,
        "shortcut": "B",
        "drop_rate": 0.0,
        "zero_init_residual": False,
    }
    loaded = nx.load_checkpoint(path)
    restored = torch.optim.SGD(loaded.model.parameters(), lr=0.1, momentum=0.9)
    restored.load_state_dict(loaded.train_state["optimizer"])
    assert torch.equal(loaded.train_state["rng"], train_state["rng"])


def test_safetensors_header_carries_the_metadata_and_refuses_train_state(tmp_path):
    from safetensors import safe_open

    path = nx.save_checkpoint(
        tmp_path / "m.safetensors",
        _trained_like("tau_resnet20_nobn"),
        arch="tau_resnet20_nobn",
        labels=LABELS,
    )
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()["normexport"])
    assert meta["arch"] == "tau_resnet20_nobn" and meta["labels"] == LABELS
    with pytest.raises(nx.InputError, match="cannot hold train_state"):
        nx.save_checkpoint(
            tmp_path / "x.safetensors", nx.create_model("resnet20"), arch="resnet20", train_state={"epoch": 1}
        )


def test_safetensors_files_of_the_same_weights_are_byte_identical(tmp_path):
    # safetensors writes its metadata map in hash order; two keys came out in either order at random
    from safetensors.torch import load_file

    model = _trained_like("resnet20")
    blobs = {
        nx.save_checkpoint(tmp_path / f"m{i}.safetensors", model, arch="resnet20", labels=LABELS).read_bytes()
        for i in range(8)
    }
    assert len(blobs) == 1
    (blob,) = blobs
    length = int.from_bytes(blob[:8], "little")
    assert length % 8 == 0
    assert list(json.loads(blob[8 : 8 + length])["__metadata__"]) == ["format", "normexport"]
    loaded = load_file(str(tmp_path / "m0.safetensors"))
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded[name], tensor), name
    assert nx.load_checkpoint(tmp_path / "m0.safetensors").labels == LABELS


def test_default_tau_is_stored_explicitly(tmp_path):
    path = nx.save_checkpoint(tmp_path / "t.pt", nx.create_model("tau_resnet110"), arch="tau_resnet110")
    assert torch.load(path, weights_only=True)["model_kwargs"]["tau"] == pytest.approx(0.13608, abs=1e-5)


@pytest.mark.parametrize(
    ("built", "built_kwargs", "arch", "kwargs", "message"),
    [
        (
            "tau_resnet20",
            {"tau": 0.2},
            "tau_resnet20",
            {},
            r"Scale.*value=0\.2",
        ),  # tau is not in the state_dict
        ("resnet20", {"num_classes": 5}, "resnet20", {}, r"wrong shape: head\.weight \[5, 64\]"),
        ("resnet20", {"shortcut": "A"}, "resnet20", {}, r"missing: layers\.1\.0\.shortcut\.0\.conv\.weight"),
        ("resnet32", {}, "resnet20", {}, r"unexpected: layers\.0\.3\.conv1\.weight"),
        ("resnet20", {}, "resnet20", {"drop_rate": 0.5}, r"module layers\.0\.0\.dropout is \('Identity'"),
    ],
)
def test_saving_a_model_under_the_wrong_description_is_refused(
    tmp_path, built, built_kwargs, arch, kwargs, message
):
    info = nx.model_info(built)
    model = info.builder(**info.resolve_kwargs(**built_kwargs))  # no create_model record: the check decides
    with pytest.raises(nx.InputError, match=message):
        nx.save_checkpoint(tmp_path / "m.pt", model, arch=arch, model_kwargs=kwargs)
    assert list(tmp_path.iterdir()) == []


def test_bad_metadata_is_refused(tmp_path):
    model = nx.create_model("resnet20")
    with pytest.raises(nx.InputError, match="got 3 labels for a model with 10 classes"):
        nx.save_checkpoint(tmp_path / "m.pt", model, arch="resnet20", labels=["a", "b", "c"])
    with pytest.raises(nx.InputError, match="metric 'top1'"):
        nx.save_checkpoint(tmp_path / "m.pt", model, arch="resnet20", metrics={"top1": torch.tensor(1.0)})
    with pytest.raises(nx.UnknownModelError):
        nx.save_checkpoint(tmp_path / "m.pt", model, arch="resnet21")


def test_a_failed_write_leaves_neither_a_partial_file_nor_a_temporary(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    path.write_bytes(b"previous version")

    def crash(obj, handle):
        handle.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        nx.save_checkpoint(path, nx.create_model("resnet20"), arch="resnet20")
    assert path.read_bytes() == b"previous version"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_written_files_get_normal_permissions(tmp_path):
    path = nx.save_checkpoint(tmp_path / "m.pt", nx.create_model("resnet20"), arch="resnet20")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# ----------------------------------------------------------------------------------------- refusals


def _expect_refusal(path: Path, *fragments: str) -> str:
    with pytest.raises(nx.CheckpointError) as info:
        nx.load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_empty_garbage_and_truncated_files(tmp_path):
    _expect_refusal(tmp_path / "nope.pt", "no such file")
    _expect_refusal(tmp_path, "is not a file")
    (tmp_path / "empty.pt").write_bytes(b"")
    _expect_refusal(tmp_path / "empty.pt", "not a PyTorch or safetensors file")
    (tmp_path / "garbage.pt").write_bytes(os.urandom(64).replace(b"\x80", b"\x81").replace(b"PK", b"pk"))
    _expect_refusal(tmp_path / "garbage.pt", "not a PyTorch or safetensors file")
    good = nx.save_checkpoint(tmp_path / "good.pt", nx.create_model("resnet20"), arch="resnet20")
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _expect_refusal(tmp_path / "cut.pt", "damaged or truncated")
    good_st = nx.save_checkpoint(tmp_path / "good.safetensors", nx.create_model("resnet20"), arch="resnet20")
    (tmp_path / "cut.safetensors").write_bytes(good_st.read_bytes()[:-1000])
    _expect_refusal(tmp_path / "cut.safetensors", "damaged safetensors file")


def _state(name: str, prefix: str = "") -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        keys = nx.create_model(name).state_dict()
    return {prefix + k: torch.zeros(v.shape, dtype=v.dtype) for k, v in keys.items()}


@pytest.mark.parametrize(
    ("payload", "fragments"),
    [
        (
            lambda: {"net": _state("procresnet166", "module."), "acc": 93.1, "epoch": 7},
            ["ProcResNet_PyTorch main.py checkpoint", "--from procresnet"],
        ),
        (
            lambda: {
                "epoch": 3,
                "arch": "lenoresnet",
                "state_dict": _state("lenoresnet50", "module."),
                "best_acc1": torch.tensor(70.0),
                "optimizer": {},
            },
            ["LeNo main.py checkpoint (arch 'lenoresnet')", "--from leno"],
        ),
        (
            lambda: {"model": _state("resnet20"), "optimizer": {}, "epoch": 9, "step": 100},
            ["torch-resnet state_dict", "--from torch-resnet"],
        ),
        (lambda: _state("tau_resnet50"), ["torchvision-named", "--from {torchvision,leno,tau-resnet}"]),
        (lambda: _state("tau_resnet20_nobn"), ["tau-ResNet (no BatchNorm)", "--from tau-resnet"]),
        (
            lambda: {
                "params": {"conv": torch.zeros(16, 3, 3, 3), "group0.block0.alpha": torch.ones(16)},
                "stats": {},
            },
            ["DiracNet functional checkpoint (published", "--from diracnet"],
        ),
        (
            lambda: {
                "features.conv.weight": torch.zeros(1),
                "features.group0.block0.conv.bias": torch.zeros(1),
            },
            ["folded DiracNet", "--from diracnet-folded"],
        ),
        (lambda: {"weights": [1, 2, 3]}, ["a dict with keys 'weights'", "cannot import it"]),
    ],
)
def test_foreign_checkpoints_are_named_with_the_command_that_imports_them(tmp_path, payload, fragments):
    path = tmp_path / "foreign.pth"
    torch.save(payload(), path)
    _expect_refusal(path, "is not a normexport checkpoint", *fragments)


def test_foreign_safetensors_are_recognised(tmp_path):
    from safetensors.torch import save_file

    save_file(_state("preact_resnet20"), str(tmp_path / "w.safetensors"))
    _expect_refusal(
        tmp_path / "w.safetensors", "torch-resnet state_dict in safetensors format", "--from torch-resnet"
    )


class _Marker:
    """Unpickling this would create a file (stands in for arbitrary code in a pickle)."""

    path = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    _Marker.path = str(marker)
    torch.save({"format": "normexport.checkpoint", "payload": _Marker()}, tmp_path / "evil.pt")
    _expect_refusal(tmp_path / "evil.pt", "refused to load", "run code")
    assert not marker.exists()


def test_a_tau_resnet_training_pickle_is_named_and_not_unpickled(tmp_path, monkeypatch):
    """tau-ResNet's scripts pickle the whole model object; we name it without importing its classes."""
    package = types.ModuleType("models")
    module = types.ModuleType("models.resnet_cifar")
    touched = tmp_path / "setstate-ran"

    class ResNet(nn.Module):
        def __setstate__(self, state):
            touched.write_text("ran")
            super().__setstate__(state)

    ResNet.__module__ = "models.resnet_cifar"
    ResNet.__qualname__ = "ResNet"
    module.ResNet = ResNet
    package.resnet_cifar = module
    monkeypatch.setitem(sys.modules, "models", package)
    monkeypatch.setitem(sys.modules, "models.resnet_cifar", module)
    torch.save(
        {"net": ResNet(), "acc": 92.0, "epoch": 3, "rng_state": torch.get_rng_state()}, tmp_path / "tau.ckpt"
    )
    _expect_refusal(tmp_path / "tau.ckpt", "tau-ResNet training checkpoint", "--from tau-resnet")
    assert not touched.exists()


def test_exported_files_are_not_mistaken_for_checkpoints(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(tmp_path / "m.torchscript.pt"))
    _expect_refusal(tmp_path / "m.torchscript.pt", "TorchScript archive")
    (tmp_path / "m.onnx").write_bytes(b"\x08\x08\x12\x07pytorch")
    _expect_refusal(tmp_path / "m.onnx", "ONNX model")


def _rewrite(path: Path, **changes: object) -> Path:
    raw = torch.load(path, weights_only=True)
    raw.update(changes)
    torch.save(raw, path)
    return path


def test_fields_that_do_not_describe_a_model_are_refused(tmp_path):
    def fresh() -> Path:
        return nx.save_checkpoint(tmp_path / "m.pt", nx.create_model("resnet20"), arch="resnet20")

    _expect_refusal(_rewrite(fresh(), version=2), "newer normexport (format version 2")
    _expect_refusal(_rewrite(fresh(), arch=7), "field 'arch' must be str, got int")
    _expect_refusal(_rewrite(fresh(), arch="resnet21"), "unknown model 'resnet21'")
    _expect_refusal(_rewrite(fresh(), model_kwargs={"colour": "red"}), "does not accept 'colour'")
    _expect_refusal(
        _rewrite(fresh(), arch="resnet32"), "weights do not fit arch 'resnet32'", "missing: layers.0.3"
    )
    _expect_refusal(_rewrite(fresh(), labels="cat"), "field 'labels'")
    _expect_refusal(_rewrite(fresh(), preprocessing={"mean": [0.5]}), "invalid preprocessing: missing fields")
    _expect_refusal(_rewrite(fresh(), folded=True), "weights do not fit folded arch 'resnet20'")


# ----------------------------------------------------------------------------------------- preprocessing


def test_preprocessing_round_trips_and_validates_every_field():
    assert nx.Preprocessing.from_dict(CIFAR_PRE.to_dict()) == CIFAR_PRE
    assert json.loads(json.dumps(CIFAR_PRE.to_dict()))["mean"] == [0.4914, 0.4822, 0.4465]
    base = CIFAR_PRE.to_dict()
    for change, message in [
        ({"mean": [0.5, 0.5]}, "one value per input channel"),
        ({"std": [0.2, 0.0, 0.2]}, "std must be positive"),
        ({"crop": 30}, "crop (30) must equal the input height and width"),
        ({"resize": 16, "crop": 32}, "resize (16) must be at least crop"),
        ({"interpolation": "lanczos"}, "interpolation must be one of"),
        ({"channel_order": "GBR"}, "channel_order must be one of"),
        ({"input_size": [3, 32]}, "input_size is [C, H, W]"),
        ({"mean": ["a", 1, 2]}, "invalid preprocessing"),
        ({"gamma": 2.2}, "unknown fields ['gamma']"),
    ]:
        with pytest.raises(
            nx.InputError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
        ):
            nx.Preprocessing.from_dict({**base, **change})
