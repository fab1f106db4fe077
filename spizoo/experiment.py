"""The top-level config of a spizoo run: a seed and one frozen dataclass per area, each defined by the
package it configures (docs/ARCHITECTURE.md). Part of the application layer: no domain package imports it;
the verbs load a config here and hand each package its section."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from spizoo.beam_pipelines.config import DatasetConfig
from spizoo.core.config import ConfigError, load_config
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
    """Loads a config file strictly, with ``--set`` overrides applied last.

    Raises:
        ConfigError: naming the file for a fault of the file, and the ``--set`` value for a fault of an override
            (the file alone loads).
    """
    try:
        config = load_config(path, Config, overrides)
    except ConfigError as err:
        if not overrides:
            raise
        try:
            load_config(path, Config)  # the file alone: if it fails too, the fault is the file's
        except ConfigError:
            raise err from None
        raise ConfigError(_blame_override(str(err), str(path), overrides)) from None
    if config.seed < 0:
        where = next((o for o in reversed(overrides) if o.split("=", 1)[0].strip() == "seed"), None)
        raise ConfigError(
            f"{f'--set {where}' if where else path}: seed: expected a non-negative integer, got {config.seed}"
        )
    return config


def _blame_override(message: str, path: str, overrides: Sequence[str]) -> str:
    """The message of an error that only the overrides cause, said of the ``--set`` values it is about: those
    whose key is the error's key path, inside it or above it (else every override)."""
    text = message.removeprefix(f"{path}: ")
    if text.startswith("--set "):  # apply_overrides names the item itself
        return text
    where = text.split(": ", 1)[0].split(".kind", 1)[0]
    keys = [o.split("=", 1)[0].strip() for o in overrides]
    if "unknown key '" in text:  # the override that names the key
        unknown = text.split("unknown key '", 1)[1].split("'", 1)[0]
        where = unknown if where == "config" else f"{where}.{unknown}"

    def about(key: str) -> bool:
        return key == where or key.startswith(f"{where}.") or where.startswith(f"{key}.")

    named = [o for o, key in zip(overrides, keys, strict=True) if about(key)] or list(overrides)
    return f"--set {', --set '.join(named)}: {text} ({path} itself is fine)"


def task(config: Config) -> Task:
    """The task of the config's model (from the model registry)."""
    return registry.task(config.model.name)
