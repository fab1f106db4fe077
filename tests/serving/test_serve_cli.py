import csv
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from spizoo import cli, experiment
from spizoo.commands import simulate
from spizoo.data.cxi import read_frame
from spizoo.models import load_model


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cxi_file(tmp_path):
    config = experiment.load("configs/quickstart.yaml", ["sim.detector.pixels=[32,32]", "sim.patterns_per_model=2"])
    simulate.simulate(config, 6, tmp_path / "sim")
    return tmp_path / "sim" / "patterns.cxi"


def test_export_serve_predict_and_stop_from_the_command_line(runs, tmp_path, cxi_file, capsys):
    run, _ = runs["hits"]
    base = tmp_path / "models"
    assert cli.main(["export", str(run), "--name", "hits", "--base-path", str(base), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["path"].endswith("hits/1")
    rest, grpc_port = _free_port(), _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "spizoo.cli", "serve", "--model-config-file", str(base / "models.config")]
        + ["--rest-api-port", str(rest), "--port", str(grpc_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        line = ""
        while "spizoo serve:" not in line and time.monotonic() < deadline and server.poll() is None:
            line = server.stdout.readline()
        assert "REST http://127.0.0.1:" in line, line
        outputs = {}
        for url in (f"http://127.0.0.1:{rest}", f"grpc://127.0.0.1:{grpc_port}"):
            out = tmp_path / f"{url.split(':')[0]}.csv"
            assert cli.main(["predict", str(cxi_file), "--server", url, "--model", "hits", "--out", str(out)]) == 0
            outputs[url] = list(csv.DictReader(out.open()))
        rest_rows, grpc_rows = outputs.values()
        assert len(rest_rows) == 6 and [r["classes"] for r in rest_rows] == [r["classes"] for r in grpc_rows]
        # The server's answer is the trained model's answer on the same frame.
        model = load_model(run / "best.keras")
        frame = read_frame(cxi_file, 2).astype(np.float32)[4:28, 4:28]  # the run's 24-pixel centre crop
        expected = model(frame[None, ..., None]).numpy()[0]
        np.testing.assert_allclose(json.loads(rest_rows[2]["probabilities"]), expected, rtol=1e-5, atol=1e-6)
        capsys.readouterr()
        assert cli.main(["predict", str(cxi_file), "--server", f"http://127.0.0.1:{rest}", "--model", "nope"]) == 2
        assert "404" in capsys.readouterr().err
    finally:
        server.send_signal(signal.SIGTERM)
        tail = server.communicate(timeout=60)[0]
    assert server.returncode == 0 and "stopped" in tail


def test_serve_without_models_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["serve", "--model-base-path", str(tmp_path / "none"), "--port", "0", "--rest-api-port", "0"]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert cli.main(["serve", "--port", "0"]) == 2
    assert "--model-config-file" in capsys.readouterr().err
