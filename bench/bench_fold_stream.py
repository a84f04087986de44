"""ONNX Runtime speed of removing the residual-stream BatchNorms (pre-activation, ProcResNet, LeNo).

    python bench/bench_fold_stream.py                   # the four nets below, batch 1 and 32
    python bench/bench_fold_stream.py --int8            # also the int8 (QDQ) models of both folds
    python bench/bench_fold_stream.py --quick           # preact_resnet20, batch 2, one short block

Three ONNX exports of each model, all run by ONNX Runtime on the CPU with 2 threads
(``--threads``), on the same inputs, in interleaved blocks (``normresnet_export.runtime.timing``):

    unfolded export · folded with --keep-stream-bn (the fold before this pass) · folded (default)

The ratios are against ORT on the unfolded export (the issue's target: the default fold at
≥ 1.15× at batch 1 and 32). Node counts by op type come first: a folded preact_resnet164
should hold no BatchNormalization, no Mul and no Add of a constant (a per-channel shift)
outside the convolutions' biases. Models are randomly initialised with BatchNorm statistics
calibrated on one random batch (as a trained net's match its activations): speed only.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

import onnx
import torch

import normresnet_export as nx
from normresnet_export.export.quantize import quantize_file
from normresnet_export.fold import FoldOptions
from normresnet_export.runtime import open_model
from normresnet_export.runtime.timing import time_interleaved

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers import calibrate_batchnorm, randomise_for_folding

MODELS = ["preact_resnet164", "preact_resnet1001", "procresnet166", "lenoresnet50"]
SHOWN = ("Conv", "BatchNormalization", "Mul", "Add", "Add (constant)", "Relu")


def _prepared(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = randomise_for_folding(nx.create_model(name).eval())
    size = nx.model_info(name).input_size
    return calibrate_batchnorm(model, torch.randn(8, *size, generator=torch.Generator().manual_seed(1)))


def node_counts(path: Path) -> dict[str, int]:
    """ONNX nodes by op type, plus ``Add (constant)``: Adds with an initializer or Constant input."""
    graph = onnx.load(str(path), load_external_data=False).graph
    counts = collections.Counter(node.op_type for node in graph.node)
    constants = {i.name for i in graph.initializer} | {
        n.output[0] for n in graph.node if n.op_type == "Constant"
    }
    counts["Add (constant)"] = sum(1 for n in graph.node if n.op_type == "Add" and set(n.input) & constants)
    counts["total"] = len(graph.node)
    return dict(counts)


def exports(name: str, scratch: Path, int8: bool) -> dict[str, Path]:
    """The ONNX files to compare for ``name``, by label."""
    checkpoint = nx.save_checkpoint(scratch / f"{name}.pt", _prepared(name), arch=name)
    files = {
        "unfolded": nx.export_onnx(checkpoint, scratch / f"{name}.unfolded.onnx", fold=False, check=False),
        "folded, stream BN kept": nx.export_onnx(
            checkpoint, scratch / f"{name}.kept.onnx", fold=FoldOptions(keep_stream_bn=True), check=False
        ),
        "folded (default)": nx.export_onnx(checkpoint, scratch / f"{name}.onnx", check=False),
    }
    paths = {label: result.path for label, result in files.items()}
    if int8:
        size = nx.model_info(name).input_size
        inputs = torch.randn(32, *size, generator=torch.Generator().manual_seed(0))
        for label in ("folded, stream BN kept", "folded (default)"):
            target = paths[label].with_suffix(".int8.onnx")
            quantize_file(paths[label], target, inputs, method="minmax")
            paths[f"int8, {label}"] = target
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of timed calls per block")
    parser.add_argument("--int8", action="store_true", help="also time the int8 (QDQ) model of each fold")
    parser.add_argument(
        "--quick", action="store_true", help="preact_resnet20, batch 2, one 0.1 s block: a smoke run"
    )
    args = parser.parse_args()
    if args.quick:
        args.models, args.batches, args.repeats, args.budget = "preact_resnet20", "2", 1, 0.1
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models.split(","):
            paths = exports(name, Path(scratch), args.int8)
            print(f"### {name}: ONNX nodes\n")
            print("| export | " + " | ".join(SHOWN) + " | total |")
            print("|---|" + "---:|" * (len(SHOWN) + 1))
            for label, path in paths.items():
                counts = node_counts(path)
                cells = " | ".join(str(counts.get(op, 0)) for op in (*SHOWN, "total"))
                print(f"| {label} | {cells} |")
            print()
            backends = {
                label: open_model(path, label=label, device="cpu", threads=args.threads)
                for label, path in paths.items()
            }
            size = tuple(nx.model_info(name).input_size)
            for batch in batches:
                x = torch.randn(batch, *size, generator=torch.Generator().manual_seed(batch))
                pairs = [(label, batch, backend.bind(x)) for label, backend in backends.items()]
                timings = time_interleaved(pairs, repeats=args.repeats, budget=args.budget, pause=0.2)
                base = timings[0].percentile(50)
                print(f"### {name}, batch {batch}, ONNX Runtime {args.threads} threads\n")
                print("| export | p50 ms | p90 ms | images/s | vs unfolded |")
                print("|---|---:|---:|---:|---:|")
                for t in timings:
                    print(
                        f"| {t.label} | {t.percentile(50):.2f} | {t.percentile(90):.2f} | "
                        f"{t.images_per_second:,.1f} | {base / t.percentile(50):.2f}× |"
                    )
                print(flush=True)


if __name__ == "__main__":
    main()
