"""Models by name (ARCHITECTURE.md, convention 1): YAML names a model only through this registry."""

from __future__ import annotations

from collections.abc import Callable

_BUILDERS: dict[str, Callable] = {}
_TRAINED_BY: dict[str, str] = {}
TRAINERS = ("keras_fit", "logistic_regression")


def register(name: str, *, trained_by: str = "keras_fit") -> Callable[[Callable], Callable]:
    """Decorator registering a model builder under ``name``.

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
        return builder

    return wrap


def trained_by(name: str) -> str:
    """How ``spizoo train`` fits the model registered as ``name`` (one of :data:`TRAINERS`)."""
    _check(name)
    return _TRAINED_BY[name]


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
    from spizoo.models import resnet, vgg  # noqa: F401 - register on import
