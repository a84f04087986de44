"""Inference speed of the deployment paths side by side: eager, TorchScript, torch.compile, ORT, OpenVINO.

    python bench/bench_runtime.py [--models resnet110,...] [--batches 1,32] [--repeats 3] [--budget 1.0]
    python bench/bench_runtime.py --quick      # resnet20, batch 4, one short block: checks it runs

Up to twelve backends per model, all on the same inputs, timed in interleaved blocks by
``normresnet_export.runtime.timing`` (pause, warm-up, timed calls; repeated), 2 threads each:

    eager (unfolded) · eager (folded) · TorchScript frozen (folded) · torch.compile (folded)
    eager bf16 and torch.compile bf16 (folded, under torch's bfloat16 autocast)
    ONNX Runtime on the unfolded export · ONNX Runtime on the folded export (the default path)
    ONNX Runtime int8 (QDQ, per-channel; calibrated on random inputs) · OpenVINO f32 · OpenVINO bf16
    OpenVINO on the int8 model

OpenVINO rows need the ``[openvino]`` extra; every bf16 row needs a CPU with AVX512-BF16 or AMX. A row
that cannot run here is named with the reason. The models are randomly initialised, so these are
speed numbers only; accuracy is gated by ``normexport optimize`` on trained weights.

The machine's own limits are measured first, with the same 2 threads: the float32 and bfloat16
matmul rates (``torch.mm``) and the int8 one (``torch._int_mm``, int8 × int8 → int32), and the
same products in the runtimes (ONNX Runtime's MatMul and MatMulInteger, OpenVINO's MatMul in
bf16); the limit is the best of them over a few compute-bound sizes. Each row reports its
GFLOP/s (for int8: the model's multiply-adds × 2 per second, i.e. "GOP/s") and the percentage of
the limit of the precision it computes in. Ratios are against ONNX Runtime on the unfolded export.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import normresnet_export as nx
from normresnet_export.errors import InputError
from normresnet_export.export.onnx import read_metadata
from normresnet_export.export.quantize import mark_int8, quantize_file
from normresnet_export.runtime import open_model
from normresnet_export.runtime.base import Backend, DeviceError
from normresnet_export.runtime.timing import time_interleaved
from normresnet_export.runtime.torch_backend import TorchBackend

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers import calibrate_batchnorm

MODELS = ["resnet110", "preact_resnet164", "procresnet166", "diracnet18", "lenoresnet50", "resnet50"]
THREADS = 2


def _rate(call, flops: float, seconds: float) -> float:
    """GFLOP/s of ``call`` (``flops`` per call), from its fastest call in ``seconds``."""
    call()
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return flops / best / 1e9


def matmul_gflops(
    dtype: torch.dtype, sizes: tuple[int, ...] = (1024, 2048, 4096), seconds: float = 1.0
) -> float:
    """The machine's matrix-multiply rate in ``dtype`` with ``THREADS`` threads: the best over ``sizes``.

    float32 and bfloat16 run ``torch.mm``; int8 runs ``torch._int_mm`` (int8 inputs, int32
    accumulation), which on x86 goes through oneDNN's VNNI/AMX kernels where the CPU has them.
    Returns 0 for a precision this build cannot run.
    """
    rates = []
    for size in sizes:
        if dtype == torch.int8:
            a = torch.randint(-128, 127, (size, size), dtype=torch.int8)
            b = torch.randint(-128, 127, (size, size), dtype=torch.int8)

            def call(a=a, b=b):
                torch._int_mm(a, b)
        else:
            a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)

            def call(a=a, b=b):
                torch.mm(a, b)

        try:
            rates.append(_rate(call, 2 * size**3, seconds))
        except RuntimeError:  # no int8 matmul in this build
            rates.append(0.0)
            break
        # Without native units (bf16/int8 emulated at ~1 GFLOP/s) the next size's one call would take
        # minutes: once a call outlasts the time budget, the rate is known well enough.
        if 2 * size**3 / max(rates[-1], 1e-9) / 1e9 > seconds:
            break
    return max(rates)


def _matmul_onnx(size: int, int8: bool) -> bytes:
    """One ``[size, size] × [size, size]`` product as an ONNX model: MatMul in float32, or
    MatMulInteger (uint8 × int8 → int32, the product ONNX Runtime's QDQ convolutions run on)."""
    from onnx import TensorProto, helper

    a, b, y = (TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32) if int8 else (TensorProto.FLOAT,) * 3
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger" if int8 else "MatMul", ["a", "b"], ["y"])],
        "matmul",
        [
            helper.make_tensor_value_info("a", a, [size, size]),
            helper.make_tensor_value_info("b", b, [size, size]),
        ],
        [helper.make_tensor_value_info("y", y, [size, size])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what every onnxruntime we install reads
    return model.SerializeToString()


def runtime_matmul_gflops(precision: str, sizes: tuple[int, ...], seconds: float) -> float:
    """The matrix-multiply rate the runtimes themselves reach, with ``THREADS`` threads.

    float32 and int8 run in ONNX Runtime (MLAS; int8 as MatMulInteger), bfloat16 in OpenVINO
    (the float32 MatMul compiled with the bf16 hint). torch.mm alone is not the machine's
    limit: on the AVX512-BF16 EPYC of RESULTS ONNX Runtime's float32 convolutions ran at 1.3×
    torch.mm's best rate, which made rows read "134% of the limit". Returns 0 where the runtime
    is missing or cannot run the precision.
    """
    import numpy as np
    import onnxruntime as ort

    int8 = precision == "int8"
    rates = []
    for size in sizes:
        blob = _matmul_onnx(size, int8)
        rng = np.random.default_rng(0)
        if int8:
            feeds = {"a": rng.integers(0, 255, (size, size), dtype=np.uint8),
                     "b": rng.integers(-127, 127, (size, size), dtype=np.int8)}  # fmt: skip
        else:
            feeds = {k: rng.standard_normal((size, size), dtype=np.float32) for k in ("a", "b")}
        try:
            if precision == "bfloat16":
                import openvino as ov

                core = ov.Core()
                hint = {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": THREADS}
                compiled = core.compile_model(core.read_model(blob, b""), "CPU", hint)
                if compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() != "bf16":
                    return 0.0
                request = compiled.create_infer_request()

                def call(request=request, feeds=feeds):
                    request.infer(feeds)
            else:
                options = ort.SessionOptions()
                options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
                session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])

                def call(session=session, feeds=feeds):
                    session.run(None, feeds)
        except (ImportError, RuntimeError):
            return 0.0
        rates.append(_rate(call, 2 * size**3, seconds))
    return max(rates)


def limits(quick: bool) -> dict[str, tuple[float, str]]:
    """(GFLOP/s, who reached it) per compute precision: the best of torch and the runtimes."""
    sizes, seconds = ((512, 1024), 0.2) if quick else ((1024, 2048, 4096), 1.0)
    found = {}
    for precision, dtype, runtime in (
        ("float32", torch.float32, "onnxruntime"),
        ("bfloat16", torch.bfloat16, "openvino"),
        ("int8", torch.int8, "onnxruntime"),
    ):
        by_torch = matmul_gflops(dtype, sizes, seconds)
        by_runtime = runtime_matmul_gflops(precision, sizes, seconds)
        best = "torch" if by_torch >= by_runtime else runtime
        found[precision] = (
            max(by_torch, by_runtime),
            f"torch {by_torch:.1f}, {runtime} {by_runtime:.1f}: {best}",
        )
    return found


def flops_per_image(model: torch.nn.Module, size: tuple[int, ...]) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, *size))
    return float(counter.get_total_flops())


def _compiled(backend: TorchBackend, label: str, input_size: tuple[int, ...]) -> TorchBackend:
    """``backend``'s module through ``torch.compile``, compiled here rather than in the timed blocks."""
    compiled = torch.compile(backend.module)
    with torch.inference_mode():
        for batch in (1, 2, 1):
            compiled(torch.randn(batch, *input_size))
    return TorchBackend(
        compiled,
        name="eager",
        label=label,
        metadata=backend.metadata,
        device=torch.device("cpu"),
        precision=backend.precision,
    )


def backends(name: str, scratch: Path, compile_: bool) -> list[Backend]:
    """Every backend for ``name`` that runs here (random weights; BatchNorm statistics calibrated)."""
    torch.manual_seed(0)
    size = tuple(nx.model_info(name).input_size)
    # As after training, each BatchNorm's statistics match the activations it sees (fresh ones,
    # mean 0 and variance 1, let activations grow through a deep net and change its timings).
    model = calibrate_batchnorm(
        nx.create_model(name).eval(), torch.randn(8, *size, generator=torch.Generator().manual_seed(1))
    )
    checkpoint = nx.save_checkpoint(scratch / f"{name}.pt", model, arch=name)
    options = {"device": "cpu", "threads": THREADS}
    made = [
        open_model(checkpoint, label="eager (unfolded)", **options),
        open_model(checkpoint, fold=True, label="eager (folded)", **options),
    ]
    script = nx.export_torchscript(checkpoint, scratch / f"{name}.ts", check=False).path
    made.append(open_model(script, label="TorchScript frozen", trust_code=True, **options))  # made just above
    if compile_:
        made.append(_compiled(made[1], "torch.compile", size))  # type: ignore[arg-type]
    try:
        bf16 = open_model(checkpoint, fold=True, precision="bf16", label="eager bf16", **options)
    except DeviceError as exc:  # no native bfloat16 on this CPU
        print(f"{name}: eager bf16 not run: {exc}")
    else:
        made.append(bf16)
        if compile_:
            made.append(_compiled(bf16, "torch.compile bf16", size))  # type: ignore[arg-type]
    unfolded = nx.export_onnx(checkpoint, scratch / f"{name}.unfolded.onnx", fold=False, check=False).path
    folded_onnx = nx.export_onnx(checkpoint, scratch / f"{name}.onnx", check=False).path
    made.append(open_model(unfolded, label="ORT (unfolded export)", **options))
    made.append(open_model(folded_onnx, label="ORT (folded export)", **options))
    int8 = _int8(checkpoint, scratch / f"{name}.int8.onnx", size)
    made.append(open_model(int8, label="ORT int8 (QDQ)", **options))
    for label, path, precision in (
        ("OpenVINO f32", folded_onnx, "fp32"),
        ("OpenVINO bf16", folded_onnx, "bf16"),
        ("OpenVINO · int8", int8, "fp32"),
    ):
        try:
            made.append(open_model(path, label=label, runtime="openvino", precision=precision, **options))
        except (InputError, DeviceError) as exc:  # OpenVINO missing, or no bfloat16 on this CPU
            print(f"{name}: {label} not run: {exc}")
    return made


def _int8(checkpoint: Path, path: Path, input_size: tuple[int, ...]) -> Path:
    """The folded model quantised to int8 (QDQ), calibrated on random inputs (speed only: no gate).

    The model is random, so its accuracy means nothing; the quantisation is the one
    ``export --int8`` writes (``quantize_file``), without the gate that would refuse it.
    """
    float_file = nx.export_onnx(checkpoint, path.with_suffix(".f32.onnx"), check=False).path
    inputs = torch.randn(32, *input_size, generator=torch.Generator().manual_seed(0))
    quantize_file(float_file, path, inputs, method="minmax")
    mark_int8(path, read_metadata(float_file))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of timed calls per block")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="resnet20, batch 4, one 0.1 s block, no torch.compile: a smoke run",
    )
    args = parser.parse_args()
    if args.quick:
        args.models, args.batches, args.repeats, args.budget, args.no_compile = "resnet20", "4", 1, 0.1, True
    torch.set_num_threads(THREADS)
    found = limits(args.quick)
    peaks = {precision: rate for precision, (rate, _) in found.items()}
    print(f"machine limits, {THREADS} threads (matmul, best size; GFLOP/s by torch and by the runtime):")
    for precision, (rate, source) in found.items():
        print(f"  {precision}: {rate:.1f} GFLOP/s ({source})")
        if precision != "float32" and rate < peaks["float32"]:
            print(f"    (slower than float32: no native {precision} matmul here, so % of it means little)")
    print()
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
                labels = [b.label for b in made]
                base = timings[labels.index("ORT (unfolded export)")].percentile(50)
                print(f"### {name}, batch {batch} ({flops / 1e9:.2f} GFLOP per image)\n")
                print(
                    "| backend | precision | p50 ms | p90 ms | images/s | vs ORT unfolded | GFLOP/s "
                    "| % of its precision's limit |"
                )
                print("|---|---|---:|---:|---:|---:|---:|---:|")
                for b, t in zip(made, timings, strict=True):
                    precision = getattr(b, "inference_precision", b.precision)
                    precision = "int8" if b.precision == "int8" else precision
                    rate = flops * batch / (t.percentile(50) / 1e3) / 1e9
                    limit = peaks.get(precision) or float("nan")
                    print(
                        f"| {t.label} | {precision} | {t.percentile(50):.2f} | {t.percentile(90):.2f} | "
                        f"{t.images_per_second:,.0f} | {base / t.percentile(50):.2f}× | {rate:.1f} | "
                        f"{100 * rate / limit:.0f}% |"
                    )
                print(flush=True)


if __name__ == "__main__":
    main()
