"""CXI pixel-mask bits (CXI format 1.6, "mask"): a good pixel has no bit set.

The simulators write these bits and the readers of experiment data honour them: a pixel with any bit of
:data:`UNUSABLE` set reads 0, as masked pixels do in simulated training data.
"""

from __future__ import annotations

INVALID = 0x0001
"""Pixel does not exist (panel gap, ASIC seam)."""
SATURATED = 0x0002
HOT = 0x0004
DEAD = 0x0008
"""Dead or bad pixel."""
SHADOWED = 0x0010
"""Pixel behind the beam stop."""
IGNORE = 0x0040
BAD = 0x0080
UNUSABLE = INVALID | SATURATED | HOT | DEAD | SHADOWED | IGNORE | BAD
"""Bits that make a pixel unusable for analysis."""
