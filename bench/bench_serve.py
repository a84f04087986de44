"""Throughput and latency of `normexport serve` against ONNX Runtime called in-process.

    python bench/bench_serve.py [--models resnet20,resnet50] [--clients 1,8,32,64] [--seconds 10]
                                [--max-batch-size 32] [--max-delay-ms 2] [--threads 2] [--quick]

For each model (a resnet20-class and a resnet50-class network, randomly initialised, exported
to ONNX once):

* ONNX Runtime in-process, at batch sizes equal to the client counts, timed in interleaved
  blocks by ``normresnet_export.runtime.timing`` (the upper bound a server can approach);
* the server with batching (``--max-batch-size``, ``--max-delay-ms``) and the same server with
  ``--max-batch-size 1`` (batching off), each driven by 1, 8, 32 and 64 concurrent clients
  (one thread and one ``tritonclient.http`` connection each, one image per request, binary
  tensors) for ``--seconds`` each: requests/s, p50 and p99 latency, and from ``/metrics`` the
  mean batch size and the mean compute time of a batch.

Then the targets of the issue, with PASS or FAIL: at 32 clients, throughput at least 0.8× ONNX
Runtime in-process at batch 32 and at least 1.5× the server without batching; p99 at most
``--max-delay-ms`` + 2× the batch compute time. Run it on a quiet machine: the clients, the
server and its ONNX Runtime threads share the cores. ``--quick`` checks that the script runs
(resnet20 only, 1 and 8 clients, one second each).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import torch
import tritonclient.http as triton
from prometheus_client.parser import text_string_to_metric_families

import normresnet_export as nx
from normresnet_export.runtime import open_model
from normresnet_export.runtime.timing import time_interleaved

NORMEXPORT = Path(sys.executable).with_name("normexport")


def export(name: str, scratch: Path) -> Path:
    torch.manual_seed(0)
    checkpoint = nx.save_checkpoint(scratch / f"{name}.pt", nx.create_model(name).eval(), arch=name)
    return nx.export_onnx(checkpoint, scratch / f"{name}.onnx", check=False).path


class Server:
    """A `normexport serve` process on a free port; stopped with SIGTERM."""

    def __init__(self, model: Path, log: Path, *options: str) -> None:
        self.log = log
        with log.open("wb") as err:
            self.process = subprocess.Popen(
                [str(NORMEXPORT), "serve", str(model), "--name", "m", "--port", "0", *options],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            text = log.read_text()
            if "ready on http://" in text:
                self.url = text.split("ready on http://", 1)[1].split()[0]
                return
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited:\n{text}")
            time.sleep(0.1)
        raise SystemExit(f"the server did not get ready:\n{log.read_text()}")

    def metrics(self) -> dict[str, float]:
        text = httpx.get(f"http://{self.url}/metrics").text
        values = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.labels.get("model") == "m" and "le" not in sample.labels:
                    values[sample.name] = sample.value
        return values

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far (Linux ``/proc``)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


def drive(url: str, image: np.ndarray, clients: int, seconds: float) -> tuple[float, list[float], int]:
    """(requests/s, latencies in s, errors) of ``clients`` threads sending one image each, for ``seconds``."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    ready = threading.Barrier(clients + 1)
    stop = threading.Event()

    def client(index: int) -> None:
        connection = triton.InferenceServerClient(url)
        tensor = triton.InferInput("input", list(image.shape), "FP32")
        tensor.set_data_from_numpy(image)
        connection.infer("m", [tensor])  # warm-up: the connection is open before the clock starts
        ready.wait()
        while not stop.is_set():
            start = time.perf_counter()
            try:
                connection.infer("m", [tensor])
            except Exception:
                errors[index] += 1
                continue
            latencies[index].append(time.perf_counter() - start)
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    flat = [x for per_client in latencies for x in per_client]
    return len(flat) / wall, flat, sum(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet20,resnet50")
    parser.add_argument("--clients", default="1,8,32,64")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-delay-ms", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="resnet20, 1 and 8 clients, 1 s each")
    args = parser.parse_args()
    if args.quick:
        args.models, args.clients, args.seconds = "resnet20", "1,8", 1.0
    clients = [int(c) for c in args.clients.split(",")]
    print(f"normexport {nx.__version__}, torch {torch.__version__}, {args.threads} ONNX Runtime threads")
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        for name in args.models.split(","):
            onnx_file = export(name, scratch)
            backend = open_model(onnx_file, device="cpu", threads=args.threads)
            print(f"\n## {name} ({backend.describe()})\n")
            size = nx.model_info(name).input_size
            inputs = {b: torch.randn(b, *size, generator=torch.Generator().manual_seed(b)) for b in clients}
            budget = min(1.0, args.seconds / 4)
            timed = time_interleaved([("ort", b, backend.bind(inputs[b])) for b in clients], budget=budget)
            in_process = {t.batch: t for t in timed}
            print(
                "| path | clients / batch | images/s | p50 ms | p99 ms | mean batch "
                "| batch compute ms | errors | server CPU ms/image | client CPU ms/image |"
            )
            print("|---|---|---|---|---|---|---|---|---|---|")
            for b in clients:
                t = in_process[b]
                print(
                    f"| ONNX Runtime in-process | {b} | {t.images_per_second:.0f} | {t.percentile(50):.2f} "
                    f"| {t.percentile(99):.2f} | {b} | {t.percentile(50):.2f} | - "
                    f"| {args.threads * t.percentile(50) / b:.2f} (threads × time) | - |"
                )
            image = inputs[1].numpy()
            served: dict[tuple[str, int], tuple[float, float, float]] = {}
            cpu: dict[tuple[str, int], tuple[float, float]] = {}
            for label, batch in (("batching", args.max_batch_size), ("no batching", 1)):
                server = Server(
                    onnx_file,
                    scratch / f"{name}-{batch}.log",
                    "--max-batch-size",
                    str(batch),
                    "--max-delay-ms",
                    str(args.max_delay_ms),
                    "--threads",
                    str(args.threads),
                )
                try:
                    for count in clients:
                        before = server.metrics()
                        server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
                        rate, latencies, errors = drive(server.url, image, count, args.seconds)
                        server_cpu = server.cpu_seconds() - server_cpu
                        client_cpu = time.process_time() - client_cpu
                        after = server.metrics()
                        batches, rows, compute = (
                            after[key] - before.get(key, 0.0)
                            for key in (
                                "normexport_batch_size_count",
                                "normexport_batch_size_sum",
                                "normexport_compute_duration_seconds_sum",
                            )
                        )
                        p50, p99 = (float(np.percentile(latencies, q)) * 1e3 for q in (50, 99))
                        mean_compute = compute / max(batches, 1) * 1e3
                        served[label, count] = (rate, p99, mean_compute)
                        images = len(latencies) + count  # each client's warm-up request ran in the window too
                        cpu[label, count] = (server_cpu / images * 1e3, client_cpu / images * 1e3)
                        print(
                            f"| server, {label} | {count} | {rate:.0f} | {p50:.2f} | {p99:.2f} "
                            f"| {rows / max(batches, 1):.1f} | {mean_compute:.2f} | {errors} "
                            f"| {cpu[label, count][0]:.2f} | {cpu[label, count][1]:.2f} |"
                        )
                finally:
                    server.stop()
            target = 32 if 32 in clients else max(clients)
            rate, p99, compute = served["batching", target]
            unbatched = served["no batching", target][0]
            reference = in_process[target].images_per_second
            print(f"\nAt {target} clients:")
            print(
                f"- throughput {rate:.0f}/s = {rate / reference:.2f}× in-process ONNX Runtime "
                f"at batch {target} "
                f"(target ≥ 0.8×): {'PASS' if rate >= 0.8 * reference else 'FAIL'}"
            )
            print(
                f"- {rate / unbatched:.2f}× the server with --max-batch-size 1 (target ≥ 1.5×): "
                f"{'PASS' if rate >= 1.5 * unbatched else 'FAIL'}"
            )
            bound = args.max_delay_ms + 2 * compute
            print(
                f"- p99 {p99:.1f} ms against --max-delay-ms + 2× batch compute = {bound:.1f} ms: "
                f"{'PASS' if p99 <= bound else 'FAIL'}"
            )
            # What the cores allow: every image costs the server's CPU and the client's, on the
            # same cores (os.sched_getaffinity), so throughput is at most cores / (both together).
            server_ms, client_ms = cpu["batching", target]
            cores = len(os.sched_getaffinity(0))
            print(
                f"- CPU per image at {target} clients: server {server_ms:.2f} ms + client {client_ms:.2f} ms "
                f"on {cores} shared cores: at most {cores * 1e3 / (server_ms + client_ms):.0f} images/s "
                f"(= {cores * 1e3 / (server_ms + client_ms) / reference:.2f}× in-process); in-process ONNX "
                f"Runtime needs {args.threads * in_process[target].percentile(50) / target:.2f} ms per image"
            )


if __name__ == "__main__":
    main()
