import numpy as np
import pytest

from spizoo.sim import quaternion as Q


def test_product_composes_rotations():
    a, b = Q.random_quaternion(0, 2)
    np.testing.assert_allclose(Q.to_matrix(Q.multiply(a, b)), Q.to_matrix(a) @ Q.to_matrix(b), atol=1e-12)
    np.testing.assert_allclose(Q.multiply(a, Q.conjugate(a)), [1, 0, 0, 0], atol=1e-12)


def test_axis_angle_round_trip_and_rotation_direction():
    q = Q.from_axis_angle(np.array([0.0, 0.0, 2.0]), np.array(np.pi / 2))
    np.testing.assert_allclose(Q.to_matrix(q) @ [1.0, 0, 0], [0, 1, 0], atol=1e-12)  # x -> y about +z
    qs = Q.random_quaternion(1, 50)
    axis, angle = Q.to_axis_angle(qs)
    np.testing.assert_allclose(Q.from_axis_angle(axis, angle), qs * np.sign(qs[:, :1]), atol=1e-12)


def test_distance_is_the_rotation_angle_between():
    a = Q.random_quaternion(2)
    b = Q.multiply(Q.from_axis_angle(np.array([1.0, 2, 3]), np.array(0.3)), a)
    assert Q.distance(a, b) == pytest.approx(0.3)
    assert Q.distance(a, -a) == pytest.approx(0.0, abs=1e-7)


def test_random_rotations_are_uniform():
    r = Q.to_matrix(Q.random_quaternion(3, 20000))
    np.testing.assert_allclose(r.mean(axis=0), 0, atol=0.02)  # Haar measure: E[R] = 0
    assert (Q.random_quaternion(3, 100)[:, 0] >= 0).all()
