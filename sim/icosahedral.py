"""The icosahedral rotation group, its fundamental domain, and the regression targets (seed 001, appendices
A and C; docs/PHYSICS.md "Icosahedral symmetry").

The 60 rotations are the 120 unit quaternions of the binary icosahedral group (±q each): the 8 of the form
(±1, 0, 0, 0) and permutations, the 16 of (±½, ±½, ±½, ±½), and the 96 even permutations of
½(0, ±1, ±φ⁻¹, ±φ); they leave the icosahedron with vertices at the cyclic permutations of (0, ±1, ±φ)
invariant. The fundamental domain holds, of the 60 equivalent quaternions ``q g`` (the body rotated by a
symmetry first, which looks the same), the one with the largest real part (the smallest rotation angle).
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import scipy.optimize

from spizoo.sim import quaternion

PHI = (1 + 5**0.5) / 2
RADIUS_RANGE_NM = (30.0, 160.0)
"""Seed 001's circumradius range; the default for the radius target and its error normalisation."""


def _even_permutations(n: int) -> list[tuple[int, ...]]:
    out = []
    for p in itertools.permutations(range(n)):
        inversions = sum(1 for i in range(n) for j in range(i + 1, n) if p[i] > p[j])
        if inversions % 2 == 0:
            out.append(p)
    return out


@functools.cache
def group() -> np.ndarray:
    """The 60 rotations of the icosahedral group as unit quaternions with real part >= 0, shape (60, 4)."""
    quats = []
    for i in range(4):
        for s in (1.0, -1.0):
            q = np.zeros(4)
            q[i] = s
            quats.append(q)
    quats.extend(np.array(signs) / 2 for signs in itertools.product((0.5 * 2, -0.5 * 2), repeat=4))
    base = np.array([0.0, 1.0, 1 / PHI, PHI]) / 2
    for perm in _even_permutations(4):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            v = base * np.array([1.0, *signs])
            quats.append(v[list(perm)])
    q = np.unique(np.round(np.array(quats), 12), axis=0)
    assert len(q) == 120, len(q)
    q = q[(q[:, 0] > 1e-12) | ((np.abs(q[:, 0]) <= 1e-12) & (_first_nonzero_sign(q) > 0))]
    return q[np.argsort(-q[:, 0], kind="stable")]


def _first_nonzero_sign(q: np.ndarray) -> np.ndarray:
    idx = np.argmax(np.abs(q) > 1e-12, axis=1)
    return np.sign(q[np.arange(len(q)), idx])


def project(q: np.ndarray) -> np.ndarray:
    """Projects rotations (..., 4) into the fundamental domain: of ``q g`` for the 60 symmetries ``g``, the one
    with the largest ``|real part|`` (smallest rotation angle), signed so that the real part is >= 0.

    ``q`` and its projection rotate an icosahedron onto the same body, so they give the same pattern.
    """
    q = np.asarray(q, dtype=float)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    cands = quaternion.multiply(q[..., None, :], group())  # (..., 60, 4)
    best = np.argmax(np.abs(cands[..., 0]), axis=-1)
    out = np.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :]
    return out * np.where(out[..., :1] < 0, -1.0, 1.0)


def sample_fundamental(rng, size: int | None = None) -> np.ndarray:
    """Rotations uniformly distributed in the fundamental domain (uniform on SO(3), then projected)."""
    return project(quaternion.random_quaternion(rng, size))


def _five_fold_axes() -> np.ndarray:
    axes = np.array(
        [[0.0, 1.0, PHI], [0.0, -1.0, PHI], [1.0, PHI, 0.0], [-1.0, PHI, 0.0], [PHI, 0.0, 1.0], [PHI, 0.0, -1.0]]
    )
    return axes / np.linalg.norm(axes, axis=1, keepdims=True)


@functools.cache
def rodrigues_vertices() -> np.ndarray:
    """The 20 vertices of the fundamental domain in Rodrigues space ``r = v / w``: a dodecahedron bounded by
    the planes ``|r·n| = tan(π/10)`` normal to the six five-fold axes ``n`` (Frank 1986)."""
    normals = np.concatenate([_five_fold_axes(), -_five_fold_axes()])
    bound = np.tan(np.pi / 10)
    verts = []
    for trio in itertools.combinations(range(len(normals)), 3):
        m = normals[list(trio)]
        if abs(np.linalg.det(m)) < 1e-9:
            continue
        r = np.linalg.solve(m, np.full(3, bound))
        if (normals @ r <= bound + 1e-9).all():
            verts.append(r)
    return np.unique(np.round(verts, 9), axis=0)


@functools.cache
def fundamental_extents() -> np.ndarray:
    """[min, max] of each quaternion component over the fundamental domain, shape (4, 2).

    The real part is smallest at the dodecahedron's vertices (largest rotation angle); each imaginary
    component's extreme is found by a bounded optimisation started from every vertex and face centre.
    """
    axes = _five_fold_axes()
    bound = np.tan(np.pi / 10)
    verts = rodrigues_vertices()
    cons = [{"type": "ineq", "fun": lambda r, n=n: bound - abs(r @ n)} for n in axes]

    def quat(r):
        return np.concatenate([[1.0], r]) / np.sqrt(1 + r @ r)

    starts = [*verts * 0.999, *(bound * a for a in axes), *(-bound * a for a in axes)]
    out = np.zeros((4, 2))
    out[0] = [min(quat(v)[0] for v in verts), 1.0]
    for comp in (1, 2, 3):
        best = min(
            scipy.optimize.minimize(lambda r, c=comp: -quat(r)[c], x0, constraints=cons, method="SLSQP").fun
            for x0 in starts
        )
        out[comp] = [best, -best]  # the domain is symmetric under r -> -r
    return out


def encode_target(q: np.ndarray, radius_nm: np.ndarray, radius_range_nm=RADIUS_RANGE_NM) -> np.ndarray:
    """Regression target (..., 5): the fundamental-domain quaternion and the radius, each scaled linearly from
    its allowed range to [-1, 1] (the range of a tanh output; seed 001 §3 and appendix C)."""
    q = project(q)
    ext = fundamental_extents()
    lo = np.append(ext[:, 0], radius_range_nm[0])
    hi = np.append(ext[:, 1], radius_range_nm[1])
    params = np.concatenate([q, np.asarray(radius_nm, dtype=float)[..., None]], axis=-1)
    return 2 * (params - lo) / (hi - lo) - 1


def decode_target(t: np.ndarray, radius_range_nm=RADIUS_RANGE_NM) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_target`: (unit quaternion in the fundamental domain, radius in nm)."""
    t = np.asarray(t, dtype=float)
    ext = fundamental_extents()
    lo = np.append(ext[:, 0], radius_range_nm[0])
    hi = np.append(ext[:, 1], radius_range_nm[1])
    params = lo + (t + 1) / 2 * (hi - lo)
    return project(params[..., :4]), params[..., 4]


def relative_errors(q_pred, radius_pred, q_true, radius_true, radius_range_nm=RADIUS_RANGE_NM) -> np.ndarray:
    """The five relative errors of seed 001 appendix C (..., 5): each component of the fundamental-domain
    quaternions and the radius, divided by the span of its allowed range."""
    ext = fundamental_extents()
    span = np.append(ext[:, 1] - ext[:, 0], radius_range_nm[1] - radius_range_nm[0])
    diff = np.concatenate(
        [project(q_pred) - project(q_true), (np.asarray(radius_pred) - np.asarray(radius_true))[..., None]], axis=-1
    )
    return np.abs(diff) / span


def error_measures(q_pred, radius_pred, q_true, radius_true, radius_range_nm=RADIUS_RANGE_NM) -> dict[str, np.ndarray]:
    """Per pattern: ``mean`` and ``max`` of the five relative errors (seed 001 figure 4a)."""
    e = relative_errors(q_pred, radius_pred, q_true, radius_true, radius_range_nm)
    return {"mean": e.mean(axis=-1), "max": e.max(axis=-1)}
