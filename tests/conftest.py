"""Shared fixtures: tiny, fast simulator configs, and small trained and exported models."""

import pytest

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
