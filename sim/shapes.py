"""Particle shapes as occupancy densities on a cubic voxel grid (seed 000, section 3).

Each shape is given by a signed distance function (negative inside) at unit circumradius. A voxel's
occupancy is the linear partial-volume ramp ``clip(1/2 - d/a, 0, 1)`` of its signed distance ``d``
(voxel size ``a``), which is exact for faces parallel to the grid and keeps the volume and the
low-q form factor right for any orientation (unlike 0/1 voxels; see docs/PHYSICS.md on voxelised densities).

The seed's geometric variations are applied as coordinate maps before the distance is evaluated, so
nothing is resampled: a *twist* about z (rotation angle proportional to height), an *affine* map
``x -> A x``, and a Gaussian *edge blur* of the finished occupancy.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import scipy.ndimage
import scipy.spatial

PHI = (1 + 5**0.5) / 2


def _cyclic(points: list[tuple[float, float, float]]) -> np.ndarray:
    """All sign choices of each point, then its three cyclic permutations."""
    out = []
    for p in points:
        for signs in itertools.product((1, -1), repeat=3):
            s = np.multiply(p, signs)
            out.extend([s, np.roll(s, 1), np.roll(s, 2)])
    return np.unique(np.round(out, 12), axis=0)


def _vertices(shape: str) -> np.ndarray:
    """Vertices of the polyhedron, in the icosahedral frame of docs/PHYSICS.md (icosahedron at (0, ±1, ±φ))."""
    if shape == "tetrahedron":  # the one shape here without a centre of symmetry
        return np.array([[1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]])
    if shape == "octahedron":
        return _cyclic([(1.0, 0.0, 0.0)])
    if shape == "icosahedron":
        return _cyclic([(0.0, 1.0, PHI)])
    if shape == "dodecahedron":
        return np.concatenate([_cyclic([(1.0, 1.0, 1.0)]), _cyclic([(0.0, 1 / PHI, PHI)])])
    if shape == "soccer":  # truncated icosahedron: each icosahedron edge cut at a third and two thirds
        ico = _cyclic([(0.0, 1.0, PHI)])
        d = np.linalg.norm(ico[:, None] - ico[None], axis=-1)
        i, j = np.nonzero(np.isclose(d, 2.0))
        return np.unique(np.round((2 * ico[i] + ico[j]) / 3, 12), axis=0)
    raise KeyError(shape)


@functools.cache
def _unit_hull(shape: str) -> scipy.spatial.ConvexHull:
    v = _vertices(shape)
    return scipy.spatial.ConvexHull(v / np.linalg.norm(v, axis=1).max())


@functools.cache
def polyhedron_planes(shape: str) -> tuple[np.ndarray, np.ndarray]:
    """Face planes ``n·x <= h`` (unit normals ``n``, offsets ``h``) of a polyhedron of circumradius 1."""
    eq = _unit_hull(shape).equations  # triangulated facets: n·x + c <= 0
    planes = np.unique(np.round(eq, 9), axis=0)
    return planes[:, :3].copy(), -planes[:, 3].copy()


POLYHEDRA = ("tetrahedron", "octahedron", "dodecahedron", "icosahedron", "soccer")
SHAPES = ("sphere", *POLYHEDRA, "torus")
"""Known shape names; ``soccer`` is the truncated icosahedron (seed 000 uses the four after the tetrahedron)."""


def check_shape(shape: str) -> None:
    """Raises ValueError naming ``shape`` and the known shapes if it is not one of them."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}; got {shape!r}")


def inradius(shape: str, *, circumradius_nm: float, torus_tube_ratio: float = 0.4) -> float:
    """Radius of the largest ball about the centre inside the shape (for a torus: its tube radius)."""
    check_shape(shape)
    if shape == "sphere":
        return circumradius_nm
    if shape == "torus":
        return circumradius_nm * torus_tube_ratio / (1 + torus_tube_ratio)
    return circumradius_nm * float(polyhedron_planes(shape)[1].min())


def volume_nm3(shape: str, *, circumradius_nm: float, torus_tube_ratio: float = 0.4) -> float:
    """Analytic volume of the untransformed shape."""
    check_shape(shape)
    r = circumradius_nm
    if shape == "sphere":
        return 4 / 3 * np.pi * r**3
    if shape == "torus":
        tube = r * torus_tube_ratio / (1 + torus_tube_ratio)
        return 2 * np.pi**2 * (r - tube) * tube**2
    return float(_unit_hull(shape).volume) * r**3


def signed_distance(shape: str, points: np.ndarray, *, torus_tube_ratio: float = 0.4) -> np.ndarray:
    """Signed distance (negative inside) of ``points`` (..., 3) to the shape of circumradius 1.

    For polyhedra this is the largest face-plane distance: exact near faces, a lower bound near edges.
    """
    check_shape(shape)
    if shape == "sphere":
        return np.linalg.norm(points, axis=-1) - 1.0
    if shape == "torus":
        tube = torus_tube_ratio / (1 + torus_tube_ratio)
        ring = np.hypot(points[..., 0], points[..., 1]) - (1 - tube)
        return np.hypot(ring, points[..., 2]) - tube
    out = None
    for normal, offset, symmetric in _plane_pairs(shape):
        d = points @ normal.astype(points.dtype)
        d = (np.abs(d) if symmetric else d) - points.dtype.type(offset)
        out = d if out is None else np.maximum(out, d, out=out)
    return out


@functools.cache
def _plane_pairs(shape: str) -> tuple[tuple[np.ndarray, float, bool], ...]:
    """Face planes with antipodal pairs (n, h), (-n, h) merged into one ``|n·x| - h`` term."""
    normals, offsets = polyhedron_planes(shape)
    out, used = [], set()
    for i, (n, h) in enumerate(zip(normals, offsets, strict=True)):
        if i in used:
            continue
        twin = [
            j
            for j in range(len(normals))
            if j not in used and np.allclose(normals[j], -n) and np.isclose(offsets[j], h)
        ]
        used.add(i)
        if twin:
            used.add(twin[0])
        out.append((n, float(h), bool(twin)))
    return tuple(out)


def particle(
    shape: str,
    *,
    circumradius_nm: float,
    voxel_nm: float,
    grid: int = 128,
    twist_deg: float = 0.0,
    affine: np.ndarray | None = None,
    edge_blur_nm: float = 0.0,
    torus_tube_ratio: float = 0.4,
) -> np.ndarray:
    """Occupancy (0…1, float32) of a particle centred on a ``grid``³ voxel grid (seed 000, section 3).

    Voxel ``j`` (per axis) is centred at ``(j - grid // 2) * voxel_nm``. Transforms, applied in this order:
    twist about z by ``twist_deg * z / circumradius_nm`` degrees, then ``x -> affine @ x``, then a Gaussian
    blur of standard deviation ``edge_blur_nm``. The function is deterministic; random variations are
    drawn by the caller (see ``spizoo.sim.spi``).

    Args:
        shape: one of :data:`SHAPES`.
        circumradius_nm: radius of the circumscribed sphere of the untransformed shape, in nm.
        voxel_nm: voxel edge length in nm.
        grid: voxels along each axis.
        twist_deg: twist angle at ``z = circumradius_nm``.
        affine: 3×3 matrix applied to the twisted shape (``None``: identity); must be invertible.
        edge_blur_nm: Gaussian edge-blur standard deviation in nm.
        torus_tube_ratio: tube radius over ring radius, for ``shape="torus"``.

    Returns:
        ``float32`` array of shape ``(grid, grid, grid)``; unit density gives ``sum * voxel_nm**3`` = volume.

    Raises:
        ValueError: naming the parameter, for an unknown shape, non-positive sizes, a singular affine, or a
            particle that does not fit in the grid.
    """
    check_shape(shape)
    for name, value in (("circumradius_nm", circumradius_nm), ("voxel_nm", voxel_nm)):
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    if not edge_blur_nm >= 0:
        raise ValueError(f"edge_blur_nm must be >= 0, got {edge_blur_nm}")
    if not 0 < torus_tube_ratio < 1:
        raise ValueError(f"torus_tube_ratio must be in (0, 1), got {torus_tube_ratio}")
    a_mat = np.eye(3) if affine is None else np.asarray(affine, dtype=float)
    if a_mat.shape != (3, 3) or abs(np.linalg.det(a_mat)) < 1e-6:
        raise ValueError(f"affine must be an invertible 3x3 matrix, got {a_mat.tolist()}")

    blur_vox = edge_blur_nm / voxel_nm
    extent = np.linalg.norm(a_mat, 2) * circumradius_nm / voxel_nm + 4 * blur_vox + 2
    half = int(np.ceil(extent))
    if 2 * half + 1 > grid:
        raise ValueError(
            f"a {shape} of circumradius_nm={circumradius_nm} with voxel_nm={voxel_nm} spans {2 * half + 1} voxels "
            f"(transforms and blur included) but grid={grid}; use larger voxels or a larger grid"
        )
    axis = np.arange(-half, half + 1, dtype=np.float32) * np.float32(voxel_nm / circumradius_nm)
    pts = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)  # unit-circumradius coordinates
    if affine is not None:
        pts = pts @ np.linalg.inv(a_mat).T.astype(np.float32)
    if twist_deg:
        angle = np.deg2rad(-twist_deg) * pts[..., 2]
        c, s = np.cos(angle), np.sin(angle)
        x, y = pts[..., 0].copy(), pts[..., 1].copy()
        pts[..., 0] = c * x - s * y
        pts[..., 1] = s * x + c * y
    # The inverse maps stretch distances; divide by the local scale to keep the ramp one voxel wide.
    scale = 1.0 / np.linalg.norm(np.linalg.inv(a_mat), 2) if affine is not None else 1.0
    dist_vox = signed_distance(shape, pts, torus_tube_ratio=torus_tube_ratio) * np.float32(
        scale * circumradius_nm / voxel_nm
    )
    occ = np.clip(np.float32(0.5) - dist_vox, 0.0, 1.0)
    if blur_vox > 0:
        occ = scipy.ndimage.gaussian_filter(occ, blur_vox, mode="constant", truncate=4.0)
    out = np.zeros((grid,) * 3, dtype=np.float32)
    lo = grid // 2 - half
    out[lo : lo + 2 * half + 1, lo : lo + 2 * half + 1, lo : lo + 2 * half + 1] = occ
    return out
