"""Shared fixtures: tiny, fast simulator configs, and small trained and exported models."""

import h5py
import numpy as np
import pytest
from extra_data.tests import make_examples
from mock_runs import euxfel_module_file  # tests/ is on the path

from spizoo.beam_pipelines import generate
from spizoo.commands.export import export_run
from spizoo.experiment import load
from spizoo.models import training


@pytest.fixture(scope="session")
def quick_cfg():
    """The quickstart config with a small detector, 8 patterns per model."""
    return load("configs/quickstart.yaml", ["sim.patterns_per_model=8", "sim.detector.pixels=[32,32]"]).sim


IN_MEMORY = ["--runner=DirectRunner", "--direct_running_mode=in_memory"]
CLASSIFIER = [
    "dataset.patterns=96",
    "sim.patterns_per_model=4",
    "sim.detector.pixels=[32,32]",
    "dataset.splits={train: 0.6, validation: 0.2, test: 0.2}",
    "dataset.shards={train: 1, validation: 1, test: 1}",
    "data.crop=24",
    "data.batch_size=16",
    "model.options={stack_blocks: [1, 1]}",
    "train.epochs=1",
    "train.mixed_precision=float32",
]
REGRESSOR = [
    "dataset.patterns=48",
    "dataset.unit_size=6",
    "sim.columns=32",
    "sim.detector.pixels=[32,32]",
    "data.crop=32",
    "data.batch_size=8",
    "train.epochs=1",
    "train.mixed_precision=float32",
]


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """Trained runs and their datasets: {"hits": (run, data), "sizes": (run, data)}."""
    root = tmp_path_factory.mktemp("serving")
    out = {}
    for name, config_file, overrides in (
        ("hits", "configs/quickstart.yaml", CLASSIFIER),
        ("sizes", "configs/quickstart_msft.yaml", REGRESSOR),
    ):
        config = load(config_file, overrides)
        generate.run(config, root / f"{name}_ds", IN_MEMORY)
        training.train(config, root / f"{name}_ds", root / f"{name}_run")
        out[name] = (root / f"{name}_run", root / f"{name}_ds")
    return out


@pytest.fixture(scope="session")
def exported(runs, tmp_path_factory):
    """A base path with version 1 of both models, made once; tests copy it before changing it."""
    base = tmp_path_factory.mktemp("models")
    for name, (run, _) in runs.items():
        export_run(run, base, name)
    return base


@pytest.fixture(scope="session")
def euxfel_run(tmp_path_factory):
    """make_spb_run's calibrated AGIPD-1M run (64 trains of 64 frames), with Poisson counts written into the
    first two trains of every module and module 3's first frame flagged bad in its first 100 rows."""
    path = tmp_path_factory.mktemp("r0238")
    make_examples.make_spb_run(str(path), raw=False)
    rng = np.random.default_rng(0)
    for m in range(16):
        name, group = euxfel_module_file(path, m)
        with h5py.File(name, "r+") as f:
            f[f"{group}/data"][:128] = rng.poisson(0.05, (128, 512, 128)).astype(np.float32)
            if m == 3:
                f[f"{group}/mask"][0, :100] = 1 << 3  # an EuXFEL bad-pixel bit
    return path
