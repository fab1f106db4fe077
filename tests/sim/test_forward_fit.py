import dataclasses

import numpy as np
import pytest

from spizoo.sim import forward_fit, icosahedral, wideangle


@pytest.fixture(scope="module")
def small():
    cfg = wideangle.MsftConfig(columns=48, detector=wideangle.WideDetectorConfig(pixels=(32, 32)))
    return cfg, wideangle.simulate_pattern(cfg, 0, 3)


def test_simplex_recovers_size_and_orientation_of_a_simulated_pattern(small):
    cfg, pattern = small
    result = forward_fit.fit_pattern(pattern.image, cfg, starts=4, iterations=60, rng=1)
    err = icosahedral.error_measures(result.quaternion, result.radius_nm, pattern.quaternion, pattern.radius_nm)
    assert abs(result.radius_nm - pattern.radius_nm) / pattern.radius_nm < 0.03
    assert err["mean"] < 0.05
    assert result.simulations >= 4 * 60 and len(result.history) == 4
    assert [h[0] for h in result.history] == sorted(h[0] for h in result.history)
    assert result.history[-1][1] == result.loss  # the best loss reported is the best found


def test_the_true_parameters_are_a_minimum_of_the_loss(small):
    cfg, pattern = small
    truth = forward_fit.model_image(cfg, pattern.quaternion, pattern.radius_nm)
    off = forward_fit.model_image(cfg, pattern.quaternion, pattern.radius_nm * 1.05)
    assert np.mean((truth - pattern.image) ** 2) < np.mean((off - pattern.image) ** 2)


def test_bad_input_is_rejected(small):
    cfg, pattern = small
    with pytest.raises(ValueError, match="image has shape"):
        forward_fit.fit_pattern(pattern.image[:16], cfg, starts=1, iterations=1)
    with pytest.raises(ValueError, match="starts and iterations must be >= 1"):
        forward_fit.fit_pattern(pattern.image, dataclasses.replace(cfg), starts=0)
