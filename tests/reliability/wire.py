"""Clients that send exactly the bytes given (raw HTTP over a socket, gRPC without serialization), strict JSON,
and a process's resident memory."""

from __future__ import annotations

import json
import socket
import time


class NoReply(Exception):
    """The server closed the connection without an answer, or sent something that is not an HTTP answer."""


def http(port: int, method: str, path: str, body: bytes = b"", *, raw: bytes | None = None, timeout: float = 30.0):
    """(status, headers, body) of one request on a fresh connection; ``raw`` replaces the whole request.

    Raises:
        NoReply: the connection closed before a whole answer came.
        TimeoutError: no answer within ``timeout`` s (a hang).
    """
    if raw is None:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        if method == "POST":
            head += f"Content-Length: {len(body)}\r\n"
        raw = head.encode("latin-1") + b"Connection: close\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading all of a refused body
        return read_answer(sock, timeout)


def read_answer(sock: socket.socket, timeout: float = 30.0):
    """One HTTP answer read from ``sock``: (status, headers (lower-case names), body)."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv(sock, deadline)
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise NoReply(f"not an HTTP status line: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "-1"))
    while length >= 0 and len(body) < length:
        body += _recv(sock, deadline)
    return int(parts[1]), headers, body[:length] if length >= 0 else body


def _recv(sock: socket.socket, deadline: float) -> bytes:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("no whole answer in time")
    sock.settimeout(left)
    try:
        chunk = sock.recv(1 << 16)
    except ConnectionResetError:
        chunk = b""
    if not chunk:
        raise NoReply("the connection closed before a whole answer came")
    return chunk


def _no_constants(name: str):
    raise ValueError(f"the answer holds {name}, which is not JSON")


def strict_json(data: bytes):
    """``data`` parsed as standard JSON (NaN and Infinity, which Python would accept, are errors)."""
    return json.loads(data.decode("utf-8"), parse_constant=_no_constants)


def rss_bytes(pid: int | str = "self") -> int:
    """Resident memory of a process (``VmRSS`` of ``/proc/PID/status``)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")
