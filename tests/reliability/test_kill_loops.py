"""Seeded kill loops (issue 17): ``spizoo generate``, ``spizoo monitor`` (files and a karabo-bridge stream) and
``spizoo train`` SIGKILLed at seeded random moments, restarted each time with the same command, and their
final output checked against an uninterrupted run.

Every assertion message names the seed and the kill (its number and moment), which replays it: the moments
come from ``random.Random(SEED)`` alone. Processes are started in their own process group
(``start_new_session=True``) and the whole group is killed with ``os.killpg``, as a batch system or the OOM
killer of a shell job would.
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

GENERATE_SEED = 17
MONITOR_SEED = 1717
SMALL = [
    "dataset.patterns=96",
    "sim.patterns_per_model=8",
    "sim.detector.pixels=[32,32]",
    "data.crop=32",
    "dataset.shards={train: 3, validation: 2, test: 2}",
    "dataset.splits={train: 0.6, validation: 0.2, test: 0.2}",
]


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                alive.add(pid)
        except OSError:
            pass
    return alive


def _mentioning(text: str) -> set[int]:
    """Live processes whose command line holds ``text``."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.add(int(entry))
    return found


def _kill_group(proc: subprocess.Popen, mark: str, where: str, limit: float = 10.0) -> float:
    """SIGKILL of ``proc``'s process group; waits until none of its descendants (snapshot just before the kill)
    nor any process whose command line holds ``mark`` is alive. Returns how long the last one took to go."""
    below = _descendants(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # it ended (and its group with it) before the kill
        pass
    proc.wait()
    start = time.monotonic()
    while True:
        left = _alive(below) | _mentioning(mark)
        if not left:
            return time.monotonic() - start
        if time.monotonic() - start > limit:
            raise AssertionError(f"{where}: processes {sorted(left)} still alive {limit:.0f} s after the kill")
        time.sleep(0.01)


def _files(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# --- spizoo generate -------------------------------------------------------------------------------------------


def _generate_command(out: Path) -> list[str]:
    command = [sys.executable, "-m", "spizoo.cli", "generate", "configs/quickstart.yaml", "--out", str(out)]
    for item in SMALL:
        command += ["--set", item]
    return [*command, "--direct_num_workers=2"]  # Beam's multi-processing DirectRunner, 2 worker processes


@pytest.mark.slow
def test_generate_killed_at_seeded_moments_resumes_to_the_same_bytes(tmp_path):
    """``spizoo generate`` SIGKILLed (its whole process group) at 10 seeded moments spread over an uninterrupted
    run's duration, and at 2 moments of its end (a shard being written, the info file written before the
    rename), rerun after each: after every kill no process of it is left, and OUT either does not exist or is
    complete (byte-identical to the reference); the last run completes it, every file byte-identical to an
    uninterrupted run's, and no OUT.incomplete is left. A kill that lands after the run finished starts the
    next round from scratch (OUT removed after its check)."""
    reference, out = tmp_path / "reference", tmp_path / "out"
    incomplete = Path(str(out) + ".incomplete")
    start = time.monotonic()
    done = subprocess.run(_generate_command(reference), capture_output=True, text=True)
    duration = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    expected = _files(reference)
    assert "dataset_info.json" in expected and len([n for n in expected if ".tfrecord-" in n]) == 7

    rng = random.Random(GENERATE_SEED)
    plan = [("time", rng.uniform(i, i + 1) * duration / 10) for i in range(10)]  # one in each tenth of the run
    plan += [("shard", rng.uniform(0.0, 0.05)), ("info", rng.uniform(0.0, 0.002))]
    rng.shuffle(plan)
    outcomes = {"killed, OUT absent": 0, "killed, OUT complete": 0, "finished before the kill": 0}
    lags, resumed_with = [], []
    for number, (kind, moment) in enumerate(plan):
        where = f"seed {GENERATE_SEED}, kill {number} ({kind} + {moment:.3f} s)"
        proc = subprocess.Popen(
            _generate_command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        resumed_with.append(len(list(incomplete.glob("chunks/*/*.tfrecord.json"))))
        started = time.monotonic()
        if kind == "time":
            time.sleep(moment)
        else:  # the end of the run: shards concatenated into OUT.incomplete/, or the info written before the rename
            trigger = (lambda: any(incomplete.glob("*.tfrecord-*"))) if kind == "shard" else (
                lambda: (incomplete / "dataset_info.json").exists()
            )  # fmt: skip
            while proc.poll() is None and not trigger() and time.monotonic() - started < 120:
                time.sleep(0.001)
            time.sleep(moment)
        finished = proc.poll() is not None
        lags.append(_kill_group(proc, str(out), where))
        if out.exists():
            got = _files(out)
            assert got.keys() == expected.keys(), f"{where}: a partial OUT: {sorted(got)}"
            assert got == expected, f"{where}: OUT differs from the reference"
            assert not incomplete.exists(), f"{where}: OUT and OUT.incomplete both exist"
        if finished:
            assert proc.returncode == 0, f"{where}: status {proc.returncode}"
            outcomes["finished before the kill"] += 1
        else:
            outcomes["killed, OUT complete" if out.exists() else "killed, OUT absent"] += 1
        if out.exists():
            shutil.rmtree(out)  # the next round starts afresh

    kills = outcomes["killed, OUT absent"] + outcomes["killed, OUT complete"]
    print(f"generate: uninterrupted {duration:.1f} s; {outcomes}; resumed from {resumed_with} chunks; "
          f"last process gone {max(lags) * 1000:.0f} ms after a kill at most")  # fmt: skip
    assert kills >= 10, f"seed {GENERATE_SEED}: only {kills} of {len(plan)} kills landed before the end: {outcomes}"
    assert any(resumed_with), f"seed {GENERATE_SEED}: no run resumed from a killed one's chunks"
    left = len(list(incomplete.glob("chunks/*/*.tfrecord.json")))  # the last round's chunks, if it was killed
    final = subprocess.run(_generate_command(out), capture_output=True, text=True)  # the same command, to the end
    assert final.returncode == 0, f"seed {GENERATE_SEED}, final run (resuming {left} chunks): {final.stderr}"
    assert not incomplete.exists(), f"seed {GENERATE_SEED}: OUT.incomplete left after the final run"
    got = _files(out)
    assert sorted(got) == sorted(expected), f"seed {GENERATE_SEED}"
    for name, data in expected.items():
        assert got[name] == data, f"seed {GENERATE_SEED}: {name} differs from the uninterrupted run's"


# --- spizoo monitor --------------------------------------------------------------------------------------------

SHAPE = (32, 32)  # the hits model's input


def _images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.poisson(rng.uniform(0.5, 4.0), (n, *SHAPE)).astype(np.float32)


def _write_cxi(path: Path, images: np.ndarray) -> None:
    """A finished file as the DAQ's CXIWriter writes it (under ``.partial``, renamed at the end)."""
    from spizoo.data.cxi import CXIWriter

    mask = np.zeros(SHAPE, np.int32)
    with CXIWriter(path, SHAPE, block=16) as w:
        for image in images:
            w.append(image, mask=mask, distance_m=0.5, pixel_size_m=75e-6, center_px=(16, 16), photon_energy_eV=1200.0)


def _grow(path: Path, images: np.ndarray) -> None:
    """Appends ``images`` to a file written in place (created on the first call), as a DAQ that grows its file."""
    with h5py.File(path, "a") as f:
        if "entry_1/data_1/data" not in f:
            shape = (None, *SHAPE)
            f.create_dataset("entry_1/data_1/data", (0, *SHAPE), np.float32, maxshape=shape, chunks=(1, *SHAPE))
        data = f["entry_1/data_1/data"]
        data.resize(data.shape[0] + len(images), axis=0)
        data[-len(images) :] = images


def _consistent_rows(out: Path) -> tuple[list[tuple[str, int]], dict]:
    """The (file, frame) rows of ``monitor.csv`` up to the length its state records, and the state."""
    import json

    state = json.loads((out / "monitor_state.json").read_text())
    text = (out / "monitor.csv").read_bytes()[: state["results_bytes"]].decode()
    return [(r["file"], int(r["frame"])) for r in csv.DictReader(text.splitlines())], state


@pytest.mark.slow
def test_monitor_killed_at_seeded_moments_classifies_every_frame_exactly_once(runs, tmp_path):
    """``spizoo monitor RUN DAQ --interval 0.5`` SIGKILLed (its process group) at 12 seeded moments while CXI files
    appear (finished files renamed into place by CXIWriter) and grow (frames appended in place), restarted each
    time: after every kill no process of it is left, and the results up to the recorded state hold each file's
    frames 0..done-1 once each; after the writer is done, ``--once`` completes them, and monitor.csv holds every
    (file, frame) exactly once with the classes and scores of ``spizoo classify`` on the final files."""
    run = runs["hits"][0]
    daq, out = tmp_path / "daq", tmp_path / "monitor"
    daq.mkdir()
    command = [sys.executable, "-m", "spizoo.cli", "monitor", str(run), str(daq), "--out", str(out)]
    rng = random.Random(MONITOR_SEED)
    pixels = np.random.default_rng(MONITOR_SEED)
    # the writer's steps, one per round: a finished file appears, or a growing file gets more frames
    steps = []
    for i in range(12):
        if i % 3 == 2:
            steps.append(("grow", "growing_0.cxi" if i < 6 else "growing_1.cxi", rng.randint(100, 300)))
        else:
            steps.append(("file", f"run_{i:03d}.cxi", rng.randint(200, 600)))
    frames: dict[str, int] = {}

    start = time.monotonic()  # the monitor's start-up (TensorFlow, the model), from a scan of the empty directory
    done = subprocess.run([*command, "--once"], capture_output=True, text=True)
    startup = time.monotonic() - start
    assert done.returncode == 0, done.stderr

    landed_mid_file, progress = 0, []
    for number, (kind, name, n) in enumerate(steps):
        write_at = rng.uniform(0.5 * startup, startup + 1.0)  # during the start-up, or once it scans
        moment = write_at + rng.uniform(0.0, 1.5)  # then the next scan or two: the new frames being classified
        step = f"writer step {kind} {name} +{n} at {write_at:.2f} s"
        where = f"seed {MONITOR_SEED}, kill {number} at {moment:.2f} s ({step})"
        before = len(_consistent_rows(out)[0])
        proc = subprocess.Popen(
            [*command, "--interval", "0.5"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        started = time.monotonic()
        time.sleep(write_at)
        images = _images(pixels, n)
        (_grow if kind == "grow" else _write_cxi)(daq / name, images)
        frames[name] = frames.get(name, 0) + n
        time.sleep(max(0.0, moment - (time.monotonic() - started)))
        assert proc.poll() is None, f"{where}: the monitor ended by itself (status {proc.returncode})"
        _kill_group(proc, str(out), where)
        rows, state = _consistent_rows(out)
        for file, entry in state["files"].items():
            mine = [frame for f, frame in rows if f == file]
            wanted = list(range(entry["done"]))
            assert mine == wanted, f"{where}: {file}'s results are not frames 0..{entry['done'] - 1}"
            assert not entry["corrupt"], f"{where}: {file} marked corrupt"
        assert len(rows) == len(set(rows)), f"{where}: a frame twice"
        landed_mid_file += 0 < len(rows) - before and len(rows) < sum(frames.values())
        progress.append(len(rows) - before)

    final = subprocess.run([*command, "--once"], capture_output=True, text=True)
    assert final.returncode == 0, f"seed {MONITOR_SEED}, final --once: {final.stderr}"
    with open(out / "monitor.csv", newline="") as f:
        results = list(csv.DictReader(f))
    keys = [(r["file"], int(r["frame"])) for r in results]
    expected = sorted((name, i) for name, n in frames.items() for i in range(n))
    assert len(keys) == len(set(keys)), f"seed {MONITOR_SEED}: frames classified twice"
    assert sorted(keys) == expected, f"seed {MONITOR_SEED}: frames missing or extra"

    names = sorted(frames)
    classified = tmp_path / "classified.h5"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "spizoo.cli",
            "classify",
            str(run),
            *(str(daq / n) for n in names),
            "--out",
            str(classified),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    with h5py.File(classified) as f:
        files = [Path(x.decode() if isinstance(x, bytes) else x).name for x in f["files"][()]]
        reference = {
            (files[i], int(frame)): (int(c), float(s))
            for i, frame, c, s in zip(
                f["file_index"][()], f["frame"][()], f["classes"][()], f["single_hit_score"][()], strict=True
            )
        }
    assert sorted(reference) == expected
    for r in results:
        c, s = reference[(r["file"], int(r["frame"]))]
        assert int(r["class"]) == c, f"seed {MONITOR_SEED}: {r['file']} frame {r['frame']}: class {r['class']} != {c}"
        assert abs(float(r["single_hit_score"]) - s) <= 2e-6, f"seed {MONITOR_SEED}: {r['file']} frame {r['frame']}"
    print(f"monitor: start-up {startup:.1f} s; {len(steps)} kills, {landed_mid_file} with frames left to do; "
          f"frames classified per round {progress}; {len(keys)} frames of {len(names)} files")  # fmt: skip


# --- spizoo monitor --karabo-bridge -------------------------------------------------------------------------

STREAM_SEED = 171
STREAM_KILLS = 6
STREAM_TRAINS = 10  # trains classified in all, from the run's first


def _bridge_rows(out: Path) -> tuple[list[tuple[int, int, int, int, float]], dict]:
    """The (train, pulse, cell, class, score) rows of ``monitor.csv`` up to the length its state records."""
    import json

    state = json.loads((out / "monitor_state.json").read_text())
    text = (out / "monitor.csv").read_bytes()[: state["results_bytes"]].decode()
    rows = [
        (int(r["train_id"]), int(r["pulse_id"]), int(r["cell_id"]), int(r["class"]), float(r["single_hit_score"]))
        for r in csv.DictReader(text.splitlines())
    ]
    return rows, state


def _whole_trains(rows, where: str) -> list[int]:
    """The trains of ``rows``: each whole (64 frames), in order, none twice."""
    trains = [t for t, *_ in rows]
    order = list(dict.fromkeys(trains))
    assert order == sorted(set(trains)), f"{where}: trains out of order or twice: {order}"
    assert all(trains.count(t) == 64 for t in order), f"{where}: a train not whole"
    return order


@pytest.mark.slow
def test_stream_monitor_killed_at_seeded_moments_classifies_every_train_exactly_once(runs, euxfel_run, tmp_path):
    """``spizoo monitor MODEL --karabo-bridge tcp://…`` SIGKILLed (its process group) at seeded moments while
    ``karabo-bridge-serve-files`` replays a mock European XFEL run; after each kill the bridge restarts (and
    replays from the run's first train, as a restarted bridge does) and so does the monitor: after every kill
    the results up to the recorded state are whole trains in order, none twice; at the end they equal
    ``classify`` of the run's first trains frame by frame (a train a dead monitor was sent is classified from
    the replay, not lost)."""
    from spizoo.commands._common import load_predictor
    from spizoo.data.frames import ViewFinder
    from spizoo.serving.classify import classify_files
    from spizoo.sim.geometry import Geometry

    server_exe = Path(sys.executable).with_name("karabo-bridge-serve-files")
    model, out = runs["hits"][0], tmp_path / "live"
    geom = Geometry.named("AGIPD-1M").write_crystfel(tmp_path / "agipd.geom")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"tcp://127.0.0.1:{port}"
    serve = [
        str(server_exe),
        str(euxfel_run),
        endpoint,
        "--source",
        "SPB_DET_AGIPD1M-1/DET/*",
        "--key",
        "image.[dcmp]*",
    ]
    command = [sys.executable, "-m", "spizoo.cli", "monitor", str(model), "--karabo-bridge", endpoint]
    command += ["--geometry", str(geom), "--pixels", "32", "32", "--bin", "8", "--out", str(out), "--timeout", "5"]
    rng = random.Random(STREAM_SEED)

    def start():
        server = subprocess.Popen(serve, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        return server, proc

    startup, progress = None, []
    for number in range(STREAM_KILLS + 1):
        final = number == STREAM_KILLS
        before = len(_bridge_rows(out)[0]) if (out / "monitor_state.json").exists() else 0
        server, proc = start()
        started = time.monotonic()
        if startup is None or final:  # the first round measures the start-up; the last runs to the end
            deadline = started + 600
            want = STREAM_TRAINS * 64 if final else 1
            while time.monotonic() < deadline and proc.poll() is None:
                if (out / "monitor_state.json").exists() and len(_bridge_rows(out)[0]) >= want:
                    break
                time.sleep(0.2)
            moment = time.monotonic() - started
            startup = startup or moment
        else:
            moment = rng.uniform(0.5 * startup, startup + 6.0)  # during the start-up, or among the trains
            time.sleep(moment)
        where = f"seed {STREAM_SEED}, kill {number} at {moment:.2f} s"
        assert proc.poll() is None, f"{where}: the monitor ended by itself (status {proc.returncode})"
        _kill_group(proc, str(out), where)
        _kill_group(server, endpoint, where)
        rows, state = _bridge_rows(out) if (out / "monitor_state.json").exists() else ([], {"last_train": -1})
        trains = _whole_trains(rows, where)
        assert not trains or trains[-1] == state["last_train"], f"{where}: state ahead of or behind its rows"
        progress.append(len(rows) - before)

    rows, _ = _bridge_rows(out)
    trains = _whole_trains(rows, f"seed {STREAM_SEED}, final")
    assert len(trains) >= STREAM_TRAINS and trains[0] == 10000, trains
    predictor = load_predictor(str(model))
    view = ViewFinder(geom, pixels=(32, 32), bin=8)
    _, ref = classify_files(predictor, [euxfel_run], tmp_path / "ref.h5", view=view, trains=slice(0, len(trains)))
    assert [r[:3] for r in rows] == list(
        zip(ref["train_id"].tolist(), ref["pulse_id"].tolist(), ref["cell_id"].tolist(), strict=True)
    )
    assert [r[3] for r in rows] == ref["classes"].tolist()
    np.testing.assert_allclose([r[4] for r in rows], ref["single_hit_score"], atol=2e-6)
    print(f"stream monitor: start-up {startup:.1f} s; {STREAM_KILLS} kills; frames per round {progress}; "
          f"{len(trains)} trains, {len(rows)} frames")  # fmt: skip


# --- spizoo train ----------------------------------------------------------------------------------------------

TRAIN_SEED = 171717
EPOCHS = 6


@pytest.mark.slow
def test_train_killed_at_seeded_moments_resumes_and_every_saved_model_loads(runs, tmp_path):
    """``spizoo train`` with the default precision (``train.mixed_precision: auto``, not deterministic) SIGKILLed
    (its process group) at 3 seeded moments of its run and 3 moments just after a checkpoint began (``last.keras``
    or the backup changed), rerun after each: after every kill no process of it is left and every saved model
    (``best.keras``, ``last.keras``) loads; the last rerun completes, ``history.csv`` holds each epoch once, and
    the final validation accuracy lies within the spread of three uninterrupted runs of the same command."""
    import json

    import keras

    from tests.conftest import CLASSIFIER

    data = runs["hits"][1]
    run = tmp_path / "run"
    sets = [x for item in CLASSIFIER if not item.startswith(("train.epochs", "train.mixed")) for x in ("--set", item)]
    command = [sys.executable, "-m", "spizoo.cli", "train", "configs/quickstart.yaml", "--data", str(data)]
    command += ["--out", str(run), *sets, "--set", f"train.epochs={EPOCHS}"]
    rng = random.Random(TRAIN_SEED)
    plan = [("time", rng.uniform(4.0, 20.0)) for _ in range(3)]
    plan += [("checkpoint", rng.uniform(0.0, 0.03)) for _ in range(3)]
    rng.shuffle(plan)
    meta = run / "backup" / "training_metadata.json"
    checkpoints = [run / "last.keras", run / "best.keras", meta, *sorted((run / "backup").glob("*"))]

    def stamps():
        return {p: p.stat().st_mtime_ns for p in [*checkpoints, *run.glob("backup/*")] if p.exists()}

    outcomes, starts = {"killed": 0, "finished before the kill": 0}, []
    for number, (kind, moment) in enumerate(plan):
        where = f"seed {TRAIN_SEED}, kill {number} ({kind} + {moment:.3f} s)"
        starts.append(json.loads(meta.read_text())["epoch"] if meta.exists() else 0)
        before = stamps()
        log = open(tmp_path / f"train-{number}.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        started = time.monotonic()
        if kind == "time":
            time.sleep(moment)
        else:  # just after a checkpoint began: a file of the backup or last.keras changed
            while proc.poll() is None and stamps() == before and time.monotonic() - started < 180:
                time.sleep(0.002)
            time.sleep(moment)
        finished = proc.poll() is not None
        _kill_group(proc, str(run), where)
        log.close()
        if finished:
            tail = (tmp_path / f"train-{number}.log").read_text(errors="replace")[-2000:]
            assert proc.returncode == 0, (
                f"{where}: the rerun after kill {number - 1} failed, status {proc.returncode}: {tail}"
            )
        outcomes["finished before the kill" if finished else "killed"] += 1
        for name in ("best.keras", "last.keras"):
            if (run / name).exists():
                try:
                    keras.saving.load_model(run / name)
                except Exception as err:  # noqa: BLE001 - any failure to load is the finding
                    raise AssertionError(f"{where}: {name} does not load: {type(err).__name__}: {err}") from None
        if finished:
            break

    final = subprocess.run(command, capture_output=True, text=True)
    assert final.returncode == 0, f"seed {TRAIN_SEED}, final run (from epoch {starts[-1]}): {final.stderr[-3000:]}"
    with open(run / "history.csv", newline="") as f:
        epochs = [int(r["epoch"]) for r in csv.DictReader(f)]
    assert epochs == list(range(EPOCHS)), f"seed {TRAIN_SEED}: history.csv epochs {epochs} (runs started at {starts})"
    for name in ("best.keras", "last.keras"):
        keras.saving.load_model(run / name)
    summary = json.loads((run / "training.json").read_text())
    assert outcomes["killed"] >= 5, f"seed {TRAIN_SEED}: only {outcomes['killed']} kills landed: {outcomes}"

    # The same command uninterrupted, three times: the killed run's final validation accuracy lies within their
    # spread, or within two validation examples of their mean if that is wider.
    uninterrupted = []
    for i in range(3):
        out = command.index("--out") + 1
        done = subprocess.run([*command[:out], str(tmp_path / f"whole-{i}"), *command[out + 1 :]], capture_output=True)
        assert done.returncode == 0, done.stderr[-3000:]
        final = json.loads((tmp_path / f"whole-{i}" / "training.json").read_text())["final"]
        uninterrupted.append(final["val_accuracy"])
    n_val = json.loads((data / "dataset_info.json").read_text())["splits"]["validation"]["examples"]
    centre = float(np.mean(uninterrupted))
    tolerance = max(float(np.ptp(uninterrupted)), 2 / n_val)
    accuracy = summary["final"]["val_accuracy"]
    print(f"train: {outcomes}; runs started at epochs {starts}; policy {summary['policy']}; validation accuracy "
          f"{accuracy:.3f} killed, {uninterrupted} uninterrupted (n={n_val}, tolerance {tolerance:.3f})")  # fmt: skip
    assert abs(accuracy - centre) <= tolerance, (
        f"seed {TRAIN_SEED}: validation accuracy {accuracy:.3f} after the kills, uninterrupted {uninterrupted}"
    )
