"""float16 export accuracy: relative logit deviation of ``--fp16`` artefacts from the float32 model.

    python bench/bench_fp16.py [NAME ...]

One small net per family (default) is exported folded, in float16, to ONNX (ONNX Runtime,
CPU) and TorchScript (torch, CPU); the export's own check measures the deviation against the
unfolded float32 model on batches 1, 2 and 7. ``FLOAT16_TOLERANCE`` in
``normresnet_export/export/contract.py`` is set from these numbers.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import normresnet_export as nx
from normresnet_export.export import contract
from normresnet_export.export.verify import ExportCheckError

MODELS = [
    "resnet56",
    "preact_resnet56",
    "tau_resnet56",
    "tau_resnet56_nobn",
    "procresnet166",
    "lenoresnet50",
    "diracnet_cifar28_1",
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", default=MODELS)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"float16 tolerance (relative): {contract.FLOAT16_TOLERANCE:g}\n")
    print("| model | input | logit scale | format | max abs | max rel | top-1 agreement | check |")
    print("|---|---|---:|---|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.names:
            info = nx.model_info(name)
            size = info.input_size if info.input_size[1] <= 64 else (3, 64, 64)
            model = nx.create_model(name).eval()
            with torch.no_grad():
                scale = model(torch.randn(7, *size)).abs().max().item()
            for fmt, export in (("onnx", nx.export_onnx), ("torchscript", nx.export_torchscript)):
                try:
                    check = export(model, Path(scratch) / f"{name}.{fmt}", fp16=True, input_size=size).check
                    d, verdict = check.deviation, "pass"
                except ExportCheckError as failed:
                    d, verdict = failed.check.deviation, f"FAIL (limit {failed.check.limit:.1e})"
                print(
                    f"| {name} | {'×'.join(map(str, size))} | {scale:.1e} | {fmt} | {d.max_abs:.2e} "
                    f"| {d.max_rel:.2e} | {d.top1_agreement:.0%} | {verdict} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
