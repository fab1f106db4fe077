import base64
import http.client
import json
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from spizoo.commands.export import export_run
from spizoo.data import schema
from spizoo.serving import Client, ServingClientError
from spizoo.serving.batching import BatchingParameters, read_batching_parameters
from spizoo.serving.models import read_model_config
from spizoo.serving.server import Server, manager_from_args

H = W = 32


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(3.0, (n, H, W)).astype(np.float32)


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory):
    base = tmp_path_factory.mktemp("served") / "models"
    shutil.copytree(exported, base)
    config = base / "models.config"
    config.write_text(config.read_text().replace(str(exported.resolve()), str(base.resolve())))
    manager = manager_from_args(str(config), None, None, poll_seconds=0.2)
    with Server(manager, rest_port=0, grpc_port=0, max_body_bytes=2**20) as s:
        s.base = base
        yield s


def _rest(server, method: str, path: str, body=None, raw: bytes | None = None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
    payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=payload, headers=headers or {})
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    return reply.status, json.loads(data) if data and reply.getheader("Content-Type") == "application/json" else data


def _direct(server, images, model="hits"):
    served = server.manager.get(model)
    return {k: v.numpy() for k, v in served.signatures["serving_default"](images=tf.constant(images)).items()}


def _stubs(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    return prediction_service_pb2_grpc.PredictionServiceStub(channel), model_service_pb2_grpc.ModelServiceStub(channel)


def _example(image: np.ndarray) -> example_pb2.Example:
    return example_pb2.Example.FromString(schema.encode_example({schema.IMAGE: image.astype("<f4").tobytes()}))


def test_rest_status_and_metadata_have_tf_serving_shapes(server):
    status, body = _rest(server, "GET", "/v1/models/hits")
    assert status == 200
    assert body == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    assert _rest(server, "GET", "/v1/models/hits/versions/1")[1] == body
    assert _rest(server, "GET", "/v1/models/hits/labels/stable")[1] == body
    status, meta = _rest(server, "GET", "/v1/models/hits/metadata")
    assert status == 200 and meta["model_spec"] == {"name": "hits", "signature_name": "", "version": "1"}
    sigs = meta["metadata"]["signature_def"]["signature_def"]
    assert set(sigs) == {"serving_default", "predict_examples", "classify"}
    images = sigs["serving_default"]["inputs"]["images"]
    assert images["dtype"] == "DT_FLOAT" and [d["size"] for d in images["tensor_shape"]["dim"]] == ["-1", "-1", "-1"]
    assert sigs["classify"]["method_name"] == "tensorflow/serving/classify"
    assert sigs["serving_default"]["method_name"] == "tensorflow/serving/predict"


def test_rest_predict_row_and_columnar_formats_equal_the_direct_call(server):
    x = _images(3)
    direct = _direct(server, x)
    status, rows = _rest(server, "POST", "/v1/models/hits:predict", {"instances": x.tolist()})
    assert status == 200 and len(rows["predictions"]) == 3
    np.testing.assert_allclose([r["probabilities"] for r in rows["predictions"]], direct["probabilities"], rtol=1e-6)
    assert [r["classes"] for r in rows["predictions"]] == direct["classes"].tolist()
    status, cols = _rest(server, "POST", "/v1/models/hits/versions/1:predict", {"inputs": {"images": x.tolist()}})
    assert status == 200
    np.testing.assert_allclose(cols["outputs"]["single_hit_score"], direct["single_hit_score"], rtol=1e-6)
    records = [{"b64": base64.b64encode(schema.encode_example({schema.IMAGE: im.tobytes()})).decode()} for im in x]
    status, ex = _rest(
        server, "POST", "/v1/models/hits:predict", {"signature_name": "predict_examples", "instances": records}
    )
    assert status == 200
    np.testing.assert_allclose([r["probabilities"] for r in ex["predictions"]], direct["probabilities"], rtol=1e-6)


def test_rest_classify_and_regress(server):
    x = _images(2)
    examples = [{"image": {"b64": base64.b64encode(im.astype("<f4").tobytes()).decode()}} for im in x]
    status, body = _rest(
        server, "POST", "/v1/models/hits:classify", {"signature_name": "classify", "examples": examples}
    )
    assert status == 200 and len(body["result"]) == 2
    assert [c for c, _ in body["result"][0]] == ["none", "single", "double", "triple", "4+"]
    np.testing.assert_allclose(
        [[s for _, s in r] for r in body["result"]], _direct(server, x)["probabilities"], rtol=1e-6
    )
    status, body = _rest(
        server, "POST", "/v1/models/sizes:regress", {"signature_name": "regress", "examples": examples}
    )
    assert status == 200
    np.testing.assert_allclose(body["result"], _direct(server, x, "sizes")["radius_nm"], rtol=1e-6)
    status, body = _rest(server, "POST", "/v1/models/hits:classify", {"examples": examples})  # default: predict
    assert status == 400 and "'classify'" in body["error"]


def test_grpc_with_the_official_stubs(server):
    predict, models = _stubs(server)
    x = _images(2)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hits"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(x))
    reply = predict.Predict(request, timeout=30)
    assert reply.model_spec.version.value == 1 and reply.model_spec.signature_name == "serving_default"
    np.testing.assert_allclose(tf.make_ndarray(reply.outputs["probabilities"]), _direct(server, x)["probabilities"])
    request.output_filter.append("classes")
    assert set(predict.Predict(request, timeout=30).outputs) == {"classes"}

    meta_request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    meta_request.model_spec.name = "sizes"
    meta = predict.GetModelMetadata(meta_request, timeout=30)
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    meta.metadata["signature_def"].Unpack(sig_map)
    assert set(sig_map.signature_def) == {"serving_default", "predict_examples", "regress"}

    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name, classify.model_spec.signature_name = "hits", "classify"
    classify.input.example_list.examples.extend(_example(im) for im in x)
    result = predict.Classify(classify, timeout=30).result.classifications
    assert [c.label for c in result[0].classes][1] == "single"
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name, regress.model_spec.signature_name = "sizes", "regress"
    regress.input.example_list.examples.extend(_example(im) for im in x)
    values = [r.value for r in predict.Regress(regress, timeout=30).result.regressions]
    np.testing.assert_allclose(values, _direct(server, x, "sizes")["radius_nm"], rtol=1e-6)

    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "hits"
    status = models.GetModelStatus(status_request, timeout=30).model_version_status
    assert [(s.version, s.state) for s in status] == [(1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]

    with pytest.raises(grpc.RpcError) as err:
        bad = predict_pb2.PredictRequest()
        bad.model_spec.name = "nope"
        predict.Predict(bad, timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        bad = predict_pb2.PredictRequest()
        bad.model_spec.name = "hits"
        bad.inputs["images"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 8, 8), np.float32)))
        predict.Predict(bad, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "frames must be at least 24x24 pixels (the crop the model was trained on)" in err.value.details()


def test_the_python_client_over_both_transports(server):
    x = _images(2)
    for url in (f"http://127.0.0.1:{server.rest_port}", f"grpc://127.0.0.1:{server.grpc_port}"):
        client = Client(url)
        out = client.predict(x, "hits", label="stable")
        np.testing.assert_allclose(out["probabilities"], _direct(server, x)["probabilities"], rtol=1e-6)
        assert client.status("hits")[0]["version"] in ("1", 1)
        with pytest.raises(ServingClientError, match="NOT_FOUND|404"):
            client.predict(x, "nope")


GOOD = {"instances": _images(1).tolist()}
MALFORMED = [
    ("POST", "/v1/models/hits:predict", b"{not json", 400, "JSON"),
    ("POST", "/v1/models/hits:predict", b"[1, 2]", 400, "JSON object"),
    ("POST", "/v1/models/hits:predict", b'{"instances": [[NaN]]}', 400, "NaN"),
    ("POST", "/v1/models/hits:predict", b"\xff\xfe", 400, "UTF-8"),
    ("POST", "/v1/models/hits:predict", json.dumps({}).encode(), 400, "instances"),
    ("POST", "/v1/models/hits:predict", json.dumps({"instances": [], "inputs": []}).encode(), 400, "not both"),
    ("POST", "/v1/models/hits:predict", json.dumps({"instances": []}).encode(), 400, "non-empty"),
    ("POST", "/v1/models/hits:predict", json.dumps({"instances": [[1, 2], [3]]}).encode(), 400, "ragged"),
    (
        "POST",
        "/v1/models/hits:predict",
        json.dumps({"instances": _images(1)[:, :8].tolist()}).encode(),
        400,
        "at least 24x24",
    ),
    ("POST", "/v1/models/hits:predict", json.dumps({"instances": [[["a"] * 32] * 32]}).encode(), 400, "numbers"),
    ("POST", "/v1/models/hits:predict", json.dumps({"inputs": {"pixels": [1]}}).encode(), 400, "images"),
    ("POST", "/v1/models/hits:predict", json.dumps({"instances": [1], "extra": 1}).encode(), 400, "unknown key"),
    ("POST", "/v1/models/hits:predict", json.dumps({**GOOD, "signature_name": "nope"}).encode(), 400, "nope"),
    ("POST", "/v1/models/hits:predict", json.dumps({**GOOD, "signature_name": 3}).encode(), 400, "string"),
    ("POST", "/v1/models/hits:predict", json.dumps({"instances": [{"b64": "%%%"}]}).encode(), 400, "base64"),
    ("POST", "/v1/models/nope:predict", json.dumps(GOOD).encode(), 404, "nope"),
    ("POST", "/v1/models/hits/versions/7:predict", json.dumps(GOOD).encode(), 404, "7"),
    ("POST", "/v1/models/hits/versions/x:predict", json.dumps(GOOD).encode(), 400, "integer"),
    ("POST", "/v1/models/hits/labels/canary:predict", json.dumps(GOOD).encode(), 404, "canary"),
    ("POST", "/v1/models/hits:explain", json.dumps(GOOD).encode(), 404, "explain"),
    ("GET", "/v1/models/nope", None, 404, "nope"),
    ("GET", "/v2/whatever", None, 404, "Malformed"),
    ("POST", "/v1/models/hits:classify", json.dumps({"examples": "x"}).encode(), 400, "examples"),
    (
        "POST",
        "/v1/models/sizes:classify",
        json.dumps({"signature_name": "regress", "examples": [{"a": 1}]}).encode(),
        400,
        "classify",
    ),
    (
        "POST",
        "/v1/models/hits:classify",
        json.dumps({"signature_name": "classify", "examples": [{"a": [1, "x"]}]}).encode(),
        400,
        "flat list",
    ),
    (
        "POST",
        "/v1/models/hits:classify",
        json.dumps({"signature_name": "classify", "examples": [{"a": 1}]}).encode(),
        400,
        "classify",
    ),
    ("POST", "/v1/models/hits:predict", b"x" * (2**20 + 1), 413, "exceeds"),
]


@pytest.mark.parametrize("method,path,raw,code,words", MALFORMED, ids=[f"{i:02d}" for i in range(len(MALFORMED))])
def test_malformed_requests_get_clear_errors_and_the_server_keeps_serving(server, method, path, raw, code, words):
    status, body = _rest(server, method, path, raw=raw)
    assert status == code, body
    assert isinstance(body, dict) and set(body) == {"error"} and words.lower() in body["error"].lower()
    assert _rest(server, "POST", "/v1/models/hits:predict", GOOD)[0] == 200


def test_metrics_endpoint_counts_requests(server):
    _rest(server, "POST", "/v1/models/hits:predict", GOOD)
    status, text = _rest(server, "GET", "/monitoring/prometheus/metrics")
    text = text.decode()
    assert (
        status == 200 and ':tensorflow:serving:request_count{model_name="hits",api="rest_predict",status="OK"}' in text
    )
    assert ':spizoo:serving:loaded_versions{model_name="hits"} 1' in text


def test_load_while_a_new_version_is_picked_up_and_config_reload(server, runs):
    """16 concurrent clients (REST and gRPC) keep sending while version 2 is exported, loaded and swapped in.

    The load starts on version 1, runs through the export and until the server reports version 2, and for a
    while after; gRPC replies name the version that answered (``model_spec.version``): version 1 before the
    swap, version 2 for every request sent after the server reported it, with zero failures. Each client
    pauses ``pace`` s between requests so that the export, in this process too, is not starved on 2 cores.
    """
    clients, pace, max_requests, budget_s, after_s, after_each = 16, 0.1, 3000, 120.0, 1.0, 10
    x = _images(1)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hits"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(x))
    stop = threading.Event()
    deadline = time.monotonic() + budget_s
    failures = []
    answers = [[] for _ in range(clients)]  # per client: (sent, received, version; None over REST)

    def client(i: int):
        rest = Client(f"http://127.0.0.1:{server.rest_port}") if i % 2 else None
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for _ in range(max_requests):
                if stop.is_set() or time.monotonic() > deadline:
                    return
                sent = time.monotonic()
                try:
                    if rest is not None:
                        version, probabilities = None, rest.predict(x, "hits")["probabilities"]
                    else:
                        reply = predict.Predict(request, timeout=30)
                        version = reply.model_spec.version.value
                        probabilities = tf.make_ndarray(reply.outputs["probabilities"])
                    assert probabilities.shape == (1, 5)
                    answers[i].append((sent, time.monotonic(), version))
                except Exception as err:  # noqa: BLE001 - every failure is counted
                    failures.append(repr(err))
                stop.wait(pace)

    def wait_until(condition) -> bool:
        while not condition():
            if time.monotonic() > deadline or failures:
                return False
            time.sleep(0.02)
        return True

    watcher = Client(f"http://127.0.0.1:{server.rest_port}")
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    try:
        for t in threads:
            t.start()
        assert wait_until(lambda: all(len(a) >= 5 for a in answers)), failures[:3] or "load did not start"
        assert [r["version"] for r in watcher.status("hits")] == ["1"]
        export_started = time.monotonic()
        export_run(runs["hits"][0], server.base, "hits")  # version 2 lands while the load runs
        assert wait_until(lambda: "2" in [str(r["version"]) for r in watcher.status("hits")]), (
            failures[:3] or "version 2 not reported"
        )
        swapped = time.monotonic()  # every request sent after this must be answered by version 2

        def after_swap(a):
            return sum(sent > swapped for sent, _, _ in a)

        wait_until(lambda: time.monotonic() > swapped + after_s and all(after_swap(a) >= after_each for a in answers))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=max(1.0, deadline + 30 - time.monotonic()))
    assert not any(t.is_alive() for t in threads)
    assert not failures, failures[:3]
    assert time.monotonic() < deadline, "the load ran into its time bound"
    assert all(len(a) < max_requests for a in answers), "a client ran out of requests before the load was stopped"
    # Every client, REST and gRPC, was answered before the export started and after version 2 was reported.
    assert all(a[0][1] < export_started and after_swap(a) >= after_each for a in answers)
    for a in answers[::2]:  # gRPC: the version that answered each request
        versions = [v for _, _, v in a]
        assert versions == sorted(versions) and set(versions) == {1, 2}  # the swap within each client's stream
        assert all(v == 2 for sent, _, v in a if sent > swapped)
        assert any(v == 1 and received > export_started for _, received, v in a)  # v1 served during the export
    served = [v for a in answers[::2] for _, _, v in a]
    print(
        f"\nload: {sum(map(len, answers))} answers, {served.count(1)} gRPC by version 1, {served.count(2)} by"
        f" version 2; export + load of version 2 took {swapped - export_started:.1f} s"
    )
    versions = [r["version"] for r in server.manager.status("hits")]
    assert versions == ["2", "1"]  # latest two, as models.config says

    # ModelService.HandleReloadConfigRequest: serve only "sizes" from now on.
    _, models = _stubs(server)
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.extend([c for c in _config_protos(server.base) if c.name == "sizes"])
    models.HandleReloadConfigRequest(request, timeout=30)
    assert _rest(server, "GET", "/v1/models/hits")[0] == 404
    assert _rest(server, "GET", "/v1/models/sizes")[0] == 200


def _config_protos(base):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((base / "models.config").read_text(), config)
    return list(config.model_config_list.config)


def test_server_side_batching_gives_the_same_answers(exported):
    manager = manager_from_args(
        None, "hits", str(exported / "hits"), poll_seconds=0, batching=BatchingParameters(max_batch_size=8)
    )
    with Server(manager, rest_port=None, grpc_port=0) as s:
        client = Client(f"grpc://127.0.0.1:{s.grpc_port}")
        inputs = [_images(1, seed=i) for i in range(24)]
        results = [None] * 24

        def call(i):
            results[i] = client.predict(inputs[i], "hits")["probabilities"]

        threads = [threading.Thread(target=call, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        direct = manager.get("hits").signatures["serving_default"](images=tf.constant(np.concatenate(inputs)))
        np.testing.assert_allclose(np.concatenate(results), direct["probabilities"].numpy(), rtol=1e-5, atol=1e-6)


def test_batching_parameters_file(tmp_path):
    path = tmp_path / "batching.config"
    path.write_text("max_batch_size { value: 16 }\nbatch_timeout_micros { value: 500 }  # comment\n")
    assert read_batching_parameters(path) == BatchingParameters(max_batch_size=16, batch_timeout_micros=500)
    path.write_text("max_batch_sise { value: 16 }\n")
    with pytest.raises(ValueError, match="unknown batching parameter 'max_batch_sise'"):
        read_batching_parameters(path)
    path.write_text("max_batch_size: 16\n")
    with pytest.raises(ValueError, match="cannot parse"):
        read_batching_parameters(path)


def test_model_config_errors_name_the_file(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("model_config_list { config { nam: 'x' } }")
    with pytest.raises(ValueError, match="models.config"):
        read_model_config(path)
    with pytest.raises(FileNotFoundError, match="base path"):
        manager_from_args(None, "x", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="not both"):
        manager_from_args(str(path), "x", None)
