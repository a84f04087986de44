"""One data-set vocabulary for train, check and analyze: parsing, the CIFAR reader, each spelling end to end.

CIFAR is a tiny stand-in copy written here in the standard python-batch layout (pickled dicts
of a ``uint8 [N, 3072]`` array and a label list, protocol 2, as the published archives hold):
nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cli import app
from normresnet_export.check.data import load_data
from normresnet_export.data.cifar import read_cifar
from normresnet_export.data.sets import DEFAULT_DATA_DIR, DataSet, parse_data_set
from normresnet_export.errors import InputError
from normresnet_export.preprocess import Preprocessing
from normresnet_export.vocabulary import DATA_KINDS, TRAINING_DATASETS

runner = CliRunner()

CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]),
    "cifar100": ("cifar-100-python", ["train"], ["test"]),
}


def write_fake_cifar(root: Path, name: str, *, train: int = 20, test: int = 12, seed: int = 0) -> dict:
    """A small copy of CIFAR in the standard layout; returns the images and labels written."""
    folder, train_files, test_files = _LAYOUT[name]
    classes = CIFAR10_CLASSES if name == "cifar10" else [f"class_{i:02d}" for i in range(100)]
    labels_key = "labels" if name == "cifar10" else "fine_labels"
    rng = np.random.default_rng(seed)
    written = {}
    (root / folder).mkdir(parents=True, exist_ok=True)

    def dump(filename: str, content: dict) -> None:
        with (root / folder / filename).open("wb") as handle:
            pickle.dump(content, handle, protocol=2)

    meta = (
        {"label_names": classes}
        if name == "cifar10"
        else {"fine_label_names": classes, "coarse_label_names": []}
    )
    dump("batches.meta" if name == "cifar10" else "meta", meta)
    for split, count, files in (("train", train, train_files), ("test", test, test_files)):
        data = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
        labels = rng.integers(0, len(classes), size=count).tolist()
        written[split] = (data, labels)
        for filename, part in zip(files, np.array_split(np.arange(count), len(files)), strict=True):
            batch = {"batch_label": filename, labels_key: [labels[i] for i in part], "data": data[part]}
            if name == "cifar100":
                batch["coarse_labels"] = [0] * len(part)
            dump(filename, {**batch, "filenames": [f"{i}.png" for i in part]})
    written["classes"] = classes
    return written


@pytest.fixture(scope="module")
def fake_cifar(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("cifar")
    return root, {name: write_fake_cifar(root, name) for name in _LAYOUT}


def _tree(root: Path, classes: list[str], per_class: int = 2) -> Path:
    for i, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for j in range(per_class):
            Image.new("RGB", (32, 32), (40 * i, 10 * j, 100)).save(root / name / f"{j}.png")
    return root


# ------------------------------------------------------------------------------------------- parsing


def test_the_vocabulary_is_one_list():
    assert DATA_KINDS == ("digits", "cifar10", "cifar100", "imagenet", "folder:DIR", "random")
    assert "random" not in TRAINING_DATASETS and set(TRAINING_DATASETS) == set(DATA_KINDS) - {"random"}


@pytest.mark.parametrize(
    ("spec", "data_dir", "expected"),
    [
        ("digits", None, DataSet("digits")),
        ("random", None, DataSet("random")),
        ("cifar10", None, DataSet("cifar10", DEFAULT_DATA_DIR)),
        ("cifar100", "/d", DataSet("cifar100", Path("/d"))),
        ("imagenet", "/in", DataSet("imagenet", Path("/in"))),
        ("folder:/t", None, DataSet("folder", Path("/t"))),
        ("folder", "/t", DataSet("folder", Path("/t"))),
        ("folder:/t", "/t", DataSet("folder", Path("/t"))),
    ],
)
def test_every_spelling_resolves(spec, data_dir, expected):
    assert parse_data_set(spec, data_dir=data_dir) == expected


@pytest.mark.parametrize(
    ("spec", "kwargs", "message"),
    [
        (
            "cifar",
            {},
            "unknown --data 'cifar'; expected one of digits, cifar10, cifar100, imagenet, folder:DIR "
            "or random",
        ),
        ("cifar", {}, "did you mean cifar10"),
        ("folder:", {}, "names no directory"),
        ("folder", {}, "folder needs its directory"),
        ("folder:/a", {"data_dir": "/b"}, "name two directories"),
        ("imagenet", {}, "pass --data-dir DIR"),
        ("digits", {"data_dir": "/x"}, "reads no directory"),
        ("digits", {"download": True}, "--download fetches CIFAR-10/100 only"),
        ("imagenet:/x", {}, "unknown --data"),
    ],
)
def test_bad_spellings_get_one_line(spec, kwargs, message):
    with pytest.raises(InputError) as caught:
        parse_data_set(spec, **kwargs)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_training_refuses_random():
    with pytest.raises(InputError, match="random is not accepted here"):
        parse_data_set("random", option="--dataset", kinds=TRAINING_DATASETS)


# ------------------------------------------------------------------------------------------- CIFAR


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_reads_the_standard_batches(fake_cifar, name):
    root, written = fake_cifar
    for split in ("train", "test"):
        got = read_cifar(name, root, split=split)
        data, labels = written[name][split]
        assert got.images.dtype == torch.uint8 and got.images.shape == (len(data), 3, 32, 32)
        assert torch.equal(got.images.reshape(len(data), -1), torch.from_numpy(data))
        assert got.labels.tolist() == labels
        assert got.classes == written[name]["classes"]


def test_a_missing_copy_says_where_to_put_it(tmp_path):
    with pytest.raises(InputError) as caught:
        read_cifar("cifar10", tmp_path / "none")
    message = str(caught.value)
    assert "\n" not in message
    assert f"{tmp_path / 'none' / 'cifar-10-batches-py'}/" in message and "--download" in message


def test_a_batch_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "ran"

    class Hostile:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for filename in ["batches.meta", "test_batch"]:
        (folder / filename).write_bytes(pickle.dumps({"label_names": Hostile()}, protocol=2))
    with pytest.raises(InputError, match="is not a CIFAR python batch") as caught:
        read_cifar("cifar10", tmp_path)
    assert "\n" not in str(caught.value) and not marker.exists()


# ------------------------------------------------------------------------------------- check's data


_PREP = Preprocessing(input_size=(3, 32, 32), mean=(0.5,) * 3, std=(0.25,) * 3, resize=32, crop=32)


def test_check_data_takes_every_spelling(fake_cifar, tmp_path):
    root, written = fake_cifar
    options = {"preprocessing": _PREP, "input_size": (3, 32, 32), "samples": 6}
    cifar = load_data("cifar10", labels=CIFAR10_CLASSES, data_dir=root, **options)
    assert cifar.targets.tolist() == written["cifar10"]["test"][1][:6]
    assert "cifar10 test split (6 of 12 images" in cifar.description
    # the classes are matched to the model's labels by name, whatever its order
    shuffled = CIFAR10_CLASSES[::-1]
    remapped = load_data("cifar10", labels=shuffled, data_dir=root, **options)
    assert remapped.targets.tolist() == [9 - t for t in written["cifar10"]["test"][1][:6]]
    tree = _tree(tmp_path / "tree", ["a", "b"])
    imagenet = _tree(tmp_path / "imagenet" / "val", ["a", "b"]).parent
    for spec, data_dir in [("digits", None), ("random", None), (f"folder:{tree}", None), ("folder", tree)]:
        assert len(load_data(spec, labels=None, data_dir=data_dir, **options).inputs) >= 4
    got = load_data("imagenet", labels=["a", "b"], data_dir=imagenet, **options)
    assert got.targets.tolist() == [0, 0, 1, 1]
    with pytest.raises(InputError, match="not among the model's labels"):
        load_data("cifar10", labels=["0", "1"], data_dir=root, **options)
    with pytest.raises(InputError, match="not an ImageNet-layout folder"):
        load_data("imagenet", labels=None, data_dir=tree, **options)


# --------------------------------------------------------------------------- train, check, analyze


@pytest.fixture(scope="module")
def cifar_run(fake_cifar, tmp_path_factory) -> Path:
    root, _ = fake_cifar
    out = tmp_path_factory.mktemp("run") / "run"
    args = ["train", "resnet20", "--dataset", "cifar10", "--data-dir", str(root), "--epochs", "1"]
    args += ["--batch-size", "8", "--out", str(out), "--device", "cpu", "--json"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)
    return out


def test_train_check_and_analyze_a_cifar_model(cifar_run, fake_cifar, tmp_path):
    root, _ = fake_cifar
    checkpoint = cifar_run / "best.pt"
    args = ["check", str(checkpoint), "--data", "cifar10", "--data-dir", str(root), "--no-latency", "--json"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["data"].startswith("cifar10 test split (12 of 12 images")
    assert report["reference_accuracy"] is not None and report["passed"]
    args = ["analyze", "gradnorm", str(checkpoint), "--data", "cifar10", "--data-dir", str(root)]
    done = runner.invoke(app, [*args, "--batch-size", "4", "--json"])
    assert done.exit_code == 0, done.output
    assert "cifar10 test split" in done.stdout
    # and a missing copy: one line, where to put it
    done = runner.invoke(app, ["check", str(checkpoint), "--data", "cifar10", "--data-dir", str(tmp_path)])
    assert done.exit_code == 2 and done.stderr.count("\n") == 1 and "--download" in done.stderr


def test_check_takes_a_folded_checkpoint_as_reference(cifar_run, fake_cifar, tmp_path):
    root, _ = fake_cifar
    folded = tmp_path / "folded.pt"
    assert (
        runner.invoke(app, ["fold", str(cifar_run / "best.pt"), "-o", str(folded), "--json"]).exit_code == 0
    )
    args = ["check", str(folded), "--data", "cifar10", "--data-dir", str(root), "--no-latency"]
    done = runner.invoke(app, [*args, "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert (
        report["reference_kind"] == "folded" and report["reference"]["label"] == "eager (folded checkpoint)"
    )
    assert report["agreement"] == []  # nothing but the reference itself was given


def test_train_folder_spellings_are_the_same(tmp_path):
    from trainers import TrainConfig

    tree = _tree(tmp_path / "tree", ["a", "b"], per_class=3)
    inline = TrainConfig(arch="resnet20", dataset=f"folder:{tree}")
    separate = TrainConfig(arch="resnet20", dataset="folder", data_dir=tree)
    assert (inline.dataset, inline.data_dir) == (separate.dataset, separate.data_dir) == ("folder", tree)
    with pytest.raises(InputError, match="random is not accepted here"):
        TrainConfig(arch="resnet20", dataset="random")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "resnet20", "--dataset", "cifar"], "unknown --dataset 'cifar'"),
        (["train", "resnet20", "--dataset", "random"], "random is not accepted here"),
        (["check", "x.pt", "--data", "folder:"], "names no directory"),
        (["check", "x.pt", "--data", "imagenet"], "pass --data-dir DIR"),
        (["analyze", "gradnorm", "resnet20", "--data", "cifar"], "did you mean cifar10"),
        (["analyze", "gradnorm", "resnet20", "--data", "digits", "--download"], "CIFAR-10/100 only"),
    ],
)
def test_bad_spellings_on_the_command_line(args, message):
    done = runner.invoke(app, args)
    assert done.exit_code == 2, done.output
    assert message in done.stderr and done.stderr.count("\n") == 1


def test_download_fetches_the_archive_only_when_asked(fake_cifar, tmp_path, monkeypatch, capsys):
    """--download against a local HTTP server serving a tar.gz of the stand-in copy (no network)."""
    import functools
    import hashlib
    import http.server
    import tarfile
    import threading

    import torchvision

    root, written = fake_cifar
    served = tmp_path / "served"
    served.mkdir()
    archive = served / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/cifar-10-python.tar.gz"
        monkeypatch.setattr(torchvision.datasets.CIFAR10, "url", url)
        monkeypatch.setattr(
            torchvision.datasets.CIFAR10, "tgz_md5", hashlib.md5(archive.read_bytes()).hexdigest()
        )
        target = tmp_path / "data"
        with pytest.raises(InputError, match="--download"):
            read_cifar("cifar10", target)  # not asked: nothing fetched
        assert not target.exists()
        got = read_cifar("cifar10", target, download=True)
        assert got.labels.tolist() == written["cifar10"]["test"][1]
        assert capsys.readouterr().out == ""  # the downloader's chatter goes to stderr: stdout is --json's
        monkeypatch.setattr(torchvision.datasets.CIFAR10, "tgz_md5", "0" * 32)
        with pytest.raises(InputError, match="cannot download CIFAR-10"):
            read_cifar("cifar10", tmp_path / "other", download=True)  # a damaged archive is refused
    finally:
        server.shutdown()
