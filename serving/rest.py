"""TF Serving's REST API (its ``api_rest.md``) over the :class:`~spizoo.serving.models.ModelManager`.

``handle(manager, method, path, body)`` is the whole API as a function (tested through HTTP):

- ``GET /v1/models/NAME[/versions/V | /labels/L]``: ``{"model_version_status": [...]}``;
- ``GET …/metadata``: ``{"model_spec": …, "metadata": {"signature_def": …}}``, and for a spizoo export
  ``trained_on`` (what its training frames were, for the clients' frame check);
- ``POST …:predict``: row (``instances`` → ``predictions``) or columnar (``inputs`` → ``outputs``) format,
  ``signature_name``, ``{"b64": …}`` for bytes;
- ``POST …:classify`` / ``…:regress``: ``examples`` (+ ``context``) as JSON features → ``{"result": …}``.

Errors are ``{"error": message}`` with TF Serving's HTTP statuses (400, 404, 413, 501, …).

Limits (:class:`RestServer`): a body over ``max_body_bytes`` gets 413 unread; a connection idle for
``idle_timeout_s`` between requests is closed; a request (line, headers, body) not received within
``request_timeout_s`` of its first byte gets 408 and its connection is closed; beyond ``max_connections``
open connections a new one gets 503 at once; JSON nested deeper than ``MAX_DEPTH`` is refused (400).
"""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from spizoo.serving.errors import ServingError, invalid
from spizoo.serving.export import CLASSIFY_METHOD, REGRESS_METHOD
from spizoo.serving.models import ModelManager, unexpected

ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>[A-Za-z]+))?/?$"
)
VERBS = ("predict", "classify", "regress")
DRAIN_LIMIT = 256 * 2**20  # bytes of an oversized body read (and dropped) before answering 413
MAX_DEPTH = 32  # nesting of JSON lists and objects in a request (a tensor has at most 32 dimensions here)
INT64 = (-(2**63), 2**63 - 1)
IDLE_TIMEOUT_S = 60.0  # a connection idle this long between requests is closed
REQUEST_TIMEOUT_S = 60.0  # a request (line, headers, body) must arrive within this of its first byte, or 408
MAX_CONNECTIONS = 1024  # open connections; one more gets 503 at once


def handle(manager: ModelManager, method: str, path: str, body: bytes) -> tuple[int, dict]:
    """One REST request → (HTTP status, JSON body)."""
    match = ROUTE.match(path.split("?", 1)[0])
    if not match:
        return 404, {"error": f"Malformed request: {method} {path}"}
    name, label, verb = match["name"], match["label"], match["verb"]
    try:
        version = _version(match["version"])
        if method == "GET" and verb is None:
            if match["metadata"]:
                return 200, metadata(manager.get(name, version, label))
            return 200, {"model_version_status": manager.status(name, version, label)}
        if method == "POST" and verb in VERBS and not match["metadata"]:
            request = _parse_json(body)
            served = manager.get(name, version, label)
            if verb == "predict":
                return 200, predict(served, request)
            return 200, classify_or_regress(served, request, verb)
        if verb is not None and verb not in VERBS:
            return 404, {"error": f"Malformed request: unknown method :{verb} (use :predict, :classify, :regress)"}
        return 405 if method in ("GET", "POST") else 501, {"error": f"{method} is not supported on {path}"}
    except ServingError as err:
        return err.http_status, {"error": err.message}
    except Exception as err:  # never take the server down
        e = unexpected(err)
        return e.http_status, {"error": e.message}


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()):
        raise invalid(f"version must be a positive integer, got {text!r}")
    return int(text)


def _reject_constant(name: str):
    raise invalid(f"JSON value {name} is not allowed: send finite numbers")


def _parse_json(body: bytes) -> dict:
    try:
        request = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise invalid("request body is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise invalid(f"JSON Parse error: {err.msg} at offset {err.pos}") from None
    except RecursionError:
        raise invalid(f"JSON Parse error: lists or objects nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as err:  # e.g. an integer of more than 4300 digits
        raise invalid(f"JSON Parse error: {err}") from None
    if not isinstance(request, dict):
        raise invalid(f"request body must be a JSON object, got {type(request).__name__}")
    _check_depth(request)
    return request


def _check_depth(request: dict) -> None:
    """Refuses lists and objects nested more than :data:`MAX_DEPTH` levels below the request's keys (breadth
    first, without recursion: a tensor of rank 32 in ``inputs`` sits 33 levels down)."""
    level, depth = [request], 0
    while level:
        if depth > MAX_DEPTH + 2:
            raise invalid(f"the request's lists or objects are nested deeper than {MAX_DEPTH} levels")
        level = [v for c in level for v in (c.values() if isinstance(c, dict) else c) if isinstance(v, list | dict)]
        depth += 1


def metadata(served) -> dict:
    """TF Serving's GetModelMetadata response as JSON, with a spizoo export's ``trained_on``
    (:class:`~spizoo.data.frame_check.TrainedOn`)."""
    from google.protobuf import json_format  # with the TF Serving protos below, only when used
    from tensorflow_serving.apis import get_model_metadata_pb2  # TensorFlow's protos: only when used

    sig_map = get_model_metadata_pb2.SignatureDefMap()
    for key, sig in served.signature_defs.items():
        if not key.startswith("__"):
            sig_map.signature_def[key].CopyFrom(sig)
    body = {
        "model_spec": {"name": served.name, "signature_name": "", "version": str(served.version)},
        "metadata": {
            "signature_def": json_format.MessageToDict(
                sig_map, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            )
        },
    }
    if served.trained_on is not None:  # spizoo's addition (clients of TF Serving ignore it): what to check frames by
        body["trained_on"] = served.trained_on.as_dict()
    return body


def _decode_b64(value):
    """Replaces ``{"b64": "…"}`` objects with bytes, recursively."""
    if isinstance(value, dict):
        if set(value) == {"b64"} and isinstance(value["b64"], str):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except ValueError:
                raise invalid("a 'b64' value is not valid base64") from None
        raise invalid(f"unexpected JSON object {sorted(value)} where a tensor value was expected (only {{'b64': …}})")
    if isinstance(value, list):
        return [_decode_b64(v) for v in value]
    return value


def _array(name: str, value) -> np.ndarray:
    value = _decode_b64(value)
    try:
        array = np.array(value)
    except (ValueError, OverflowError):
        raise invalid(f"input {name!r} is ragged: all its rows must have the same shape") from None
    if array.dtype == object:
        raise invalid(f"input {name!r} mixes types, is ragged, or holds integers beyond 64 bits")
    if array.size == 0:
        raise invalid(f"input {name!r} is empty")
    return array


def predict(served, request: dict) -> dict:
    """``:predict`` in row or columnar format."""
    unknown = set(request) - {"signature_name", "instances", "inputs"}
    if unknown:
        raise invalid(f"unknown key(s) {sorted(unknown)} in predict request; use signature_name, instances or inputs")
    if ("instances" in request) == ("inputs" in request):
        raise invalid(
            "Missing 'inputs' or 'instances' key"
            if "inputs" not in request
            else "use 'instances' or 'inputs', not both"
        )
    signature = request.get("signature_name") or "serving_default"
    if not isinstance(signature, str):
        raise invalid("signature_name must be a string")
    names = sorted(served.input_specs(signature))
    if "instances" in request:
        rows = request["instances"]
        if not isinstance(rows, list) or not rows:
            raise invalid("'instances' must be a non-empty list")
        if len(names) == 1 and not all(isinstance(r, dict) and set(r) == set(names) for r in rows):
            inputs = {names[0]: _array(names[0], rows)}
        else:
            for r in rows:
                if not isinstance(r, dict) or set(r) != set(names):
                    raise invalid(f"each instance must be an object with the inputs {names}")
            inputs = {n: _array(n, [r[n] for r in rows]) for n in names}
    else:
        columns = request["inputs"]
        if isinstance(columns, dict) and set(columns) != {"b64"}:
            if set(columns) != set(names):
                raise invalid(f"'inputs' must name the inputs {names}, got {sorted(columns)}")
            inputs = {n: _array(n, v) for n, v in columns.items()}
        elif len(names) == 1:
            inputs = {names[0]: _array(names[0], columns)}
        else:
            raise invalid(f"'inputs' must be an object naming the inputs {names}")
    outputs = served.run(signature, inputs)
    if "instances" in request:
        batch = {len(v) for v in outputs.values()}
        if len(outputs) == 1:
            return {"predictions": _jsonable(next(iter(outputs.values())))}
        n = batch.pop()
        return {"predictions": [{k: _jsonable(v[i]) for k, v in outputs.items()} for i in range(n)]}
    if len(outputs) == 1:
        return {"outputs": _jsonable(next(iter(outputs.values())))}
    return {"outputs": {k: _jsonable(v) for k, v in outputs.items()}}


def _jsonable(value):
    value = np.asarray(value)
    if value.dtype.kind in "SO":
        return _strings(value.tolist())
    if value.dtype.kind not in "biuf":
        raise ServingError("UNIMPLEMENTED", f"output dtype {value.dtype} cannot be written as JSON")
    return value.tolist()


def _strings(value):
    if isinstance(value, list):
        return [_strings(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    return value


def example_from_json(features: dict) -> bytes:
    """A serialized ``tf.train.Example`` from TF Serving's JSON example format (ints → int64_list,
    floats → float_list, strings and ``{"b64"}`` → bytes_list)."""
    from tensorflow.core.example import example_pb2  # TensorFlow's protos: only when used

    example = example_pb2.Example()
    for key, raw in features.items():
        values = _decode_b64(raw if isinstance(raw, list) else [raw])
        feature = example.features.feature[key]
        if not values:
            raise invalid(f"feature {key!r} is empty")
        if all(isinstance(v, bytes | str) for v in values):
            try:
                feature.bytes_list.value.extend(v.encode() if isinstance(v, str) else v for v in values)
            except UnicodeEncodeError:
                raise invalid(f"feature {key!r} holds a string that is not valid Unicode (a lone surrogate)") from None
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            if not all(INT64[0] <= v <= INT64[1] for v in values):
                raise invalid(f"feature {key!r} holds an integer outside the int64 range")
            feature.int64_list.value.extend(values)
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            feature.float_list.value.extend(values)
        else:
            raise invalid(f"feature {key!r} must be a flat list of numbers or of strings")
    return example.SerializeToString()


def classify_or_regress(served, request: dict, verb: str) -> dict:
    """``:classify`` and ``:regress``: examples (merged with ``context``) through a classify/regress signature."""
    unknown = set(request) - {"signature_name", "context", "examples"}
    if unknown:
        raise invalid(f"unknown key(s) {sorted(unknown)} in {verb} request; use signature_name, context, examples")
    examples, context = request.get("examples"), request.get("context", {})
    if not isinstance(examples, list) or not examples or not all(isinstance(e, dict) for e in examples):
        raise invalid("'examples' must be a non-empty list of objects")
    if not isinstance(context, dict):
        raise invalid("'context' must be an object")
    signature = request.get("signature_name") or "serving_default"
    if not isinstance(signature, str):
        raise invalid("signature_name must be a string")
    served.input_specs(signature)  # unknown signature → error naming the known ones
    method = CLASSIFY_METHOD if verb == "classify" else REGRESS_METHOD
    if served.method(signature) != method:
        own = [k for k in served.signatures if served.method(k) == method]
        raise invalid(
            f"Expected {verb} signature method_name to be {method}. Was: {served.method(signature)}"
            + (f" (this model's {verb} signature is {own[0]!r})" if own else f" (this model has no {verb} signature)")
        )
    serialized = np.array([example_from_json({**context, **e}) for e in examples], dtype=object)
    outputs = served.run(signature, {"inputs": serialized})
    if verb == "regress":
        return {"result": np.asarray(outputs["outputs"], float).reshape(len(examples)).tolist()}
    classes = [[c.decode() for c in row] for row in outputs["classes"]]
    scores = np.asarray(outputs["scores"], float).tolist()
    return {"result": [[[c, s] for c, s in zip(cr, sr, strict=True)] for cr, sr in zip(classes, scores, strict=True)]}


class RestServer(ThreadingHTTPServer):
    """The REST endpoint: one thread per connection; metrics; the limits of the module docstring."""

    daemon_threads = True
    request_queue_size = 128  # connections waiting to be accepted (the default, 5, drops bursts of clients)

    def __init__(
        self,
        address,
        manager: ModelManager,
        metrics,
        *,
        max_body_bytes: int,
        metrics_path: str | None,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ):
        for name, value in (
            ("idle_timeout_s", idle_timeout_s),
            ("request_timeout_s", request_timeout_s),
            ("max_connections", max_connections),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        self.manager, self.metrics = manager, metrics
        self.max_body_bytes, self.metrics_path = max_body_bytes, metrics_path
        self.idle_timeout_s, self.request_timeout_s = idle_timeout_s, request_timeout_s
        self.max_connections = max_connections
        self.connections = 0  # open connections (each has its thread)
        self._count = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):
        with self._count:
            full = self.connections >= self.max_connections
            self.connections += not full
        if full:
            _refuse(request, self.max_connections)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._closed()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._closed()

    def _closed(self) -> None:
        with self._count:
            self.connections -= 1

    def handle_error(self, request, client_address):
        """A client that hangs up or stops reading is not an error of the server; anything else is one line."""
        err = sys.exc_info()[1]
        if not isinstance(err, ConnectionError | TimeoutError):
            print(f"spizoo serve: REST connection from {client_address[0]}: {type(err).__name__}: {err}", flush=True)


def _refuse(sock: socket.socket, limit: int) -> None:
    """A 503 for a connection over the limit, written without waiting on the client."""
    body = json.dumps({"error": f"the server has {limit} open connections, its limit; retry later"}).encode()
    head = f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
    try:
        sock.setblocking(False)
        sock.send(head.encode() + b"\r\nConnection: close\r\n\r\n" + body)
    except OSError:
        pass


class RequestTimeout(Exception):
    """A request was not received within the server's ``request_timeout_s``."""


class _DeadlineReader(io.RawIOBase):
    """The connection's input: waits at most ``idle_timeout_s`` for the first byte of a request, then raises
    :class:`RequestTimeout` once the request has taken ``request_timeout_s`` (slow clients cannot hold a
    thread by sending a byte at a time)."""

    def __init__(self, handler: _Handler):
        self.handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        handler, server = self.handler, self.handler.server
        if handler.deadline is None:
            handler.connection.settimeout(server.idle_timeout_s)
        else:
            left = handler.deadline - time.monotonic()
            if left <= 0:
                raise RequestTimeout(f"the request was not received within {server.request_timeout_s:g} s")
            handler.connection.settimeout(left)
        try:
            n = handler.connection.recv_into(buffer)
        except TimeoutError:
            if handler.deadline is None:
                raise  # idle between requests: the connection is closed without an answer
            raise RequestTimeout(f"the request was not received within {server.request_timeout_s:g} s") from None
        if handler.deadline is None and n:
            handler.deadline = time.monotonic() + server.request_timeout_s
        return n


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # so that every answer, errors included, has a status line and headers
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall
    server: RestServer
    deadline: float | None = None  # when the request being received must be complete

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass

    def setup(self):
        super().setup()
        self.rfile.close()  # the socket's own reader, replaced by one that keeps the time limits
        self.rfile = io.BufferedReader(_DeadlineReader(self))

    def handle_one_request(self):
        self.deadline = None  # idle until the next request's first byte
        self.command, self.request_version, self.requestline = None, self.default_request_version, ""
        try:
            super().handle_one_request()
        except RequestTimeout as err:
            self.close_connection = True
            try:
                self._json(408, {"error": f"{err}; closing the connection"})
            except OSError:
                pass

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if len(self.requestline.split()) != 3:  # HTTP/0.9 ("GET /path"): answered as 1.0 (default_request_version)
            self.send_error(400, "the request line has no HTTP version (HTTP/0.9 is not supported)")
            return False
        return True

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (a malformed request line or header, an unknown method) as JSON errors."""
        if code == 501:  # a method this server does not have: the client's error
            code, message = 405, f"HTTP method {self.command!r} is not supported; use GET or POST"
        short, long = self.responses.get(code, ("error", ""))
        self.close_connection = True
        self._json(code, {"error": f"{message or short}" + (f": {explain or long}" if explain or long else "")})

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.server.metrics_path and self.path == self.server.metrics_path:
            loaded = {n: sorted(v) for n, v in self.server.manager.loaded.items()}
            self._send(200, self.server.metrics.render(loaded).encode(), "text/plain; version=0.0.4")
            return
        self._respond("GET", b"")

    def do_POST(self):  # noqa: N802
        length = self.headers.get("Content-Length")
        if length is None or not (length.isascii() and length.isdigit()):
            self.close_connection = True
            self._json(411, {"error": "a POST needs a Content-Length header"})
            return
        if int(length) > self.server.max_body_bytes:
            self.close_connection = True
            _discard(self.rfile, min(int(length), DRAIN_LIMIT))  # so that the client reads the answer
            self._json(
                413, {"error": f"request body of {length} bytes exceeds the limit of {self.server.max_body_bytes}"}
            )
            return
        body = self.rfile.read(int(length))
        self.deadline = None  # received: the time to answer is not the client's
        if len(body) < int(length):
            self.close_connection = True
            self._json(400, {"error": f"the body ended after {len(body)} of its {length} bytes (Content-Length)"})
            return
        self._respond("POST", body)

    def do_PUT(self):  # noqa: N802
        self._json(405, {"error": "PUT is not supported"})

    do_DELETE = do_PUT

    def _respond(self, method: str, body: bytes):
        start = time.perf_counter()
        status, reply = handle(self.server.manager, method, self.path, body)
        match = ROUTE.match(self.path.split("?", 1)[0])
        api = (match["verb"] or ("metadata" if match["metadata"] else "status")) if match else "unknown"
        model = match["name"] if match else "-"
        self.server.metrics.record(
            model, f"rest_{api}", "OK" if status == 200 else str(status), time.perf_counter() - start
        )
        self._json(status, reply)

    def _json(self, status: int, reply: dict):
        self._send(status, json.dumps(reply).encode(), "application/json")

    def _send(self, status: int, payload: bytes, content_type: str):
        self.connection.settimeout(self.server.request_timeout_s)  # a client that does not read its answer
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


def _discard(stream, n: int, chunk: int = 2**20) -> None:
    while n > 0:
        data = stream.read(min(chunk, n))
        if not data:
            return
        n -= len(data)
