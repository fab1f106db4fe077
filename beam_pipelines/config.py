"""The ``dataset:`` config section of ``spizoo generate`` (kept free of Beam imports)."""

from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """A generated dataset (YAML ``dataset:``).

    Attributes:
        name: file-name prefix, ``NAME-SPLIT.tfrecord-00000-of-00016``.
        patterns: patterns to simulate over all splits (before augmentation).
        splits: split name -> fraction of particle models (by hash, so counts are close to, not exactly, these).
        shards: split name -> number of shard files (fixed).
        augment_splits: splits expanded by the ``augment:`` policy (seed 001: the training split only).
        unit_size: MSFT patterns per unit (SPI units are particle models).
        compression: ``none`` or ``gzip``.
    """

    name: str = "spizoo"
    patterns: int = 1000
    splits: dict[str, float] = dataclasses.field(default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1})
    shards: dict[str, int] = dataclasses.field(default_factory=lambda: {"train": 16, "validation": 2, "test": 2})
    augment_splits: tuple[str, ...] = ()
    unit_size: int = 100
    compression: str = "none"

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z0-9_.]+", self.name):
            raise ValueError(f"name must be letters, digits, '_' or '.', got {self.name!r}")
        if self.patterns < 1:
            raise ValueError(f"patterns must be >= 1, got {self.patterns}")
        if not self.splits or any(f < 0 for f in self.splits.values()) or abs(sum(self.splits.values()) - 1) > 1e-6:
            raise ValueError(f"splits must be non-negative fractions summing to 1, got {self.splits}")
        if set(self.shards) != set(self.splits) or any(n < 1 for n in self.shards.values()):
            raise ValueError(f"shards must give >= 1 shard for each split {sorted(self.splits)}, got {self.shards}")
        unknown = set(self.augment_splits) - set(self.splits)
        if unknown:
            raise ValueError(
                f"augment_splits names unknown split {sorted(unknown)[0]!r}; splits: {sorted(self.splits)}"
            )
        if self.unit_size < 1:
            raise ValueError(f"unit_size must be >= 1, got {self.unit_size}")
        if self.compression not in ("none", "gzip"):
            raise ValueError(f"compression must be 'none' or 'gzip', got {self.compression!r}")
