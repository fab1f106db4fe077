"""scripts/e1_scale_jax.py at a tiny scale on the CPU, with Keras on TensorFlow (the script's GPU nodes run it
on JAX): a paper-scale run leaves a run directory that spizoo's predictor serves with the outputs the run
recorded, ``rundir`` rebuilds the same directory from the run's files, and ``plot`` draws the curve."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spizoo import experiment
from spizoo.serving import predictor

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "scripts" / "e1_scale_jax.py")
DATA = [
    "--set", "sim.patterns_per_model=2", "--set", "data.crop=32", "--set", "data.batch_size=8",
    "--train-patterns", "128", "--validation-patterns", "32", "--epochs", "1",
    "--test-models", "12", "--precision", "float32", "--sim-processes", "1",
]  # fmt: skip


def script(*args):
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, SCRIPT, *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out, work = tmp_path_factory.mktemp("out"), tmp_path_factory.mktemp("work")
    args = ["run", "--out", str(out), "--work", str(work), *DATA, "--paper-seeds", "0", "--curve-seeds", "0"]
    script(*args, "--curve-halvings", "1", "--variants", "filters", "paper-cosine", "--processes", "1")
    return out, work


def test_runs_are_recorded_and_the_paper_run_is_a_run_directory_spizoo_serves(tiny):
    out, work = tiny
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert sorted((r["role"], r["train_patterns"], r.get("filters", r.get("schedule"))) for r in runs) == [
        ("curve", 64, None),
        ("paper", 128, None),
        ("variant", 8, True),  # a sixteenth of the paper's particle models, through the artefact filters
        ("variant", 128, "cosine"),
    ]
    assert all(r["complete"] and 0 <= r["test"]["accuracy"] <= 1 for r in runs)
    paper = next(r for r in runs if r["role"] == "paper")
    assert paper["complete"] and paper["epochs_done"] == 1 and paper["backend"] == "tensorflow"
    assert paper["test"]["patterns"] == 12 * 5 and 0 <= paper["test"]["accuracy"] <= 1

    run = out / "e1_paper_seed0"
    info = json.loads((run / "dataset_info.json").read_text())
    assert info["splits"]["train"]["patterns"] == 128 and info["splits"]["validation"]["models"] == 16
    low, high, integer = info["stats"]["values"]
    assert low == 0 and high > 1 and integer  # photon counts
    config = experiment.load(run / "config.yaml")
    assert config.seed == 0 and config.dataset.patterns == 160 and config.train.mixed_precision == "float32"

    # The predictor takes raw photons: undo the log the script stored the test images with.
    photons = (10.0 ** np.load(work / "test.npy").astype(np.float64) - 1.0).astype(np.float32)
    task = experiment.task(config)
    served = predictor.from_run(run, config.data, task).predict(photons)["probabilities"]
    with (run / "evaluation" / "patterns.csv").open() as f:
        rows = list(csv.DictReader(f))
    recorded = np.array([[float(r[f"p_{n}"]) for n in task.labels] for r in rows])
    np.testing.assert_allclose(served, recorded, atol=2e-4)
    report = json.loads((run / "evaluation" / "report.json").read_text())
    assert report["accuracy"] == paper["test"]["accuracy"] and report["accuracy_by"]["class"]
    cosine = experiment.load(out / "e1_paper_seed0_cosine" / "config.yaml")
    assert cosine.train.schedule == "cosine" and config.train.schedule == "constant"


def test_artefact_filters_replace_each_training_pattern_by_one_filtered_copy():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import e1_scale_jax
    finally:
        sys.path.pop(0)
    rng = np.random.default_rng(0)
    images = np.log10(1.0 + rng.poisson(50.0 * rng.random((40, 16, 16)))).astype(np.float32)
    rows = np.arange(3, 40, 2)
    filtered = e1_scale_jax._artefact_filtered(images, rows, seed=5)
    assert filtered.shape == (len(rows), 16, 16) and filtered.dtype == np.float32
    changed = [not np.array_equal(f, images[r]) for f, r in zip(filtered, rows, strict=True)]
    assert sum(changed) > len(rows) // 2  # ten of the eleven filters change a pattern (identity does not)
    for f, r in zip(filtered, rows, strict=True):  # each filter keeps the pattern's range
        assert images[r].min() - 1e-6 <= f.min() and f.max() <= images[r].max() + 1e-6
    np.testing.assert_array_equal(filtered, e1_scale_jax._artefact_filtered(images, rows, seed=5))  # seeded


def test_rundir_rebuilds_the_run_directory_from_the_files_of_an_earlier_run(tiny, tmp_path):
    out, _ = tiny
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    shutil.copy(out / "e1_paper_seed0" / "best.keras", earlier / "e1_paper_seed0.keras")
    shutil.copy(out / "e1_paper_seed0" / "evaluation" / "patterns.csv", earlier / "patterns_paper_seed0.csv")
    shutil.copy(out / "runs.jsonl", earlier / "runs.jsonl")
    rebuilt = tmp_path / "rebuilt"
    script("rundir", str(earlier / "runs.jsonl"), "--out", str(rebuilt), "--work", str(tmp_path / "w"), *DATA)
    for name in ("dataset_info.json", "config.yaml", "history.csv", "evaluation/patterns.csv"):
        assert (rebuilt / "e1_paper_seed0" / name).read_text() == (out / "e1_paper_seed0" / name).read_text(), name


def test_plot_draws_the_learning_curve(tiny, tmp_path):
    out, _ = tiny
    png = tmp_path / "curve.png"
    done = script("plot", str(out / "runs.jsonl"), "--out", str(png))
    assert png.stat().st_size > 0 and "| 128 | 1 |" in done.stdout
