import numpy as np
import pytest

from spizoo.core import masks
from spizoo.sim.detector import Detector


def test_q_lies_on_the_ewald_sphere():
    det = Detector(shape=(33, 41), pixel_size_um=1000, distance_m=0.05)  # wide angles, up to ~25°
    wl = 0.5
    k = 2 * np.pi / wl
    q = det.q_inv_nm(wl)
    np.testing.assert_allclose(np.linalg.norm(q + [0, 0, k], axis=-1), k, rtol=1e-12)
    r = det.pixel_positions_m()
    two_theta = np.arccos(r[..., 2] / np.linalg.norm(r, axis=-1))
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 2 * k * np.sin(two_theta / 2), rtol=1e-12)
    assert (q[..., 2] <= 0).all()


def test_flat_ewald_approximation_agrees_at_small_angles_only():
    wl = 1.0
    small = Detector(shape=(16, 16), pixel_size_um=75, distance_m=1.0)
    np.testing.assert_allclose(small.q_inv_nm(wl, ewald="flat")[..., :2], small.q_inv_nm(wl)[..., :2], rtol=1e-5)
    wide = Detector(shape=(16, 16), pixel_size_um=5000, distance_m=0.05)
    assert not np.allclose(wide.q_inv_nm(wl, ewald="flat"), wide.q_inv_nm(wl), rtol=1e-2)


def test_solid_angle_is_cos3_law_and_sums_to_the_subtended_angle():
    det = Detector(shape=(200, 200), pixel_size_um=500, distance_m=0.1)
    r = det.pixel_positions_m()
    cos2t = r[..., 2] / np.linalg.norm(r, axis=-1)
    np.testing.assert_allclose(det.solid_angle_sr(), (500e-6 / 0.1) ** 2 * cos2t**3, rtol=1e-12)
    a = 100 * 500e-6 / 0.1  # half-width over distance: solid angle of a square, 4 asin(a² / (1 + a²))
    assert det.solid_angle_sr().sum() == pytest.approx(4 * np.arcsin(a * a / (1 + a * a)), rel=1e-4)


def test_polarization_factors():
    det = Detector(shape=(21, 21), pixel_size_um=2000, distance_m=0.05)
    r = det.pixel_positions_m()
    rhat = r / np.linalg.norm(r, axis=-1, keepdims=True)
    np.testing.assert_allclose(det.polarization("x"), 1 - rhat[..., 0] ** 2)
    centre_row = det.polarization("x")[10]
    assert centre_row[10] == pytest.approx(1) and centre_row[0] < centre_row[5] < 1  # falls along x
    np.testing.assert_allclose(det.polarization("y")[:, 10], det.polarization("x")[10])
    np.testing.assert_allclose(det.polarization("unpolarized"), (det.polarization("x") + det.polarization("y")) / 2)


def test_mask_marks_gap_beam_stop_and_dead_pixels():
    det = Detector(shape=(64, 64), beam_stop_radius_px=3, panel_gap_px=2)
    mask = det.mask(bad_pixel_fraction=0.05, rng=0)
    assert (mask[31:33] & masks.INVALID).all() and not (mask[29] & masks.INVALID).any()
    assert mask[31, 31] & masks.SHADOWED and not mask[20, 20] & masks.SHADOWED
    assert 0.03 < ((mask & masks.DEAD) != 0).mean() < 0.07
    np.testing.assert_array_equal(mask, det.mask(bad_pixel_fraction=0.05, rng=0))


def test_off_centre_beam_moves_q_zero():
    det = Detector(shape=(32, 32), center_px=(10.0, 20.0))
    q = np.linalg.norm(det.q_inv_nm(1.0), axis=-1)
    assert np.unravel_index(q.argmin(), q.shape) == (10, 20)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"distance_m": 0}, "distance_m must be > 0"),
        ({"pixel_size_um": -1}, "pixel_size_um must be > 0"),
        ({"shape": (0, 5)}, "two positive pixel counts"),
        ({"beam_stop_radius_px": -1}, "beam_stop_radius_px must be >= 0"),
    ],
)
def test_bad_geometry_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Detector(**kwargs)


def test_bad_arguments_are_rejected():
    det = Detector()
    with pytest.raises(ValueError, match="ewald must be"):
        det.q_inv_nm(1.0, ewald="round")
    with pytest.raises(ValueError, match="wavelength_nm must be > 0"):
        det.q_inv_nm(0)
    with pytest.raises(ValueError, match="polarization must be"):
        det.polarization("z")
