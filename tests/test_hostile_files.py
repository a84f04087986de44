"""Hostile and historical files: nothing a file holds may run code, exhaust memory or end in a traceback.

Real files, written the way the tools that make them write them (``torch.save`` in both its
layouts, pickles of objects that would run code), then edited byte by byte where a test needs a
file no tool writes (a tensor past its storage, a zip bomb). Every refusal is one line, through
the library and through the CLI (exit code 2), and nothing is written or executed.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import pickletools
import struct
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app
from normresnet_export.files.reading import read_file
from normresnet_export.files.safe_pickle import load_restricted
from normresnet_export.files.torch_layout import MAX_BYTES_VARIABLE, max_bytes, read_layout
from normresnet_export.runtime import open_model
from tests.test_import import CASES, _assert_reproduces, _pickled_tau_model

pytestmark = pytest.mark.filterwarnings(
    "ignore:Couldn't retrieve source code"
)  # legacy saves of test classes
runner = CliRunner()
LEGACY = {"_use_new_zipfile_serialization": False}  # the layout PyTorch < 1.6 wrote


def _one_line(message: str, *fragments: str) -> None:
    assert "\n" not in message.strip() and "Traceback" not in message, message
    assert "weights_only" not in message, message  # never advise loading with weights_only=False
    for fragment in fragments:
        assert fragment in message, message


def _refused(call: Callable[[], object], *fragments: str) -> str:
    with pytest.raises(nx.CheckpointError) as info:
        call()
    _one_line(str(info.value), *fragments)
    return str(info.value)


def _cli_refuses(args: list[str], *fragments: str, unwritten: Path | None = None) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (args, result.output, result.exception)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    _one_line(result.stderr, *fragments)
    assert unwritten is None or not unwritten.exists()


class _Canary:
    """Unpickling this would create ``path`` (it stands in for any code a pickle can run)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


# ------------------------------------------------------------------------- byte-level editing


def _zip_edit(path: Path, out: Path, edit: Callable[[str, bytes], bytes]) -> Path:
    """Rewrite a torch.save zip with ``edit(name, data)`` applied to every entry (CRCs recomputed)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            target.writestr(info.filename, edit(info.filename, source.read(info)))
    out.write_bytes(buffer.getvalue())
    return out


def _first_offset_replaced(pickled: bytes, offset: bytes) -> bytes:
    """The pickle with its first tensor's storage offset (``BININT1 0`` after the storage id) replaced."""
    at = pickled.index(b"QK\x00") + 1  # BINPERSID, then the offset
    return pickled[:at] + offset + pickled[at + 2 :]


# ------------------------------------------------------------------- tau-ResNet's legacy files

LAYOUTS: dict[str, Callable[[torch.nn.Module], object]] = {
    # what the scripts write: the whole DataParallel model with the accuracy and the epoch
    "training dict": lambda net: {"net": net, "acc": 91.2, "epoch": 150, "rng_state": torch.get_rng_state()},
    "bare model": lambda net: net,  # torch.save(net)
    "state_dict in 'net'": lambda net: {"net": net.state_dict(), "acc": 91.2, "epoch": 150},
    "plain state_dict": lambda net: net.state_dict(),
}


@pytest.mark.parametrize("name", ["tau_resnet20", "tau_resnet20_nobn"])
def test_legacy_tau_resnet_files_of_every_layout_import_with_the_zip_files_logits(
    tmp_path, monkeypatch, name
):
    tau = CASES[name]["tau"]
    net = _pickled_tau_model(name, monkeypatch, None if name.endswith("_nobn") else tau)
    stem = f"{name.removeprefix('tau_')}_sess1_tau{tau:.5f}_0"  # the scripts' file names carry tau
    files = {}
    for layout, payload in LAYOUTS.items():
        for kind, options in (("legacy", LEGACY), ("zip", {})):
            files[layout, kind] = tmp_path / f"{stem}.{layout.replace(' ', '_')}.{kind}.ckpt"
            torch.save(payload(net), files[layout, kind], **options)
    monkeypatch.undo()  # the scripts' classes are gone, as on a user's machine
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for layout in LAYOUTS:
        assert read_layout(files[layout, "legacy"]).kind == "legacy"
        logits = {}
        for kind in ("legacy", "zip"):
            checkpoint = nx.import_checkpoint(files[layout, kind], source="tau-resnet")
            assert checkpoint.arch == name and checkpoint.model_kwargs["tau"] == pytest.approx(tau)
            _assert_reproduces(checkpoint, name)
            with torch.no_grad():
                logits[kind] = checkpoint.model(x)
        assert torch.equal(logits["legacy"], logits["zip"]), layout
    assert "models" not in sys.modules  # nothing was imported from the files


def test_legacy_training_dict_records_its_metrics_and_is_recognised_without_from(tmp_path, monkeypatch):
    net = _pickled_tau_model("tau_resnet20", monkeypatch, 0.3)
    path = tmp_path / "resnet20_1_tau0.30000_0.ckpt"
    torch.save({"net": net, "acc": np.float64(91.25), "epoch": 150}, path, **LEGACY)  # ImageNet script: numpy
    monkeypatch.undo()
    checkpoint = nx.import_checkpoint(path)
    assert checkpoint.metrics["top1"] == 91.25 and checkpoint.metrics["epoch"] == 150
    _refused(lambda: nx.load_checkpoint(path), "tau-ResNet training checkpoint", "--from tau-resnet")


def test_a_legacy_file_saved_on_a_gpu_imports_on_the_cpu(tmp_path, monkeypatch):
    net = _pickled_tau_model("tau_resnet20", monkeypatch, 0.3)
    path = tmp_path / "resnet20_1_tau0.30000_0.ckpt"
    torch.save({"net": net, "acc": 90.0, "epoch": 1}, path, **LEGACY)
    monkeypatch.undo()
    raw = path.read_bytes()
    assert b"X\x03\x00\x00\x00cpu" in raw  # every storage's location, as the training box wrote it
    path.write_bytes(raw.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"))
    _assert_reproduces(nx.import_checkpoint(path), "tau_resnet20")


def test_legacy_plain_data_reads_weights_only_and_a_legacy_normexport_checkpoint_loads(tmp_path):
    state = collections.OrderedDict(w=torch.randn(3, 4), n=torch.arange(5))
    torch.save(state, tmp_path / "sd.pt", **LEGACY)
    obj, header = read_file(tmp_path / "sd.pt")
    assert header is None and torch.equal(obj["w"], state["w"]) and torch.equal(obj["n"], state["n"])
    saved = nx.save_checkpoint(tmp_path / "m.pt", nx.create_model("resnet20"), arch="resnet20")
    payload = torch.load(saved, weights_only=True)
    torch.save(payload, tmp_path / "legacy.pt", **LEGACY)
    again = nx.load_checkpoint(tmp_path / "legacy.pt")
    for key, tensor in nx.load_checkpoint(saved).model.state_dict().items():
        assert torch.equal(again.model.state_dict()[key], tensor)


# ------------------------------------------------------------------- pickles that would run code


@pytest.mark.parametrize("layout", ["zip", "legacy", "raw"])
def test_a_pickle_that_would_run_code_is_refused_as_code_not_as_damage(tmp_path, layout):
    canary = tmp_path / "canary"
    path = tmp_path / "evil.pt"
    payload = {"format": "normexport.checkpoint", "x": _Canary(canary)}
    if layout == "raw":
        path.write_bytes(pickle.dumps(payload, protocol=4))
    else:
        torch.save(payload, path, **(LEGACY if layout == "legacy" else {}))
    for call in (lambda: nx.load_checkpoint(path), lambda: nx.import_checkpoint(path, source="tau-resnet")):
        message = _refused(call, "refused to load", "posix.system", "run code")
        assert "damaged" not in message
    _refused(lambda: load_restricted(path), "plain Python pickle" if layout == "raw" else "posix.system")
    _cli_refuses(
        ["import", str(path), "-o", str(tmp_path / "out.pt")], "refused", unwritten=tmp_path / "out.pt"
    )
    _cli_refuses(["fold", str(path), "-o", str(tmp_path / "f.pt")], "refused", unwritten=tmp_path / "f.pt")
    assert not canary.exists()


def test_a_legacy_tau_style_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch):
    canary = tmp_path / "canary"
    net = _pickled_tau_model("tau_resnet20", monkeypatch, tau=0.3)
    net.module.extra = _Canary(canary)
    path = tmp_path / "resnet20_1_tau0.30000_0.ckpt"
    torch.save({"net": net, "acc": 1.0, "epoch": 1}, path, **LEGACY)
    monkeypatch.undo()
    _refused(lambda: nx.import_checkpoint(path), str(path), "refused to unpickle posix.system")
    assert not canary.exists()


# --------------------------------------------- what allowed callables raise becomes one refusal


class _Reduces:
    """Pickles as ``function(*args)``: a call the allowlist permits, with arguments it chokes on."""

    def __init__(self, function: object, *args: object) -> None:
        self.call = (function, args)

    def __reduce__(self):
        return self.call


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (_Reduces(torch.device, "nonsense:1"), ["is damaged", "unpickling it failed"]),
        (_Reduces(collections.OrderedDict, 5), ["is damaged", "unpickling it failed"]),
        (_Reduces(set, 5), ["is damaged", "unpickling it failed"]),
        (np.dtype(object), ["refused to unpickle numpy.dtype('O8')"]),
    ],
    ids=["device", "ordereddict", "set", "numpy-object-dtype"],
)
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_errors_of_allowed_callables_are_one_refusal_naming_the_file(
    tmp_path, monkeypatch, extra, fragments, legacy
):
    net = _pickled_tau_model("tau_resnet20", monkeypatch, tau=0.3)
    net.module.extra = extra
    path = tmp_path / "resnet20_1_tau0.30000_0.ckpt"
    torch.save({"net": net, "acc": 1.0, "epoch": 1}, path, **(LEGACY if legacy else {}))
    monkeypatch.undo()
    _refused(lambda: nx.import_checkpoint(path), str(path), *fragments)
    _cli_refuses(["import", str(path), "-o", str(tmp_path / "o.pt")], str(path), unwritten=tmp_path / "o.pt")


def test_a_tensor_past_its_storage_is_refused_by_every_reader(tmp_path, monkeypatch):
    net = _pickled_tau_model("tau_resnet20", monkeypatch, tau=0.3)
    torch.save({"net": net, "acc": 1.0, "epoch": 1}, tmp_path / "tau.ckpt")
    monkeypatch.undo()
    far = b"J" + struct.pack("<i", 10**6)  # BININT: a storage offset a million elements in
    tau = _zip_edit(
        tmp_path / "tau.ckpt",
        tmp_path / "resnet20_1_tau0.30000_0.ckpt",
        lambda n, d: _first_offset_replaced(d, far) if n.endswith("data.pkl") else d,
    )
    _refused(lambda: nx.import_checkpoint(tau), str(tau), "is damaged")
    saved = nx.save_checkpoint(tmp_path / "m.pt", nx.create_model("resnet20"), arch="resnet20")
    for offset, name in ((far, "far.pt"), (b"X\x01\x00\x00\x00a", "text.pt")):  # past the end; a string
        edited = _zip_edit(
            saved,
            tmp_path / name,
            lambda n, d, offset=offset: _first_offset_replaced(d, offset) if n.endswith("data.pkl") else d,
        )
        _refused(lambda edited=edited: nx.load_checkpoint(edited), str(edited), "is damaged")
        _cli_refuses(
            ["fold", str(edited), "-o", str(tmp_path / "f.pt")], str(edited), unwritten=tmp_path / "f.pt"
        )


def test_a_module_tree_that_contains_itself_is_refused(tmp_path, monkeypatch):
    net = _pickled_tau_model("tau_resnet20", monkeypatch, tau=0.3)
    net.module.layer1._modules["loop"] = net.module  # a cycle: walking it would never end
    path = tmp_path / "resnet20_1_tau0.30000_0.ckpt"
    torch.save({"net": net, "acc": 1.0, "epoch": 1}, path, **LEGACY)
    monkeypatch.undo()
    _refused(lambda: nx.import_checkpoint(path), str(path), "twice or in itself")


# ------------------------------------------------------------------------------ memory: item 13

_PEAK_RSS = textwrap.dedent(
    """
    import sys, time
    import normresnet_export as nx
    from normresnet_export.files.reading import read_file

    def status(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])

    with open("/proc/self/clear_refs", "w") as handle:  # restart the high-water mark (VmHWM) here
        handle.write("5")
    before, start = status("VmRSS"), time.perf_counter()
    try:
        if sys.argv[2] == "import":
            print("loaded", nx.import_checkpoint(sys.argv[1]).arch)
        else:
            obj, _ = read_file(sys.argv[1])
            print("loaded", float(obj["w"].sum()))  # touch the tensor, as any use of it would
    except nx.CheckpointError as exc:
        print("refused:", exc)
    print(f"grown_kib={status('VmHWM') - before} seconds={time.perf_counter() - start:.2f}")
    """
)


def _read_in_a_subprocess(path: Path, reader: str) -> str:
    """Read ``path`` in a fresh interpreter; assert that grew the process by less than 64 MiB."""
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, str(path), reader],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    outcome, measured = result.stdout.strip().splitlines()
    grown_kib = int(measured.split()[0].split("=")[1])
    assert grown_kib < 64 * 1024, f"reading {path.name} grew the process by {grown_kib} KiB ({outcome})"
    return outcome


def _zip_bomb(tmp_path: Path, size: int) -> Path:
    """A torch.save zip whose one tensor (``size`` bytes, all alike) is stored deflated: a few hundred KiB."""
    torch.save({"w": torch.zeros(4)}, tmp_path / "small.pt")
    numel = struct.pack("<i", size // 4)
    bomb = tmp_path / "bomb.pt"
    with (
        zipfile.ZipFile(tmp_path / "small.pt") as source,
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("data.pkl"):  # the tensor's size, and its storage's, become `size`
                data = data.replace(b"K\x04t", b"J" + numel + b"t").replace(
                    b"K\x04\x85", b"J" + numel + b"\x85"
                )
            if info.filename.endswith("data/0"):
                with target.open(info.filename, "w", force_zip64=True) as entry:
                    block = b"\x01" * (1 << 20)  # not zeros: pages of zeros may never be materialised
                    for _ in range(size >> 20):
                        entry.write(block)
                continue
            target.writestr(info.filename, data, compress_type=zipfile.ZIP_STORED)
    return bomb


def test_a_zip_bomb_is_refused_before_anything_is_allocated(tmp_path):
    size = 256 << 20
    bomb = _zip_bomb(tmp_path, size)
    assert bomb.stat().st_size < 2 << 20  # 256 MiB of tensor in well under 2 MiB of file
    outcome = _read_in_a_subprocess(bomb, "read_file")
    assert outcome.startswith("refused:") and "zip bomb" in outcome, outcome
    _refused(lambda: nx.import_checkpoint(bomb), "zip bomb")


def test_a_huge_memo_index_costs_no_memory(tmp_path, monkeypatch):
    """Python's C unpickler sizes its memo by the largest index a PUT names (found by the fuzz test)."""
    net = _pickled_tau_model("tau_resnet20", monkeypatch, tau=0.3)
    torch.save({"net": net, "acc": 1.0, "epoch": 1}, tmp_path / "tau.ckpt")
    monkeypatch.undo()

    def huge_index(name: str, data: bytes) -> bytes:
        if not name.endswith("data.pkl"):
            return data
        at = next(pos for op, _, pos in pickletools.genops(data) if op.name == "LONG_BINPUT")
        return data[: at + 1] + struct.pack("<I", 1 << 27) + data[at + 5 :]  # 2 GiB of memo in C

    path = _zip_edit(tmp_path / "tau.ckpt", tmp_path / "resnet20_1_tau0.30000_0.ckpt", huge_index)
    # The index names a slot nothing reads back: the file still imports, at no cost.
    assert _read_in_a_subprocess(path, "import") == "loaded tau_resnet20"


def test_onnx_metadata_that_is_not_utf8_is_one_line(tmp_path):
    """ONNX Runtime hands such text to Python as a UnicodeDecodeError (found by the fuzz test)."""
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["input"], ["logits"])],
        "identity",
        [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", 3, 4, 4])],
        [onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["N", 3, 4, 4])],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)], ir_version=8)
    onnx.helper.set_model_props(model, {"note": "AAAA"})
    (tmp_path / "ok.onnx").write_bytes(model.SerializeToString())
    assert open_model(tmp_path / "ok.onnx", device="cpu").input_name == "input"
    damaged = tmp_path / "bad.onnx"
    damaged.write_bytes(model.SerializeToString().replace(b"AAAA", b"\x80\x80\x80\x80"))
    with pytest.raises(nx.InputError) as info:
        open_model(damaged, device="cpu")
    _one_line(str(info.value), str(damaged), "not UTF-8")
    _cli_refuses(["predict", str(damaged), str(damaged), "--device", "cpu"], "not UTF-8")


def test_storages_larger_than_the_file_holds_are_refused(tmp_path):
    torch.save({"w": torch.zeros(4)}, tmp_path / "small.pt")
    numel = b"J" + struct.pack("<i", 2**28)  # 1 GiB of float32, in a file of a few hundred bytes
    claim = _zip_edit(
        tmp_path / "small.pt",
        tmp_path / "claim.pt",
        lambda n, d: d.replace(b"K\x04t", numel + b"t") if n.endswith("data.pkl") else d,
    )
    _refused(lambda: read_file(claim), "declares 1073741824 bytes, the archive has 16 bytes")
    torch.save({"w": torch.zeros(4)}, tmp_path / "legacy.pt", **LEGACY)
    raw = (tmp_path / "legacy.pt").read_bytes()
    at = raw.rindex(b"K\x04Nt")  # the storage's element count in its persistent id (then: no view)
    (tmp_path / "legacy_claim.pt").write_bytes(raw[:at] + numel + raw[at + 2 :])
    _refused(lambda: read_file(tmp_path / "legacy_claim.pt"), "holds 4 elements, its tensors say 268435456")
    (tmp_path / "legacy_cut.pt").write_bytes(raw[:-8])
    _refused(lambda: read_file(tmp_path / "legacy_cut.pt"), "truncated")


def test_expanded_tensors_count_at_their_full_size(tmp_path):
    torch.save(
        {"w": torch.zeros(1).expand(2**32)}, tmp_path / "wide.pt"
    )  # 4 bytes on disk, 16 GiB as a tensor
    _refused(lambda: read_file(tmp_path / "wide.pt"), "16.0 GiB", MAX_BYTES_VARIABLE)


def test_the_cap_is_settable_by_parameter_and_environment(tmp_path, monkeypatch):
    saved = nx.save_checkpoint(tmp_path / "m.pt", nx.create_model("resnet20"), arch="resnet20")
    saved_st = nx.save_checkpoint(tmp_path / "m.safetensors", nx.create_model("resnet20"), arch="resnet20")
    assert max_bytes() == 8 * 2**30
    for path in (saved, saved_st):
        _refused(
            lambda path=path: nx.load_checkpoint(path, max_bytes=10_000), "more than the limit of 9.8 KiB"
        )
    monkeypatch.setenv(MAX_BYTES_VARIABLE, "10000")
    assert max_bytes() == 10_000
    _refused(lambda: nx.load_checkpoint(saved), MAX_BYTES_VARIABLE)
    _cli_refuses(
        ["fold", str(saved), "-o", str(tmp_path / "f.pt")], MAX_BYTES_VARIABLE, unwritten=tmp_path / "f.pt"
    )
    assert nx.load_checkpoint(saved, max_bytes=2**30).arch == "resnet20"  # the parameter wins
    monkeypatch.setenv(MAX_BYTES_VARIABLE, "lots")
    with pytest.raises(nx.InputError, match=f"{MAX_BYTES_VARIABLE} must be a positive whole number"):
        nx.load_checkpoint(saved)


# ------------------------------------------------------------------------------------- minor


def test_importing_a_normexport_checkpoint_says_to_use_it_directly(tmp_path):
    for suffix in (".pt", ".safetensors"):
        saved = nx.save_checkpoint(tmp_path / f"m{suffix}", nx.create_model("resnet20"), arch="resnet20")
        with pytest.raises(nx.InputError) as info:
            nx.import_checkpoint(saved)
        _one_line(str(info.value), "already a normexport checkpoint", "use it directly")
        assert "--from" not in str(info.value)
        out = tmp_path / "again.pt"
        for extra in ([], ["--from", "torchvision"]):
            _cli_refuses(["import", str(saved), *extra, "-o", str(out)], "use it directly", unwritten=out)
