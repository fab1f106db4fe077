"""Simulators of XFEL diffraction patterns: pure numpy/scipy physics (PHYSICS.md).

Public entry points: :func:`particle` (voxel densities), :func:`scattering_amplitude` (Born amplitude at
any q), :class:`Detector` (geometry), and the small-angle SPI simulator in :mod:`spizoo.sim.spi`.
"""

from spizoo.sim.amplitude import Amplitude, scattering_amplitude
from spizoo.sim.detector import Detector
from spizoo.sim.shapes import SHAPES, particle

__all__ = ["SHAPES", "Amplitude", "Detector", "particle", "scattering_amplitude"]
