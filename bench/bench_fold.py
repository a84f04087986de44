"""Benchmarks of the fold stage (issue: folding speed, memory, and the speed of folded models).

    python bench/bench_fold.py memory  [NAME ...]   # fold time and peak memory, one fresh process per model
    python bench/bench_fold.py speed   [NAME ...]   # eager latency, folded vs unfolded, batch 1 and 32
    python bench/bench_fold.py deviation [NAME ...] # folded-vs-unfolded logits across the registry
    python bench/bench_fold.py affine               # ways of computing a per-channel affine (ChannelAffine)

Timing follows bench/README.md: identical inputs for both variants, warm-up, timed blocks
interleaved (unfolded, folded, unfolded, …) and repeated, medians and ratios reported
side by side, since absolute times drift on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

import normresnet_export as nx
from normresnet_export.fold import DEEP_LAYERS, fold_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers import calibrate_batchnorm, randomise_for_folding

MEMORY_MODELS = ["resnet1202", "procresnet1003", "tau_resnet1202_nobn", "lenoresnet500", "diracnet34"]
SPEED_MODELS = [
    "resnet56",
    "preact_resnet164",
    "tau_resnet110",
    "tau_resnet110_nobn",
    "procresnet166",
    "lenoresnet50",
    "diracnet18",
    "diracnet_cifar34_2",
]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


def _prepared(name: str, *, calibrate: bool = False) -> torch.nn.Module:
    """A model with non-trivial BN statistics, tau, offsets, alpha and beta, as the fold tests prepare it.

    Deep nets (and, with ``calibrate``, every net) get BatchNorm statistics calibrated on a
    random batch, as a trained net's statistics match its activations; speed is measured so.
    """
    torch.manual_seed(0)
    model = randomise_for_folding(nx.create_model(name).eval())
    if calibrate or nx.count_layers(model) >= DEEP_LAYERS:
        size = nx.model_info(name).input_size
        calibrate_batchnorm(model, torch.randn(8, *size, generator=torch.Generator().manual_seed(1)))
    return model


def memory_one(name: str) -> dict[str, float]:
    """Fold ``name`` once (structure + weights, no check) while sampling the process RSS every millisecond."""
    torch.set_num_threads(2)
    model = _prepared(name)
    model_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    baseline = _rss_bytes()
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    result = fold_model(model, check=False)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    peak[0] = max(peak[0], _rss_bytes())
    return {
        "model": name,
        "layers": nx.count_layers(model),
        "model_mb": model_bytes / 2**20,
        "fold_seconds": seconds,
        "peak_extra_mb": (peak[0] - baseline) / 2**20,
        "peak_extra_over_model": (peak[0] - baseline) / model_bytes,
        "parameters_after": result.report.parameters_after,
    }


def memory(names: list[str]) -> None:
    print("| model | layers | model MB | fold time (s) | peak extra MB | peak extra / model |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        done = subprocess.run(
            [sys.executable, __file__, "memory-one", name], capture_output=True, text=True, check=True
        )
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {row['model']} | {row['layers']} | {row['model_mb']:.1f} | {row['fold_seconds']:.2f} | "
            f"{row['peak_extra_mb']:.1f} | {row['peak_extra_over_model']:.2f} |",
            flush=True,
        )


def _time_block(model: torch.nn.Module, x: torch.Tensor, calls: int) -> list[float]:
    with torch.no_grad():
        model(x)  # warm-up
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return times


def speed(names: list[str], repeats: int) -> None:
    torch.set_num_threads(2)
    print("| model | input | batch | unfolded median ms | folded median ms | folded / unfolded |")
    print("|---|---|---:|---:|---:|---:|")
    for name in names:
        model = _prepared(name, calibrate=True)
        folded = fold_model(model, check=False).model
        size = nx.model_info(name).input_size
        for batch in (1, 32):
            x = torch.randn(batch, *size, generator=torch.Generator().manual_seed(0))
            calls = 20 if batch == 1 else 3
            timings: dict[str, list[float]] = {"unfolded": [], "folded": []}
            for _ in range(repeats):  # interleaved blocks, a short pause before each
                for label, net in (("unfolded", model), ("folded", folded)):
                    time.sleep(0.2)
                    timings[label] += _time_block(net, x, calls)
            unfolded, fold = statistics.median(timings["unfolded"]), statistics.median(timings["folded"])
            shape = "×".join(map(str, size))
            ratio = fold / unfolded
            print(
                f"| {name} | {shape} | {batch} | {unfolded * 1e3:.2f} | {fold * 1e3:.2f} | {ratio:.2f} |",
                flush=True,
            )


def deviation(names: list[str]) -> None:
    torch.set_num_threads(2)
    print("| model | layers | float32 max rel | unfolded float32 noise | float64 max rel | passed |")
    print("|---|---:|---:|---:|---:|---|")
    for name in names:
        model = _prepared(name)
        report = fold_model(model).report
        f32, f64 = report.deviations["float32"], report.deviations["float64"]
        print(
            f"| {name} | {nx.count_layers(model)} | {f32.max_rel:.1e} | {report.float32_noise:.1e} | "
            f"{f64.max_rel:.1e} | {report.passed} |",
            flush=True,
        )


def affine(repeats: int) -> None:
    """Per-channel affine on a 32×64×32×32 tensor: eval BatchNorm vs. the ways to write x * w + b."""
    import torch.nn.functional as F

    torch.set_num_threads(2)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32, 64, 32, 32, generator=generator)
    w, b = torch.rand(64, generator=generator) + 0.5, torch.randn(64, generator=generator)
    wv, bv, zeros, ones = w.view(1, -1, 1, 1), b.view(1, -1, 1, 1), torch.zeros(64), torch.ones(64)
    bn = torch.nn.BatchNorm2d(64).eval()
    variants = {
        "BatchNorm2d (eval)": lambda: bn(x),
        "x * w + b (broadcast)": lambda: x * wv + bv,
        "torch.addcmul(b, x, w)": lambda: torch.addcmul(bv, x, wv),
        "F.batch_norm(x, 0, 1, w, b, eps=0) (ChannelAffine)": lambda: F.batch_norm(
            x, zeros, ones, w, b, False, 0.0, 0.0
        ),
    }
    timings: dict[str, list[float]] = {k: [] for k in variants}
    with torch.no_grad():
        for _ in range(repeats):
            for label, fn in variants.items():
                time.sleep(0.1)
                fn()
                for _ in range(20):
                    start = time.perf_counter()
                    fn()
                    timings[label].append(time.perf_counter() - start)
    reference = statistics.median(timings["BatchNorm2d (eval)"])
    print("| variant | median ms | / BatchNorm2d |")
    print("|---|---:|---:|")
    for label, values in timings.items():
        median = statistics.median(values)
        print(f"| {label} | {median * 1e3:.3f} | {median / reference:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["memory", "memory-one", "speed", "deviation", "affine"])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved blocks per variant (speed)")
    args = parser.parse_args()
    if args.what == "memory-one":
        print(json.dumps(memory_one(args.names[0])))
    elif args.what == "memory":
        memory(args.names or MEMORY_MODELS)
    elif args.what == "speed":
        speed(args.names or SPEED_MODELS, args.repeats)
    elif args.what == "affine":
        affine(args.repeats)
    else:
        deviation(args.names or nx.list_models())


if __name__ == "__main__":
    main()
