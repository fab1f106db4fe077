"""Serving overhead and server-side batching, for the ResNet-10 hit classifier on 128×128 frames.

    python benchmarks/serving.py [--requests 300] [--concurrent-requests 40]

Exports an untrained ``resnet10_classifier`` (weights do not change the cost), starts ``spizoo serve`` as a
separate process, and measures in the same run:

- latency of a batch-1 predict: the loaded SavedModel called directly in this process, then REST (one
  keep-alive HTTP connection) and gRPC (the official stub); p50 and p99, and the median overhead;
- throughput with 16 concurrent gRPC clients sending batch-1 requests, against a server without and with
  server-side batching (``max_batch_size 16``, ``batch_timeout_micros 2000``).

Targets: median overhead ≤ 2 ms for gRPC and ≤ 5 ms for REST; batching ≥ 2× throughput. The
ceiling of any batching gain is printed beside it: the direct call's time per image at batch 1 over that at
batch 16.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from spizoo.commands.export import export_run
from spizoo.serving import Client

sys.path.insert(0, str(Path(__file__).parent))
from untrained_run import make_run  # noqa: E402

SIZE = 128
CLIENTS = 16


def make_export(root: Path) -> Path:
    """An untrained ResNet-10 exported as model ``hits``; returns the base path."""
    base = root / "models"
    export_run(make_run(root, SIZE), base, "hits")
    return base


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(base: Path, batching_file: Path | None):
    rest, grpc_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "spizoo.cli", "serve", "--model-config-file", str(base / "models.config")]
    cmd += ["--rest-api-port", str(rest), "--port", str(grpc_port), "--file-system-poll-wait-seconds", "0"]
    if batching_file is not None:
        cmd += ["--enable-batching", "--batching-parameters-file", str(batching_file)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    while "spizoo serve:" not in (line := proc.stdout.readline()):
        if proc.poll() is not None or not line:
            raise RuntimeError("spizoo serve did not start")
    return proc, rest, grpc_port


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.array(seconds) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def latencies(call, n: int) -> list[float]:
    for _ in range(10):
        call()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def throughput(grpc_port: int, x: np.ndarray, per_client: int) -> float:
    """Requests/s of CLIENTS threads, each with its own channel, sending ``per_client`` batch-1 requests."""
    clients = [Client(f"grpc://127.0.0.1:{grpc_port}") for _ in range(CLIENTS)]
    for c in clients:
        c.predict(x, "hits")
    barrier = threading.Barrier(CLIENTS + 1)

    def work(c):
        barrier.wait()
        for _ in range(per_client):
            c.predict(x, "hits")

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return CLIENTS * per_client / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="batch-1 requests timed per transport")
    parser.add_argument("--concurrent-requests", type=int, default=40, help="requests per concurrent client")
    args = parser.parse_args()
    x = np.random.default_rng(0).poisson(2.0, (1, SIZE, SIZE)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = make_export(root)
        batching = root / "batching.config"
        batching.write_text("max_batch_size { value: 16 }\nbatch_timeout_micros { value: 2000 }\n")

        serve = tf.saved_model.load(str(base / "hits" / "1")).signatures["serving_default"]
        direct = latencies(lambda: serve(images=tf.constant(x)), args.requests)
        x16 = np.repeat(x, 16, axis=0)
        direct16 = latencies(lambda: serve(images=tf.constant(x16)), max(args.requests // 10, 10))

        proc, rest_port, grpc_port = start_server(base, None)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", rest_port)
            body = json.dumps({"instances": x.tolist()})

            def rest_call():
                conn.request("POST", "/v1/models/hits:predict", body=body, headers={"Content-Type": "application/json"})
                reply = conn.getresponse()
                assert reply.status == 200, reply.read()
                reply.read()

            grpc_client = Client(f"grpc://127.0.0.1:{grpc_port}")
            rest = latencies(rest_call, args.requests)
            grpc = latencies(lambda: grpc_client.predict(x, "hits"), args.requests)
            plain_rate = throughput(grpc_port, x, args.concurrent_requests)
        finally:
            proc.terminate()
            proc.wait()
        proc, rest_port, grpc_port = start_server(base, batching)
        try:
            batched_rate = throughput(grpc_port, x, args.concurrent_requests)
        finally:
            proc.terminate()
            proc.wait()

    rows = {"direct call": direct, "REST": rest, "gRPC": grpc}
    p50_direct = percentiles(direct)[0]
    print(f"ResNet-10 classifier, one {SIZE}x{SIZE} frame per request, {args.requests} requests each")
    print(f"{'path':<14}{'p50 ms':>9}{'p99 ms':>9}{'overhead p50 ms':>17}")
    result = {}
    for name, values in rows.items():
        p50, p99 = percentiles(values)
        print(f"{name:<14}{p50:>9.2f}{p99:>9.2f}{p50 - p50_direct:>17.2f}")
        result[name] = {"p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "overhead_ms": round(p50 - p50_direct, 3)}
    print(f"{CLIENTS} concurrent gRPC clients: {plain_rate:.1f} req/s without batching, {batched_rate:.1f} with")
    ceiling = percentiles(direct)[0] / (percentiles(direct16)[0] / 16)
    print(f"batching speed-up {batched_rate / plain_rate:.2f}x")
    print(f"ceiling: direct call per image at batch 1 / at batch 16 = {ceiling:.2f}x")
    result["throughput"] = {
        "clients": CLIENTS,
        "unbatched_rps": round(plain_rate, 1),
        "batched_rps": round(batched_rate, 1),
        "speedup": round(batched_rate / plain_rate, 2),
        "direct_batch16_ms": round(percentiles(direct16)[0], 3),
        "ceiling": round(ceiling, 2),
    }
    print(json.dumps({"benchmark": "serving", **result}))


if __name__ == "__main__":
    main()
