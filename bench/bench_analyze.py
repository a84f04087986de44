"""Gradient-norm analysis benchmark: wall time and peak memory of ``analyze gradnorm`` on deep nets.

    python bench/bench_analyze.py [NAME ...] [--batch-size N]

Default names: resnet164 procresnet166 procresnet1003 resnet1202. Each measurement runs in a
fresh process (peak resident memory is per process), side by side with the same model's plain
forward and backward pass of the same batch (no hooks): the ratio of the two peaks is what the
norm hooks cost on top of autograd's own activations.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

MODELS = ["resnet164", "procresnet166", "procresnet1003", "resnet1202"]

_CHILD = r"""
import json, resource, sys, time
import torch
import normresnet_export as nx
from normresnet_export.analysis import measure_gradnorm

name, batch, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.manual_seed(0)
model = nx.create_model(name)
size = nx.model_info(name).input_size
inputs = torch.randn(batch, *size, generator=torch.Generator().manual_seed(0))
targets = torch.zeros(batch, dtype=torch.long)
start = time.perf_counter()
if mode == "analyze":
    report = measure_gradnorm(model, inputs, targets, label=name)
    units = len(report.units)
else:
    model.train()
    loss = torch.nn.functional.cross_entropy(model(inputs), targets)
    loss.backward()
    units = 0
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mib": peak, "units": units}))
"""


def _run(name: str, batch: int, mode: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, name, str(batch), mode], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", default=MODELS)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    print(f"batch {args.batch_size}, design input size, CPU, one fresh process per row")
    print("| model | units | analyze s | analyze peak MiB | plain fwd+bwd s | plain peak MiB | peak ratio |")
    print("|---|---|---|---|---|---|---|")
    for name in args.names:
        plain = _run(name, args.batch_size, "plain")
        analyzed = _run(name, args.batch_size, "analyze")
        ratio = analyzed["peak_mib"] / plain["peak_mib"]
        print(
            f"| {name} | {analyzed['units']} | {analyzed['seconds']:.1f} | {analyzed['peak_mib']:.0f} | "
            f"{plain['seconds']:.1f} | {plain['peak_mib']:.0f} | {ratio:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
