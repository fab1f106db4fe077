import csv
import importlib
import json
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from spizoo import cli
from spizoo.commands import VERBS, simulate
from spizoo.core.labels import CLASS_NAMES
from spizoo.experiment import load
from spizoo.sim import spi

QUICK = ["--set", "sim.patterns_per_model=8", "--set", "sim.detector.pixels=[32,32]"]


def test_simulate_writes_cxi_contact_sheet_and_config(tmp_path, capsys):
    out = tmp_path / "sim"
    assert (
        cli.main(["simulate", "configs/quickstart.yaml", "-n", "12", "--out", str(out), "--workers", "1", *QUICK]) == 0
    )
    line, *rows = capsys.readouterr().out.strip().splitlines()
    assert line.startswith("spizoo simulate: wrote ") and " single, " in line and "contact_sheet.png" in line
    assert rows[0].split() == ["patterns", str(out / "patterns.cxi"), "(12", "frames)"]
    assert rows[-1].split()[:4] == ["next", "spizoo", "generate", "configs/quickstart.yaml"]
    assert len({re.match(r"  \S.*?\s{2,}(?=\S)", row).end() for row in rows}) == 1  # values in one column
    assert (
        cli.main(
            ["simulate", "configs/quickstart.yaml", "-n", "12", "--out", str(out), "--overwrite", *QUICK, "--json"]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert sum(summary["classes"].values()) == 12 and set(summary["classes"]) == set(CLASS_NAMES)
    cfg = load(out / "config.yaml")
    assert cfg == load("configs/quickstart.yaml", ["sim.patterns_per_model=8", "sim.detector.pixels=[32,32]"])
    png = (out / "contact_sheet.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    with h5py.File(out / "patterns.cxi", "r") as f:
        data = f["entry_1/data_1/data"]  # the soft link
        assert data.shape == (12, 32, 32) and data.dtype == np.float32
        assert f["cxi_version"][()] == 150
        det = f["entry_1/instrument_1/detector_1"]
        p = spi.simulate_pattern(cfg.sim, cfg.seed, 9)
        np.testing.assert_array_equal(data[9], p.image)
        np.testing.assert_array_equal(det["mask"][9], p.mask)
        assert det["distance"][9] == pytest.approx(p.model.detector.distance_m)
        assert det["x_pixel_size"][9] == pytest.approx(p.model.detector.pixel_size_um * 1e-6)
        energy_ev = f["entry_1/instrument_1/source_1/energy"][9] / 1.602176634e-19
        assert energy_ev == pytest.approx(p.model.photon_energy_eV)
        extras = f["entry_1/spizoo"]
        assert extras["label"][9] == p.label and extras["shape"][9].decode() == p.model.shape
        np.testing.assert_array_equal(extras["quaternions"][9][: p.n_particles], p.quaternions.astype(np.float32))


def test_parallel_workers_write_the_same_file(tmp_path):
    cfg = load("configs/quickstart.yaml", ["sim.patterns_per_model=4", "sim.detector.pixels=[32,32]"])
    simulate.simulate(cfg, 10, tmp_path / "one", workers=1)
    simulate.simulate(cfg, 10, tmp_path / "two", workers=2)
    for name in ("patterns.cxi", "contact_sheet.png", "config.yaml"):  # every byte, not only the images
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_a_failed_run_leaves_no_cxi_file(tmp_path, monkeypatch):
    def broken(sim, seed, n, workers):
        yield from spi.simulate(sim, seed, 2)
        raise RuntimeError("killed")

    monkeypatch.setattr(simulate, "iterate_patterns", broken)
    cfg = load("configs/quickstart.yaml", ["sim.patterns_per_model=4", "sim.detector.pixels=[32,32]"])
    with pytest.raises(RuntimeError, match="killed"):
        simulate.simulate(cfg, 6, tmp_path, workers=1)
    assert not (tmp_path / "patterns.cxi").exists()
    assert not list(tmp_path.glob("*.partial"))


def test_existing_output_needs_overwrite(tmp_path, capsys):
    args = ["simulate", "configs/quickstart.yaml", "-n", "2", "--out", str(tmp_path), "--workers", "1", *QUICK]
    assert cli.main(args) == 0
    assert cli.main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main([*args, "--overwrite"]) == 0


def test_bad_config_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    code = cli.main(
        ["simulate", "configs/quickstart.yaml", "--out", str(tmp_path), "--set", "sim.particle.shapes={cube: 1}"]
    )
    assert code == 2
    assert "shape must be one of" in capsys.readouterr().err


def test_help_shows_an_example(capsys):
    with pytest.raises(SystemExit):
        cli.main(["simulate", "--help"])
    assert "spizoo simulate configs/quickstart.yaml" in capsys.readouterr().out


@pytest.mark.parametrize("verb", list(VERBS))
def test_every_verb_has_an_example_a_summary_line_and_json(verb):
    module = importlib.import_module(f"spizoo.commands.{verb.replace('-', '_')}")
    assert "example:\n      spizoo " in module.DESCRIPTION or "example:\n      spizoo" in module.DESCRIPTION
    assert callable(module.run) and callable(module.summary_line)
    options = [o for a in cli.build_parser(verb).verb_parser._actions for o in a.option_strings]
    assert "--json" in options and "--verbose" in options


def test_spizoo_help_imports_no_verb_and_no_heavy_library():
    heavy = ("spizoo.commands.", "tensorflow", "keras", "apache_beam")
    code = f"import sys, spizoo.cli; print(sorted(m for m in sys.modules if m.startswith({heavy})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_killed_run_leaves_no_cxi_and_a_rerun_completes_it(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    args = [sys.executable, "-m", "spizoo.cli", "simulate", "configs/quickstart.yaml", "-n", "3000", "--workers", "1"]
    proc = subprocess.Popen(
        [*args, "--out", str(tmp_path / "run")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    partial = tmp_path / "run" / "patterns.cxi.partial"
    deadline = time.monotonic() + 60
    while not partial.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)  # mid-way through writing
    assert proc.poll() is None, "the run finished before it could be killed; raise -n"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "run" / "patterns.cxi").exists()

    subprocess.run([*args, "--out", str(tmp_path / "run")], check=True, capture_output=True)  # the same command
    assert not partial.exists()
    config = load(tmp_path / "run" / "config.yaml")
    with h5py.File(tmp_path / "run/patterns.cxi") as f:
        data, labels = f["entry_1/data_1/data"], f["entry_1/spizoo/label"]
        assert data.shape[0] == 3000 and labels.shape == (3000,)
        for i in (0, 1499, 2999):  # first, middle and last pattern of the completed run
            expected = spi.simulate_pattern(config.sim, config.seed, i)
            np.testing.assert_array_equal(data[i], expected.image)
            assert labels[i] == expected.label


MSFT_SMALL = ["--set", "sim.columns=48", "--set", "sim.detector.pixels=[32,32]"]


def test_simulate_msft_stores_regression_labels_and_the_augmentation_sheet(tmp_path):
    out = tmp_path / "msft"
    args = ["simulate", "configs/sim_msft.yaml", "-n", "3", "--out", str(out), "--workers", "1", "--augment"]
    assert cli.main([*args, *MSFT_SMALL]) == 0
    assert (out / "augment.png").stat().st_size > 10_000
    cfg = load(out / "config.yaml")
    p = __import__("spizoo.sim.wideangle", fromlist=["x"]).simulate_pattern(cfg.sim, cfg.seed, 2)
    with h5py.File(out / "patterns.cxi") as f:
        np.testing.assert_array_equal(f["entry_1/data_1/data"][2], p.image)
        np.testing.assert_allclose(f["entry_1/spizoo/quaternion"][2], p.quaternion, rtol=1e-6)
        assert f["entry_1/spizoo/radius_nm"][2] == pytest.approx(p.radius_nm)
        np.testing.assert_allclose(f["entry_1/spizoo/target"][2], p.target(), rtol=1e-5, atol=1e-6)
        wavelength = f["entry_1/instrument_1/source_1/wavelength"][2]
        assert wavelength == pytest.approx(13.5e-9)


def test_fit_pattern_reports_parameters_errors_and_cost(tmp_path, capsys):
    sim = tmp_path / "msft"
    assert (
        cli.main(["simulate", "configs/sim_msft.yaml", "-n", "2", "--out", str(sim), "--workers", "1", *MSFT_SMALL])
        == 0
    )
    capsys.readouterr()
    args = [
        "fit-pattern",
        "configs/sim_msft.yaml",
        str(sim / "patterns.cxi"),
        "--index",
        "1",
        "--out",
        str(tmp_path / "fit"),
    ]
    assert cli.main([*args, "--starts", "2", "--iterations", "10", *MSFT_SMALL, "--json"]) == 0

    report = json.loads((tmp_path / "fit" / "fit_1.json").read_text())
    assert report["forward_simulations"] >= 20 and report["starts"] == 2
    assert 0 <= report["mean_relative_error"] <= report["max_relative_error"]
    assert (tmp_path / "fit" / "fit_1.png").exists()
    assert '"radius_nm"' in capsys.readouterr().out


def test_fit_summary_gathers_the_fits_and_compares_the_network_on_the_same_patterns(tmp_path, runs, capsys):
    import json

    sim = tmp_path / "fits"
    assert (
        cli.main(["simulate", "configs/sim_msft.yaml", "-n", "3", "--out", str(sim), "--workers", "1", *MSFT_SMALL])
        == 0
    )
    assert cli.main(["fit-summary", str(sim)]) == 2
    assert "no fit_<i>/fit_<i>.json" in capsys.readouterr().err
    for i in range(3):
        args = ["fit-pattern", "configs/sim_msft.yaml", str(sim / "patterns.cxi"), "--index", str(i)]
        assert cli.main([*args, "--out", str(sim / f"fit_{i}"), "--starts", "2", "--iterations", "8", *MSFT_SMALL]) == 0
    regressor = runs["sizes"][0]  # trained on 32 x 32 MSFT patterns
    assert cli.main(["fit-summary", str(sim), "--model", str(regressor)]) == 0
    summary = json.loads((sim / "summary.json").read_text())
    reports = [json.loads((sim / f"fit_{i}" / f"fit_{i}.json").read_text()) for i in range(3)]
    finals = [r["mean_relative_error"] for r in reports]
    assert summary["patterns"] == 3
    assert summary["forward_fit"]["median_mean_relative_error"] == pytest.approx(np.median(finals))
    curve = summary["curve"]
    assert curve["forward_simulations"][-1] == max(r["forward_simulations"] for r in reports)
    assert curve["median"][-1] == pytest.approx(np.median(finals))  # every fit has finished by the last budget
    assert all(a <= m <= b for a, m, b in zip(curve["q05"], curve["median"], curve["q95"], strict=True) if m == m)
    network = summary["network"]
    assert len(network["per_pattern"]) == 3 and network["median_seconds_per_pattern"] > 0
    assert all(0 <= p["mean"] <= p["max"] for p in network["per_pattern"])
    assert (sim / "error_vs_simulations.png").stat().st_size > 10_000
    assert "network" in capsys.readouterr().out
    assert cli.main(["fit-summary", str(sim), "--model", str(runs["hits"][0])]) == 2
    assert "not a (quaternion, radius) regressor" in capsys.readouterr().err


def test_fit_pattern_errors_are_clear(tmp_path, capsys):
    assert cli.main(["fit-pattern", "configs/sim_spi.yaml", "missing.cxi", "--out", str(tmp_path)]) == 2
    assert "needs a config with sim.kind: msft" in capsys.readouterr().err
    assert (
        cli.main(["fit-pattern", "configs/sim_msft.yaml", str(tmp_path / "missing.cxi"), "--out", str(tmp_path)]) == 2
    )
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["fit-pattern", "configs/sim_msft.yaml", "x.cxi", "--index", "-1", "--out", str(tmp_path)]) == 2
    assert "--index must be a frame number >= 0, got -1" in capsys.readouterr().err
    assert not list(tmp_path.glob("fit_*"))
    bad = tmp_path / "bad.h5"
    h5py.File(bad, "w").create_dataset("images", data=np.zeros((2, 8, 8)))
    assert cli.main(["fit-pattern", "configs/sim_msft.yaml", str(bad), "--out", str(tmp_path)]) == 2
    assert "no image stack at /entry_1/data_1/data; its 2-D and 3-D datasets are: /images (2, 8, 8)" in (
        capsys.readouterr().err
    )


def test_generate_passes_unknown_options_to_beam_and_other_verbs_reject_them(tmp_path, capfd):
    args = ["generate", "configs/quickstart.yaml", "--out", str(tmp_path / "ds"), "--set", "dataset.patterns=32"]
    assert cli.main([*args, "--runner=DirectRunner", "--direct_running_mode=in_memory", "--json"]) == 0
    out, err = capfd.readouterr()
    summary = json.loads(out)
    assert not [line for line in err.splitlines() if "apitools" in line or line.startswith(("INFO", "I0000"))]
    assert summary["counters"]["patterns_train"] == summary["splits"]["train"]["examples"] > 0
    assert (tmp_path / "ds" / "dataset_info.json").exists()
    for typo, hint in (["-n", "32"], "-n"), (["--overwite"], "did you mean --overwrite?"):
        with pytest.raises(SystemExit):
            cli.main([*args, "--out", str(tmp_path / "typo"), *typo])
        err = capfd.readouterr().err
        assert f"unrecognized arguments: {typo[0]}" in err and hint in err and "Apache Beam" in err
        assert not (tmp_path / "typo").exists() and not (tmp_path / "typo.incomplete").exists()
    with pytest.raises(SystemExit):
        cli.main(["simulate", "configs/quickstart.yaml", "--out", str(tmp_path), "--runner=DirectRunner"])
    assert "unrecognized arguments: --runner=DirectRunner" in capfd.readouterr().err


def test_ctrl_c_is_one_line_not_a_traceback(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(simulate, "run", interrupted)
    assert cli.main(["simulate", "configs/quickstart.yaml", "--out", "unused"]) == 130
    captured = capsys.readouterr()
    assert (
        captured.err == "spizoo simulate: interrupted; no patterns.cxi was written (the same command starts afresh)\n"
    )
    assert captured.out == ""
    classify = importlib.import_module("spizoo.commands.classify")  # a verb without words of its own
    monkeypatch.setattr(classify, "run", lambda args, beam_args: interrupted(args))
    assert cli.main(["classify", "run", "f.cxi", "--out", "unused.h5"]) == 130
    assert capsys.readouterr().err == "spizoo classify: interrupted; the same command resumes or starts afresh\n"


# --- Issue 18: plain errors instead of Python's --------------------------------------------------------


@pytest.fixture
def paths(tmp_path):
    """A file, a directory holding a CXI file and a models.config, and a made-up training run."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    (tmp_path / "adir" / "patterns.cxi").write_bytes(b"")
    (tmp_path / "adir" / "models.config").write_text("model_config_list {}\n")
    run = tmp_path / "run"
    run.mkdir()
    for name in ("best.keras", "history.csv", "config.yaml"):
        (run / name).write_text("")
    return tmp_path


def _one_line_error(capsys, verb):
    err = capsys.readouterr().err.split("\r")[-1]  # what a terminal shows after a progress bar cleared itself
    assert err.count("\n") == 1 and err.startswith(f"spizoo {verb}: error: "), err
    assert "Errno" not in err and "Traceback" not in err, err
    return err


SERVER = ["--server", "http://127.0.0.1:9", "--model", "hits"]
WRONG_PATHS = [
    (
        ["train", "configs/quickstart.yaml", "--data", "{f}", "--out", "{p}/new"],
        "--data {f} is a file, not a directory",
    ),
    (["train", "{d}", "--data", "{d}", "--out", "{p}/new"], "CONFIG {d} is a directory, not a file"),
    (["train", "configs/quickstart.yaml", "--data", "{d}", "--out", "{f}"], "--out {f} is a file, not a directory"),
    (["train", "configs/quickstart.yaml", "--data", "{d}", "--out", "{f}/new"], "--out {f}/new: {f} is a file"),
    (["evaluate", "{f}", "--data", "x"], "RUN_DIR {f} is a file, not a directory"),
    (["evaluate", "{p}/run", "--data", "{d}"], "--data {d} is a directory; give a glob of its shards in quotes"),
    (
        ["fit-pattern", "configs/sim_msft.yaml", "{d}", "--out", "{p}/new"],
        "CXI {d} is a directory, not a file; did you mean {d}/patterns.cxi?",
    ),
    (["fit-pattern", "configs/sim_msft.yaml", "{f}", "--out", "{f}"], "--out {f} is a file, not a directory"),
    (["fit-pattern", "{d}", "{f}", "--out", "{p}/new"], "CONFIG {d} is a directory, not a file"),
    (["fit-summary", "{f}"], "DIRECTORY {f} is a file, not a directory"),
    (["predict", "{d}", *SERVER], "FILE {d} is a directory, not a file; did you mean {d}/patterns.cxi?"),
    (["predict", "{f}", *SERVER, "--out", "{d}"], "--out {d} is a directory; give the name of a file"),
    (["predict", "{f}", *SERVER, "--out", "{f}/rows.csv"], "--out {f}/rows.csv: {f} is a file, not a directory"),
    (["serve", "--model-config-file", "{d}"], "--model-config-file {d} is a directory, not a file; did you mean"),
    (
        ["serve", "--model-base-path", "{d}", "--enable-batching", "--batching-parameters-file", "{d}"],
        "--batching-parameters-file {d} is a directory, not a file",
    ),
    (["monitor", "{d}", "{f}", "--once"], "DIRECTORY {f} is a file, not a directory"),
    (["monitor", "{d}", "{d}", "--out", "{f}", "--once"], "--out {f} is a file, not a directory"),
    # Verbs of others reach the dispatcher with Python's OSError: it says the same in plain words.
    (["simulate", "configs/quickstart.yaml", "-n", "2", "--out", "{f}"], "--out {f} is a file, not a directory"),
    (["simulate", "{d}", "-n", "2", "--out", "{p}/new"], "{d} is a directory, not a"),
]


@pytest.mark.parametrize("argv, message", WRONG_PATHS, ids=[" ".join(a[:1] + a[-2:]) for a, _ in WRONG_PATHS])
def test_a_file_for_a_directory_or_a_directory_for_a_file_is_one_plain_line(paths, capsys, argv, message):
    fill = {"f": paths / "afile", "d": paths / "adir", "p": paths}
    before = sorted(p.relative_to(paths) for p in paths.rglob("*"))
    assert cli.main([a.format(**fill) for a in argv]) == 2
    assert message.format(**fill) in _one_line_error(capsys, argv[0])
    assert sorted(p.relative_to(paths) for p in paths.rglob("*")) == before  # nothing made, nothing half-written


def test_python_os_errors_in_plain_words(tmp_path):
    import argparse
    import errno

    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--out")
    args = parser.parse_args([str(tmp_path / "c.yaml"), "--out", str(tmp_path / "o")])
    message = lambda err: cli.error_message(err, args, parser)  # noqa: E731
    assert message(IsADirectoryError(errno.EISDIR, "Is a directory", str(tmp_path / "c.yaml"))) == (
        f"CONFIG {tmp_path / 'c.yaml'} is a directory, not a file"
    )
    missing = tmp_path / "o" / "deeper" / "x.csv"
    assert message(FileNotFoundError(errno.ENOENT, "No such file or directory", str(missing))) == (
        f"--out {missing} cannot be made: its directory {missing.parent} does not exist"
    )
    assert message(PermissionError(errno.EACCES, "Permission denied", "/etc/x")) == (
        "/etc/x cannot be accessed: permission denied"
    )
    assert message(FileExistsError("version 3 of hits exists")) == "version 3 of hits exists"  # spizoo's own
    assert message(OSError(errno.EISDIR, "Is a directory", "a.partial", None, "b")) == (
        "cannot move a.partial to b: is a directory, not a file"
    )
    assert message(ValueError("line one\n  line two")) == "line one line two"


def test_serve_names_a_missing_models_config_and_what_writes_one(tmp_path, capsys):
    missing = tmp_path / "models" / "models.config"
    assert cli.main(["serve", "--model-config-file", str(missing)]) == 2
    err = _one_line_error(capsys, "serve")
    assert f"--model-config-file {missing}: no such file" in err and "spizoo export RUN" in err


def test_serve_refuses_a_training_run_as_base_path(runs, paths, capsys):
    run = runs["hits"][0]
    assert cli.main(["serve", "--model-base-path", str(run), "--port", "0", "--rest-api-port", "0"]) == 2
    err = _one_line_error(capsys, "serve")
    assert f"base path {run} looks like a training run" in err
    assert f"`spizoo export {run} --name NAME --base-path BASE_PATH` makes one" in err
    config = paths / "listing_a_run.config"
    config.write_text(f'model_config_list {{ config {{ name: "hits" base_path: "{run}" }} }}\n')
    assert cli.main(["serve", "--model-config-file", str(config), "--port", "0", "--rest-api-port", "0"]) == 2
    assert "model hits: base path" in _one_line_error(capsys, "serve")
    assert cli.main(["serve", "--model-base-path", str(paths / "adir"), "--port", "0"]) == 2  # a BASE_PATH
    assert f"--model-config-file {paths / 'adir' / 'models.config'}" in _one_line_error(capsys, "serve")


def _fake_server(monkeypatch, calls=None):
    """``spizoo predict`` against a model server faked in-process: class = the frame's first pixel mod 5."""
    from spizoo.commands import predict
    from spizoo.serving.predictor import Predictor

    def make(url):
        def run(frames):
            if calls is not None:
                calls.append(len(frames))
                if len(calls) > 2:
                    raise ValueError("the server went away")
            classes = frames[:, 0, 0].astype(int) % 5
            probabilities = np.eye(5, dtype=np.float32)[classes]
            return {"classes": classes, "probabilities": probabilities, "single_hit_score": probabilities[:, 1]}

        return Predictor(run, url, 0.5, "given")

    monkeypatch.setattr(predict, "from_server", make)


def _plain_h5(path, frames=40):
    images = np.zeros((frames, 8, 8), np.float32)
    images[:, 0, 0] = np.arange(frames)
    with h5py.File(path, "w") as f:
        f["data/frames"] = images


def test_predict_reads_plain_hdf5_with_dataset_and_says_so_when_it_is_missing(tmp_path, monkeypatch, capsys):
    _fake_server(monkeypatch)
    _plain_h5(tmp_path / "run.h5")
    assert cli.main(["predict", str(tmp_path / "run.h5"), *SERVER]) == 2
    err = _one_line_error(capsys, "predict")
    assert "no image stack at /entry_1/data_1/data" in err and "name the image stack with --dataset" in err
    assert "e.g. --dataset /data/frames" in err
    assert cli.main(["predict", str(tmp_path / "run.h5"), *SERVER, "--dataset", "/nope"]) == 2
    assert "give another --dataset" in _one_line_error(capsys, "predict")
    out = tmp_path / "new" / "rows.csv"
    assert cli.main(["predict", str(tmp_path / "run.h5"), *SERVER, "--dataset", "/data/frames", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [int(r["classes"]) for r in rows] == [i % 5 for i in range(40)]
    line, *rows = capsys.readouterr().out.strip().splitlines()
    assert line == f"spizoo predict: 40 frames predicted into {out}; frames per class: " + ", ".join(
        f"{name} 8" for name in CLASS_NAMES
    )
    assert rows[1].split() == ["rows", str(out)]
    assert rows[2].split()[:5] == ["next", "spizoo", "classify", "http://127.0.0.1:9/hits", str(tmp_path / "run.h5")]
    assert "--dataset /data/frames" in rows[2]


def test_predict_without_out_prints_a_preview_not_every_row(tmp_path, monkeypatch, capsys):
    _fake_server(monkeypatch)
    _plain_h5(tmp_path / "run.h5")
    args = ["predict", str(tmp_path / "run.h5"), *SERVER, "--dataset", "data/frames"]
    assert cli.main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 10  # five rows, how many more, the summary: its headline, server, rows and next
    assert [json.loads(line)["frame"] for line in lines[:5]] == [0, 1, 2, 3, 4]
    assert json.loads(lines[1])["probabilities"] == [0, 1, 0, 0, 0]
    assert lines[5] == "… and 35 more rows; --out FILE.csv writes all 40"
    assert lines[6].startswith("spizoo predict: 40 frames predicted; frames per class: none 8, single 8")
    assert cli.main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 40 and len(summary["first_rows"]) == 5 and summary["frames_per_class"]["4+"] == 8


def test_predict_leaves_nothing_behind_when_the_server_fails_midway(tmp_path, monkeypatch, capsys):
    calls = []
    _fake_server(monkeypatch, calls)
    _plain_h5(tmp_path / "run.h5")
    out = tmp_path / "rows.csv"
    args = ["predict", str(tmp_path / "run.h5"), *SERVER, "--dataset", "/data/frames", "--batch-size", "16"]
    assert cli.main([*args, "--out", str(out)]) == 2
    assert "the server went away" in _one_line_error(capsys, "predict")
    assert calls == [16, 16, 8] and sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]


def _help(verb, capsys):
    with pytest.raises(SystemExit):
        cli.main([verb, "--help"])
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("verb", list(VERBS))
def test_help_shows_every_default(verb, capsys):
    text = _help(verb, capsys)
    for action in cli.build_parser(verb).verb_parser._actions:
        if action.default in (None, False, [], "==SUPPRESS==") or not action.option_strings:
            continue
        help_text = " ".join((action.help or "").split()).replace("%(default)s", str(action.default))
        if "default" in help_text:  # says it in words
            assert help_text in text
        else:
            assert f"{help_text} (default: {action.default})" in text, action.option_strings


def test_help_of_the_edited_verbs_gives_the_values(capsys):
    assert "frames per request (default: 16)" in _help("predict", capsys)
    assert "gRPC port (default: 8500)" in _help("serve", capsys)
    assert "random starting points (default: 50)" in _help("fit-pattern", capsys)
    assert "frames in the running hit rate (default: 500)" in _help("monitor", capsys)
    assert "false-positive rate for the single-hit threshold (default: 0.01)" in _help("evaluate", capsys)


def test_an_error_raised_inside_a_traced_tensorflow_function_is_its_own_message():
    import argparse

    import tensorflow as tf

    from spizoo.data.pipeline import DataConfig, preprocess

    cfg = DataConfig(crop=128)
    with pytest.raises(ValueError) as raised:
        tf.function(lambda x: preprocess(x, cfg, {}))(np.zeros((1, 64, 64), np.float32))
    assert str(raised.value).startswith("in user code:")  # TensorFlow's traced lines, then the message
    message = cli.error_message(raised.value, argparse.Namespace(), argparse.ArgumentParser())
    assert message == (
        "frames of 64x64 pixels are smaller than the model's input, their central 128x128 pixels (data.crop=128)"
    )
