"""Models by name: YAML names a model only through this registry, which also gives its :class:`Task`
(docs/ARCHITECTURE.md, "Models")."""

from __future__ import annotations

from collections.abc import Callable

from spizoo.core.task import Task

_BUILDERS: dict[str, Callable] = {}
_TRAINED_BY: dict[str, str] = {}
_TASKS: dict[str, Task] = {}
TRAINERS = ("keras_fit", "logistic_regression")


def register(name: str, *, task: Task, trained_by: str = "keras_fit") -> Callable[[Callable], Callable]:
    """Decorator registering a model builder under ``name`` for ``task``.

    ``trained_by``: ``keras_fit`` (gradient descent on the whole network) or ``logistic_regression`` (a
    frozen feature extractor, with a scikit-learn logistic regression fitted on its features and folded in).
    """
    if trained_by not in TRAINERS:
        raise ValueError(f"trained_by must be one of {TRAINERS}, got {trained_by!r}")

    def wrap(builder: Callable) -> Callable:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        _BUILDERS[name] = builder
        _TRAINED_BY[name] = trained_by
        _TASKS[name] = task
        return builder

    return wrap


def trained_by(name: str) -> str:
    """How ``spizoo train`` fits the model registered as ``name`` (one of :data:`TRAINERS`)."""
    _check(name)
    return _TRAINED_BY[name]


def task(name: str) -> Task:
    """The task of the model registered as ``name``."""
    _check(name)
    return _TASKS[name]


def names() -> list[str]:
    """Registered model names, sorted."""
    _load()
    return sorted(_BUILDERS)


def build(name: str, **kwargs):
    """Builds the model registered as ``name``.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    _check(name)
    return _BUILDERS[name](**kwargs)


def _check(name: str) -> None:
    _load()
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(_BUILDERS))}")


def _load() -> None:
    # The model modules import Keras (seconds): loaded when a name is first looked up, not with the registry.
    from spizoo.models import resnet, vgg  # noqa: F401 - register on import
