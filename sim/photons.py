"""Photon counts on the detector (docs/PHYSICS.md, "Born amplitude and photon counts")."""

from __future__ import annotations

import numpy as np

from spizoo.sim.constants import CLASSICAL_ELECTRON_RADIUS_NM, NM2_PER_UM2


def expected_photons(
    amplitude: np.ndarray,
    *,
    electron_density_e_per_nm3: float,
    fluence_photons_per_um2: float,
    solid_angle_sr: np.ndarray,
    polarization: np.ndarray,
) -> np.ndarray:
    """Mean photons per pixel ``N = Φ · r_e² · P · ΔΩ · |n_e F_S(q)|²`` (float64).

    Args:
        amplitude: shape amplitude ``F_S(q)`` in nm³ (unit density), any shape.
        electron_density_e_per_nm3: ``n_e``, so that ``n_e F_S`` is the amplitude in electrons.
        fluence_photons_per_um2: ``Φ``.
        solid_angle_sr, polarization: per-pixel ``ΔΩ`` and ``P``, broadcastable to ``amplitude``.
    """
    if not fluence_photons_per_um2 >= 0:
        raise ValueError(f"fluence_photons_per_um2 must be >= 0, got {fluence_photons_per_um2}")
    if not electron_density_e_per_nm3 >= 0:
        raise ValueError(f"electron_density_e_per_nm3 must be >= 0, got {electron_density_e_per_nm3}")
    intensity = np.abs(amplitude).astype(np.float64) ** 2
    scale = fluence_photons_per_um2 / NM2_PER_UM2 * CLASSICAL_ELECTRON_RADIUS_NM**2 * electron_density_e_per_nm3**2
    return scale * polarization * solid_angle_sr * intensity


def detect(
    expected: np.ndarray, *, rng, background_photons: float = 0.0, readout_noise_photons: float = 0.0
) -> np.ndarray:
    """Detector counts: ``Poisson(expected + background)`` plus Gaussian readout noise, as float32.

    With ``readout_noise_photons = 0`` every value is a whole number of photons.
    """
    if not background_photons >= 0:
        raise ValueError(f"background_photons must be >= 0, got {background_photons}")
    if not readout_noise_photons >= 0:
        raise ValueError(f"readout_noise_photons must be >= 0, got {readout_noise_photons}")
    rng = np.random.default_rng(rng)
    counts = rng.poisson(np.asarray(expected, dtype=np.float64) + background_photons).astype(np.float32)
    if readout_noise_photons:
        counts += rng.normal(0.0, readout_noise_photons, counts.shape).astype(np.float32)
    return counts
