"""TF Serving's gRPC API: ``PredictionService`` (Predict, GetModelMetadata, Classify, Regress) and
``ModelService`` (GetModelStatus, HandleReloadConfigRequest), on the service definitions shipped in
``tensorflow-serving-api``."""

from __future__ import annotations

import time
from concurrent import futures

import grpc
import numpy as np
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

from spizoo.serving.errors import ServingError, invalid
from spizoo.serving.export import CLASSIFY_METHOD, REGRESS_METHOD
from spizoo.serving.models import ModelManager, spec_from_proto, unexpected


def _served(manager: ModelManager, spec):
    version = spec.version.value if spec.HasField("version") else None
    return manager.get(spec.name, version, spec.version_label or None)


def _spec_out(target, served, signature: str) -> None:
    target.name = served.name
    target.version.value = served.version
    target.signature_name = signature


def _calls(metrics, api: str):
    """Wraps a servicer method: ServingError → its gRPC status; anything else → INTERNAL; metrics."""

    def wrap(method):
        def call(self, request, context):
            start = time.perf_counter()
            model = getattr(getattr(request, "model_spec", None), "name", "-") or "-"
            try:
                reply = method(self, request, context)
                metrics.record(model, f"grpc_{api}", "OK", time.perf_counter() - start)
                return reply
            except Exception as err:
                e = err if isinstance(err, ServingError) else unexpected(err)
                metrics.record(model, f"grpc_{api}", e.code, time.perf_counter() - start)
                context.abort(grpc.StatusCode[e.code], e.message)

        return call

    return wrap


def _examples(request) -> np.ndarray:
    kind = request.input.WhichOneof("kind")
    if kind != "example_list":
        raise ServingError("UNIMPLEMENTED", f"input kind {kind!r} is not supported; send an example_list")
    examples = request.input.example_list.examples
    if not examples:
        raise invalid("the example_list is empty")
    return np.array([e.SerializeToString() for e in examples], dtype=object)


def _run_examples(manager: ModelManager, request, method: str):
    """(version, signature, outputs) of a Classify or Regress request, whose signature must have ``method``."""
    served = _served(manager, request.model_spec)
    signature = request.model_spec.signature_name or "serving_default"
    served.input_specs(signature)
    if served.method(signature) != method:
        raise invalid(f"Expected signature method_name to be {method}. Was: {served.method(signature)}")
    return served, signature, served.run(signature, {"inputs": _examples(request)})


def add_services(server: grpc.Server, manager: ModelManager, metrics) -> None:
    """Registers both services on ``server``."""
    import tensorflow as tf  # TensorFlow loads in seconds: only when used

    class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        @_calls(metrics, "predict")
        def Predict(self, request, context):  # noqa: N802 - gRPC method names
            served = _served(manager, request.model_spec)
            signature = request.model_spec.signature_name or "serving_default"
            inputs = {}
            for key, proto in request.inputs.items():
                try:
                    inputs[key] = tf.make_ndarray(proto)
                except TypeError as err:
                    raise ServingError("UNIMPLEMENTED", f"input {key!r}: unsupported tensor dtype ({err})") from None
            outputs = served.run(signature, inputs)
            wanted = list(request.output_filter) or list(outputs)
            unknown = sorted(set(wanted) - set(outputs))
            if unknown:
                raise invalid(f"output_filter names unknown outputs {unknown}; the signature has {sorted(outputs)}")
            reply = predict_pb2.PredictResponse()
            _spec_out(reply.model_spec, served, signature)
            for key in wanted:
                reply.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
            return reply

        @_calls(metrics, "metadata")
        def GetModelMetadata(self, request, context):  # noqa: N802
            if list(request.metadata_field) != ["signature_def"]:
                raise invalid(f"metadata_field must be ['signature_def'], got {list(request.metadata_field)}")
            served = _served(manager, request.model_spec)
            sig_map = get_model_metadata_pb2.SignatureDefMap()
            for key, sig in served.signature_defs.items():
                if not key.startswith("__"):
                    sig_map.signature_def[key].CopyFrom(sig)
            reply = get_model_metadata_pb2.GetModelMetadataResponse()
            _spec_out(reply.model_spec, served, "")
            reply.metadata["signature_def"].Pack(sig_map)
            return reply

        @_calls(metrics, "classify")
        def Classify(self, request, context):  # noqa: N802
            served, signature, outputs = _run_examples(manager, request, CLASSIFY_METHOD)
            reply = classification_pb2.ClassificationResponse()
            _spec_out(reply.model_spec, served, signature)
            for classes, scores in zip(outputs["classes"], outputs["scores"], strict=True):
                row = reply.result.classifications.add()
                for c, s in zip(classes, scores, strict=True):
                    row.classes.add(label=c.decode(), score=float(s))
            return reply

        @_calls(metrics, "regress")
        def Regress(self, request, context):  # noqa: N802
            served, signature, outputs = _run_examples(manager, request, REGRESS_METHOD)
            reply = regression_pb2.RegressionResponse()
            _spec_out(reply.model_spec, served, signature)
            for value in np.asarray(outputs["outputs"], float).reshape(-1):
                reply.result.regressions.add(value=value)
            return reply

    class Models(model_service_pb2_grpc.ModelServiceServicer):
        @_calls(metrics, "status")
        def GetModelStatus(self, request, context):  # noqa: N802
            spec = request.model_spec
            version = spec.version.value if spec.HasField("version") else None
            rows = manager.status(spec.name, version, spec.version_label or None)
            reply = get_model_status_pb2.GetModelStatusResponse()
            for row in rows:
                status = reply.model_version_status.add(version=int(row["version"]))
                status.state = get_model_status_pb2.ModelVersionStatus.State.Value(row["state"])
                status.status.error_message = row["status"]["error_message"]
                if row["status"]["error_code"] != "OK":
                    status.status.error_code = 2  # UNKNOWN
            return reply

        @_calls(metrics, "reload_config")
        def HandleReloadConfigRequest(self, request, context):  # noqa: N802
            try:
                specs = [spec_from_proto(c) for c in request.config.model_config_list.config]
            except ValueError as err:
                raise invalid(str(err)) from None
            manager.reload(specs)
            return model_management_pb2.ReloadConfigResponse()

    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Prediction(), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(Models(), server)


def make_server(max_workers: int, max_message_bytes: int) -> grpc.Server:
    options = [("grpc.max_receive_message_length", max_message_bytes)]
    return grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=options)
