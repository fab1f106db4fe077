"""Models by name (ARCHITECTURE.md, convention 1): YAML names a model only through this registry."""

from __future__ import annotations

from collections.abc import Callable

_BUILDERS: dict[str, Callable] = {}


def register(name: str) -> Callable[[Callable], Callable]:
    """Decorator registering a model builder under ``name``."""

    def wrap(builder: Callable) -> Callable:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        _BUILDERS[name] = builder
        return builder

    return wrap


def names() -> list[str]:
    """Registered model names, sorted."""
    _load()
    return sorted(_BUILDERS)


def build(name: str, **kwargs):
    """Builds the model registered as ``name``.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    _load()
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(_BUILDERS))}")
    return _BUILDERS[name](**kwargs)


def _load() -> None:
    from spizoo.models import resnet, vgg  # noqa: F401 - register on import
