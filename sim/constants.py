"""Physical constants and unit conversions used by the simulators (docs/PHYSICS.md)."""

CLASSICAL_ELECTRON_RADIUS_NM = 2.8179403262e-6
"""r_e in nanometres (2.8179403262e-15 m)."""

HC_EV_NM = 1239.841984
"""h·c in eV·nm: wavelength_nm = HC_EV_NM / photon_energy_eV."""

NM2_PER_UM2 = 1e6

ELECTRON_DENSITY_E_PER_NM3 = {"water": 334.0, "protein": 430.0, "silver": 2750.0}
"""Electron densities of common sample materials (docs/PHYSICS.md)."""


def wavelength_nm(photon_energy_ev: float) -> float:
    """Photon wavelength in nm for a photon energy in eV."""
    if not photon_energy_ev > 0:
        raise ValueError(f"photon_energy_eV must be > 0, got {photon_energy_ev}")
    return HC_EV_NM / photon_energy_ev
