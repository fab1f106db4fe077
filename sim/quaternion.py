"""Unit quaternions ``(w, x, y, z)`` for rotations (docs/PHYSICS.md "Rotations"; seed 001 appendix A).

``q = cos(α/2) + sin(α/2)(n_x i + n_y j + n_z k)`` rotates by ``α`` about unit axis ``n``; ``q`` and ``-q`` are
the same rotation. Functions take arrays of quaternions (..., 4) and broadcast.
"""

from __future__ import annotations

import numpy as np


def random_quaternion(rng, size: int | None = None) -> np.ndarray:
    """Uniformly distributed rotations: four independent normal draws, normalised, ``w >= 0``.

    Args:
        rng: seed or ``numpy.random.Generator``.
        size: number of quaternions (``None``: one, shape (4,)).
    """
    rng = np.random.default_rng(rng)
    q = rng.standard_normal((1 if size is None else size, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)
    return q[0] if size is None else q


def multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a b`` (the rotation ``b`` followed by ``a``)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    w1, x1, y1, z1 = np.moveaxis(a, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        axis=-1,
    )


def conjugate(q: np.ndarray) -> np.ndarray:
    """``q*`` (the inverse rotation for a unit quaternion)."""
    return np.asarray(q, dtype=float) * np.array([1.0, -1.0, -1.0, -1.0])


def from_axis_angle(axis: np.ndarray, angle_rad: np.ndarray) -> np.ndarray:
    """Quaternion of the rotation by ``angle_rad`` about ``axis`` (normalised here)."""
    axis = np.asarray(axis, dtype=float)
    axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    half = np.asarray(angle_rad, dtype=float)[..., None] / 2
    return np.concatenate([np.cos(half), np.sin(half) * axis], axis=-1)


def to_axis_angle(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit axis (..., 3), angle in [0, π] (...)) of unit quaternions; the identity gets axis (0, 0, 1)."""
    q = np.asarray(q, dtype=float)
    q = q * np.where(q[..., :1] < 0, -1.0, 1.0)
    v = q[..., 1:]
    s = np.linalg.norm(v, axis=-1)
    angle = 2 * np.arctan2(s, q[..., 0])
    axis = np.where(s[..., None] > 1e-12, v / np.maximum(s, 1e-300)[..., None], [0.0, 0.0, 1.0])
    return axis, angle


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation angle (radians, 0…π) between the rotations ``a`` and ``b``: ``2 acos |a·b|``."""
    dot = np.abs(np.sum(np.asarray(a, dtype=float) * np.asarray(b, dtype=float), axis=-1))
    return 2 * np.arccos(np.clip(dot, 0.0, 1.0))


def to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) of unit quaternions (..., 4); ``R @ v`` rotates ``v``."""
    q = np.asarray(q, dtype=float)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )
