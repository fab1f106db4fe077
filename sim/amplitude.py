"""Born scattering amplitude of a voxelised density at arbitrary momentum transfers (docs/PHYSICS.md).

``F(q) = a³ Σ_j ρ_j e^{-i q·r_j} / B(q)``: the discrete Fourier sum over voxels of size ``a``, evaluated at
any ``q`` with a type-2 non-uniform FFT (FINUFFT), divided by the voxel box form factor
``B(q) = Π_i sinc(q_i a / 2)``. Because the occupancy from :func:`spizoo.sim.shapes.particle` is the
shape convolved with one voxel, this division recovers the continuous shape's form factor.

The transform runs on the density's non-zero bounding box (a particle filling 80 of 128 voxels runs on
80³ instead of 128³), which keeps the NUFFT's oversampled grid in cache. Many ``q`` sets — all patterns
and all cluster members of one particle model — are evaluated in one call, so the NUFFT's FFT is paid
once per model and each pattern costs only the interpolation (benchmarks/scattering_amplitude.py
compares this with an FFT grid plus interpolation). Each output value depends only on the density and
its own ``q``, never on the other points of the call, which keeps patterns reproducible one by one.
"""

from __future__ import annotations

import finufft
import numpy as np

DEFAULT_EPS = 1e-3
"""NUFFT relative tolerance. It gives amplitudes to ~1e-4 of F(0): an expected photon count errs by
``2·N·ΔF/F``, below the Poisson noise ``√N`` whenever the brightest pixel holds fewer than ~10⁷ photons
(docs/BENCHMARKS.md measures the accuracy; use 1e-5 for noise-free references)."""

_UPSAMPFAC = 1.25  # fixed (never "auto", which would depend on the number of points)


def box_form_factor(x: np.ndarray) -> np.ndarray:
    """``Π_i sinc(x_i / 2)`` for ``x = q·a`` with components along axis 0 (3, ...).

    Evaluated by its Taylor series (error < 1e-5 for ``|x_i| <= π``), in the dtype of ``x``.
    """
    out = np.ones(x.shape[1:], dtype=x.dtype)
    u2 = np.empty_like(out)
    f = np.empty_like(out)
    for xi in x:  # in place: this runs on millions of points per particle model
        np.multiply(xi, xi, out=u2)
        u2 *= 0.25
        np.multiply(u2, -1 / 72, out=f)
        for n in (42, 20, 6):
            f += 1
            f *= u2
            f *= -1 / n
        f += 1
        out *= f
    return out


class Amplitude:
    """Precomputed amplitude of one density; calling it evaluates ``F(q)`` at particle-frame ``q``.

    Args:
        density: real 3D array (electron density or unit occupancy), voxel ``j`` centred at
            ``(j - n // 2) * voxel_nm`` along each axis of length ``n``.
        voxel_nm: voxel edge length in nm.
        eps: NUFFT tolerance.

    Raises:
        ValueError: for a density that is not a non-empty real 3D array, or a non-positive voxel size.
    """

    def __init__(self, density: np.ndarray, *, voxel_nm: float, eps: float = DEFAULT_EPS):
        density = np.asarray(density)
        if density.ndim != 3 or np.iscomplexobj(density):
            raise ValueError(f"density must be a real 3D array, got shape {density.shape} dtype {density.dtype}")
        if not voxel_nm > 0:
            raise ValueError(f"voxel_nm must be > 0, got {voxel_nm}")
        if not 0 < eps < 1:
            raise ValueError(f"eps must be in (0, 1), got {eps}")
        nonzero = np.nonzero(density)
        if len(nonzero[0]) == 0:
            raise ValueError("density is zero everywhere")
        lo = np.array([ix.min() for ix in nonzero])
        hi = np.array([ix.max() + 1 for ix in nonzero])
        self._modes = np.ascontiguousarray(
            density[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))], np.complex64
        )
        size = hi - lo
        # Position of the NUFFT's mode 0 (index size // 2 of the crop) in the density's frame.
        self.origin_nm = (lo + size // 2 - np.array(density.shape) // 2) * float(voxel_nm)
        self.voxel_nm = float(voxel_nm)
        self.eps = float(eps)
        self.forward = float(density.sum(dtype=np.float64)) * self.voxel_nm**3
        """F(0): the integral of the density."""

    def raw(self, q_inv_nm: np.ndarray) -> np.ndarray:
        """NUFFT part only: ``a³ Σ_j ρ_j e^{-i q·(r_j - origin)}`` (complex64, M) at ``q`` given as (3, M).

        The full amplitude is ``raw(q) * exp(-i q·origin_nm) / box_form_factor(q * voxel_nm)``; callers that
        rotate and translate many copies fold the phase into their own (see ``spizoo.sim.spi``).
        """
        x = np.asarray(q_inv_nm, dtype=np.float32) * np.float32(self.voxel_nm)
        if x.ndim != 2 or x.shape[0] != 3:
            raise ValueError(f"q_inv_nm must have shape (3, M), got {x.shape}")
        if x.size and np.abs(x).max() > np.pi:
            raise ValueError(
                f"q up to {np.abs(x).max() / self.voxel_nm:.4g} 1/nm exceeds the voxel grid's Nyquist limit "
                f"pi/voxel_nm = {np.pi / self.voxel_nm:.4g} 1/nm; use smaller voxels"
            )
        x0, x1, x2 = (np.ascontiguousarray(c) for c in x)
        # No point sorting: callers pass rotated detector grids in raster order, already local in memory, and
        # unsorted interpolation is 25 % faster with bit-identical values (benchmarks/scattering_amplitude.py).
        out = finufft.nufft3d2(
            x0, x1, x2, self._modes, eps=self.eps, isign=-1, upsampfac=_UPSAMPFAC, nthreads=1, spread_sort=0
        )
        return out * np.float32(self.voxel_nm**3)

    def __call__(self, q_inv_nm: np.ndarray) -> np.ndarray:
        """``F(q)`` in density units × nm³ at ``q`` (..., 3) in 1/nm, complex64 of shape (...)."""
        q = np.asarray(q_inv_nm, dtype=np.float64)
        flat = q.reshape(-1, 3).T
        angle = (self.origin_nm @ flat).astype(np.float32)
        phase = np.cos(angle) - 1j * np.sin(angle)
        box = box_form_factor((flat * self.voxel_nm).astype(np.float32))
        return (self.raw(flat) * phase / box).reshape(q.shape[:-1])


def scattering_amplitude(
    density: np.ndarray, *, voxel_nm: float, q_inv_nm: np.ndarray, eps: float = DEFAULT_EPS
) -> np.ndarray:
    """Born amplitude ``F(q) = ∫ ρ(r) e^{-i q·r} d³r`` of a voxelised density (docs/PHYSICS.md; seed 000 eq. 1).

    Args:
        density: real 3D array; voxel ``j`` centred at ``(j - n // 2) * voxel_nm`` per axis.
        voxel_nm: voxel edge length in nm.
        q_inv_nm: momentum transfers ``q = k_out - k_in`` in 1/nm, shape (..., 3), in the density's frame.
        eps: NUFFT tolerance.

    Returns:
        complex64 array of shape ``q_inv_nm.shape[:-1]``; unit density gives ``F(0)`` = volume in nm³.

    Raises:
        ValueError: for a bad density or voxel size, or ``q`` beyond the grid's Nyquist limit.
    """
    return Amplitude(density, voxel_nm=voxel_nm, eps=eps)(q_inv_nm)
