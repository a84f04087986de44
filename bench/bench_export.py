"""Export benchmark: ONNX export wall time and node counts by op type, unfolded vs folded, each exporter.

    python bench/bench_export.py [NAME ...]

Default names: resnet110 preact_resnet164 procresnet1003 diracnet18 resnet1202.

Times ``torch.onnx.export`` alone (the post-export check excluded) at the model's design size,
batch 2 with a symbolic batch dimension, opset 18.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import torch

import normresnet_export as nx
from normresnet_export.export import contract
from normresnet_export.export.onnx import to_onnx

MODELS = ["resnet110", "preact_resnet164", "procresnet1003", "diracnet18", "resnet1202"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", default=MODELS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print("| model | graph | exporter | export s | nodes | nodes by op type |")
    print("|---|---|---|---:|---:|---|")
    for name in args.names:
        model = nx.create_model(name).eval()
        folded = nx.fold_model(model, check=False).model
        example = torch.randn(contract.EXAMPLE_BATCH, *nx.model_info(name).input_size)
        for label, net in (("unfolded", model), ("folded", folded)):
            for exporter in ("torchscript", "dynamo"):
                start = time.perf_counter()
                proto = to_onnx(net, example, opset=contract.DEFAULT_OPSET, dynamic=True, exporter=exporter)
                seconds = time.perf_counter() - start
                ops = Counter(node.op_type for node in proto.graph.node)
                listed = ", ".join(f"{op} {count}" for op, count in ops.most_common())
                print(
                    f"| {name} | {label} | {exporter} | {seconds:.1f} | {len(proto.graph.node)} | {listed} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
