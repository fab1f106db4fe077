import csv
import datetime
import json
import socket
import time

import h5py
import numpy as np
import pytest
from matplotlib import dates as mdates

from spizoo import cli, plots
from spizoo.serving.monitor import RESULTS, STATE, Monitor
from spizoo.serving.predictor import ModelOutputError, Predictor, from_server
from spizoo.serving.server import Server, manager_from_args


def _fake_predictor():
    """Class = the frame's first pixel mod 5: results are checkable against what was written."""

    def predict(frames):
        classes = frames[:, 0, 0].astype(int) % 5
        return {"classes": classes, "single_hit_score": (classes == 1).astype(np.float32)}

    return Predictor(predict, "fake", 0.5, "given")


def _write(path, values, *, grow=False):
    frames = np.zeros((len(values), 4, 4), np.float32)
    frames[:, 0, 0] = values
    if not grow:
        with h5py.File(path, "w") as f:
            f.create_dataset("entry_1/data_1/data", data=frames, maxshape=(None, 4, 4), chunks=(1, 4, 4))
        return
    with h5py.File(path, "a") as f:
        d = f["entry_1/data_1/data"]
        d.resize(d.shape[0] + len(values), axis=0)
        d[-len(values) :] = frames


def _rows(out):
    with open(out / RESULTS, newline="") as f:
        return [(r["file"], int(r["frame"]), int(r["class"])) for r in csv.DictReader(f)]


def test_growing_half_written_and_corrupt_files(tmp_path):
    daq, out = tmp_path / "daq", tmp_path / "out"
    daq.mkdir()
    _write(daq / "a.cxi", [1, 2, 3, 1])
    valid = (daq / "a.cxi").read_bytes()
    (daq / "b.cxi").write_bytes(valid[:300])  # the DAQ has only begun writing it
    (daq / "c.cxi").write_text("not a detector file")
    monitor = Monitor(_fake_predictor(), daq, out, retries=2, batch_size=3, plot=plots.hit_rate)
    first = monitor.poll()
    assert first["new_frames"] == 4 and any("cannot read b.cxi yet" in n for n in first["notes"])
    _write(daq / "a.cxi", [4, 1], grow=True)  # the file grows
    _write(daq / "b.cxi", [1, 1, 0])  # and the other is complete now
    second = monitor.poll()
    assert second["new_frames"] == 5
    assert any("skipping c.cxi after 2 failed reads" in n for n in second["notes"])
    assert monitor.poll() == {"new_frames": 0, "notes": []}  # the corrupt file is not retried unchanged
    rows = _rows(out)
    assert rows == [("a.cxi", i, c) for i, c in enumerate([1, 2, 3, 1, 4, 1])] + [
        ("b.cxi", i, c) for i, c in enumerate([1, 1, 0])
    ]
    rates = monitor.rates()
    assert rates["frames"] == 9 and rates["single_hit_fraction"] == pytest.approx(5 / 9)
    assert rates["hit_rate"] == pytest.approx(8 / 9)
    assert monitor.plot().stat().st_size > 5000


def test_a_restart_never_classifies_a_frame_twice(tmp_path):
    daq, out = tmp_path / "daq", tmp_path / "out"
    daq.mkdir()
    _write(daq / "a.cxi", [1, 2, 3])
    Monitor(_fake_predictor(), daq, out).poll()
    # A crash after results were appended but before the state was saved leaves extra rows: they go.
    with open(out / RESULTS, "a") as f:
        f.write("a.cxi,3,4,0.000000,0\n")
    _write(daq / "a.cxi", [4, 0], grow=True)
    again = Monitor(_fake_predictor(), daq, out)
    assert len(again.history) == 3
    assert again.poll()["new_frames"] == 2
    assert _rows(out) == [("a.cxi", i, c) for i, c in enumerate([1, 2, 3, 4, 0])]
    assert json.loads((out / STATE).read_text())["files"]["a.cxi"]["done"] == 5


def test_monitor_needs_a_classifier(tmp_path):
    daq = tmp_path / "daq"
    daq.mkdir()
    _write(daq / "a.cxi", [1])
    regressor = Predictor(lambda x: {"radius_nm": np.zeros(len(x))}, "regressor", 0.5, "given")
    with pytest.raises(ModelOutputError, match="needs a hit classifier"):
        Monitor(regressor, daq, tmp_path / "out").poll()
    with pytest.raises(FileNotFoundError, match="not a directory"):
        Monitor(regressor, tmp_path / "nowhere", tmp_path / "out")


def test_monitor_command_once_with_a_trained_run(runs, tmp_path, capsys):
    daq = tmp_path / "daq"
    daq.mkdir()
    images = np.random.default_rng(0).poisson(2.0, (6, 32, 32)).astype(np.float32)
    with h5py.File(daq / "run_1.cxi", "w") as f:
        f["entry_1/data_1/data"] = images
    args = ["monitor", str(runs["hits"][0]), str(daq), "--out", str(tmp_path / "out"), "--once"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "6 frames (+6" in out and "hit rate" in out
    assert len(_rows(tmp_path / "out")) == 6 and (tmp_path / "out" / "monitor.png").exists()
    assert cli.main(args) == 0 and len(_rows(tmp_path / "out")) == 6  # rerun: nothing twice


def test_a_model_server_down_longer_than_every_retry_blames_no_file(exported, tmp_path):
    """The server is down for more scans than --retries: the monitor waits and says so, marks no file corrupt,
    and once the server is back it classifies every frame exactly once. Frames the server refuses (HTTP 400)
    are the file's fault: that file is skipped after the retries."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    daq, out = tmp_path / "daq", tmp_path / "out"
    daq.mkdir()
    frames = np.random.default_rng(0).poisson(2.0, (6, 32, 32)).astype(np.float32)
    with h5py.File(daq / "run_1.cxi", "w") as f:
        f["entry_1/data_1/data"] = frames
    monitor = Monitor(from_server(f"http://127.0.0.1:{port}/hits"), daq, out, retries=2, batch_size=4)
    for _ in range(4):  # twice the retries
        scan = monitor.poll()
        assert scan["new_frames"] == 0
        assert any(f"cannot reach the model server at http://127.0.0.1:{port}" in n for n in scan["notes"])
    state = monitor.state["files"]["run_1.cxi"]
    assert not state["corrupt"] and state["failures"] == 0 and state["done"] == 0
    assert "run_1.cxi" not in json.loads((out / STATE).read_text())["files"]  # nothing recorded against it
    manager = manager_from_args(None, "hits", str(exported / "hits"), poll_seconds=0)
    with Server(manager, rest_port=port, grpc_port=0):
        assert monitor.poll() == {"new_frames": 6, "notes": []}
        assert monitor.poll() == {"new_frames": 0, "notes": []}
        with h5py.File(daq / "small.cxi", "w") as f:  # frames the model refuses: that is the file's fault
            f["entry_1/data_1/data"] = frames[:2, :8, :8]
        warning, note = monitor.poll()["notes"]  # unlike the training frames (data/frame_check.py), refused
        assert warning.startswith("warning: small.cxi: frames of 8x8 pixels of unknown size")
        assert "cannot read small.cxi yet (try 1 of 2)" in note
        note = monitor.poll()["notes"][0]
        assert note.startswith("skipping small.cxi after 2 failed reads: HTTP 400") and "at least 24x24" in note
    assert [(name, frame) for name, frame, _ in _rows(out)] == [("run_1.cxi", i) for i in range(6)]  # each once


def test_monitor_png_shows_the_first_frames_against_wall_clock_time(tmp_path):
    """Drawn from the first scan (not after --window frames), against the time frames were classified; after
    a restart, the frames before it count in the rates but have no time to be drawn at."""
    daq, out = tmp_path / "daq", tmp_path / "out"
    daq.mkdir()
    _write(daq / "a.cxi", [1, 0, 2, 1] * 8)  # 32 frames, 3 of 4 hits
    drawn = []

    def plot(classes, single, path, **options):
        drawn.append((plots.hit_rate_figure(classes, single, **options), options))
        return plots.hit_rate(classes, single, path, **options)

    before = time.time()
    monitor = Monitor(_fake_predictor(), daq, out, window=500, batch_size=8, plot=plot)
    assert monitor.poll()["new_frames"] == 32
    assert monitor.plot() == out / "monitor.png" and (out / "monitor.png").stat().st_size > 5000
    after = time.time()
    fig, options = drawn[-1]
    assert options["window"] == 500 and len(options["times"]) == 32
    (ax,) = fig.axes
    x, y = ax.lines[0].get_data()
    assert len(x) >= 1 and y[-1] == pytest.approx(0.75)  # something from 32 frames, though the window is 500
    lo, hi = (mdates.date2num(datetime.datetime.fromtimestamp(t)) for t in (before, after))
    assert lo - 1e-8 <= min(x) <= max(x) <= hi + 1e-8
    assert ax.get_xlabel() == "local time (HH:MM:SS)"
    assert "hit rate 75.0%" in ax.get_title() and "32 frames" in ax.get_title()

    _write(daq / "a.cxi", [1] * 24, grow=True)
    restarted = Monitor(_fake_predictor(), daq, out, window=500, batch_size=8, plot=plot)
    assert restarted.poll()["new_frames"] == 24
    restarted.plot()
    fig, options = drawn[-1]
    (ax,) = fig.axes
    assert np.isnan(options["times"][:32]).all() and np.isfinite(options["times"][32:]).all()
    assert "32 frames from before the restart not drawn" in ax.get_xlabel()
    assert ax.lines[0].get_ydata()[-1] == pytest.approx((24 + 24) / 56)  # the rate counts the earlier frames
