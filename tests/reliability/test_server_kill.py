"""``spizoo serve`` SIGKILLed and restarted on the same ports while REST and gRPC clients keep sending (issue 17).

Clients see connection errors only between the kill and the moment the restarted server says it serves
(plus the clients' reconnect time, ``RECONNECT_S``); every answer is checked against the model's own answer
on the same input, so no cut-off or garbled answer is taken for a valid one.
"""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from test_hostile_clients import _copy, _free_port, _stop, start_serve

from spizoo.serving import Client, ServingClientError

KILLS = 3
RECONNECT_S = 1.5  # the gRPC channel retries within 1 s (max_reconnect_backoff_ms of the clients)
CONNECTION_WORDS = ("cannot reach the model server", "incomplete or malformed answer", "UNAVAILABLE")


@pytest.mark.slow
def test_serve_sigkilled_and_restarted_under_load(exported, tmp_path):
    base = _copy(exported, tmp_path)
    rest, grpc_port = _free_port(), _free_port()
    x = np.random.default_rng(8).poisson(3.0, (4, 32, 32)).astype(np.float32)
    signature = tf.saved_model.load(str(base / "hits" / "1")).signatures["serving_default"]
    want = signature(images=tf.constant(x))["probabilities"].numpy()
    events = []  # (kind, time): kill, ready
    answers = []  # (sent, received, client, outcome, detail)
    lock, stop = threading.Lock(), threading.Event()

    def client(i: int):
        transport = "REST" if i % 2 else "gRPC"
        url = f"http://127.0.0.1:{rest}" if i % 2 else f"grpc://127.0.0.1:{grpc_port}"
        c = Client(url, timeout=10)
        while not stop.is_set():
            sent = time.monotonic()
            try:
                got = c.predict(x, "hits")["probabilities"]
                ok = got.shape == want.shape and np.allclose(got, want, rtol=1e-5, atol=1e-6)
                outcome, detail = ("answer" if ok else "garbled"), "" if ok else repr(got)[:300]
            except ServingClientError as err:
                outcome, detail = "error", str(err)
            except Exception as err:  # anything else is a failure of the client or the server
                outcome, detail = "unexpected", f"{type(err).__name__}: {err}"
            with lock:
                answers.append((sent, time.monotonic(), transport, outcome, detail))
            time.sleep(0.02)

    proc = start_serve(base / "models.config", rest, grpc_port)
    events.append(("ready", time.monotonic()))
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    try:
        for _ in range(KILLS):
            time.sleep(3.0)
            events.append(("kill", time.monotonic()))
            proc.kill()  # SIGKILL: no clean-up, mid-request for some clients
            proc.wait()
            proc = start_serve(base / "models.config", rest, grpc_port)
            events.append(("ready", time.monotonic()))
        time.sleep(4.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        _stop(proc)
    gaps = [(k, r + RECONNECT_S) for (e1, k), (e2, r) in zip(events[1::2], events[2::2], strict=True)]

    def in_gap(sent: float, received: float) -> bool:
        return any(start <= received and sent <= end for start, end in gaps)

    assert not [a for a in answers if a[3] in ("garbled", "unexpected")], [a for a in answers if a[3] != "answer"][:5]
    errors = [a for a in answers if a[3] == "error"]
    assert all(any(w in a[4] for w in CONNECTION_WORDS) for a in errors), [a[4] for a in errors][:5]
    outside = [
        (round(a[0] - events[0][1], 3), round(a[1] - events[0][1], 3), a[2], a[4][:80])
        for a in errors
        if not in_gap(a[0], a[1])
    ]
    relative = [(round(s - events[0][1], 3), round(e - events[0][1], 3)) for s, e in gaps]
    assert not outside, f"errors outside the gaps {relative}: {outside[:5]}"
    for transport in ("REST", "gRPC"):
        for _, end in gaps:  # every client is answered again after each restart
            assert any(a[2] == transport and a[3] == "answer" and a[0] > end for a in answers), (transport, end)
        assert any(a[2] == transport and a[3] == "error" for a in errors), f"no {transport} client saw a gap"
    print(
        f"\nkill/restart: {KILLS} SIGKILLs, {len(answers)} requests, {sum(a[3] == 'answer' for a in answers)} right"
        f" answers, {len(errors)} connection errors, all within the gaps"
        f" ({', '.join(f'{end - start - RECONNECT_S:.1f} s' for start, end in gaps)}); 0 garbled"
    )


def test_an_answer_cut_off_mid_body_is_an_error_never_an_answer():
    """What a client sees when the server is killed while it writes: the first half of a valid answer."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def serve_half():
            conn, _ = listener.accept()
            request = b""  # read the whole request: closing with unread bytes would reset the connection instead
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            head, _, rest = request.partition(b"\r\n\r\n")
            length = int(next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")))
            while len(rest) < length:
                rest += conn.recv(65536)
            body = b'{"outputs": {"probabilities": [[0.1, 0.2, 0.3, 0.2, 0.2]]}}'
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
            conn.sendall(body[: len(body) // 2])
            conn.close()

        t = threading.Thread(target=serve_half, daemon=True)
        t.start()
        with pytest.raises(ServingClientError, match="incomplete or malformed answer"):
            Client(f"http://127.0.0.1:{port}", timeout=10).predict(np.zeros((1, 32, 32), np.float32), "hits")
        t.join(timeout=10)
