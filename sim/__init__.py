"""Simulators of XFEL diffraction patterns: pure numpy/scipy physics (docs/PHYSICS.md).

Public entry points: :func:`particle` (voxel densities), :func:`scattering_amplitude` (Born amplitude at
any q), :class:`Detector` (geometry), :func:`simulate` (either simulator), the small-angle SPI simulator in
:mod:`spizoo.sim.spi` and the wide-angle MSFT simulator in :mod:`spizoo.sim.wideangle`.
"""

from spizoo.sim import spi, wideangle
from spizoo.sim.amplitude import Amplitude, scattering_amplitude
from spizoo.sim.detector import Detector
from spizoo.sim.shapes import SHAPES, particle

__all__ = ["SHAPES", "Amplitude", "Detector", "particle", "scattering_amplitude", "simulate"]


def simulate(cfg, seed: int, n: int, *, start: int = 0):
    """Patterns ``start … start + n - 1`` of either simulator's config (``kind: spi`` or ``kind: msft``)."""
    return (spi if cfg.kind == "spi" else wideangle).simulate(cfg, seed, n, start=start)
