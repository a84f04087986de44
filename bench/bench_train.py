"""Training throughput: normexport's loop against a minimal hand-written SGD loop.

Usage::

    python bench/bench_train.py [--batch-size 32] [--steps 4] [--repeats 5] [--threads 2] [--clock wall|cpu]

For each model the same architecture, batch size, thread count and memory format are
trained by (a) ``trainers.Trainer.train_epoch`` — the real loop: data loader with per-sample
seeded augmentation, uint8-to-float normalisation, recipe parameter groups and schedule,
running loss/accuracy, stop checks, the Procrustes step — on an epoch of ``steps`` batches of
digits, and (b) the shortest loop that trains: pre-normalised tensors, ``zero_grad``,
forward, cross-entropy, backward, ``SGD.step``. After one warm-up block each, blocks are
interleaved, the order reversed every repeat (a, b, b, a, …), and timed from outside with
``perf_counter`` (or, ``--clock cpu``, with the process's CPU time, which other processes on a
shared machine disturb far less). The result is the median over repeats of the ratio of adjacent blocks.
ProcResNet is measured with the projection (``regul_freq`` 0.5, exact mode) and without
(0.0), both against the plain minimal loop.

Targets: overhead <= 5 % (ratio >= 0.95), <= 10 % with the projection (ratio >= 0.90).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import normresnet_export as nx
from normresnet_export.data.digits import load_digits as load_digits_tensors
from trainers import TrainConfig, Trainer


def _ours(arch: str, batch: int, steps: int, regul_freq: float | None, out: Path) -> Callable[[], int]:
    extra = {"regul_freq": regul_freq} if regul_freq is not None else {}
    trainer = Trainer(
        TrainConfig(
            arch=arch,
            dataset="digits",
            epochs=10_000,
            batch_size=batch,
            limit_train=batch * steps,
            limit_test=batch,
            channels_last=True,
            workers=0,
            out=out,
            progress=False,
            **extra,
        )
    )
    trainer.setup()

    def block() -> int:
        stats = trainer.train_epoch()
        assert stats is not None
        trainer.epoch += 1
        return batch * steps

    return block


def _minimal(arch: str, batch: int, steps: int) -> Callable[[], int]:
    torch.manual_seed(0)
    model = nx.create_model(arch, num_classes=10).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    images, labels = load_digits_tensors()
    x = ((images[: batch * steps].float() / 255 - 0.3) / 0.4).contiguous(memory_format=torch.channels_last)
    y = labels[: batch * steps]

    def block() -> int:
        for i in range(steps):
            xb, yb = x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
        return batch * steps

    return block


def _measure(
    variants: dict[str, Callable[[], int]], repeats: int, clock: Callable[[], float]
) -> dict[str, list[float]]:
    """Images/s of every variant in every repeat; the order flips each repeat (ABC, CBA, …)."""
    for block in variants.values():  # warm-up: allocator, oneDNN primitive caches
        block()
    rates: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else reversed(names):
            time.sleep(0.2)
            start = clock()
            images = variants[name]()
            rates[name].append(images / (clock() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: perf_counter; cpu: process CPU time (stable on a shared machine with --threads 1)",
    )
    args = parser.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    torch.set_num_threads(args.threads)
    b, n = args.batch_size, args.steps
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {b}, {n} steps per block, "
        f"{args.repeats} interleaved repeats, {args.clock} clock, channels_last, float32, CPU"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = [
            ("resnet110", [(None, "ours")]),
            ("procresnet166", [(0.5, "ours, regul_freq 0.5"), (0.0, "ours, regul_freq 0")]),
        ]
        for arch, ours in cases:
            variants = {"minimal": _minimal(arch, b, n)}
            for i, (freq, label) in enumerate(ours):
                variants[label] = _ours(arch, b, n, freq, Path(tmp) / f"{arch}-{i}")
            rates = _measure(variants, args.repeats, clock)
            minimal = rates["minimal"]
            for label, ours_rates in rates.items():
                if label != "minimal":
                    # Each repeat's ratio compares blocks run back to back: slow spells of the
                    # shared machine hit both; the median of these ratios is the result.
                    ratios = [o / m for o, m in zip(ours_rates, minimal, strict=True)]
                    rows.append(
                        (arch, label, statistics.median(minimal), statistics.median(ours_rates), ratios)
                    )
    print("| model | our loop | minimal img/s | ours img/s | ours / minimal, per repeat | median ratio |")
    print("|---|---|---:|---:|---|---:|")
    for arch, label, minimal_rate, ours_rate, ratios in rows:
        each = ", ".join(f"{r:.3f}" for r in ratios)
        ratio = statistics.median(ratios)
        print(f"| {arch} | {label} | {minimal_rate:.1f} | {ours_rate:.1f} | {each} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
