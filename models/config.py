"""The ``model:`` and ``train:`` config sections (kept free of TensorFlow imports)."""

from __future__ import annotations

import dataclasses
from typing import Any

from spizoo.models.precision import PRECISIONS

STRATEGIES = ("default", "mirrored", "multi_worker")
SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """YAML ``model:``: a registry name and its builder's keyword arguments."""

    name: str = "resnet10_classifier"
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """YAML ``train:``.

    Attributes:
        epochs: passes over the training split.
        learning_rate: Adam's learning rate (seed 000: 1e-3).
        schedule: ``constant`` (seed 000) or ``cosine``: the rate decays along a cosine to 0 over the run's
            steps (at 14,500 e1 patterns, 3.2 points of test accuracy over ``constant``: docs/RESULTS.md §7).
        mixed_precision: ``auto`` (``mixed_float16`` on a GPU, ``mixed_bfloat16`` on a CPU with bf16
            instructions, else ``float32``) or a Keras dtype policy name.
        strategy: ``default`` (CPU or one GPU), ``mirrored`` (all local GPUs), ``multi_worker`` (``TF_CONFIG``).
        deterministic: reproducible kernels (TensorFlow op determinism), slower.
        train_split, validation_split: dataset splits used.
        logistic_c: inverse L2 strength of the logistic regression fitted on a feature extractor's features
            (models trained by ``logistic_regression``; seed 000 §4.2: C = 1). ``epochs`` and
            ``learning_rate`` do not apply to them.
    """

    epochs: int = 20
    learning_rate: float = 1e-3
    schedule: str = "constant"
    mixed_precision: str = "auto"
    strategy: str = "default"
    deterministic: bool = False
    train_split: str = "train"
    validation_split: str = "validation"
    logistic_c: float = 1.0

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not self.logistic_c > 0:
            raise ValueError(f"logistic_c must be > 0, got {self.logistic_c}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(f"mixed_precision must be one of {', '.join(PRECISIONS)}, got {self.mixed_precision!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
