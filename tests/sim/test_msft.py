import dataclasses

import numpy as np
import pytest
import scipy.integrate

from spizoo.sim import msft, quaternion, wideangle
from spizoo.sim.amplitude import scattering_amplitude
from spizoo.sim.detector import Detector
from spizoo.sim.shapes import particle, volume_nm3

QUAT = quaternion.random_quaternion(11)


def test_without_absorption_at_small_angles_msft_is_the_born_amplitude():
    det = Detector(shape=(48, 48), pixel_size_um=800, distance_m=0.5)  # 2θ < 2.2°
    q = det.q_inv_nm(1.0)
    e = msft.msft_amplitude(
        "icosahedron", circumradius_nm=30.0, quaternion_wxyz=QUAT, q_inv_nm=q, absorption_length_nm=np.inf, eps=1e-13
    )
    occ = particle("icosahedron", circumradius_nm=30.0, voxel_nm=0.6, grid=112)
    born = scattering_amplitude(occ, voxel_nm=0.6, q_inv_nm=q @ quaternion.to_matrix(QUAT))  # F(Rᵀq)
    i_msft, i_born = np.abs(e) ** 2, np.abs(born) ** 2
    tested = i_born > 1e-3 * i_born.max()
    assert tested.sum() > 500
    np.testing.assert_array_less(np.abs(i_msft[tested] / i_born[tested] - 1), 0.02)


def test_columns_and_literal_slices_agree_and_converge():
    det = wideangle.WideDetectorConfig(pixels=(32, 32)).detector()
    q = det.q_inv_nm(13.5)
    kw = {"circumradius_nm": 70.0, "quaternion_wxyz": QUAT, "q_inv_nm": q}
    ref = np.abs(msft.msft_amplitude("icosahedron", columns=384, **kw)) ** 2
    tested = ref > 1e-3 * ref.max()
    # One physics, two methods: at the same transverse sampling, the literal multislice sum (exact per-slice
    # transforms) and the closed-form depth integral agree to far better than either's sampling error...
    for n in (48, 96):
        slices = np.abs(msft.msft_slices("icosahedron", slices=n, padding=None, **kw)) ** 2
        columns = np.abs(msft.msft_amplitude("icosahedron", columns=n, **kw)) ** 2
        assert np.abs(slices / columns - 1)[tested].max() < 0.01
    # ...and both converge to the finely sampled reference as the sampling grows.
    errors = [
        np.abs(np.abs(msft.msft_amplitude("icosahedron", columns=n, **kw)) ** 2 / ref - 1)[tested].max()
        for n in (48, 96, 192)
    ]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.1


def test_forward_amplitude_with_absorption_matches_the_analytic_column_integral():
    # Sphere at q = 0: E(0) = ∫ dA 2a (1 - exp(-L/2a)), L = 2 sqrt(R² - ρ²).
    radius, a = 40.0, 12.5
    e0 = msft.msft_amplitude(
        "sphere",
        circumradius_nm=radius,
        quaternion_wxyz=QUAT,
        q_inv_nm=np.zeros(3),
        absorption_length_nm=a,
        columns=400,
    )
    exact, _ = scipy.integrate.quad(
        lambda rho: 2 * np.pi * rho * 2 * a * -np.expm1(-np.sqrt(radius**2 - rho**2) / a), 0, radius
    )
    assert abs(e0) == pytest.approx(exact, rel=2e-3)
    assert abs(e0) < 0.5 * volume_nm3("sphere", circumradius_nm=radius)  # absorption lowers forward scattering
    weak = msft.msft_amplitude(
        "sphere",
        circumradius_nm=radius,
        quaternion_wxyz=QUAT,
        q_inv_nm=np.zeros(3),
        absorption_length_nm=1e7,
        columns=400,
    )
    assert abs(weak) == pytest.approx(volume_nm3("sphere", circumradius_nm=radius), rel=2e-3)


def test_absorption_breaks_friedel_symmetry():
    # Friedel's law I(q) = I(-q): the pattern seen with the beam reversed (the particle turned by π about x,
    # the pixel mirrored in x) is the same pattern. It holds without absorption, at any angle, and fails with
    # it for a particle without a centre of symmetry: the attenuated side of the particle changes.
    det = wideangle.WideDetectorConfig(pixels=(32, 32)).detector()
    q = det.q_inv_nm(13.5)
    mirrored = q * [-1.0, 1.0, 1.0]
    turned = quaternion.multiply([0.0, 1.0, 0.0, 0.0], QUAT)
    kw = {"circumradius_nm": 60.0, "columns": 96}

    def pair(absorption_length_nm, eps):
        front = msft.msft_amplitude(
            "tetrahedron", quaternion_wxyz=QUAT, q_inv_nm=q, absorption_length_nm=absorption_length_nm, eps=eps, **kw
        )
        back = msft.msft_amplitude(
            "tetrahedron",
            quaternion_wxyz=turned,
            q_inv_nm=mirrored,
            absorption_length_nm=absorption_length_nm,
            eps=eps,
            **kw,
        )
        return np.abs(front) ** 2, np.abs(back) ** 2

    front, back = pair(np.inf, 1e-13)
    np.testing.assert_allclose(back, front, rtol=1e-6, atol=1e-9 * front.max())
    front, back = pair(12.5, 1e-9)
    bright = front > 1e-3 * front.max()
    assert np.abs(back[bright] / front[bright] - 1).max() > 0.2


def test_patterns_are_reproducible_log_images():
    cfg = wideangle.MsftConfig(columns=48, detector=wideangle.WideDetectorConfig(pixels=(32, 32)))
    a = wideangle.simulate_pattern(cfg, 1, 5)
    b = list(wideangle.simulate(cfg, 1, 2, start=4))[1]
    np.testing.assert_array_equal(a.image, b.image)
    assert a.image.dtype == np.float32 and 0 <= a.image.min() and a.image.max() == 1.0
    assert 30 <= a.radius_nm <= 160
    assert not np.array_equal(a.image, wideangle.simulate_pattern(cfg, 1, 6).image)


def test_bad_input_names_the_parameter():
    with pytest.raises(ValueError, match="convex shape.*'torus'"):
        msft.msft_amplitude("torus", circumradius_nm=10.0, quaternion_wxyz=QUAT, q_inv_nm=np.zeros(3))
    with pytest.raises(ValueError, match="absorption_length_nm must be > 0"):
        msft.msft_amplitude(
            "sphere", circumradius_nm=10.0, quaternion_wxyz=QUAT, q_inv_nm=np.zeros(3), absorption_length_nm=0
        )
    with pytest.raises(ValueError, match="max_angle_deg"):
        wideangle.WideDetectorConfig(max_angle_deg=95)
    with pytest.raises(ValueError, match="shape must be one of"):
        dataclasses.replace(wideangle.MsftConfig(), shape="torus")
