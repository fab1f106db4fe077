"""The top-level config of a spizoo run: a seed and one frozen dataclass per area, each defined by the
package it configures (docs/ARCHITECTURE.md). Part of the application layer: no domain package imports it;
the verbs load a config here and hand each package its section."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from spizoo.beam_pipelines.config import DatasetConfig
from spizoo.core.config import load_config
from spizoo.core.task import Task
from spizoo.data.pipeline import DataConfig
from spizoo.models import registry
from spizoo.models.config import ModelConfig, TrainConfig
from spizoo.sim.augment import AugmentPolicy
from spizoo.sim.spi import SpiConfig
from spizoo.sim.wideangle import MsftConfig


@dataclasses.dataclass(frozen=True)
class Config:
    """A spizoo config file.

    Attributes:
        seed: root of every random stream; pattern ``i`` is a pure function of (config, seed, i).
        sim: the simulator: ``kind: spi`` (small-angle hits, seed 000) or ``kind: msft`` (wide angle, seed 001).
        augment: the detector-artefact augmentation policy (seed 001 appendix D).
        dataset: what ``spizoo generate`` writes (size, splits, shards).
        data: how examples become model inputs (crop, normalisation, batches).
        model: the registered model and its options.
        train: epochs, optimiser, precision, distribution.
    """

    seed: int = 0
    sim: SpiConfig | MsftConfig = dataclasses.field(default_factory=SpiConfig)
    augment: AugmentPolicy = dataclasses.field(default_factory=AugmentPolicy)
    dataset: DatasetConfig = dataclasses.field(default_factory=DatasetConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


def load(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Loads a config file strictly, with ``--set`` overrides applied last."""
    return load_config(path, Config, overrides)


def task(config: Config) -> Task:
    """The task of the config's model (from the model registry)."""
    return registry.task(config.model.name)
