"""scripts/e4_scale_jax.py at a tiny scale on the CPU, with Keras on TensorFlow (its GPU nodes run it on JAX):
each training pattern is its copies through the filters, identity first, with its target; each run leaves a
run directory that spizoo's predictor serves with the errors the run reported."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spizoo import experiment
from spizoo.data.pipeline import centre_crop
from spizoo.serving import predictor
from spizoo.sim import icosahedral, wideangle

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "scripts" / "e4_scale_jax.py")
SETS = ["--set", "sim.detector.pixels=[32, 32]", "--set", "sim.columns=16", "--set", "data.crop=32"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out, work = tmp_path_factory.mktemp("out"), tmp_path_factory.mktemp("work")
    args = [
        "run", "--out", str(out), "--work", str(work), *SETS, "--set", "data.batch_size=8",
        "--train-patterns", "12", "--copies", "3", "--validation-patterns", "8", "--test-patterns", "10",
        "--epochs", "2", "--seeds", "0", "1", "--precision", "float32", "--sim-processes", "2",
    ]  # fmt: skip
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, SCRIPT, *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return out, work


def test_each_training_pattern_is_its_filtered_copies_identity_first(tiny):
    _, work = tiny
    config = experiment.load(ROOT / "configs/experiments/e4_resnet34_msft.yaml", [s for s in SETS if s != "--set"])
    images, targets = np.load(work / "train.npy"), np.load(work / "train_targets.npy")
    assert images.shape == (12 * 3, 32, 32) and targets.shape == (12, 5)
    for i in (0, 7, 11):  # blocks of the simulation: every pattern where it belongs
        p = wideangle.simulate_pattern(config.sim, config.seed, i)
        np.testing.assert_array_equal(images[3 * i], centre_crop(p.image, 32))  # the paper's first filter: identity
        assert not np.array_equal(images[3 * i + 1], images[3 * i])  # uniform noise, then salt and pepper
        np.testing.assert_allclose(targets[i], p.target(config.sim.circumradius_nm), atol=1e-6)
    p = wideangle.simulate_pattern(config.sim, config.seed, 12)  # validation follows training, as simulated
    np.testing.assert_array_equal(np.load(work / "validation.npy")[0], centre_crop(p.image, 32))


def test_runs_are_recorded_and_each_is_a_run_directory_spizoo_serves(tiny):
    out, work = tiny
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert sorted(r["seed"] for r in runs) == [0, 1]
    for r in runs:
        assert r["complete"] and r["epochs_done"] == 2 and r["train_images"] == 36 and r["test"]["patterns"] == 10
        run = out / f"e4_seed{r['seed']}"
        config = experiment.load(run / "config.yaml")
        assert config.augment.copies == 3 and config.augment.filters[:2] == ("identity", "uniform_noise")
        report = json.loads((run / "evaluation" / "report.json").read_text())
        assert report == r["test"] and (run / "evaluation" / "relative_errors.png").stat().st_size > 0

        # The served radius, in nm, against the true one: the run's error for the radius (seed 001 appendix
        # C: the error over the parameter's range).
        served = predictor.from_run(run, config.data, experiment.task(config)).predict(np.load(work / "test.npy"))
        low, high = config.sim.circumradius_nm
        _, true_radius = icosahedral.decode_target(np.load(work / "test_targets.npy"), (low, high))
        error = np.mean(np.abs(served["radius_nm"].ravel() - true_radius)) / (high - low)
        assert error == pytest.approx(report["mean_error_by_parameter"]["radius"], abs=1e-4)
