"""ONNX Runtime's kernel time by op type for the three exports of bench_fold_stream.py.

    python bench/ort_op_share.py preact_resnet164 --batch 32 --threads 1

Runs each export (unfolded, folded with --keep-stream-bn, folded by default) with ONNX Runtime's
profiler on: 3 warm-up calls, 10 profiled ones, then sums the kernel time of every node by op
type. It shows which ops the time goes to after ONNX Runtime's own graph rewrites (its NCHWc
transformer turns a BatchNorm and the ReLU after it into one blocked op it counts as Conv).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fold_stream import exports

import normresnet_export as nx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp())
    x = np.random.default_rng(0).standard_normal((args.batch, *nx.model_info(args.model).input_size))
    x = x.astype(np.float32)
    for index, (label, path) in enumerate(exports(args.model, scratch, False).items()):
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.log_severity_level = 3
        options.enable_profiling = True
        options.profile_file_prefix = str(scratch / f"profile{index}")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(3):
            session.run(None, {"input": x})
        for _ in range(10):
            session.run(None, {"input": x})
        events = json.loads(Path(session.end_profiling()).read_text())
        by_op: collections.Counter[str] = collections.Counter()
        for event in events:
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                by_op[event["args"]["op_name"]] += event["dur"]
        total = sum(by_op.values())
        shares = ", ".join(f"{op} {100 * t / total:.1f}%" for op, t in by_op.most_common(4))
        print(f"{label}: kernel time {total / 13 / 1e3:.2f} ms per run; {shares}")


if __name__ == "__main__":
    main()
