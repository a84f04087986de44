"""``normexport train``: recipes, real learning on real data, exact resume, DDP, and bad input.

The data set is scikit-learn's bundled handwritten digits (no download). Models are the
smallest of each family; runs are a few steps on a few images, except the one that must
learn (resnet20 to >= 95 % test accuracy).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import normresnet_export as nx
from cli import app
from normresnet_export.nn.procrustes import operator_singular_values
from trainers import RECIPES, TrainConfig, default_recipe_name, load_data, train
from trainers.optim import LRSchedule, parameter_groups

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def _assert_same_weights(a: Path, b: Path) -> None:
    first, second = _state_dict(a), _state_dict(b)
    assert first.keys() == second.keys()
    different = [k for k in first if not torch.equal(first[k], second[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def _history(run: Path) -> list[dict]:
    skip = {"images_per_s", "train_seconds", "eval_seconds"}
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in skip} for row in rows]


# ----------------------------------------------------------------------------------- learning


def test_resnet20_learns_digits_to_95_percent(tmp_path):
    run = tmp_path / "run"
    result = train(
        TrainConfig(
            arch="resnet20",
            dataset="digits",
            epochs=4,
            batch_size=32,
            lr=0.05,
            channels_last=True,
            out=run,
            progress=False,
        )
    )
    assert result.recipe == "torch-resnet" and result.epochs_completed == 4 and not result.interrupted
    assert result.best_top1 >= 95.0, _history(run)
    assert result.device.startswith("cpu") and result.precision == "float32"

    # best.pt alone reproduces the reported accuracy: weights, preprocessing and labels travel with it.
    best = nx.load_checkpoint(run / "best.pt")
    data = load_data("digits", recipe=RECIPES["torch-resnet"], input_size=32)
    images = torch.stack([data.test[i][0] for i in range(data.num_test)]).float() / 255
    labels = torch.tensor([data.test[i][1] for i in range(data.num_test)])
    mean = torch.tensor(best.preprocessing.mean).view(1, 3, 1, 1)
    std = torch.tensor(best.preprocessing.std).view(1, 3, 1, 1)
    with torch.no_grad():
        predicted = best.model((images - mean) / std).argmax(1)
    accuracy = 100.0 * float((predicted == labels).float().mean())
    assert accuracy == pytest.approx(result.best_top1, abs=1e-3)
    assert best.labels == [str(d) for d in range(10)] and best.metrics["top1"] == pytest.approx(accuracy)

    rows = _history(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((run / "config.json").read_text())
    assert config["lr"] == 0.05 and config["batch_size"] == 32 and config["weight_decay"] == 1e-4
    assert config["schedule"]["unit"] == "step" and config["model_kwargs"]["num_classes"] == 10
    last = nx.load_checkpoint(run / "last.pt")
    assert last.train_state["config"] == config and last.train_state["epoch"] == 4
    assert {"optimizer", "scheduler", "scaler", "rng", "global_step"} <= last.train_state.keys()


@pytest.mark.parametrize(
    ("arch", "recipe"),
    [
        ("resnet20", "torch-resnet"),
        ("tau_resnet20_nobn", "tau-resnet-cifar"),
        ("procresnet166", "procresnet"),
        ("lenoresnet50", "leno"),
        ("diracnet_cifar16_1", "diracnet-cifar"),
    ],
)
def test_every_family_trains_one_step(tmp_path, arch, recipe):
    extra = {"regul_freq": 1.0} if arch.startswith("procresnet") else {}
    result = train(
        TrainConfig(
            arch=arch,
            dataset="digits",
            epochs=1,
            batch_size=4,
            limit_train=4,
            limit_test=4,
            out=tmp_path,
            progress=False,
            **extra,
        )
    )
    assert result.recipe == recipe == default_recipe_name(arch)
    last = nx.load_checkpoint(tmp_path / "last.pt")
    assert last.train_state["global_step"] == 1 and last.arch == arch
    assert last.model_kwargs["num_classes"] == 10
    torch.manual_seed(last.train_state["config"]["seed"])
    initial = nx.create_model(arch, **last.model_kwargs).state_dict()
    changed = [k for k, v in last.model.state_dict().items() if not torch.equal(v, initial[k])]
    assert changed, "one optimizer step changed no weight"
    row = _history(tmp_path)[0]
    assert row["train_loss"] == row["train_loss"]  # not NaN
    if arch == "procresnet166":
        assert result.procrustes["projections"] == 1 and row["projections"] == 1
        for name in ("trans_conv1", "trans_conv2"):
            conv = getattr(last.model, name)
            sigma = operator_singular_values(conv.weight, (16, 16))
            assert (sigma - 2**0.5).abs().max() < 1e-3
        # The 3×3 stem keeps the deviation the crop leaves; metrics.jsonl reports it (6 decimals).
        deviation = result.procrustes["deviation"]["conv1"]["max_rel_dev"]
        assert deviation > 1e-3 and deviation == pytest.approx(row["procrustes_dev_conv1"], abs=1e-6)
    if arch == "tau_resnet20_nobn":
        assert not torch.equal(last.model.tau, initial["tau"])


def test_adamw_keeps_the_recipes_groups_and_schedule_and_a_resumed_run_keeps_it(tmp_path):
    run = tmp_path / "run"
    args = ["--dataset", "digits", "--limit-train", "8", "--limit-test", "4", "--batch-size", "4"]
    first = ["tau_resnet20_nobn", *args, "--optimizer", "adamw", "--lr", "0.002", "--out", str(run)]
    result = runner.invoke(app, ["train", *first, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["optimizer"] == "adamw" and "momentum" not in config
    state = torch.load(run / "last.pt", weights_only=True)["train_state"]
    groups = {g["name"]: g for g in state["optimizer"]["param_groups"]}
    # AdamW's state: a step count and two moments per parameter; tau and the offsets at lr/10
    assert all({"step", "exp_avg", "exp_avg_sq"} <= s.keys() for s in state["optimizer"]["state"].values())
    assert groups["main"]["lr"] == pytest.approx(0.002) and groups["tau"]["lr"] == pytest.approx(0.0002)
    assert groups["offsets"]["weight_decay"] == pytest.approx(1e-4)
    assert _history(run)[0]["lr"] == pytest.approx(0.002)  # the main group's rate, not tau's
    assert "--optimizer sgd (the run has adamw)" in _error(
        ["tau_resnet20_nobn", *args, "--optimizer", "sgd", "--out", str(run), "--resume"]
    )
    resumed = runner.invoke(
        app, ["train", "tau_resnet20_nobn", *args, "--out", str(run), "--resume", "--epochs", "2"]
    )
    assert resumed.exit_code == 0, resumed.output
    assert "AdamW lr 0.002" in resumed.output
    assert json.loads((run / "config.json").read_text())["optimizer"] == "adamw"
    assert "unknown --optimizer 'adam'; expected one of sgd, adamw" in _error(
        ["resnet20", *args, "--optimizer", "adam", "--out", str(tmp_path / "never")]
    )
    assert not (tmp_path / "never").exists()


def test_check_and_training_evaluate_on_the_same_digits():
    from normresnet_export.data import digits

    data = load_data("digits", recipe=RECIPES["torch-resnet"], input_size=32, limit_test=40)
    images, labels = digits.test_split(limit=40)
    assert images.dtype == torch.uint8 and images.shape == (40, 3, 32, 32) and labels.dtype == torch.int64
    assert torch.equal(images, data.test.images) and torch.equal(labels, data.test.labels)
    assert len(digits.test_split()[1]) == 360 and data.num_train == 1437


# ------------------------------------------------------------------------------ recipe details


def test_recipes_carry_each_papers_schedule():
    proc = LRSchedule(RECIPES["procresnet"].schedule, steps_per_epoch=391)
    assert [proc.factor(e, 0) for e in (0, 149, 150, 224, 225, 299)] == [1, 1, 0.1, 0.1, 0.01, 0.01]
    torch_resnet = LRSchedule(RECIPES["torch-resnet"].schedule, steps_per_epoch=391)
    assert [torch_resnet.factor(0, s) for s in (0, 400, 401, 32000, 32001, 48000, 48001)] == [
        0.1, 0.1, 1.0, 1.0, 0.1, 0.1, 0.01
    ]  # fmt: skip
    leno = RECIPES["leno"].schedule  # stepped one epoch early in the reference
    assert [leno.factor(e) for e in (28, 29, 58, 59, 78, 79)] == [1, 0.1, 0.1, 0.01, 0.01, 0.001]
    dirac = RECIPES["diracnet-cifar"]
    assert dirac.schedule.factor(58) == 1 and dirac.schedule.factor(59) == pytest.approx(0.2)
    assert dirac.momentum_reset and dirac.weight_decay == 5e-4
    assert RECIPES["procresnet"].regul_freq == 0.5 and RECIPES["procresnet"].batch_size == 128
    # Shorter runs keep the shape of the schedule.
    assert RECIPES["procresnet"].schedule.stretched(30).milestones == (15, 22)
    assert nx.model_info("tau_resnet110").default_kwargs["tau"] == pytest.approx(1 / 54**0.5)


def _groups(arch: str, recipe: str, **kwargs) -> dict[str, tuple[float, float, set[str]]]:
    with torch.device("meta"):
        model = nx.create_model(arch, **kwargs)
    r = RECIPES[recipe]
    names = {id(p): n for n, p in model.named_parameters()}
    groups = parameter_groups(
        model, lr=r.lr, weight_decay=r.weight_decay, decay_on=r.decay_on, lr_groups=r.lr_groups
    )
    return {g["name"]: (g["lr"], g["weight_decay"], {names[id(p)] for p in g["params"]}) for g in groups}


def test_parameter_groups_follow_each_recipes_weight_decay_rules():
    dirac = _groups("diracnet_cifar16_1", "diracnet-cifar")
    no_decay = dirac["main (no decay)"][2]
    assert dirac["main (no decay)"][1] == 0.0 and dirac["main"][1] == 5e-4
    assert {"group0.block0.conv.alpha", "group0.block0.conv.beta", "bn.weight", "fc.bias"} <= no_decay
    assert {"conv.weight", "group0.block0.conv.weight", "fc.weight"} <= dirac["main"][2]

    torch_resnet = _groups("resnet20", "torch-resnet")
    assert all(n.endswith("weight") for n in torch_resnet["main"][2])
    assert "init_layer.1.weight" in torch_resnet["main (no decay)"][2]  # BatchNorm: no decay

    tau = _groups("tau_resnet20_nobn", "tau-resnet-cifar")
    assert tau["tau"][0] == pytest.approx(0.01) and tau["tau"][2] == {"tau"}
    assert tau["offsets"][0] == pytest.approx(0.01) and "layer1.0.bias1a" in tau["offsets"][2]
    assert tau["main"][0] == 0.1 and all(wd == 1e-4 for _, wd, _ in tau.values())

    proc = _groups("procresnet166", "procresnet")
    assert list(proc) == ["main"] and proc["main"][1] == 1e-4  # everything decays


# ---------------------------------------------------------------------------------- resuming


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from cli import app; app()", "train", *args]


_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
# wide_resnet16_1 has dropout, so an exact resume also needs the global RNG state back.
_RUN = ["wide_resnet16_1", "--dataset", "digits", "--limit-train", "160", "--limit-test", "32"]
_RUN += ["--batch-size", "16", "--epochs", "3", "--seed", "5"]


def test_sigkill_mid_epoch_then_resume_ends_with_identical_weights(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    log = (tmp_path / "reference.log").open("wb")
    reference = subprocess.Popen(_cli(*_RUN, "--out", str(whole)), cwd=ROOT, env=_ENV, stderr=log)
    victim = subprocess.Popen(
        _cli(*_RUN, "--out", str(killed)), cwd=ROOT, env=_ENV, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not (killed / "metrics.jsonl").exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.7)  # into the second epoch (any point would do: see the assertion below)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    assert reference.wait(timeout=120) == 0, (tmp_path / "reference.log").read_text()
    interrupted_at = torch.load(killed / "last.pt", weights_only=True)["train_state"]["epoch"]
    assert interrupted_at < 3, "the run finished before it could be killed"
    resumed = subprocess.run(
        _cli(*_RUN, "--out", str(killed), "--resume"), cwd=ROOT, env=_ENV, capture_output=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert f"resuming {killed} at epoch {interrupted_at + 1}" in resumed.stderr.decode()
    _assert_same_weights(whole / "last.pt", killed / "last.pt")
    _assert_same_weights(whole / "best.pt", killed / "best.pt")
    assert _history(whole) == _history(killed)


def _small_run(out: Path, **kwargs) -> TrainConfig:
    return TrainConfig(
        arch="procresnet166",
        dataset="digits",
        epochs=2,
        batch_size=4,
        limit_train=8,
        limit_test=4,
        regul_freq=0.5,
        seed=3,
        out=out,
        progress=False,
        **kwargs,
    )


def test_sigint_saves_a_mid_epoch_checkpoint_that_resumes_exactly(tmp_path):
    """Procrustes coin flips, momentum, the position in the epoch and its running sums all resume."""
    whole = train(_small_run(tmp_path / "whole"))
    assert whole.procrustes["projections"] > 0

    def interrupt(step):
        if step.global_step == 3:  # first of the two steps of the second epoch
            os.kill(os.getpid(), signal.SIGINT)

    stopped = train(_small_run(tmp_path / "cut"), on_step=interrupt)
    assert stopped.interrupted and stopped.epochs_completed == 1
    state = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["train_state"]
    assert (state["epoch"], state["batch_in_epoch"], state["global_step"]) == (1, 1, 3)
    assert state["partial"]["seen"] == 4
    resumed = train(_small_run(tmp_path / "cut", resume=True))
    assert not resumed.interrupted and resumed.epochs_completed == 2
    _assert_same_weights(tmp_path / "whole" / "last.pt", tmp_path / "cut" / "last.pt")
    assert _history(tmp_path / "whole") == _history(tmp_path / "cut")
    assert resumed.procrustes["projections"] == whole.procrustes["projections"]


def test_cli_exits_130_when_interrupted(tmp_path, monkeypatch):
    import trainers

    real = trainers.train

    def interrupted_train(config):
        return real(config, on_step=lambda step: os.kill(os.getpid(), signal.SIGINT))

    monkeypatch.setattr(trainers, "train", interrupted_train)
    args = ["train", "resnet20", "--dataset", "digits", "--limit-train", "8", "--batch-size", "4"]
    result = runner.invoke(app, [*args, "--limit-test", "4", "--out", str(tmp_path / "run")])
    assert result.exit_code == 130, result.output
    assert "--resume" in result.stdout and (tmp_path / "run" / "last.pt").exists()


# ------------------------------------------------------------------------------- distributed


def test_torchrun_with_two_gloo_processes_trains_one_epoch(tmp_path):
    run = tmp_path / "ddp"
    script = Path(sys.executable).with_name("normexport")  # the installed console script
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += [
        "--no-python",
        str(script),
        "train",
        "resnet20",
        "--dataset",
        "digits",
        "--epochs",
        "1",
        "--batch-size",
        "16",
    ]
    command += ["--limit-train", "64", "--limit-test", "32", "--out", str(run), "--json"]
    done = subprocess.run(command, cwd=ROOT, env=_ENV, capture_output=True, timeout=180)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    summary = json.loads(done.stdout)  # one document: only rank 0 prints
    assert summary["world_size"] == 2 and summary["epochs_completed"] == 1
    assert sorted(p.name for p in run.iterdir()) == [
        "best.pt", "config.json", "curves.png", "last.pt", "metrics.jsonl"
    ]  # fmt: skip
    state = nx.load_checkpoint(run / "last.pt").train_state
    assert state["config"]["world_size"] == 2 and state["config"]["batch_size_per_process"] == 8
    assert state["global_step"] == 4 and len(state["rng"]) == 2  # 64 images / global batch 16
    assert "DDP over 2 processes (gloo)" in done.stderr.decode()


# ---------------------------------------------------------------------------------- bad input


def _error(args: list[str]) -> str:
    result = runner.invoke(app, ["train", *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_bad_input_fails_with_one_line_before_any_work(tmp_path):
    out = ["--out", str(tmp_path / "never")]
    assert "did you mean resnet20" in _error(["resnt20", "--dataset", "digits", *out])
    assert "expected one of digits, cifar10" in _error(["resnet20", "--dataset", "mnist", *out])
    missing = _error(["resnet20", "--dataset", "folder", "--data-dir", str(tmp_path / "nope"), *out])
    assert "does not exist" in missing
    assert "pass --download" in _error(
        ["resnet20", "--dataset", "cifar10", "--data-dir", str(tmp_path), *out]
    )
    assert "digits has 10 classes" in _error(
        ["resnet20", "--dataset", "digits", "--num-classes", "100", *out]
    )
    assert "apply to ProcResNets" in _error(["resnet20", "--dataset", "digits", "--regul-freq", "0.3", *out])
    assert "applies to tau-ResNets" in _error(["resnet20", "--dataset", "digits", "--tau", "0.3", *out])
    assert "needs CUDA" in _error(["resnet20", "--dataset", "digits", "--device", "cpu", "--amp", *out])
    if not torch.cuda.is_available():
        assert "--device cuda was asked for" in _error(
            ["resnet20", "--dataset", "digits", "--device", "cuda", *out]
        )
    assert not (tmp_path / "never").exists()


def test_resume_refuses_another_arch_and_changed_settings(tmp_path):
    run = tmp_path / "run"
    args = ["--dataset", "digits", "--limit-train", "8", "--limit-test", "4", "--batch-size", "4"]
    result = runner.invoke(app, ["train", "resnet20", *args, "--epochs", "1", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert "run of 'resnet20', not 'tau_resnet20'" in _error(
        ["tau_resnet20", *args, "--out", str(run), "--resume"]
    )
    assert "--lr 0.5 (the run has 0.1)" in _error(
        ["resnet20", *args, "--lr", "0.5", "--out", str(run), "--resume"]
    )
    assert "already holds a run" in _error(["resnet20", *args, "--out", str(run)])
    assert "holds no run" in _error(["resnet20", *args, "--out", str(tmp_path), "--resume"])


def test_folder_dataset_with_class_check(tmp_path):
    data = tmp_path / "shapes"
    for label, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (data / label).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (40 + i, 36), colour).save(data / label / f"{i}.png")
    assert "has 2 classes (blue, red)" in _error(
        ["resnet20", "--dataset", "folder", "--data-dir", str(data), "--num-classes", "3"]
    )
    result = runner.invoke(
        app,
        [
            *("train", "resnet20", "--dataset", "folder", "--data-dir", str(data), "--epochs", "1"),
            *("--batch-size", "3", "--workers", "0", "--out", str(tmp_path / "run"), "--json"),
        ],
    )
    assert result.exit_code == 0, result.output
    best = nx.load_checkpoint(tmp_path / "run" / "best.pt")
    assert best.labels == ["blue", "red"] and best.preprocessing.input_size == (3, 32, 32)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["num_train"], config["num_test"]) == (9, 1)  # a fixed 90/10 split


def test_training_without_matplotlib_skips_curves_and_says_how_to_get_them(tmp_path, monkeypatch):
    from trainers import records

    monkeypatch.setattr(records, "plot_available", lambda: False)
    args = ["resnet20", "--dataset", "digits", "--limit-train", "8", "--limit-test", "4", "--batch-size", "4"]
    result = runner.invoke(app, ["train", *args, "--epochs", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "curves.png is skipped" in result.stderr and "normresnet-export[plot]" in result.stderr
    assert not (tmp_path / "run" / "curves.png").exists() and (tmp_path / "run" / "metrics.jsonl").exists()
