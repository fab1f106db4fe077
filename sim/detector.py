"""Flat detector normal to the beam: pixel momentum transfers, solid angles, polarisation, mask.

Conventions (docs/PHYSICS.md): beam along +z, ``|k| = 2π/λ``; the pixel at ``r = (x, y, D)`` sees
``q = k r/|r| - k ẑ`` on the curved Ewald sphere (the flat approximation ``q ≈ k (x, y, 0)/D`` is an
option); solid angle ``ΔΩ = p² D / |r|³``; polarisation ``1 - (r̂·x̂)²`` for linear polarisation along x.
Image axes are (y, x): row ``i`` is at ``y = (i - center_y) p``, column ``j`` at ``x = (j - center_x) p``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from spizoo.core import masks


def momentum_transfer(r_m: np.ndarray, wavelength_nm: float, *, ewald: str, distance_m: float) -> np.ndarray:
    """``q = k r̂ - k ẑ`` in 1/nm for pixel positions ``r_m`` (…, 3) from the interaction point; ``ewald="flat"``
    is the small-angle approximation ``k (x, y, 0) / D``."""
    if not wavelength_nm > 0:
        raise ValueError(f"wavelength_nm must be > 0, got {wavelength_nm}")
    k = 2 * np.pi / wavelength_nm
    if ewald == "curved":
        q = k * r_m / np.linalg.norm(r_m, axis=-1, keepdims=True)
        q[..., 2] -= k
        return q
    if ewald == "flat":
        q = k * r_m / distance_m
        q[..., 2] = 0.0
        return q
    raise ValueError(f"ewald must be 'curved' or 'flat', got {ewald!r}")


def polarization_factor(r_m: np.ndarray, kind: str) -> np.ndarray:
    """``1 - (r̂·x̂)²`` (``"x"``), ``1 - (r̂·ŷ)²`` (``"y"``) or ``(1 + r̂_z²)/2`` (``"unpolarized"``) per pixel."""
    rhat = r_m / np.linalg.norm(r_m, axis=-1, keepdims=True)
    if kind == "x":
        return 1 - rhat[..., 0] ** 2
    if kind == "y":
        return 1 - rhat[..., 1] ** 2
    if kind == "unpolarized":
        return (1 + rhat[..., 2] ** 2) / 2
    raise ValueError(f"polarization must be 'x', 'y' or 'unpolarized', got {kind!r}")


@dataclasses.dataclass(frozen=True)
class Detector:
    """Geometry of one flat detector (all lengths in the unit named by the field).

    Attributes:
        shape: pixel counts (rows, columns) = (ny, nx).
        pixel_size_um: square pixel edge length.
        distance_m: interaction point to detector plane.
        center_px: (row, column) where the direct beam meets the detector; ``None`` means the middle.
        beam_stop_radius_px: radius of the central beam stop (pixels behind it read nothing).
        panel_gap_px: width of a horizontal gap between two half panels through the beam (0: none).
    """

    shape: tuple[int, int] = (128, 128)
    pixel_size_um: float = 75.0
    distance_m: float = 0.5
    center_px: tuple[float, float] | None = None
    beam_stop_radius_px: float = 0.0
    panel_gap_px: int = 0

    def __post_init__(self):
        if len(self.shape) != 2 or min(self.shape) < 1:
            raise ValueError(f"detector shape must be two positive pixel counts, got {self.shape}")
        for name in ("pixel_size_um", "distance_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("beam_stop_radius_px", "panel_gap_px"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def center(self) -> tuple[float, float]:
        """(row, column) of the beam centre in pixel coordinates."""
        if self.center_px is not None:
            return tuple(float(c) for c in self.center_px)
        return ((self.shape[0] - 1) / 2, (self.shape[1] - 1) / 2)

    def pixel_positions_m(self) -> np.ndarray:
        """Pixel-centre positions ``(x, y, D)`` in metres, shape (ny, nx, 3)."""
        cy, cx = self.center
        p = self.pixel_size_um * 1e-6
        y = (np.arange(self.shape[0]) - cy) * p
        x = (np.arange(self.shape[1]) - cx) * p
        yy, xx = np.meshgrid(y, x, indexing="ij")
        return np.stack([xx, yy, np.full_like(xx, self.distance_m)], axis=-1)

    def q_inv_nm(self, wavelength_nm: float, *, ewald: str = "curved") -> np.ndarray:
        """Momentum transfer ``q = k_out - k_in`` of each pixel in 1/nm, shape (ny, nx, 3).

        Args:
            wavelength_nm: photon wavelength.
            ewald: ``"curved"`` (exact) or ``"flat"`` (small-angle approximation, q_z = 0).
        """
        return momentum_transfer(self.pixel_positions_m(), wavelength_nm, ewald=ewald, distance_m=self.distance_m)

    def solid_angle_sr(self) -> np.ndarray:
        """Solid angle of each pixel, ``p² D / |r|³`` (ny, nx)."""
        r = self.pixel_positions_m()
        p = self.pixel_size_um * 1e-6
        return p * p * self.distance_m / np.linalg.norm(r, axis=-1) ** 3

    def polarization(self, kind: str = "x") -> np.ndarray:
        """Polarisation factor per pixel: ``"x"``/``"y"`` linear, or ``"unpolarized"`` (ny, nx)."""
        return polarization_factor(self.pixel_positions_m(), kind)

    def mask(self, *, bad_pixel_fraction: float = 0.0, rng=None) -> np.ndarray:
        """CXI pixel mask (uint32, 0 = good): panel gap, beam stop, and random dead pixels.

        Args:
            bad_pixel_fraction: fraction of pixels marked dead, drawn with ``rng``.
            rng: seed or ``numpy.random.Generator`` for the dead pixels.
        """
        if not 0 <= bad_pixel_fraction < 1:
            raise ValueError(f"bad_pixel_fraction must be in [0, 1), got {bad_pixel_fraction}")
        cy, cx = self.center
        rows, cols = np.meshgrid(np.arange(self.shape[0]), np.arange(self.shape[1]), indexing="ij")
        out = np.zeros(self.shape, dtype=np.uint32)
        if self.panel_gap_px:
            out[np.abs(rows - cy) < self.panel_gap_px / 2] |= masks.INVALID
        if self.beam_stop_radius_px:
            out[np.hypot(rows - cy, cols - cx) <= self.beam_stop_radius_px] |= masks.SHADOWED
        if bad_pixel_fraction:
            out[np.random.default_rng(rng).random(self.shape) < bad_pixel_fraction] |= masks.DEAD
        return out
