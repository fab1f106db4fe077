"""TF Serving's gRPC API: ``PredictionService`` (Predict, GetModelMetadata, Classify, Regress) and
``ModelService`` (GetModelStatus, HandleReloadConfigRequest), on the service definitions shipped in
``tensorflow-serving-api``."""

from __future__ import annotations

import time
from concurrent import futures

import grpc
import numpy as np
from google.protobuf.message import DecodeError
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


def _calls(metrics, api: str, request_class):
    """Wraps a servicer method: a request given as bytes is parsed (bytes that are not a ``request_class``
    message → INVALID_ARGUMENT); ServingError → its gRPC status; anything else → INTERNAL; metrics."""

    def wrap(method):
        def call(self, request, context):
            start = time.perf_counter()
            model = "-"
            try:
                if isinstance(request, bytes):
                    request = _parse(request, request_class)
                model = getattr(getattr(request, "model_spec", None), "name", "-") or "-"
                reply = method(self, request, context)
                metrics.record(model, f"grpc_{api}", "OK", time.perf_counter() - start)
                return reply
            except Exception as err:
                e = err if isinstance(err, ServingError) else unexpected(err)
                metrics.record(model, f"grpc_{api}", e.code, time.perf_counter() - start)
                context.abort(grpc.StatusCode[e.code], e.message)

        return call

    return wrap


def _parse(raw: bytes, request_class):
    try:
        return request_class.FromString(raw)
    except (DecodeError, RecursionError, ValueError) as err:
        name = request_class.DESCRIPTOR.full_name
        raise invalid(f"the request ({len(raw)} bytes) is not a valid {name} message: {err}") from None


def tensor_to_ndarray(key: str, proto, max_bytes: int) -> np.ndarray:
    """A request's ``TensorProto`` as a numpy array, checked before anything is allocated: a known dtype, a
    fully defined shape without negative sizes, at most ``max_bytes`` of data, and ``tensor_content`` (or
    the typed values) that fit the shape.

    Raises:
        ServingError: INVALID_ARGUMENT naming the input and what is wrong; UNIMPLEMENTED for a dtype that
            cannot be sent (resource, variant, reference types).
    """
    import tensorflow as tf  # TensorFlow loads in seconds: only when used

    try:
        dtype = tf.dtypes.as_dtype(proto.dtype)
    except TypeError:
        raise invalid(f"input {key!r}: dtype {proto.dtype} is not a TensorFlow DataType") from None
    if dtype.base_dtype != dtype or not dtype.is_numpy_compatible:
        raise ServingError("UNIMPLEMENTED", f"input {key!r}: tensors of dtype {dtype.name} cannot be sent")
    if proto.tensor_shape.unknown_rank:
        raise invalid(f"input {key!r}: the tensor_shape has an unknown rank; send a fully defined shape")
    shape = [d.size for d in proto.tensor_shape.dim]
    if any(n < 0 for n in shape):
        raise invalid(f"input {key!r}: tensor_shape {shape} has a negative dimension")
    elements = 1
    for n in shape:
        elements *= n
    itemsize = np.dtype(dtype.as_numpy_dtype).itemsize  # 8 (a reference) for strings
    if elements * itemsize > max_bytes:
        raise invalid(
            f"input {key!r}: shape {shape} of {dtype.name} is {elements * itemsize} bytes, over the server's "
            f"limit of {max_bytes} bytes per request"
        )
    if proto.tensor_content:
        if dtype == tf.string:
            raise invalid(f"input {key!r}: a string tensor cannot use tensor_content; send string_val")
        if len(proto.tensor_content) != elements * itemsize:
            raise invalid(
                f"input {key!r}: tensor_content holds {len(proto.tensor_content)} bytes; shape {shape} of "
                f"{dtype.name} needs {elements * itemsize}"
            )
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError, OverflowError, KeyError) as err:
        raise invalid(f"input {key!r}: the {dtype.name} values do not fit tensor_shape {shape} ({err})") from None


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


def add_services(server: grpc.Server, manager: ModelManager, metrics, *, max_tensor_bytes: int = 64 * 2**20) -> None:
    """Registers both services on ``server``. Requests are parsed by the services, so that bytes that are not
    the method's message get INVALID_ARGUMENT (gRPC's own parsing would answer INTERNAL); a request's tensors
    may hold at most ``max_tensor_bytes`` each."""
    import tensorflow as tf  # TensorFlow loads in seconds: only when used

    class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        @_calls(metrics, "predict", predict_pb2.PredictRequest)
        def Predict(self, request, context):  # noqa: N802 - gRPC method names
            served = _served(manager, request.model_spec)
            signature = request.model_spec.signature_name or "serving_default"
            inputs = {key: tensor_to_ndarray(key, proto, max_tensor_bytes) for key, proto in request.inputs.items()}
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

        @_calls(metrics, "metadata", get_model_metadata_pb2.GetModelMetadataRequest)
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

        @_calls(metrics, "classify", classification_pb2.ClassificationRequest)
        def Classify(self, request, context):  # noqa: N802
            served, signature, outputs = _run_examples(manager, request, CLASSIFY_METHOD)
            reply = classification_pb2.ClassificationResponse()
            _spec_out(reply.model_spec, served, signature)
            for classes, scores in zip(outputs["classes"], outputs["scores"], strict=True):
                row = reply.result.classifications.add()
                for c, s in zip(classes, scores, strict=True):
                    row.classes.add(label=c.decode(), score=float(s))
            return reply

        @_calls(metrics, "regress", regression_pb2.RegressionRequest)
        def Regress(self, request, context):  # noqa: N802
            served, signature, outputs = _run_examples(manager, request, REGRESS_METHOD)
            reply = regression_pb2.RegressionResponse()
            _spec_out(reply.model_spec, served, signature)
            for value in np.asarray(outputs["outputs"], float).reshape(-1):
                reply.result.regressions.add(value=value)
            return reply

    class Models(model_service_pb2_grpc.ModelServiceServicer):
        @_calls(metrics, "status", get_model_status_pb2.GetModelStatusRequest)
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

        @_calls(metrics, "reload_config", model_management_pb2.ReloadConfigRequest)
        def HandleReloadConfigRequest(self, request, context):  # noqa: N802
            try:
                specs = [spec_from_proto(c, manager.model_root) for c in request.config.model_config_list.config]
            except ValueError as err:
                raise invalid(str(err)) from None
            manager.reload(specs)
            return model_management_pb2.ReloadConfigResponse()

    prediction, models = Prediction(), Models()
    _register(
        server,
        "tensorflow.serving.PredictionService",
        {
            "Predict": (prediction.Predict, predict_pb2.PredictResponse),
            "GetModelMetadata": (prediction.GetModelMetadata, get_model_metadata_pb2.GetModelMetadataResponse),
            "Classify": (prediction.Classify, classification_pb2.ClassificationResponse),
            "Regress": (prediction.Regress, regression_pb2.RegressionResponse),
        },
    )
    _register(
        server,
        "tensorflow.serving.ModelService",
        {
            "GetModelStatus": (models.GetModelStatus, get_model_status_pb2.GetModelStatusResponse),
            "HandleReloadConfigRequest": (models.HandleReloadConfigRequest, model_management_pb2.ReloadConfigResponse),
        },
    )


def _register(server: grpc.Server, service: str, methods: dict) -> None:
    """The methods of ``service`` as handlers that receive the request's bytes (parsed by the method)."""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(call, response_serializer=reply.SerializeToString)
        for name, (call, reply) in methods.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))


def make_server(max_workers: int, max_message_bytes: int) -> grpc.Server:
    options = [("grpc.max_receive_message_length", max_message_bytes)]
    return grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=options)
