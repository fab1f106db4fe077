"""``spizoo serve``: the REST and gRPC endpoints of TF Serving over one :class:`ModelManager`."""

from __future__ import annotations

import threading
from pathlib import Path

from spizoo.serving.batching import BatchingParameters
from spizoo.serving.export import METRICS_PATH
from spizoo.serving.metrics import Metrics
from spizoo.serving.models import ModelManager, ModelSpec, check_name, read_model_config
from spizoo.serving.rest import IDLE_TIMEOUT_S, MAX_CONNECTIONS, REQUEST_TIMEOUT_S

MAX_BODY_BYTES = 64 * 2**20


class Server:
    """Serves ``manager``'s models on ``host``: REST on ``rest_port``, gRPC on ``grpc_port`` (0: any free
    port; the bound ports are ``self.rest_port`` and ``self.grpc_port``; ``None``: that endpoint is off).

    Limits: a request over ``max_body_bytes`` is refused (REST 413, gRPC RESOURCE_EXHAUSTED), as is a gRPC
    tensor that would take more memory; REST connections idle for ``idle_timeout_s`` are closed, a request
    not received within ``request_timeout_s`` gets 408, and beyond ``max_connections`` a new one gets 503.
    """

    def __init__(
        self,
        manager: ModelManager,
        *,
        host: str = "127.0.0.1",
        rest_port: int | None = 8501,
        grpc_port: int | None = 8500,
        max_body_bytes: int = MAX_BODY_BYTES,
        metrics_path: str | None = METRICS_PATH,
        grpc_workers: int = 32,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ):
        from spizoo.serving import grpc_api, rest  # TF Serving's protos load TensorFlow: only when serving

        self.manager = manager
        self.metrics = Metrics()
        self.rest = self.grpc = None
        self.rest_port = self.grpc_port = None
        if rest_port is not None:
            self.rest = rest.RestServer(
                (host, rest_port),
                manager,
                self.metrics,
                max_body_bytes=max_body_bytes,
                metrics_path=metrics_path,
                idle_timeout_s=idle_timeout_s,
                request_timeout_s=request_timeout_s,
                max_connections=max_connections,
            )
            self.rest_port = self.rest.server_address[1]
        if grpc_port is not None:
            self.grpc = grpc_api.make_server(grpc_workers, max_body_bytes)
            grpc_api.add_services(self.grpc, manager, self.metrics, max_tensor_bytes=max_body_bytes)
            self.grpc_port = self.grpc.add_insecure_port(f"{host}:{grpc_port}")
            if not self.grpc_port:
                raise OSError(f"cannot bind gRPC to {host}:{grpc_port}")
        self._rest_thread: threading.Thread | None = None

    def start(self) -> Server:
        self.manager.start()
        if self.grpc is not None:
            self.grpc.start()
        if self.rest is not None:
            self._rest_thread = threading.Thread(target=self.rest.serve_forever, daemon=True)
            self._rest_thread.start()
        return self

    def stop(self) -> None:
        if self.rest is not None:
            self.rest.shutdown()
            self.rest.server_close()
        if self.grpc is not None:
            self.grpc.stop(grace=2).wait()
        self.manager.stop()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def manager_from_args(
    model_config_file: str | None,
    model_name: str | None,
    model_base_path: str | None,
    *,
    poll_seconds: float = 1.0,
    batching: BatchingParameters | None = None,
) -> ModelManager:
    """A manager for ``--model_config_file`` or for ``--model_name`` with ``--model_base_path``. Its model root
    (what a reload request may serve from) is the directory of the config file, or the one base path."""
    if model_config_file:
        if model_name or model_base_path:
            raise ValueError("give --model-config-file or --model-name with --model-base-path, not both")
        specs = read_model_config(model_config_file)
        root = Path(model_config_file).parent
    elif model_base_path:
        specs = [ModelSpec(check_name(model_name or "default"), Path(model_base_path))]
        root = Path(model_base_path)
    else:
        raise ValueError("give --model-config-file, or --model-base-path (with --model-name)")
    if not specs:
        raise ValueError(f"{model_config_file}: the model_config_list lists no models")
    for spec in specs:
        if not spec.base_path.is_dir():
            raise FileNotFoundError(f"model {spec.name}: base path {spec.base_path} is not a directory")
    return ModelManager(specs, poll_seconds=poll_seconds, batching=batching, model_root=root)
