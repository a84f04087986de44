"""Pretrained weights: the registry, verified downloads from a real local HTTP server, the cache, names.

The server is a small threaded ``http.server`` on 127.0.0.1 that serves files the test generates,
with Range support, and can fail on purpose (404, 500, a stall, a connection dropped half-way).
The cache is a temporary ``NORMEXPORT_HOME``; test entries come from an extra registry file
(``NORMEXPORT_WEIGHTS_REGISTRY``). Nothing touches the network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import torch
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app
from normresnet_export import weights
from normresnet_export.errors import CheckFailedError, InputError
from normresnet_export.nn import dirac_delta
from normresnet_export.preprocess import PRESETS
from tests.helpers import randomise_for_folding
from tests.refweights import reference_input, reference_state_dict

ROOT = Path(__file__).resolve().parents[1]
#: Logits of the original code on reference weights (the import tests' cases).
REFERENCE_CASES = json.loads((ROOT / "tests" / "expect" / "reference_logits.json").read_text())
runner = CliRunner()


# --------------------------------------------------------------------------------------------- server


class _Files:
    """What the server serves (path -> bytes) and every request it saw (path, Range header)."""

    def __init__(self) -> None:
        self.content: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.dropped: set[str] = set()


class _Handler(http.server.BaseHTTPRequestHandler):
    files: _Files

    def log_message(self, *args: object) -> None:  # keep pytest's output clean
        pass

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        ranged = self.headers.get("Range")
        self.files.requests.append((path, ranged))
        if path.startswith("/status/"):
            self.send_error(int(path.split("/")[2]))
            return
        if path.startswith("/stall/"):
            time.sleep(3)  # longer than the test's NORMEXPORT_DOWNLOAD_TIMEOUT
        body = self.files.content.get(re.sub(r"^/(mirror|drop|slow|stall)/", "/", path))
        if body is None:
            self.send_error(404)
            return
        start = int(re.fullmatch(r"bytes=(\d+)-", ranged).group(1)) if ranged else 0
        self.send_response(206 if ranged else 200)
        if ranged:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if path.startswith("/drop/") and path not in self.files.dropped:
            self.files.dropped.add(path)  # the first answer stops half-way, as a dropped connection
            self.wfile.write(body[start : len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        if path.startswith("/slow/"):  # long enough that two downloaders overlap
            for i in range(start, len(body), 64 * 1024):
                self.wfile.write(body[i : i + 64 * 1024])
                time.sleep(0.02)
            return
        self.wfile.write(body[start:])


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, _Files]]:
    files = _Files()
    handler = type("Handler", (_Handler,), {"files": files})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", files
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def served(server: tuple[str, _Files], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A generated resnet20 checkpoint served under several paths; returns its digest and the paths."""
    base, files = server
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("served") / "r20.pt"
    nx.save_checkpoint(
        path,
        nx.create_model("resnet20"),
        arch="resnet20",
        labels=[str(i) for i in range(10)],
        preprocessing=PRESETS["cifar10"],
    )
    body = path.read_bytes()
    files.content["/files/r20.pt"] = body
    return {
        "base": base,
        "sha256": hashlib.sha256(body).hexdigest(),
        "size": str(len(body)),
        "file": str(path),
    }


def _entry(name: str, url: str, hash_line: str) -> str:
    return (
        f'[[weights]]\nname = "{name}"\narch = "resnet20"\nsource = "normexport"\nurl = ["{url}"]\n'
        f'{hash_line}\nlabels = "digits.txt"\nlicense = "MIT"\ndescription = "test weights"\n\n'
    )


@pytest.fixture
def cache(
    served: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: tuple[str, _Files]
) -> Path:
    """A fresh cache and a registry of test entries pointing at the server."""
    base, digest = served["base"], served["sha256"]
    server[1].requests.clear()
    server[1].dropped.clear()
    (tmp_path / "digits.txt").write_text("\n".join(str(i) for i in range(10)) + "\n")
    full = f'sha256 = "{digest}"'
    entries = [
        _entry("resnet20.test_ok", f"{base}/files/r20.pt", full),
        _entry("resnet20.test_prefix", f"{base}/files/r20.pt", f'sha256_prefix = "{digest[:8]}"'),
        _entry("resnet20.test_bad_hash", f"{base}/files/r20.pt", f'sha256 = "{"0" * 64}"'),
        _entry("resnet20.test_drop", f"{base}/drop/files/r20.pt", full),
        _entry("resnet20.test_slow", f"{base}/slow/files/r20.pt", full),
        _entry("resnet20.test_404", f"{base}/status/404", full),
        _entry("resnet20.test_500", f"{base}/status/500", full),
        _entry("resnet20.test_stall", f"{base}/stall/files/r20.pt", full),
        _entry("resnet20.test_mirror", "https://weights.invalid/files/r20.pt", full),
        _entry("resnet20.test_file", Path(served["file"]).as_uri(), full),
    ]
    registry = tmp_path / "registry.toml"
    registry.write_text("".join(entries))
    home = tmp_path / "home"
    monkeypatch.setenv("NORMEXPORT_WEIGHTS_REGISTRY", str(registry))
    monkeypatch.setenv("NORMEXPORT_HOME", str(home))
    monkeypatch.setenv("NORMEXPORT_DOWNLOAD_TIMEOUT", "1")
    monkeypatch.delenv("NORMEXPORT_OFFLINE", raising=False)
    monkeypatch.delenv("NORMEXPORT_WEIGHTS_MIRROR", raising=False)
    return home


def _one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _cached_files(home: Path, name: str) -> list[str]:
    directory = home / "weights" / name
    return sorted(p.name for p in directory.iterdir() if p.name != ".lock") if directory.exists() else []


# --------------------------------------------------------------------------------------------- download


def test_download_verify_convert_and_predict_end_to_end(cache: Path, tmp_path: Path, served: dict[str, str]):
    result = runner.invoke(app, ["weights", "download", "resnet20.test_ok", "--json"])
    assert result.exit_code == 0, result.stderr
    path = Path(json.loads(result.stdout)[0]["path"])
    assert path == cache / "weights" / "resnet20.test_ok" / "checkpoint.safetensors"
    assert _cached_files(cache, "resnet20.test_ok") == ["checkpoint.safetensors", "r20.pt", "record.json"]
    checkpoint = nx.load_checkpoint(path)
    assert checkpoint.metrics["source_sha256"] == served["sha256"]
    assert checkpoint.labels == [str(i) for i in range(10)]
    same = runner.invoke(app, ["weights", "path", "resnet20.test_ok"])
    assert same.exit_code == 0 and same.stdout.strip() == str(path)

    from normresnet_export.data.digits import write_digit_images

    image = write_digit_images(tmp_path / "images", 1)[0]
    predicted = runner.invoke(app, ["predict", "resnet20.test_ok", str(image), "--json", "--top-k", "2"])
    assert predicted.exit_code == 0, predicted.stderr
    expected = runner.invoke(app, ["predict", str(path), str(image), "--json", "--top-k", "2"])
    assert json.loads(predicted.stdout) == json.loads(expected.stdout)

    listed = {
        row["name"]: row for row in json.loads(runner.invoke(app, ["weights", "list", "--json"]).stdout)
    }
    assert listed["resnet20.test_ok"]["cached"] and listed["resnet20.test_ok"]["sha256"] == served["sha256"]
    assert not listed["resnet20.test_prefix"]["cached"]


def test_a_wrong_hash_exits_1_names_both_digests_and_caches_nothing(cache: Path, served: dict[str, str]):
    result = runner.invoke(app, ["weights", "download", "resnet20.test_bad_hash"])
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert served["sha256"] in line and "0" * 64 in line
    assert _cached_files(cache, "resnet20.test_bad_hash") == []


def test_a_dropped_connection_is_resumed_with_a_range_request(cache: Path, server: tuple[str, _Files]):
    first = runner.invoke(app, ["weights", "download", "resnet20.test_drop"])
    assert first.exit_code == 2 and "next run resumes" in _one_error_line(first)
    part = cache / "weights" / "resnet20.test_drop" / "r20.pt.part"
    kept = part.stat().st_size
    assert kept > 0
    second = runner.invoke(app, ["weights", "download", "resnet20.test_drop"])
    assert second.exit_code == 0, second.stderr
    assert server[1].requests[-1] == ("/drop/files/r20.pt", f"bytes={kept}-")
    assert not part.exists()
    assert runner.invoke(app, ["weights", "verify", "resnet20.test_drop"]).exit_code == 0


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("resnet20.test_404", "HTTP 404"),
        ("resnet20.test_500", "HTTP 500"),
        ("resnet20.test_stall", "did not answer within 1 s"),
    ],
)
def test_http_errors_and_timeouts_are_one_line_exit_2(cache: Path, name: str, expected: str):
    result = runner.invoke(app, ["weights", "path", name])
    assert result.exit_code == 2
    assert expected in _one_error_line(result)
    assert not (cache / "weights" / name / "checkpoint.safetensors").exists()


def test_offline_mode_opens_no_connection_and_says_where_the_file_goes(
    cache: Path, server: tuple[str, _Files], monkeypatch: pytest.MonkeyPatch, served: dict[str, str]
):
    monkeypatch.setenv("NORMEXPORT_OFFLINE", "1")
    result = runner.invoke(app, ["weights", "path", "resnet20.test_ok"])
    assert result.exit_code == 2
    line = _one_error_line(result)
    target = cache / "weights" / "resnet20.test_ok" / "r20.pt"
    assert "NORMEXPORT_OFFLINE" in line and str(target) in line and served["sha256"] in line
    assert server[1].requests == []
    target.write_bytes(Path(served["file"]).read_bytes())  # put where the message says
    placed = runner.invoke(app, ["weights", "path", "resnet20.test_ok"])
    assert placed.exit_code == 0, placed.stderr
    assert server[1].requests == []


def test_the_mirror_replaces_the_host(
    cache: Path, server: tuple[str, _Files], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("NORMEXPORT_WEIGHTS_MIRROR", server[0] + "/mirror")
    result = runner.invoke(app, ["weights", "download", "resnet20.test_mirror"])
    assert result.exit_code == 0, result.stderr
    assert server[1].requests == [("/mirror/files/r20.pt", None)]


def test_a_published_prefix_is_checked_and_the_full_digest_recorded(cache: Path, served: dict[str, str]):
    result = runner.invoke(app, ["weights", "download", "resnet20.test_prefix"])
    assert result.exit_code == 0, result.stderr
    assert f"recorded the full sha256 {served['sha256']}" in result.stderr
    listed = runner.invoke(app, ["weights", "list", "resnet20.test_prefix", "--json"])
    assert json.loads(listed.stdout)[0]["sha256"] == served["sha256"]


def test_two_processes_downloading_the_same_entry_get_one_good_file(cache: Path, server: tuple[str, _Files]):
    code = "from normresnet_export.weights import fetch; print(fetch('resnet20.test_slow'))"
    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    paths = {out.strip() for out, _ in outputs}
    assert paths == {str(cache / "weights" / "resnet20.test_slow" / "checkpoint.safetensors")}
    assert _cached_files(cache, "resnet20.test_slow") == ["checkpoint.safetensors", "r20.pt", "record.json"]
    assert [r for r in server[1].requests if r[0].startswith("/slow/")] == [("/slow/files/r20.pt", None)]
    assert runner.invoke(app, ["weights", "verify", "resnet20.test_slow"]).exit_code == 0


def test_verify_detects_a_truncated_cached_file(cache: Path):
    assert runner.invoke(app, ["weights", "download", "resnet20.test_file"]).exit_code == 0
    assert runner.invoke(app, ["weights", "verify", "resnet20.test_file"]).exit_code == 0
    raw = cache / "weights" / "resnet20.test_file" / "r20.pt"
    raw.write_bytes(raw.read_bytes()[:1000])
    result = runner.invoke(app, ["weights", "verify", "resnet20.test_file", "--json"])
    assert result.exit_code == 1
    row = json.loads(result.stdout)["weights"][0]
    assert row["status"] == "damaged" and "r20.pt has sha256" in row["detail"]
    forced = runner.invoke(app, ["weights", "download", "resnet20.test_file", "--force"])
    assert forced.exit_code == 0, forced.stderr
    assert runner.invoke(app, ["weights", "verify", "resnet20.test_file"]).exit_code == 0


def _saved(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_torchvision_and_diracnet_files_are_downloaded_and_converted_by_their_importers(
    server: tuple[str, _Files], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The two published sources go through the same download as ours, then their importer."""
    torchvision = pytest.importorskip("torchvision")
    base, files = server
    torch.manual_seed(0)
    reference = randomise_for_folding(torchvision.models.resnet18(weights=None)).eval()
    # The DiracNet authors' unfolded layout: learnable tensors under "params", statistics and
    # the constant Dirac "eye" tensors under "stats" (the original code's keys and values).
    case = REFERENCE_CASES["diracnet_cifar16_1"]
    flat = reference_state_dict(case["keys"])
    for key, shape in case["keys"]:
        if key.startswith("eye"):
            flat[key] = dirac_delta(shape)
    stats = {k: v for k, v in flat.items() if k.startswith("eye") or "running" in k}
    bodies = {
        "resnet18.test_torchvision": ("resnet18", "torchvision", _saved(reference.state_dict())),
        "diracnet_cifar16_1.test_diracnet": (
            "diracnet_cifar16_1",
            "diracnet",
            _saved({"params": {k: v for k, v in flat.items() if k not in stats}, "stats": stats}),
        ),
    }
    entries = ""
    for name, (arch, source, body) in bodies.items():
        files.content[f"/published/{name}.pth"] = body
        entries += (
            f'[[weights]]\nname = "{name}"\narch = "{arch}"\nsource = "{source}"\n'
            f'url = ["{base}/published/{name}.pth"]\nsha256 = "{hashlib.sha256(body).hexdigest()}"\n'
            'license = "MIT"\ndescription = "test weights"\n\n'
        )
    (tmp_path / "registry.toml").write_text(entries)
    monkeypatch.setenv("NORMEXPORT_WEIGHTS_REGISTRY", str(tmp_path / "registry.toml"))
    monkeypatch.setenv("NORMEXPORT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NORMEXPORT_OFFLINE", raising=False)
    monkeypatch.delenv("NORMEXPORT_WEIGHTS_MIRROR", raising=False)

    result = runner.invoke(app, ["weights", "download", *bodies, "--json"])
    assert result.exit_code == 0, result.stderr
    paths = {row["name"]: Path(row["path"]) for row in json.loads(result.stdout)}
    for name, (arch, source, body) in bodies.items():
        checkpoint = nx.load_checkpoint(paths[name])
        assert checkpoint.arch == arch and checkpoint.metrics["imported_from"] == source
        assert checkpoint.metrics["source_sha256"] == hashlib.sha256(body).hexdigest()

    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(x)
        converted = nx.create_model("resnet18", weights="resnet18.test_torchvision").eval()(x)
        dirac = nx.load_checkpoint(paths["diracnet_cifar16_1.test_diracnet"]).model.eval()
        dirac_logits = dirac(reference_input(case["input_shape"]))
    scale = expected.abs().max()
    assert ((converted - expected).abs().max() / scale).item() <= 1e-5  # the import's own tolerance
    dirac_expected = torch.tensor(case["logits"])
    assert ((dirac_logits - dirac_expected).abs().max() / dirac_expected.abs().max()).item() <= 1e-5


# --------------------------------------------------------------------------------------------- names


def test_a_name_that_is_neither_file_nor_entry_gets_the_closest_names(tmp_path: Path):
    result = runner.invoke(app, ["predict", "resnet20.digit", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "resnet20.digits" in line and "neither a file nor a pretrained weights name" in line
    with pytest.raises(InputError, match="did you mean"):
        weights.resolve_model_file("preact_resnet20.digit")
    missing = tmp_path / "missing.pt"  # what looks like a file is left to the caller to report
    assert weights.resolve_model_file(str(missing)) == missing
    assert weights.resolve_model_file(str(ROOT / "weights" / "digits.txt")) == ROOT / "weights" / "digits.txt"


def test_fold_takes_a_weights_name(tmp_path: Path):
    result = runner.invoke(
        app, ["fold", "resnet20.digits", "-o", str(tmp_path / "folded.safetensors"), "--json"]
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["passed"] and nx.load_checkpoint(tmp_path / "folded.safetensors").folded


def test_create_model_with_weights_and_its_contradictions():
    model = nx.create_model("resnet20", weights="resnet20.digits")
    default = nx.create_model("resnet20", pretrained=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), default(x))
    assert (
        not nx.create_model("resnet20").state_dict()["head.weight"].equal(model.state_dict()["head.weight"])
    )
    with pytest.raises(
        InputError, match=re.escape("num_classes=100 contradicts the weights resnet20.digits")
    ):
        nx.create_model("resnet20", weights="resnet20.digits", num_classes=100)
    with pytest.raises(InputError, match="belong to preact_resnet20, not resnet20"):
        nx.create_model("resnet20", weights="preact_resnet20.digits")
    with pytest.raises(InputError, match="resnet56 has no default pretrained weights"):
        nx.create_model("resnet56", pretrained=True)
    pretrained = nx.list_models(pretrained=True)
    assert "resnet20" in pretrained and "resnet56" not in pretrained and "resnet50" in pretrained
    assert [row["name"] for row in nx.list_weights("resnet20.*")] == ["resnet20.digits"]


def test_models_command_has_a_weights_column():
    result = runner.invoke(app, ["models", "resnet2*", "--json"])
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["resnet20"]["weights"] == ["resnet20.digits"] and rows["resnet200"]["weights"] == []
    table = runner.invoke(app, ["models", "resnet20"])
    assert "weights" in table.stdout and "resnet20.digits" in table.stdout


def test_torch_hub_local_gives_the_logits_of_create_model():
    hub = torch.hub.load(str(ROOT), "resnet20", source="local", weights="resnet20.digits", trust_repo=True)
    direct = nx.create_model("resnet20", weights="resnet20.digits")
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(hub(x), direct(x))
    import hubconf

    assert all(callable(getattr(hubconf, name)) for name in nx.list_models())
    assert "torch" in hubconf.dependencies and hubconf.resnet50.__doc__.startswith("ResNet-50")


# --------------------------------------------------------------------------------------------- registry


def test_the_registry_validates_and_every_url_and_hash_is_well_formed():
    from normresnet_export import vocabulary

    assert weights.SOURCES is vocabulary.WEIGHT_SOURCES
    assert set(vocabulary.IMPORT_SOURCES) < set(weights.SOURCES)
    entries = weights.read_registry(weights.REGISTRY_FILE)
    shipped = [e for e in entries.values() if e.shipped]
    remote = [e for e in entries.values() if not e.shipped]
    assert {e.arch for e in shipped} >= {
        "resnet20",
        "preact_resnet20",
        "tau_resnet20",
        "procresnet166",
        "diracnet_cifar16_1",
    }
    assert {e.arch for e in remote if e.source == "torchvision"} == {
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "resnet152",
        "wide_resnet50_2",
        "wide_resnet101_2",
    }
    assert {e.name for e in remote if e.arch.startswith("diracnet")} == {
        "diracnet18.v2",
        "diracnet18.v2_folded",
        "diracnet34.v2",
        "diracnet34.v2_folded",
    }
    for entry in remote:
        for url in entry.urls:
            parts = urlsplit(url)
            assert parts.scheme == "https" and parts.netloc and parts.path.endswith(".pth"), url
        published = re.search(r"-([0-9a-f]{8})\.pth$", entry.urls[0])
        assert (entry.sha256_prefix, entry.unpublished_hash) == (
            (published.group(1), False) if published else (None, True)
        ), entry.name
        assert entry.labels == "imagenet1k.txt" and entry.preprocessing is not None
        assert entry.preprocessing.to_dict() == {
            "input_size": [3, 224, 224],
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "resize": 256,
            "crop": 224,
            "interpolation": "bilinear",
            "channel_order": "RGB",
        }
    assert len(weights.read_labels(remote[0])) == 1000
    total = 0
    for entry in shipped:
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256), entry.name
        assert entry.shipped_path.stat().st_size == entry.size
        assert weights.sha256_file(entry.shipped_path) == entry.sha256, f"{entry.name}: run `make weights`"
        assert entry.train_command.startswith(f"normexport train {entry.arch} --dataset digits ")
        total += entry.size
    assert total < 25 * 2**20


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('sha256 = "', 'sha256 = "x'),
            "entry 'resnet20.bad', field 'sha256': expected 64 lower-case hex digits",
        ),
        (
            ('source = "normexport"', 'source = "timm"'),
            "entry 'resnet20.bad', field 'source': expected one of",
        ),
        (('arch = "resnet20"', 'arch = "resnet21"'), "entry 'resnet20.bad', field 'arch': unknown model"),
        (('license = "MIT"\n', ""), "entry 'resnet20.bad': field 'license' is missing"),
        (('url = ["', 'url = ["ftp://'), "entry 'resnet20.bad', field 'url': expected http://"),
    ],
)
def test_a_bad_entry_is_refused_naming_the_entry_and_field(
    tmp_path: Path, change: tuple[str, str], message: str
):
    (tmp_path / "digits.txt").write_text("0\n")
    text = _entry("resnet20.bad", "https://example.org/r20.pt", f'sha256 = "{"a" * 64}"').replace(*change, 1)
    (tmp_path / "registry.toml").write_text(text)
    with pytest.raises(InputError, match=re.escape(message)):
        weights.read_registry(tmp_path / "registry.toml")


def test_the_readme_table_is_the_registry():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- weights-table: start -->\n", "\n<!-- weights-table: end -->"
    assert start in readme and end in readme, "README lacks the weights table markers"
    table = readme.split(start, 1)[1].split(end, 1)[0]
    assert table == weights.readme_table(), "README's weights table is stale: paste weights.readme_table()"


@pytest.mark.parametrize("name", [e.name for e in weights.registry().values() if e.shipped])
def test_every_shipped_entry_reaches_its_recorded_accuracy_through_check(name: str):
    result = runner.invoke(app, weights.digits_check_command(name))
    assert result.exit_code == 0, f"{name}: {result.stderr}"
    accuracy = 100 * json.loads(result.stdout)["reference_accuracy"]
    recorded = weights.get_entry(name).accuracy
    assert abs(accuracy - recorded) <= 0.5, f"{name}: {accuracy:.2f}% measured, {recorded}% recorded"


def test_a_damaged_shipped_file_is_refused(tmp_path: Path):
    entry = weights.get_entry("resnet20.digits")
    copy = tmp_path / entry.file
    copy.write_bytes(entry.shipped_path.read_bytes()[:-10])
    damaged = dataclasses.replace(entry, base=tmp_path)  # the same entry, read beside a cut copy
    with pytest.raises(CheckFailedError, match="the file is damaged"):
        weights._check_shipped(damaged)
