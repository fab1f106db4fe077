"""``spizoo serve``: exported models over TF Serving's REST and gRPC APIs."""

from __future__ import annotations

import argparse
import errno
import signal
import threading
from pathlib import Path

from spizoo.commands._common import input_dir, input_file
from spizoo.serving.batching import BatchingParameters, read_batching_parameters
from spizoo.serving.export import MODELS_CONFIG, versions
from spizoo.serving.models import read_model_config
from spizoo.serving.rest import IDLE_TIMEOUT_S, MAX_CONNECTIONS, REQUEST_TIMEOUT_S
from spizoo.serving.server import Server, manager_from_args

DESCRIPTION = """\
    Serve the models of a models.config (or one --model-name/--model-base-path) as TF Serving does:
    REST on --rest-api-port (/v1/models/NAME[:predict|:classify|:regress|/metadata]), gRPC
    PredictionService and ModelService on --port, Prometheus metrics at
    /monitoring/prometheus/metrics. New versions under a base path are loaded while serving.
    Stop with Ctrl-C.

    example:
      spizoo serve --model-config-file out/models/models.config --rest-api-port 8501 --port 8500
      # then, in a second terminal:
      curl -s localhost:8501/v1/models/hits             # its versions and their state
      curl -s localhost:8501/v1/models/hits/metadata    # its signatures: inputs and outputs
      spizoo predict out/sim/patterns.cxi --server http://127.0.0.1:8501 --model hits
    """


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-config-file", help="models.config (text ModelServerConfig) that spizoo export writes into BASE_PATH"
    )
    parser.add_argument("--model-name", help="name of the one model served from --model-base-path (default: default)")
    parser.add_argument(
        "--model-base-path", help="directory of numbered SavedModel versions: BASE_PATH/NAME of spizoo export"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind; 127.0.0.1 is this machine only")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port")
    parser.add_argument("--rest-api-port", type=int, default=8501, help="REST port")
    parser.add_argument("--enable-batching", action="store_true", help="batch concurrent requests on the server")
    parser.add_argument(
        "--batching-parameters-file",
        help="TF Serving batching parameters (text proto; default: spizoo's, with --enable-batching)",
    )
    parser.add_argument(
        "--file-system-poll-wait-seconds", type=float, default=1.0, help="how often base paths are polled (0: never)"
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=64 * 2**20,
        help="largest request accepted, in bytes (default: 64 MiB, %(default)s)",
    )
    parser.add_argument(
        "--rest-idle-timeout-seconds",
        type=_positive(float),
        default=IDLE_TIMEOUT_S,
        help="a REST connection idle this long between requests is closed (default: %(default)s)",
    )
    parser.add_argument(
        "--rest-request-timeout-seconds",
        type=_positive(float),
        default=REQUEST_TIMEOUT_S,
        help="a REST request (line, headers, body) not received within this of its first byte gets 408 "
        "(default: %(default)s; raise it for large frames over slow links)",
    )
    parser.add_argument(
        "--rest-max-connections",
        type=_positive(int),
        default=MAX_CONNECTIONS,
        help="open REST connections at most; one more gets 503 at once (default: %(default)s)",
    )


def _positive(kind):
    """An argparse type: a number of ``kind`` above zero, else the usage error naming the value."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


EXPORT_HINT = "`spizoo export RUN --name NAME --base-path BASE_PATH` writes one"


def check_base_path(path: str | Path, name: str) -> Path:
    """A model's base path as an exported one (numbered versions, perhaps none yet); a training run, a single
    version or an export directory of several models is refused, saying what to give instead.

    Raises:
        FileNotFoundError, NotADirectoryError, ValueError: with a message for the terminal.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model {name}: base path {path} is not a directory (nothing is there); {EXPORT_HINT}")
    input_dir(path, f"model {name}: base path", hint=EXPORT_HINT)
    if any((path / f).exists() for f in ("best.keras", "last.keras", "history.csv", "training.json")):
        raise ValueError(
            f"model {name}: base path {path} looks like a training run (spizoo train's run directory), not an "
            f"export base path of numbered SavedModel versions; `spizoo export {path} --name NAME --base-path "
            "BASE_PATH` makes one, then serve --model-config-file BASE_PATH/models.config"
        )
    if (path / "saved_model.pb").exists():
        raise ValueError(
            f"model {name}: base path {path} is one SavedModel version; give the directory of its numbered "
            f"versions, {path.parent}"
        )
    if (path / MODELS_CONFIG).exists() and not versions(path):
        raise ValueError(
            f"model {name}: base path {path} holds the models of spizoo export, one folder each; serve them all "
            f"with --model-config-file {path / MODELS_CONFIG}, or one with --model-base-path {path}/NAME"
        )
    return path


def run(args: argparse.Namespace) -> dict:
    if args.batching_parameters_file:
        input_file(args.batching_parameters_file, "--batching-parameters-file")
    if args.model_config_file:
        config_file = input_file(
            args.model_config_file, "--model-config-file", suggest=MODELS_CONFIG, hint=f"{EXPORT_HINT} in BASE_PATH"
        )
        for spec in read_model_config(config_file):
            check_base_path(spec.base_path, spec.name)
    elif args.model_base_path:
        check_base_path(args.model_base_path, args.model_name or "default")
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
    try:
        server = Server(
            manager,
            host=args.host,
            rest_port=args.rest_api_port,
            grpc_port=args.port,
            max_body_bytes=args.max_body_bytes,
            idle_timeout_s=args.rest_idle_timeout_seconds,
            request_timeout_s=args.rest_request_timeout_seconds,
            max_connections=args.rest_max_connections,
        )
    except OSError as err:  # the REST port binds first: Python's "[Errno 98] Address already in use" names nothing
        if err.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        problem = {errno.EADDRINUSE: "is in use (another server?)", errno.EACCES: "needs privileges"}.get(
            err.errno, "is not an address of this machine"
        )
        raise OSError(
            f"cannot serve REST on http://{args.host}:{args.rest_api_port}: the address {problem}; give another "
            "--rest-api-port (or --host)"
        ) from None
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
        waiting = sorted(name for name, v in loaded.items() if not v)
        if waiting:
            print(
                f"spizoo serve: no versions yet of {', '.join(waiting)}; each is served once spizoo export "
                "writes one" + ("" if args.file_system_poll_wait_seconds > 0 else " and the server is restarted"),
                flush=True,
            )
        stop.wait()
    return {"served": loaded}


def summary_line(summary: dict) -> str:
    return "stopped"


def summary_rows(summary: dict, args: argparse.Namespace) -> list[tuple[str, str]]:
    served = "; ".join(f"{name} (versions {', '.join(map(str, v)) or 'none'})" for name, v in summary["served"].items())
    return [("served", served), ("again", "the same command (versions exported meanwhile are served too)")]
