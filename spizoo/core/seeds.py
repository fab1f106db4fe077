"""Random streams by key (docs/PHYSICS.md, "Reproducibility").

Every random number comes from ``numpy.random.SeedSequence(seed, spawn_key=key)``, so a pattern, an
augmented copy or a split is a pure function of the config's seed and its own key, whatever the order,
process or runner that computes it.
"""

from __future__ import annotations

import numpy as np

AUGMENT = 0xA06
"""Last element of the spawn key of a pattern's augmentation stream: ``(model, shot, AUGMENT)``."""


def rng(seed: int, *key: int) -> np.random.Generator:
    """The generator of stream ``key`` under ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def augment_rng(seed: int, model_index: int, shot: int) -> np.random.Generator:
    """The stream that augments shot ``shot`` of particle model ``model_index`` (seed 001 appendix D)."""
    return rng(seed, model_index, shot, AUGMENT)
