"""What a model is for, in one place: its labels, loss, metrics, serving outputs, export signature and
evaluation report. The model registry gives each registered model its :class:`Task`; training, export,
evaluation and inference read it from there and never guess it from a layer's activation."""

from __future__ import annotations

import dataclasses

from spizoo.core.labels import BINARY_NAMES, CLASS_NAMES


@dataclasses.dataclass(frozen=True)
class Task:
    """A model's task.

    Attributes:
        name: ``particle_count`` (seed 000 §4.1), ``single_hit`` (seed 000 §4.2) or ``orientation_size``
            (seed 001 §3).
        labels: class names by label; empty for a regression.
        loss: the Keras loss it trains with (``""`` for a model not fitted by gradient descent).
        metrics: ``accuracy`` or ``relative_error`` (seed 001 appendix C).
        outputs: the named outputs of the exported ``serving_default`` signature.
        api: TF Serving's API besides Predict: ``classify`` or ``regress``.
        report: the ``spizoo evaluate`` report: ``classifier``, ``binary`` or ``regressor``.
    """

    name: str
    labels: tuple[str, ...]
    loss: str
    metrics: str
    outputs: tuple[str, ...]
    api: str
    report: str

    @property
    def is_regression(self) -> bool:
        return not self.labels


CLASSIFICATION_OUTPUTS = ("probabilities", "classes", "single_hit_score")

PARTICLE_COUNT = Task(
    name="particle_count",
    labels=CLASS_NAMES,
    loss="sparse_categorical_crossentropy",
    metrics="accuracy",
    outputs=CLASSIFICATION_OUTPUTS,
    api="classify",
    report="classifier",
)
SINGLE_HIT = Task(
    name="single_hit",
    labels=BINARY_NAMES,
    loss="",
    metrics="accuracy",
    outputs=CLASSIFICATION_OUTPUTS,
    api="classify",
    report="binary",
)
ORIENTATION_SIZE = Task(
    name="orientation_size",
    labels=(),
    loss="mse",
    metrics="relative_error",
    outputs=("quaternion", "radius_nm"),
    api="regress",
    report="regressor",
)
TASKS = {t.name: t for t in (PARTICLE_COUNT, SINGLE_HIT, ORIENTATION_SIZE)}
