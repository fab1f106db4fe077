"""Strict YAML configs built from frozen dataclasses (docs/ARCHITECTURE.md, convention 2).

A config file is a nested mapping whose keys must match dataclass fields exactly; an unknown key is an
error naming it and the nearest valid key. ``--set a.b=c`` overrides are applied to the raw mapping
before it is checked, and :func:`dump_config` writes the resolved config that reproduces a run.

Field types understood by the loader: nested dataclasses, a union of dataclasses told apart by their
``kind`` field, ``int``, ``float``, ``str``, ``bool``, ``Range`` (a number or a ``[low, high]`` pair),
``tuple[...]`` and ``dict[str, ...]``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import math
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
            number = _float(value, where)
            return (number, number)
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v) for v in value):
            low, high = _float(value[0], f"{where}[0]"), _float(value[1], f"{where}[1]")
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
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        number = _float(value, where) if _is_number(value) else None
        if number is None or not math.isfinite(number) or number != int(number):
            raise ConfigError(f"{where}: expected an integer, got {_show(value)}")
        return int(number)
    if hint is float:
        if not _is_number(value):
            raise ConfigError(f"{where}: expected a number, got {_show(value)}")
        return _float(value, where)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {_show(value)}")
        return value
    return _plain(value, where)


def _plain(value: Any, where: str) -> Any:
    """``value`` if it is plain data (numbers but NaN, strings, booleans, null, lists, mappings with string
    keys), as a free-form option must be to be written with the config and hashed."""
    stack = [(value, where)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, dict):
            for k, v in item.items():
                if not isinstance(k, str):
                    raise ConfigError(f"{at}: keys must be strings, got {_show(k)}")
                stack.append((v, _child(at, k)))
        elif isinstance(item, list):
            stack.extend((v, f"{at}[{i}]") for i, v in enumerate(item))
        elif isinstance(item, float) and math.isnan(item):
            raise ConfigError(f"{at}: expected a number, got NaN")
        elif not (item is None or isinstance(item, str | int | float | bool)):
            raise ConfigError(f"{at}: expected plain YAML values, got {type(item).__name__} {_show(item)}")
    return value


def _float(value: Any, where: str) -> float:
    """A number (or numeric string) as a float; NaN and integers beyond the float range are errors."""
    try:
        number = float(value)
    except OverflowError:
        raise ConfigError(f"{where}: {_show(value)} is beyond the range of a float") from None
    if math.isnan(number):
        raise ConfigError(f"{where}: expected a number, got NaN")
    return number


def _show(value: Any) -> str:
    text = (
        repr(value)
        if not isinstance(value, int) or abs(value) < 10**50
        else f"an integer of {len(str(abs(value)))} digits"
    )
    return text if len(text) <= 200 else text[:200] + "…"


def _by_kind(classes: list[type], value: Any, where: str) -> type:
    """The dataclass whose ``kind`` default matches ``value["kind"]`` (the first when no kind is given)."""
    kinds = {f.default: cls for cls in classes for f in dataclasses.fields(cls) if f.name == "kind"}
    kind = value.get("kind") if isinstance(value, dict) else None
    if kind is None:
        return classes[0]
    if not isinstance(kind, str) or kind not in kinds:
        raise ConfigError(f"{where}.kind: unknown kind {_show(kind)}; known: {', '.join(map(str, kinds))}")
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
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {_show(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if not isinstance(key, str) or key not in fields:
            raise ConfigError(f"{where or 'config'}: unknown key {_show(str(key))}{_nearest(str(key), fields)}")
        kwargs[key] = _convert(value, hints[key], _child(where, key))
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError, ArithmeticError) as err:  # a value the section's own checks refuse
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
    if not isinstance(data, dict):
        raise ConfigError(f"the config must be a mapping of sections, got {_show(data)}")
    data = copy.deepcopy(data)
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
        try:
            node[parts[-1]] = yaml.load(raw, _StrictLoader)
        except (yaml.YAMLError, ValueError, RecursionError) as err:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({_first_line(err)})") from None
    return data


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, stricter: a key given twice in a mapping is an error (not the last one winning),
    and so are aliases (``*name``: a few lines of them can stand for gigabytes of data)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"aliases (*{event.anchor}) are not allowed in a config", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:
                continue  # an unhashable key: the base class says so
            if first is not key_node.start_mark:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (first on line {first.line + 1})", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path, cls: type, overrides: typing.Sequence[str] = ()) -> Any:
    """Loads YAML file ``path`` strictly into dataclass ``cls``, applying ``overrides`` last.

    Raises:
        ConfigError: if the file is missing or not YAML, or a key or value is invalid (the message
            starts with the file name).
    """
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), _StrictLoader) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a config file") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not a config: lists or mappings nested too deeply") from None
    except ValueError as err:  # e.g. an integer of more than 4300 digits
        raise ConfigError(f"{path}: not a config: {_first_line(err)}") from None
    try:
        data = apply_overrides(data, overrides)
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
