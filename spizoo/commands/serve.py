"""``spizoo serve``: exported models over TF Serving's REST and gRPC APIs."""

from __future__ import annotations

import argparse
import signal
import threading

from spizoo.serving.batching import BatchingParameters, read_batching_parameters
from spizoo.serving.server import Server, manager_from_args

DESCRIPTION = """\
    Serve the models of a models.config (or one --model-name/--model-base-path) as TF Serving does:
    REST on --rest-api-port (/v1/models/NAME[:predict|:classify|:regress|/metadata]), gRPC
    PredictionService and ModelService on --port, Prometheus metrics at
    /monitoring/prometheus/metrics. New versions under a base path are loaded while serving.
    Stop with Ctrl-C.

    example:
      spizoo serve --model-config-file out/models/models.config --rest-api-port 8501 --port 8500
      curl -d '{"instances": [[[0, 1], [2, 3]]]}' localhost:8501/v1/models/hits:predict
    """


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-config-file", help="models.config (text ModelServerConfig)")
    parser.add_argument("--model-name", help="name of the one model served from --model-base-path")
    parser.add_argument("--model-base-path", help="directory of numbered SavedModel versions")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (default 8500)")
    parser.add_argument("--rest-api-port", type=int, default=8501, help="REST port (default 8501)")
    parser.add_argument("--enable-batching", action="store_true", help="batch concurrent requests on the server")
    parser.add_argument("--batching-parameters-file", help="TF Serving batching parameters (text proto)")
    parser.add_argument(
        "--file-system-poll-wait-seconds", type=float, default=1.0, help="how often base paths are polled (0: never)"
    )
    parser.add_argument("--max-body-bytes", type=int, default=64 * 2**20, help="largest request accepted")


def run(args: argparse.Namespace) -> dict:
    batching = None
    if args.enable_batching:
        batching = (
            read_batching_parameters(args.batching_parameters_file)
            if args.batching_parameters_file
            else BatchingParameters()
        )
    elif args.batching_parameters_file:
        raise ValueError("--batching-parameters-file needs --enable-batching")
    manager = manager_from_args(
        args.model_config_file,
        args.model_name,
        args.model_base_path,
        poll_seconds=args.file_system_poll_wait_seconds,
        batching=batching,
    )
    server = Server(
        manager, host=args.host, rest_port=args.rest_api_port, grpc_port=args.port, max_body_bytes=args.max_body_bytes
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with server:
        loaded = {name: sorted(v) for name, v in manager.loaded.items()}
        print(
            f"spizoo serve: versions {loaded} on REST http://{args.host}:{server.rest_port} "
            f"and gRPC {args.host}:{server.grpc_port}" + (" with batching" if batching else ""),
            flush=True,
        )
        stop.wait()
    return {"served": loaded}


def summary_line(summary: dict) -> str:
    return "stopped"
