"""Inference speed of the deployment paths, side by side: eager, TorchScript, torch.compile, ONNX Runtime.

    python bench/bench_runtime.py [--models resnet110,...] [--batches 1,32] [--repeats 3] [--budget 1.0]

Six backends per model, all on the same inputs, timed in interleaved blocks by
``normresnet_export.runtime.timing`` (pause, warm-up, timed calls; repeated), 2 threads each:

    eager (unfolded) · eager (folded) · TorchScript frozen (folded) · torch.compile (folded)
    ONNX Runtime on the unfolded export · ONNX Runtime on the folded export (the default path)

Prints one markdown table per model and batch with p50 latency, images/s, the speed-up over
unfolded eager, and the achieved GFLOP/s against the machine's measured float32 matmul rate.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import normresnet_export as nx
from normresnet_export.runtime import open_model
from normresnet_export.runtime.base import Backend
from normresnet_export.runtime.timing import time_interleaved
from normresnet_export.runtime.torch_backend import TorchBackend

MODELS = ["resnet110", "preact_resnet164", "procresnet166", "diracnet18", "lenoresnet50", "resnet50"]
THREADS = 2


def matmul_gflops(size: int = 2048, seconds: float = 2.0) -> float:
    """The machine's float32 matrix-multiply rate with ``THREADS`` threads (best of repeated calls)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def flops_per_image(model: torch.nn.Module, size: tuple[int, ...]) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, *size))
    return float(counter.get_total_flops())


def backends(name: str, scratch: Path, compile_: bool) -> list[Backend]:
    """The six backends for ``name`` (randomly initialised; BatchNorm statistics as after training)."""
    torch.manual_seed(0)
    model = nx.create_model(name).eval()
    checkpoint = nx.save_checkpoint(scratch / f"{name}.pt", model, arch=name)
    options = {"device": "cpu", "threads": THREADS}
    made = [
        open_model(checkpoint, label="eager (unfolded)", **options),
        open_model(checkpoint, fold=True, label="eager (folded)", **options),
    ]
    script = nx.export_torchscript(checkpoint, scratch / f"{name}.ts", check=False).path
    made.append(open_model(script, label="TorchScript frozen", trust_code=True, **options))  # made just above
    if compile_:
        folded = made[1]
        compiled = torch.compile(folded.module)
        with torch.inference_mode():  # compile here, not inside the timed blocks
            for batch in (1, 2, 1):
                compiled(torch.randn(batch, *nx.model_info(name).input_size))
        made.append(
            TorchBackend(
                compiled,
                name="eager",
                label="torch.compile",
                metadata=folded.metadata,
                device=torch.device("cpu"),
            )
        )
    unfolded = nx.export_onnx(checkpoint, scratch / f"{name}.unfolded.onnx", fold=False, check=False).path
    folded_onnx = nx.export_onnx(checkpoint, scratch / f"{name}.onnx", check=False).path
    made.append(open_model(unfolded, label="ORT (unfolded export)", **options))
    made.append(open_model(folded_onnx, label="ORT (folded export)", **options))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of timed calls per block")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    peak = matmul_gflops()
    print(f"float32 matmul rate, {THREADS} threads: {peak:.1f} GFLOP/s\n")
    batches = [int(b) for b in args.batches.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models.split(","):
            made = backends(name, Path(scratch), compile_=not args.no_compile)
            size = tuple(nx.model_info(name).input_size)
            flops = flops_per_image(made[0].module, size)
            for batch in batches:
                x = torch.randn(batch, *size, generator=torch.Generator().manual_seed(batch))
                pairs = [(b.label, batch, b.bind(x)) for b in made]
                timings = time_interleaved(pairs, repeats=args.repeats, budget=args.budget, pause=0.2)
                base = timings[0].percentile(50)
                print(f"### {name}, batch {batch} ({flops / 1e9:.2f} GFLOP per image)\n")
                print("| backend | p50 ms | p90 ms | images/s | vs unfolded eager | GFLOP/s | % of peak |")
                print("|---|---:|---:|---:|---:|---:|---:|")
                for t in timings:
                    rate = flops * batch / (t.percentile(50) / 1e3) / 1e9
                    print(
                        f"| {t.label} | {t.percentile(50):.2f} | {t.percentile(90):.2f} | "
                        f"{t.images_per_second:,.0f} | {base / t.percentile(50):.2f}× | {rate:.1f} | "
                        f"{100 * rate / peak:.0f}% |"
                    )
                print(flush=True)


if __name__ == "__main__":
    main()
