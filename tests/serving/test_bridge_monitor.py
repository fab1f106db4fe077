"""spizoo monitor on a live karabo-bridge stream: EXtra-data's own server replays a mock European XFEL run."""

import csv
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spizoo.commands._common import load_predictor
from spizoo.data.frames import ViewFinder
from spizoo.serving.classify import classify_files
from spizoo.serving.monitor import BridgeMonitor
from spizoo.sim.geometry import Geometry

SERVER = Path(sys.executable).with_name("karabo-bridge-serve-files")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(run, port):
    """``karabo-bridge-serve-files`` streaming the run's detector frames, masks, pulse and cell IDs from its
    first train."""
    args = [str(SERVER), str(run), f"tcp://127.0.0.1:{port}", "--source", "SPB_DET_AGIPD1M-1/DET/*"]
    return subprocess.Popen([*args, "--key", "image.[dcmp]*"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(server):
    server.kill()
    server.wait(timeout=30)


def _rows(out):
    with open(out / "monitor.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def setup(runs, tmp_path):
    predictor = load_predictor(str(runs["hits"][0]))
    geom = Geometry.named("AGIPD-1M").write_crystfel(tmp_path / "agipd.geom")
    return predictor, ViewFinder(geom, pixels=(32, 32), bin=8)


def test_the_stream_gives_what_classify_gives_and_a_restart_never_classifies_a_train_twice(setup, euxfel_run, tmp_path):
    predictor, view = setup
    port = _free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    server = _serve(euxfel_run, port)
    try:
        monitor = BridgeMonitor(predictor, endpoint, tmp_path / "live", view=view, max_trains=3, timeout=60)
        monitor.run(interval=1.0)
    finally:
        _stop(server)
    rows = _rows(tmp_path / "live")
    _, reference = classify_files(predictor, [euxfel_run], tmp_path / "ref.h5", view=view, trains=slice(0, 3))
    assert len(rows) == 3 * 64
    assert [int(r["train_id"]) for r in rows] == reference["train_id"].tolist()
    assert [int(r["pulse_id"]) for r in rows] == reference["pulse_id"].tolist()
    assert [int(r["cell_id"]) for r in rows] == reference["cell_id"].tolist()
    assert [int(r["class"]) for r in rows] == reference["classes"].tolist()
    np.testing.assert_allclose([float(r["single_hit_score"]) for r in rows], reference["single_hit_score"], atol=1e-6)

    # The monitor restarts (after a crash, say) and the bridge replays the run from its first train.
    server = _serve(euxfel_run, port)
    try:
        again = BridgeMonitor(predictor, endpoint, tmp_path / "live", view=view, max_trains=1, timeout=60)
        result = again.poll(seconds=120)
    finally:
        _stop(server)
    assert any("skipped 3 trains up to 10002" in n for n in result["notes"]), result["notes"]
    rows = _rows(tmp_path / "live")
    keys = [(r["train_id"], r["pulse_id"]) for r in rows]
    assert len(rows) == 4 * 64 and len(set(keys)) == len(keys) and rows[-1]["train_id"] == "10003"


def test_a_silent_bridge_is_waited_for_and_reconnected(setup, euxfel_run, tmp_path):
    predictor, view = setup
    port = _free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    monitor = BridgeMonitor(predictor, endpoint, tmp_path / "live", view=view, max_trains=1, timeout=1)
    result = monitor.poll(seconds=1)  # no bridge yet
    assert result["new_frames"] == 0 and result["notes"] == [f"no train from {endpoint} for 1 s; reconnecting"]
    server = _serve(euxfel_run, port)  # the bridge comes (back)
    monitor.timeout = 60
    monitor.client = monitor._client_factory(endpoint, 60)
    try:
        result = monitor.poll(seconds=120)
    finally:
        _stop(server)
    assert result["new_frames"] == 64 and len(_rows(tmp_path / "live")) == 64


def test_a_stream_of_another_detector_shape_is_named(setup, tmp_path):
    predictor, _ = setup

    class OneModule:  # a bridge sending a train of one 64x64 module
        def next(self):
            source = "SPB_DET_AGIPD1M-1/DET/0CH0:xtdf"
            data = {source: {"image.data": np.zeros((2, 64, 64), np.float32)}}
            return data, {source: {"timestamp.tid": 5}}

    view = ViewFinder(default=Geometry.named("AGIPD-1M"), pixels=(32, 32), bin=8)
    monitor = BridgeMonitor(predictor, "tcp://x:1", tmp_path / "o", view=view, client=lambda e, t: OneModule())
    with pytest.raises(ValueError, match=r"tcp://x:1: trains of 16 modules of 64x64 pixels do not match the AGIPD-1M"):
        monitor.poll(seconds=5)


def test_the_command_wants_a_directory_or_a_tcp_bridge(runs, capsys):
    from spizoo import cli

    run = str(runs["hits"][0])
    assert cli.main(["monitor", run]) != 0
    assert "give DIRECTORY (files the DAQ writes) or --karabo-bridge ENDPOINT" in capsys.readouterr().err
    assert cli.main(["monitor", run, "--karabo-bridge", "udp://host:1"]) != 0
    assert "--karabo-bridge must be a tcp://HOST:PORT endpoint, got 'udp://host:1'" in capsys.readouterr().err
