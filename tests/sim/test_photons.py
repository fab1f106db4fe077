import numpy as np
import pytest

from spizoo.sim.constants import CLASSICAL_ELECTRON_RADIUS_NM
from spizoo.sim.photons import detect, expected_photons


def test_expected_photons_follow_the_thomson_formula():
    # A 50 nm-radius protein sphere at q = 0, 1e12 photons/µm², a 75 µm pixel at 0.5 m, by hand:
    volume = 4 / 3 * np.pi * 50.0**3
    electrons = 430 * volume
    omega = (75e-6 / 0.5) ** 2
    by_hand = 1e12 * 1e-6 * (2.8179403262e-6) ** 2 * electrons**2 * omega  # photons/nm² · nm² · sr
    got = expected_photons(
        np.array([volume]),
        electron_density_e_per_nm3=430,
        fluence_photons_per_um2=1e12,
        solid_angle_sr=np.array([omega]),
        polarization=np.array([1.0]),
    )
    assert got[0] == pytest.approx(by_hand, rel=1e-12)
    assert CLASSICAL_ELECTRON_RADIUS_NM == pytest.approx(2.8179403262e-6)
    assert 1e3 < got[0] < 1e6  # about 9,000: a sensible count for such a shot


def test_counts_are_poisson_mean_equals_variance():
    lam = np.full(200_000, 3.7)
    counts = detect(lam, rng=1)
    assert counts.dtype == np.float32 and (counts == np.round(counts)).all()
    assert counts.mean() == pytest.approx(3.7, rel=0.01)
    assert counts.var() == pytest.approx(3.7, rel=0.02)


def test_background_adds_to_the_mean_and_readout_noise_to_the_variance():
    counts = detect(np.zeros(200_000), rng=2, background_photons=0.5, readout_noise_photons=0.3)
    assert counts.mean() == pytest.approx(0.5, abs=0.01)
    assert counts.var() == pytest.approx(0.5 + 0.09, rel=0.03)


def test_same_rng_same_counts():
    lam = np.linspace(0, 50, 1000)
    np.testing.assert_array_equal(detect(lam, rng=7), detect(lam, rng=7))


def test_bad_values_name_the_parameter():
    with pytest.raises(ValueError, match="background_photons must be >= 0"):
        detect(np.ones(3), rng=0, background_photons=-1)
    with pytest.raises(ValueError, match="fluence_photons_per_um2 must be >= 0"):
        expected_photons(
            np.ones(3), electron_density_e_per_nm3=1, fluence_photons_per_um2=-1, solid_angle_sr=1.0, polarization=1.0
        )
