"""TF Serving's REST API (its ``api_rest.md``) over the :class:`~spizoo.serving.models.ModelManager`.

``handle(manager, method, path, body)`` is the whole API as a function (tested through HTTP):

- ``GET /v1/models/NAME[/versions/V | /labels/L]``: ``{"model_version_status": [...]}``;
- ``GET …/metadata``: ``{"model_spec": …, "metadata": {"signature_def": …}}``;
- ``POST …:predict``: row (``instances`` → ``predictions``) or columnar (``inputs`` → ``outputs``) format,
  ``signature_name``, ``{"b64": …}`` for bytes;
- ``POST …:classify`` / ``…:regress``: ``examples`` (+ ``context``) as JSON features → ``{"result": …}``.

Errors are ``{"error": message}`` with TF Serving's HTTP statuses (400, 404, 413, 501, …).
"""

from __future__ import annotations

import base64
import json
import re
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
    if not text.isdigit():
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
    if not isinstance(request, dict):
        raise invalid(f"request body must be a JSON object, got {type(request).__name__}")
    return request


def metadata(served) -> dict:
    """TF Serving's GetModelMetadata response as JSON."""
    from google.protobuf import json_format  # with the TF Serving protos below, only when used
    from tensorflow_serving.apis import get_model_metadata_pb2  # TensorFlow's protos: only when used

    sig_map = get_model_metadata_pb2.SignatureDefMap()
    for key, sig in served.signature_defs.items():
        if not key.startswith("__"):
            sig_map.signature_def[key].CopyFrom(sig)
    return {
        "model_spec": {"name": served.name, "signature_name": "", "version": str(served.version)},
        "metadata": {
            "signature_def": json_format.MessageToDict(
                sig_map, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            )
        },
    }


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
    except ValueError:
        raise invalid(f"input {name!r} is ragged: all its rows must have the same shape") from None
    if array.dtype == object:
        raise invalid(f"input {name!r} mixes types or is ragged")
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
            feature.bytes_list.value.extend(v.encode() if isinstance(v, str) else v for v in values)
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
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
    """The REST endpoint: one thread per connection; body size limit; metrics."""

    daemon_threads = True

    def __init__(self, address, manager: ModelManager, metrics, *, max_body_bytes: int, metrics_path: str | None):
        self.manager, self.metrics = manager, metrics
        self.max_body_bytes, self.metrics_path = max_body_bytes, metrics_path
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall
    server: RestServer

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.server.metrics_path and self.path == self.server.metrics_path:
            loaded = {n: sorted(v) for n, v in self.server.manager.loaded.items()}
            self._send(200, self.server.metrics.render(loaded).encode(), "text/plain; version=0.0.4")
            return
        self._respond("GET", b"")

    def do_POST(self):  # noqa: N802
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
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
        self._respond("POST", self.rfile.read(int(length)))

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
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _discard(stream, n: int, chunk: int = 2**20) -> None:
    while n > 0:
        data = stream.read(min(chunk, n))
        if not data:
            return
        n -= len(data)
