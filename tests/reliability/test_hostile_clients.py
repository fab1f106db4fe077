"""Hostile clients (issue 17): bodies far over the size limit, idle and slow connections, more connections
than the server takes, and names, versions, labels and base paths that try to reach outside the model root."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import model_management_pb2, predict_pb2
from tensorflow_serving.config import model_server_config_pb2
from wire import NoReply, http, read_answer, rss_bytes, strict_json

from spizoo.serving import Client
from spizoo.serving.models import read_model_config
from spizoo.serving.server import Server, manager_from_args

LIMIT = 2**20  # --max-body-bytes of the servers here
RSS_BOUND = 50 * 2**20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy(exported, root):
    base = root / "models"
    shutil.copytree(exported, base)
    config = base / "models.config"
    config.write_text(config.read_text().replace(str(exported.resolve()), str(base.resolve())))
    return base


def _image() -> np.ndarray:
    return np.random.default_rng(5).poisson(3.0, (1, 32, 32)).astype(np.float32)


def start_serve(config, rest: int, grpc_port: int, *extra: str) -> subprocess.Popen:
    """``spizoo serve`` in a process of its own (as tests/serving/test_serve_cli.py starts it), once it serves."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "spizoo.cli", "serve", "--model-config-file", str(config)]
        + ["--rest-api-port", str(rest), "--port", str(grpc_port), "--file-system-poll-wait-seconds", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline, line = time.monotonic() + 180, ""
    while "REST http://" not in line and time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline()
    assert "REST http://" in line, f"spizoo serve did not start: {line!r} (exit status {proc.poll()})"
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep its output flowing
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _oversized_rest(port: int, declared: int, sent: int, chunk: int = 2**20) -> tuple[int, dict]:
    """POSTs ``sent`` bytes of a body that declares ``declared`` bytes; the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(f"POST /v1/models/hits:predict HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n\r\n".encode())
        block = b"[" * chunk
        try:
            for _ in range(sent // chunk):
                sock.sendall(block)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, _, body = read_answer(sock, 60)
    return status, strict_json(body)


def test_bodies_far_over_the_limit_are_refused_and_the_server_does_not_grow(exported, tmp_path):
    """REST bodies of 256 MiB and gRPC messages of 256 MiB against a 1 MiB limit, and a 60-byte gRPC request
    whose tensor claims 4 GB: refused, the server's resident memory grows by less than ``RSS_BOUND``."""
    base = _copy(exported, tmp_path)
    rest, grpc_port = _free_port(), _free_port()
    proc = start_serve(base / "models.config", rest, grpc_port, "--max-body-bytes", str(LIMIT))
    try:
        x = _image()
        client, channel = Client(f"http://127.0.0.1:{rest}"), grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        predict = channel.unary_unary(
            "/tensorflow.serving.PredictionService/Predict",
            request_serializer=predict_pb2.PredictRequest.SerializeToString,
            response_deserializer=predict_pb2.PredictResponse.FromString,
        )
        valid = predict_pb2.PredictRequest()
        valid.model_spec.name = "hits"
        valid.inputs["images"].CopyFrom(tf.make_tensor_proto(x))
        want = client.predict(x, "hits")["probabilities"]
        for _ in range(5):  # warm: threads, buffers and allocator pools as in steady service
            client.predict(x, "hits")
            predict(valid, timeout=30)
        before = rss_bytes(proc.pid)
        refused = []
        for _ in range(3):
            status, reply = _oversized_rest(rest, 256 * 2**20, 256 * 2**20)
            assert status == 413 and f"exceeds the limit of {LIMIT}" in reply["error"], (status, reply)
            refused.append("REST 256 MiB")
        big = predict_pb2.PredictRequest()
        big.model_spec.name = "hits"
        big.inputs["images"].CopyFrom(tf.make_tensor_proto(np.zeros((1024, 256, 256), np.float32)))
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as err:
                predict(big, timeout=60)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value
            refused.append("gRPC 256 MiB")
        claim = predict_pb2.PredictRequest()
        claim.model_spec.name = "hits"
        tensor = claim.inputs["images"]
        tensor.dtype = tf.float32.as_datatype_enum
        for n in (10**6, 32, 32):
            tensor.tensor_shape.dim.add(size=n)
        assert claim.ByteSize() < 100
        with pytest.raises(grpc.RpcError) as err:
            predict(claim, timeout=60)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "over the server's limit" in err.value.details()
        refused.append("gRPC tensor of 4 GB in 60 bytes")
        growth = rss_bytes(proc.pid) - before
        print(f"\nRSS of spizoo serve: {before / 2**20:.0f} MiB before, grew {growth / 2**20:.1f} MiB over {refused}")
        assert growth < RSS_BOUND, f"spizoo serve grew by {growth / 2**20:.0f} MiB"
        np.testing.assert_allclose(client.predict(x, "hits")["probabilities"], want, rtol=1e-6)
        assert tf.make_ndarray(predict(valid, timeout=30).outputs["probabilities"]).shape == (1, 5)
        channel.close()
    finally:
        _stop(proc)


@pytest.fixture
def limited(exported, tmp_path):
    """An in-process server with short REST time limits (3 s per request, 5 s idle) and 250 connections."""
    base = _copy(exported, tmp_path)
    manager = manager_from_args(str(base / "models.config"), None, None, poll_seconds=0)
    with Server(
        manager,
        rest_port=0,
        grpc_port=0,
        max_body_bytes=LIMIT,
        request_timeout_s=3.0,
        idle_timeout_s=5.0,
        max_connections=250,
    ) as server:
        server.base = base
        yield server


def _valid_rest(server) -> float:
    """Seconds a valid REST predict takes (it must be right)."""
    x = _image()
    started = time.monotonic()
    status, _, body = http(
        server.rest_port, "POST", "/v1/models/hits:predict", json.dumps({"inputs": x.tolist()}).encode(), timeout=30
    )
    assert status == 200 and np.shape(strict_json(body)["outputs"]["probabilities"]) == (1, 5), body[:300]
    return time.monotonic() - started


def test_idle_and_slow_connections_do_not_stop_other_clients(limited):
    """200 connections left open (150 idle, 50 sending a request one byte a second): other clients are still
    answered; the slow ones get 408 and are closed after the request timeout, the idle ones after the idle
    timeout, and the server's count of open connections comes back to zero."""
    port = limited.rest_port
    idle = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(150)]
    slow = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(50)]
    request = b"POST /v1/models/hits:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"[" * 100
    stop = threading.Event()

    def trickle():
        for i in range(len(request)):
            for s in slow:
                try:
                    s.send(request[i : i + 1])
                except OSError:
                    pass
            if stop.wait(1.0):
                return

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        deadline = time.monotonic() + 30
        while limited.rest.connections < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert limited.rest.connections >= 200, limited.rest.connections  # all 200 are held by the server
        took = [_valid_rest(limited) for _ in range(5)]
        grpc_client = Client(f"grpc://127.0.0.1:{limited.grpc_port}")
        assert grpc_client.predict(_image(), "hits")["probabilities"].shape == (1, 5)
        assert max(took) < 10, took  # a hang bound: the idle and slow connections do not queue them
        answers = []
        for s in slow:
            try:
                status, _, body = read_answer(s, 30)
                answers.append((status, strict_json(body)["error"]))
            except NoReply:
                answers.append((None, ""))
        assert all(status == 408 and "not received within 3 s" in error for status, error in answers), answers[:3]
        for s in idle:  # closed by the server: end of stream, no answer
            s.settimeout(30)
            assert s.recv(1) == b""
        deadline = time.monotonic() + 30
        while limited.rest.connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert limited.rest.connections == 0
        _valid_rest(limited)
    finally:
        stop.set()
        for s in idle + slow:
            s.close()


def test_connections_over_the_limit_get_503_at_once_and_service_resumes(limited):
    held = [socket.create_connection(("127.0.0.1", limited.rest_port), timeout=30) for _ in range(250)]
    try:
        deadline = time.monotonic() + 30
        while limited.rest.connections < 250 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert limited.rest.connections == 250
        status, _, body = http(limited.rest_port, "GET", "/v1/models/hits", timeout=30)
        assert status == 503 and "250 open connections, its limit" in strict_json(body)["error"]
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 30
    while limited.rest.connections and time.monotonic() < deadline:
        time.sleep(0.05)
    _valid_rest(limited)


OUTSIDE_NAMES = [
    "../outside",
    "..%2Foutside",
    "%2e%2e%2foutside",
    "%2e%2e",
    "..",
    "hits%00",
    "hits%2F..%2F..%2Foutside",
]


def test_names_versions_labels_and_base_paths_cannot_reach_outside_the_model_root(limited, tmp_path):
    """A SavedModel outside the model root (a copy of hits, as version 1 of ``outside``) is never served:
    not through REST or gRPC names, versions or labels (``..``, ``%2e%2e``, absolute paths, NUL bytes), nor a
    reload request naming it by an absolute path, a relative one, a symbolic link or a NUL byte."""
    server, base = limited, limited.base
    outside = tmp_path / "outside"
    shutil.copytree(base / "hits", outside)
    (base / "link").symlink_to(outside)
    before = {name: sorted(v) for name, v in server.manager.loaded.items()}
    for name in [*OUTSIDE_NAMES, str(outside).lstrip("/"), "outside"]:
        for path in (f"/v1/models/{name}", f"/v1/models/{name}:predict", f"/v1/models/{name}/metadata"):
            status, _, body = http(server.rest_port, "POST" if "predict" in path else "GET", path, b"{}")
            assert status in (400, 404) and strict_json(body)["error"], (path, status, body)
    raw = b"GET /v1/models/hits\x00/../../outside HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    status, _, body = http(server.rest_port, "GET", "", raw=raw)
    assert status in (400, 404), body
    for path in (
        "/v1/models/hits/versions/..%2F1",
        "/v1/models/hits/versions/1%00",
        "/v1/models/hits/labels/..%2Fstable",
    ):
        status, _, body = http(server.rest_port, "GET", path)
        assert status in (400, 404), (path, body)

    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    predict = channel.unary_unary(
        "/tensorflow.serving.PredictionService/Predict",
        request_serializer=predict_pb2.PredictRequest.SerializeToString,
        response_deserializer=predict_pb2.PredictResponse.FromString,
    )
    for name, label in [("../outside", ""), (str(outside), ""), ("hits\x00", ""), ("hits", "../stable"), ("..", "")]:
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.version_label = name, label
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(_image()))
        with pytest.raises(grpc.RpcError) as err:
            predict(request, timeout=30)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND, (name, err.value)

    reload = channel.unary_unary(
        "/tensorflow.serving.ModelService/HandleReloadConfigRequest",
        request_serializer=model_management_pb2.ReloadConfigRequest.SerializeToString,
        response_deserializer=model_management_pb2.ReloadConfigResponse.FromString,
    )
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((base / "models.config").read_text(), config)
    for name, path in [
        ("outside", str(outside)),
        ("outside", "../outside"),
        ("outside", "hits/../../outside"),
        ("outside", "link"),
        ("outside", str(base / "link")),
        ("outside", "hits\x00/../../outside"),
        ("../outside", "hits"),
        ("a/b", "hits"),
        ("x\x00", "hits"),
    ]:
        request = model_management_pb2.ReloadConfigRequest()
        request.config.CopyFrom(config)
        request.config.model_config_list.config.add(name=name, base_path=path, model_platform="tensorflow")
        with pytest.raises(grpc.RpcError) as err:
            reload(request, timeout=60)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, path, err.value)
        assert name in err.value.details() or "model name" in err.value.details(), err.value.details()
        assert {n: sorted(v) for n, v in server.manager.loaded.items()} == before  # nothing changed
    # Inside the root a reload works: the same config, a relative base path taken from the root.
    request = model_management_pb2.ReloadConfigRequest()
    request.config.CopyFrom(config)
    request.config.model_config_list.config.add(name="again", base_path="hits", model_platform="tensorflow")
    reload(request, timeout=60)
    assert sorted(server.manager.loaded) == ["again", "hits", "sizes"] and server.manager.loaded["again"]
    assert all(str(outside) not in str(m.path) for v in server.manager.loaded.values() for m in v.values())
    channel.close()
    # The operator's models.config is checked too: a model name that is a path, a base path with a NUL byte.
    for entry in ('name: "../x" base_path: "hits"', 'name: "x" base_path: "hits\\000"'):
        path = tmp_path / "bad.config"
        path.write_text(f"model_config_list {{ config {{ {entry} }} }}")
        with pytest.raises(ValueError, match=r"model name '\.\./x'|NUL byte"):
            read_model_config(path)


def test_serve_takes_its_rest_limits_from_the_command_line(exported, tmp_path, capsys):
    """``--rest-request-timeout-seconds``, ``--rest-idle-timeout-seconds`` and ``--rest-max-connections`` reach
    the server: a slow request gets 408 naming the flag's value, an idle connection is closed, one connection
    over the limit gets 503; a value that is not positive is a usage error naming it."""
    from spizoo import cli

    with pytest.raises(SystemExit) as usage:
        cli.main(["serve", "--model-base-path", str(tmp_path), "--rest-request-timeout-seconds", "0"])
    assert usage.value.code == 2
    assert "--rest-request-timeout-seconds: must be positive, got 0" in capsys.readouterr().err
    base = _copy(exported, tmp_path)
    rest, grpc_port = _free_port(), _free_port()
    limits = ["--rest-request-timeout-seconds", "1.5", "--rest-idle-timeout-seconds", "2", "--rest-max-connections"]
    proc = start_serve(base / "models.config", rest, grpc_port, *limits, "3")
    try:
        slow = socket.create_connection(("127.0.0.1", rest), timeout=30)
        idle = socket.create_connection(("127.0.0.1", rest), timeout=30)
        held = socket.create_connection(("127.0.0.1", rest), timeout=30)
        slow.send(b"POST /v1/models/hits:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[")
        time.sleep(0.5)  # all three held by the server
        status, _, body = http(rest, "GET", "/v1/models/hits", timeout=30)
        assert status == 503 and "3 open connections, its limit" in strict_json(body)["error"]
        status, _, body = read_answer(slow, 30)
        assert status == 408 and "not received within 1.5 s" in strict_json(body)["error"]
        started = time.monotonic()
        assert idle.recv(1) == b""  # closed by the server, without an answer
        assert time.monotonic() - started < 10
        for s in (slow, idle, held):
            s.close()
        time.sleep(0.5)
        status, _, _ = http(rest, "GET", "/v1/models/hits", timeout=30)
        assert status == 200
    finally:
        _stop(proc)
