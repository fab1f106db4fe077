"""Full-size checks of the seed-000 configuration (marked slow: `make test-slow`)."""

import numpy as np
import pytest

from spizoo.experiment import load
from spizoo.sim import spi
from spizoo.sim.parallel import iterate_patterns

pytestmark = pytest.mark.slow


def test_full_config_class_mix_and_worker_independence():
    config = load("configs/sim_spi.yaml")
    one = list(iterate_patterns(config.sim, config.seed, 1500, workers=1))
    two = list(iterate_patterns(config.sim, config.seed, 1500, workers=2))
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
    labels = np.array([p.label for p in one])
    w = np.array(config.sim.cluster.class_weights)
    np.testing.assert_allclose(np.bincount(labels, minlength=5) / len(labels), w / w.sum(), atol=0.03)
    assert {p.model.shape for p in one} == set(config.sim.particle.shapes)


def test_brighter_pulses_give_proportionally_more_photons():
    hits = ["sim.cluster.class_weights=[0,1,0,0,0]", "sim.beam.fluence_jitter=0", "sim.detector.background_photons=0"]
    dim = load("configs/sim_spi.yaml", [*hits, "sim.beam.fluence_photons_per_um2=[1e11,1e12]"]).sim
    bright = load("configs/sim_spi.yaml", [*hits, "sim.beam.fluence_photons_per_um2=[1e12,1e13]"]).sim
    # The log-uniform draw of the same model is ten times larger; the expected photons scale with it.
    a, b = spi.simulate_model(dim, 0, 0), spi.simulate_model(bright, 0, 0)
    assert b[0].model.fluence_photons_per_um2 == pytest.approx(10 * a[0].model.fluence_photons_per_um2)
    assert a[0].model.shape == b[0].model.shape
    ratio = np.mean([p.image.sum() for p in b]) / np.mean([p.image.sum() for p in a])
    assert ratio == pytest.approx(10, rel=0.01)
