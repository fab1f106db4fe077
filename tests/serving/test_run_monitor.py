"""spizoo monitor on a European XFEL run directory that the DAQ is still writing: new sequence files of
EXtra-data's mock writer appear between scans."""

import csv

import h5py
import numpy as np
import pytest
from extra_data.tests.mockdata import write_file
from extra_data.tests.mockdata.detectors import AGIPDModule

from spizoo import cli
from spizoo.commands._common import load_predictor
from spizoo.data.frames import ViewFinder
from spizoo.serving.classify import classify_files
from spizoo.serving.monitor import RunMonitor
from spizoo.sim.geometry import Geometry

DETECTOR = "SPB_DET_AGIPD1M-1"
FRAMES_PER_TRAIN = 4


def write_sequence(run, sequence: int, first_train: int, trains: int = 5) -> None:
    """Sequence file ``sequence`` of each of the 16 AGIPD modules: ``trains`` trains from ``first_train``,
    with Poisson counts, as the DAQ adds them to a run."""
    rng = np.random.default_rng(sequence)
    for m in range(16):
        path = run / f"CORR-R0042-AGIPD{m:02d}-S{sequence:05d}.h5"
        module = AGIPDModule(f"{DETECTOR}/DET/{m}CH0", raw=False, frames_per_train=FRAMES_PER_TRAIN)
        write_file(str(path), [module], ntrains=trains, firsttrain=first_train, chunksize=32)
        with h5py.File(path, "r+") as f:
            data = f[f"INSTRUMENT/{DETECTOR}/DET/{m}CH0:xtdf/image/data"]
            data[:] = rng.poisson(0.05, data.shape).astype(np.float32)


def _rows(out):
    with open(out / "monitor.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def setup(runs, tmp_path):
    geom = Geometry.named("AGIPD-1M").write_crystfel(tmp_path / "agipd.geom")
    return load_predictor(str(runs["hits"][0])), ViewFinder(geom, pixels=(32, 32), bin=8), geom


def test_a_growing_run_is_classified_train_by_train_once_and_as_classify_does(setup, tmp_path):
    predictor, view, _ = setup
    run = tmp_path / "r0042"
    run.mkdir()
    monitor = RunMonitor(predictor, run, tmp_path / "out", view=view)
    assert monitor.poll()["notes"] == [f"no run files in {run} yet"]
    write_sequence(run, 0, 10000)
    assert monitor.poll()["new_frames"] == 4 * FRAMES_PER_TRAIN  # the newest train waits: files just changed
    assert monitor.poll()["new_frames"] == FRAMES_PER_TRAIN  # unchanged since: it is complete
    assert monitor.poll()["new_frames"] == 0
    write_sequence(run, 1, 10005)
    assert monitor.poll()["new_frames"] == 4 * FRAMES_PER_TRAIN
    # killed and restarted: it goes on after the last train done (the newest once it is seen unchanged),
    # and nothing is classified twice
    again = RunMonitor(predictor, run, tmp_path / "out", view=view)
    assert [again.poll()["new_frames"] for _ in range(3)] == [0, FRAMES_PER_TRAIN, 0]
    rows = _rows(tmp_path / "out")
    _, reference = classify_files(predictor, [run], tmp_path / "ref.h5", view=view)
    assert len(rows) == 10 * FRAMES_PER_TRAIN == len(reference["frame"])
    for key in ("train_id", "pulse_id", "cell_id"):
        assert [int(r[key]) for r in rows] == reference[key].tolist()
    assert [int(r["class"]) for r in rows] == reference["classes"].tolist()
    np.testing.assert_allclose([float(r["single_hit_score"]) for r in rows], reference["single_hit_score"], atol=1e-6)


def test_the_cli_watches_a_run_once_and_names_a_missing_detector(setup, tmp_path, capsys):
    _, _, geom = setup
    run = tmp_path / "r0043"
    run.mkdir()
    write_sequence(run, 0, 20000, trains=3)
    model = str(setup[0].description.removeprefix("run "))
    argv = ["monitor", model, str(run), "--geometry", str(geom), "--bin", "8", "--pixels", "32", "32"]
    assert cli.main([*argv, "--out", str(tmp_path / "m"), "--once"]) == 0
    out = capsys.readouterr().out
    assert f"watching the European XFEL run {run}" in out and "12 frames" in out
    assert len(_rows(tmp_path / "m")) == 3 * FRAMES_PER_TRAIN  # --once: the newest train too
    assert cli.main([*argv, "--out", str(tmp_path / "n"), "--once", "--source", "SPB_DET_AGIPD500K-1"]) == 0
    assert "no multi-module detector 'SPB_DET_AGIPD500K-1' in this run; it has: SPB_DET_AGIPD1M-1" in (
        capsys.readouterr().out
    )
