"""Issue 18, "the first hour of a physicist": summaries a person reads, progress on long steps, Ctrl-C as one
line, guard rails for small datasets, and plain errors."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from spizoo import cli, experiment
from spizoo.beam_pipelines import generate
from spizoo.commands import _common
from spizoo.core.config import ConfigError
from spizoo.serving.client import ServingClientError

IN_MEMORY = ["--runner=DirectRunner", "--direct_running_mode=in_memory"]


# --- what a person reads ---------------------------------------------------------------------------------


def test_json_keeps_its_content_and_puts_lists_of_numbers_on_one_line():
    value = {"counts": [[1, 2], [3, 4]], "names": ["a", "b"], "nested": {"x": 1.5, "empty": {}, "none": []}}
    text = _common.json_text(value)
    assert json.loads(text) == value
    assert "[1, 2]" in text and '["a", "b"]' in text and len(text.splitlines()) == 12
    assert _common.json_text([1, "two", None]) == '[1, "two", null]'


def test_report_lines_align_their_values_and_keep_a_column_for_more_lines():
    text = _common.report_text("spizoo x: done", [("a", "one"), ("longer label", "two\nthree"), ("skipped", None)])
    assert text.splitlines() == [
        "spizoo x: done",
        "  a             one",
        "  longer label  two",
        "                three",
    ]


def test_the_confusion_matrix_is_a_table_not_a_number_a_line():
    from spizoo.commands.evaluate import confusion_table

    counts = [[5, 1, 0, 0, 0], [0, 12, 3, 0, 0], [0, 0, 4, 0, 0], [0, 0, 0, 2, 1], [0, 0, 0, 0, 100]]
    names = ["none", "single", "double", "triple", "4+"]
    lines = confusion_table({"rows_true_columns_predicted": names, "counts": counts}).splitlines()
    assert len(lines) == 6 and lines[0].split()[-5:] == names
    assert [line.split()[1:] for line in lines[1:]] == [[str(c) for c in row] for row in counts]
    assert len({len(line) for line in lines}) == 1  # columns aligned


def test_evaluate_names_the_regressor_errors_and_prints_no_number_a_line(runs, capsys, tmp_path):
    # Copies: evaluate writes evaluation/report.json into a run, whose operating point other tests must not see.
    run, data = shutil.copytree(runs["sizes"][0], tmp_path / "sizes"), runs["sizes"][1]
    assert cli.main(["evaluate", str(run), "--data", str(data / "*-test.tfrecord-*")]) == 0
    out = capsys.readouterr().out
    report = json.loads((run / "evaluation" / "report.json").read_text())
    assert list(report["mean_error_by_parameter"]) == ["q0", "q1", "q2", "q3", "radius"]
    assert list(report["mean_error_by_parameter"].values()) == report["per_parameter_mean_error"]
    errors = next(line for line in out.splitlines() if line.strip().startswith("mean error"))
    assert all(f"{name} " in errors for name in ("q0", "q1", "q2", "q3", "radius"))
    assert "next" in out and "spizoo export" in out
    run, data = shutil.copytree(runs["hits"][0], tmp_path / "hits"), runs["hits"][1]
    assert cli.main(["evaluate", str(run), "--data", str(data / "*-test.tfrecord-*"), "--json"]) == 0
    text = capsys.readouterr().out
    assert all(not re.fullmatch(r"\s*\d+,?", line) for line in text.splitlines())  # no number alone on a line
    assert json.loads(text)["confusion_matrix"]["counts"]
    on_disk = (run / "evaluation" / "report.json").read_text()
    assert all(not re.fullmatch(r"\s*\d+,?", line) for line in on_disk.splitlines())


def test_train_says_where_the_best_model_is_and_what_to_run_next(runs, capsys, tmp_path):
    from spizoo.commands import train

    run, data = runs["hits"]
    summary = {"run": str(run), "epochs": 1, "resumed_from_epoch": 0, "final": {"val_loss": 0.5}}
    args = argparse.Namespace(data=str(data))
    rows = dict(train.summary_rows(summary, args))
    assert rows["best model"].startswith(f"{run / 'best.keras'} ")
    assert rows["next"] == f"spizoo evaluate {run} --data '{data / '*-test.tfrecord-*'}'"


# --- progress --------------------------------------------------------------------------------------------


class Clock:
    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_progress_off_a_terminal_is_a_line_per_tenth_at_most_never_a_line_per_step():
    stream = io.StringIO()
    for _ in _common.Progress(range(1000), desc="simulate", unit="pattern", stream=stream, clock=Clock(1.0)):
        pass
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and 10 <= len(lines) <= 11
    assert lines[-1].startswith("simulate: 1,000/1,000 patterns (100%), ")
    fast = io.StringIO()  # a short run (under the interval) writes nothing at all
    for _ in _common.Progress(range(1000), desc="simulate", unit="pattern", stream=fast, clock=Clock(0.001)):
        pass
    assert fast.getvalue() == ""


def test_progress_on_a_terminal_is_a_bar():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    with _common.Progress(total=50, desc="generate", unit="model", stream=stream) as bar:
        bar.set(20)
        bar.set(50)
    assert "\r" in stream.getvalue() and "50/50" in stream.getvalue()


def test_training_progress_within_an_epoch_off_a_terminal():
    from spizoo.models.training import epoch_progress_callback

    callback = epoch_progress_callback(200, clock=Clock(1.0))
    callback.set_params({"epochs": 3, "steps": 200})
    out = io.StringIO()
    sys_stdout, sys.stdout = sys.stdout, out
    try:
        callback.on_epoch_begin(1)
        for batch in range(200):
            callback.on_train_batch_end(batch, {"loss": 0.5})
    finally:
        sys.stdout = sys_stdout
    lines = out.getvalue().splitlines()
    assert 1 <= len(lines) <= 9 and lines[0].startswith("epoch 2/3: ") and "loss 0.5" in lines[0]


def test_the_simplex_reports_every_iteration(quick_msft):
    from spizoo.sim import wideangle
    from spizoo.sim.forward_fit import fit_pattern

    image = wideangle.simulate_pattern(quick_msft, 0, 0).image
    steps = []
    fit_pattern(image, quick_msft, starts=2, iterations=3, rng=0, progress=steps.append)
    assert sum(steps) == 6


@pytest.fixture
def quick_msft():
    return experiment.load("configs/sim_msft.yaml", ["sim.columns=32", "sim.detector.pixels=[32,32]"]).sim


def test_units_done_counts_the_chunks_the_pipeline_finished(tmp_path):
    out = tmp_path / "ds"
    assert generate.units_done(out) == 0
    chunks = tmp_path / "ds.incomplete" / "chunks"
    for split, names in {
        "train": ["0.tfrecord", "0.tfrecord.json", "1.tfrecord.tmp"],
        "test": ["2.tfrecord.json"],
    }.items():
        (chunks / split).mkdir(parents=True)
        for name in names:
            (chunks / split / name).write_text("")
    assert generate.units_done(out) == 2


# --- Ctrl-C ----------------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _descendants(pid: int) -> dict[int, str]:
    """Every process under ``pid``, with its start time (so that a reused number is not taken for it)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        stat = _stat(int(entry)) if entry.isdigit() else None
        if stat:
            children.setdefault(int(stat[1]), []).append(int(entry))
    found, todo = {}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            stat = _stat(child)
            if stat:
                found[child] = stat[19]
                todo.append(child)
    return found


def _alive(processes: dict[int, str]) -> list[int]:
    return [pid for pid, start in processes.items() if (s := _stat(pid)) and s[19] == start and s[0] != "Z"]


def _interrupt(argv: list[str], working, cwd: Path) -> tuple[int, str, dict[int, str]]:
    """Starts ``spizoo ARGV`` as a terminal would (its own process group), waits until ``working()``, sends
    SIGINT to the whole group as Ctrl-C does; returns (status, stderr, the processes it had then)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "spizoo.cli", *argv],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # Ctrl-C's default, as in a terminal: a shell's background job inherits SIGINT ignored, and so would spizoo.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not working() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # well inside the work
    processes = _descendants(proc.pid)
    assert proc.poll() is None, "it finished before it could be interrupted: give it more work"
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("it did not end after Ctrl-C") from None
    return proc.returncode, err, processes


def test_ctrl_c_stops_simulate_and_its_workers_in_one_line(tmp_path):
    out = tmp_path / "sim"
    argv = ["simulate", f"{Path.cwd()}/configs/quickstart.yaml", "-n", "5000", "--out", str(out), "--workers", "2"]
    code, err, processes = _interrupt(argv, lambda: (out / "patterns.cxi.partial").exists(), tmp_path)
    assert len(processes) >= 2  # the two workers (and multiprocessing's resource tracker) were running
    assert code == 130
    assert (
        err.strip().split("\r")[-1].strip()
        == "spizoo simulate: interrupted; no patterns.cxi was written (the same command starts afresh)"
    )
    assert len(err.strip().splitlines()) <= 2 and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == []  # no .partial, nothing that looks complete
    deadline = time.monotonic() + 10
    while _alive(processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive(processes) == []


def _pipeline_interrupted(argv: list[str], out: Path, unit: str, cwd: Path) -> None:
    """Ctrl-C during the Beam pipeline of ``spizoo ARGV`` into ``out``: one line naming what the rerun
    resumes (the ``unit``s done), nothing in ``out`` or that looks complete, no process left."""
    code, err, processes = _interrupt(argv, lambda: generate.units_done(out) > 0, cwd)
    assert len(processes) >= 2  # the pipeline's process and Beam's workers
    assert code == 130, err
    lines = err.strip().splitlines()
    assert len(lines) <= 2 and "Traceback" not in err, err
    assert re.fullmatch(
        rf"spizoo {argv[0]}: interrupted; nothing was written to {out} \(the [\d,]+ {unit}s done are in "
        rf"{out}.incomplete/\): the same command resumes from them",
        lines[-1].split("\r")[-1].strip(),
    ), lines
    assert not out.exists() and not list(cwd.rglob("dataset_info.json"))
    assert not list(Path(f"{out}.incomplete").glob("*.tfrecord-*"))  # no shard that looks complete
    deadline = time.monotonic() + 10
    while _alive(processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive(processes) == []


def test_ctrl_c_stops_generate_and_beam_in_one_line_and_keeps_the_work_for_a_rerun(tmp_path):
    out = tmp_path / "ds"
    config = f"{Path.cwd()}/configs/quickstart.yaml"
    argv = ["generate", config, "--out", str(out), "--set", "dataset.patterns=40000", "--direct_num_workers=2"]
    _pipeline_interrupted(argv, out, "particle model", tmp_path)


def _frames_file(path: Path, n: int) -> Path:
    """A plain HDF5 file of ``n`` 32×32 Poisson frames at /data/frames (compressed: small on disk)."""
    import h5py

    with h5py.File(path, "w") as f:
        data = np.random.default_rng(0).poisson(0.05, (n, 32, 32)).astype(np.float32)
        f.create_dataset("data/frames", data=data, chunks=(256, 32, 32), compression="gzip")
    return path


def test_ctrl_c_stops_ingest_and_beam_in_one_line_and_keeps_the_work_for_a_rerun(tmp_path):
    frames, out = _frames_file(tmp_path / "r0042.h5", 60_000), tmp_path / "real"
    argv = ["ingest", str(frames), "--dataset", "/data/frames", "--out", str(out), "--direct_num_workers=2"]
    _pipeline_interrupted(argv, out, "block", tmp_path)


# --- small datasets --------------------------------------------------------------------------------------


def test_ingest_warns_of_a_small_split_and_names_the_unit_size_that_fills_it(tmp_path, capfd):
    from spizoo.beam_pipelines import ingest
    from spizoo.beam_pipelines.config import DatasetConfig

    frames = _frames_file(tmp_path / "r0007.h5", 600)  # 3 blocks of the default 256 frames
    argv = ["ingest", str(frames), "--dataset", "/data/frames", "--out", str(tmp_path / "real"), *IN_MEMORY]
    assert cli.main(argv) == 0
    (warning,) = [line for line in capfd.readouterr().err.splitlines() if "warning" in line]
    size = int(re.search(r"--unit-size (\d+) gives every split at least 3", warning)[1])
    assert "of the 3 blocks of --unit-size 256 frames" in warning and "gets none" in warning
    splits = {"train": 0.8, "validation": 0.1, "test": 0.1}
    dataset = DatasetConfig(name="real", splits=splits, shards={"train": 4, "validation": 1, "test": 1})
    source = ingest.IngestSource(
        ingest.make_config([str(frames)], labels=None, dataset=dataset, image_dataset="/data/frames")
    )
    assert min(ingest.units_per_split(source, size).values()) >= 3
    assert min(ingest.units_per_split(source, size * 2).values()) < 3  # the largest blocks that fill every split
    argv[-3] = str(tmp_path / "filled")
    assert cli.main([*argv, "--unit-size", str(size)]) == 0
    assert "warning" not in capfd.readouterr().err


def test_generate_warns_of_an_empty_split_and_train_says_the_same_fix_before_tensorflow(tmp_path, capfd):
    data = tmp_path / "ds"
    sets = ["--set", "dataset.patterns=64"]  # 4 particle models of 16: none falls into validation
    assert cli.main(["generate", "configs/quickstart.yaml", "--out", str(data), *sets, *IN_MEMORY]) == 0
    err = capfd.readouterr().err
    warnings = [line for line in err.splitlines() if "warning" in line]
    config = experiment.load("configs/quickstart.yaml", ["dataset.patterns=64"])
    needed = generate.patterns_filling_splits(config)
    assert len(warnings) == 1 and "split 'validation' gets none" in warnings[0]
    assert f"--set dataset.patterns={needed}" in warnings[0] and "sim.patterns_per_model" in warnings[0]
    filled = generate.units_per_split(experiment.load("configs/quickstart.yaml", [f"dataset.patterns={needed}"]))
    fewer = generate.units_per_split(experiment.load("configs/quickstart.yaml", [f"dataset.patterns={needed - 16}"]))
    assert min(filled.values()) >= 3 > min(fewer.values())  # the fewest patterns that fill every split
    code = (
        "import sys\nfrom spizoo import cli\n"
        f"rc = cli.main(['train', 'configs/quickstart.yaml', '--data', {str(data)!r}, "
        f"'--out', {str(tmp_path / 'run')!r}])\n"
        "print(rc, 'tensorflow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["2", "False"]  # refused before TensorFlow loads
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith(f"spizoo train: error: {data} has no examples in its 'validation' split")
    assert (
        f"spizoo generate configs/quickstart.yaml --out {data} --overwrite --set dataset.patterns={needed}" in message
    )
    assert "its 4 went 3 to train and 1 to test" in message
    assert not (tmp_path / "run").exists()


def test_a_dataset_that_fills_its_splits_gets_no_warning():
    config = experiment.load("configs/data_spi_hits.yaml")
    assert generate.small_split_warning(config) is None
    small = experiment.load("configs/data_spi_hits.yaml", ["dataset.patterns=2000"])  # the help's old example
    assert "split 'validation' gets none" in generate.small_split_warning(small)


# --- plain errors ----------------------------------------------------------------------------------------


def _error(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_a_negative_seed_or_worker_count_is_refused_and_leaves_no_directory(tmp_path, capsys):
    out = tmp_path / "sim"
    with pytest.raises(SystemExit):
        cli.main(["simulate", "configs/quickstart.yaml", "-n", "2", "--out", str(out), "--seed", "-1"])
    assert "argument --seed: expected a non-negative integer, got -1" in _error(capsys)
    with pytest.raises(SystemExit):
        cli.main(["simulate", "configs/quickstart.yaml", "-n", "2", "--out", str(out), "--workers", "-3"])
    assert "argument --workers: expected a positive integer, got -3" in _error(capsys)
    assert cli.main(["simulate", "configs/quickstart.yaml", "-n", "2", "--out", str(out), "--set", "seed=-1"]) == 2
    assert _error(capsys) == "spizoo simulate: error: --set seed=-1: seed: expected a non-negative integer, got -1"
    assert cli.main(["generate", "configs/quickstart.yaml", "--out", str(out), "--set", "seed=-1"]) == 2
    assert "expected a non-negative integer" in _error(capsys)
    assert not out.exists() and not (tmp_path / "sim.incomplete").exists()


def test_an_error_of_a_set_value_is_not_blamed_on_the_config_file():
    with pytest.raises(ConfigError) as err:
        experiment.load("configs/quickstart.yaml", ["sim.detector.distance_m=1", "sim.detector.distanse_m=1"])
    assert str(err.value).startswith("--set sim.detector.distanse_m=1: sim.detector: unknown key 'distanse_m'")
    assert "(did you mean 'distance_m'?)" in str(err.value) and "configs/quickstart.yaml itself is fine" in str(
        err.value
    )
    with pytest.raises(ConfigError, match=r"^--set dataset.patterns=0: dataset: patterns must be >= 1"):
        experiment.load("configs/quickstart.yaml", ["seed=3", "dataset.patterns=0"])
    with pytest.raises(ConfigError, match=r"^--set nosuch.key=1: config: unknown key 'nosuch'"):
        experiment.load("configs/quickstart.yaml", ["seed=3", "nosuch.key=1"])


def test_a_fault_of_the_file_is_still_the_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 0\nsim: {kind: spi, detector: {distanse_m: 1}}\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(bad))}: sim.detector: unknown key 'distanse_m'"):
        experiment.load(bad, ["seed=1"])
    fixable = tmp_path / "fixable.yaml"  # a file that only an override makes valid loads with it
    fixable.write_text("dataset: {patterns: 0}\n")
    assert experiment.load(fixable, ["dataset.patterns=10"]).dataset.patterns == 10


def test_simulate_says_overwrite_in_the_commands_words(tmp_path, capsys):
    args = ["simulate", "configs/quickstart.yaml", "-n", "2", "--out", str(tmp_path), "--workers", "1"]
    assert cli.main([*args, "--set", "sim.detector.pixels=[16,16]"]) == 0
    capsys.readouterr()
    assert cli.main([*args, "--set", "sim.detector.pixels=[16,16]"]) == 2
    message = _error(capsys)
    cxi = tmp_path / "patterns.cxi"
    assert message == f"spizoo simulate: error: {cxi} exists; add --overwrite to replace it, or give another --out"


def test_server_errors_name_the_url():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server")
    args = parser.parse_args(["--server", "http://127.0.0.1:8501"])
    text = cli.error_message(ServingClientError("HTTP 404: Servable not found for request: Latest(nope)"), args, parser)
    assert text == "HTTP 404: Servable not found for request: Latest(nope) (model server http://127.0.0.1:8501)"
    said = ServingClientError("cannot reach the model server at http://127.0.0.1:8501: [Errno 111] Connection refused")
    assert cli.error_message(said, args, parser) == (
        "cannot reach the model server at http://127.0.0.1:8501: Connection refused"
    )


def test_predict_refuses_a_server_without_its_scheme_before_any_work(tmp_path, capsys):
    frames = tmp_path / "f.h5"
    import h5py

    with h5py.File(frames, "w") as f:
        f["entry_1/data_1/data"] = np.zeros((2, 8, 8), np.float32)
    assert cli.main(["predict", str(frames), "--server", "localhost:8501", "--model", "hits"]) == 2
    assert _error(capsys) == (
        "spizoo predict: error: --server localhost:8501: give the server's URL, http://HOST:PORT (REST) or "
        "grpc://HOST:PORT (gRPC), e.g. http://127.0.0.1:8501, and the model's name with --model"
    )
    assert cli.main(["predict", str(frames), "--server", "http://127.0.0.1:9", "--model", "hits"]) == 2
    assert "http://127.0.0.1:9" in _error(capsys)


def test_serve_on_a_busy_port_names_its_url(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = cli.main(["serve", "--model-base-path", str(tmp_path), "--rest-api-port", str(port), "--port", "0"])
    assert code == 2
    assert _error(capsys) == (
        f"spizoo serve: error: cannot serve REST on http://127.0.0.1:{port}: the address is in use (another "
        "server?); give another --rest-api-port (or --host)"
    )
