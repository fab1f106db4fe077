"""A new version exported and swapped in under full load (issue 17): 16 clients, half REST and half gRPC,
send 2,000 requests each without pause while ``spizoo export`` (another process, as a user would run it)
writes version 2 and the server picks it up; every request is answered, and the answers show the swap
happened between the first request and the last."""

import shutil
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from spizoo.serving.client import Client
from spizoo.serving.server import Server, manager_from_args

CLIENTS, REQUESTS = 16, 2000


@pytest.mark.slow
def test_sixteen_clients_of_two_thousand_requests_see_the_swap_and_no_failure(runs, exported, tmp_path):
    base = tmp_path / "models"
    shutil.copytree(exported, base)
    manager = manager_from_args(None, "hits", str(base / "hits"), poll_seconds=0.2)
    x = np.random.default_rng(0).poisson(1.0, (1, 32, 32)).astype(np.float32)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hits"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(x))
    failures, answers = [], [[] for _ in range(CLIENTS)]  # per client: (sent, received, version or None)

    with Server(manager, rest_port=0, grpc_port=0) as server:

        def client(i: int):
            rest = Client(f"http://127.0.0.1:{server.rest_port}") if i % 2 else None
            with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
                predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                for _ in range(REQUESTS):
                    sent = time.monotonic()
                    try:
                        if rest is not None:
                            version, probabilities = None, np.asarray(rest.predict(x, "hits")["probabilities"])
                        else:
                            reply = predict.Predict(request, timeout=60)
                            version = reply.model_spec.version.value
                            probabilities = tf.make_ndarray(reply.outputs["probabilities"])
                        assert probabilities.shape == (1, 5) and np.isclose(probabilities.sum(), 1, atol=1e-4)
                        answers[i].append((sent, time.monotonic(), version))
                    except Exception as err:  # noqa: BLE001 - every failure is counted
                        failures.append(repr(err))

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
        start = time.monotonic()
        for t in threads:
            t.start()
        while not all(len(a) >= 10 for a in answers) and not failures:  # every client under way
            time.sleep(0.05)
        export_started = time.monotonic()
        export = [sys.executable, "-m", "spizoo.cli", "export", str(runs["hits"][0]), "--name", "hits"]
        done = subprocess.run([*export, "--base-path", str(base)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        watcher = Client(f"http://127.0.0.1:{server.rest_port}")
        while "2" not in [str(r["version"]) for r in watcher.status("hits")]:
            assert time.monotonic() < export_started + 600, "version 2 was never served"
            time.sleep(0.05)
        swapped = time.monotonic()  # every request sent after this is answered by version 2
        for t in threads:
            t.join(timeout=900)
        seconds = time.monotonic() - start
    assert not any(t.is_alive() for t in threads)
    assert not failures, failures[:3]
    assert [len(a) for a in answers] == [REQUESTS] * CLIENTS  # 32,000 answers
    grpc_versions = [[v for _, _, v in a] for a in answers[::2]]
    for a, versions in zip(answers[::2], grpc_versions, strict=True):
        assert versions[0] == 1 and versions[-1] == 2 and versions == sorted(versions)  # the swap within each
        assert all(v == 2 for (sent, _, v) in a if sent > swapped)
    for a in answers[1::2]:  # REST answers name no version: sent before the export and after the swap
        assert a[0][0] < export_started and a[-1][0] > swapped
    by_one = sum(v.count(1) for v in grpc_versions)
    print(
        f"\n{CLIENTS * REQUESTS:,} requests in {seconds:.0f} s ({CLIENTS * REQUESTS / seconds:,.0f}/s); gRPC answers "
        f"by version 1: {by_one:,}, by version 2: {CLIENTS // 2 * REQUESTS - by_one:,}; export to swap "
        f"{swapped - export_started:.1f} s; requests sent after the swap: "
        f"{sum(sent > swapped for a in answers for sent, _, _ in a):,}"
    )
