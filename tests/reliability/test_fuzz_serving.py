"""Seeded mutation fuzzing of the model server's REST bodies and paths and its gRPC requests (issue 17).

Each case is a valid request of one of several kinds, mutated (tests/reliability/mutator.py). Its answer
must be either correct (a 200 / OK whose outputs equal the model's own answer on the same inputs, computed
here by a direct call of the signature) or an error that says what is wrong (REST: a 4xx whose body is
``{"error": message}``; gRPC: INVALID_ARGUMENT, NOT_FOUND, UNIMPLEMENTED, FAILED_PRECONDITION or
RESOURCE_EXHAUSTED with details). Never a 5xx, INTERNAL or UNKNOWN, a hang (every call has a timeout), or
invalid JSON (NaN). Every ``HEALTH_EVERY`` cases a valid request over each transport must get the right
answer. A failure names the seed and the case index: ``Mutator(seed_for(SEED, index))`` replays it.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse

import grpc
import numpy as np
import pytest
import tensorflow as tf
from mutator import Mutator, seed_for, to_json
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    regression_pb2,
)
from wire import NoReply, http, strict_json

from spizoo.data import schema
from spizoo.serving.errors import ServingError

SEED = 17
HEALTH_EVERY = 20
GRPC_CLIENT_CODES = {"INVALID_ARGUMENT", "NOT_FOUND", "UNIMPLEMENTED", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED"}
HOSTILE_NAMES = ["..", "../hits", "%2e%2e", "%2e%2e%2fhits", "hits%00", "hits\x00", "/etc/passwd", "", "HITS", "hits "]
HOSTILE_VERSIONS = ["-1", "0", "\u00b2", "99999999999999999999999", "1.0", "0x1", "1%00", "..", "%2e%2e"]
HOSTILE_LABELS = ["", "..", "../stable", "stable%00", "STABLE", "x" * 300]


def _images(n: int, size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).poisson(3.0, (n, size, size)).astype(np.float32)


def _b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


def _example(image: np.ndarray) -> bytes:
    return schema.encode_example({schema.IMAGE: image.astype("<f4").tobytes()})


def _direct(served, signature: str, inputs: dict) -> dict:
    fn = served.signatures[signature]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def _close(got, want, what: str) -> None:
    want = np.asarray(want)
    got = np.asarray(got, dtype=want.dtype if want.dtype.kind in "iu" else None)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, the model's is {want.shape}"
    if want.dtype.kind in "iu":
        assert (got == want).all(), f"{what}: {got} != {want}"
    else:
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=1e-4, atol=1e-5, err_msg=what)


# -- REST ------------------------------------------------------------------------------------------------------


def rest_samples() -> list[tuple[str, str, str, dict | None]]:
    """(kind, method, path, body) of valid requests: the seeds of the mutations."""
    small, full = _images(1, 24, 1), _images(2, 32, 2)
    examples = [{"image": _b64(im.astype("<f4").tobytes())} for im in full]
    return [
        ("predict_rows", "POST", "/v1/models/hits:predict", {"instances": small.tolist()}),
        (
            "predict_columns",
            "POST",
            "/v1/models/hits/versions/1:predict",
            {"signature_name": "serving_default", "inputs": {"images": small.tolist()}},
        ),
        (
            "predict_examples",
            "POST",
            "/v1/models/hits/labels/stable:predict",
            {"signature_name": "predict_examples", "instances": [_b64(_example(im)) for im in full]},
        ),
        ("classify", "POST", "/v1/models/hits:classify", {"signature_name": "classify", "examples": examples}),
        (
            "regress",
            "POST",
            "/v1/models/sizes:regress",
            {"signature_name": "regress", "context": {}, "examples": examples[:1]},
        ),
        ("metadata", "GET", "/v1/models/hits/metadata", None),
        ("status", "GET", "/v1/models/sizes/versions/1", None),
    ]


def _hostile_path(m: Mutator, path: str) -> str:
    """A path with a hostile model name, version or label, or the path's bytes mutated (percent-encoded
    where they could not be sent in a request line, raw otherwise)."""
    verb = ":" + path.rsplit(":", 1)[1] if ":" in path else m.choice(["", "/metadata", ":predict", ":explain"])
    how = m.rng.randrange(4)
    if how == 0:
        return f"/v1/models/{m.choice(HOSTILE_NAMES)}{verb}"
    if how == 1:
        return f"/v1/models/hits/versions/{m.choice(HOSTILE_VERSIONS)}{verb}"
    if how == 2:
        return f"/v1/models/hits/labels/{m.choice(HOSTILE_LABELS)}{verb}"
    mutated = m.bytes(path.encode(), max_ops=2)
    return urllib.parse.quote(mutated, safe="/:%?=&.") if m.rng.random() < 0.8 else mutated.decode("latin-1")


def _pixels_changed(m: Mutator, body: dict) -> dict:
    body = json.loads(json.dumps(body))
    images = body["instances"] if "instances" in body else body["inputs"]["images"]
    for _ in range(m.rng.randint(1, 20)):
        row = m.choice(m.choice(images))
        row[m.rng.randrange(len(row))] = m.choice([0, -1, 1e-300, -(10**6), 10**6, 2**31, 65504.5, 1e30, -7.25])
    return body


def rest_case(m: Mutator, samples) -> tuple[str, str, str, bytes]:
    """(description, method, path, body) of one hostile request."""
    kind, method, path, body = m.choice(samples)
    how = m.choice(["structure", "structure", "structure", "values", "bytes", "structure+bytes", "path", "method"])
    text = json.dumps(body).encode() if body is not None else b""
    if how == "path":
        path = _hostile_path(m, path)
    elif how == "method":
        method = m.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"])
    elif body is None:
        path, how = _hostile_path(m, path), "path"
    elif how == "values" and kind.startswith("predict_") and kind != "predict_examples":
        text = json.dumps(_pixels_changed(m, body)).encode()  # finite numbers anywhere: answered, and right
    else:
        how = "structure" if how == "values" else how
        if how.startswith("structure"):
            text = to_json(m.value(body))
        if how.endswith("bytes"):
            text = m.bytes(text)
    return f"{kind}, {how}", method, path, text


class RestOracle:
    """Checks a REST answer: a 4xx JSON error, or a 200 equal to the model's own answer."""

    def __init__(self, server):
        self.server = server
        self.known_gets = {}
        for _, method, path, _ in rest_samples():
            if method == "GET":
                status, _, body = http(server.rest_port, "GET", path)
                assert status == 200
                self.known_gets[path] = strict_json(body)
        for path in ("/v1/models/hits", "/v1/models/sizes", "/v1/models/sizes/metadata"):
            self.known_gets[path] = strict_json(http(server.rest_port, "GET", path)[2])

    def check(self, where: str, method: str, path: str, sent: bytes, answer) -> str:
        status, headers, body = answer
        assert status < 500, f"{where}: HTTP {status}: {body[:300]!r}"
        assert headers.get("content-type") == "application/json", f"{where}: {headers}"
        try:
            reply = strict_json(body)
        except ValueError as err:
            raise AssertionError(f"{where}: the answer is not JSON ({err}): {body[:300]!r}") from None
        assert isinstance(reply, dict), f"{where}: {reply!r:.300}"
        if status != 200:
            assert set(reply) == {"error"}, f"{where}: {reply!r:.300}"
            assert isinstance(reply["error"], str) and len(reply["error"].strip()) > 5, f"{where}: {reply!r:.300}"
            return str(status)
        if method == "GET":
            assert reply in self.known_gets.values(), f"{where}: 200 with an unknown body {reply!r:.300}"
            return "200"
        self._check_post(where, path, json.loads(sent), reply)
        return "200"

    def _check_post(self, where: str, path: str, request: dict, reply: dict) -> None:
        route = path.split("?")[0].rstrip("/")
        name = route.split("/v1/models/", 1)[1].split("/")[0].split(":")[0]
        version = int(route.split("/versions/")[1].split(":")[0]) if "/versions/" in route else None
        label = route.split("/labels/")[1].split(":")[0] if "/labels/" in route else None
        served = self.server.manager.get(name, version, label)
        signature = request.get("signature_name") or "serving_default"
        verb = route.rsplit(":", 1)[1]
        if verb in ("classify", "regress"):
            images = []
            for example in request["examples"]:
                feature = {**request.get("context", {}), **example}["image"]
                raw = feature[0] if isinstance(feature, list) else feature
                images.append(np.frombuffer(base64.b64decode(raw["b64"]), "<f4").reshape(32, 32))
            want = _direct(served, "serving_default", {"images": np.stack(images)})
            if verb == "regress":
                _close(reply["result"], want["radius_nm"], f"{where}: regress")
            else:
                labels = [[c for c, _ in row] for row in reply["result"]]
                assert all(row == ["none", "single", "double", "triple", "4+"] for row in labels), where
                _close([[s for _, s in row] for row in reply["result"]], want["probabilities"], f"{where}: classify")
            return
        name_in = "examples" if signature == "predict_examples" else "images"
        if "instances" in request:
            rows = request["instances"]
            values = [r[name_in] if isinstance(r, dict) and set(r) == {name_in} else r for r in rows]
        else:
            values = request["inputs"]
            values = values[name_in] if isinstance(values, dict) and set(values) == {name_in} else values
        if signature == "predict_examples":
            inputs = {"examples": np.array([base64.b64decode(v["b64"]) for v in values], dtype=object)}
        else:
            x = np.asarray(values, np.float64)
            assert np.isfinite(x).all() and x.ndim == 3, f"{where}: 200 for images of shape {x.shape}"
            inputs = {"images": x.astype(np.float32)}
        want = _direct(served, signature, inputs)
        if "instances" in request:
            got = {k: [row[k] for row in reply["predictions"]] for k in want}
        else:
            got = reply["outputs"]
        assert set(got) == set(want), f"{where}: outputs {sorted(got)}"
        for k in want:
            _close(got[k], want[k], f"{where}: {k}")


def _healthy(server, where: str) -> None:
    """A valid request over REST and over gRPC gets the model's answer."""
    x = _images(1, 32, 99)
    want = _direct(server.manager.get("hits"), "serving_default", {"images": x})
    status, _, body = http(
        server.rest_port, "POST", "/v1/models/hits:predict", json.dumps({"inputs": x.tolist()}).encode()
    )
    assert status == 200, f"after {where}: a valid REST request got HTTP {status}: {body[:300]!r}"
    _close(strict_json(body)["outputs"]["probabilities"], want["probabilities"], f"after {where}: REST")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hits"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(x))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        reply = channel.unary_unary(
            "/tensorflow.serving.PredictionService/Predict",
            request_serializer=predict_pb2.PredictRequest.SerializeToString,
            response_deserializer=predict_pb2.PredictResponse.FromString,
        )(request, timeout=30)
    _close(tf.make_ndarray(reply.outputs["probabilities"]), want["probabilities"], f"after {where}: gRPC")


def fuzz_rest(server, cases: int, seed: int = SEED) -> dict:
    oracle, samples, outcomes = RestOracle(server), rest_samples(), {}
    for i in range(cases):
        m = Mutator(seed_for(seed, i))
        how, method, path, body = rest_case(m, samples)
        where = f"REST seed {seed} case {i} ({how}): {method} {path!r} body {body[:120]!r}…"
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        raw = head.encode("latin-1", "replace") + body
        try:
            answer = http(server.rest_port, method, path, raw=raw, timeout=30)
        except TimeoutError:
            raise AssertionError(f"{where}: no answer within 30 s (a hang)") from None
        except NoReply as err:
            raise AssertionError(f"{where}: {err}") from None
        outcome = oracle.check(where, method, path, body, answer)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if (i + 1) % HEALTH_EVERY == 0:
            _healthy(server, where)
    _healthy(server, f"REST seed {seed}, all {cases} cases")
    return outcomes


def test_rest_bodies_paths_and_methods_fuzzed(served):
    outcomes = fuzz_rest(served, 150)
    print(f"\nREST fuzz: 150 cases, answers {dict(sorted(outcomes.items()))}")
    assert sum(outcomes.values()) == 150 and len(outcomes) > 2  # the mutations reach several kinds of answer


@pytest.mark.slow
def test_rest_fuzzed_at_length(served):
    outcomes = fuzz_rest(served, 4000, seed=SEED + 1)
    print(f"\nREST fuzz (slow): 4000 cases, answers {dict(sorted(outcomes.items()))}")


# -- gRPC ------------------------------------------------------------------------------------------------------

METHODS = {
    "Predict": ("PredictionService", predict_pb2.PredictRequest, predict_pb2.PredictResponse),
    "Classify": (
        "PredictionService",
        classification_pb2.ClassificationRequest,
        classification_pb2.ClassificationResponse,
    ),
    "Regress": ("PredictionService", regression_pb2.RegressionRequest, regression_pb2.RegressionResponse),
    "GetModelMetadata": (
        "PredictionService",
        get_model_metadata_pb2.GetModelMetadataRequest,
        get_model_metadata_pb2.GetModelMetadataResponse,
    ),
    "GetModelStatus": (
        "ModelService",
        get_model_status_pb2.GetModelStatusRequest,
        get_model_status_pb2.GetModelStatusResponse,
    ),
}


def grpc_samples() -> list[tuple[str, object]]:
    """(method, request) of valid requests."""
    small, full = _images(1, 24, 3), _images(2, 32, 4)
    content = predict_pb2.PredictRequest()
    content.model_spec.name = "hits"
    content.inputs["images"].CopyFrom(tf.make_tensor_proto(small))
    values = predict_pb2.PredictRequest()
    values.model_spec.name, values.model_spec.signature_name = "hits", "serving_default"
    values.model_spec.version.value = 1
    tensor = values.inputs["images"]
    tensor.dtype = tf.float32.as_datatype_enum
    tensor.tensor_shape.dim.add(size=1)
    tensor.tensor_shape.dim.add(size=24)
    tensor.tensor_shape.dim.add(size=24)
    tensor.float_val.extend(small.ravel().tolist())
    values.output_filter.append("probabilities")
    examples = predict_pb2.PredictRequest()
    examples.model_spec.name, examples.model_spec.signature_name = "hits", "predict_examples"
    examples.model_spec.version_label = "stable"
    examples.inputs["examples"].CopyFrom(tf.make_tensor_proto([_example(im) for im in full]))
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name, classify.model_spec.signature_name = "hits", "classify"
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name, regress.model_spec.signature_name = "sizes", "regress"
    for im in full:
        classify.input.example_list.examples.add().CopyFrom(example_pb2.Example.FromString(_example(im)))
        regress.input.example_list.examples.add().CopyFrom(example_pb2.Example.FromString(_example(im)))
    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    metadata.model_spec.name = "sizes"
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "hits"
    return [
        ("Predict", content),
        ("Predict", values),
        ("Predict", examples),
        ("Classify", classify),
        ("Regress", regress),
        ("GetModelMetadata", metadata),
        ("GetModelStatus", status),
    ]


HOSTILE_INTS = [0, 1, -1, 2, 24, 31, 32, 2**31 - 1, 2**31, 2**40, 2**62, 2**63 - 1, -(2**63), 10**6]
DTYPES = [*range(0, 24), 101, 114, 120, 999, 2**31 - 1]


def _mutate_tensor(m: Mutator, tensor) -> None:
    rng = m.rng
    op = rng.randrange(9)
    if op == 0:
        tensor.dtype = m.choice(DTYPES)
    elif op == 1 and tensor.tensor_shape.dim:
        m.choice(tensor.tensor_shape.dim).size = m.choice(HOSTILE_INTS)
    elif op == 2:
        if tensor.tensor_shape.dim and rng.random() < 0.5:
            del tensor.tensor_shape.dim[rng.randrange(len(tensor.tensor_shape.dim))]
        else:
            tensor.tensor_shape.dim.add(size=m.choice(HOSTILE_INTS))
    elif op == 3:
        tensor.tensor_shape.unknown_rank = True
    elif op == 4:
        tensor.tensor_content = m.bytes(tensor.tensor_content) if tensor.tensor_content else rng.randbytes(64)
    elif op == 5:
        tensor.ClearField("tensor_content")
        if rng.random() < 0.5:
            tensor.float_val.extend([m.choice([1.0, float("nan"), float("inf"), 3.4e38, -1e30])] * rng.randint(1, 9))
    elif op == 6:
        tensor.int_val.extend([m.choice(HOSTILE_INTS) % 2**31] * rng.randint(1, 5))
        tensor.int64_val.extend([m.choice(HOSTILE_INTS) % 2**63])
    elif op == 7:
        tensor.string_val.extend([rng.randbytes(rng.randint(0, 40)) for _ in range(rng.randint(1, 4))])
        tensor.half_val.extend([m.choice(HOSTILE_INTS) % 2**31])
    else:
        tensor.CopyFrom(tf.make_tensor_proto(m.choice([np.zeros((1, 24, 24), np.float64), np.ones((2, 3), np.int8)])))


def _mutate_spec(m: Mutator, spec) -> None:
    op = m.rng.randrange(4)
    if op == 0:
        spec.name = m.choice(["", "..", "../hits", "/etc", "hits\x00", "sizes", "HITS", "%2e%2e", "x" * 1000])
    elif op == 1:
        spec.version.value = m.choice(HOSTILE_INTS)
    elif op == 2:
        spec.version_label = m.choice(["", "stable", "..", "../stable", "canary", "\x00"])
    else:
        spec.signature_name = m.choice(["", "serving_default", "classify", "regress", "predict_examples", "__x", ".."])


def _mutate_example(m: Mutator, example) -> None:
    features = example.features.feature
    op = m.rng.randrange(4)
    if op == 0 and features["image"].bytes_list.value:
        features["image"].bytes_list.value[0] = m.bytes(features["image"].bytes_list.value[0])
    elif op == 1 and "image" in features:
        del features["image"]
    elif op == 2:
        features["image"].ClearField("bytes_list")
        features["image"].float_list.value.extend([1.0] * m.rng.randint(0, 1024))
    else:
        features["image"].bytes_list.value.append(b"\x00" * 4096)


def grpc_case(m: Mutator, samples) -> tuple[str, str, bytes]:
    """(description, method, serialized request) of one hostile request."""
    method, request = m.choice(samples)
    request = type(request).FromString(request.SerializeToString())
    how = m.choice(["fields", "fields", "fields", "bytes", "fields+bytes"])
    if how.startswith("fields"):
        for _ in range(m.rng.randint(1, 3)):
            target = m.rng.randrange(4)
            if method == "Predict" and target <= 1:
                key = m.choice(list(request.inputs))
                _mutate_tensor(m, request.inputs[key])
                if m.rng.random() < 0.1:
                    request.inputs[m.choice(["", "Images", "examples", "images"])].CopyFrom(request.inputs[key])
            elif method in ("Classify", "Regress") and target <= 1 and request.input.example_list.examples:
                _mutate_example(m, m.choice(request.input.example_list.examples))
            elif method == "Predict" and target == 2:
                request.output_filter.append(m.choice(["probabilities", "classes", "nope", ""]))
            elif method == "GetModelMetadata" and target == 2:
                request.metadata_field.append(m.choice(["signature_def", "", "x"]))
            else:
                _mutate_spec(m, request.model_spec)
    data = request.SerializeToString()
    if how.endswith("bytes"):
        data = m.bytes(data)
    return how, method, data


class GrpcOracle:
    def __init__(self, server):
        self.server = server

    def check(self, where: str, method: str, sent: bytes, reply: bytes | None, error: grpc.RpcError | None) -> str:
        if error is not None:
            code = error.code().name
            assert code in GRPC_CLIENT_CODES, f"{where}: {code}: {error.details()}"
            assert error.details() and len(error.details().strip()) > 5, f"{where}: {code} without details"
            return code
        _, request_class, reply_class = METHODS[method]
        request, reply = request_class.FromString(sent), reply_class.FromString(reply)
        spec = request.model_spec
        try:
            served = self.server.manager.get(
                spec.name, spec.version.value if spec.HasField("version") else None, spec.version_label or None
            )
        except ServingError as err:
            raise AssertionError(f"{where}: OK for a model the server does not have ({err.message})") from None
        if method != "GetModelStatus":
            assert (reply.model_spec.name, reply.model_spec.version.value) == (served.name, served.version), where
        if method == "Predict":
            signature = spec.signature_name or "serving_default"
            specs = served.input_specs(signature)  # numbers are cast to the signature's dtype, as the server does
            inputs = {k: tf.make_ndarray(v).astype(specs[k].dtype.as_numpy_dtype) for k, v in request.inputs.items()}
            want = _direct(served, signature, inputs)
            assert set(reply.outputs) == set(request.output_filter or want), f"{where}: outputs {list(reply.outputs)}"
            for k in reply.outputs:
                _close(tf.make_ndarray(reply.outputs[k]), want[k], f"{where}: {k}")
        elif method in ("Classify", "Regress"):
            examples = np.array([e.SerializeToString() for e in request.input.example_list.examples], dtype=object)
            want = _direct(served, "predict_examples", {"examples": examples})
            if method == "Regress":
                _close([r.value for r in reply.result.regressions], want["radius_nm"], f"{where}: regress")
            else:
                scores = [[c.score for c in row.classes] for row in reply.result.classifications]
                _close(scores, want["probabilities"], f"{where}: classify")
        elif method == "GetModelMetadata":
            assert list(request.metadata_field) == ["signature_def"], where
        else:
            assert [s.version for s in reply.model_version_status] == sorted(
                self.server.manager.loaded[served.name], reverse=True
            ), where
        return "OK"


def fuzz_grpc(server, cases: int, seed: int = SEED) -> dict:
    oracle, samples, outcomes = GrpcOracle(server), grpc_samples(), {}
    with grpc.insecure_channel(
        f"127.0.0.1:{server.grpc_port}", options=[("grpc.max_receive_message_length", 2**26)]
    ) as channel:
        calls = {
            name: channel.unary_unary(f"/tensorflow.serving.{svc}/{name}") for name, (svc, _, _) in METHODS.items()
        }
        for i in range(cases):
            m = Mutator(seed_for(seed, i))
            how, method, data = grpc_case(m, samples)
            where = f"gRPC seed {seed} case {i} ({method}, {how}): request {data[:120]!r}…"
            reply = error = None
            started = time.monotonic()
            try:
                reply = calls[method](data, timeout=30)
            except grpc.RpcError as err:
                error = err
                assert err.code() != grpc.StatusCode.DEADLINE_EXCEEDED, f"{where}: no answer within 30 s (a hang)"
            assert time.monotonic() - started < 30, where
            outcome = oracle.check(where, method, data, reply, error)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if (i + 1) % HEALTH_EVERY == 0:
                _healthy(server, where)
    _healthy(server, f"gRPC seed {seed}, all {cases} cases")
    return outcomes


def test_grpc_requests_fuzzed(served):
    outcomes = fuzz_grpc(served, 150)
    print(f"\ngRPC fuzz: 150 cases, answers {dict(sorted(outcomes.items()))}")
    assert sum(outcomes.values()) == 150 and "OK" in outcomes and "INVALID_ARGUMENT" in outcomes


@pytest.mark.slow
def test_grpc_fuzzed_at_length(served):
    outcomes = fuzz_grpc(served, 4000, seed=SEED + 1)
    print(f"\ngRPC fuzz (slow): 4000 cases, answers {dict(sorted(outcomes.items()))}")
