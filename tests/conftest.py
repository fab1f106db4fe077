"""Shared fixtures: tiny, fast simulator configs."""

import pytest

from spizoo.experiment import load


@pytest.fixture(scope="session")
def quick_cfg():
    """The quickstart config with a small detector, 8 patterns per model."""
    return load("configs/quickstart.yaml", ["sim.patterns_per_model=8", "sim.detector.pixels=[32,32]"]).sim
