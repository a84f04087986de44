"""Fuzzing every reader with mutated real files: one-line errors only, nothing written, nothing run.

The corpus is real: a normexport checkpoint (zip), the same in torch.save's legacy layout, a
tau-ResNet pickled model in both layouts, pickles that would create a canary file if they were
ever run, an ONNX export, a PNG and a JPEG. Hypothesis mutates them (bit flips, truncation,
insertions, deletions, overwrites with values parsers choke on), aimed at the bytes that
describe structure: the pickles, the zip directory, the image headers. For zip files a second
mode mutates ``data.pkl`` and rebuilds a valid archive, so the damage reaches the unpickler
instead of stopping at a checksum.

Each case must end either in a result or in one of the project's errors, whose message is one
line; the directory holds nothing new afterwards, and the canary never appears. The runs are
derandomized (the same cases every time) and sized to take well under a minute on one core.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app
from normresnet_export.errors import NormexportError
from normresnet_export.files.reading import read_file
from normresnet_export.files.safe_pickle import load_restricted
from normresnet_export.preprocess import PRESETS, decode_image
from normresnet_export.runtime import open_model
from tests.test_import import _pickled_tau_model

pytestmark = pytest.mark.filterwarnings(
    "ignore:Couldn't retrieve source code",  # legacy saves of the test's stand-in classes
    "ignore:Detected pickle protocol",  # torch's note on the protocol-3/4 pickles of the corpus
)
LEGACY = {"_use_new_zipfile_serialization": False}
CANARY = "canary-was-created"
runner = CliRunner()

#: Values that make parsers take the wrong branch: lengths near the limits, pickle opcodes
#: (GLOBAL, REDUCE, STOP, BINPERSID, MARK), zip signatures, a PNG chunk length.
_NASTY = [
    b"\xff\xff\xff\x7f",
    b"\xff\xff\xff\xff\xff\xff\xff\x7f",
    b"\x00\x00\x00\x00",
    b"\x80\x02",
    b"cposix\nsystem\n",
    b"R",
    b".",
    b"Q",
    b"(",
    b"PK\x05\x06",
    b"PK\x03\x04",
    b"\x00\x00\x10\x00",
]


def _fuzzed(max_examples: int) -> Callable:
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,  # derandomized: nothing to remember, and nothing written into the repository
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ------------------------------------------------------------------------------------------ corpus


class _Canary:
    """Unpickling this creates the canary file: it stands in for any code a pickle can run."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _write_canary_pickles(root: Path) -> list[Path]:
    payload = {"format": "normexport.checkpoint", "w": torch.arange(6.0), "x": _Canary(root / CANARY)}
    paths = [
        root / "canary.zip.pt",
        root / "canary.legacy.pt",
        root / "canary.p2.pkl",
        root / "canary.p4.pkl",
    ]
    torch.save(payload, paths[0])
    torch.save(payload, paths[1], **LEGACY)
    paths[2].write_bytes(pickle.dumps(payload, protocol=2))
    paths[3].write_bytes(pickle.dumps(payload, protocol=4))
    return paths


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("corpus")
    model = nx.create_model("diracnet_cifar16_1").eval()
    checkpoint = root / "checkpoint.pt"
    nx.save_checkpoint(
        checkpoint,
        model,
        arch="diracnet_cifar16_1",
        preprocessing=PRESETS["cifar10"],
        labels=[f"class {i}" for i in range(10)],
        metrics={"top1": 90.5, "epoch": 3},
    )
    files = {"checkpoint": checkpoint, "legacy": root / "legacy.pt"}
    torch.save(torch.load(checkpoint, weights_only=True), files["legacy"], **LEGACY)
    with pytest.MonkeyPatch.context() as patch:
        net = _pickled_tau_model("tau_resnet20_nobn", patch, None)
        files["tau"] = root / "resnet20_nobn_1_tau0.30000_0.ckpt"
        files["tau-legacy"] = root / "resnet20_nobn_1_tau0.30000_0.legacy.ckpt"
        training = {"net": net, "acc": np.float64(91.5), "epoch": 150}
        torch.save(training, files["tau"])
        torch.save(training, files["tau-legacy"], **LEGACY)
    for index, path in enumerate(_write_canary_pickles(root)):
        files[f"canary{index}"] = path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files["onnx"] = nx.export_onnx(
            nx.load_checkpoint(checkpoint), root / "model.onnx", exporter="torchscript"
        ).path
    pixels = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    files["png"], files["jpeg"] = root / "image.png", root / "image.jpg"
    Image.fromarray(pixels).save(files["png"])
    Image.fromarray(pixels).save(files["jpeg"], quality=80)
    return files


# --------------------------------------------------------------------------------------- mutations


def _hot_regions(data: bytes) -> list[tuple[int, int]]:
    """The bytes that describe structure: a zip's headers and directory, a legacy file's pickles, ...

    The first few bytes are left to the uniform draws: a damaged signature only tests sniffing.
    """
    size = len(data)
    if data[:4] == b"PK\x03\x04":
        end = data.rfind(b"PK\x05\x06")  # the end-of-directory record says where the directory starts
        directory = int.from_bytes(data[end + 16 : end + 20], "little") if end >= 0 else 0
        return [(min(8, size), min(size, 4096)), (min(directory, size), size)]
    if data[:1] == b"\x80":  # legacy: magic, protocol, system info, the object pickle, the keys
        return [(min(4, size), min(size, max(data.find(b"]q"), 0) + 256, 1 << 20))]
    return [(min(8, size), min(size, 512)), (max(0, size - 1024), size)]  # ONNX: header, metadata


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> list[tuple]:
    """One to four edits, positions mostly in the hot regions (as fractions of the current length)."""
    size = max(len(data), 1)
    hot = [st.floats(lo / size, hi / size) for lo, hi in _hot_regions(data)]
    position = st.one_of(*hot, st.floats(0, 1))
    edit = st.one_of(
        st.tuples(st.just("flip"), position, st.integers(0, 7)),
        st.tuples(st.just("truncate"), position),
        st.tuples(st.just("insert"), position, st.binary(min_size=1, max_size=12)),
        st.tuples(st.just("delete"), position, st.integers(1, 48)),
        st.tuples(st.just("overwrite"), position, st.sampled_from(_NASTY)),
    )
    return draw(st.lists(edit, min_size=1, max_size=4))


def _mutate(data: bytes, edits: list[tuple]) -> bytes:
    out = bytearray(data)
    for kind, where, *args in edits:
        at = min(int(where * len(out)), max(len(out) - 1, 0))
        if kind == "flip" and out:
            out[at] ^= 1 << args[0]
        elif kind == "truncate":
            del out[at:]
        elif kind == "insert":
            out[at:at] = args[0]
        elif kind == "delete":
            del out[at : at + args[0]]
        elif kind == "overwrite":
            out[at : at + len(args[0])] = args[0]
    return bytes(out)


def _mutate_inside_zip(data: bytes, edits: list[tuple]) -> bytes:
    """The zip with its ``data.pkl`` mutated and every checksum valid again."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            content = source.read(info)
            target.writestr(info, _mutate(content, edits) if info.filename.endswith("data.pkl") else content)
    return out.getvalue()


# ------------------------------------------------------------------------------------------- checks


def _one_line(message: str) -> None:
    assert message.strip() and "\n" not in message.strip(), message
    assert "Traceback" not in message and "weights_only" not in message, message


def _survives(call: Callable[[], object]) -> None:
    """``call`` returns, or raises one of the project's errors with a one-line message; nothing else."""
    try:
        call()
    except NormexportError as exc:
        _one_line(str(exc))


class _Case:
    """A mutated copy of a corpus file in a directory of its own, checked to stay alone there."""

    def __init__(self, source: Path, data: bytes) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="fuzz-", dir=source.parent))
        self.path = self.directory / source.name
        self.path.write_bytes(data)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        try:
            assert sorted(p.name for p in self.directory.iterdir()) == [self.path.name]  # nothing written
            assert not (self.directory / CANARY).exists() and not (self.directory.parent / CANARY).exists()
        finally:
            shutil.rmtree(self.directory)


def _fuzz(corpus: dict[str, Path], name: str, data: st.DataObject, calls: Callable[[Path], list]) -> None:
    source = corpus[name]
    raw = source.read_bytes()
    inside = raw[:4] == b"PK\x03\x04" and data.draw(st.booleans(), label="inside the zip")
    edits = data.draw(mutations(raw), label="edits")
    mutated = _mutate_inside_zip(raw, edits) if inside else _mutate(raw, edits)
    with _Case(source, mutated) as path:
        for call in calls(path):
            _survives(call)


# -------------------------------------------------------------------------------------------- tests


@_fuzzed(max_examples=120)
@given(data=st.data())
def test_fuzzed_checkpoints_load_or_are_refused_in_one_line(corpus, data):
    name = data.draw(st.sampled_from(["checkpoint", "legacy"]), label="file")
    _fuzz(corpus, name, data, lambda path: [lambda: nx.load_checkpoint(path), lambda: read_file(path)])


@_fuzzed(max_examples=100)
@given(data=st.data())
def test_fuzzed_tau_resnet_files_import_or_are_refused_in_one_line(corpus, data):
    name = data.draw(st.sampled_from(["tau", "tau-legacy"]), label="file")
    _fuzz(
        corpus, name, data, lambda path: [lambda: nx.import_checkpoint(path), lambda: load_restricted(path)]
    )


@_fuzzed(max_examples=80)
@given(data=st.data())
def test_fuzzed_pickles_that_would_run_code_never_run_it(corpus, data):
    name = data.draw(st.sampled_from(["canary0", "canary1", "canary2", "canary3"]), label="file")
    _fuzz(
        corpus,
        name,
        data,
        lambda path: [
            lambda: read_file(path),
            lambda: load_restricted(path),
            lambda: nx.import_checkpoint(path, source="tau-resnet"),
        ],
    )


@_fuzzed(max_examples=60)
@given(data=st.data())
def test_fuzzed_onnx_files_open_or_are_refused_in_one_line(corpus, data):
    _fuzz(corpus, "onnx", data, lambda path: [lambda: open_model(path, device="cpu")])


@_fuzzed(max_examples=80)
@given(data=st.data())
def test_fuzzed_images_decode_or_are_refused_in_one_line(corpus, data):
    name = data.draw(st.sampled_from(["png", "jpeg"]), label="file")
    _fuzz(
        corpus, name, data, lambda path: [lambda: decode_image(path), lambda: decode_image(path.read_bytes())]
    )


@_fuzzed(max_examples=30)
@given(data=st.data())
def test_fuzzed_files_through_the_cli_exit_2_with_one_line(corpus, data):
    name = data.draw(st.sampled_from(["tau", "tau-legacy", "canary1", "legacy", "onnx"]), label="file")

    def commands(path: Path) -> list:
        out = path.parent / "out.pt"
        if name == "onnx":
            return [lambda: _cli(["predict", str(path), str(corpus["png"]), "--device", "cpu"], out)]
        return [lambda: _cli(["import", str(path), "-o", str(out)], out)]

    _fuzz(corpus, name, data, commands)


def _cli(args: list[str], out: Path) -> None:
    result = runner.invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 2), (result.exit_code, result.output)
    if result.exit_code == 2:
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
        _one_line(result.stderr)
    if out.exists():  # a mutation the file survives (a flipped weight) imports; that is not a failure
        assert result.exit_code == 0
        out.unlink()
