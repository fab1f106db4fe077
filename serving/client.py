"""A client for TF Serving and ``spizoo serve``: REST (``http://host:8501``) or gRPC (``grpc://host:8500``)."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

import numpy as np


class ServingClientError(RuntimeError):
    """The server answered with an error (its status and message), or could not be reached.

    ``bad_input`` is true when the server refused the request's inputs (HTTP 400, ``INVALID_ARGUMENT``): the
    data's fault, not the server's.
    """

    def __init__(self, message: str, *, bad_input: bool = False):
        super().__init__(message)
        self.bad_input = bad_input


class Client:
    """``Client(url).predict(images, model="hits")`` → dict of numpy outputs.

    Args:
        url: ``http://host:port`` for REST, ``grpc://host:port`` for gRPC.
        timeout: seconds per request.
    """

    def __init__(self, url: str, timeout: float = 60.0):
        self.url, self.timeout = url.rstrip("/"), timeout
        if self.url.startswith("grpc://"):
            import grpc  # only for gRPC URLs
            from tensorflow_serving.apis import (  # TensorFlow's protos: only when used
                model_service_pb2_grpc,
                prediction_service_pb2_grpc,
            )

            self._channel = grpc.insecure_channel(
                self.url[len("grpc://") :],
                options=[
                    ("grpc.max_receive_message_length", 2**30),
                    # a restarted server is used within a second, not after an exponential backoff of minutes
                    ("grpc.initial_reconnect_backoff_ms", 200),
                    ("grpc.min_reconnect_backoff_ms", 200),
                    ("grpc.max_reconnect_backoff_ms", 1000),
                ],
            )
            self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
            self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        elif not self.url.startswith(("http://", "https://")):
            raise ValueError(f"server URL must start with http://, https:// or grpc://, got {url!r}")

    @property
    def is_grpc(self) -> bool:
        return self.url.startswith("grpc://")

    def predict(
        self,
        inputs: np.ndarray | dict[str, np.ndarray],
        model: str,
        *,
        signature: str = "serving_default",
        version: int | None = None,
        label: str | None = None,
        input_name: str = "images",
    ) -> dict[str, np.ndarray]:
        """Runs ``signature`` on ``inputs`` (an array for the input ``input_name``, or a dict of them)."""
        if not isinstance(inputs, dict):
            inputs = {input_name: inputs}
        if self.is_grpc:
            import grpc  # only for gRPC URLs
            import tensorflow as tf  # TensorFlow loads in seconds: only when used
            from tensorflow_serving.apis import predict_pb2  # TensorFlow's protos: only when used

            request = predict_pb2.PredictRequest()
            self._spec(request.model_spec, model, version, label, signature)
            for k, v in inputs.items():
                request.inputs[k].CopyFrom(tf.make_tensor_proto(np.asarray(v)))
            try:
                reply = self._predict.Predict(request, timeout=self.timeout)
            except grpc.RpcError as err:
                where = f" (model server at {self.url})" if err.code() == grpc.StatusCode.UNAVAILABLE else ""
                bad = err.code() == grpc.StatusCode.INVALID_ARGUMENT
                raise ServingClientError(f"{err.code().name}: {err.details()}{where}", bad_input=bad) from None
            return {k: tf.make_ndarray(v) for k, v in reply.outputs.items()}
        body = {"signature_name": signature, "inputs": {k: np.asarray(v).tolist() for k, v in inputs.items()}}
        reply = self._rest("POST", f"{self._path(model, version, label)}:predict", body)["outputs"]
        if not isinstance(reply, dict):
            return {"output": np.asarray(reply)}
        return {k: np.asarray(v) for k, v in reply.items()}

    def status(self, model: str, version: int | None = None, label: str | None = None) -> list[dict]:
        """The model's version statuses (REST JSON shape on both transports)."""
        if self.is_grpc:
            from google.protobuf import json_format  # with the TF Serving protos below, only when used
            from tensorflow_serving.apis import get_model_status_pb2  # TensorFlow's protos: only when used

            request = get_model_status_pb2.GetModelStatusRequest()
            self._spec(request.model_spec, model, version, label, None)
            reply = self._models.GetModelStatus(request, timeout=self.timeout)
            return json_format.MessageToDict(reply, preserving_proto_field_name=True)["model_version_status"]
        return self._rest("GET", self._path(model, version, label))["model_version_status"]

    def metadata(self, model: str, version: int | None = None) -> dict:
        """The REST metadata body (``model_spec`` and ``metadata.signature_def``)."""
        return self._rest("GET", f"{self._path(model, version, None)}/metadata")

    @staticmethod
    def _spec(spec, model, version, label, signature) -> None:
        spec.name = model
        if version is not None:
            spec.version.value = version
        if label is not None:
            spec.version_label = label
        if signature:
            spec.signature_name = signature

    @staticmethod
    def _path(model: str, version: int | None, label: str | None) -> str:
        path = f"/v1/models/{model}"
        if version is not None:
            path += f"/versions/{version}"
        elif label is not None:
            path += f"/labels/{label}"
        return path

    def _rest(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                return json.loads(reply.read())  # IncompleteRead if the answer is shorter than its Content-Length
        except urllib.error.HTTPError as err:
            message = err.read().decode(errors="replace")
            try:
                message = json.loads(message)["error"]
            except (ValueError, KeyError, TypeError):
                pass
            raise ServingClientError(f"HTTP {err.code}: {message}", bad_input=err.code == 400) from None
        except (urllib.error.URLError, OSError) as err:  # refused, unreachable, timed out
            reason = getattr(err, "reason", err)
            raise ServingClientError(f"cannot reach the model server at {self.url}: {reason}") from None
        except (http.client.HTTPException, ValueError) as err:  # cut off, or not JSON: never taken as an answer
            raise ServingClientError(
                f"the model server at {self.url} sent an incomplete or malformed answer: {type(err).__name__}: {err}"
            ) from None
