"""A model server for the fuzzers (in this process, as tests/serving/test_server.py runs it)."""

import shutil

import pytest

from spizoo.serving.server import Server, manager_from_args

MAX_BODY = 2**20


@pytest.fixture(scope="session")
def served(exported, tmp_path_factory):
    """``spizoo serve``'s server on a copy of ``exported`` (models hits and sizes), REST and gRPC on free ports,
    a 1 MiB request limit and a 10 s request timeout."""
    base = tmp_path_factory.mktemp("fuzzed") / "models"
    shutil.copytree(exported, base)
    config = base / "models.config"
    config.write_text(config.read_text().replace(str(exported.resolve()), str(base.resolve())))
    manager = manager_from_args(str(config), None, None, poll_seconds=0)
    with Server(manager, rest_port=0, grpc_port=0, max_body_bytes=MAX_BODY, request_timeout_s=10.0) as server:
        server.base = base
        yield server
