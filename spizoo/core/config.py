"""Strict YAML configs built from frozen dataclasses (docs/ARCHITECTURE.md, convention 2).

A config file is a nested mapping whose keys must match dataclass fields exactly; an unknown key is an
error naming it and the nearest valid key. ``--set a.b=c`` overrides are applied to the raw mapping
before it is checked, and :func:`dump_config` writes the resolved config that reproduces a run.

Field types understood by the loader: nested dataclasses, a union of dataclasses told apart by their
``kind`` field, ``int``, ``float``, ``str``, ``bool``, ``Range`` (a number or a ``[low, high]`` pair),
``tuple[...]`` and ``dict[str, ...]``.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any

import yaml

Range = tuple[float, float]
"""A parameter drawn per particle model: ``[low, high]`` in YAML; a single number means a fixed value."""


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the file, key and value."""


def _nearest(key: str, valid: typing.Iterable[str]) -> str:
    valid = list(valid)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else f" (valid keys: {', '.join(valid)})"


def _convert(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if hint is Range or (origin is tuple and args == (float, float)):
        if _is_number(value):
            return (float(value), float(value))
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v) for v in value):
            low, high = float(value[0]), float(value[1])
            if low > high:
                raise ConfigError(f"{where}: range [{low}, {high}] has low > high")
            return (low, high)
        raise ConfigError(f"{where}: expected a number or a [low, high] pair, got {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _convert(v, args[1], _child(where, str(k))) for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if all(dataclasses.is_dataclass(a) for a in inner):
            return _convert(value, _by_kind(inner, value, where), where)
        return _convert(value, inner[0], where)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (_is_number(value) and value == int(value))):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if hint is float:
        if not _is_number(value):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _by_kind(classes: list[type], value: Any, where: str) -> type:
    """The dataclass whose ``kind`` default matches ``value["kind"]`` (the first when no kind is given)."""
    kinds = {f.default: cls for cls in classes for f in dataclasses.fields(cls) if f.name == "kind"}
    kind = value.get("kind") if isinstance(value, dict) else None
    if kind is None:
        return classes[0]
    if kind not in kinds:
        raise ConfigError(f"{where}.kind: unknown kind {kind!r}; known: {', '.join(map(str, kinds))}")
    return kinds[kind]


def _is_number(value: Any) -> bool:
    if isinstance(value, str):
        try:
            float(value)  # YAML 1.1 reads "1e12" as a string
        except ValueError:
            return False
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _child(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Builds dataclass ``cls`` from a mapping, rejecting unknown keys and wrongly typed values.

    Raises:
        ConfigError: naming the dotted key path, the bad key or value, and the nearest valid key.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"{where or 'config'}: unknown key '{key}'{_nearest(str(key), fields)}")
        kwargs[key] = _convert(value, hints[key], _child(where, key))
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(f"{where or 'config'}: {err}") from None


def to_dict(obj: Any) -> Any:
    """Plain YAML/JSON-ready form of a (nested) config dataclass."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def apply_overrides(data: dict, overrides: typing.Sequence[str]) -> dict:
    """Applies ``a.b=c`` overrides (values parsed as YAML) to a raw config mapping, in order."""
    data = json.loads(json.dumps(data))  # deep copy of plain data
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. sim.detector.distance_m=0.5")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: '{part}' is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def load_config(path: str | Path, cls: type, overrides: typing.Sequence[str] = ()) -> Any:
    """Loads YAML file ``path`` strictly into dataclass ``cls``, applying ``overrides`` last.

    Raises:
        ConfigError: if the file is missing or not YAML, or a key or value is invalid (the message
            starts with the file name).
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    data = apply_overrides(data, overrides)
    try:
        return from_dict(cls, data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def dump_config(config: Any, path: str | Path) -> None:
    """Writes the resolved config as YAML (``load_config`` of it gives back an equal config)."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def config_hash(config: Any) -> str:
    """Short stable hash of a resolved config, used in element keys and dataset metadata."""
    text = json.dumps(to_dict(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
