"""Unit quaternions ``(w, x, y, z)`` for rotations (PHYSICS.md, "Rotations and clusters")."""

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
