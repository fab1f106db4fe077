import dataclasses

import numpy as np
import pytest

from spizoo.sim import icosahedral as I
from spizoo.sim import quaternion as Q
from spizoo.sim import shapes, wideangle


def test_group_has_60_rotations_closes_and_keeps_the_icosahedron():
    g = I.group()
    assert g.shape == (60, 4)
    prod = Q.multiply(g[:, None], g[None]).reshape(-1, 4)
    dots = np.abs(prod @ g.T).max(axis=1)  # each product equals ±(a member)
    np.testing.assert_allclose(dots, 1, atol=1e-9)
    verts = shapes._vertices("icosahedron")
    for r in Q.to_matrix(g):
        d = np.linalg.norm((verts @ r.T)[:, None] - verts[None], axis=-1)
        assert np.allclose(d.min(axis=1), 0, atol=1e-9)


def test_rotation_angles_are_the_icosahedral_census():
    _, angle = Q.to_axis_angle(I.group())
    degrees = np.round(np.degrees(angle)).astype(int)
    values, counts = np.unique(degrees, return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist(), strict=True)) == {0: 1, 72: 12, 120: 20, 144: 12, 180: 15}


def test_projection_is_idempotent_minimal_and_symmetry_invariant():
    q = Q.random_quaternion(0, 500)
    p = I.project(q)
    np.testing.assert_allclose(I.project(p), p, atol=1e-12)
    assert (p[:, 0] >= 0).all()
    all_equivalents = Q.multiply(q[:, None], I.group())
    np.testing.assert_allclose(p[:, 0], np.abs(all_equivalents[..., 0]).max(axis=1))
    g = I.group()[7]
    np.testing.assert_allclose(I.project(Q.multiply(q, g)), p, atol=1e-12)  # the same body, the same point


def test_fundamental_domain_extents_bound_uniform_samples():
    ext = I.fundamental_extents()
    p = I.sample_fundamental(1, 50000)
    assert (p >= ext[:, 0] - 1e-9).all() and (p <= ext[:, 1] + 1e-9).all()
    np.testing.assert_allclose(p.min(axis=0), ext[:, 0], atol=0.01)  # the extremes are reached
    np.testing.assert_allclose(p.max(axis=0), ext[:, 1], atol=0.01)
    assert ext[0, 0] == pytest.approx(np.cos(np.arctan(np.linalg.norm(I.rodrigues_vertices(), axis=1).max())))


def test_targets_round_trip_and_error_measures():
    q = I.sample_fundamental(2, 100)
    r = np.random.default_rng(2).uniform(30, 160, 100)
    t = I.encode_target(q, r)
    assert t.shape == (100, 5) and (np.abs(t) <= 1 + 1e-9).all()
    q2, r2 = I.decode_target(t)
    np.testing.assert_allclose(q2, q, atol=1e-9)
    np.testing.assert_allclose(r2, r)
    err = I.error_measures(q, r, q, r)
    assert np.allclose(err["mean"], 0) and np.allclose(err["max"], 0)
    err = I.error_measures(q, r + 13.0, q, r)  # a tenth of the 130 nm radius span, one parameter of five
    np.testing.assert_allclose(err["max"], 0.1)
    np.testing.assert_allclose(err["mean"], 0.02)


@pytest.fixture(scope="module")
def tiny_msft():
    cfg = wideangle.MsftConfig()
    return dataclasses.replace(cfg, columns=48, detector=dataclasses.replace(cfg.detector, pixels=(32, 32)))


def test_symmetry_equivalent_orientations_give_the_same_pattern(tiny_msft):
    q = Q.random_quaternion(5)
    base = wideangle.render(tiny_msft, q, 60.0)
    for g in I.group()[[3, 20, 41]]:
        np.testing.assert_allclose(
            wideangle.render(tiny_msft, Q.multiply(q, g), 60.0), base, rtol=2e-3, atol=1e-6 * base.max()
        )
    np.testing.assert_allclose(wideangle.render(tiny_msft, I.project(q), 60.0), base, rtol=2e-3, atol=1e-6 * base.max())
    other = wideangle.render(tiny_msft, Q.random_quaternion(6), 60.0)
    bright = base > 1e-3 * base.max()
    assert np.abs(other[bright] / base[bright] - 1).max() > 0.3  # and a different orientation does not
